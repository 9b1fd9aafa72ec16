package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

const appRedirect = "http://127.0.0.1:9/callback" // matches the registered loopback URI on any port

// standaloneLaunch runs a launch up to the consent page: authorize, then
// log in at the upstream's form.
func standaloneLaunch(t *testing.T, e *environment, b *testenv.Browser, l *launch, user, password string) *testenv.Page {
	t.Helper()
	disc := discover(t, e.fhirBase)
	login := b.Get(disc.AuthorizationEndpoint + "?" + l.params().Encode())
	if login.Status != http.StatusOK || !strings.HasPrefix(login.URL.String(), e.upstream.Issuer) {
		t.Fatalf("expected the upstream login page, got %d at %s:\n%s", login.Status, login.URL, login.Body)
	}
	return b.LogIn(login, user, password)
}

func TestStandaloneLaunchEndToEnd(t *testing.T) {
	e := shared(t)
	ctx := context.Background()
	disc := discover(t, e.fhirBase)
	if !contains(disc.CodeChallengeMethods, "S256") || contains(disc.CodeChallengeMethods, "plain") {
		t.Errorf("code_challenge_methods_supported = %v, want S256 only", disc.CodeChallengeMethods)
	}
	for _, c := range []string{"launch-standalone", "client-public", "client-confidential-symmetric",
		"sso-openid-connect", "context-standalone-patient", "permission-offline", "permission-v2"} {
		if !contains(disc.Capabilities, c) {
			t.Errorf("capability %s missing from %v", c, disc.Capabilities)
		}
	}

	scopes := "openid fhirUser profile launch/patient offline_access patient/Patient.rs patient/Observation.rs patient/AllergyIntolerance.rs"
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, scopes)
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "Patient Diary") {
		t.Fatalf("expected the consent page naming the app, got %d:\n%s", page.Status, page.Body)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("consent page CSP = %q, want frame-ancestors 'none'", csp)
	}
	if !strings.Contains(page.Body, testenv.PatientName) {
		t.Errorf("consent page does not name the patient %q", testenv.PatientName)
	}
	form := page.Form(t)
	if err := form.Uncheck("scope", "patient/Observation.rs"); err != nil {
		t.Fatalf("consent page: %v; checkboxes: %+v", err, form.Boxes)
	}
	params := redirectParams(t, b.Submit(form, url.Values{"decision": {"allow"}}), appRedirect)
	if params.Get("state") != l.State {
		t.Errorf("state = %q, want %q", params.Get("state"), l.State)
	}
	if params.Get("iss") != disc.Issuer {
		t.Errorf("iss = %q, want %q", params.Get("iss"), disc.Issuer)
	}
	code := params.Get("code")

	tok := postToken(t, disc.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient},
	}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %s: %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	if cc := tok.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if _, isNumber := tok.ExpiresIn.(float64); !isNumber {
		t.Errorf("expires_in = %#v, want a JSON number", tok.ExpiresIn)
	}
	wantScope := "openid fhirUser profile launch/patient offline_access patient/Patient.rs patient/AllergyIntolerance.rs"
	if tok.Scope != wantScope {
		t.Errorf("scope = %q, want %q", tok.Scope, wantScope)
	}
	if tok.Patient != testenv.PatientID {
		t.Errorf("patient = %q, want %q", tok.Patient, testenv.PatientID)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh_token although offline_access was granted")
	}

	claims := verifyAccessToken(t, disc.JWKSURI, tok.AccessToken)
	if claims["scope"] != wantScope || claims["patient"] != testenv.PatientID || claims["client_id"] != gatewaytest.PublicClient ||
		claims["aud"] != e.fhirBase || claims["fhirUser"] != "Patient/"+testenv.PatientID {
		t.Errorf("access token claims = %v", claims)
	}
	for _, c := range []string{"exp", "jti", "iat", "sub"} {
		if claims[c] == nil {
			t.Errorf("access token lacks %s", c)
		}
	}

	provider, err := oidc.NewProvider(ctx, disc.Issuer)
	if err != nil {
		t.Fatalf("OpenID Connect discovery at the gateway: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: gatewaytest.PublicClient, SupportedSigningAlgs: []string{"RS256"}}).Verify(ctx, tok.IDToken)
	if err != nil {
		t.Fatalf("id_token does not verify with RS256: %v", err)
	}
	var idClaims struct {
		FHIRUser string `json:"fhirUser"`
		Name     string `json:"name"`
	}
	if err := idt.Claims(&idClaims); err != nil {
		t.Fatal(err)
	}
	if idClaims.FHIRUser != "Patient/"+testenv.PatientID || idt.Nonce != l.Nonce || idClaims.Name != testenv.PatientName {
		t.Errorf("id_token fhirUser=%q nonce=%q name=%q", idClaims.FHIRUser, idt.Nonce, idClaims.Name)
	}

	refresh := func(rt string, extra url.Values) *tokenResult {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {gatewaytest.PublicClient}}
		for k, v := range extra {
			form[k] = v
		}
		return postToken(t, disc.TokenEndpoint, form, nil)
	}
	wider := refresh(tok.RefreshToken, url.Values{"scope": {"patient/Observation.rs"}})
	if wider.Status != http.StatusBadRequest || wider.Error != "invalid_scope" {
		t.Errorf("refresh with a wider scope: %d %q, want 400 invalid_scope", wider.Status, wider.Error)
	}
	narrow := refresh(tok.RefreshToken, url.Values{"scope": {"patient/Patient.rs"}})
	if narrow.Status != http.StatusOK || narrow.Scope != "patient/Patient.rs" || narrow.RefreshToken == "" ||
		narrow.RefreshToken == tok.RefreshToken {
		t.Fatalf("narrowed refresh: %d %q scope=%q rotated=%v", narrow.Status, narrow.Error, narrow.Scope,
			narrow.RefreshToken != tok.RefreshToken)
	}
	if c := verifyAccessToken(t, disc.JWKSURI, narrow.AccessToken); c["scope"] != "patient/Patient.rs" {
		t.Errorf("narrowed access token scope = %v", c["scope"])
	}
	full := refresh(narrow.RefreshToken, nil)
	if full.Status != http.StatusOK || full.Scope != wantScope {
		t.Fatalf("refresh: %d %q scope=%q", full.Status, full.Error, full.Scope)
	}

	again := postToken(t, disc.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient},
	}, nil)
	if again.Status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("second use of the code: %d %q, want 400 invalid_grant", again.Status, again.Error)
	}
	if after := refresh(full.RefreshToken, nil); after.Error != "invalid_grant" {
		t.Errorf("refresh after the code was reused: %d %q, want invalid_grant (grant revoked)", after.Status, after.Error)
	}

	logs := e.gw.Logs()
	for name, secret := range map[string]string{"code": code, "access token": tok.AccessToken,
		"refresh token": tok.RefreshToken, "id token": tok.IDToken, "rotated refresh token": narrow.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the gateway logged the %s", name)
		}
	}
}

