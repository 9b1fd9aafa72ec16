package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
	"github.com/smartgate/smartgate/internal/token"
)

// Endpoint paths of the Keycloak-shaped test upstream (realm hospital),
// and its public client other-app, which stands for a non-SMART
// application of the hospital.
const (
	idpAuthorizePath = "/realms/hospital/protocol/openid-connect/auth"
	idpTokenPath     = "/realms/hospital/protocol/openid-connect/token"
	otherApp         = "other-app"
	otherAppRedirect = "http://127.0.0.1:9/other-app/callback" // the browser stops here without fetching it
	frontDPoPClient  = "bound-front-app"
)

// frontEnvironment is a gateway that has taken over the upstream's host
// name (pass-through on) and fronts a recording FHIR server, with an
// upstream of its own on which other-app can log in. It shares the
// redis-server of the shared environment.
type frontEnvironment struct {
	*environment
	fhir      *recordingFHIRServer
	otherBase string // a fronted base on the same FHIR server, for tokens of another aud
	downBase  string // a fronted base whose FHIR server does not listen
}

var (
	frontOnce sync.Once
	front     *frontEnvironment
)

func frontDoor(t *testing.T) *frontEnvironment {
	t.Helper()
	e := shared(t)
	frontOnce.Do(func() {
		ln, gwURL := gatewaytest.Listener(t)
		up := startUpstreamWithOtherApp(t, &services, gwURL+"/callback", otherAppRedirect)
		fhir := startRecordingFHIRServer()
		dir, err := os.MkdirTemp("", "smartgate-e2e-front-")
		if err != nil {
			t.Fatal(err)
		}
		services.Add(func() { os.RemoveAll(dir) })
		fe := &frontEnvironment{fhir: fhir, otherBase: gwURL + "/fhir-other", downBase: gwURL + "/fhir-down"}
		cfg := gatewaytest.Config(t, dir, gwURL, e.redis.Addr, up, func(c *config.Config) {
			c.Upstream.PassThrough = config.PassThrough{Enabled: true, Target: origin(t, up.Issuer)}
			c.FHIR.BaseURLs = append(c.FHIR.BaseURLs, fe.otherBase, fe.downBase)
			c.FHIR.Servers = []config.FHIRServer{
				{BaseURL: gwURL + "/fhir", Target: fhir.URL + "/base/r4"},
				{BaseURL: fe.otherBase, Target: fhir.URL + "/other"},
				{BaseURL: fe.downBase, Target: closedLoopbackURL(t), Timeout: 2 * time.Second},
			}
			c.Clients = append(c.Clients, config.Client{ClientID: frontDPoPClient, Name: "Bound Diary",
				Type: config.ClientPublic, RequireDPoP: true, RedirectURIs: []string{gatewaytest.PublicRedirect},
				Scopes: []string{"launch/patient", "patient/*.rs"}})
		})
		gw := gatewaytest.Serve(t, &services, ln, cfg)
		fe.environment = &environment{redis: e.redis, upstream: up, gw: gw, fhirBase: gwURL + "/fhir"}
		front = fe
	})
	if front == nil {
		t.Fatal("the pass-through test environment failed to start (see the first failing test)")
	}
	return front
}

// startUpstreamWithOtherApp starts node/upstream.mjs in the keycloak shape
// as testenv.StartUpstream does, and also registers otherRedirect for
// other-app, which StartUpstream leaves without redirect URIs.
func startUpstreamWithOtherApp(t *testing.T, cleanup *testenv.Cleanup, callback, otherRedirect string) *testenv.Upstream {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found; install Node.js 20 or later")
	}
	cmd := exec.Command(bin, "upstream.mjs")
	cmd.Dir = testenv.NodeDir(t)
	cmd.Env = append(os.Environ(), "PORT=0", "SHAPE=keycloak", "CLIENT_ID="+testenv.UpstreamClient,
		"CLIENT_SECRET="+testenv.UpstreamSecret, "REDIRECT_URIS="+callback, "OTHER_REDIRECT_URIS="+otherRedirect)
	// The program exits at the end of its stdin, so it also ends when this
	// test process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start upstream.mjs: %v", err)
	}

	exited := make(chan struct{})
	stop := func() {
		_ = stdin.Close()
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	// The first line of stdout is "listening <issuer>". stderr is read only
	// after the program has exited.
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(exited)
	}()

	select {
	case line := <-lines:
		if issuer, ok := strings.CutPrefix(line, "listening "); ok {
			cleanup.Add(stop)
			return &testenv.Upstream{Issuer: issuer, Shape: "keycloak"}
		}
		stop()
		t.Fatalf("upstream.mjs did not start; its output:\n%s", stderr.String())
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("upstream.mjs did not start in 30 s; its output:\n%s", stderr.String())
	}
	return nil
}

