package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// TestRedirectURITricks sends authorization requests whose redirect URI
// is close to a registered one. Each gets the error page and no redirect.
func TestRedirectURITricks(t *testing.T) {
	e := shared(t)
	cases := []struct {
		client, uri string
	}{
		{gatewaytest.PublicClient, "http://127.0.0.1:9/callback/extra"},
		{gatewaytest.PublicClient, "http://127.0.0.1:9/callback/../evil"},
		{gatewaytest.PublicClient, "http://127.0.0.1:9/callback?next=https://evil.example"},
		{gatewaytest.PublicClient, "http://127.0.0.1:9/callback#fragment"},
		{gatewaytest.PublicClient, "http://user@127.0.0.1:9/callback"},
		{gatewaytest.PublicClient, "https://127.0.0.1:9/callback"},
		{gatewaytest.PublicClient, "http://localhost:9/callback"},
		{gatewaytest.PublicClient, "http://127.0.0.2:9/callback"},
		{gatewaytest.PublicClient, "http://127.0.0.1:9/%63allback"},
		{gatewaytest.PublicClient, "http://127.0.0.1:9/c\u0430llback"}, // Cyrillic a
		{gatewaytest.PublicClient, "http://127.0.0.1.evil.example/callback"},
		{gatewaytest.PublicClient, "javascript:alert(1)//127.0.0.1/callback"},
		{gatewaytest.ConfidentialClient, "https://WEB-APP.example.org/callback"},
		{gatewaytest.ConfidentialClient, "https://web-app.example.org/callback/"},
		{gatewaytest.ConfidentialClient, "https://web-app.example.org.evil.example/callback"},
		{gatewaytest.ConfidentialClient, "https://web-app.example.org:443/callback"},
		{gatewaytest.ConfidentialClient, "http://web-app.example.org/callback"},
		{gatewaytest.ConfidentialClient, "https://xn--eb-app-7ya.example.org/callback"},
		{gatewaytest.ConfidentialClient, "https://web-app.example.org/Callback"},
	}
	for _, tc := range cases {
		t.Run(tc.uri, func(t *testing.T) {
			l := newLaunch(e, tc.client, tc.uri, "launch/patient patient/*.rs")
			b := testenv.NewBrowser(t)
			p := b.Do(mustRequest(t, http.MethodGet, e.gw.URL+"/authorize?"+l.params().Encode()))
			if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, "not registered") {
				t.Errorf("status %d Location %q, want the 400 error page and no redirect", p.Status, p.Location)
			}
		})
	}
}

