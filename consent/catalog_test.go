package consent

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestCatalogHasEveryLanguage(t *testing.T) {
	want := slices.Sorted(slices.Values(Languages))
	tests := []struct {
		name  string
		langs []string
	}{
		{"catalog", sortedKeys(catalog)},
		{"records", sortedKeys(records)},
		{"categories", sortedKeys(categories)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.langs, want) {
				t.Errorf("languages %q, want %q (the Languages list)", tt.langs, want)
			}
		})
	}
}

func TestCatalogKeysInEveryLanguage(t *testing.T) {
	tables := []struct {
		name  string
		texts map[string]map[string]string
	}{
		{"catalog", map[string]map[string]string{"en": catalog["en"], "es": catalog["es"]}},
		{"records", records},
		{"categories", categories},
	}
	for _, table := range tables {
		for _, lang := range Languages {
			for _, other := range Languages {
				if lang == other {
					continue
				}
				t.Run(table.name+" "+lang+" keys in "+other, func(t *testing.T) {
					for _, k := range sortedKeys(table.texts[lang]) {
						if _, ok := table.texts[other][k]; !ok {
							t.Errorf("%s: key %q is in %s but not in %s", table.name, k, lang, other)
						}
					}
				})
			}
		}
	}
}

func TestCatalogValuesNotEmpty(t *testing.T) {
	tables := map[string]map[string]map[string]string{
		"catalog":    {"en": catalog["en"], "es": catalog["es"]},
		"records":    records,
		"categories": categories,
	}
	for name, table := range tables {
		for _, lang := range Languages {
			t.Run(name+" "+lang, func(t *testing.T) {
				if len(table[lang]) == 0 {
					t.Fatalf("%s has no texts in %s", name, lang)
				}
				for _, k := range sortedKeys(table[lang]) {
					if strings.TrimSpace(table[lang][k]) == "" {
						t.Errorf("%s[%s][%q] is empty", name, lang, k)
					}
				}
			})
		}
	}
}

// Every translation must take the same arguments as the English text, or
// fmt would print %!s(MISSING) or %!(EXTRA ...) on the page.
func TestCatalogPlaceholdersMatchEnglish(t *testing.T) {
	for _, lang := range Languages {
		if lang == "en" {
			continue
		}
		t.Run(lang, func(t *testing.T) {
			for _, k := range sortedKeys(catalog["en"]) {
				en, tr := catalog["en"][k], catalog[lang][k]
				if got, want := strings.Count(tr, "%"), strings.Count(en, "%"); got != want {
					t.Errorf("%q: %d %% signs in %s %q, want %d as in English %q", k, got, lang, tr, want, en)
				}
			}
		})
	}
}

func TestNewCatalogOverrides(t *testing.T) {
	c, err := NewCatalog(map[string]map[string]string{
		"en": {"page.title": "Share your records?", "record.Observation": "measurements", "page.asks": "%s asks for your records."},
		"es": {"category.laboratory": "análisis"},
	})
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"message replaced", c.Text("en", "page.title"), "Share your records?"},
		{"message with argument replaced", c.Text("en", "page.asks", "My Health"), "My Health asks for your records."},
		{"other language untouched", c.Text("es", "page.title"), catalog["es"]["page.title"]},
		{"record name replaced", c.Text("en", "record.Observation"), "measurements"},
		{"category name replaced", c.Text("es", "category.laboratory"), "análisis"},
		{"built-in record name", c.Text("en", "record.AllergyIntolerance"), records["en"]["AllergyIntolerance"]},
		{"unknown language falls back to English", c.Text("fr", "page.allow"), catalog["en"]["page.allow"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestNewCatalogRejects(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]map[string]string
		message   string
	}{
		{"unknown language",
			map[string]map[string]string{"fr": {"page.title": "Partager ?"}},
			`consent.text: language "fr" is not one of en, es`},
		{"unknown message id",
			map[string]map[string]string{"en": {"page.titel": "Share?"}},
			`consent.text.en: "page.titel" is not a message id`},
		{"placeholder dropped",
			map[string]map[string]string{"en": {"page.asks": "An app wants your records."}},
			`consent.text.en.page.asks: keep exactly 1 %s placeholder(s)`},
		{"placeholder added",
			map[string]map[string]string{"es": {"page.title": "¿%s?"}},
			`consent.text.es.page.title: keep exactly 0 %s placeholder(s)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCatalog(tt.overrides)
			if err == nil {
				t.Fatalf("NewCatalog succeeded, want an error containing %q", tt.message)
			}
			if c != nil {
				t.Error("NewCatalog returned a catalog with an error")
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error = %q, want it to contain %q", err, tt.message)
			}
		})
	}
}

func TestNewCatalogReportsEveryProblem(t *testing.T) {
	_, err := NewCatalog(map[string]map[string]string{
		"fr": {"page.title": "x"},
		"en": {"nope": "x"},
	})
	if err == nil {
		t.Fatal("NewCatalog succeeded, want two problems")
	}
	for _, want := range []string{`language "fr"`, `"nope" is not a message id`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q, want it to contain %q", err, want)
		}
	}
}

func TestCatalogVersion(t *testing.T) {
	builtIn, err := NewCatalog(nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewCatalog(map[string]map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	changed, err := NewCatalog(map[string]map[string]string{"en": {"page.title": "Share your records?"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"same wording same version", builtIn.Version("en"), again.Version("en"), true},
		{"changed wording new version", builtIn.Version("en"), changed.Version("en"), false},
		{"other language keeps version", builtIn.Version("es"), changed.Version("es"), true},
		{"languages differ", builtIn.Version("en"), builtIn.Version("es"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a == "" || tt.b == "" {
				t.Fatalf("empty version: %q, %q", tt.a, tt.b)
			}
			if (tt.a == tt.b) != tt.same {
				t.Errorf("versions %q and %q: same = %v, want %v", tt.a, tt.b, tt.a == tt.b, tt.same)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	tests := []struct {
		name string
		lang string
		id   string
		args []any
		want string
	}{
		{"English", "en", "page.allow", nil, "Allow"},
		{"Spanish", "es", "page.allow", nil, "Permitir"},
		{"with argument", "en", "page.asks", []any{"My Health"}, "My Health wants to use your health records."},
		{"unknown language", "de", "page.deny", nil, "Deny"},
		{"unknown id", "en", "no.such.id", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Message(tt.lang, tt.id, tt.args...); got != tt.want {
				t.Errorf("Message(%q, %q) = %q, want %q", tt.lang, tt.id, got, tt.want)
			}
		})
	}
}
