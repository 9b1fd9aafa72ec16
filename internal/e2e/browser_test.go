package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	_ "image/png" // registers the PNG decoder for image.DecodeConfig
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/chrome"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// updateScreenshots writes the consent page screenshots into the
// repository, for example:
//
//	go test ./internal/e2e -run BrowserScreenshots -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false,
	"write the patient page screenshots to docs/screenshots/<page>-<lang>-<width>.png at the repository root")

// Chromium is shared by the tests of the package like the services in
// env_test.go, and stopped with them. Each test opens its own tab in its
// own browser context, so no cookies carry over between tests.
var (
	chromeOnce sync.Once
	chromium   *chrome.Browser
)

func sharedChrome(t *testing.T) *chrome.Browser {
	t.Helper()
	chromeOnce.Do(func() { chromium = chrome.Start(t, &services) })
	if chromium == nil {
		t.Fatal("Chromium failed to start (see the first failing browser test)")
	}
	return chromium
}

const (
	// browserScopes are the scopes that the browser launches request. The
	// patient unchecks browserUnchecked on the consent page.
	browserScopes    = "openid fhirUser profile launch/patient offline_access patient/Patient.rs patient/Observation.rs patient/AllergyIntolerance.rs"
	browserUnchecked = "patient/Observation.rs"

	maxTabs         = 40 // Tab presses allowed to reach an element of the consent page
	redirectTimeout = 15 * time.Second
)

// redirectCatcher is the app's side of a launch: a server on a loopback
// port that records the query of each request to /callback.
type redirectCatcher struct {
	RedirectURI string
	queries     chan url.Values
}