// verifyAccessToken checks the ES256 signature against the gateway's JWKS
// and returns the claims.
func verifyAccessToken(t *testing.T, jwksURI, raw string) map[string]any {
	t.Helper()
	resp, err := http.Get(jwksURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("access token is not an ES256 JWS: %v", err)
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders["typ"].(string); typ != "at+jwt" {
		t.Errorf("access token typ = %q, want at+jwt", typ)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("jwks has %d keys with kid %q", len(keys), jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("access token signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if exp, _ := claims["exp"].(float64); time.Unix(int64(exp), 0).Before(time.Now()) {
		t.Errorf("access token already expired: exp %v", claims["exp"])
	}
	return claims
}

func TestConfidentialClientBasicAuth(t *testing.T) {
	e := shared(t)
	disc := discover(t, e.fhirBase)
	l := newLaunch(e, gatewaytest.ConfidentialClient, gatewaytest.ConfidentialRedir, "launch/patient offline_access patient/*.rs")
	b := testenv.NewBrowser(t, gatewaytest.ConfidentialRedir)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	params := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), gatewaytest.ConfidentialRedir)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {params.Get("code")},
		"redirect_uri": {gatewaytest.ConfidentialRedir}, "code_verifier": {l.Verifier}}

	bad := postToken(t, disc.TokenEndpoint, form, []string{gatewaytest.ConfidentialClient, "wrong-secret"})
	if bad.Status != http.StatusUnauthorized || bad.Error != "invalid_client" || bad.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong secret: %d %q WWW-Authenticate=%q, want 401 invalid_client with a challenge",
			bad.Status, bad.Error, bad.Header.Get("WWW-Authenticate"))
	}
	noAuth := postToken(t, disc.TokenEndpoint, form, nil)
	if noAuth.Status != http.StatusUnauthorized || noAuth.Error != "invalid_client" {
		t.Errorf("no client authentication: %d %q, want 401 invalid_client", noAuth.Status, noAuth.Error)
	}
	tok := postToken(t, disc.TokenEndpoint, form, []string{gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret})
	if tok.Status != http.StatusOK || tok.Patient != testenv.PatientID || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %d %q patient=%q refresh=%v", tok.Status, tok.Error, tok.Patient, tok.RefreshToken != "")
	}
	if tok.IDToken != "" {
		t.Error("an id_token was issued without the openid scope")
	}
	refreshForm := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	for i := 0; i < 2; i++ {
		r := postToken(t, disc.TokenEndpoint, refreshForm, []string{gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret})
		if r.Status != http.StatusOK || r.RefreshToken != "" {
			t.Fatalf("refresh %d: %d %q, new refresh token issued: %v (confidential clients do not rotate by default)",
				i+1, r.Status, r.Error, r.RefreshToken != "")
		}
	}
	stolen := postToken(t, disc.TokenEndpoint, url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {tok.RefreshToken}, "client_id": {gatewaytest.PublicClient}}, nil)
	if stolen.Status != http.StatusBadRequest || stolen.Error != "invalid_grant" {
		t.Errorf("refresh token presented by another client: %d %q, want invalid_grant", stolen.Status, stolen.Error)
	}
}

