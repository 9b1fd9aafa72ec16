package clientauth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify checks that Verify never panics and fails only with
// ErrInvalidClient, whatever the assertion. The keys are inline, so no
// input leads to a network request.
func FuzzVerify(f *testing.F) {
	v, clock, _ := newTestVerifier()
	client := Client{ID: testClientID, JWKS: keySet(
		publicJWK(rsaKeyA(), "rsa-1"),
		publicJWK(ecKeyA(), "ec-384"),
	)}

	valid := signJWT(f, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(signJWT(f, rsaKeyA(), jose.RS384, header(jose.RS384, "rsa-1"), validClaims(clock.Now())))
	f.Add(signJWT(f, nil, "none", map[string]any{"alg": "none", "kid": "ec-384"}, validClaims(clock.Now())))
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".." + parts[2])
	f.Add("..")
	f.Add("")
	f.Add("eyJhbGciOiJFUzM4NCJ9.e30.AAAA")
	f.Add(`{"payload":"e30","signatures":[{"protected":"e30","signature":""}]}`)

	f.Fuzz(func(t *testing.T, assertion string) {
		_, err := v.Verify(context.Background(), client, assertion)
		if err != nil && !errors.Is(err, ErrInvalidClient) {
			t.Errorf("error %q does not wrap ErrInvalidClient", err)
		}
	})
}
