package clientauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	testClientID = "bulk-export"
	testTokenURL = "https://gateway.example.org/token"
)

var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// Keys are generated once per test binary because RSA key generation is
// slow under the race detector.
var (
	rsaKeyA  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey(2048) })
	rsaKeyB  = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey(2048) })
	ecKeyA   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P384()) })
	ecKeyB   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P384()) })
	ecKey256 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P256()) })
)

func mustRSAKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func mustECKey(curve elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// fakeClock is a clock that moves only when a test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// memoryReplayCache is a ReplayCache in memory, for tests only.
type memoryReplayCache struct {
	mu    sync.Mutex
	clock func() time.Time
	seen  map[string]time.Time // client ID and jti to expiry
	err   error                // returned by every Claim when set
	ttls  []time.Duration      // ttl of every Claim call
}

func newMemoryReplayCache(clock func() time.Time) *memoryReplayCache {
	return &memoryReplayCache{clock: clock, seen: map[string]time.Time{}}
}

func (m *memoryReplayCache) Claim(_ context.Context, clientID, jti string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ttls = append(m.ttls, ttl)
	if m.err != nil {
		return false, m.err
	}
	key := clientID + "\x00" + jti
	now := m.clock()
	if expiry, ok := m.seen[key]; ok && now.Before(expiry) {
		return false, nil
	}
	m.seen[key] = now.Add(ttl)
	return true, nil
}

// publicJWK returns the public half of key as a JWK with key ID kid.
func publicJWK(key crypto.Signer, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key.Public(), KeyID: kid}
}

func keySet(keys ...jose.JSONWebKey) *jose.JSONWebKeySet {
	return &jose.JSONWebKeySet{Keys: keys}
}

// validClaims returns the claims of a valid assertion at now with a new jti.
func validClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testClientID,
		"sub": testClientID,
		"aud": testTokenURL,
		"exp": now.Add(4 * time.Minute).Unix(),
		"iat": now.Unix(),
		"jti": rand.Text(),
	}
}

// signJWT builds a compact JWS from header and claims, signed with key
// using signAlg. The header is written as given, so it may name another
// alg than signAlg or omit members. signAlg "none" leaves the signature
// empty, and for HS256 key is ignored and hmacKey is used.
func signJWT(t testing.TB, key crypto.Signer, signAlg jose.SignatureAlgorithm, header, claims map[string]any) string {
	t.Helper()
	input := encodeSegment(t, header) + "." + encodeSegment(t, claims)
	sig := signInput(t, key, signAlg, []byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

var hmacKey = []byte("0123456789abcdef0123456789abcdef")

func signInput(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, input []byte) []byte {
	t.Helper()
	var digest []byte
	var hash crypto.Hash
	switch alg {
	case "none":
		return nil
	case jose.HS256:
		mac := hmac.New(sha256.New, hmacKey)
		mac.Write(input)
		return mac.Sum(nil)
	case jose.RS256, jose.ES256:
		sum := sha256.Sum256(input)
		digest, hash = sum[:], crypto.SHA256
	case jose.RS384, jose.ES384:
		sum := sha512.Sum384(input)
		digest, hash = sum[:], crypto.SHA384
	default:
		t.Fatalf("signJWT: unsupported alg %q", alg)
	}

	switch k := key.(type) {
	case *rsa.PrivateKey:
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, hash, digest)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		return sig
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatalf("sign: %v", err)
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig
	}
	t.Fatalf("signJWT: unsupported key %T", key)
	return nil
}

func encodeSegment(t testing.TB, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// header returns a JWS header with alg and kid, and typ JWT.
func header(alg jose.SignatureAlgorithm, kid string) map[string]any {
	return map[string]any{"alg": string(alg), "kid": kid, "typ": "JWT"}
}

// newTestVerifier returns a Verifier for testTokenURL with a fake clock
// and a memory replay cache.
func newTestVerifier(opts ...Option) (*Verifier, *fakeClock, *memoryReplayCache) {
	clock := newFakeClock()
	replay := newMemoryReplayCache(clock.Now)
	v := NewVerifier([]string{testTokenURL}, replay, opts...)
	v.now = clock.Now
	return v, clock, replay
}

// wantError fails t unless err wraps target and its message contains
// fragment.
func wantError(t testing.TB, err, target error, fragment string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %v containing %q", target, fragment)
	}
	if !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %v", err, target)
	}
	if !strings.Contains(err.Error(), fragment) {
		t.Errorf("error %q does not contain %q", err, fragment)
	}
}

// jwksServer is a client's jwks_uri on an httptest server. Tests change
// the keys and the response while it runs.
type jwksServer struct {
	*httptest.Server

	mu           sync.Mutex
	keys         *jose.JSONWebKeySet
	cacheControl string
	status       int           // response status; zero means 200
	location     string        // Location header when not empty; its path /moved serves the keys
	body         string        // response body instead of keys, when not empty
	block        chan struct{} // when not nil, requests wait until it is closed
	fetches      int
	requests     []*http.Request
}

func newJWKSServer(t testing.TB, keys *jose.JSONWebKeySet) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.fetches++
	s.requests = append(s.requests, r)
	block := s.block
	s.mu.Unlock()

	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cacheControl != "" {
		w.Header().Set("Cache-Control", s.cacheControl)
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case s.location != "" && r.URL.Path == "/moved":
		_ = json.NewEncoder(w).Encode(s.keys)
		return
	case s.location != "":
		w.Header().Set("Location", s.location)
	}
	if s.status != 0 {
		w.WriteHeader(s.status)
	}
	if s.body != "" {
		_, _ = w.Write([]byte(s.body))
		return
	}
	_ = json.NewEncoder(w).Encode(s.keys)
}

func (s *jwksServer) set(f func(s *jwksServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *jwksServer) fetchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// blockRequests makes requests wait until the returned function is called
// or the client gives up. The test cleanup releases them too, before the
// server closes.
func (s *jwksServer) blockRequests(t testing.TB) (release func()) {
	t.Helper()
	block := make(chan struct{})
	s.set(func(s *jwksServer) { s.block = block })
	release = sync.OnceFunc(func() { close(block) })
	t.Cleanup(release)
	return release
}

func (s *jwksServer) uri() string { return s.URL + "/.well-known/jwks.json" }
