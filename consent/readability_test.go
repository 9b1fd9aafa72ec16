package consent

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/scope"
)

// maxGrade is the highest Flesch-Kincaid grade level an English text on
// the patient pages may have.
const maxGrade = 6.0

var (
	sentenceEnd = regexp.MustCompile(`[.!?]+(\s|$)`)
	wordText    = regexp.MustCompile(`[A-Za-z][A-Za-z']*`)
	vowelGroup  = regexp.MustCompile(`[aeiouy]+`)
)

// syllables estimates the syllables of an English word by its vowel
// groups, without a silent final e.
func syllables(word string) int {
	w := strings.ToLower(strings.Trim(word, "'"))
	n := len(vowelGroup.FindAllString(w, -1))
	if strings.HasSuffix(w, "e") && !strings.HasSuffix(w, "le") && n > 1 {
		n--
	}
	if strings.HasSuffix(w, "es") && !strings.HasSuffix(w, "ses") && !strings.HasSuffix(w, "ces") &&
		!strings.HasSuffix(w, "ges") && n > 1 {
		n--
	}
	return max(n, 1)
}

// grade is the Flesch-Kincaid grade level:
// 0.39 × words per sentence + 11.8 × syllables per word − 15.59.
func grade(text string) float64 {
	words := wordText.FindAllString(text, -1)
	if len(words) == 0 {
		return 0
	}
	sentences := max(len(sentenceEnd.FindAllString(text, -1)), 1)
	syl := 0
	for _, w := range words {
		syl += syllables(w)
	}
	return 0.39*float64(len(words))/float64(sentences) + 11.8*float64(syl)/float64(len(words)) - 15.59
}

func TestGradeFormula(t *testing.T) {
	cases := []struct {
		text     string
		min, max float64
	}{
		{"The cat sat on the mat.", -3, 0},
		{"Authorization of heterogeneous interoperability infrastructure necessitates comprehensive documentation.", 20, 60},
	}
	for _, c := range cases {
		if g := grade(c.text); g < c.min || g > c.max {
			t.Errorf("grade(%q) = %.1f, want %.0f to %.0f", c.text, g, c.min, c.max)
		}
	}
}

// englishTexts returns every English text a patient can meet, with
// placeholders filled: the catalog messages and the descriptions made for
// every record kind, category, permission set and level.
func englishTexts() map[string]string {
	out := map[string]string{}
	skip := map[string]bool{"lang.name": true, "page.scope_name": true}
	for id, text := range english {
		if skip[id] {
			continue
		}
		args := make([]any, strings.Count(text, "%s"))
		for i := range args {
			args[i] = "Sam"
		}
		out["message "+id] = fmt.Sprintf(text, args...)
	}
	until := time.Date(2027, 3, 3, 0, 0, 0, 0, time.UTC)
	var raws []string
	for typ := range records["en"] {
		for _, perms := range []string{"rs", "cruds", "c", "d"} {
			raws = append(raws, "patient/"+typ+"."+perms, "user/"+typ+".read")
		}
	}
	for code := range categories["en"] {
		raws = append(raws, "patient/Observation.rs?category=http://example.org/cs|"+code)
	}
	raws = append(raws, "patient/*.cruds", "user/*.rs", "patient/Observation.rs?code=http://loinc.org|1234-5",
		"openid", "fhirUser", "profile", "launch", "launch/patient", "launch/encounter", "offline_access",
		"online_access", "__app.special")
	list, rejected := scope.ParseList(strings.Join(raws, " "))
	if len(rejected) > 0 {
		panic(fmt.Sprint("test scopes rejected: ", rejected))
	}
	for _, it := range Describe(list, "en", until) {
		out["short "+it.Scope] = it.Short
		out["long "+it.Scope] = it.Long
	}
	return out
}

// minWords is the shortest text graded on its own. The formula is built
// for sentences: on a label of two or three words one long word dominates
// it ("Deny" grades 8), so labels are graded together as one passage of
// one-label sentences instead.
const minWords = 5

func TestEnglishReadingLevel(t *testing.T) {
	texts := englishTexts()
	if len(texts) < 300 {
		t.Fatalf("only %d texts checked; the generator lost some", len(texts))
	}
	var labels []string
	for name, text := range texts {
		if len(wordText.FindAllString(text, -1)) < minWords {
			labels = append(labels, strings.TrimRight(text, ".")+".")
			continue
		}
		if g := grade(text); g > maxGrade {
			t.Errorf("%s: grade %.1f > %.0f: %q", name, g, maxGrade, text)
		}
	}
	if g := grade(strings.Join(labels, " ")); g > maxGrade {
		t.Errorf("the %d short labels together: grade %.1f > %.0f", len(labels), g, maxGrade)
	}
}