func startRedirectCatcher(t *testing.T) *redirectCatcher {
	t.Helper()
	c := &redirectCatcher{queries: make(chan url.Values, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case c.queries <- r.URL.Query():
		default: // the test reads only the first redirect
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>Test app</title><p id="arrived">Back at the app</p></html>`)
	}))
	t.Cleanup(srv.Close)
	c.RedirectURI = srv.URL + "/callback"
	return c
}

// wait returns the query of the first redirect to the app.
func (c *redirectCatcher) wait(t *testing.T, p *chrome.Page) url.Values {
	t.Helper()
	select {
	case q := <-c.queries:
		return q
	case <-time.After(redirectTimeout):
		t.Fatalf("the browser did not reach %s within %v; it is at %s\nconsole:\n%s",
			c.RedirectURI, redirectTimeout, p.Location(), strings.Join(p.Console(), "\n"))
		return nil
	}
}

// openConsentPage opens the authorization request of l in a new tab, logs
// in at the upstream provider's form by typing, and returns the tab on the
// consent page.
func openConsentPage(t *testing.T, e *environment, l *launch) *chrome.Page {
	t.Helper()
	disc := discover(t, e.fhirBase)
	p := sharedChrome(t).NewPage(t)
	p.Navigate(disc.AuthorizationEndpoint + "?" + l.params().Encode())
	logInInBrowser(t, p, e)
	return p
}

// logInInBrowser types the patient's user name and password into the
// upstream provider's login form, submits it, and waits for the consent
// page.
func logInInBrowser(t *testing.T, p *chrome.Page, e *environment) {
	t.Helper()
	p.WaitVisible(`input[name=login]`)
	if at := p.Location(); !strings.HasPrefix(at, e.upstream.Issuer) {
		t.Fatalf("expected the upstream login page under %s, the browser is at %s", e.upstream.Issuer, at)
	}
	p.SendKeys(`input[name=login]`, testenv.PatientUser)
	p.SendKeys(`input[name=password]`, testenv.PatientPassword)
	p.Click(`button[type=submit]`)
	p.WaitVisible(`form#consent`)
}

// scopeBox is the CSS selector of the consent page checkbox of one scope.
func scopeBox(scope string) string {
	return `form#consent input[type=checkbox][name=scope][value="` + scope + `"]`
}

// uncheckByLabel clicks the label of a scope's checkbox with the mouse.
func uncheckByLabel(t *testing.T, p *chrome.Page, scope string) {
	t.Helper()
	box := scopeBox(scope)
	id, ok := p.Attribute(box, "id")
	if !ok || id == "" {
		t.Fatalf("the checkbox of %s has no id, so no label can point at it", scope)
	}
	if !chrome.Property[bool](p, box, "checked") {
		t.Fatalf("the checkbox of %s is not checked when the page opens", scope)
	}
	p.Click(`label[for="` + id + `"]`)
	if chrome.Property[bool](p, box, "checked") {
		t.Fatalf("clicking the label of %s left its checkbox checked", scope)
	}
}

// checkRedirect checks that the redirect to the app after Allow carries
// the launch's state and a code, and returns the code.
func checkRedirect(t *testing.T, q url.Values, l *launch) string {
	t.Helper()
	if q.Get("error") != "" {
		t.Fatalf("redirect to the app carries error=%q (%s), want a code", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != l.State {
		t.Errorf("state = %q, want %q", q.Get("state"), l.State)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatalf("redirect to the app has no code: %v", q)
	}
	return code
}

// exchangeCode redeems a code of the public client l at the token endpoint.
func exchangeCode(t *testing.T, e *environment, l *launch, code string) *tokenResult {
	t.Helper()
	tok := postToken(t, discover(t, e.fhirBase).TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {l.RedirectURI},
		"code_verifier": {l.Verifier}, "client_id": {l.ClientID},
	}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %s: %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	return tok
}

// checkGranted checks that granted contains every requested scope except
// unchecked, and nothing else.
func checkGranted(t *testing.T, granted, requested, unchecked string) {
	t.Helper()
	got := strings.Fields(granted)
	want := strings.Fields(requested)
	if contains(got, unchecked) {
		t.Errorf("granted scope %q contains %s, which the patient unchecked", granted, unchecked)
	}
	for _, s := range want {
		if s != unchecked && !contains(got, s) {
			t.Errorf("granted scope %q lacks %s, which the patient left checked", granted, s)
		}
	}
	for _, s := range got {
		if !contains(want, s) {
			t.Errorf("granted scope %q contains %s, which the app did not request", granted, s)
		}
	}
}

func TestBrowserStandaloneLaunch(t *testing.T) {
	e := shared(t)
	app := startRedirectCatcher(t)
	l := newLaunch(e, gatewaytest.PublicClient, app.RedirectURI, browserScopes)
	p := openConsentPage(t, e, l)

	uncheckByLabel(t, p, browserUnchecked)
	p.Click(`button#allow`)
	code := checkRedirect(t, app.wait(t, p), l)
	p.WaitVisible(`#arrived`)

	tok := exchangeCode(t, e, l, code)
	checkGranted(t, tok.Scope, browserScopes, browserUnchecked)
	if tok.Patient != testenv.PatientID {
		t.Errorf("patient = %q, want %q", tok.Patient, testenv.PatientID)
	}
}

// tabTo presses Tab until the focused element matches want.
func tabTo(t *testing.T, p *chrome.Page, what string, want func(chrome.Element) bool) {
	t.Helper()
	var visited []string
	for range maxTabs {
		p.Press(chrome.Tab)
		f := p.Focused()
		if want(f) {
			return
		}
		visited = append(visited, f.String())
	}
	t.Fatalf("%d Tab presses did not reach %s; focus visited:\n%s", maxTabs, what, strings.Join(visited, "\n"))
}

func TestBrowserConsentKeyboardOnly(t *testing.T) {
	e := shared(t)
	app := startRedirectCatcher(t)
	l := newLaunch(e, gatewaytest.PublicClient, app.RedirectURI, browserScopes)
	p := openConsentPage(t, e, l)

	tabTo(t, p, "the checkbox of "+browserUnchecked, func(f chrome.Element) bool {
		return f.Tag == "input" && f.Name == "scope" && f.Value == browserUnchecked
	})
	p.Press(chrome.Space)
	if f := p.Focused(); f.Checked {
		t.Fatalf("Space on the focused checkbox of %s left it checked", browserUnchecked)
	}

	isAllow := func(f chrome.Element) bool { return f.Tag == "button" && f.ID == "allow" }
	tabTo(t, p, "button#allow", isAllow)
	p.Press(chrome.Tab)
	p.Press(chrome.Tab, chrome.Shift)
	if f := p.Focused(); !isAllow(f) {
		t.Fatalf("Shift+Tab after Tab from button#allow focused %s, want button#allow", f)
	}
	if chrome.Property[bool](p, scopeBox(browserUnchecked), "checked") {
		t.Fatalf("the checkbox of %s is checked again after moving the focus", browserUnchecked)
	}
	p.Press(chrome.Enter)
	code := checkRedirect(t, app.wait(t, p), l)

	tok := exchangeCode(t, e, l, code)
	checkGranted(t, tok.Scope, browserScopes, browserUnchecked)
	if tok.Patient != testenv.PatientID {
		t.Errorf("patient = %q, want %q", tok.Patient, testenv.PatientID)
	}
}

var (
	consentLanguages = []string{"en", "es"}
	consentWidths    = []int{1280, 360} // CSS pixels: a laptop and a small phone
)

// showLanguage switches a patient page to lang with its language link,
// unless the page is in lang already, and waits for ready, a selector of
// the page's main content.
func showLanguage(t *testing.T, p *chrome.Page, lang, ready string) {
	t.Helper()
	if current, _ := p.Attribute(`html`, "lang"); current != lang {
		p.Click(`nav.langs a[hreflang=` + lang + `]`)
		p.WaitVisible(`html[lang=` + lang + `] ` + ready)
	}
	p.WaitLoaded()
	if got, _ := p.Attribute(`html`, "lang"); got != lang {
		t.Fatalf("<html lang> = %q after switching to %s", got, lang)
	}
}

func TestBrowserConsentAccessibility(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, browserScopes)
	checkAxe(t, openConsentPage(t, e, l), "consent page", "form#consent")
}

func TestBrowserAppsPageAccessibility(t *testing.T) {
	checkAxe(t, openAppsPage(t, shared(t)), "/apps page", "ul.apps")
}

// checkAxe runs axe-core on a patient page in every language at every
// width and reports each WCAG 2.1 A/AA violation.
func checkAxe(t *testing.T, p *chrome.Page, page, ready string) {
	t.Helper()
	for _, lang := range consentLanguages {
		showLanguage(t, p, lang, ready)
		for _, width := range consentWidths {
			p.SetViewport(width, 800)
			violations := p.Axe()
			if len(violations) == 0 {
				continue
			}
			lines := make([]string, len(violations))
			for i, v := range violations {
				lines[i] = "  " + v.String()
			}
			t.Errorf("%s in %s at %d px: axe-core found %d WCAG 2.1 A/AA violations:\n%s",
				page, lang, width, len(violations), strings.Join(lines, "\n"))
		}
	}
}

// openAppsPage gives the patient an app with persistent access, then
// opens /apps in the same browser tab, where the upstream session signs
// the patient in without a form.
func openAppsPage(t *testing.T, e *environment) *chrome.Page {
	t.Helper()
	app := startRedirectCatcher(t)
	l := newLaunch(e, gatewaytest.PublicClient, app.RedirectURI, browserScopes)
	p := openConsentPage(t, e, l)
	p.Click(`button#allow`)
	exchangeCode(t, e, l, checkRedirect(t, app.wait(t, p), l))
	p.Navigate(e.gw.URL + "/apps")
	p.WaitVisible(`ul.apps li.appcard`)
	return p
}

func TestBrowserScreenshots(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, browserScopes)
	checkScreenshots(t, openConsentPage(t, e, l), "consent", "form#consent")
	checkScreenshots(t, openAppsPage(t, e), "apps", "ul.apps")
}

// checkScreenshots takes full-page screenshots of a patient page in every
// language at every width, checks that the page fits the width, and with
// -update-screenshots writes them to docs/screenshots/<name>-<lang>-<width>.png.
func checkScreenshots(t *testing.T, p *chrome.Page, name, ready string) {
	t.Helper()
	dir := filepath.Join("..", "..", "docs", "screenshots") // tests run in their package's folder
	for _, lang := range consentLanguages {
		showLanguage(t, p, lang, ready)
		for _, width := range consentWidths {
			shot := p.Screenshot(width)
			cfg, format, err := image.DecodeConfig(bytes.NewReader(shot))
			if err != nil || format != "png" {
				t.Errorf("%s screenshot in %s at %d px: not a PNG image (format %q, %v)", name, lang, width, format, err)
				continue
			}
			if cfg.Width != width {
				t.Errorf("%s screenshot in %s at %d px is %d px wide: the page overflows the viewport sideways",
					name, lang, width, cfg.Width)
			}
			if cfg.Height == 0 {
				t.Errorf("%s screenshot in %s at %d px is empty", name, lang, width)
			}
			if !*updateScreenshots {
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.png", name, lang, width))
			if err := os.WriteFile(file, shot, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%dx%d)", file, cfg.Width, cfg.Height)
		}
	}
}

// startFHIRClientApp serves a SMART app that runs fhirclient's browser
// bundle in the page, and returns its base URL. Its /launch.html starts
// the launch with FHIR.oauth2.authorize. Its /callback finishes it with
// FHIR.oauth2.ready() and writes the result as JSON into pre#result, then
// sets data-done.
func startFHIRClientApp(t *testing.T, iss, scope string) string {
	t.Helper()
	bundle := filepath.Join(testenv.NodeDir(t), "node_modules", "fhirclient", "build", "fhir-client.js")
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("fhirclient's browser bundle is missing (%v); run: (cd %s && npm ci)", err, testenv.NodeDir(t))
	}
	// json.Marshal escapes <, > and &, so the options are safe inside a
	// script element.
	options, err := json.Marshal(map[string]string{
		"iss": iss, "clientId": gatewaytest.PublicClient, "scope": scope, "redirectUri": "/callback",
	})
	if err != nil {
		t.Fatal(err)
	}
	launchPage := `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Test SMART app</title><script src="/fhir-client.js"></script></head>
<body>
<p id="status">Starting the launch</p>
<script>
FHIR.oauth2.authorize(` + string(options) + `).catch(function (e) {
  document.getElementById('status').textContent = 'authorize failed: ' + e;
});
</script>
</body>
</html>
`
	const callbackPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Test SMART app</title><script src="/fhir-client.js"></script></head>
<body>
<pre id="result"></pre>
<script>
function show(value) {
  var el = document.getElementById('result');
  el.textContent = JSON.stringify(value);
  el.setAttribute('data-done', 'true');
}
FHIR.oauth2.ready().then(function (client) {
  show({scope: client.state.tokenResponse.scope, patient: client.patient.id});
}, function (e) {
  show({error: String((e && e.message) || e)});
});
</script>
</body>
</html>
`
	writePage := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir-client.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	mux.HandleFunc("GET /launch.html", writePage(launchPage))
	mux.HandleFunc("GET /callback", writePage(callbackPage))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// checkTokenCORS checks that the token endpoint lets a page of origin call
// it, so the preflight and the POST both respond with
// Access-Control-Allow-Origin set to that origin.
func checkTokenCORS(t *testing.T, tokenEndpoint, origin string) {
	t.Helper()
	preflight, err := http.NewRequest(http.MethodOptions, tokenEndpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	preflight.Header.Set("Origin", origin)
	preflight.Header.Set("Access-Control-Request-Method", http.MethodPost)
	preflight.Header.Set("Access-Control-Request-Headers", "content-type")
	post, err := http.NewRequest(http.MethodPost, tokenEndpoint,
		strings.NewReader(url.Values{"grant_type": {"authorization_code"}, "code": {"not-a-code"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	post.Header.Set("Origin", origin)
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	for _, req := range []*http.Request{preflight, post} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("%s %s with Origin %s: status %d, Access-Control-Allow-Origin = %q, want %q",
				req.Method, tokenEndpoint, origin, resp.StatusCode, got, origin)
		}
	}
}

func TestBrowserFHIRClientApp(t *testing.T) {
	e := shared(t)
	disc := discover(t, e.fhirBase)
	scopes := "openid fhirUser launch/patient patient/Patient.rs patient/Observation.rs"
	app := startFHIRClientApp(t, e.fhirBase, scopes)
	checkTokenCORS(t, disc.TokenEndpoint, app)

	p := sharedChrome(t).NewPage(t)
	p.Navigate(app + "/launch.html")
	logInInBrowser(t, p, e)
	uncheckByLabel(t, p, browserUnchecked)
	p.Click(`button#allow`)
	p.WaitVisible(`pre#result[data-done]`)

	var result struct {
		Scope   string `json:"scope"`
		Patient string `json:"patient"`
		Error   string `json:"error"`
	}
	raw := p.Text(`pre#result`)
	if err := json.Unmarshal([]byte(raw), &result); err != nil {
		t.Fatalf("the app's result is not JSON: %q", raw)
	}
	if result.Error != "" {
		t.Fatalf("fhirclient's ready() failed in the browser: %s\nconsole:\n%s", result.Error, strings.Join(p.Console(), "\n"))
	}
	checkGranted(t, result.Scope, scopes, browserUnchecked)
	if result.Patient != testenv.PatientID {
		t.Errorf("client.patient.id = %q, want %q", result.Patient, testenv.PatientID)
	}
}
