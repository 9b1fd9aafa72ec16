package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// authorizeAs starts a launch in b (which may already hold an upstream
// session) and returns where the browser stopped: the upstream login
// form, the consent page, or the redirect to the app.
func authorizeAs(t *testing.T, e *environment, b *testenv.Browser, l *launch) *testenv.Page {
	t.Helper()
	p := b.Get(discover(t, e.fhirBase).AuthorizationEndpoint + "?" + l.params().Encode())
	if strings.HasPrefix(p.URL.String(), e.upstream.Issuer) && strings.Contains(p.Body, `name="password"`) {
		p = b.LogIn(p, testenv.PatientUser, testenv.PatientPassword)
	}
	return p
}

func isConsentPage(p *testenv.Page) bool {
	return p.Status == http.StatusOK && strings.Contains(p.Body, `id="consent"`)
}

func TestRememberedConsent(t *testing.T) {
	e := shared(t)
	b := testenv.NewBrowser(t, appRedirect)
	scopes := "launch/patient patient/Patient.rs patient/Observation.rs"

	first := authorizeAs(t, e, b, newLaunch(e, gatewaytest.RememberingClient, appRedirect, scopes))
	if !isConsentPage(first) {
		t.Fatalf("first launch: want the consent page, got %d at %s", first.Status, first.URL)
	}
	for _, want := range []string{"Example Health Apps", "https://steps.example.org/privacy", "hospital checked this app"} {
		if !strings.Contains(first.Body, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(first.Body, `name="scope" value="patient/Patient.rs"`) {
		t.Error("the required scope patient/Patient.rs can be unchecked")
	}
	form := first.Form(t)
	if err := form.Uncheck("scope", "patient/Observation.rs"); err != nil {
		t.Fatal(err)
	}
	// A refused scope is not remembered as granted.
	redirectParams(t, b.Submit(form, url.Values{"decision": {"allow"}}), appRedirect)

	again := authorizeAs(t, e, b, newLaunch(e, gatewaytest.RememberingClient, appRedirect, scopes))
	if !isConsentPage(again) {
		t.Fatalf("a request for a scope the patient refused skipped the page: %d %s", again.Status, again.Location)
	}
	redirectParams(t, b.Submit(again.Form(t), url.Values{"decision": {"allow"}}), appRedirect)

	l := newLaunch(e, gatewaytest.RememberingClient, appRedirect, "launch/patient patient/Observation.rs")
	skipped := authorizeAs(t, e, b, l)
	q := redirectParams(t, skipped, appRedirect)
	if q.Get("code") == "" || q.Get("state") != l.State {
		t.Fatalf("covered request: %v, want a code without the consent page", q)
	}
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.RememberingClient}}, nil)
	if tok.Status != http.StatusOK || tok.Scope != "launch/patient patient/Observation.rs" {
		t.Errorf("remembered grant: %d %q scope=%q", tok.Status, tok.Error, tok.Scope)
	}

	wider := authorizeAs(t, e, b, newLaunch(e, gatewaytest.RememberingClient, appRedirect, scopes+" offline_access"))
	if !isConsentPage(wider) {
		t.Errorf("a wider request skipped the consent page: %d %s", wider.Status, wider.Location)
	}

	expireConsent(t, e, gatewaytest.RememberingClient)
	expired := authorizeAs(t, e, b, newLaunch(e, gatewaytest.RememberingClient, appRedirect, "launch/patient"))
	if !isConsentPage(expired) {
		t.Errorf("an expired consent skipped the page: %d %s", expired.Status, expired.Location)
	}
	if !strings.Contains(e.gw.Logs(), `"event":"consent_remembered"`) {
		t.Error("no consent_remembered audit event")
	}
}

// expireConsent moves the remembered end of alice's consent records for
// the client into the past, as time would.
func expireConsent(t *testing.T, e *environment, clientID string) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: e.redis.Addr})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, e.gw.Config.Redis.KeyPrefix+"user:*:consents").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("consent records: %v %v", keys, err)
	}
	for _, k := range keys {
		raw, err := rdb.HGet(ctx, k, clientID).Bytes()
		if err != nil {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(raw, &rec); err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"remember", "given", "wording", "lang", "scope"} {
			if rec[field] == nil {
				t.Errorf("consent record lacks %q: %s", field, raw)
			}
		}
		rec["remember"] = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		b, _ := json.Marshal(rec)
		rdb.HSet(ctx, k, clientID, b)
	}
}

func TestAppsPageRevokes(t *testing.T) {
	e := shared(t)
	b := testenv.NewBrowser(t, appRedirect)
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "launch/patient offline_access patient/AllergyIntolerance.rs")
	consentPage := authorizeAs(t, e, b, l)
	q := redirectParams(t, b.Submit(consentPage.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.RefreshToken == "" {
		t.Fatalf("no refresh token: %d %q", tok.Status, tok.Error)
	}

	apps := b.Get(e.gw.URL + "/apps")
	if apps.Status != http.StatusOK || !strings.Contains(apps.Body, "Patient Diary") {
		t.Fatalf("/apps: %d at %s, want the page listing Patient Diary:\n%s", apps.Status, apps.URL, apps.Body)
	}
	for _, want := range []string{testenv.PatientName, "See your allergies", "Allowed on"} {
		if !strings.Contains(apps.Body, want) {
			t.Errorf("/apps lacks %q", want)
		}
	}
	var revoke *testenv.Form
	for _, f := range apps.Forms(t) {
		if f.Fields.Get("client_id") == gatewaytest.PublicClient {
			revoke = f
		}
	}
	if revoke == nil {
		t.Fatal("/apps has no revoke form for Patient Diary")
	}

	forged := *revoke
	forged.Fields = url.Values{"client_id": {gatewaytest.PublicClient}, "csrf": {"forged"}}
	if p := b.Submit(&forged, nil); p.Status != http.StatusForbidden {
		t.Errorf("revoke with a wrong form token: %d, want 403", p.Status)
	}
	if r := refreshWith(t, e, tok.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("refresh before the revocation: %d %q", r.Status, r.Error)
	} else {
		tok.RefreshToken = r.RefreshToken
	}

	after := b.Submit(revoke, nil)
	if after.Status != http.StatusOK || !strings.Contains(after.Body, "is now off") {
		t.Fatalf("after revoke: %d, want the /apps page with a notice:\n%s", after.Status, after.Body)
	}
	if strings.Contains(after.Body, `value="`+gatewaytest.PublicClient+`"`) {
		t.Error("the revoked app is still listed")
	}
	if r := refreshWith(t, e, tok.RefreshToken); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
		t.Errorf("refresh after revocation: %d %q, want 400 invalid_grant", r.Status, r.Error)
	}
	if !strings.Contains(e.gw.Logs(), `"event":"consent_revoked"`) {
		t.Error("no consent_revoked audit event")
	}
}

func refreshWith(t *testing.T, e *environment, rt string) *tokenResult {
	return postToken(t, e.gw.URL+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {gatewaytest.PublicClient}}, nil)
}
