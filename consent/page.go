// Package consent is the patient-facing part of smartgate: what scopes
// mean in plain language (English and Spanish), the consent page and the
// decision taken on it, consent records and the remembered-consent rule,
// the patient's /apps page, and the error page shown in the browser.
//
// It renders and decides; it does not read requests or redirect. Package
// proxy owns the routes (/consent, /apps, /static/) and calls in here.
// Templates and styles are embedded and parsed at startup.
package consent

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/smartgate/smartgate/internal/scope"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Branding is the hospital's look, from the configuration.
type Branding struct {
	HospitalName string
	LogoURL      string
	AccentColor  string
}

// Pages renders the patient-facing pages.
type Pages struct {
	consent *template.Template
	apps    *template.Template
	picker  *template.Template
	errors  *template.Template
	text    *Catalog
	brand   Branding
	static  string // URL path of the static files, without a trailing slash
}

// NewPages parses the embedded templates. staticPath is where the router
// serves Static(); text is the catalog with the operator's overrides.
func NewPages(brand Branding, staticPath string, text *Catalog) (*Pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		return t, nil
	}
	if text == nil {
		text = defaultCatalog
	}
	p := &Pages{text: text, brand: brand, static: strings.TrimSuffix(staticPath, "/")}
	var err error
	if p.consent, err = parse("consent.html"); err != nil {
		return nil, err
	}
	if p.apps, err = parse("apps.html"); err != nil {
		return nil, err
	}
	if p.picker, err = parse("picker.html"); err != nil {
		return nil, err
	}
	if p.errors, err = parse("error.html"); err != nil {
		return nil, err
	}
	return p, nil
}

// Catalog returns the text catalog the pages use.
func (p *Pages) Catalog() *Catalog { return p.text }

// Static serves the style sheets: consent.css from the embedded files and
// theme.css made from the hospital's accent colour.
func (p *Pages) Static() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.FileServer(http.FS(sub))
	theme := []byte(":root{}\n")
	if p.brand.AccentColor != "" {
		theme = []byte(":root{--accent:" + p.brand.AccentColor + ";}\n")
	}
	return http.StripPrefix(p.static, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		if r.URL.Path == "/theme.css" {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			_, _ = w.Write(theme)
			return
		}
		files.ServeHTTP(w, r)
	}))
}

var matcher = language.NewMatcher([]language.Tag{language.English, language.Spanish})

// Languages lists the supported languages, in the order shown on pages.
var Languages = []string{"en", "es"}

// Language picks the page language: an explicit choice (the lang query or
// form parameter) wins, then Accept-Language, then English.
func Language(r *http.Request) string {
	if l := r.FormValue("lang"); l != "" {
		for _, s := range Languages {
			if s == l {
				return l
			}
		}
	}
	tags, _, _ := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	_, i, _ := matcher.Match(tags...)
	return Languages[i]
}

type languageLink struct {
	Code, Name, URL string
	Current         bool
}

// languageLinks points the language switch at the same page in each language.
func (p *Pages) languageLinks(current string, page *url.URL) []languageLink {
	var out []languageLink
	for _, l := range Languages {
		u := *page
		q := u.Query()
		q.Set("lang", l)
		u.RawQuery = q.Encode()
		out = append(out, languageLink{Code: l, Name: p.text.Text(l, "lang.name"), URL: u.RequestURI(), Current: l == current})
	}
	return out
}

type brandLine struct {
	LogoURL string
	Line    string
}

type common struct {
	Lang      string
	Title     string
	Text      messages
	Brand     brandLine
	Languages []languageLink
	Static    string
}

func (p *Pages) brandLine(lang string) brandLine {
	b := brandLine{LogoURL: p.brand.LogoURL}
	if p.brand.HospitalName != "" {
		b.Line = p.text.Text(lang, "page.hospital", p.brand.HospitalName)
	}
	return b
}

