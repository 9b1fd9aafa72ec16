package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/gatewaytest"
)

// haScopes are the scopes of the launches in this file: offline_access
// makes the gateway issue a refresh token, which the public test client
// must rotate.
const haScopes = "openid fhirUser launch/patient offline_access patient/*.rs"

// startHAGateway starts an upstream provider and a gateway whose redis
// section setRedis fills in, and returns them as an environment for the
// launch helpers of the package.
func startHAGateway(t *testing.T, cleanup *testenv.Cleanup, setRedis func(*config.Redis)) *environment {
	t.Helper()
	ln, gwURL := gatewaytest.Listener(t)
	up := testenv.StartUpstream(t, cleanup, "keycloak", gwURL+"/callback")
	cfg := gatewaytest.Config(t, t.TempDir(), gwURL, "", up, func(c *config.Config) { setRedis(&c.Redis) })
	gw := gatewaytest.Serve(t, cleanup, ln, cfg)
	return &environment{upstream: up, gw: gw, fhirBase: gwURL + "/fhir"}
}

// launchTokens runs a standalone launch of the public test client in a
// fresh browser: authorize, log in at the upstream as the patient, allow
// every scope on the consent page, and exchange the code at tokenURL.
func launchTokens(t *testing.T, e *environment, tokenURL string) *tokenResult {
	t.Helper()
	l := newLaunch(e, gatewaytest.PublicClient, appRedirect, haScopes)
	b := testenv.NewBrowser(t, appRedirect)
	page := standaloneLaunch(t, e, b, l, testenv.PatientUser, testenv.PatientPassword)
	if !isConsentPage(page) {
		t.Fatalf("expected the consent page, got %d at %s:\n%s", page.Status, page.URL, page.Body)
	}
	q := redirectParams(t, b.Submit(page.Form(t), url.Values{"decision": {"allow"}}), appRedirect)
	if q.Get("state") != l.State || q.Get("code") == "" {
		t.Fatalf("redirect to the app: %v, want a code and state %q", q, l.State)
	}
	tok := postToken(t, tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {appRedirect}, "code_verifier": {l.Verifier}, "client_id": {gatewaytest.PublicClient}}, nil)
	if tok.Status != http.StatusOK {
		t.Fatalf("code exchange: %d %q %s", tok.Status, tok.Error, tok.ErrorDesc)
	}
	if tok.RefreshToken == "" || tok.Patient != testenv.PatientID || tok.Scope != haScopes {
		t.Fatalf("code exchange: refresh token issued %v, patient %q, scope %q; want a refresh token, %q, %q",
			tok.RefreshToken != "", tok.Patient, tok.Scope, testenv.PatientID, haScopes)
	}
	return tok
}

func refreshAt(t *testing.T, tokenURL, refreshToken string) *tokenResult {
	t.Helper()
	return postToken(t, tokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken},
		"client_id": {gatewaytest.PublicClient}}, nil)
}

// checkRotationAndReuse refreshes the family of first, taking the token
// endpoints of tokenURLs in turn: a rotation, a retry with the old token
// inside the grace window, and a second reuse, which must revoke the
// whole family.
func checkRotationAndReuse(t *testing.T, tokenURLs []string, first *tokenResult) {
	t.Helper()
	at := func(i int) string { return tokenURLs[i%len(tokenURLs)] }

	second := refreshAt(t, at(0), first.RefreshToken)
	if second.Status != http.StatusOK || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: %d %q, rotated %v; want 200 and a new refresh token", second.Status, second.Error,
			second.RefreshToken != "" && second.RefreshToken != first.RefreshToken)
	}
	// The app lost the response and retries with the old token inside the
	// grace window: that works once.
	retry := refreshAt(t, at(1), first.RefreshToken)
	if retry.Status != http.StatusOK || retry.RefreshToken == "" {
		t.Fatalf("retry inside the grace window: %d %q, want 200 with a refresh token", retry.Status, retry.Error)
	}
	if again := refreshAt(t, at(2), first.RefreshToken); again.Status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Fatalf("second reuse of the old token: %d %q, want 400 invalid_grant", again.Status, again.Error)
	}
	for name, rt := range map[string]string{"newest": retry.RefreshToken, "rotated": second.RefreshToken} {
		if r := refreshAt(t, at(3), rt); r.Status != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("%s token after the reuse: %d %q, want 400 invalid_grant (family revoked)", name, r.Status, r.Error)
		}
	}
}

