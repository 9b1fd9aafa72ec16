package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/token"
)

// Clients that the shared environment adds for client-type tests.
const (
	asymClient    = "asym-app"
	asymRedirect  = "https://asym-app.example.org/callback"
	backendClient = "backend"
	dpopClient    = "dpop-app"
	rsID          = "fhir-server"
	rsSecret      = "fhir-server-introspection-secret-0123456789"
)

// signingKey is a client's private key with its key id.
type signingKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	signer crypto.Signer
}

func newSigningKey(t testing.TB, alg jose.SignatureAlgorithm) *signingKey {
	t.Helper()
	var (
		k   crypto.Signer
		err error
	)
	switch alg {
	case jose.ES384:
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &signingKey{kid: string(alg) + "-" + token.RandomString(6), alg: alg, signer: k}
}

func (k *signingKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.signer.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// assertion signs a private_key_jwt client assertion for the token
// endpoint; change edits the claims before signing.
func (k *signingKey) assertion(t testing.TB, clientID, audience string, change func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": clientID, "sub": clientID, "aud": audience, "jti": token.RandomString(12),
		"exp": now.Add(2 * time.Minute).Unix(), "iat": now.Unix(),
	}
	if change != nil {
		change(claims)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.signer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertionForm is the client authentication part of a token request.
func assertionForm(a string) map[string][]string {
	return map[string][]string{"client_assertion_type": {clientauth.AssertionType}, "client_assertion": {a}}
}

// dpopProof signs a DPoP proof (RFC 9449) for a request.
func (k *signingKey) dpopProof(t testing.TB, method, url string) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.signer}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(map[string]any{
		"htm": method, "htu": url, "iat": time.Now().Unix(), "jti": token.RandomString(12),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// jwksServer publishes a client's JWK Set and can rotate it, as a client
// that manages its own keys does.
type jwksServer struct {
	URL string
	mu  sync.Mutex
	set jose.JSONWebKeySet
}

func startJWKSServer(keys ...*signingKey) *jwksServer {
	s := &jwksServer{}
	s.publish(keys...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_ = json.NewEncoder(w).Encode(s.set)
	}))
	s.URL = srv.URL + "/jwks.json"
	services.Add(srv.Close)
	return s
}

// publish replaces the served keys.
func (s *jwksServer) publish(keys ...*signingKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = jose.JSONWebKeySet{}
	for _, k := range keys {
		s.set.Keys = append(s.set.Keys, k.public())
	}
}
