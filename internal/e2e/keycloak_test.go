package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
	"github.com/smartgate/smartgate/internal/testenv/keycloak"
)

// TestKeycloakStandaloneLaunch runs the standalone patient launch with a
// real Keycloak upstream, imported from deploy/keycloak/realm-hospital.json.
func TestKeycloakStandaloneLaunch(t *testing.T) {
	e := shared(t)
	var stack testenv.Cleanup
	t.Cleanup(stack.Run)
	ln, gwURL := gatewaytest.Listener(t)
	kc := keycloak.Start(t, &stack, []string{gwURL + "/callback"})

	up := &testenv.Upstream{Issuer: kc.Issuer, Shape: "keycloak"}
	dir := t.TempDir()
	cfg := gatewaytest.Config(t, dir, gwURL, e.redis.Addr, up, func(c *config.Config) {
		c.Upstream.ClientID, c.Upstream.ClientSecret = kc.ClientID, kc.ClientSecret
	})
	gw := gatewaytest.Serve(t, &stack, ln, cfg)

	scopes := "openid fhirUser profile launch/patient offline_access patient/Patient.rs patient/Observation.rs"
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, scopes)
	l.Audience = gwURL + "/fhir"
	b := testenv.NewBrowser(t, appRedirect)
	login := b.Get(gw.URL + "/authorize?" + l.params().Encode())
	if login.Status != http.StatusOK || !strings.HasPrefix(login.URL.String(), kc.Issuer) {
		t.Fatalf("expected Keycloak's login page, got %d at %s", login.Status, login.URL)
	}
	form := login.Form(t)
	form.Fields.Set("username", testenv.PatientUser)
	form.Fields.Set("password", testenv.PatientPassword)
	consentPage := b.Submit(form, nil)
	if !isConsentPage(consentPage) || !strings.Contains(consentPage.Body, testenv.PatientName) {
		t.Fatalf("after the Keycloak login: want the consent page for %s, got %d at %s:\n%s",
			testenv.PatientName, consentPage.Status, consentPage.URL, consentPage.Body)
	}
	cf := consentPage.Form(t)
	if err := cf.Uncheck("scope", "patient/Observation.rs"); err != nil {
		t.Fatal(err)
	}
	q := redirectParams(t, b.Submit(cf, url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK || tok.Patient != testenv.PatientID || strings.Contains(tok.Scope, "Observation") {
		t.Fatalf("code exchange: %d %q patient=%q scope=%q", tok.Status, tok.Error, tok.Patient, tok.Scope)
	}
	claims := verifyAccessToken(t, gw.URL+"/jwks", tok.AccessToken)
	if claims["fhirUser"] != "Patient/"+testenv.PatientID {
		t.Errorf("fhirUser = %v", claims["fhirUser"])
	}
	refreshed := postToken(t, gw.URL+"/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {tok.RefreshToken}, "client_id": {gatewaytest.PublicClient}}, nil)
	if refreshed.Status != http.StatusOK {
		t.Errorf("refresh: %d %q", refreshed.Status, refreshed.Error)
	}
}
