package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// clientAuth authenticates one token request of a test client: extra form
// values and, for client_secret_basic, the Basic credentials.
type clientAuth func(t *testing.T) (url.Values, []string)

func publicAuth(id string) clientAuth {
	return func(*testing.T) (url.Values, []string) { return url.Values{"client_id": {id}}, nil }
}

func basicAuth(id, secret string) clientAuth {
	return func(*testing.T) (url.Values, []string) { return url.Values{}, []string{id, secret} }
}

func jwtAuth(k *signingKey, id, audience string) clientAuth {
	return func(t *testing.T) (url.Values, []string) {
		return assertionForm(k.assertion(t, id, audience, nil)), nil
	}
}

// tokenCall posts a token request with a client's authentication.
func tokenCall(t *testing.T, e *environment, auth clientAuth, form url.Values) *tokenResult {
	t.Helper()
	extra, basic := auth(t)
	for k, v := range form {
		extra[k] = v
	}
	return postToken(t, e.gw.URL+"/token", extra, basic)
}

// codeFor runs a launch for a client in a fresh browser, allows every
// scope, and returns the launch and its code.
func codeFor(t *testing.T, e *environment, clientID, redirect, scope string) (*launch, string) {
	t.Helper()
	l := newLaunch(e, clientID, redirect, scope)
	b := testenv.NewBrowser(t, redirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	q := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), redirect)
	return l, q.Get("code")
}

func TestClientTypeMatrix(t *testing.T) {
	e := shared(t)
	tokenURL := e.gw.URL + "/token"
	const scopes = "launch/patient offline_access patient/*.rs"
	cases := []struct {
		name     string
		client   string
		redirect string
		auth     clientAuth
		bad      clientAuth
		other    clientAuth // another client presenting the refresh token
	}{
		{"public", gatewaytest.PublicClient, appRedirect, publicAuth(gatewaytest.PublicClient),
			basicAuth(gatewaytest.PublicClient, "a-secret-a-public-client-cannot-have"),
			basicAuth(gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret)},
		{"confidential symmetric", gatewaytest.ConfidentialClient, gatewaytest.ConfidentialRedir,
			basicAuth(gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret),
			basicAuth(gatewaytest.ConfidentialClient, "wrong-secret"), publicAuth(gatewaytest.PublicClient)},
		{"confidential asymmetric RS384", asymClient, asymRedirect, jwtAuth(e.asymRS, asymClient, tokenURL),
			jwtAuth(impostor(t, e.asymRS), asymClient, tokenURL), publicAuth(gatewaytest.PublicClient)},
		{"confidential asymmetric ES384", asymClient, asymRedirect, jwtAuth(e.asymES, asymClient, tokenURL),
			jwtAuth(e.asymES, asymClient, "https://elsewhere.example.org/token"), publicAuth(gatewaytest.PublicClient)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, code := codeFor(t, e, tc.client, tc.redirect, scopes)
			exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code},
				"redirect_uri": {tc.redirect}, "code_verifier": {l.Verifier}}

			if bad := tokenCall(t, e, tc.bad, exchange); bad.Status != http.StatusUnauthorized || bad.Error != "invalid_client" {
				t.Errorf("bad credentials: %d %q, want 401 invalid_client", bad.Status, bad.Error)
			}
			tok := tokenCall(t, e, tc.auth, exchange)
			if tok.Status != http.StatusOK || tok.RefreshToken == "" || tok.Scope != scopes {
				t.Fatalf("code exchange: %d %q scope=%q refresh=%v", tok.Status, tok.Error, tok.Scope, tok.RefreshToken != "")
			}
			rt := tok.RefreshToken
			use := func(extra url.Values) *tokenResult {
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
				for k, v := range extra {
					form[k] = v
				}
				res := tokenCall(t, e, tc.auth, form)
				if res.RefreshToken != "" {
					rt = res.RefreshToken
				}
				return res
			}
			if r := use(nil); r.Status != http.StatusOK || r.Scope != scopes {
				t.Errorf("refresh: %d %q scope=%q", r.Status, r.Error, r.Scope)
			}
			if r := use(url.Values{"scope": {"patient/Patient.rs"}}); r.Status != http.StatusOK || r.Scope != "patient/Patient.rs" {
				t.Errorf("narrower refresh: %d %q scope=%q", r.Status, r.Error, r.Scope)
			}
			if r := use(url.Values{"scope": {"patient/*.cruds"}}); r.Status != http.StatusBadRequest || r.Error != "invalid_scope" {
				t.Errorf("wider refresh: %d %q, want 400 invalid_scope", r.Status, r.Error)
			}
			stolen := tokenCall(t, e, tc.other, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			if stolen.Status != http.StatusBadRequest || stolen.Error != "invalid_grant" {
				t.Errorf("refresh token of another client: %d %q, want 400 invalid_grant", stolen.Status, stolen.Error)
			}
			if r := use(nil); r.Status != http.StatusOK {
				t.Errorf("refresh after the foreign attempt: %d %q", r.Status, r.Error)
			}
		})
	}
}

