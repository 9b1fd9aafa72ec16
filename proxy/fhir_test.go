package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/dpop"
	"github.com/smartgate/smartgate/internal/token"
)

const (
	testFHIRBase  = testPublicURL + "/fhir"
	testFHIROther = testPublicURL + "/fhir-other"
	testFHIRDown  = testPublicURL + "/fhir-down"
	testPatientID = "pat-1"
)

// fhirFixture is a test gateway that fronts a recording FHIR server at
// /fhir (target <server>/r4) and at /fhir-other, and a closed port at
// /fhir-down.
type fhirFixture struct {
	*testGateway
	fhir *recorder
}

func newFHIRFixture(t *testing.T) *fhirFixture {
	t.Helper()
	fhir := newRecorder(t, nil)
	fhir.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.Header().Set("Location", fhir.srv.URL+"/r4/Patient/"+testPatientID+"/_history/2")
		w.Header().Set("Content-Location", "https://elsewhere.example.org/r4/Patient/1")
		w.Header().Set("Set-Cookie", "backend=1; Path=/")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"`+testPatientID+`"}`)
	}
	down := closedPortURL(t)
	tg := newTestGateway(t, func(c *config.Config) {
		c.FHIR.BaseURLs = append(c.FHIR.BaseURLs, testFHIROther, testFHIRDown)
		c.FHIR.Servers = []config.FHIRServer{
			{BaseURL: testFHIRBase, Target: fhir.srv.URL + "/r4"},
			{BaseURL: testFHIROther, Target: fhir.srv.URL + "/other"},
			{BaseURL: testFHIRDown, Target: down},
		}
	})
	return &fhirFixture{testGateway: tg, fhir: fhir}
}

// mint signs an access token for the public test client at /fhir;
// change edits the claims before signing.
func (f *fhirFixture) mint(t *testing.T, change func(*token.AccessClaims)) string {
	t.Helper()
	return mintAccessToken(t, f.g, change)
}

// mintAccessToken signs an access token for the public test client at
// /fhir with the gateway's key; change edits the claims before signing.
func mintAccessToken(t *testing.T, g *Gateway, change func(*token.AccessClaims)) string {
	t.Helper()
	now := time.Now()
	c := token.AccessClaims{
		Issuer: testPublicURL, Subject: "user-1", Audience: testFHIRBase,
		Expiry: token.NumericDate(now.Add(5 * time.Minute)), IssuedAt: token.NumericDate(now),
		ID: token.AccessTokenID(token.RandomString(16)), ClientID: testPublicClient,
		Scope: "launch/patient patient/*.rs", Patient: testPatientID, FHIRUser: "Patient/" + testPatientID,
	}
	if change != nil {
		change(&c)
	}
	raw, err := g.minter.Access(c)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// proofKey is a client's DPoP key.
type proofKey struct {
	key *ecdsa.PrivateKey
	jkt string
}

func newProofKey(t *testing.T) *proofKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jkt, err := dpop.Thumbprint(jose.JSONWebKey{Key: key.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return &proofKey{key: key, jkt: jkt}
}

// proof signs a DPoP proof for a resource request, with the ath claim of
// accessToken.
func (k *proofKey) proof(t *testing.T, method, target, accessToken string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.key},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(accessToken))
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"htm": method, "htu": target, "iat": time.Now().Unix(), "jti": token.RandomString(12),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:]),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// checkOperationOutcome checks a response that the gateway made itself.
func checkOperationOutcome(t *testing.T, resp *http.Response, wantReason string) {
	t.Helper()
	if got := resp.Header.Get(headerGatewayError); got != wantReason {
		t.Errorf("%s = %q, want %q", headerGatewayError, got, wantReason)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q, want application/fhir+json", ct)
	}
	var oo operationOutcome
	if err := json.NewDecoder(resp.Body).Decode(&oo); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 || oo.Issue[0].Severity != "error" {
		t.Errorf("body = %+v, want an OperationOutcome with one error", oo)
	}
}

func TestFHIRProxyRejectsRequests(t *testing.T) {
	f := newFHIRFixture(t)
	key, otherKey := newProofKey(t), newProofKey(t)
	valid := f.mint(t, nil)
	bound := f.mint(t, func(c *token.AccessClaims) { c.Confirmation = &token.Confirmation{JKT: key.jkt} })
	revoked := f.mint(t, nil)
	revokedClaims, ok := f.g.verifyAccessToken(revoked)
	if !ok {
		t.Fatal("the test token does not verify")
	}
	if err := f.g.store.RevokeAccessToken(t.Context(), revokedClaims.ID, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	foreign := newTestGateway(t, nil)
	patientURL := testFHIRBase + "/Patient/" + testPatientID
	usedProof := key.proof(t, http.MethodGet, patientURL, bound)

	cases := []struct {
		name          string
		authorization []string
		dpopProof     string
		url           string
		wantStatus    int
		wantReason    string
		wantChallenge string // prefix of the first WWW-Authenticate value
	}{
		{"no Authorization header", nil, "", patientURL, 401, "missing_token", `Bearer realm="smartgate"`},
		{"Basic scheme", []string{"Basic dXNlcjpwYXNz"}, "", patientURL, 401, "missing_token", `Bearer realm="smartgate"`},
		{"two Authorization headers", []string{"Bearer " + valid, "Bearer " + valid}, "", patientURL, 400,
			"invalid_request", ""},
		{"empty token", []string{"Bearer "}, "", patientURL, 400, "invalid_request", ""},
		{"garbage token", []string{"Bearer not-a-jwt"}, "", patientURL, 401, "invalid_token",
			`Bearer realm="smartgate", error="invalid_token"`},
		{"token of another gateway", []string{"Bearer " + mintAccessToken(t, foreign.g, nil)}, "", patientURL, 401,
			"invalid_token", `Bearer realm="smartgate", error="invalid_token"`},
		{"expired token", []string{"Bearer " + f.mint(t, func(c *token.AccessClaims) {
			c.Expiry = token.NumericDate(time.Now().Add(-time.Minute))
		})}, "", patientURL, 401, "invalid_token", `Bearer realm="smartgate", error="invalid_token"`},
		{"token for another FHIR base", []string{"Bearer " + valid}, "", testFHIROther + "/Patient/" + testPatientID,
			401, "invalid_token", `Bearer realm="smartgate", error="invalid_token"`},
		{"revoked token", []string{"Bearer " + revoked}, "", patientURL, 401, "invalid_token",
			`Bearer realm="smartgate", error="invalid_token"`},
		{"bound token with the Bearer scheme", []string{"Bearer " + bound}, key.proof(t, http.MethodGet, patientURL, bound),
			patientURL, 401, "invalid_token", `Bearer realm="smartgate", error="invalid_token"`},
		{"unbound token with the DPoP scheme", []string{"DPoP " + valid}, key.proof(t, http.MethodGet, patientURL, valid),
			patientURL, 401, "invalid_token", `DPoP realm="smartgate", error="invalid_token"`},
		{"bound token without a proof", []string{"DPoP " + bound}, "", patientURL, 401, "invalid_dpop_proof",
			`DPoP realm="smartgate", error="invalid_dpop_proof"`},
		{"proof of another key", []string{"DPoP " + bound}, otherKey.proof(t, http.MethodGet, patientURL, bound),
			patientURL, 401, "invalid_dpop_proof", `DPoP realm="smartgate", error="invalid_dpop_proof"`},
		{"proof for another URL", []string{"DPoP " + bound}, key.proof(t, http.MethodGet, testFHIRBase+"/Observation", bound),
			patientURL, 401, "invalid_dpop_proof", `DPoP realm="smartgate", error="invalid_dpop_proof"`},
		{"proof for another method", []string{"DPoP " + bound}, key.proof(t, http.MethodDelete, patientURL, bound),
			patientURL, 401, "invalid_dpop_proof", `DPoP realm="smartgate", error="invalid_dpop_proof"`},
		{"proof for another token", []string{"DPoP " + bound}, key.proof(t, http.MethodGet, patientURL, valid),
			patientURL, 401, "invalid_dpop_proof", `DPoP realm="smartgate", error="invalid_dpop_proof"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.url, nil)
			for _, v := range tc.authorization {
				r.Header.Add("Authorization", v)
			}
			if tc.dpopProof != "" {
				r.Header.Set("DPoP", tc.dpopProof)
			}
			received := len(f.fhir.requests())
			resp := f.serve(r)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			challenges := resp.Header.Values("WWW-Authenticate")
			switch {
			case tc.wantChallenge == "" && len(challenges) != 0:
				t.Errorf("WWW-Authenticate = %q, want none", challenges)
			case tc.wantChallenge != "" && (len(challenges) == 0 || !strings.HasPrefix(challenges[0], tc.wantChallenge)):
				t.Errorf("WWW-Authenticate = %q, want a first value starting with %s", challenges, tc.wantChallenge)
			}
			checkOperationOutcome(t, resp, tc.wantReason)
			if n := len(f.fhir.requests()) - received; n != 0 {
				t.Errorf("the FHIR server received %d requests, want 0", n)
			}
		})
	}

	t.Run("replayed proof", func(t *testing.T) {
		send := func() *http.Response {
			r := httptest.NewRequest(http.MethodGet, patientURL, nil)
			r.Header.Set("Authorization", "DPoP "+bound)
			r.Header.Set("DPoP", usedProof)
			return f.serve(r)
		}
		if first := send(); first.StatusCode != http.StatusOK {
			t.Fatalf("first use of the proof: status %d, want 200", first.StatusCode)
		}
		second := send()
		if second.StatusCode != http.StatusUnauthorized {
			t.Errorf("second use of the proof: status %d, want 401", second.StatusCode)
		}
		checkOperationOutcome(t, second, "invalid_dpop_proof")
	})
}