func reuseCount(gws ...*gatewaytest.Gateway) float64 {
	var n float64
	for _, gw := range gws {
		n += testutil.ToFloat64(gw.Metrics.ReuseDetected.WithLabelValues("refresh_token"))
	}
	return n
}

// scanKeys lists the keys matching pattern on one Redis server.
func scanKeys(t *testing.T, addr, pattern string) []string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	iter := c.Scan(ctx, 0, pattern, 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan %s on %s: %v", pattern, addr, err)
	}
	return keys
}

// TestRedisClusterLaunch runs a launch on a Redis Cluster of three
// masters. The code exchange and refresh scripts touch several keys of a
// grant at once; Redis Cluster rejects that with CROSSSLOT unless their
// hash tags put them into one slot.
func TestRedisClusterLaunch(t *testing.T) {
	var cleanup testenv.Cleanup
	t.Cleanup(cleanup.Run)
	nodes := testenv.StartRedisCluster(t, &cleanup, 3)
	e := startHAGateway(t, &cleanup, func(r *config.Redis) {
		r.Mode, r.Addr, r.Addrs = config.RedisCluster, "", nodes
	})
	reuse := reuseCount(e.gw)

	first := launchTokens(t, e, e.gw.URL+"/token")
	disc := discover(t, e.fhirBase)
	if claims := verifyAccessToken(t, disc.JWKSURI, first.AccessToken); claims["patient"] != testenv.PatientID {
		t.Errorf("access token patient = %v, want %s", claims["patient"], testenv.PatientID)
	}
	checkRotationAndReuse(t, []string{e.gw.URL + "/token"}, first)
	if got := reuseCount(e.gw); got != reuse+1 {
		t.Errorf("smartgate_reuse_detected_total{kind=refresh_token} went from %v to %v, want +1", reuse, got)
	}

	var stored []string
	for _, n := range nodes {
		stored = append(stored, scanKeys(t, n, e.gw.Config.Redis.KeyPrefix+"*")...)
	}
	if len(stored) == 0 {
		t.Errorf("no key with prefix %q on any cluster node", e.gw.Config.Redis.KeyPrefix)
	}
	if strings.Contains(e.gw.Logs(), "CROSSSLOT") {
		t.Error("the gateway logged a CROSSSLOT error")
	}
}

// probeResult is the outcome of one authorization request sent while
// Redis fails over.
type probeResult struct {
	status   int
	location string
	err      error
}

// probeAuthorize sends authorization requests, each of which writes a
// pending request and a browser session, every 20 ms until stop is
// closed, and returns their outcomes on the channel it returns.
func probeAuthorize(e *environment, authorizeURL string, stop <-chan struct{}) <-chan []probeResult {
	out := make(chan []probeResult, 1)
	client := &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	go func() {
		var results []probeResult
		defer func() { out <- results }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			l := newLaunch(e, gatewaytest.PublicClient, appRedirect, haScopes)
			resp, err := client.Get(authorizeURL + "?" + l.params().Encode())
			if err != nil {
				results = append(results, probeResult{err: err})
				continue
			}
			resp.Body.Close()
			results = append(results, probeResult{status: resp.StatusCode, location: resp.Header.Get("Location")})
		}
	}()
	return out
}

// checkProbe accepts the response to an authorization request during a
// failover: the redirect to the upstream login, or a temporary failure
// (503, or the redirect to the app with temporarily_unavailable).
func checkProbe(r probeResult, issuer string) error {
	switch {
	case r.err != nil:
		return fmt.Errorf("no response: %w", r.err)
	case r.status == http.StatusServiceUnavailable:
		return nil
	case r.status != http.StatusFound:
		return fmt.Errorf("status %d, want 302 or 503", r.status)
	case strings.HasPrefix(r.location, issuer):
		return nil
	}
	u, err := url.Parse(r.location)
	if err != nil || !strings.HasPrefix(r.location, appRedirect+"?") {
		return fmt.Errorf("redirect to %q, want the upstream login or the app", r.location)
	}
	if got := u.Query().Get("error"); got != "temporarily_unavailable" {
		return fmt.Errorf("redirect to the app with error=%q, want temporarily_unavailable", got)
	}
	return nil
}

