package dpop

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestVerifyAcceptsValidProof(t *testing.T) {
	tests := []struct {
		name   string
		key    crypto.Signer
		alg    jose.SignatureAlgorithm
		header func(h map[string]any)
		claims func(c map[string]any)
		method string
		target string
		opts   Options
	}{
		{name: "ES256", key: ecKey256(), alg: jose.ES256},
		{name: "ES384", key: ecKey384(), alg: jose.ES384},
		{name: "RS256", key: rsaKey(), alg: jose.RS256},
		{name: "RS384", key: rsaKey(), alg: jose.RS384},
		{name: "PS256", key: rsaKey(), alg: jose.PS256},
		{name: "EdDSA", key: edKey(), alg: jose.EdDSA},
		{
			name: "typ in upper case", key: ecKey256(), alg: jose.ES256,
			header: func(h map[string]any) { h["typ"] = "DPOP+JWT" },
		},
		{
			name: "htu query ignored", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = testURL + "?x=1" },
		},
		{
			name: "target query ignored", key: ecKey256(), alg: jose.ES256,
			target: testURL + "?grant_type=refresh_token#top",
		},
		{
			name: "htu fragment ignored", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = testURL + "#frag" },
		},
		{
			name: "htu with default port", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org:443/token" },
		},
		{
			name: "htu scheme and host in upper case", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = "HTTPS://Gateway.Example.ORG/token" },
		},
		{
			name: "htu with encoded unreserved character", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org/%74oken" },
		},
		{
			name: "empty path equals slash", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org" },
			target: "https://gateway.example.org/",
		},
		{
			name: "other method", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["htm"] = "GET" },
			method: "GET",
		},
		{
			name: "iat at max age", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["iat"] = testNow.Add(-DefaultMaxAge).Unix() },
		},
		{
			name: "iat at skew", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["iat"] = testNow.Add(DefaultSkew).Unix() },
		},
		{
			name: "iat older with longer max age", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["iat"] = testNow.Add(-4 * time.Minute).Unix() },
			opts:   Options{MaxAge: 5 * time.Minute},
		},
		{
			name: "ath matching access token", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["ath"] = AccessTokenHash("at-123") },
			opts:   Options{AccessToken: "at-123"},
		},
		{
			name: "ath ignored without access token", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["ath"] = "anything" },
		},
		{
			name: "nonce matching", key: ecKey256(), alg: jose.ES256,
			claims: func(c map[string]any) { c["nonce"] = "n-42" },
			opts:   Options{Nonce: "n-42"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := proofHeader(t, tt.key, tt.alg)
			if tt.header != nil {
				tt.header(h)
			}
			c := proofClaims()
			if tt.claims != nil {
				tt.claims(c)
			}
			method, target := testMethod, testURL
			if tt.method != "" {
				method = tt.method
			}
			if tt.target != "" {
				target = tt.target
			}

			got, err := Verify(signProof(t, tt.key, tt.alg, h, c), method, target, testNow, tt.opts)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			wantJKT, err := Thumbprint(jose.JSONWebKey{Key: tt.key.Public()})
			if err != nil {
				t.Fatalf("Thumbprint: %v", err)
			}
			if got.JKT != wantJKT {
				t.Errorf("JKT = %q, want %q", got.JKT, wantJKT)
			}
			if got.ID != c["jti"] {
				t.Errorf("ID = %q, want %q", got.ID, c["jti"])
			}
			if want := time.Unix(c["iat"].(int64), 0); !got.IssuedAt.Equal(want) {
				t.Errorf("IssuedAt = %v, want %v", got.IssuedAt, want)
			}
		})
	}
}