func TestFHIRProxyForwardsVerifiedRequest(t *testing.T) {
	f := newFHIRFixture(t)
	raw := f.mint(t, nil)
	r := httptest.NewRequest(http.MethodGet, testFHIRBase+"/Patient/"+testPatientID+"?_format=json&_elements=id", nil)
	r.Header.Set("Authorization", "Bearer "+raw)
	r.Header.Set("Cookie", "smartgate_session=secret")
	r.Header.Set("X-Smartgate-Patient", "someone-else")
	r.Header.Set("X-Smartgate-Scope", "system/*.cruds")
	r.Header.Set("X-Smartgate-Extra", "forged")
	r.Header["x-smartgate-lower-case"] = []string{"forged"}
	r.Header.Set("Forwarded", "host=attacker.example")
	r.Header.Set("Accept", "application/fhir+json")

	resp := f.serve(r)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body:\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `"resourceType":"Patient"`) {
		t.Errorf("body = %q, want the FHIR server's Patient", body)
	}
	if got, want := resp.Header.Get("Location"), testFHIRBase+"/Patient/"+testPatientID+"/_history/2"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got, want := resp.Header.Get("Content-Location"), "https://elsewhere.example.org/r4/Patient/1"; got != want {
		t.Errorf("Content-Location = %q, want the foreign URL unchanged %q", got, want)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("Set-Cookie = %q, want none", got)
	}

	got := f.fhir.last(t)
	checks := []struct{ name, got, want string }{
		{"path", got.Path, "/r4/Patient/" + testPatientID},
		{"query", got.RawQuery, "_format=json&_elements=id"},
		{"Host", got.Host, strings.TrimPrefix(f.fhir.srv.URL, "http://")},
		{"Authorization", got.Header.Get("Authorization"), ""},
		{"Cookie", got.Header.Get("Cookie"), ""},
		{"Forwarded", got.Header.Get("Forwarded"), ""},
		{"Accept", got.Header.Get("Accept"), "application/fhir+json"},
		{"X-Smartgate-Patient", got.Header.Get("X-Smartgate-Patient"), testPatientID},
		{"X-Smartgate-Scope", got.Header.Get("X-Smartgate-Scope"), "launch/patient patient/*.rs"},
		{"X-Smartgate-Client-Id", got.Header.Get("X-Smartgate-Client-Id"), testPublicClient},
		{"X-Smartgate-Fhir-User", got.Header.Get("X-Smartgate-Fhir-User"), "Patient/" + testPatientID},
		{"X-Smartgate-Subject", got.Header.Get("X-Smartgate-Subject"), "user-1"},
		{"X-Smartgate-Encounter", got.Header.Get("X-Smartgate-Encounter"), ""},
		{"X-Smartgate-Extra", got.Header.Get("X-Smartgate-Extra"), ""},
		{"x-smartgate-lower-case", got.Header.Get("X-Smartgate-Lower-Case"), ""},
		{"X-Forwarded-Host", got.Header.Get("X-Forwarded-Host"), "gateway.test"},
		{"X-Forwarded-Proto", got.Header.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Prefix", got.Header.Get("X-Forwarded-Prefix"), "/fhir"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("forwarded %s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(got.Header.Values("X-Smartgate-Patient")) != 1 {
		t.Errorf("forwarded X-Smartgate-Patient values = %q, want exactly one", got.Header.Values("X-Smartgate-Patient"))
	}
	if got.Header.Get("X-Request-Id") == "" || got.Header.Get("X-Request-Id") != resp.Header.Get("X-Request-Id") {
		t.Errorf("forwarded X-Request-Id = %q, want the gateway's %q", got.Header.Get("X-Request-Id"),
			resp.Header.Get("X-Request-Id"))
	}
	if strings.Contains(f.logs.String(), raw) {
		t.Error("the gateway logged the access token")
	}
}

func TestFHIRProxyMapsPaths(t *testing.T) {
	f := newFHIRFixture(t)
	raw := f.mint(t, nil)
	cases := []struct {
		name        string
		url         string
		wantPath    string
		wantRawPath string
		wantQuery   string
	}{
		{"resource", "/fhir/Patient/pat-1", "/r4/Patient/pat-1", "", ""},
		{"base with a slash", "/fhir/", "/r4/", "", ""},
		{"search with a query", "/fhir/Observation?patient=pat-1&code=http%3A%2F%2Floinc.org%7C1234-5",
			"/r4/Observation", "", "patient=pat-1&code=http%3A%2F%2Floinc.org%7C1234-5"},
		{"escaped slash", "/fhir/Binary/a%2Fb", "/r4/Binary/a/b", "/r4/Binary/a%2Fb", ""},
		{"operation", "/fhir/Patient/pat-1/$everything", "/r4/Patient/pat-1/$everything", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, testPublicURL+tc.url, nil)
			r.Header.Set("Authorization", "Bearer "+raw)
			resp := f.serve(r)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", resp.StatusCode)
			}
			got := f.fhir.last(t)
			if got.Path != tc.wantPath {
				t.Errorf("path = %q, want %q", got.Path, tc.wantPath)
			}
			if got.RawPath != tc.wantRawPath {
				t.Errorf("raw path = %q, want %q", got.RawPath, tc.wantRawPath)
			}
			if got.RawQuery != tc.wantQuery {
				t.Errorf("query = %q, want %q", got.RawQuery, tc.wantQuery)
			}
		})
	}
}

