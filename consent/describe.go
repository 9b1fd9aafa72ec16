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
// language lang, with the built-in wording. refreshUntil is the end of
// persistent access shown for offline_access.
func Describe(list scope.List, lang string, refreshUntil time.Time) []Item {
	return defaultCatalog.Describe(list, lang, refreshUntil, nil)
}

// Describe turns the requested scopes into items in lang. Scopes that
// required covers are locked, as are those Locked names.
func (c *Catalog) Describe(list scope.List, lang string, refreshUntil time.Time, required scope.List) []Item {
	m := c.lang(lang)
	items := make([]Item, 0, len(list))
	for _, s := range list {
		short, long := describeOne(m, s, lang, refreshUntil)
		items = append(items, Item{Scope: s.Raw, Short: short, Long: long, Locked: Locked(s) || required.Covers(s)})
	}
	return items
}

// Group is a heading of the consent page and the items under it.
type Group struct {
	Title string
	Items []Item
}

// Groups arranges the requested scopes the way a patient reads them:
// records first, grouped by kind of record in request order (all records
// before single kinds), then what the app learns about the user, then how
// long access lasts, then anything else.
func (c *Catalog) Groups(list scope.List, lang string, refreshUntil time.Time, required scope.List) []Group {
	m := c.lang(lang)
	items := c.Describe(list, lang, refreshUntil, required)
	var (
		records []Group
		index   = map[string]int{}
		about   = Group{Title: m["group.about"]}
		launch  = Group{Title: m["group.launch"]}
		when    = Group{Title: m["group.time"]}
		other   = Group{Title: m["group.other"]}
	)
	for i, s := range list {
		switch s.Kind {
		case scope.KindResource:
			key := s.Resource
			j, ok := index[key]
			if !ok {
				j = len(records)
				index[key] = j
				title := capitalize(recordName(m, s.Resource))
				if s.Resource == "*" {
					title = m["group.all"]
				}
				records = append(records, Group{Title: title})
			}
			records[j].Items = append(records[j].Items, items[i])
		case scope.KindOpenID, scope.KindFHIRUser, scope.KindProfile:
			about.Items = append(about.Items, items[i])
		case scope.KindLaunch:
			launch.Items = append(launch.Items, items[i])
		case scope.KindOfflineAccess, scope.KindOnlineAccess:
			when.Items = append(when.Items, items[i])
		default:
			other.Items = append(other.Items, items[i])
		}
	}
	if j, ok := index["*"]; ok && j > 0 {
		all := records[j]
		records = append([]Group{all}, append(records[:j:j], records[j+1:]...)...)
	}
	out := records
	for _, g := range []Group{launch, about, when, other} {
		if len(g.Items) > 0 {
			out = append(out, g)
		}
	}
	return out
}

func describeOne(m messages, s scope.Scope, lang string, until time.Time) (short, long string) {
	switch s.Kind {
	case scope.KindResource:
		return describeResource(m, s)
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

func describeResource(m messages, s scope.Scope) (short, long string) {
	if s.Resource == "*" {
		what := m["all."+string(s.Level)]
		if s.Query != "" {
			what += " " + m["restricted.some"]
		}
		verbs := verbPhrase(m, s.Perms)
		long = fmt.Sprintf(m["long.resource"], verbs, what) + " " + m["long.all"]
		if s.Perms&(scope.PermCreate|scope.PermUpdate) != 0 {
			long += " " + m["long.write"]
		}
		return capitalize(verbs + " " + what), long
	}
	what := recordName(m, s.Resource)
	limited := ""
	if s.Query != "" {
		if name, ok := categoryName(m, s.Query); ok {
			limited = " " + fmt.Sprintf(m["long.limited"], what)
			what = name
		} else {
			what += " " + m["restricted.some"]
		}
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
	long += limited
	if _, known := m["record."+s.Resource]; !known {
		long += " " + fmt.Sprintf(m["long.kind"], s.Resource)
	}
	if s.Perms&(scope.PermCreate|scope.PermUpdate) != 0 {
		long += " " + m["long.write"]
	}
	return short, long
}

func recordName(m messages, resource string) string {
	if resource == "*" {
		return m["all.system"]
	}
	if n, ok := m["record."+resource]; ok {
		return n
	}
	return m["resource.any"]
}

// categoryName names the one category a granular query limits records
// to, when the query is a single category the catalog has a name for.
func categoryName(m messages, query string) (string, bool) {
	vals, err := url.ParseQuery(query)
	if err != nil || len(vals) != 1 || len(vals["category"]) != 1 {
		return "", false
	}
	code := vals["category"][0]
	if i := strings.LastIndexByte(code, '|'); i >= 0 {
		code = code[i+1:]
	}
	n, ok := m["category."+code]
	return n, ok
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

// Message returns the built-in text id in lang, formatted with args.
func Message(lang, id string, args ...any) string { return defaultCatalog.Text(lang, id, args...) }