func TestVerifyRejectsClaims(t *testing.T) {
	tests := []struct {
		name     string
		claims   func(c map[string]any)
		opts     Options
		fragment string
	}{
		{name: "htm wrong", claims: func(c map[string]any) { c["htm"] = "GET" }, fragment: `htm "GET" does not match the request method "POST"`},
		{name: "htm in lower case", claims: func(c map[string]any) { c["htm"] = "post" }, fragment: `htm "post" does not match`},
		{name: "htm missing", claims: func(c map[string]any) { delete(c, "htm") }, fragment: "missing htm claim"},
		{name: "htu other path", claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org/authorize" }, fragment: "does not match the request URL"},
		{name: "htu other host", claims: func(c map[string]any) { c["htu"] = "https://evil.example.org/token" }, fragment: "does not match the request URL"},
		{name: "htu http instead of https", claims: func(c map[string]any) { c["htu"] = "http://gateway.example.org/token" }, fragment: "does not match the request URL"},
		{name: "htu other port", claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org:8443/token" }, fragment: "does not match the request URL"},
		{name: "htu trailing slash", claims: func(c map[string]any) { c["htu"] = testURL + "/" }, fragment: "does not match the request URL"},
		{name: "htu encoded slash", claims: func(c map[string]any) { c["htu"] = "https://gateway.example.org%2Ftoken" }, fragment: `htu "https://gateway.example.org%2Ftoken"`},
		{name: "htu relative", claims: func(c map[string]any) { c["htu"] = "/token" }, fragment: `scheme "" is not http or https`},
		{name: "htu with user information", claims: func(c map[string]any) { c["htu"] = "https://user@gateway.example.org/token" }, fragment: "URL contains user information"},
		{name: "htu missing", claims: func(c map[string]any) { delete(c, "htu") }, fragment: "missing htu claim"},
		{name: "iat too old", claims: func(c map[string]any) { c["iat"] = testNow.Add(-DefaultMaxAge - time.Second).Unix() }, fragment: "is more than 1m0s in the past"},
		{name: "iat in the future", claims: func(c map[string]any) { c["iat"] = testNow.Add(DefaultSkew + time.Second).Unix() }, fragment: "is more than 5s in the future"},
		{name: "iat older than custom max age", claims: func(c map[string]any) { c["iat"] = testNow.Add(-11 * time.Second).Unix() }, opts: Options{MaxAge: 10 * time.Second}, fragment: "is more than 10s in the past"},
		{name: "iat missing", claims: func(c map[string]any) { delete(c, "iat") }, fragment: "missing iat claim"},
		{name: "iat not a number", claims: func(c map[string]any) { c["iat"] = "now" }, fragment: "invalid claims"},
		{name: "jti missing", claims: func(c map[string]any) { delete(c, "jti") }, fragment: "missing jti claim"},
		{name: "jti too long", claims: func(c map[string]any) { c["jti"] = strings.Repeat("j", 257) }, fragment: "jti is 257 bytes"},
		{name: "ath missing", opts: Options{AccessToken: "at-123"}, fragment: "missing ath claim"},
		{name: "ath of other token", claims: func(c map[string]any) { c["ath"] = AccessTokenHash("at-456") }, opts: Options{AccessToken: "at-123"}, fragment: "ath does not match the access token"},
		{name: "ath of token itself", claims: func(c map[string]any) { c["ath"] = "at-123" }, opts: Options{AccessToken: "at-123"}, fragment: "ath does not match the access token"},
		{name: "nonce missing", opts: Options{Nonce: "n-42"}, fragment: "missing nonce claim"},
		{name: "nonce wrong", claims: func(c map[string]any) { c["nonce"] = "n-41" }, opts: Options{Nonce: "n-42"}, fragment: "nonce does not match"},
		{name: "empty claims", claims: func(c map[string]any) { clear(c) }, fragment: "missing jti claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proof := validProof(t, ecKey256(), jose.ES256, tt.claims)

			_, err := Verify(proof, testMethod, testURL, testNow, tt.opts)
			wantError(t, err, ErrInvalidProof, tt.fragment)
		})
	}
}

func TestVerifyRejectsHeader(t *testing.T) {
	smallRSA := mustRSAKey(1024)
	tests := []struct {
		name     string
		key      crypto.Signer
		signAlg  jose.SignatureAlgorithm
		header   func(t *testing.T) map[string]any
		fragment string
	}{
		{
			name: "typ JWT", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "typ", "JWT")
			},
			fragment: "typ header JWT is not dpop+jwt",
		},
		{
			name: "typ missing", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "typ", nil)
			},
			fragment: "missing typ header",
		},
		{
			name: "typ not a string", key: ecKey256(), signAlg: jose.ES256,
			header:   func(t *testing.T) map[string]any { return withMember(proofHeader(t, ecKey256(), jose.ES256), "typ", 7) },
			fragment: "typ header 7 is not dpop+jwt",
		},
		{
			name: "alg missing", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "alg", nil)
			},
			fragment: "missing alg header",
		},
		{
			name: "alg none", signAlg: "none",
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "alg", "none")
			},
			fragment: `alg "none" is not accepted`,
		},
		{
			name: "alg HS256", signAlg: jose.HS256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "alg", "HS256")
			},
			fragment: `alg "HS256" is not accepted`,
		},
		{
			name: "alg RS512", key: rsaKey(), signAlg: jose.RS384,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, rsaKey(), jose.RS384), "alg", "RS512")
			},
			fragment: `alg "RS512" is not accepted`,
		},
		{
			name: "jwk missing", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "jwk", nil)
			},
			fragment: "missing jwk header",
		},
		{
			name: "private key in jwk", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "jwk", jwkJSON(t, ecKey256()))
			},
			fragment: "jwk header contains private or symmetric key material",
		},
		{
			name: "private RSA key in jwk", key: rsaKey(), signAlg: jose.RS256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, rsaKey(), jose.RS256), "jwk", jwkJSON(t, rsaKey()))
			},
			fragment: "jwk header contains private or symmetric key material",
		},
		{
			name: "symmetric key in jwk", signAlg: jose.HS256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "jwk", jwkJSON(t, hmacKey))
			},
			fragment: "jwk header contains private or symmetric key material",
		},
		{
			name: "signed by another key than jwk", key: ecOther(), signAlg: jose.ES256,
			header:   func(t *testing.T) map[string]any { return proofHeader(t, ecKey256(), jose.ES256) },
			fragment: "signature does not verify with the jwk header",
		},
		{
			name: "ES384 with P-256 jwk", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "alg", "ES384")
			},
			fragment: "jwk header is a EC P-256 key, which does not fit alg ES384",
		},
		{
			name: "RS256 with EC jwk", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "alg", "RS256")
			},
			fragment: "does not fit alg RS256",
		},
		{
			name: "RSA key under 2048 bits", key: smallRSA, signAlg: jose.RS256,
			header:   func(t *testing.T) map[string]any { return proofHeader(t, smallRSA, jose.RS256) },
			fragment: "jwk header is a 1024-bit RSA key, which does not fit alg RS256",
		},
		{
			name: "crit header", key: ecKey256(), signAlg: jose.ES256,
			header: func(t *testing.T) map[string]any {
				return withMember(proofHeader(t, ecKey256(), jose.ES256), "crit", []string{"exp"})
			},
			fragment: "crit header is not supported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proof := signProof(t, tt.key, tt.signAlg, tt.header(t), proofClaims())

			_, err := Verify(proof, testMethod, testURL, testNow, Options{})
			wantError(t, err, ErrInvalidProof, tt.fragment)
		})
	}
}