func (p *Pages) common(lang, titleID string, page *url.URL) common {
	if page == nil {
		page = &url.URL{Path: "/"}
	}
	return common{
		Lang:      lang,
		Title:     p.text.Text(lang, titleID),
		Text:      p.text.lang(lang),
		Brand:     p.brandLine(lang),
		Languages: p.languageLinks(lang, page),
		Static:    p.static,
	}
}

// App is the description of an app that the patient is shown.
type App struct {
	Name, LogoURL, Publisher, HomePage, PrivacyPolicyURL, TermsURL string
	Reviewed                                                       bool
}

// ConsentView is the content of the consent page.
type ConsentView struct {
	App          App
	PatientName  string
	Requested    scope.List
	Required     scope.List // scopes the app marked as required
	RefreshUntil time.Time  // end of persistent access; zero when none is asked
	Action       string     // form action URL
	RequestID    string
	CSRF         string
	Page         *url.URL // this page, for the language links
}

type consentData struct {
	common
	App                 App
	Asks, For, Duration string
	Publisher           string
	Groups              []viewGroup
	Action              string
	RequestID, CSRF     string
}

type viewGroup struct {
	Title string
	Items []viewItem
}

type viewItem struct {
	Item
	ID        string
	Technical string
}

// RenderConsent renders the consent page in lang into a buffer, so that a
// template failure never leaves half a page.
func (p *Pages) RenderConsent(lang string, v ConsentView) ([]byte, error) {
	d := consentData{
		common:    p.common(lang, "page.title", v.Page),
		App:       v.App,
		Asks:      p.text.Text(lang, "page.asks", v.App.Name),
		Action:    v.Action,
		RequestID: v.RequestID,
		CSRF:      v.CSRF,
		Duration:  p.text.Text(lang, "page.once"),
	}
	if v.App.Publisher != "" {
		d.Publisher = p.text.Text(lang, "app.by", v.App.Publisher)
	}
	if v.PatientName != "" {
		d.For = p.text.Text(lang, "page.for", v.PatientName)
	}
	switch {
	case v.Requested.Has(scope.KindOfflineAccess) && !v.RefreshUntil.IsZero():
		d.Duration = p.text.Text(lang, "page.until", FormatDate(v.RefreshUntil, lang))
	case v.Requested.Has(scope.KindOnlineAccess):
		d.Duration = p.text.Text(lang, "page.online")
	}
	n := 0
	for _, g := range p.text.Groups(v.Requested, lang, v.RefreshUntil, v.Required) {
		vg := viewGroup{Title: g.Title}
		for _, it := range g.Items {
			vg.Items = append(vg.Items, viewItem{Item: it, ID: fmt.Sprintf("s%d", n),
				Technical: p.text.Text(lang, "page.scope_name", it.Scope)})
			n++
		}
		d.Groups = append(d.Groups, vg)
	}
	var buf bytes.Buffer
	if err := p.consent.ExecuteTemplate(&buf, "consent.html", d); err != nil {
		return nil, fmt.Errorf("render consent page: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrorView is the content of the error page. MessageID is a catalog id.
type ErrorView struct {
	TitleID   string // catalog id of the heading; "" for the generic error title
	MessageID string
	RequestID string
	ReturnURL string // a link back to the app, only to a verified redirect URI
	Page      *url.URL
}

type errorData struct {
	common
	Message, RequestID, RequestIDText, ReturnURL string
}

// RenderError renders the error page in lang.
func (p *Pages) RenderError(lang string, v ErrorView) ([]byte, error) {
	title := v.TitleID
	if title == "" {
		title = "error.title"
	}
	d := errorData{
		common:        p.common(lang, title, v.Page),
		Message:       p.text.Text(lang, v.MessageID),
		RequestID:     v.RequestID,
		RequestIDText: p.text.Text(lang, "error.request_id", v.RequestID),
		ReturnURL:     v.ReturnURL,
	}
	if d.Message == "" {
		d.Message = p.text.Text(lang, "error.internal")
	}
	var buf bytes.Buffer
	if err := p.errors.ExecuteTemplate(&buf, "error.html", d); err != nil {
		return nil, fmt.Errorf("render error page: %w", err)
	}
	return buf.Bytes(), nil
}