// TestRedisSentinelFailover fails the master over while the gateway
// serves, and expects the gateway to follow the Sentinels to the new
// master without a restart.
func TestRedisSentinelFailover(t *testing.T) {
	var cleanup testenv.Cleanup
	t.Cleanup(cleanup.Run)
	s := testenv.StartRedisSentinel(t, &cleanup)
	e := startHAGateway(t, &cleanup, func(r *config.Redis) {
		r.Mode, r.Addr, r.Addrs, r.MasterName = config.RedisSentinel, "", s.Addrs, s.MasterName
	})
	tokenURL := e.gw.URL + "/token"
	families := e.gw.Config.Redis.KeyPrefix + "fam:*"

	before := launchTokens(t, e, tokenURL)
	rotated := refreshAt(t, tokenURL, before.RefreshToken)
	if rotated.Status != http.StatusOK || rotated.RefreshToken == "" {
		t.Fatalf("refresh before the failover: %d %q", rotated.Status, rotated.Error)
	}
	oldMaster := s.Master(t)

	stop := make(chan struct{})
	probes := probeAuthorize(e, discover(t, e.fhirBase).AuthorizationEndpoint, stop)
	stopped := false
	stopProbe := func() []probeResult {
		if !stopped {
			close(stop)
			stopped = true
		}
		return <-probes
	}
	defer func() {
		if !stopped {
			stopProbe()
		}
	}()

	start := time.Now()
	newMaster := s.Failover(t)
	if newMaster == oldMaster {
		t.Fatalf("the master is still %s after the failover", newMaster)
	}
	t.Logf("failover from %s to %s took %s", oldMaster, newMaster, time.Since(start).Round(time.Millisecond))

	// Refresh until the gateway reaches the new master. Until then a
	// refresh may fail with 503 temporarily_unavailable, nothing else.
	rt := rotated.RefreshToken
	deadline := time.Now().Add(20 * time.Second)
	unavailable := 0
	for {
		r := refreshAt(t, tokenURL, rt)
		if r.Status == http.StatusOK {
			if r.RefreshToken == "" {
				t.Fatal("refresh after the failover issued no new refresh token")
			}
			rt = r.RefreshToken
			break
		}
		if r.Status != http.StatusServiceUnavailable || r.Error != "temporarily_unavailable" {
			t.Fatalf("refresh after the failover: %d %q %s, want 200, or 503 temporarily_unavailable while Redis switches",
				r.Status, r.Error, r.ErrorDesc)
		}
		unavailable++
		if time.Now().After(deadline) {
			t.Fatalf("refresh still fails with 503 20 s after the failover (%d attempts)", unavailable)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("first successful refresh %s after the failover started, after %d responses of 503",
		time.Since(start).Round(time.Millisecond), unavailable)

	results := stopProbe()
	if len(results) == 0 {
		t.Error("no authorization request was sent during the failover")
	}
	failed := 0
	for i, r := range results {
		if err := checkProbe(r, e.upstream.Issuer); err != nil {
			t.Errorf("authorization request %d of %d during the failover: %v", i+1, len(results), err)
		}
		if r.status != http.StatusFound || !strings.HasPrefix(r.location, e.upstream.Issuer) {
			failed++
		}
	}
	t.Logf("%d authorization requests during the failover, %d of them failed temporarily", len(results), failed)

	if again := refreshAt(t, tokenURL, rt); again.Status != http.StatusOK {
		t.Errorf("second refresh after the failover: %d %q", again.Status, again.Error)
	}
	after := launchTokens(t, e, tokenURL)
	// Both families live on the new master. One that the gateway had
	// written to the old master after the switch would be missing here.
	if keys := scanKeys(t, newMaster, families); len(keys) != 2 {
		t.Errorf("refresh token families on the new master %s: %q, want the 2 of the launches before and after the failover",
			newMaster, keys)
	}
	checkRotationAndReuse(t, []string{tokenURL}, after)
}

// roundRobin is a reverse proxy that sends each request to the next of
// its backends in turn, and records which backend served each path.
type roundRobin struct {
	backends []*httputil.ReverseProxy
	mu       sync.Mutex
	next     int
	served   []routedRequest
}

type routedRequest struct {
	path    string
	backend int
}

func newRoundRobin(t *testing.T, backendURLs ...string) *roundRobin {
	p := &roundRobin{}
	for _, raw := range backendURLs {
		target, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		p.backends = append(p.backends, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// The gateways see the public host name, as behind a load balancer.
			r.Out.Host = r.In.Host
		}})
	}
	return p
}