// withMember sets h[name] to value, or deletes it when value is nil, and
// returns h.
func withMember(h map[string]any, name string, value any) map[string]any {
	if value == nil {
		delete(h, name)
	} else {
		h[name] = value
	}
	return h
}

func TestVerifyRejectsMalformedProof(t *testing.T) {
	valid := validProof(t, ecKey256(), jose.ES256, nil)
	parts := strings.Split(valid, ".")
	notJSON := base64.RawURLEncoding.EncodeToString([]byte("not json"))
	headerJSON, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatalf("decode header: %v", err)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		t.Fatalf("decode header: %v", err)
	}

	tests := []struct {
		name     string
		proof    string
		fragment string
	}{
		{"empty", "", "missing proof"},
		{"one part", "abc", "three dot-separated parts"},
		{"two parts", parts[0] + "." + parts[1], "three dot-separated parts"},
		{"four parts", valid + ".abc", "three dot-separated parts"},
		{"two proofs joined", valid + ", " + valid, "more than one proof"},
		{"bad base64", parts[0] + ".!!!." + parts[2], "invalid character at byte"},
		{"line break inside", parts[0] + "\n." + parts[1] + "." + parts[2], "invalid character at byte"},
		{"surrounding space", " " + valid + " ", "invalid character at byte 0"},
		{"header not JSON", notJSON + "." + parts[1] + "." + parts[2], "malformed proof: header"},
		{"header base64 of impossible length", "A." + parts[1] + "." + parts[2], "malformed proof: header"},
		{"payload not JSON", parts[0] + "." + notJSON + "." + parts[2], "signature does not verify"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "signature does not verify"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "JWS JSON serialization is not accepted"},
		{"huge input", strings.Repeat("A", 1<<20), "more than the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.proof, testMethod, testURL, testNow, Options{})
			wantError(t, err, ErrInvalidProof, tt.fragment)
		})
	}
}