// impostor is a fresh key that claims the key id of k, so its
// signatures fail without making the gateway fetch the client's keys.
func impostor(t *testing.T, k *signingKey) *signingKey {
	f := newSigningKey(t, k.alg)
	f.kid = k.kid
	return f
}

func TestPrivateKeyJWT(t *testing.T) {
	e := shared(t)
	tokenURL := e.gw.URL + "/token"
	backend := func(k *signingKey, change func(map[string]any)) *tokenResult {
		form := assertionForm(k.assertion(t, backendClient, tokenURL, change))
		form["grant_type"] = []string{"client_credentials"}
		form["scope"] = []string{"system/Observation.rs"}
		return postToken(t, tokenURL, form, nil)
	}
	if r := backend(e.backendKey, func(c map[string]any) { delete(c, "iat") }); r.Status != http.StatusOK {
		t.Errorf("assertion without iat: %d %q %s, want 200", r.Status, r.Error, r.ErrorDesc)
	}
	if r := backend(e.backendKey, func(c map[string]any) { c["exp"] = time.Now().Add(time.Hour).Unix() }); r.Error != "invalid_client" {
		t.Errorf("exp an hour ahead: %d %q, want invalid_client", r.Status, r.Error)
	}
	replayed := e.backendKey.assertion(t, backendClient, tokenURL, nil)
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		form := assertionForm(replayed)
		form["grant_type"] = []string{"client_credentials"}
		form["scope"] = []string{"system/Observation.rs"}
		if r := postToken(t, tokenURL, form, nil); r.Status != want {
			t.Errorf("use %d of one assertion: %d %q, want %d", i+1, r.Status, r.Error, want)
		}
	}

	// The client rotates its key at its jwks_uri: the new key id makes the
	// gateway fetch the set again, and the retired key stops working.
	newKey := newSigningKey(t, jose.ES384)
	e.jwks.publish(newKey, e.asymRS)
	t.Cleanup(func() { e.jwks.publish(e.asymRS, e.asymES) })
	l, code := codeFor(t, e, asymClient, asymRedirect, "launch/patient patient/*.rs")
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {asymRedirect},
		"code_verifier": {l.Verifier}}
	if r := tokenCall(t, e, jwtAuth(newKey, asymClient, tokenURL), exchange); r.Status != http.StatusOK {
		t.Errorf("assertion with the rotated-in key: %d %q %s", r.Status, r.Error, r.ErrorDesc)
	}
}

