package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
	"github.com/smartgate/smartgate/internal/token"
)

// env is shared by every test of the package: one redis-server, one
// Keycloak-shaped upstream provider and one gateway. Tests keep apart by
// using their own browser (cookie jar) and their own launches.
var (
	envOnce  sync.Once
	env      *environment
	services testenv.Cleanup
)

type environment struct {
	redis    *testenv.Redis
	upstream *testenv.Upstream
	gw       *gatewaytest.Gateway
	fhirBase string

	// Keys of the confidential-asymmetric test clients: asymRS and asymES
	// are published at jwks (the asym-app client's jwks_uri), backendKey
	// is registered inline for the backend client.
	asymRS, asymES, backendKey *signingKey
	jwks                       *jwksServer
	// ehrKey signs launch JWTs; fhir is the FHIR server the patient picker searches.
	ehrKey *signingKey
	fhir   *fhirServer
}

func TestMain(m *testing.M) {
	code := m.Run()
	services.Run()
	os.Exit(code)
}

func shared(t *testing.T) *environment {
	t.Helper()
	envOnce.Do(func() {
		r := testenv.StartRedis(t, &services)
		ln, gwURL := gatewaytest.Listener(t)
		up := testenv.StartUpstream(t, &services, "keycloak", gwURL+"/callback")
		dir, err := os.MkdirTemp("", "smartgate-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		services.Add(func() { os.RemoveAll(dir) })
		e := &environment{redis: r, upstream: up, fhirBase: gwURL + "/fhir",
			asymRS: newSigningKey(t, jose.RS384), asymES: newSigningKey(t, jose.ES384), backendKey: newSigningKey(t, jose.ES384),
			ehrKey: newSigningKey(t, jose.ES256)}
		e.fhir = startFHIRServer()
		e.jwks = startJWKSServer(e.asymRS, e.asymES)
		cfg := gatewaytest.Config(t, dir, gwURL, r.Addr, up, e.clientTypes)
		e.gw = gatewaytest.Serve(t, &services, ln, cfg)
		env = e
	})
	if env == nil {
		t.Fatal("the shared test environment failed to start (see the first failing test)")
	}
	return env
}

// launch is one authorization request of an app.
type launch struct {
	ClientID    string
	RedirectURI string
	Scope       string
	State       string
	Nonce       string
	Verifier    string
	Audience    string
}

func newLaunch(e *environment, clientID, redirectURI, scope string) *launch {
	return &launch{
		ClientID: clientID, RedirectURI: redirectURI, Scope: scope,
		State: token.RandomString(16), Nonce: token.RandomString(16), Verifier: token.RandomString(40),
		Audience: e.fhirBase,
	}
}

func (l *launch) challenge() string {
	sum := sha256.Sum256([]byte(l.Verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// params are the authorization request parameters of a SMART standalone
// launch with PKCE S256.
func (l *launch) params() url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {l.ClientID}, "redirect_uri": {l.RedirectURI},
		"scope": {l.Scope}, "state": {l.State}, "nonce": {l.Nonce}, "aud": {l.Audience},
		"code_challenge": {l.challenge()}, "code_challenge_method": {"S256"},
	}
}

// smartConfig reads the discovery document an app starts from.
type smartConfig struct {
	Issuer                 string   `json:"issuer"`
	AuthorizationEndpoint  string   `json:"authorization_endpoint"`
	TokenEndpoint          string   `json:"token_endpoint"`
	JWKSURI                string   `json:"jwks_uri"`
	CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
	Capabilities           []string `json:"capabilities"`
	GrantTypesSupported    []string `json:"grant_types_supported"`
	ScopesSupported        []string `json:"scopes_supported"`
	TokenEndpointAuthMetho []string `json:"token_endpoint_auth_methods_supported"`
}

func discover(t *testing.T, fhirBase string) smartConfig {
	t.Helper()
	resp, err := http.Get(fhirBase + "/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var c smartConfig
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return c
}

// tokenResult is a token endpoint response, successful or not.
type tokenResult struct {
	Status       int
	Header       http.Header
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    any    `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Patient      string `json:"patient"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`

	Encounter         string           `json:"encounter"`
	NeedPatientBanner *bool            `json:"need_patient_banner"`
	Intent            string           `json:"intent"`
	Tenant            string           `json:"tenant"`
	FHIRContext       []map[string]any `json:"fhirContext"`
}

// postToken calls the token endpoint; basic, when non-nil, holds the
// client id and secret for client_secret_basic.
func postToken(t *testing.T, endpoint string, form url.Values, basic []string) *tokenResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	res := &tokenResult{Status: resp.StatusCode, Header: resp.Header}
	if err := json.Unmarshal(body, res); err != nil {
		t.Fatalf("token endpoint: status %d, body not JSON: %s", resp.StatusCode, body)
	}
	return res
}

// redirectParams parses the query of a redirect to the app, after
// checking that it goes to the expected redirect URI.
func redirectParams(t *testing.T, p *testenv.Page, redirectURI string) url.Values {
	t.Helper()
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, redirectURI+"?") {
		t.Fatalf("expected a redirect to %s, got status %d, Location %q, body:\n%s", redirectURI, p.Status, p.Location, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// clientTypes registers the clients of every type and authentication
// method that the client-type tests use, and a resource server.
func (e *environment) clientTypes(cfg *config.Config) {
	// The upstream issues its refresh token, which online_access needs,
	// only when asked for offline_access.
	cfg.Upstream.Scopes = []string{"openid", "profile", "offline_access"}
	for i := range cfg.Clients {
		if cfg.Clients[i].ClientID == gatewaytest.PublicClient {
			cfg.Clients[i].Scopes = append(cfg.Clients[i].Scopes, "online_access")
		}
	}
	inline, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{e.backendKey.public()}})
	if err != nil {
		panic(err)
	}
	var inlineMap map[string]any
	if err := json.Unmarshal(inline, &inlineMap); err != nil {
		panic(err)
	}
	cfg.Clients = append(cfg.Clients,
		config.Client{ClientID: asymClient, Name: "Care Planner", Type: config.ClientConfidentialAsymmetric,
			RedirectURIs: []string{asymRedirect}, JWKSURI: e.jwks.URL,
			Scopes: []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"}},
		config.Client{ClientID: backendClient, Name: "Population Export", Type: config.ClientConfidentialAsymmetric,
			GrantTypes: []string{"client_credentials"}, JWKS: inlineMap, Scopes: []string{"system/*.rs"}},
		config.Client{ClientID: dpopClient, Name: "Bound Diary", Type: config.ClientPublic, RequireDPoP: true,
			RedirectURIs: []string{gatewaytest.PublicRedirect},
			Scopes:       []string{"launch/patient", "offline_access", "patient/*.rs"}},
	)
	cfg.ResourceServers = []config.Credential{{ID: rsID, Secret: rsSecret}}

	ehrKeys, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{e.ehrKey.public()}})
	if err != nil {
		panic(err)
	}
	var ehrMap map[string]any
	if err := json.Unmarshal(ehrKeys, &ehrMap); err != nil {
		panic(err)
	}
	cfg.EHR = config.EHR{LaunchClients: []config.Credential{{ID: ehrID, Secret: ehrSecret}}, LaunchJWKS: ehrMap,
		Tenant: "hospital-1"}
	cfg.FHIR.Picker = config.PatientPicker{BaseURL: e.fhir.URL, Token: fhirToken}
}
