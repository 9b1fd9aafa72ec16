package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// appResult is what node/smartapp.cjs reports after fhirclient's ready()
// or refresh().
type appResult struct {
	Patient       string         `json:"patient"`
	Scope         string         `json:"scope"`
	FHIRUser      string         `json:"fhirUser"`
	IDToken       map[string]any `json:"idToken"`
	TokenResponse map[string]any `json:"tokenResponse"`
	Error         string         `json:"error"`
}

func decodeApp(t *testing.T, p *testenv.Page) appResult {
	t.Helper()
	var r appResult
	if err := json.Unmarshal([]byte(p.Body), &r); err != nil {
		t.Fatalf("SMART app answered %d with %q", p.Status, p.Body)
	}
	if p.Status != http.StatusOK {
		t.Fatalf("SMART app failed (%d): %s", p.Status, r.Error)
	}
	return r
}

// TestFHIRClientStandaloneLaunch lets the SMART JavaScript client library
// drive the launch: it reads the gateway's discovery document, builds the
// authorization request with PKCE, and exchanges and refreshes the tokens.
func TestFHIRClientStandaloneLaunch(t *testing.T) {
	e := shared(t)
	var apps testenv.Cleanup
	t.Cleanup(apps.Run)
	app := testenv.StartSmartApp(t, &apps)

	scopes := "openid fhirUser launch/patient offline_access patient/Patient.rs patient/Observation.rs"
	b := testenv.NewBrowser(t)
	launch := app + "/launch?" + url.Values{"iss": {e.fhirBase}, "client_id": {gatewaytest.PublicClient}, "scope": {scopes}}.Encode()
	login := b.Get(launch)
	if login.Status != http.StatusOK || !strings.HasPrefix(login.URL.String(), e.upstream.Issuer) {
		t.Fatalf("fhirclient did not reach the upstream login through the gateway: %d at %s:\n%s", login.Status, login.URL, login.Body)
	}
	consentPage := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	form := consentPage.Form(t)
	if err := form.Uncheck("scope", "patient/Observation.rs"); err != nil {
		t.Fatalf("consent page: %v", err)
	}
	ready := decodeApp(t, b.Submit(form, url.Values{"decision": {"allow"}}))
	if ready.Patient != testenv.PatientID {
		t.Errorf("fhirclient patient = %q, want %q", ready.Patient, testenv.PatientID)
	}
	want := "openid fhirUser launch/patient offline_access patient/Patient.rs"
	if ready.Scope != want {
		t.Errorf("fhirclient granted scope = %q, want %q", ready.Scope, want)
	}
	if ready.FHIRUser != "Patient/"+testenv.PatientID {
		t.Errorf("fhirclient fhirUser = %q", ready.FHIRUser)
	}

	// fhirclient refreshes with and without naming the public client.
	for _, q := range []string{"?with_client_id=1", ""} {
		r := decodeApp(t, b.Get(app+"/refresh"+q))
		if r.TokenResponse["access_token"] == nil || r.TokenResponse["refresh_token"] == nil {
			t.Errorf("refresh%s: token response %v", q, r.TokenResponse)
		}
	}
}