func TestBackendServices(t *testing.T) {
	e := shared(t)
	tokenURL := e.gw.URL + "/token"
	form := assertionForm(e.backendKey.assertion(t, backendClient, tokenURL, nil))
	form["grant_type"] = []string{"client_credentials"}
	form["scope"] = []string{"system/Observation.rs system/Patient.cruds patient/Observation.rs"}
	tok := postToken(t, tokenURL, form, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("client_credentials: %d %q %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	if tok.RefreshToken != "" || tok.IDToken != "" {
		t.Error("a backend service got a refresh token or an ID token")
	}
	if exp, _ := tok.ExpiresIn.(float64); exp <= 0 || exp > 300 {
		t.Errorf("expires_in = %v, want at most 300", tok.ExpiresIn)
	}
	if tok.Scope != "system/Observation.rs" {
		t.Errorf("scope = %q, want only the allowed system/Observation.rs", tok.Scope)
	}
	claims := verifyAccessToken(t, e.gw.URL+"/jwks", tok.AccessToken)
	if claims["client_id"] != backendClient || claims["sub"] != backendClient {
		t.Errorf("backend access token claims: %v", claims)
	}

	public := postToken(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {"system/Observation.rs"},
		"client_id": {gatewaytest.PublicClient}}, nil)
	if public.Status != http.StatusBadRequest || public.Error != "unauthorized_client" {
		t.Errorf("client_credentials by a public client: %d %q, want unauthorized_client", public.Status, public.Error)
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := shared(t)
	reuse := testutil.ToFloat64(e.gw.Metrics.ReuseDetected.WithLabelValues("refresh_token"))
	l, code := codeFor(t, e, gatewaytest.PublicClient, appRedirect, "launch/patient offline_access patient/*.rs")
	auth := publicAuth(gatewaytest.PublicClient)
	first := tokenCall(t, e, auth, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}})
	refresh := func(rt string) *tokenResult {
		return tokenCall(t, e, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	second := refresh(first.RefreshToken)
	if second.Status != http.StatusOK || second.RefreshToken == first.RefreshToken {
		t.Fatalf("rotation: %d %q", second.Status, second.Error)
	}
	// The app lost the response and retries with the old token, inside
	// the grace window: that works once.
	retry := refresh(first.RefreshToken)
	if retry.Status != http.StatusOK {
		t.Fatalf("retry inside the grace window: %d %q", retry.Status, retry.Error)
	}
	if again := refresh(first.RefreshToken); again.Error != "invalid_grant" {
		t.Fatalf("second reuse: %d %q, want invalid_grant", again.Status, again.Error)
	}
	if newest := refresh(retry.RefreshToken); newest.Error != "invalid_grant" {
		t.Errorf("newest token after reuse: %d %q, want invalid_grant (family revoked)", newest.Status, newest.Error)
	}
	if got := testutil.ToFloat64(e.gw.Metrics.ReuseDetected.WithLabelValues("refresh_token")); got != reuse+1 {
		t.Errorf("smartgate_reuse_detected_total{kind=refresh_token} went from %v to %v, want +1", reuse, got)
	}
	if !strings.Contains(e.gw.Logs(), `"event":"refresh_reuse_detected"`) {
		t.Error("no refresh_reuse_detected audit event")
	}
	if res := introspect(t, e, retry.AccessToken); res["active"] != false {
		t.Errorf("access token of the revoked family: introspection %v, want inactive", res)
	}
}

func TestOnlineAccessEndsWithUpstreamSession(t *testing.T) {
	e := shared(t)
	l, code := codeFor(t, e, gatewaytest.PublicClient, appRedirect, "launch/patient online_access patient/*.rs")
	auth := publicAuth(gatewaytest.PublicClient)
	tok := tokenCall(t, e, auth, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}})
	if tok.Status != http.StatusOK || tok.RefreshToken == "" || !strings.Contains(tok.Scope, "online_access") {
		t.Fatalf("code exchange: %d %q scope=%q refresh=%v", tok.Status, tok.Error, tok.Scope, tok.RefreshToken != "")
	}
	r := tokenCall(t, e, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if r.Status != http.StatusOK {
		t.Fatalf("refresh while the upstream session lives: %d %q %s", r.Status, r.Error, r.ErrorDesc)
	}

	revokeUpstreamSessions(t, e, testenv.PatientUser)
	after := tokenCall(t, e, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}})
	if after.Status != http.StatusBadRequest || after.Error != "invalid_grant" {
		t.Errorf("refresh after the upstream session ended: %d %q, want invalid_grant", after.Status, after.Error)
	}
}