// origin returns scheme://host of a URL.
func origin(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Scheme + "://" + u.Host
}

// closedLoopbackURL returns the URL of a loopback port that nothing
// listens on.
func closedLoopbackURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// recordingFHIRServer records every request and responds to each with a
// Patient resource.
type recordingFHIRServer struct {
	URL  string
	mu   sync.Mutex
	seen []*http.Request
}

func startRecordingFHIRServer() *recordingFHIRServer {
	s := &recordingFHIRServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Clone(r.Context()))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/fhir+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resourceType": "Patient", "id": testenv.PatientID})
	}))
	services.Add(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *recordingFHIRServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

func (s *recordingFHIRServer) last(t *testing.T) *http.Request {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("the FHIR server received no request")
	}
	return s.seen[len(s.seen)-1]
}

// otherAppParams are an authorization request of other-app with PKCE.
func otherAppParams(state, verifier string) url.Values {
	sum := sha256.Sum256([]byte(verifier))
	return url.Values{
		"response_type": {"code"}, "client_id": {otherApp}, "redirect_uri": {otherAppRedirect},
		"scope": {"openid profile"}, "state": {state}, "nonce": {token.RandomString(12)},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
}

// unverifiedClaims decodes the payload of a JWT without checking it.
func unverifiedClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestPassThroughNonSMARTClientLogin(t *testing.T) {
	fe := frontDoor(t)
	gwHost := strings.TrimPrefix(fe.gw.URL, "http://")
	b := testenv.NewBrowser(t, otherAppRedirect)
	state, verifier := token.RandomString(12), token.RandomString(40)

	login := b.Get(fe.gw.URL + idpAuthorizePath + "?" + otherAppParams(state, verifier).Encode())
	if login.Status != http.StatusOK || !strings.Contains(login.Body, `name="password"`) {
		t.Fatalf("expected the upstream's login form, got %d at %s:\n%s", login.Status, login.URL, login.Body)
	}
	if login.URL.Host != gwHost {
		t.Errorf("the login form was served at %s, want the gateway's host %s", login.URL, gwHost)
	}
	form := login.Form(t)
	if !strings.HasPrefix(form.Action, fe.gw.URL+"/") {
		t.Errorf("the login form posts to %s, want the gateway's host", form.Action)
	}
	form.Fields.Set("login", testenv.PatientUser)
	form.Fields.Set("password", testenv.PatientPassword)
	done := b.Submit(form, nil)

	// oidc-provider redirects to the client with 303.
	if (done.Status != http.StatusFound && done.Status != http.StatusSeeOther) ||
		!strings.HasPrefix(done.Location, otherAppRedirect+"?") {
		t.Fatalf("expected a redirect to other-app, got %d at %s, Location %q:\n%s", done.Status, done.URL,
			done.Location, done.Body)
	}
	// The upstream builds its URLs from the Host header, which the gateway
	// keeps, so the browser never leaves the gateway's host.
	if done.URL.Host != gwHost {
		t.Errorf("the login ended at %s, want the gateway's host %s", done.URL, gwHost)
	}
	loc, err := url.Parse(done.Location)
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if q.Get("state") != state {
		t.Errorf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != fe.upstream.Issuer {
		t.Errorf("iss = %q, want the upstream's issuer %q", q.Get("iss"), fe.upstream.Issuer)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatal("the redirect carries no code")
	}

	tok := postToken(t, fe.gw.URL+idpTokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {otherAppRedirect}, "code_verifier": {verifier}, "client_id": {otherApp}}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange through the gateway: %d %s: %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	if tok.AccessToken == "" || tok.IDToken == "" {
		t.Fatalf("token response lacks access_token or id_token: %+v", tok)
	}
	if tok.Header.Get("X-Smartgate-Error") != "" {
		t.Error("the token response is marked as made by the gateway")
	}
	idClaims := unverifiedClaims(t, tok.IDToken)
	if idClaims["iss"] != fe.upstream.Issuer {
		t.Errorf("id_token iss = %v, want the upstream's %s", idClaims["iss"], fe.upstream.Issuer)
	}
	if idClaims["aud"] != otherApp {
		t.Errorf("id_token aud = %v, want %s", idClaims["aud"], otherApp)
	}

	logs := fe.gw.Logs()
	for name, secret := range map[string]string{"code": code, "access token": tok.AccessToken, "id token": tok.IDToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the gateway logged other-app's %s", name)
		}
	}
}

func TestPassThroughSMARTClientGetsConsent(t *testing.T) {
	fe := frontDoor(t)
	b := testenv.NewBrowser(t, appRedirect)
	l := newLaunch(fe.environment, gatewaytest.PublicClient, appRedirect, "openid fhirUser launch/patient patient/*.rs")

	authorizeURL := fe.gw.URL + idpAuthorizePath + "?" + l.params().Encode()

	// smartgate, not the upstream, handles the request and sends the
	// browser to the upstream's login as its own client.
	noRedirects := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	first, err := noRedirects.Get(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	next, err := url.Parse(first.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if first.StatusCode != http.StatusFound || !strings.HasPrefix(next.String(), fe.upstream.Issuer+"/") {
		t.Fatalf("status %d, Location %q, want 302 to the upstream's login", first.StatusCode, next)
	}
	if got := next.Query().Get("client_id"); got != testenv.UpstreamClient {
		t.Errorf("the upstream login is for client %q, want smartgate's %q", got, testenv.UpstreamClient)
	}
	if got := next.Query().Get("redirect_uri"); got != fe.gw.URL+"/callback" {
		t.Errorf("the upstream login returns to %q, want smartgate's callback", got)
	}

	login := b.Get(authorizeURL)
	if login.Status != http.StatusOK || !strings.HasPrefix(login.URL.String(), fe.upstream.Issuer) {
		t.Fatalf("expected the upstream's login form, got %d at %s:\n%s", login.Status, login.URL, login.Body)
	}
	page := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	if !isConsentPage(page) {
		t.Fatalf("expected smartgate's consent page, got %d at %s:\n%s", page.Status, page.URL, page.Body)
	}
	if !strings.Contains(page.Body, "Patient Diary") {
		t.Error("the consent page does not name the app")
	}
	params := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	if params.Get("iss") != fe.gw.URL {
		t.Errorf("iss = %q, want the gateway's %q", params.Get("iss"), fe.gw.URL)
	}

	tok := postToken(t, fe.gw.URL+idpTokenPath, url.Values{"grant_type": {"authorization_code"},
		"code": {params.Get("code")}, "redirect_uri": {appRedirect}, "code_verifier": {l.Verifier},
		"client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange on the upstream's token path: %d %s: %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	claims := verifyAccessToken(t, fe.gw.URL+"/jwks", tok.AccessToken)
	if claims["iss"] != fe.gw.URL || claims["client_id"] != gatewaytest.PublicClient {
		t.Errorf("access token iss = %v, client_id = %v, want smartgate's token for %s", claims["iss"],
			claims["client_id"], gatewaytest.PublicClient)
	}
}

// silentListener accepts connections and never writes to them.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

func TestPassThroughUpstreamDown(t *testing.T) {
	e := shared(t)
	cases := []struct {
		name   string
		target func(t *testing.T) string
	}{
		{"closed port", closedLoopbackURL},
		{"no response", silentListener},
	}
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var cleanup testenv.Cleanup
			t.Cleanup(cleanup.Run)
			target := tc.target(t)
			ln, gwURL := gatewaytest.Listener(t)
			// The key prefix in Redis comes from the folder name, so the
			// folder gets a unique name.
			dir, err := os.MkdirTemp("", "smartgate-e2e-down-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			cfg := gatewaytest.Config(t, dir, gwURL, e.redis.Addr, e.upstream, func(c *config.Config) {
				c.Upstream.PassThrough = config.PassThrough{Enabled: true, Target: target, Timeout: time.Second}
			})
			gw := gatewaytest.Serve(t, &cleanup, ln, cfg)

			requests := map[string]func() (*http.Response, error){
				"login page": func() (*http.Response, error) {
					return client.Get(gw.URL + "/realms/hospital/account")
				},
				"token request of another client": func() (*http.Response, error) {
					return client.PostForm(gw.URL+idpTokenPath, url.Values{"grant_type": {"authorization_code"},
						"code": {"idp-code"}, "client_id": {otherApp}})
				},
			}
			for name, send := range requests {
				start := time.Now()
				resp, err := send()
				if err != nil {
					t.Fatalf("%s: %v (the gateway did not respond within the client's 10 s timeout)", name, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("%s: the error took %s, want it within the 1 s timeout plus overhead", name, took)
				}
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("%s: status = %d, want 502", name, resp.StatusCode)
				}
				if got := resp.Header.Get("X-Smartgate-Error"); got != "upstream_unavailable" {
					t.Errorf("%s: X-Smartgate-Error = %q, want upstream_unavailable", name, got)
				}
				// smartgate's error page shows the request id that it sends
				// in X-Request-Id.
				if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(body), rid) {
					t.Errorf("%s: body is not smartgate's error page for request %q:\n%s", name, rid, body)
				}
			}
		})
	}
}

