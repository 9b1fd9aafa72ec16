package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
	"github.com/smartgate/smartgate/internal/token"
)

// The EHR system that registers launch contexts.
const (
	ehrID     = "ehr"
	ehrSecret = "ehr-launch-secret-0123456789-abcdefghijkl"
)

// registerLaunch posts a launch context to /launch as the EHR and returns
// the response status and body.
func registerLaunch(t *testing.T, e *environment, body map[string]any, secret string) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, e.gw.URL+"/launch", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(ehrID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// ehrContext is the context the EHR hands over for the tests.
func ehrContext(clientID string) map[string]any {
	return map[string]any{"client_id": clientID, "patient": "pat-ehr-1", "encounter": "enc-9",
		"need_patient_banner": true, "intent": "summary-timeline-view",
		"fhirContext": []map[string]any{{"reference": "List/at-home-meds"}}}
}

// ehrLaunch authorizes with a launch value as a clinician (bob) and
// returns where the browser stopped and the launch.
func ehrLaunch(t *testing.T, e *environment, launchValue string) (*testenv.Browser, *testenv.Page, *launch) {
	t.Helper()
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch openid fhirUser patient/*.rs")
	v := l.params()
	v.Set("launch", launchValue)
	b := testenv.NewBrowser(t, appRedirect)
	p := b.Get(e.gw.URL + "/authorize?" + v.Encode())
	if strings.HasPrefix(p.URL.String(), e.upstream.Issuer) && strings.Contains(p.Body, `name="password"`) {
		p = b.LogIn(p, testenv.ClinicianUser, testenv.ClinicianPass)
	}
	return b, p, l
}

func TestEHRLaunch(t *testing.T) {
	e := shared(t)
	status, out := registerLaunch(t, e, ehrContext(gatewaytest.PublicClient), ehrSecret)
	value, _ := out["launch"].(string)
	if status != http.StatusCreated || value == "" || out["expires_in"] == nil {
		t.Fatalf("register launch: %d %v", status, out)
	}

	b, page, l := ehrLaunch(t, e, value)
	if !isConsentPage(page) {
		t.Fatalf("EHR launch: want the consent page, got %d at %s:\n%s", page.Status, page.URL, page.Body)
	}
	q := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %q", tok.Status, tok.Error)
	}
	if tok.Patient != "pat-ehr-1" || tok.Encounter != "enc-9" || tok.NeedPatientBanner == nil || !*tok.NeedPatientBanner ||
		tok.Intent != "summary-timeline-view" || tok.Tenant != "hospital-1" || len(tok.FHIRContext) != 1 {
		t.Errorf("launch context in the token response: patient=%q encounter=%q banner=%v intent=%q tenant=%q fhirContext=%v",
			tok.Patient, tok.Encounter, tok.NeedPatientBanner, tok.Intent, tok.Tenant, tok.FHIRContext)
	}
	if !strings.Contains(tok.Scope, "launch") {
		t.Errorf("granted scope %q lacks launch", tok.Scope)
	}
	res := introspect(t, e, tok.AccessToken)
	if res["patient"] != "pat-ehr-1" || res["encounter"] != "enc-9" || res["need_patient_banner"] != true ||
		res["intent"] != "summary-timeline-view" || res["fhirContext"] == nil {
		t.Errorf("launch context in introspection: %v", res)
	}

	t.Run("reused launch value", func(t *testing.T) {
		checkLaunchRejected(t, e, value)
	})
	t.Run("launch for another app", func(t *testing.T) {
		_, out := registerLaunch(t, e, ehrContext(gatewaytest.ConfidentialClient), ehrSecret)
		checkLaunchRejected(t, e, out["launch"].(string))
	})
	t.Run("expired launch value", func(t *testing.T) {
		_, out := registerLaunch(t, e, ehrContext(gatewaytest.PublicClient), ehrSecret)
		value := out["launch"].(string)
		rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
		defer rdb.Close()
		key := e.gw.Config.Redis.KeyPrefix + "launch:{" + value + "}"
		if n := rdb.Exists(context.Background(), key).Val(); n != 1 {
			t.Fatalf("launch context not stored under %s", key)
		}
		rdb.PExpire(context.Background(), key, time.Millisecond) // as the launch lifetime would
		for rdb.Exists(context.Background(), key).Val() == 1 {
			time.Sleep(time.Millisecond)
		}
		checkLaunchRejected(t, e, value)
	})
	t.Run("unknown launch value", func(t *testing.T) {
		checkLaunchRejected(t, e, token.RandomString(24))
	})
	t.Run("EHR with a wrong secret", func(t *testing.T) {
		if status, _ := registerLaunch(t, e, ehrContext(gatewaytest.PublicClient), "wrong"); status != http.StatusUnauthorized {
			t.Errorf("register launch with a wrong secret: %d, want 401", status)
		}
	})
	t.Run("context for an unknown app", func(t *testing.T) {
		if status, _ := registerLaunch(t, e, ehrContext("no-such-app"), ehrSecret); status != http.StatusBadRequest {
			t.Errorf("register launch for an unknown client: %d, want 400", status)
		}
	})
}

// checkLaunchRejected expects the authorization with a launch value to go
// back to the app with invalid_request, before any login.
func checkLaunchRejected(t *testing.T, e *environment, value string) {
	t.Helper()
	_, p, l := ehrLaunch(t, e, value)
	q := redirectParams(t, p, appRedirect)
	if q.Get("error") != "invalid_request" || q.Get("state") != l.State || q.Get("iss") == "" {
		t.Errorf("launch %q: redirect %v, want invalid_request with state and iss", value, q)
	}
}

// launchJWT signs a launch context as the EHR does.
func launchJWT(t *testing.T, e *environment, k *signingKey, change func(map[string]any)) string {
	t.Helper()
	claims := ehrContext(gatewaytest.PublicClient)
	claims["aud"] = e.gw.URL
	claims["exp"] = time.Now().Add(2 * time.Minute).Unix()
	claims["jti"] = token.RandomString(12)
	if change != nil {
		change(claims)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.signer},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestEHRLaunchJWT(t *testing.T) {
	e := shared(t)
	good := launchJWT(t, e, e.ehrKey, nil)
	b, page, l := ehrLaunch(t, e, good)
	if !isConsentPage(page) {
		t.Fatalf("launch JWT: want the consent page, got %d at %s", page.Status, page.URL)
	}
	q := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Patient != "pat-ehr-1" || tok.Encounter != "enc-9" {
		t.Errorf("launch JWT context: patient=%q encounter=%q", tok.Patient, tok.Encounter)
	}

	cases := map[string]string{
		"replayed JWT":     good,
		"bad signature":    launchJWT(t, e, impostor(t, e.ehrKey), nil),
		"expired":          launchJWT(t, e, e.ehrKey, func(c map[string]any) { c["exp"] = time.Now().Add(-5 * time.Minute).Unix() }),
		"wrong audience":   launchJWT(t, e, e.ehrKey, func(c map[string]any) { c["aud"] = "https://elsewhere.example.org" }),
		"another app":      launchJWT(t, e, e.ehrKey, func(c map[string]any) { c["client_id"] = gatewaytest.ConfidentialClient }),
		"exp far in reach": launchJWT(t, e, e.ehrKey, func(c map[string]any) { c["exp"] = time.Now().Add(48 * time.Hour).Unix() }),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) { checkLaunchRejected(t, e, raw) })
	}
}

func TestPatientPicker(t *testing.T) {
	e := shared(t)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "openid fhirUser launch/patient patient/*.rs")
	b := testenv.NewBrowser(t, appRedirect)
	picker := standaloneLaunch(t, e, b, l, testenv.ClinicianUser, testenv.ClinicianPass)
	if picker.Status != http.StatusOK || !strings.Contains(picker.Body, `id="search"`) {
		t.Fatalf("a clinician's launch/patient: want the patient picker, got %d at %s:\n%s", picker.Status, picker.URL, picker.Body)
	}
	search := picker.Forms(t)[0]
	search.Fields.Set("name", "smith")
	results := b.Get(search.Action + "?" + search.Fields.Encode())
	for _, want := range []string{"John Smith", "Jane Smith", "1970-02-03"} {
		if !strings.Contains(results.Body, want) {
			t.Errorf("search results lack %q", want)
		}
	}
	if strings.Contains(results.Body, "Garcia") {
		t.Error("search results list a patient who does not match")
	}
	var choose *testenv.Form
	for _, f := range results.Forms(t) {
		if f.Fields.Get("csrf") != "" {
			choose = f
		}
	}
	if choose == nil {
		t.Fatal("no choice form on the results page")
	}

	forged := *choose
	forged.Fields = url.Values{}
	for k, v := range choose.Fields {
		forged.Fields[k] = v
	}
	forged.Fields.Set("patient", "pat-nobody")
	if p := b.Submit(&forged, url.Values{"decision": {"pick"}}); p.Status == http.StatusOK || p.Location != "" {
		t.Errorf("choosing a patient the FHIR server does not have: %d Location=%q, want an error page", p.Status, p.Location)
	}

	choose.Fields.Set("patient", "pat-smith-2")
	consentPage := b.Submit(choose, url.Values{"decision": {"pick"}})
	if !isConsentPage(consentPage) || !strings.Contains(consentPage.Body, "Jane Smith") {
		t.Fatalf("after picking: want the consent page for Jane Smith, got %d:\n%s", consentPage.Status, consentPage.Body)
	}
	q := redirectParams(t, b.Submit(consentPage.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Patient != "pat-smith-2" {
		t.Errorf("token patient = %q, want the picked pat-smith-2", tok.Patient)
	}

	t.Run("cancel", func(t *testing.T) {
		l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient patient/*.rs")
		b := testenv.NewBrowser(t, appRedirect)
		picker := standaloneLaunch(t, e, b, l, testenv.ClinicianUser, testenv.ClinicianPass)
		search := picker.Forms(t)[0]
		search.Fields.Set("name", "garcia")
		results := b.Get(search.Action + "?" + search.Fields.Encode())
		forms := results.Forms(t)
		q := redirectParams(t, b.Submit(forms[len(forms)-1], url.Values{"decision": {"cancel"}}), appRedirect)
		if q.Get("error") != "access_denied" || q.Get("state") != l.State {
			t.Errorf("cancel: %v, want access_denied with state", q)
		}
	})
}
