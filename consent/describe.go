package consent

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/smartgate/smartgate/internal/scope"
)

// Item is one line of the consent page: one requested scope in plain words.
type Item struct {
	Scope  string // the scope exactly as requested; the form posts it back
	Short  string
	Long   string
	Locked bool // the patient cannot uncheck it
}

// Locked reports whether the patient may not uncheck a scope. Launch
// context scopes carry which patient the granted patient/ scopes apply
// to, and openid is the sign-in itself; everything else can be refused.
func Locked(s scope.Scope) bool {
	return s.Kind == scope.KindLaunch || s.Kind == scope.KindOpenID
}

// Describe turns the requested scopes into consent page items in the
// language lang. refreshUntil is the end of persistent access shown for
// offline_access.
func Describe(list scope.List, lang string, refreshUntil time.Time) []Item {
	m := catalogFor(lang)
	items := make([]Item, 0, len(list))
	for _, s := range list {
		short, long := describeOne(m, lang, s, refreshUntil)
		items = append(items, Item{Scope: s.Raw, Short: short, Long: long, Locked: Locked(s)})
	}
	return items
}

func catalogFor(lang string) messages {
	if m, ok := catalog[lang]; ok {
		return m
	}
	return catalog["en"]
}

func describeOne(m messages, lang string, s scope.Scope, until time.Time) (short, long string) {
	switch s.Kind {
	case scope.KindResource:
		return describeResource(m, lang, s)
	case scope.KindOpenID:
		return m["item.openid"], m["item.openid.long"]
	case scope.KindFHIRUser:
		return m["item.fhirUser"], m["item.fhirUser.long"]
	case scope.KindProfile:
		return m["item.profile"], m["item.profile.long"]
	case scope.KindLaunch:
		if t, ok := m["item.launch."+s.Context]; ok {
			return t, m["item.launch.long."+s.Context]
		}
		return m["item.launch"], m["item.launch.long"]
	case scope.KindOfflineAccess:
		return m["item.offline"], fmt.Sprintf(m["item.offline.long"], FormatDate(until, lang))
	case scope.KindOnlineAccess:
		return m["item.online"], m["item.online.long"]
	default:
		return m["item.extension"], m["item.extension.long"]
	}
}

func describeResource(m messages, lang string, s scope.Scope) (short, long string) {
	what := recordName(m, lang, s.Resource)
	if s.Query != "" {
		what += " " + restriction(m, lang, s.Query)
	}
	switch s.Level {
	case scope.LevelUser:
		what = fmt.Sprintf(m["level.user"], what)
	case scope.LevelSystem:
		what = fmt.Sprintf(m["level.system"], what)
	default:
		what = fmt.Sprintf(m["level.patient"], what)
	}
	verbs := verbPhrase(m, s.Perms)
	short = capitalize(verbs + " " + what)
	long = fmt.Sprintf(m["long.resource"], verbs, what)
	if s.Resource == "*" {
		long += " " + m["long.all"]
	}
	if s.Perms&(scope.PermCreate|scope.PermUpdate) != 0 {
		long += " " + m["long.write"]
	}
	return short, long
}

func recordName(m messages, lang, resource string) string {
	if resource == "*" {
		return m["resource.all"]
	}
	if n, ok := records[lang][resource]; ok {
		return n
	}
	return fmt.Sprintf(m["resource.any"], resource)
}

// restriction says in words what a granular query limits the records to.
// A category the catalog knows is named; anything else is described as a
// filter of the app.
func restriction(m messages, lang, query string) string {
	vals, err := url.ParseQuery(query)
	if err != nil || len(vals) != 1 || len(vals["category"]) != 1 {
		return m["restricted.some"]
	}
	code := vals["category"][0]
	if i := strings.LastIndexByte(code, '|'); i >= 0 {
		code = code[i+1:]
	}
	if n, ok := categories[lang][code]; ok {
		return fmt.Sprintf(m["restricted.only"], n)
	}
	return m["restricted.some"]
}

// verbPhrase lists what the permissions allow: "see, add and change".
func verbPhrase(m messages, p scope.Perm) string {
	var verbs []string
	if p&(scope.PermRead|scope.PermSearch) != 0 {
		verbs = append(verbs, m["verb.read"])
	}
	if p&scope.PermCreate != 0 {
		verbs = append(verbs, m["verb.create"])
	}
	if p&scope.PermUpdate != 0 {
		verbs = append(verbs, m["verb.update"])
	}
	if p&scope.PermDelete != 0 {
		verbs = append(verbs, m["verb.delete"])
	}
	if len(verbs) == 1 {
		return verbs[0]
	}
	return strings.Join(verbs[:len(verbs)-1], ", ") + " " + m["verb.and"] + " " + verbs[len(verbs)-1]
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

var monthNames = map[string][12]string{
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
	"es": {"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"},
}

// FormatDate writes a date the way the language does: "3 March 2027",
// "3 de marzo de 2027".
func FormatDate(t time.Time, lang string) string {
	months, ok := monthNames[lang]
	if !ok {
		months = monthNames["en"]
	}
	if lang == "es" {
		return fmt.Sprintf("%d de %s de %d", t.Day(), months[t.Month()-1], t.Year())
	}
	return fmt.Sprintf("%d %s %d", t.Day(), months[t.Month()-1], t.Year())
}

// Decide returns the scopes granted when the patient allows: every
// requested scope except the unchecked ones the patient may refuse.
// Unchecked locked scopes stay granted. The result keeps request order and
// the exact strings of the request.
func Decide(requested scope.List, unchecked map[string]bool) scope.List {
	var granted scope.List
	for _, s := range requested {
		if unchecked[s.Raw] && !Locked(s) {
			continue
		}
		granted = append(granted, s)
	}
	return granted
}

// Message returns the catalog text id in lang, formatted with args.
func Message(lang, id string, args ...any) string {
	t, ok := catalogFor(lang)[id]
	if !ok {
		t = catalog["en"][id]
	}
	if len(args) > 0 {
		return fmt.Sprintf(t, args...)
	}
	return t
}