// revokeUpstreamSessions ends every session and grant of a user at the
// test identity provider.
func revokeUpstreamSessions(t *testing.T, e *environment, user string) {
	t.Helper()
	u, err := url.Parse(e.upstream.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(u.Scheme+"://"+u.Host+"/_test/revoke-sessions?user="+user, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("upstream revoke-sessions: %d %s", resp.StatusCode, body)
	}
}

func TestDPoPBinding(t *testing.T) {
	e := shared(t)
	tokenURL := e.gw.URL + "/token"
	key, other := newSigningKey(t, jose.ES256), newSigningKey(t, jose.ES256)
	l, code := codeFor(t, e, dpopClient, appRedirect, "launch/patient offline_access patient/*.rs")
	call := func(k *signingKey, form url.Values) *tokenResult {
		form.Set("client_id", dpopClient)
		req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if k != nil {
			req.Header.Set("DPoP", k.dpopProof(t, http.MethodPost, tokenURL))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		res := &tokenResult{Status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(res); err != nil {
			t.Fatal(err)
		}
		return res
	}
	exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {appRedirect},
		"code_verifier": {l.Verifier}}
	if r := call(nil, exchange); r.Error != "invalid_dpop_proof" {
		t.Errorf("exchange without a proof: %d %q, want invalid_dpop_proof", r.Status, r.Error)
	}
	tok := call(key, exchange)
	if tok.Status != http.StatusOK || tok.TokenType != "DPoP" {
		t.Fatalf("exchange with a proof: %d %q token_type=%q", tok.Status, tok.Error, tok.TokenType)
	}
	claims := verifyAccessToken(t, e.gw.URL+"/jwks", tok.AccessToken)
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] == nil {
		t.Errorf("access token lacks cnf.jkt: %v", claims)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	if r := call(other, refresh); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh with another key's proof: %d %q, want invalid_grant", r.Status, r.Error)
	}
	if r := call(key, refresh); r.Status != http.StatusOK || r.TokenType != "DPoP" {
		t.Errorf("refresh with the bound key: %d %q", r.Status, r.Error)
	}
}

// introspect posts a token to /introspect as the resource server.
func introspect(t *testing.T, e *environment, tok string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.gw.URL+"/introspect",
		strings.NewReader(url.Values{"token": {tok}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(rsID, rsSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("introspection: status %d", resp.StatusCode)
	}
	return out
}

func TestIntrospectionAndRevocation(t *testing.T) {
	e := shared(t)
	l, code := codeFor(t, e, gatewaytest.PublicClient, appRedirect, "openid fhirUser launch/patient offline_access patient/*.rs")
	auth := publicAuth(gatewaytest.PublicClient)
	tok := tokenCall(t, e, auth, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}})
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %q", tok.Status, tok.Error)
	}

	res := introspect(t, e, tok.AccessToken)
	want := map[string]any{"active": true, "scope": tok.Scope, "client_id": gatewaytest.PublicClient,
		"patient": testenv.PatientID, "fhirUser": "Patient/" + testenv.PatientID, "token_type": "Bearer", "iss": e.gw.URL}
	for k, v := range want {
		if res[k] != v {
			t.Errorf("introspection %s = %v, want %v", k, res[k], v)
		}
	}
	for _, k := range []string{"exp", "iat", "sub"} {
		if res[k] == nil {
			t.Errorf("introspection lacks %s", k)
		}
	}
	if r := introspect(t, e, tok.RefreshToken); r["active"] != true || r["client_id"] != gatewaytest.PublicClient {
		t.Errorf("refresh token introspection: %v", r)
	}
	for name, bogus := range map[string]string{"garbage": "not-a-token", "empty JWT": "a.b.c", "foreign refresh": "sgr_x.y"} {
		if r := introspect(t, e, bogus); len(r) != 1 || r["active"] != false {
			t.Errorf("%s: introspection %v, want exactly {\"active\": false}", name, r)
		}
	}

	unauth, err := http.Post(e.gw.URL+"/introspect", "application/x-www-form-urlencoded", strings.NewReader("token=x"))
	if err != nil {
		t.Fatal(err)
	}
	unauth.Body.Close()
	if unauth.StatusCode != http.StatusUnauthorized {
		t.Errorf("introspection without credentials: %d, want 401", unauth.StatusCode)
	}

	revoke := func(auth clientAuth, token string) int {
		form, basic := auth(t)
		form.Set("token", token)
		req, _ := http.NewRequest(http.MethodPost, e.gw.URL+"/revoke", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic != nil {
			req.SetBasicAuth(basic[0], basic[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := revoke(basicAuth(gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret), tok.RefreshToken); s != http.StatusOK {
		t.Errorf("revocation by another client: %d, want 200", s)
	}
	if r := introspect(t, e, tok.RefreshToken); r["active"] != true {
		t.Error("another client's revocation ended the refresh token")
	}
	if s := revoke(auth, tok.RefreshToken); s != http.StatusOK {
		t.Fatalf("revocation: %d", s)
	}
	if r := introspect(t, e, tok.AccessToken); r["active"] != false {
		t.Errorf("access token after its refresh token was revoked: %v, want inactive", r)
	}
	if r := tokenCall(t, e, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}); r.Error != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %q", r.Status, r.Error)
	}

	// An access token on its own goes on the deny list.
	l2, code2 := codeFor(t, e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
	tok2 := tokenCall(t, e, auth, url.Values{"grant_type": {"authorization_code"}, "code": {code2},
		"redirect_uri": {appRedirect}, "code_verifier": {l2.Verifier}})
	if s := revoke(auth, tok2.AccessToken); s != http.StatusOK {
		t.Fatalf("access token revocation: %d", s)
	}
	if r := introspect(t, e, tok2.AccessToken); r["active"] != false {
		t.Errorf("revoked access token: %v, want inactive", r)
	}
}
