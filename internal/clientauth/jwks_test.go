package clientauth

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// assertWith returns a valid ES384 or RS384 assertion signed by key with
// key ID kid, at the clock's time.
func assertWith(t *testing.T, key crypto.Signer, kid string, clock *fakeClock) string {
	t.Helper()
	alg := jose.ES384
	if _, ok := key.(*rsa.PrivateKey); ok {
		alg = jose.RS384
	}
	return signJWT(t, key, alg, header(alg, kid), validClaims(clock.Now()))
}

func TestJWKSURIKeyRotation(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(rsaKeyA(), "2026-01")))
	server.set(func(s *jwksServer) { s.cacheControl = "max-age=3600" })
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}
	ctx := context.Background()

	if _, err := v.Verify(ctx, client, assertWith(t, rsaKeyA(), "2026-01", clock)); err != nil {
		t.Fatalf("Verify with first key: %v", err)
	}

	// The client replaces its key: the old kid disappears and a new one
	// appears, while the cached set is still fresh.
	server.set(func(s *jwksServer) { s.keys = keySet(publicJWK(ecKeyA(), "2026-02")) })
	clock.Advance(minRefetchInterval)

	if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "2026-02", clock)); err != nil {
		t.Fatalf("Verify with new key: %v", err)
	}
	if n := server.fetchCount(); n != 2 {
		t.Errorf("fetches after new kid = %d, want 2", n)
	}

	_, err := v.Verify(ctx, client, assertWith(t, rsaKeyA(), "2026-01", clock))
	wantError(t, err, ErrInvalidClient, `no RS384 key with kid "2026-01" in the JWKS at `+server.uri())
	if n := server.fetchCount(); n != 2 {
		t.Errorf("fetches after old kid = %d, want 2", n)
	}
}

func TestJWKSRequest(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	v, clock, _ := newTestVerifier()

	if _, err := v.Verify(context.Background(), Client{ID: testClientID, JWKSURI: server.uri()}, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	server.mu.Lock()
	defer server.mu.Unlock()
	if len(server.requests) != 1 {
		t.Fatalf("got %d requests, want 1", len(server.requests))
	}
	r := server.requests[0]
	if r.Method != http.MethodGet {
		t.Errorf("method = %s, want GET", r.Method)
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept = %q, want application/json", got)
	}
	if r.URL.Path != "/.well-known/jwks.json" {
		t.Errorf("path = %q, want /.well-known/jwks.json", r.URL.Path)
	}
}

func TestJWKSCacheControl(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		advance      time.Duration // clock step before the second assertion
		wantFetches  int
	}{
		{"max-age reused within lifetime", "max-age=60", 59 * time.Second, 1},
		{"max-age refetched after lifetime", "max-age=60", 60 * time.Second, 2},
		{"default reused within 5 minutes", "", 4 * time.Minute, 1},
		{"default refetched after 5 minutes", "", 5 * time.Minute, 2},
		{"public without max-age uses default", "public", 4 * time.Minute, 1},
		{"max-age capped at 24 hours", "max-age=604800", 24 * time.Hour, 2},
		{"no-store refetched", "no-store", time.Second, 2},
		{"no-cache refetched", "no-cache", time.Second, 2},
		{"no-store with max-age refetched", "max-age=600, no-store", time.Second, 2},
		{"max-age zero refetched", "max-age=0", time.Second, 2},
		{"invalid max-age refetched", "max-age=soon", time.Second, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
			server.set(func(s *jwksServer) { s.cacheControl = tt.cacheControl })
			v, clock, _ := newTestVerifier()
			client := Client{ID: testClientID, JWKSURI: server.uri()}

			if _, err := v.Verify(context.Background(), client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
				t.Fatalf("first Verify: %v", err)
			}
			clock.Advance(tt.advance)
			if _, err := v.Verify(context.Background(), client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
				t.Fatalf("second Verify: %v", err)
			}

			if n := server.fetchCount(); n != tt.wantFetches {
				t.Errorf("fetches = %d, want %d", n, tt.wantFetches)
			}
		})
	}
}