func mustRequest(t *testing.T, method, target string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCodeOfAnotherClient(t *testing.T) {
	e := shared(t)
	l, code := codeFor(t, e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	tok := tokenCall(t, e, basicAuth(gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret),
		url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
			"code_verifier": {l.Verifier}})
	if tok.Status != http.StatusBadRequest || tok.Error != "invalid_grant" {
		t.Errorf("code of the public client redeemed by another client: %d %q, want invalid_grant", tok.Status, tok.Error)
	}
	// The attempt spent the code: its owner cannot use it either.
	own := tokenCall(t, e, publicAuth(gatewaytest.PublicClient), url.Values{"grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}})
	if own.Error != "invalid_grant" {
		t.Errorf("owner after a foreign attempt: %d %q, want invalid_grant", own.Status, own.Error)
	}
}

// upstreamLeg starts a launch and stops the browser at the upstream's
// authorization endpoint, returning the browser, the launch and the
// upstream authorization URL (which carries smartgate's state).
func upstreamLeg(t *testing.T, e *environment) (*testenv.Browser, *launch, *url.URL) {
	t.Helper()
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	p := b.GetOnce(e.gw.URL + "/authorize?" + l.params().Encode())
	u, err := url.Parse(p.Location)
	if err != nil || !strings.HasPrefix(p.Location, e.upstream.Issuer) {
		t.Fatalf("authorize did not redirect to the upstream: %d %q", p.Status, p.Location)
	}
	return b, l, u
}

func TestUpstreamMixUp(t *testing.T) {
	e := shared(t)
	b, l, up := upstreamLeg(t, e)
	// A response that names another issuer (RFC 9207) is refused before
	// its code is used.
	cb := e.gw.URL + "/callback?" + url.Values{"state": {up.Query().Get("state")}, "code": {"stolen-code"},
		"iss": {"https://evil.example/realms/hospital"}}.Encode()
	q := redirectParams(t, b.Get(cb), appRedirect)
	if q.Get("error") != "access_denied" || q.Get("state") != l.State || q.Get("code") != "" {
		t.Errorf("mix-up response: %v, want access_denied to the app without a code", q)
	}
}

func TestUpstreamStateReplayAndSessionFixation(t *testing.T) {
	e := shared(t)
	b, _, up := upstreamLeg(t, e)
	cookie := "smartgate"
	before := b.Cookie(e.gw.URL, cookie)
	if before == "" {
		t.Fatal("no session cookie after /authorize")
	}
	b.Stop(e.gw.URL + "/callback")
	login := b.Get(up.String())
	atCallback := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	if !strings.HasPrefix(atCallback.Location, e.gw.URL+"/callback") {
		t.Fatalf("expected the redirect to smartgate's callback, got %d %q", atCallback.Status, atCallback.Location)
	}
	// Another browser, without the session, replays the callback.
	b2 := testenv.NewBrowser(t, appRedirect)
	if p := b2.Get(atCallback.Location); p.Status != http.StatusBadRequest || isConsentPage(p) {
		t.Errorf("callback replayed by another browser: %d, want the error page", p.Status)
	}
	first := b.Do(mustRequest(t, http.MethodGet, atCallback.Location))
	if first.Status != http.StatusSeeOther && !isConsentPage(first) {
		t.Fatalf("callback: %d", first.Status)
	}
	after := b.Cookie(e.gw.URL, cookie)
	if after == "" || after == before {
		t.Error("the session id did not change at login (session fixation)")
	}
	replay := b.Do(mustRequest(t, http.MethodGet, atCallback.Location))
	if replay.Status != http.StatusBadRequest || isConsentPage(replay) {
		t.Errorf("replayed upstream state: %d, want the error page", replay.Status)
	}
}

func TestCookieAndPageHeaders(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		Get(e.gw.URL + "/authorize?" + l.params().Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "smartgate" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
		t.Errorf("session cookie %+v, want HttpOnly, SameSite=Lax, Path=/", session)
	}

	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	csp := page.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' http://127.0.0.1:9"} {
		if !strings.Contains(csp, d) {
			t.Errorf("consent page CSP %q lacks %q", csp, d)
		}
	}
	if page.Header.Get("X-Frame-Options") != "DENY" || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("consent page headers: X-Frame-Options %q, Cache-Control %q",
			page.Header.Get("X-Frame-Options"), page.Header.Get("Cache-Control"))
	}
}

func TestReflectedInputIsEscaped(t *testing.T) {
	e := shared(t)
	script := "<script>alert(1)</script>"
	// An extension scope carries markup to the consent page's details.
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs __x"+script)
	l.State = script
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	if strings.Contains(page.Body, script) {
		t.Error("the consent page contains unescaped markup from the request")
	}
	q := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"deny"}}), appRedirect)
	if q.Get("state") != script {
		t.Errorf("state = %q, want it back byte for byte", q.Get("state"))
	}

	unknown := testenv.NewBrowser(t).Get(e.gw.URL + "/authorize?client_id=" + url.QueryEscape(script) + "&state=" + url.QueryEscape(script))
	if strings.Contains(unknown.Body, script) || unknown.Status != http.StatusBadRequest {
		t.Errorf("error page for an unknown client: %d, reflects the input: %v", unknown.Status, strings.Contains(unknown.Body, script))
	}
}

func TestOversizedAndMalformedInput(t *testing.T) {
	e := shared(t)
	valid := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs").params()
	with := func(k, v string) string {
		p := url.Values{}
		for key, vs := range valid {
			p[key] = vs
		}
		p.Set(k, v)
		return p.Encode()
	}
	cases := []struct {
		name   string
		method string
		path   string
		body   string
		status int
	}{
		{"long state", http.MethodGet, "/authorize?" + with("state", strings.Repeat("s", 3000)), "", http.StatusBadRequest},
		{"huge query", http.MethodGet, "/authorize?" + with("scope", strings.Repeat("patient/Observation.rs ", 2000)), "", http.StatusRequestURITooLong},
		{"huge form", http.MethodPost, "/authorize", with("scope", strings.Repeat("patient/Observation.rs ", 4000)), http.StatusRequestEntityTooLarge},
		{"huge token body", http.MethodPost, "/token", "grant_type=refresh_token&refresh_token=" + strings.Repeat("x", 70000), http.StatusRequestEntityTooLarge},
		{"invalid UTF-8 client", http.MethodGet, "/authorize?client_id=%FF%FE%FD&redirect_uri=x", "", http.StatusBadRequest},
		{"broken escape", http.MethodGet, "/authorize?client_id=%zz", "", http.StatusBadRequest},
		{"repeated token parameter", http.MethodPost, "/token", "grant_type=refresh_token&grant_type=authorization_code", http.StatusBadRequest},
		{"token as JSON", http.MethodPost, "/token", `{"grant_type":"refresh_token"}`, http.StatusBadRequest},
		{"garbage refresh token", http.MethodPost, "/token", "grant_type=refresh_token&client_id=patient-app&refresh_token=%FF%00", http.StatusBadRequest},
		{"garbage assertion", http.MethodPost, "/token", "grant_type=client_credentials&scope=system/x.rs&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, e.gw.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.method == http.MethodPost && !strings.HasPrefix(tc.body, "{") {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}
