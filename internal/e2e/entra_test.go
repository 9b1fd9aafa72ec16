package e2e

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// TestEntraShapedUpstream runs the standalone launch against an upstream
// shaped like a Microsoft Entra ID tenant: the v2.0 issuer and endpoint
// paths, and the patient id in a directory extension claim.
func TestEntraShapedUpstream(t *testing.T) {
	e := shared(t)
	var stack testenv.Cleanup
	t.Cleanup(stack.Run)
	ln, gwURL := gatewaytest.Listener(t)
	up := testenv.StartUpstream(t, &stack, "entra", gwURL+"/callback")
	if !strings.HasSuffix(up.Issuer, "/v2.0") {
		t.Fatalf("issuer %q is not shaped like an Entra ID tenant", up.Issuer)
	}
	dir, err := os.MkdirTemp("", "smartgate-entra-")
	if err != nil {
		t.Fatal(err)
	}
	stack.Add(func() { os.RemoveAll(dir) })
	gw := gatewaytest.Serve(t, &stack, ln, gatewaytest.Config(t, dir, gwURL, e.redis.Addr, up))

	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, "openid fhirUser launch/patient patient/*.rs")
	l.Audience = gwURL + "/fhir"
	b := testenv.NewBrowser(t, appRedirect)
	login := b.Get(gw.URL + "/authorize?" + l.params().Encode())
	if !strings.Contains(login.URL.Path, "/oauth2/v2.0/authorize") && !strings.Contains(login.URL.Path, "/interaction/") {
		t.Errorf("the login did not go through Entra-shaped paths: %s", login.URL)
	}
	consentPage := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	q := redirectParams(t, b.Submit(consentPage.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	tok := postToken(t, gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK || tok.Patient != testenv.PatientID {
		t.Fatalf("code exchange: %d %q patient=%q", tok.Status, tok.Error, tok.Patient)
	}
}