func TestAuthorizeRejections(t *testing.T) {
	e := shared(t)
	disc := discover(t, e.fhirBase)
	scope := "launch/patient patient/*.rs"
	cases := []struct {
		name   string
		change func(url.Values)
		page   string // expected text of an error page; "" means a redirect
		error  string // expected error of the redirect
	}{
		{"unknown client", func(v url.Values) { v.Set("client_id", "no-such-app") }, "not registered", ""},
		{"unregistered redirect", func(v url.Values) { v.Set("redirect_uri", "https://evil.example/callback") }, "not registered", ""},
		{"redirect with extra path", func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:9/callback/x") }, "not registered", ""},
		{"missing redirect", func(v url.Values) { v.Del("redirect_uri") }, "not registered", ""},
		{"missing PKCE", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, "", "invalid_request"},
		{"plain PKCE", func(v url.Values) { v.Set("code_challenge_method", "plain") }, "", "invalid_request"},
		{"wrong aud", func(v url.Values) { v.Set("aud", "https://other.example.org/fhir") }, "", "invalid_request"},
		{"missing aud", func(v url.Values) { v.Del("aud") }, "", "invalid_request"},
		{"token response type", func(v url.Values) { v.Set("response_type", "token") }, "", "unsupported_response_type"},
		{"no grantable scope", func(v url.Values) { v.Set("scope", "system/*.rs patient/Observation.bogus") }, "", "invalid_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLaunch(e, gatewaytest.PublicClient, appRedirect, scope)
			v := l.params()
			tc.change(v)
			b := testenv.NewBrowser(t, appRedirect, "https://evil.example")
			p := b.Get(disc.AuthorizationEndpoint + "?" + v.Encode())
			if tc.page != "" {
				if p.Status != http.StatusBadRequest || p.Location != "" || !strings.Contains(p.Body, tc.page) {
					t.Fatalf("want an error page with %q and no redirect, got %d Location=%q:\n%s", tc.page, p.Status, p.Location, p.Body)
				}
				return
			}
			q := redirectParams(t, p, appRedirect)
			if q.Get("error") != tc.error || q.Get("state") != l.State || q.Get("iss") != disc.Issuer {
				t.Errorf("redirect error=%q state=%q iss=%q, want %q, %q, %q", q.Get("error"), q.Get("state"), q.Get("iss"),
					tc.error, l.State, disc.Issuer)
			}
		})
	}

	t.Run("POST authorize", func(t *testing.T) {
		l := newLaunch(e, gatewaytest.PublicClient, appRedirect, scope)
		b := testenv.NewBrowser(t, appRedirect)
		p := b.Post(disc.AuthorizationEndpoint, l.params())
		if p.Status != http.StatusOK || !strings.HasPrefix(p.URL.String(), e.upstream.Issuer) {
			t.Fatalf("POST authorize should lead to the upstream login, got %d at %s", p.Status, p.URL)
		}
	})
}