func (p *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	i := p.next
	p.next = (p.next + 1) % len(p.backends)
	p.served = append(p.served, routedRequest{path: r.URL.Path, backend: i})
	p.mu.Unlock()
	p.backends[i].ServeHTTP(w, r)
}

// servedBy returns the backend that served the last request for path,
// or -1 when none did.
func (p *roundRobin) servedBy(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.served) - 1; i >= 0; i-- {
		if p.served[i].path == path {
			return p.served[i].backend
		}
	}
	return -1
}

func (p *roundRobin) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, r := range p.served {
		fmt.Fprintf(&b, "\n  %s -> gateway %d", r.path, r.backend)
	}
	return b.String()
}

// TestTwoGatewaysShareRedis runs two gateways built from one
// configuration behind a proxy that alternates between them on every
// request, as replicas behind a load balancer without sticky sessions.
func TestTwoGatewaysShareRedis(t *testing.T) {
	var cleanup testenv.Cleanup
	t.Cleanup(cleanup.Run)
	r := testenv.StartRedis(t, &cleanup)
	publicLn, publicURL := gatewaytest.Listener(t)
	up := testenv.StartUpstream(t, &cleanup, "keycloak", publicURL+"/callback")
	cfg := gatewaytest.Config(t, t.TempDir(), publicURL, r.Addr, up)

	lnA, urlA := gatewaytest.Listener(t)
	lnB, urlB := gatewaytest.Listener(t)
	gwA := gatewaytest.Serve(t, &cleanup, lnA, cfg)
	gwB := gatewaytest.Serve(t, &cleanup, lnB, cfg)
	proxy := newRoundRobin(t, urlA, urlB)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(publicLn) }()
	cleanup.Add(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("round-robin proxy: %v", err)
		}
	})
	e := &environment{upstream: up, gw: gwA, fhirBase: publicURL + "/fhir"}
	reuse := reuseCount(gwA, gwB)

	first := launchTokens(t, e, publicURL+"/token")
	authorize, callback := proxy.servedBy("/authorize"), proxy.servedBy("/callback")
	if authorize < 0 || callback < 0 || authorize == callback {
		t.Errorf("the login was not split across the gateways: /authorize by %d, /callback by %d; requests:%s",
			authorize, callback, proxy.log())
	}

	// Each gateway accepts the refresh tokens the other one issued, and
	// detects the reuse of a token that the other one rotated.
	checkRotationAndReuse(t, []string{urlB + "/token", urlA + "/token"}, first)
	if got := reuseCount(gwA, gwB); got != reuse+1 {
		t.Errorf("smartgate_reuse_detected_total{kind=refresh_token} of both gateways went from %v to %v, want +1", reuse, got)
	}

	disc := discover(t, e.fhirBase)
	next := launchTokens(t, e, urlA+"/token")
	fromB := refreshAt(t, urlB+"/token", next.RefreshToken)
	if fromB.Status != http.StatusOK {
		t.Fatalf("refresh at the other gateway: %d %q", fromB.Status, fromB.Error)
	}
	if claims := verifyAccessToken(t, disc.JWKSURI, fromB.AccessToken); claims["iss"] != publicURL {
		t.Errorf("access token of the other gateway: iss = %v, want %s", claims["iss"], publicURL)
	}
}