func TestVerifyRejectsInvalidTargetURL(t *testing.T) {
	proof := validProof(t, ecKey256(), jose.ES256, nil)
	tests := []struct {
		name     string
		target   string
		fragment string
	}{
		{"empty", "", `scheme "" is not http or https`},
		{"relative", "/token", `scheme "" is not http or https`},
		{"other scheme", "ftp://gateway.example.org/token", `scheme "ftp" is not http or https`},
		{"opaque", "https:gateway.example.org", "not an absolute URL"},
		{"bad escape", "https://gateway.example.org/%zz", "invalid URL escape"},
		{"escape in host", "https://gateway%25.example.org/token", `host contains "%"`},
		{"IPv6 zone", "https://[fe80::1%25en0]/token", `host contains "%"`},
		{"port out of range", "https://gateway.example.org:70000/token", `invalid port "70000"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(proof, testMethod, tt.target, testNow, Options{})
			if err == nil {
				t.Fatal("Verify succeeded, want error")
			}
			if errors.Is(err, ErrInvalidProof) {
				t.Errorf("error %q wraps ErrInvalidProof; a bad target URL is the caller's mistake", err)
			}
			if !strings.Contains(err.Error(), "invalid target URL") || !strings.Contains(err.Error(), tt.fragment) {
				t.Errorf("error %q does not contain %q and %q", err, "invalid target URL", tt.fragment)
			}
		})
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{"unchanged", "https://a.example.org/token", "https://a.example.org/token"},
		{"query and fragment dropped", "https://a.example.org/token?x=1#f", "https://a.example.org/token"},
		{"scheme and host lowered", "HTTPS://A.Example.ORG/Token", "https://a.example.org/Token"},
		{"https default port dropped", "https://a.example.org:443/t", "https://a.example.org/t"},
		{"http default port dropped", "http://a.example.org:80/t", "http://a.example.org/t"},
		{"https port 80 kept", "https://a.example.org:80/t", "https://a.example.org:80/t"},
		{"other port kept", "http://127.0.0.1:8080/t", "http://127.0.0.1:8080/t"},
		{"leading zeros in port", "https://a.example.org:0443/t", "https://a.example.org/t"},
		{"empty port", "https://a.example.org:/t", "https://a.example.org/t"},
		{"empty path", "https://a.example.org", "https://a.example.org/"},
		{"empty path with query", "https://a.example.org?x", "https://a.example.org/"},
		{"IPv6 literal", "https://[::1]/t", "https://[::1]/t"},
		{"IPv6 literal with default port", "https://[::1]:443/t", "https://[::1]/t"},
		{"IPv6 literal with port", "https://[::1]:8443/t", "https://[::1]:8443/t"},
		{"unreserved escape decoded", "https://a.example.org/%7Euser/%41", "https://a.example.org/~user/A"},
		{"reserved escape upper-cased", "https://a.example.org/a%2fb", "https://a.example.org/a%2Fb"},
		{"space escape kept", "https://a.example.org/a%20b", "https://a.example.org/a%20b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := normalizeURL(tt.raw)
			if err != nil {
				t.Fatalf("normalizeURL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("normalizeURL(%q) = %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	// The RSA key and its thumbprint are the example of RFC 7638 section
	// 3.1; the EC key and its thumbprint are the jkt example of RFC 9449
	// section 6.1.
	const rfc7638Key = `{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",` +
		`"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`
	const rfc9449Key = `{"kty":"EC","crv":"P-256",` +
		`"x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`

	tests := []struct {
		name string
		jwk  string
		want string
	}{
		{"RFC 7638 RSA example", rfc7638Key, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 9449 EC example", rfc9449Key, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var key jose.JSONWebKey
			if err := key.UnmarshalJSON([]byte(tt.jwk)); err != nil {
				t.Fatalf("parse jwk: %v", err)
			}

			got, err := Thumbprint(key)
			if err != nil {
				t.Fatalf("Thumbprint: %v", err)
			}
			if got != tt.want {
				t.Errorf("Thumbprint = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("private key gives public thumbprint", func(t *testing.T) {
		public, err := Thumbprint(jose.JSONWebKey{Key: ecKey256().Public()})
		if err != nil {
			t.Fatalf("Thumbprint of public key: %v", err)
		}
		private, err := Thumbprint(jose.JSONWebKey{Key: ecKey256()})
		if err != nil {
			t.Fatalf("Thumbprint of private key: %v", err)
		}
		if private != public {
			t.Errorf("Thumbprint of private key = %q, want %q", private, public)
		}
	})

	t.Run("symmetric key rejected", func(t *testing.T) {
		_, err := Thumbprint(jose.JSONWebKey{Key: hmacKey})
		if err == nil || !strings.Contains(err.Error(), "jwk thumbprint: ") {
			t.Errorf("error = %v, want one containing %q", err, "jwk thumbprint: ")
		}
	})
}

func TestAccessTokenHash(t *testing.T) {
	// The access token and ath value of RFC 9449 section 7.1.
	const token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	if got, want := AccessTokenHash(token), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"; got != want {
		t.Errorf("AccessTokenHash = %q, want %q", got, want)
	}
}

func TestAlgorithmsReturnsCopy(t *testing.T) {
	got := Algorithms()
	for _, alg := range got {
		if alg == "none" || strings.HasPrefix(string(alg), "HS") {
			t.Errorf("Algorithms() contains %q", alg)
		}
	}
	got[0] = jose.HS256
	if Algorithms()[0] == jose.HS256 {
		t.Error("changing the returned slice changed the accepted algorithms")
	}
}
