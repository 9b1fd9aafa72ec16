package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/metrics"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// Values of the test gateway built by newTestGateway.
const (
	testPublicURL      = "http://gateway.test"
	testUpstreamClient = "smartgate-upstream"
	testPublicClient   = "patient-app"
	testPublicRedirect = "http://127.0.0.1/callback"
	testConfidential   = "web-app"
	testConfSecret     = "web-app-secret-0123456789-abcdefghij"
	testAsymClient     = "asym-app"
	testRealmPath      = "/realms/test"
	testAuthorizePath  = testRealmPath + "/protocol/openid-connect/auth"
	testTokenPath      = testRealmPath + "/protocol/openid-connect/token"
)

// recordedRequest is a request as a test backend received it.
type recordedRequest struct {
	Method   string
	Path     string
	RawPath  string
	RawQuery string
	Host     string
	Header   http.Header
	Body     string
}

// recorder is a test backend that records every request and then passes
// it to respond.
type recorder struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []recordedRequest
	respond func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, respond func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{respond: respond}
	rec.srv = httptest.NewServer(rec)
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.got = append(rec.got, recordedRequest{Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
		RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: string(body)})
	rec.mu.Unlock()
	rec.respond(w, r)
}

func (rec *recorder) requests() []recordedRequest {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]recordedRequest(nil), rec.got...)
}

// last returns the last recorded request and fails the test when there
// is none.
func (rec *recorder) last(t *testing.T) recordedRequest {
	t.Helper()
	got := rec.requests()
	if len(got) == 0 {
		t.Fatal("the backend received no request")
	}
	return got[len(got)-1]
}

// fakeIdP is an identity provider with a Keycloak-like URL layout: it
// serves a discovery document and records every other request.
type fakeIdP struct {
	*recorder
	issuer string
}

func newFakeIdP(t *testing.T) *fakeIdP {
	t.Helper()
	idp := &fakeIdP{}
	discovery := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                idp.issuer,
			"authorization_endpoint":                idp.issuer + "/protocol/openid-connect/auth",
			"token_endpoint":                        idp.issuer + "/protocol/openid-connect/token",
			"jwks_uri":                              idp.issuer + "/protocol/openid-connect/certs",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux := http.NewServeMux()
	mux.Handle("GET "+testRealmPath+"/.well-known/openid-configuration", discovery)
	idp.recorder = &recorder{respond: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return
		}
		w.Header().Set("X-Idp", "yes")
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "idp:"+r.URL.Path)
	}}
	mux.Handle("/", idp.recorder)
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	idp.issuer = idp.srv.URL + testRealmPath
	return idp
}

// publicJWKS returns a JWK Set with a fresh public key, in the form of a
// client's inline jwks setting.
func publicJWKS(t *testing.T) map[string]any {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1",
		Algorithm: string(jose.ES256), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	var set map[string]any
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

// memoryReplayCache records client assertion ids in memory.
type memoryReplayCache struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (c *memoryReplayCache) Claim(_ context.Context, clientID, jti string, _ time.Duration) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[clientID+" "+jti] {
		return false, nil
	}
	c.seen[clientID+" "+jti] = true
	return true, nil
}

// testGateway is a Gateway on an in-memory Redis, discovered against a
// fake identity provider that is also its pass-through target.
type testGateway struct {
	g       *Gateway
	handler http.Handler
	redis   *miniredis.Miniredis
	idp     *fakeIdP
	metrics *metrics.Metrics
	logs    *testenv.LockedBuffer
}

