// Package consent is the patient-facing part of smartgate: what scopes
// mean in plain language (English and Spanish), the consent page and the
// decision taken on it, and the error page shown in the browser.
//
// It renders and decides; it does not read requests, store records or
// redirect. Package proxy owns the routes (/consent, /static/) and calls
// in here. Templates and styles are embedded and parsed at startup.
package consent

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
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

// Pages renders the consent and error pages.
type Pages struct {
	consent *template.Template
	errors  *template.Template
	brand   Branding
	static  string // URL path of the static files
}

// NewPages parses the embedded templates. staticPath is where the router
// serves Static().
func NewPages(brand Branding, staticPath string) (*Pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		return t, nil
	}
	c, err := parse("consent.html")
	if err != nil {
		return nil, err
	}
	e, err := parse("error.html")
	if err != nil {
		return nil, err
	}
	return &Pages{consent: c, errors: e, brand: brand, static: staticPath}, nil
}

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
func languageLinks(current string, page *url.URL) []languageLink {
	var out []languageLink
	for _, l := range Languages {
		u := *page
		q := u.Query()
		q.Set("lang", l)
		u.RawQuery = q.Encode()
		out = append(out, languageLink{Code: l, Name: catalog[l]["lang.name"], URL: u.RequestURI(), Current: l == current})
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

func (p *Pages) common(lang, titleID string, page *url.URL) common {
	m := catalogFor(lang)
	return common{
		Lang:      lang,
		Title:     m[titleID],
		Text:      m,
		Brand:     brandLine{LogoURL: p.brand.LogoURL, Line: fmt.Sprintf(m["page.hospital"], p.brand.HospitalName)},
		Languages: languageLinks(lang, page),
		Static:    p.static,
	}
}

// ConsentView is what the consent page shows.
type ConsentView struct {
	AppName      string
	PatientName  string
	Requested    scope.List
	RefreshUntil time.Time // end of persistent access; zero when none is asked
	Action       string    // form action URL
	RequestID    string
	CSRF         string
	Page         *url.URL // this page, for the language links
}

type consentData struct {
	common
	Asks, For, Duration string
	Unreviewed          bool
	Items               []viewItem
	Action              string
	RequestID, CSRF     string
}

type viewItem struct {
	Item
	Technical string
}

// RenderConsent renders the consent page in lang into a buffer, so that a
// template failure never leaves half a page.
func (p *Pages) RenderConsent(lang string, v ConsentView) ([]byte, error) {
	m := catalogFor(lang)
	d := consentData{
		common:    p.common(lang, "page.title", v.Page),
		Asks:      fmt.Sprintf(m["page.asks"], v.AppName),
		Action:    v.Action,
		RequestID: v.RequestID,
		CSRF:      v.CSRF,
		Duration:  m["page.once"],
	}
	if v.PatientName != "" {
		d.For = fmt.Sprintf(m["page.for"], v.PatientName)
	}
	if v.Requested.Has(scope.KindOfflineAccess) && !v.RefreshUntil.IsZero() {
		d.Duration = fmt.Sprintf(m["page.until"], FormatDate(v.RefreshUntil, lang))
	}
	for _, it := range Describe(v.Requested, lang, v.RefreshUntil) {
		d.Items = append(d.Items, viewItem{Item: it, Technical: fmt.Sprintf(m["page.scope_name"], it.Scope)})
	}
	var buf bytes.Buffer
	if err := p.consent.ExecuteTemplate(&buf, "consent.html", d); err != nil {
		return nil, fmt.Errorf("render consent page: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrorView is what the error page shows. MessageID is a catalog id.
type ErrorView struct {
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
	m := catalogFor(lang)
	page := v.Page
	if page == nil {
		page = &url.URL{Path: "/"}
	}
	d := errorData{
		common:        p.common(lang, "error.title", page),
		Message:       m[v.MessageID],
		RequestID:     v.RequestID,
		RequestIDText: fmt.Sprintf(m["error.request_id"], v.RequestID),
		ReturnURL:     v.ReturnURL,
	}
	if d.Message == "" {
		d.Message = m["error.internal"]
	}
	var buf bytes.Buffer
	if err := p.errors.ExecuteTemplate(&buf, "error.html", d); err != nil {
		return nil, fmt.Errorf("render error page: %w", err)
	}
	return buf.Bytes(), nil
}
