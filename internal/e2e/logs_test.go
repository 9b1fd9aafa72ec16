package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// TestLogsHoldNoSecrets runs flows that handle every kind of secret and
// then searches the gateway's whole log for each value.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := shared(t)
	secrets := map[string]string{
		"client secret":          gatewaytest.ConfidentialSecret,
		"upstream client secret": testenv.UpstreamSecret,
		"cookie secret":          e.gw.Config.Server.CookieSecret,
		"resource server secret": rsSecret,
		"EHR secret":             ehrSecret,
	}

	l, code := codeFor(t, e, gatewaytest.ConfidentialClient, gatewaytest.ConfidentialRedir, "launch/patient offline_access patient/*.rs")
	secrets["code"], secrets["code verifier"] = code, l.Verifier
	auth := basicAuth(gatewaytest.ConfidentialClient, gatewaytest.ConfidentialSecret)
	tok := tokenCall(t, e, auth, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {gatewaytest.ConfidentialRedir}, "code_verifier": {l.Verifier}})
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %q", tok.Status, tok.Error)
	}
	secrets["access token"], secrets["refresh token"] = tok.AccessToken, tok.RefreshToken
	tokenCall(t, e, auth, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	tokenCall(t, e, basicAuth(gatewaytest.ConfidentialClient, "wrong-"+gatewaytest.ConfidentialSecret),
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	introspect(t, e, tok.AccessToken)

	assertion := e.backendKey.assertion(t, backendClient, e.gw.URL+"/token", nil)
	form := assertionForm(assertion)
	form["grant_type"], form["scope"] = []string{"client_credentials"}, []string{"system/Observation.rs"}
	backend := postToken(t, e.gw.URL+"/token", form, nil)
	secrets["client assertion"], secrets["backend token"] = assertion, backend.AccessToken

	_, out := registerLaunch(t, e, ehrContext(gatewaytest.PublicClient), ehrSecret)
	launchValue, _ := out["launch"].(string)
	secrets["launch value"] = launchValue

	logs := e.gw.Logs()
	if !strings.Contains(logs, `"event":"tokens_issued"`) {
		t.Fatal("the flows logged no audit event; the log capture is broken")
	}
	for name, value := range secrets {
		if value == "" {
			t.Errorf("%s is empty; the flow did not produce it", name)
			continue
		}
		if strings.Contains(logs, value) {
			t.Errorf("the gateway logged the %s", name)
		}
	}
}
