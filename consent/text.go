package consent

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Catalog is the patient-facing text in every language: the built-in
// messages, record names ("record.<ResourceType>") and category names
// ("category.<code>"), with the operator's overrides on top. It is
// read-only after NewCatalog.
type Catalog struct {
	texts    map[string]messages
	versions map[string]string
}

// NewCatalog builds the catalog. overrides maps a language to message ids
// and their replacement text; an unknown language or id is an error, so a
// typo in the configuration cannot pass unnoticed.
func NewCatalog(overrides map[string]map[string]string) (*Catalog, error) {
	c := &Catalog{texts: map[string]messages{}, versions: map[string]string{}}
	for _, lang := range Languages {
		m := messages{}
		for k, v := range catalog[lang] {
			m[k] = v
		}
		for k, v := range records[lang] {
			m["record."+k] = v
		}
		for k, v := range categories[lang] {
			m["category."+k] = v
		}
		c.texts[lang] = m
	}
	var problems []string
	for lang, texts := range overrides {
		m, ok := c.texts[lang]
		if !ok {
			problems = append(problems, fmt.Sprintf("consent.text: language %q is not one of %s", lang, strings.Join(Languages, ", ")))
			continue
		}
		for id, text := range texts {
			old, ok := m[id]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("consent.text.%s: %q is not a message id", lang, id))
			case strings.Count(old, "%s") != strings.Count(text, "%s"):
				problems = append(problems, fmt.Sprintf("consent.text.%s.%s: keep exactly %d %%s placeholder(s) of the original %q",
					lang, id, strings.Count(old, "%s"), old))
			default:
				m[id] = text
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	for lang, m := range c.texts {
		c.versions[lang] = version(m)
	}
	return c, nil
}

// version fingerprints a language's wording, so that a consent record can
// name the wording the patient saw.
func version(m messages) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, m[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// defaultCatalog has no overrides.
var defaultCatalog = func() *Catalog {
	c, err := NewCatalog(nil)
	if err != nil {
		panic(err) // the built-in catalog is checked by tests
	}
	return c
}()

func (c *Catalog) lang(lang string) messages {
	if m, ok := c.texts[lang]; ok {
		return m
	}
	return c.texts["en"]
}

// Text returns message id in lang, formatted with args.
func (c *Catalog) Text(lang, id string, args ...any) string {
	t, ok := c.lang(lang)[id]
	if !ok {
		t = c.texts["en"][id]
	}
	if len(args) > 0 {
		return fmt.Sprintf(t, args...)
	}
	return t
}

// Version returns the fingerprint of the wording in lang.
func (c *Catalog) Version(lang string) string { return c.versions[lang] }