func TestFHIRProxyMapsBaseWithoutSlash(t *testing.T) {
	f := newFHIRFixture(t)
	// The gateway's mux sends "/fhir" to the FHIR proxy only when the base
	// path itself is registered, so the proxy is called directly here.
	proxy := f.g.newFHIRProxy(f.g.cfg.FHIR.Servers[0])
	r := httptest.NewRequest(http.MethodPost, testFHIRBase, strings.NewReader(`{"resourceType":"Bundle"}`))
	r.Header.Set("Authorization", "Bearer "+f.mint(t, nil))
	w := httptest.NewRecorder()
	proxy.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", w.Code)
	}
	if got := f.fhir.last(t).Path; got != "/r4" {
		t.Errorf("path = %q, want the target base /r4", got)
	}
}

func TestFHIRProxyAcceptsDPoPBoundToken(t *testing.T) {
	f := newFHIRFixture(t)
	key := newProofKey(t)
	bound := f.mint(t, func(c *token.AccessClaims) { c.Confirmation = &token.Confirmation{JKT: key.jkt} })
	target := testFHIRBase + "/Observation?patient=" + testPatientID
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{"resourceType":"Observation"}`))
	r.Header.Set("Content-Type", "application/fhir+json")
	r.Header.Set("Authorization", "DPoP "+bound)
	r.Header.Set("DPoP", key.proof(t, http.MethodPost, target, bound))
	resp := f.serve(r)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body:\n%s", resp.StatusCode, readBody(t, resp))
	}
	got := f.fhir.last(t)
	if got.Header.Get("DPoP") != "" || got.Header.Get("Authorization") != "" {
		t.Errorf("forwarded credentials: DPoP %q, Authorization %q, want neither", got.Header.Get("DPoP"),
			got.Header.Get("Authorization"))
	}
	if got.Body != `{"resourceType":"Observation"}` {
		t.Errorf("forwarded body = %q", got.Body)
	}
}

func TestFHIRProxyFailures(t *testing.T) {
	f := newFHIRFixture(t)
	cases := []struct {
		name       string
		request    func() *http.Request
		before     func()
		wantStatus int
		wantReason string
	}{
		{"FHIR server down", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, testFHIRDown+"/Patient/"+testPatientID, nil)
			r.Header.Set("Authorization", "Bearer "+f.mint(t, func(c *token.AccessClaims) { c.Audience = testFHIRDown }))
			return r
		}, nil, http.StatusBadGateway, "fhir_server_unavailable"},
		{"state store down", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, testFHIRBase+"/Patient/"+testPatientID, nil)
			r.Header.Set("Authorization", "Bearer "+f.mint(t, nil))
			return r
		}, func() { f.redis.Close() }, http.StatusServiceUnavailable, "temporarily_unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.request()
			if tc.before != nil {
				tc.before()
			}
			received := len(f.fhir.requests())
			start := time.Now()
			resp := f.serve(r)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the error took %s", took)
			}
			checkOperationOutcome(t, resp, tc.wantReason)
			if n := len(f.fhir.requests()) - received; n != 0 {
				t.Errorf("the FHIR server received %d requests, want 0", n)
			}
		})
	}
}

func TestFHIRProxyBodyTooLarge(t *testing.T) {
	f := newFHIRFixture(t)
	r := httptest.NewRequest(http.MethodPost, testFHIRBase+"/Bundle", strings.NewReader(strings.Repeat("x", maxFHIRBytes+1)))
	r.Header.Set("Content-Type", "application/fhir+json")
	r.Header.Set("Authorization", "Bearer "+f.mint(t, nil))
	resp := f.serve(r)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	checkOperationOutcome(t, resp, "body_too_large")
	// The FHIR server may see the start of the request, which ends
	// before its declared length, so its count is not checked.
}

func TestFHIRProxyPublicLocation(t *testing.T) {
	p := &fhirProxy{audience: testFHIRBase, targetBase: "http://fhir.internal:8080/r4"}
	cases := []struct{ in, want string }{
		{"http://fhir.internal:8080/r4/Patient/1/_history/2", testFHIRBase + "/Patient/1/_history/2"},
		{"http://fhir.internal:8080/r4", testFHIRBase},
		{"http://fhir.internal:8080/r4?_getpages=abc", testFHIRBase + "?_getpages=abc"},
		{"http://fhir.internal:8080/r4x/Patient/1", "http://fhir.internal:8080/r4x/Patient/1"},
		{"Patient/1/_history/2", "Patient/1/_history/2"},
		{"https://elsewhere.example.org/r4/Patient/1", "https://elsewhere.example.org/r4/Patient/1"},
	}
	for _, tc := range cases {
		if got := p.publicLocation(tc.in); got != tc.want {
			t.Errorf("publicLocation(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