func newTestGateway(t *testing.T, change func(*config.Config)) *testGateway {
	t.Helper()
	idp := newFakeIdP(t)
	mr := miniredis.RunT(t)
	cfg := &config.Config{
		Server: config.Server{PublicURL: testPublicURL, CookieSecret: "test-cookie-secret-0123456789abcdefghij"},
		Upstream: config.Upstream{
			Issuer: idp.issuer, ClientID: testUpstreamClient, ClientSecret: "upstream-secret",
			Scopes:      []string{"openid"},
			PassThrough: config.PassThrough{Enabled: true, Target: idp.srv.URL},
		},
		FHIR: config.FHIR{BaseURLs: []string{testPublicURL + "/fhir"}},
		Clients: []config.Client{
			{ClientID: testPublicClient, Name: "Patient Diary", Type: config.ClientPublic,
				RedirectURIs: []string{testPublicRedirect}, Scopes: []string{"launch/patient", "patient/*.rs"}},
			{ClientID: testConfidential, Name: "Care Web", Type: config.ClientConfidentialSymmetric,
				RedirectURIs: []string{"https://web-app.example.org/callback"}, ClientSecret: testConfSecret,
				Scopes: []string{"launch/patient", "patient/*.rs"}},
			{ClientID: testAsymClient, Name: "Care Planner", Type: config.ClientConfidentialAsymmetric,
				RedirectURIs: []string{"https://asym-app.example.org/callback"},
				JWKS:         publicJWKS(t), Scopes: []string{"launch/patient"}},
		},
	}
	if change != nil {
		change(cfg)
	}
	config.ApplyDefaults(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	provider, err := upstream.Discover(ctx, upstream.Config{Issuer: idp.issuer, ClientID: cfg.Upstream.ClientID,
		ClientSecret: cfg.Upstream.ClientSecret, RedirectURL: testPublicURL + PathCallback, Scopes: []string{"openid"}})
	if err != nil {
		t.Fatalf("discover the fake identity provider: %v", err)
	}
	accessKey, err := token.GenerateKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	idKey, err := token.GenerateKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	minter, err := token.NewMinter(accessKey, idKey)
	if err != nil {
		t.Fatal(err)
	}
	pages, err := consent.NewPages(consent.Branding{}, PathStatic, nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	logs := &testenv.LockedBuffer{}
	m := metrics.New()
	g, err := New(Options{
		Config:     cfg,
		Store:      store.New(rdb, "test:"),
		Sessions:   session.NewRedisStore(rdb, "test:", []byte(cfg.Server.CookieSecret), false, 10*time.Minute),
		Upstream:   provider,
		Clients:    clients.New(cfg),
		Minter:     minter,
		JWKS:       token.JWKS(accessKey, idKey),
		Pages:      pages,
		Logger:     slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:    m,
		Assertions: clientauth.NewVerifier([]string{testPublicURL + PathToken}, &memoryReplayCache{seen: map[string]bool{}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testGateway{g: g, handler: g.Handler(), redis: mr, idp: idp, metrics: m, logs: logs}
}

// serve sends a request through the gateway's handler.
func (tg *testGateway) serve(r *http.Request) *http.Response {
	w := httptest.NewRecorder()
	tg.handler.ServeHTTP(w, r)
	return w.Result()
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// counterValue returns the value of a counter of the gateway's metrics
// with the given label value, or 0 when it was never incremented.
func counterValue(t *testing.T, m *metrics.Metrics, name, label string) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetValue() == label {
					return metric.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func formRequest(method, target string, form url.Values) *http.Request {
	r := httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// smartAuthorizeParams are the parameters of a valid SMART standalone
// launch of the public test client.
func smartAuthorizeParams() url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {testPublicClient}, "redirect_uri": {testPublicRedirect},
		"scope": {"launch/patient patient/Patient.rs"}, "state": {"state-1"}, "aud": {testPublicURL + "/fhir"},
		"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"},
	}
}

// clientAssertion signs a private_key_jwt assertion with a fresh key that
// no client has registered.
func clientAssertion(t *testing.T, clientID string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"iss": clientID, "sub": clientID, "aud": testPublicURL + PathToken, "jti": token.RandomString(8),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPassThroughForwardsUnchanged(t *testing.T) {
	tg := newTestGateway(t, nil)
	r := httptest.NewRequest(http.MethodGet, testPublicURL+"/realms/test/account?tab=sessions&x=%2F", nil)
	r.Header.Set("Forwarded", "host=attacker.example")
	r.Header.Set("X-Forwarded-Host", "attacker.example")
	r.Header.Set("X-Forwarded-Port", "8443")
	r.Header.Set("X-Forwarded-Prefix", "/evil")
	r.Header.Set("Cookie", "KEYCLOAK_SESSION=abc; "+session.CookieName(false)+"=smartgate-session-id; AUTH_SESSION_ID=def")

	resp := tg.serve(r)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status = %d, want the identity provider's 201", resp.StatusCode)
	}
	if body != "idp:/realms/test/account" {
		t.Errorf("body = %q, want the identity provider's body", body)
	}
	if resp.Header.Get("X-Idp") != "yes" {
		t.Errorf("the identity provider's response header is missing: %v", resp.Header)
	}
	if resp.Header.Get(headerGatewayError) != "" {
		t.Errorf("a forwarded response carries %s", headerGatewayError)
	}

	got := tg.idp.last(t)
	checks := []struct{ name, got, want string }{
		{"path", got.Path, "/realms/test/account"},
		{"query", got.RawQuery, "tab=sessions&x=%2F"},
		{"Host", got.Host, "gateway.test"},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "gateway.test"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"Forwarded", got.Header.Get("Forwarded"), ""},
		{"X-Forwarded-Port", got.Header.Get("X-Forwarded-Port"), ""},
		{"X-Forwarded-Prefix", got.Header.Get("X-Forwarded-Prefix"), ""},
		{"Cookie", got.Header.Get("Cookie"), "KEYCLOAK_SESSION=abc; AUTH_SESSION_ID=def"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("forwarded %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if xff := got.Header.Get("X-Forwarded-For"); xff == "" {
		t.Error("forwarded request lacks X-Forwarded-For")
	}
}

func TestPassThroughInterceptsRegisteredClients(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) {
		// A registry client that shares the upstream client id must not
		// turn smartgate's own login into a loop.
		c.Clients = append(c.Clients, config.Client{ClientID: testUpstreamClient, Name: "Same Id",
			Type: config.ClientPublic, RedirectURIs: []string{testPublicRedirect}, Scopes: []string{"launch/patient"}})
	})
	authorizeURL := testPublicURL + testAuthorizePath
	tokenURL := testPublicURL + testTokenPath
	basic := func(r *http.Request, id, secret string) *http.Request {
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		return r
	}
	cases := []struct {
		name       string
		request    func() *http.Request
		forwarded  bool
		wantStatus int
	}{
		{"authorize GET of a registry client", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, authorizeURL+"?"+smartAuthorizeParams().Encode(), nil)
		}, false, http.StatusFound},
		{"authorize POST of a registry client", func() *http.Request {
			return formRequest(http.MethodPost, authorizeURL, smartAuthorizeParams())
		}, false, http.StatusFound},
		{"authorize GET of another client", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, authorizeURL+"?client_id=other-app&response_type=code", nil)
		}, true, http.StatusCreated},
		{"authorize GET with a trailing slash", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, authorizeURL+"/?"+smartAuthorizeParams().Encode(), nil)
		}, false, http.StatusFound},
		{"authorize GET of the upstream client id", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, authorizeURL+"?client_id="+testUpstreamClient, nil)
		}, true, http.StatusCreated},
		{"authorize POST of another client", func() *http.Request {
			return formRequest(http.MethodPost, authorizeURL, url.Values{"client_id": {"other-app"}})
		}, true, http.StatusCreated},
		{"authorize GET without client_id", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, authorizeURL, nil)
		}, true, http.StatusCreated},
		{"token with client_id of a registry client", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"sgc_unknown.code"}, "client_id": {testPublicClient}})
		}, false, http.StatusBadRequest},
		{"token with Basic of a registry client", func() *http.Request {
			return basic(formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"sgc_unknown.code"}}), testConfidential, testConfSecret)
		}, false, http.StatusBadRequest},
		{"token with a client assertion of a registry client", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"sgc_unknown.code"}, "client_assertion_type": {clientauth.AssertionType},
				"client_assertion": {clientAssertion(t, testAsymClient)}})
		}, false, http.StatusUnauthorized},
		{"token refreshing a smartgate refresh token", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {token.RefreshPrefix + "unknown.secret"}})
		}, false, http.StatusBadRequest},
		{"token with client_id of another client", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"idp-code"}, "client_id": {"other-app"}})
		}, true, http.StatusCreated},
		{"token with Basic of another client", func() *http.Request {
			return basic(formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"idp-code"}}), "other-app", "other-secret")
		}, true, http.StatusCreated},
		{"token with Basic of the upstream client", func() *http.Request {
			return basic(formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"authorization_code"},
				"code": {"idp-code"}}), testUpstreamClient, "upstream-secret")
		}, true, http.StatusCreated},
		{"token with a client assertion of another client", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"client_credentials"},
				"client_assertion_type": {clientauth.AssertionType}, "client_assertion": {clientAssertion(t, "other-app")}})
		}, true, http.StatusCreated},
		{"token refreshing another refresh token", func() *http.Request {
			return formRequest(http.MethodPost, tokenURL, url.Values{"grant_type": {"refresh_token"},
				"refresh_token": {"eyJ-idp-refresh"}})
		}, true, http.StatusCreated},
		{"token with a JSON body", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, tokenURL, strings.NewReader(`{"client_id":"patient-app"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, true, http.StatusCreated},
		{"token GET", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, tokenURL+"?client_id="+testPublicClient, nil)
		}, true, http.StatusCreated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.request()
			var sent string
			if r.Body != nil {
				b, _ := io.ReadAll(r.Body)
				sent = string(b)
				r.Body = io.NopCloser(strings.NewReader(sent))
			}
			before := len(tg.idp.requests())
			resp := tg.serve(r)
			body := readBody(t, resp)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d; body:\n%s", resp.StatusCode, tc.wantStatus, body)
			}
			got := tg.idp.requests()[before:]
			if !tc.forwarded {
				if len(got) != 0 {
					t.Errorf("the request reached the identity provider: %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("the identity provider received %d requests, want 1", len(got))
			}
			if got[0].Body != sent {
				t.Errorf("forwarded body = %q, want %q", got[0].Body, sent)
			}
			if r.Header.Get("Authorization") != "" && got[0].Header.Get("Authorization") != r.Header.Get("Authorization") {
				t.Errorf("forwarded Authorization = %q, want the client's", got[0].Header.Get("Authorization"))
			}
		})
	}
}

func TestPassThroughAuthorizeStartsSmartgateLogin(t *testing.T) {
	tg := newTestGateway(t, nil)
	r := httptest.NewRequest(http.MethodGet, testPublicURL+testAuthorizePath+"?"+smartAuthorizeParams().Encode(), nil)
	resp := tg.serve(r)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302 to the identity provider's login", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, tg.idp.issuer+"/protocol/openid-connect/auth"; got != want {
		t.Errorf("redirect goes to %s, want %s", got, want)
	}
	if got := loc.Query().Get("client_id"); got != testUpstreamClient {
		t.Errorf("redirect client_id = %q, want smartgate's upstream client %q", got, testUpstreamClient)
	}
	if got := loc.Query().Get("redirect_uri"); got != testPublicURL+PathCallback {
		t.Errorf("redirect_uri = %q, want smartgate's callback", got)
	}
}

func TestPassThroughTokenPreflight(t *testing.T) {
	tg := newTestGateway(t, nil)
	cases := []struct {
		name       string
		origin     string
		forwarded  bool
		wantStatus int
		wantACAO   string
	}{
		{"origin of a registry client", "http://127.0.0.1:5555", false, http.StatusNoContent, "http://127.0.0.1:5555"},
		{"other origin", "https://other-app.example.org", true, http.StatusCreated, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodOptions, testPublicURL+testTokenPath, nil)
			r.Header.Set("Origin", tc.origin)
			r.Header.Set("Access-Control-Request-Method", http.MethodPost)
			before := len(tg.idp.requests())
			resp := tg.serve(r)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantACAO {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantACAO)
			}
			if forwarded := len(tg.idp.requests()) > before; forwarded != tc.forwarded {
				t.Errorf("forwarded = %v, want %v", forwarded, tc.forwarded)
			}
		})
	}
}

func TestPassThroughTokenBodyTooLarge(t *testing.T) {
	tg := newTestGateway(t, nil)
	form := url.Values{"client_id": {"other-app"}, "padding": {strings.Repeat("x", maxFormBytes)}}
	resp := tg.serve(formRequest(http.MethodPost, testPublicURL+testTokenPath, form))
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	if !strings.Contains(body, `"error":"invalid_request"`) {
		t.Errorf("body = %q, want an OAuth invalid_request error", body)
	}
	if n := len(tg.idp.requests()); n != 0 {
		t.Errorf("the identity provider received %d requests, want 0", n)
	}
}

// closedPortURL returns the URL of a loopback port that nothing listens on.
func closedPortURL(t *testing.T) string {
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

func TestPassThroughUnreachableIdentityProvider(t *testing.T) {
	cases := []struct {
		name   string
		target func(idp string) string
		path   string
	}{
		{"closed port", func(string) string { return closedPortURL(t) }, "/realms/test/account"},
		{"no response headers", func(idp string) string { return idp }, "/slow"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, func(c *config.Config) {
				c.Upstream.PassThrough.Timeout = 300 * time.Millisecond
			})
			// The target depends on the fake identity provider's address,
			// which exists only now.
			tg.g.cfg.Upstream.PassThrough.Target = tc.target(tg.idp.srv.URL)
			tg.handler = tg.g.Handler()

			start := time.Now()
			resp := tg.serve(httptest.NewRequest(http.MethodGet, testPublicURL+tc.path, nil))
			took := time.Since(start)
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("status = %d, want 502", resp.StatusCode)
			}
			if took > 5*time.Second {
				t.Errorf("the error took %s, want it within the 300ms timeout plus overhead", took)
			}
			if got := resp.Header.Get(headerGatewayError); got != "upstream_unavailable" {
				t.Errorf("%s = %q, want upstream_unavailable", headerGatewayError, got)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type = %q, want smartgate's HTML error page", ct)
			}
			if !strings.Contains(body, `class="rid"`) {
				t.Errorf("body is not smartgate's error page with a request id:\n%s", body)
			}
			if n := counterValue(t, tg.metrics, "smartgate_upstream_errors_total", "pass_through"); n != 1 {
				t.Errorf("pass_through upstream errors = %v, want 1", n)
			}
			if !strings.Contains(tg.logs.String(), "forwarding to the identity provider failed") {
				t.Errorf("the failure was not logged; logs:\n%s", tg.logs.String())
			}
		})
	}
}

func TestPassThroughDisabledIsNotFound(t *testing.T) {
	tg := newTestGateway(t, func(c *config.Config) { c.Upstream.PassThrough.Enabled = false })
	resp := tg.serve(httptest.NewRequest(http.MethodGet, testPublicURL+"/realms/test/account", nil))
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status = %d, want 404", resp.StatusCode)
	}
	if n := len(tg.idp.requests()); n != 0 {
		t.Errorf("the identity provider received %d requests, want 0", n)
	}
}

func TestRemoveCookieKeepsOthers(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"only the removed cookie", []string{"smartgate=a"}, nil},
		{"first of several", []string{"smartgate=a; KC=b; other=\"quoted value\""}, []string{"KC=b; other=\"quoted value\""}},
		{"several header lines", []string{"KC=b", "smartgate=a", "x=1"}, []string{"KC=b; x=1"}},
		{"name as a prefix of another", []string{"smartgate_other=a"}, []string{"smartgate_other=a"}},
		{"no cookies", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, line := range tc.lines {
				h.Add("Cookie", line)
			}
			removeCookie(h, "smartgate")
			got := h.Values("Cookie")
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("Cookie = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPeekFormRestoresBody(t *testing.T) {
	cases := []struct {
		name        string
		contentType string
		body        string
		wantClient  string
		wantErr     bool
	}{
		{"form", "application/x-www-form-urlencoded", "client_id=a&code=b", "a", false},
		{"form with charset", "application/x-www-form-urlencoded; charset=utf-8", "client_id=a", "a", false},
		{"JSON", "application/json", `{"client_id":"a"}`, "", false},
		{"invalid escape", "application/x-www-form-urlencoded", "client_id=%zz", "", false},
		{"over the limit", "application/x-www-form-urlencoded", "client_id=a&p=" + strings.Repeat("x", maxFormBytes), "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.contentType)
			form, err := peekForm(r)
			if tc.wantErr {
				if err == nil {
					t.Fatal("peekForm returned no error")
				}
				return
			}
			if err != nil {
				t.Fatalf("peekForm: %v", err)
			}
			if got := form.Get("client_id"); got != tc.wantClient {
				t.Errorf("client_id = %q, want %q", got, tc.wantClient)
			}
			rest, err := io.ReadAll(r.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != tc.body {
				t.Errorf("body after peekForm = %q, want %q", rest, tc.body)
			}
		})
	}
}
