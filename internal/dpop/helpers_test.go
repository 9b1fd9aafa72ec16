package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	testMethod = "POST"
	testURL    = "https://gateway.example.org/token"
)

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// Keys are generated once per test binary because RSA key generation is
// slow under the race detector.
var (
	ecKey256 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P256()) })
	ecKey384 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P384()) })
	ecOther  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustECKey(elliptic.P256()) })
	rsaKey   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey(2048) })
	edKey    = sync.OnceValue(func() ed25519.PrivateKey {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	})
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

var hmacKey = []byte("0123456789abcdef0123456789abcdef")

// jwkJSON returns the JWK of key as JSON, private members included when
// key is private.
func jwkJSON(t testing.TB, key any) json.RawMessage {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key}.MarshalJSON()
	if err != nil {
		t.Fatalf("marshal jwk: %v", err)
	}
	return b
}

// proofHeader returns a valid header for a proof signed by key with alg.
func proofHeader(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm) map[string]any {
	t.Helper()
	return map[string]any{"typ": "dpop+jwt", "alg": string(alg), "jwk": jwkJSON(t, key.Public())}
}

// proofClaims returns the claims of a valid proof for testMethod and
// testURL at testNow, with a new jti.
func proofClaims() map[string]any {
	return map[string]any{
		"jti": rand.Text(),
		"htm": testMethod,
		"htu": testURL,
		"iat": testNow.Unix(),
	}
}

// signProof builds a compact JWS from header and claims, signed with key
// using signAlg. The header is written as given, so it may name another
// alg or key than the ones that sign. signAlg "none" leaves the signature
// empty, and HS256 signs with hmacKey.
func signProof(t testing.TB, key crypto.Signer, signAlg jose.SignatureAlgorithm, header, claims map[string]any) string {
	t.Helper()
	input := encodeSegment(t, header) + "." + encodeSegment(t, claims)
	return input + "." + base64.RawURLEncoding.EncodeToString(signInput(t, key, signAlg, []byte(input)))
}

// validProof returns a valid proof signed by key with alg, after applying
// edit to its claims when edit is not nil.
func validProof(t testing.TB, key crypto.Signer, alg jose.SignatureAlgorithm, edit func(c map[string]any)) string {
	t.Helper()
	c := proofClaims()
	if edit != nil {
		edit(c)
	}
	return signProof(t, key, alg, proofHeader(t, key, alg), c)
}

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
	case jose.EdDSA:
		return ed25519.Sign(key.(ed25519.PrivateKey), input)
	case jose.RS256, jose.ES256, jose.PS256:
		sum := sha256.Sum256(input)
		digest, hash = sum[:], crypto.SHA256
	case jose.RS384, jose.ES384:
		sum := sha512.Sum384(input)
		digest, hash = sum[:], crypto.SHA384
	default:
		t.Fatalf("signProof: unsupported alg %q", alg)
	}

	switch k := key.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if alg == jose.PS256 {
			sig, err = rsa.SignPSS(rand.Reader, k, hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, hash, digest)
		}
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
	t.Fatalf("signProof: unsupported key %T", key)
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
