package e2e

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// outageStack is a gateway with a Redis and an upstream of its own, so
// that a test can stop them.
type outageStack struct {
	redis    *testenv.Redis
	upstream testenv.Cleanup // stops only the upstream
	gw       *gatewaytest.Gateway
	issuer   string
	up       *testenv.Upstream
}

func startOutageStack(t *testing.T, extra ...func(*config.Config)) *outageStack {
	t.Helper()
	s := &outageStack{}
	var rest testenv.Cleanup
	t.Cleanup(rest.Run)
	t.Cleanup(s.upstream.Run)
	s.redis = testenv.StartRedis(t, &rest)
	ln, gwURL := gatewaytest.Listener(t)
	up := testenv.StartUpstream(t, &s.upstream, "keycloak", gwURL+"/callback")
	s.issuer, s.up = up.Issuer, up
	dir, err := os.MkdirTemp("", "smartgate-outage-")
	if err != nil {
		t.Fatal(err)
	}
	rest.Add(func() { os.RemoveAll(dir) })
	s.gw = gatewaytest.Serve(t, &rest, ln, gatewaytest.Config(t, dir, gwURL, s.redis.Addr, up, extra...))
	return s
}

// atCallback runs a launch up to the redirect back to smartgate's callback.
func (s *outageStack) atCallback(t *testing.T) (*testenv.Browser, *launch, string) {
	t.Helper()
	l := &launch{ClientID: gatewaytest.PublicClient, RedirectURI: appRedirect, Scope: "launch/patient patient/*.rs",
		State: "outage-state", Verifier: strings.Repeat("v", 43), Audience: s.gw.URL + "/fhir"}
	b := testenv.NewBrowser(t, appRedirect, s.gw.URL+"/callback")
	login := b.Get(s.gw.URL + "/authorize?" + l.params().Encode())
	p := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	if !strings.HasPrefix(p.Location, s.gw.URL+"/callback") {
		t.Fatalf("expected the redirect to the callback, got %d %q", p.Status, p.Location)
	}
	return b, l, p.Location
}

func TestRedisOutageMidLogin(t *testing.T) {
	s := startOutageStack(t)
	b, _, callback := s.atCallback(t)
	s.redis.Stop()
	page := b.Do(mustRequest(t, http.MethodGet, callback))
	if page.Status != http.StatusServiceUnavailable || !strings.Contains(page.Body, "busy or down") {
		t.Errorf("callback with Redis down: %d, want the 503 page saying the service is down:\n%s", page.Status, page.Body)
	}
	tok := postToken(t, s.gw.URL+"/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {"sgr_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"client_id":     {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusServiceUnavailable || tok.Error != "temporarily_unavailable" || tok.AccessToken != "" {
		t.Errorf("token request with Redis down: %d %q, want 503 temporarily_unavailable", tok.Status, tok.Error)
	}

	// Redis returns; a new login works without a restart of the gateway.
	s.redis.Restart(t)
	b2, l2, callback2 := s.atCallback(t)
	consentPage := b2.Do(mustRequest(t, http.MethodGet, callback2))
	q := redirectParams(t, b2.Submit(consentPage.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	code := postToken(t, s.gw.URL+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l2.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if code.Status != http.StatusOK {
		t.Errorf("login after Redis returned: %d %q", code.Status, code.Error)
	}
}

func TestUpstreamDownAtCallback(t *testing.T) {
	s := startOutageStack(t)
	b, l, callback := s.atCallback(t)
	s.upstream.Run() // the identity provider goes away before the code exchange
	q := redirectParams(t, b.Do(mustRequest(t, http.MethodGet, callback)), appRedirect)
	if q.Get("error") != "temporarily_unavailable" || q.Get("state") != l.State {
		t.Errorf("callback with the upstream down: %v, want temporarily_unavailable with state", q)
	}
}

// TestUpstreamHangsAtCallback freezes the identity provider before the
// code exchange: the login ends with temporarily_unavailable once the
// configured timeout passes, instead of hanging.
func TestUpstreamHangsAtCallback(t *testing.T) {
	s := startOutageStack(t, func(c *config.Config) { c.Upstream.Timeout = 500 * time.Millisecond })
	b, l, callback := s.atCallback(t)
	s.up.Freeze()
	t.Cleanup(s.up.Thaw)
	// Without the timeout this request would never return.
	q := redirectParams(t, b.Do(mustRequest(t, http.MethodGet, callback)), appRedirect)
	if q.Get("error") != "temporarily_unavailable" || q.Get("state") != l.State {
		t.Errorf("callback with a hung upstream: %v, want temporarily_unavailable with state", q)
	}
}
