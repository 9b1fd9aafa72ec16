package dpop

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzVerify checks that Verify never panics and fails only with
// ErrInvalidProof, whatever the proof, method and URL claims.
func FuzzVerify(f *testing.F) {
	valid := validProof(f, ecKey256(), jose.ES256, nil)
	parts := strings.Split(valid, ".")
	f.Add(valid)
	f.Add(validProof(f, rsaKey(), jose.PS256, nil))
	f.Add(validProof(f, edKey(), jose.EdDSA, func(c map[string]any) { c["htu"] = "HTTPS://gateway.example.org:443/%74oken?q" }))
	f.Add(signProof(f, ecKey256(), jose.ES256, withMember(proofHeader(f, ecKey256(), jose.ES256), "jwk", jwkJSON(f, ecKey256())), proofClaims()))
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + ".." + parts[2])
	f.Add("..")
	f.Add("")
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2In0.e30.AAAA")

	f.Fuzz(func(t *testing.T, proof string) {
		_, err := Verify(proof, testMethod, testURL, testNow, Options{AccessToken: "at", Nonce: "n"})
		if err != nil && !errors.Is(err, ErrInvalidProof) {
			t.Errorf("error %q does not wrap ErrInvalidProof", err)
		}
	})
}

// FuzzNormalizeURL checks that normalizeURL never panics and that its
// output normalizes to itself, so that two URLs compare equal exactly when
// their normal forms do.
func FuzzNormalizeURL(f *testing.F) {
	for _, seed := range []string{
		testURL,
		"HTTPS://A.Example.ORG:443/%7euser/a%2fb?q#f",
		"http://[::1]:8080",
		"https://a.example.org:/",
		"https://[fe80::1%25en0]/t",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		normal, err := normalizeURL(raw)
		if err != nil {
			return
		}
		again, err := normalizeURL(normal)
		if err != nil {
			t.Fatalf("normalizeURL(%q) = %q, which does not parse: %v", raw, normal, err)
		}
		if again != normal {
			t.Errorf("normalizeURL(%q) = %q, but normalizeURL(%q) = %q", raw, normal, normal, again)
		}
	})
}