func TestCacheLifetime(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   time.Duration
	}{
		{"absent", nil, defaultCacheLifetime},
		{"max-age", []string{"max-age=120"}, 120 * time.Second},
		{"directive in upper case", []string{"Public, MAX-AGE=30"}, 30 * time.Second},
		{"quoted max-age", []string{`max-age="30"`}, 30 * time.Second},
		{"spaces around directive", []string{" private ,  max-age=45 "}, 45 * time.Second},
		{"max-age over cap", []string{"max-age=86401"}, maxCacheLifetime},
		{"max-age over int64", []string{"max-age=99999999999999999999999"}, maxCacheLifetime},
		{"negative max-age", []string{"max-age=-1"}, 0},
		{"empty max-age", []string{"max-age="}, 0},
		{"no-store", []string{"no-store"}, 0},
		{"no-cache with argument", []string{`no-cache="Set-Cookie"`}, 0},
		{"no-store in second field", []string{"max-age=60", "no-store"}, 0},
		{"first of two max-age", []string{"max-age=60, max-age=0"}, 60 * time.Second},
		{"other directives only", []string{"public, must-revalidate"}, defaultCacheLifetime},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("Cache-Control", v)
			}
			if got := cacheLifetime(h); got != tt.want {
				t.Errorf("cacheLifetime(%q) = %v, want %v", tt.values, got, tt.want)
			}
		})
	}
}

func TestJWKSUnknownKidRefetchThrottled(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	server.set(func(s *jwksServer) { s.cacheControl = "max-age=3600" })
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}
	ctx := context.Background()

	if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("Verify with known kid: %v", err)
	}

	steps := []struct {
		name        string
		advance     time.Duration
		wantFetches int
		fragment    string
	}{
		// The first unknown kid after a regular fetch is refetched at once,
		// as a client that just rotated its key needs; three assertions
		// cause one refetch.
		{"first unknown kid refetched once", time.Second, 2, ""},
		{"burst within interval not refetched", 0, 2, "which was fetched less than 10s ago"},
		{"after interval refetched once", minRefetchInterval, 3, ""},
		{"right after refetch not refetched", time.Second, 3, "which was fetched less than 10s ago"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			clock.Advance(step.advance)

			for i := range 3 {
				_, err := v.Verify(ctx, client, assertWith(t, ecKeyB(), "made-up", clock))
				fragment := step.fragment
				if fragment == "" && i == 0 {
					fragment = `no ES384 key with kid "made-up" in the JWKS at`
				} else if fragment == "" {
					fragment = "which was fetched less than 10s ago"
				}
				wantError(t, err, ErrInvalidClient, fragment)
			}
			if n := server.fetchCount(); n != step.wantFetches {
				t.Errorf("fetches = %d, want %d", n, step.wantFetches)
			}
		})
	}

	t.Run("known kid still accepted", func(t *testing.T) {
		if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

func TestJWKSConcurrentVerificationsShareFetch(t *testing.T) {
	const n = 8
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	server.set(func(s *jwksServer) { s.cacheControl = "no-store" })
	release := server.blockRequests(t)
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}

	assertions := make([]string, n)
	for i := range assertions {
		assertions[i] = assertWith(t, ecKeyA(), "ec-384", clock)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = v.Verify(context.Background(), client, assertions[i])
		})
	}

	// All verifications must be waiting for the one fetch before it may
	// finish; with no-store, a late one would fetch again. A second
	// request at the server ends the wait too, and fails the test below.
	for v.jwks.waiters(server.uri()) < n && server.fetchCount() < 2 {
		runtime.Gosched()
	}
	release()
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("Verify %d: %v", i, err)
		}
	}
	if got := server.fetchCount(); got != 1 {
		t.Errorf("fetches = %d, want 1", got)
	}
}

func TestJWKSWaitEndsWithContext(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	server.blockRequests(t)
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}
	ctx, cancel := context.WithCancel(context.Background())

	done := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock))
		done <- err
	}()
	for v.jwks.waiters(server.uri()) < 1 {
		runtime.Gosched()
	}
	cancel()

	err := <-done
	wantError(t, err, ErrInvalidClient, "fetch JWKS from "+server.uri())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %q does not wrap context.Canceled", err)
	}
}