// fhirGet sends a GET to a fronted FHIR base with the given headers.
func fhirGet(t *testing.T, u string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// frontToken runs a launch of the public client for the FHIR base and
// exchanges the code at the gateway's token endpoint.
func frontToken(t *testing.T, fe *frontEnvironment, fhirBase string) *tokenResult {
	t.Helper()
	e := *fe.environment
	e.fhirBase = fhirBase
	l, code := codeFor(t, &e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	tok := postToken(t, fe.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %s: %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	return tok
}

func TestFHIRFrontDiscovery(t *testing.T) {
	fe := frontDoor(t)
	before := fe.fhir.count()
	disc := discover(t, fe.fhirBase)
	if disc.Issuer != fe.gw.URL {
		t.Errorf("issuer = %q, want the gateway's %q", disc.Issuer, fe.gw.URL)
	}
	if disc.AuthorizationEndpoint != fe.gw.URL+"/authorize" || disc.TokenEndpoint != fe.gw.URL+"/token" {
		t.Errorf("endpoints = %q, %q, want the gateway's", disc.AuthorizationEndpoint, disc.TokenEndpoint)
	}
	if n := fe.fhir.count() - before; n != 0 {
		t.Errorf("discovery reached the FHIR server %d times, want 0", n)
	}
}

func TestFHIRFrontRejectsInvalidTokens(t *testing.T) {
	fe := frontDoor(t)
	tok := frontToken(t, fe, fe.fhirBase)
	revoked := frontToken(t, fe, fe.fhirBase)
	resp, err := http.PostForm(fe.gw.URL+"/revoke", url.Values{"token": {revoked.AccessToken},
		"client_id": {gatewaytest.PublicClient}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}

	patient := "/Patient/" + testenv.PatientID
	cases := []struct {
		name          string
		url           string
		authorization string
		wantChallenge string
	}{
		{"no token", fe.fhirBase + patient, "", `Bearer realm="smartgate"`},
		{"garbage token", fe.fhirBase + patient, "Bearer garbage.not.jwt",
			`Bearer realm="smartgate", error="invalid_token"`},
		{"token for another FHIR base", fe.otherBase + patient, "Bearer " + tok.AccessToken,
			`Bearer realm="smartgate", error="invalid_token"`},
		{"revoked token", fe.fhirBase + patient, "Bearer " + revoked.AccessToken,
			`Bearer realm="smartgate", error="invalid_token"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fe.fhir.count()
			header := http.Header{}
			if tc.authorization != "" {
				header.Set("Authorization", tc.authorization)
			}
			resp := fhirGet(t, tc.url, header)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", resp.StatusCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, tc.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want it to start with %s", got, tc.wantChallenge)
			}
			var outcome struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&outcome); err != nil || outcome.ResourceType != "OperationOutcome" {
				t.Errorf("body is not an OperationOutcome (resourceType %q, err %v)", outcome.ResourceType, err)
			}
			if n := fe.fhir.count() - before; n != 0 {
				t.Errorf("the FHIR server received %d requests, want 0", n)
			}
		})
	}
}

func TestFHIRFrontForwardsValidToken(t *testing.T) {
	fe := frontDoor(t)
	tok := frontToken(t, fe, fe.fhirBase)
	resp := fhirGet(t, fe.fhirBase+"/Patient/"+testenv.PatientID+"?_format=json", http.Header{
		"Authorization":         {"Bearer " + tok.AccessToken},
		"X-Smartgate-Patient":   {"someone-else"},
		"X-Smartgate-Scope":     {"system/*.cruds"},
		"X-Smartgate-Client-Id": {"forged-app"},
	})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"resourceType":"Patient"`) {
		t.Fatalf("status = %d, body %s, want 200 with the FHIR server's Patient", resp.StatusCode, body)
	}

	got := fe.fhir.last(t)
	checks := []struct{ name, got, want string }{
		{"path", got.URL.Path, "/base/r4/Patient/" + testenv.PatientID},
		{"query", got.URL.RawQuery, "_format=json"},
		{"X-Smartgate-Patient", got.Header.Get("X-Smartgate-Patient"), testenv.PatientID},
		{"X-Smartgate-Scope", got.Header.Get("X-Smartgate-Scope"), tok.Scope},
		{"X-Smartgate-Client-Id", got.Header.Get("X-Smartgate-Client-Id"), gatewaytest.PublicClient},
		{"Authorization", got.Header.Get("Authorization"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("forwarded %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if strings.Contains(fe.gw.Logs(), tok.AccessToken) {
		t.Error("the gateway logged the access token")
	}
}

// resourceProof signs a DPoP proof for a request to a protected resource,
// with the ath claim of the access token (RFC 9449 §4.2).
func resourceProof(t *testing.T, k *signingKey, method, u, accessToken string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.signer},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(accessToken))
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"htm": method, "htu": u, "iat": time.Now().Unix(), "jti": token.RandomString(12),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:]),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestFHIRFrontDPoPBoundToken(t *testing.T) {
	fe := frontDoor(t)
	key := newSigningKey(t, jose.ES256)
	l, code := codeFor(t, fe.environment, frontDPoPClient, appRedirect, "launch/patient patient/*.rs")
	tokenURL := fe.gw.URL + "/token"
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {l.Verifier}, "client_id": {frontDPoPClient}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", key.dpopProof(t, http.MethodPost, tokenURL))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok tokenResult
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || tok.TokenType != "DPoP" {
		t.Fatalf("DPoP code exchange: status %d, token_type %q, err %v", resp.StatusCode, tok.TokenType, err)
	}

	patientURL := fe.fhirBase + "/Patient/" + testenv.PatientID
	cases := []struct {
		name       string
		header     http.Header
		wantStatus int
	}{
		{"DPoP scheme with a proof", http.Header{"Authorization": {"DPoP " + tok.AccessToken},
			"Dpop": {resourceProof(t, key, http.MethodGet, patientURL, tok.AccessToken)}}, http.StatusOK},
		{"Bearer scheme", http.Header{"Authorization": {"Bearer " + tok.AccessToken}}, http.StatusUnauthorized},
		{"DPoP scheme without a proof", http.Header{"Authorization": {"DPoP " + tok.AccessToken}}, http.StatusUnauthorized},
		{"proof of another key", http.Header{"Authorization": {"DPoP " + tok.AccessToken},
			"Dpop": {resourceProof(t, newSigningKey(t, jose.ES256), http.MethodGet, patientURL, tok.AccessToken)}},
			http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fe.fhir.count()
			resp := fhirGet(t, patientURL, tc.header)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			forwarded := fe.fhir.count() > before
			if forwarded != (tc.wantStatus == http.StatusOK) {
				t.Errorf("forwarded = %v, want %v", forwarded, tc.wantStatus == http.StatusOK)
			}
		})
	}
}

func TestFHIRFrontServerDown(t *testing.T) {
	fe := frontDoor(t)
	tok := frontToken(t, fe, fe.downBase)
	start := time.Now()
	resp := fhirGet(t, fe.downBase+"/Patient/"+testenv.PatientID, http.Header{"Authorization": {"Bearer " + tok.AccessToken}})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the error took %s", took)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	if got := resp.Header.Get("X-Smartgate-Error"); got != "fhir_server_unavailable" {
		t.Errorf("X-Smartgate-Error = %q, want fhir_server_unavailable", got)
	}
	var outcome struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code string `json:"code"`
		} `json:"issue"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&outcome); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if outcome.ResourceType != "OperationOutcome" || len(outcome.Issue) != 1 || outcome.Issue[0].Code != "transient" {
		t.Errorf("body = %+v, want an OperationOutcome with one transient issue", outcome)
	}
}