func TestWrongCodeVerifier(t *testing.T) {
	e := shared(t)
	disc := discover(t, e.fhirBase)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	params := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, disc.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {params.Get("code")}, "redirect_uri": {appRedirect},
		"code_verifier": {strings.Repeat("x", 43)}, "client_id": {gatewaytest.PublicClient},
	}, nil)
	if tok.Status != http.StatusBadRequest || tok.Error != "invalid_grant" {
		t.Errorf("wrong code_verifier: %d %q, want 400 invalid_grant", tok.Status, tok.Error)
	}
}

func TestConsentDenied(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	form := page.Form(t)
	q := redirectParams(t, b.Submit(form, url.Values{"decision": {"deny"}}), appRedirect)
	if q.Get("error") != "access_denied" || q.Get("state") != l.State || q.Get("iss") == "" || q.Get("code") != "" {
		t.Errorf("deny redirect: %v, want error=access_denied with state and iss and no code", q)
	}
	replay := b.Submit(form, url.Values{"decision": {"allow"}})
	if replay.Status != http.StatusBadRequest || replay.Location != "" {
		t.Errorf("replayed consent form: %d Location=%q, want 400 page and no redirect", replay.Status, replay.Location)
	}
}

func TestUserWithoutPatientRecord(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "openid fhirUser launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.StaffUser, testenv.StaffPassword)
	if page.Status != http.StatusForbidden || !strings.Contains(page.Body, "has no patient record") {
		t.Fatalf("want a 403 page about the missing patient record, got %d:\n%s", page.Status, page.Body)
	}
	if !strings.Contains(page.Body, "error=access_denied") {
		t.Error("the page offers no way back to the app with access_denied")
	}
}

func TestConsentCrossSitePost(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	form := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword).Form(t)
	for name, header := range map[string][2]string{
		"cross-site fetch": {"Sec-Fetch-Site", "cross-site"},
		"foreign origin":   {"Origin", "https://evil.example"},
	} {
		v := url.Values{}
		for k, vs := range form.Fields {
			v[k] = vs
		}
		v.Set("decision", "allow")
		req, err := http.NewRequest(http.MethodPost, form.Action, strings.NewReader(v.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(header[0], header[1])
		if p := b.Do(req); p.Status != http.StatusForbidden || p.Location != "" {
			t.Errorf("%s: status %d Location %q, want 403 and no redirect", name, p.Status, p.Location)
		}
	}
	// The refused posts consumed nothing: the patient's own decision still counts.
	q := redirectParams(t, b.Submit(form, url.Values{"decision": {"allow"}}), appRedirect)
	if q.Get("code") == "" {
		t.Errorf("no code after the refused cross-site posts: %v", q)
	}
}
