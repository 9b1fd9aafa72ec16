package consent

import (
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

func TestLanguage(t *testing.T) {
	tests := []struct {
		name           string
		target         string
		acceptLanguage string
		want           string
	}{
		{"no preference", "/consent", "", "en"},
		{"lang parameter", "/consent?lang=es", "", "es"},
		{"lang parameter wins over header", "/consent?lang=en", "es-MX,es;q=0.9", "en"},
		{"Spanish of Mexico", "/consent", "es-MX,es;q=0.9", "es"},
		{"plain Spanish", "/consent", "es", "es"},
		{"Spanish preferred over English", "/consent", "es;q=0.9,en;q=0.8", "es"},
		{"English preferred over Spanish", "/consent", "en-GB,es;q=0.5", "en"},
		{"unknown language", "/consent", "fr-FR,fr;q=0.9", "en"},
		{"malformed header", "/consent", ";;;q=abc", "en"},
		{"unknown lang parameter falls back to header", "/consent?lang=fr", "es", "es"},
		{"unknown lang parameter without header", "/consent?lang=fr", "", "en"},
		{"lang parameter is case-sensitive", "/consent?lang=ES", "", "en"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.acceptLanguage != "" {
				r.Header.Set("Accept-Language", tt.acceptLanguage)
			}
			if got := Language(r); got != tt.want {
				t.Errorf("Language = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLanguageFromForm(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/consent", strings.NewReader("lang=es&decision=allow"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept-Language", "en")
	if got := Language(r); got != "es" {
		t.Errorf("Language = %q, want es from the form", got)
	}
}

func newTestPages(t *testing.T) *Pages {
	t.Helper()
	p, err := NewPages(Branding{HospitalName: "General Hospital", AccentColor: "#005ea2"}, "/static", nil)
	if err != nil {
		t.Fatalf("NewPages: %v", err)
	}
	return p
}

// input is one <input> element of a rendered page, with its attributes
// unescaped.
type input map[string]string

var (
	inputTag  = regexp.MustCompile(`<input\b[^>]*>`)
	attribute = regexp.MustCompile(`([a-zA-Z-]+)(?:="([^"]*)")?`)
)

func checkboxes(page string) []input {
	var out []input
	for _, tag := range inputTag.FindAllString(page, -1) {
		in := input{}
		for _, m := range attribute.FindAllStringSubmatch(strings.TrimPrefix(tag, "<input"), -1) {
			in[m[1]] = html.UnescapeString(m[2])
		}
		if in["type"] == "checkbox" {
			out = append(out, in)
		}
	}
	return out
}

func TestRenderConsent(t *testing.T) {
	pages := newTestPages(t)
	const appName = "<script>alert(1)</script>"
	requested := mustParseList(t, "launch/patient openid fhirUser patient/Observation.rs "+labScope+" offline_access")
	// The required granular scope locks itself but not the wider
	// patient/Observation.rs, which it does not cover.
	required := mustParseList(t, labScope)
	locked := map[string]bool{"launch/patient": true, "openid": true, labScope: true}

	tests := []struct {
		lang     string
		title    string
		duration string
	}{
		{"en", "Allow access to your health records?", "until 3 March 2027"},
		{"es", "¿Permitir el acceso a sus registros de salud?", "hasta el 3 de marzo de 2027"},
	}
	for _, tt := range tests {
		t.Run(tt.lang, func(t *testing.T) {
			body, err := pages.RenderConsent(tt.lang, ConsentView{
				App:          App{Name: appName, Publisher: "Example Apps"},
				PatientName:  "Ana <b>Garcia</b>",
				Requested:    requested,
				Required:     required,
				RefreshUntil: refreshUntil,
				Action:       "/consent",
				RequestID:    "req-1",
				CSRF:         "csrf-token",
				Page:         &url.URL{Path: "/consent", RawQuery: "request=req-1"},
			})
			if err != nil {
				t.Fatalf("RenderConsent: %v", err)
			}
			page := string(body)

			if !strings.Contains(page, `<html lang="`+tt.lang+`">`) {
				t.Errorf("page does not start <html lang=%q>", tt.lang)
			}
			if !strings.Contains(page, "<title>"+tt.title+"</title>") {
				t.Errorf("page has no title %q", tt.title)
			}
			if strings.Contains(page, appName) || strings.Contains(page, "<b>Garcia</b>") {
				t.Error("page contains the app or patient name unescaped")
			}
			if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Error("page does not show the escaped app name")
			}
			if !strings.Contains(page, tt.duration) {
				t.Errorf("page does not say how long access lasts (%q)", tt.duration)
			}
			for _, hidden := range []string{`name="request" value="req-1"`, `name="csrf" value="csrf-token"`, `name="lang" value="` + tt.lang + `"`} {
				if !strings.Contains(page, hidden) {
					t.Errorf("page has no hidden field %s", hidden)
				}
			}

			boxes := checkboxes(page)
			if len(boxes) != len(requested) {
				t.Fatalf("got %d checkboxes, want one per requested scope (%d)", len(boxes), len(requested))
			}
			posted := map[string]bool{}
			disabled := 0
			for _, b := range boxes {
				if _, ok := b["checked"]; !ok {
					t.Errorf("checkbox %q is not checked", b["id"])
				}
				if _, ok := b["disabled"]; ok {
					disabled++
					if b["name"] != "" {
						t.Errorf("disabled checkbox %q posts as %q", b["id"], b["name"])
					}
					continue
				}
				if b["name"] != "scope" {
					t.Errorf("checkbox %q has name %q, want scope", b["id"], b["name"])
				}
				posted[b["value"]] = true
			}
			if disabled != len(locked) {
				t.Errorf("got %d disabled checkboxes, want %d", disabled, len(locked))
			}
			for _, s := range requested {
				if posted[s.Raw] == locked[s.Raw] {
					t.Errorf("scope %q: checkbox posted = %v, want %v", s.Raw, posted[s.Raw], !locked[s.Raw])
				}
			}
		})
	}
}

func TestRenderConsentWithoutPage(t *testing.T) {
	pages := newTestPages(t)
	body, err := pages.RenderConsent("en", ConsentView{App: App{Name: "My Health"}, Requested: mustParseList(t, "openid")})
	if err != nil {
		t.Fatalf("RenderConsent: %v", err)
	}
	if !strings.Contains(string(body), `href="/?lang=es"`) {
		t.Error("language link without a page does not point at /")
	}
}

func TestRenderError(t *testing.T) {
	pages := newTestPages(t)
	tests := []struct {
		name      string
		lang      string
		view      ErrorView
		want      []string
		forbidden []string
	}{
		{"English with return link", "en",
			ErrorView{MessageID: "error.expired", RequestID: "rid-1", ReturnURL: "https://app.example.org/cb?error=access_denied&state=x",
				Page: &url.URL{Path: "/authorize"}},
			[]string{`<html lang="en">`, "This sign-in took too long", "give this number: rid-1",
				`href="https://app.example.org/cb?error=access_denied&amp;state=x"`, "Return to the app"},
			[]string{"You can close this page"}},
		{"Spanish without return link", "es",
			ErrorView{MessageID: "error.invalid_redirect", RequestID: "rid-2"},
			[]string{`<html lang="es">`, "dirección web no registrada", "dé este número: rid-2", "Puede cerrar esta página"},
			[]string{"Volver a la aplicación"}},
		{"unknown message id", "en",
			ErrorView{MessageID: "error.no_such_thing"},
			[]string{"We could not finish your request."},
			[]string{"give this number"}},
		{"request id escaped", "en",
			ErrorView{MessageID: "error.internal", RequestID: "<script>alert(1)</script>"},
			[]string{"&lt;script&gt;alert(1)&lt;/script&gt;"},
			[]string{"<script>alert(1)</script>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := pages.RenderError(tt.lang, tt.view)
			if err != nil {
				t.Fatalf("RenderError: %v", err)
			}
			page := string(body)
			for _, w := range tt.want {
				if !strings.Contains(page, w) {
					t.Errorf("page does not contain %q", w)
				}
			}
			for _, f := range tt.forbidden {
				if strings.Contains(page, f) {
					t.Errorf("page contains %q", f)
				}
			}
		})
	}
}

func TestStaticServesThemeAndStyles(t *testing.T) {
	pages, err := NewPages(Branding{AccentColor: "#123456"}, "/base/static/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/base/static/theme.css", "--accent:#123456"},
		{"/base/static/consent.css", ".buttons"},
	} {
		rec := httptest.NewRecorder()
		pages.Static().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") ||
			!strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("GET %s: %d %q, body lacks %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.want)
		}
	}
	body, err := pages.RenderError("en", ErrorView{MessageID: "error.internal"})
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{`href="/base/static/consent.css"`, `href="/base/static/theme.css"`} {
		if !strings.Contains(string(body), link) {
			t.Errorf("page lacks %s", link)
		}
	}
}