func TestJWKSFetchFailures(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, s *jwksServer)
		fragment  string
		wantCause error
	}{
		{
			name: "status 500",
			setup: func(_ *testing.T, s *jwksServer) {
				s.set(func(s *jwksServer) { s.status = http.StatusInternalServerError })
			},
			fragment: "unexpected status 500 Internal Server Error",
		},
		{
			name:     "status 404",
			setup:    func(_ *testing.T, s *jwksServer) { s.set(func(s *jwksServer) { s.status = http.StatusNotFound }) },
			fragment: "unexpected status 404 Not Found",
		},
		{
			name:     "garbage body",
			setup:    func(_ *testing.T, s *jwksServer) { s.set(func(s *jwksServer) { s.body = "<html>oops</html>" }) },
			fragment: "invalid jwks: invalid character",
		},
		{
			name:     "JSON without keys",
			setup:    func(_ *testing.T, s *jwksServer) { s.set(func(s *jwksServer) { s.body = `{"issuer":"x"}` }) },
			fragment: "invalid jwks: missing keys member",
		},
		{
			name: "body over 64 KiB",
			setup: func(_ *testing.T, s *jwksServer) {
				s.set(func(s *jwksServer) { s.body = `{"keys":[],"pad":"` + strings.Repeat("x", maxJWKSSize) + `"}` })
			},
			fragment: "response is larger than 65536 bytes",
		},
		{
			name:      "server slower than fetch timeout",
			setup:     func(t *testing.T, s *jwksServer) { s.blockRequests(t) },
			fragment:  "context deadline exceeded",
			wantCause: context.DeadlineExceeded,
		},
		{
			name: "redirect not followed",
			setup: func(_ *testing.T, s *jwksServer) {
				// The target serves the keys, so following it would pass.
				s.set(func(s *jwksServer) { s.status, s.location = http.StatusFound, s.URL+"/moved" })
			},
			fragment: "unexpected status 302 Found",
		},
		{
			name:     "connection refused",
			setup:    func(_ *testing.T, s *jwksServer) { s.Close() },
			fragment: "connection refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
			tt.setup(t, server)
			v, clock, _ := newTestVerifier(WithFetchTimeout(50 * time.Millisecond))

			_, err := v.Verify(context.Background(), Client{ID: testClientID, JWKSURI: server.uri()}, assertWith(t, ecKeyA(), "ec-384", clock))
			wantError(t, err, ErrInvalidClient, "fetch JWKS from "+server.uri())
			wantError(t, err, ErrInvalidClient, tt.fragment)
			if tt.wantCause != nil && !errors.Is(err, tt.wantCause) {
				t.Errorf("error %q does not wrap %v", err, tt.wantCause)
			}
		})
	}
}

func TestJWKSFailedFetchRetryThrottled(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	server.set(func(s *jwksServer) { s.status = http.StatusServiceUnavailable })
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}
	ctx := context.Background()

	_, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock))
	wantError(t, err, ErrInvalidClient, "unexpected status 503")

	clock.Advance(time.Second)
	_, err = v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock))
	wantError(t, err, ErrInvalidClient, "not retried until 10s after the failed attempt")
	if n := server.fetchCount(); n != 1 {
		t.Errorf("fetches within interval = %d, want 1", n)
	}

	server.set(func(s *jwksServer) { s.status = 0 })
	clock.Advance(minRefetchInterval)
	if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("Verify after interval: %v", err)
	}
	if n := server.fetchCount(); n != 2 {
		t.Errorf("fetches after interval = %d, want 2", n)
	}
}

func TestJWKSFailedRefetchKeepsLastGoodSet(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	server.set(func(s *jwksServer) { s.cacheControl = "max-age=600" })
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}
	ctx := context.Background()

	if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("first Verify: %v", err)
	}

	server.set(func(s *jwksServer) { s.status = http.StatusBadGateway })
	clock.Advance(minRefetchInterval)
	_, err := v.Verify(ctx, client, assertWith(t, ecKeyB(), "new-key", clock))
	wantError(t, err, ErrInvalidClient, "unexpected status 502")

	if _, err := v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("Verify with cached key after failed refetch: %v", err)
	}

	// Once the cached set expires, the failing server makes every
	// assertion fail: an expired set is never used.
	clock.Advance(600 * time.Second)
	_, err = v.Verify(ctx, client, assertWith(t, ecKeyA(), "ec-384", clock))
	wantError(t, err, ErrInvalidClient, "unexpected status 502")
	if n := server.fetchCount(); n != 3 {
		t.Errorf("fetches = %d, want 3", n)
	}
}

func TestJWKSSkipsUnusableKeys(t *testing.T) {
	server := newJWKSServer(t, nil)
	ecPublic := mustJSON(t, publicJWK(ecKeyA(), "ec-384"))
	ecPrivate := mustJSON(t, jose.JSONWebKey{Key: ecKeyB(), KeyID: "leaked"})
	body := `{"keys":[{"kty":"OKP","crv":"X25519","kid":"x","x":"AAAA"},` + ecPrivate + `,` + ecPublic + `]}`
	server.set(func(s *jwksServer) { s.body = body })
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKSURI: server.uri()}

	if _, err := v.Verify(context.Background(), client, assertWith(t, ecKeyA(), "ec-384", clock)); err != nil {
		t.Fatalf("Verify with usable key: %v", err)
	}

	_, err := v.Verify(context.Background(), client, assertWith(t, ecKeyB(), "leaked", clock))
	wantError(t, err, ErrInvalidClient, `no ES384 key with kid "leaked"`)
}
