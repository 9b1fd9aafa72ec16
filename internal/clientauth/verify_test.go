package clientauth

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestVerifyAcceptsValidAssertion(t *testing.T) {
	keys := keySet(
		publicJWK(rsaKeyA(), "rsa-1"),
		publicJWK(ecKeyA(), "ec-384"),
		publicJWK(ecKey256(), "ec-256"),
	)
	tests := []struct {
		name   string
		key    crypto.Signer
		alg    jose.SignatureAlgorithm
		kid    string
		header func(h map[string]any)
		claims func(c map[string]any, now time.Time)
	}{
		{name: "RS384", key: rsaKeyA(), alg: jose.RS384, kid: "rsa-1"},
		{name: "ES384", key: ecKeyA(), alg: jose.ES384, kid: "ec-384"},
		{name: "RS256", key: rsaKeyA(), alg: jose.RS256, kid: "rsa-1"},
		{name: "ES256", key: ecKey256(), alg: jose.ES256, kid: "ec-256"},
		{
			name: "aud array containing URL", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, _ time.Time) { c["aud"] = []string{"https://other.example.org", testTokenURL} },
		},
		{
			name: "without iat", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, _ time.Time) { delete(c, "iat") },
		},
		{
			name: "without typ", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			header: func(h map[string]any) { delete(h, "typ") },
		},
		{
			name: "typ in lower case", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			header: func(h map[string]any) { h["typ"] = "jwt" },
		},
		{
			name: "nbf in the past", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, now time.Time) { c["nbf"] = now.Add(-time.Minute).Unix() },
		},
		{
			name: "exp passed within skew", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, now time.Time) { c["exp"] = now.Add(-30 * time.Second).Unix() },
		},
		{
			name: "exp at max lifetime plus skew", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, now time.Time) { c["exp"] = now.Add(6 * time.Minute).Unix() },
		},
		{
			name: "iat ahead within skew", key: ecKeyA(), alg: jose.ES384, kid: "ec-384",
			claims: func(c map[string]any, now time.Time) { c["iat"] = now.Add(30 * time.Second).Unix() },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, _ := newTestVerifier()
			h := header(tt.alg, tt.kid)
			if tt.header != nil {
				tt.header(h)
			}
			c := validClaims(clock.Now())
			if tt.claims != nil {
				tt.claims(c, clock.Now())
			}
			client := Client{ID: testClientID, JWKS: keys}

			got, err := v.Verify(context.Background(), client, signJWT(t, tt.key, tt.alg, h, c))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.ID != c["jti"] {
				t.Errorf("ID = %q, want %q", got.ID, c["jti"])
			}
			if got.KeyID != tt.kid {
				t.Errorf("KeyID = %q, want %q", got.KeyID, tt.kid)
			}
			if got.Algorithm != tt.alg {
				t.Errorf("Algorithm = %q, want %q", got.Algorithm, tt.alg)
			}
			if want := time.Unix(c["exp"].(int64), 0); !got.Expiry.Equal(want) {
				t.Errorf("Expiry = %v, want %v", got.Expiry, want)
			}
		})
	}
}

func TestVerifyRejectsClaims(t *testing.T) {
	tests := []struct {
		name     string
		claims   func(c map[string]any, now time.Time)
		fragment string
	}{
		{"exp in the past", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-2 * time.Minute).Unix() }, "expired at"},
		{"exp at end of skew", func(c map[string]any, now time.Time) { c["exp"] = now.Add(-DefaultSkew).Unix() }, "expired at"},
		{"exp too far ahead", func(c map[string]any, now time.Time) { c["exp"] = now.Add(6*time.Minute + time.Second).Unix() }, "more than 5m0s in the future"},
		{"exp an hour ahead", func(c map[string]any, now time.Time) { c["exp"] = now.Add(time.Hour).Unix() }, "more than 5m0s in the future"},
		{"exp missing", func(c map[string]any, _ time.Time) { delete(c, "exp") }, "missing exp"},
		{"exp not a number", func(c map[string]any, _ time.Time) { c["exp"] = "tomorrow" }, "invalid claims"},
		{"jti missing", func(c map[string]any, _ time.Time) { delete(c, "jti") }, "missing jti"},
		{"jti empty", func(c map[string]any, _ time.Time) { c["jti"] = "" }, "missing jti"},
		{"jti too long", func(c map[string]any, _ time.Time) { c["jti"] = strings.Repeat("j", 257) }, "jti is 257 bytes"},
		{"iss missing", func(c map[string]any, _ time.Time) { delete(c, "iss") }, "missing iss"},
		{"sub missing", func(c map[string]any, _ time.Time) { delete(c, "sub") }, "missing sub"},
		{"iss differs from sub", func(c map[string]any, _ time.Time) { c["sub"] = "other-app" }, `iss "bulk-export" and sub "other-app" differ`},
		{"iss and sub another client", func(c map[string]any, _ time.Time) { c["iss"], c["sub"] = "other-app", "other-app" }, `iss "other-app" is not the client_id`},
		{"iss not a string", func(c map[string]any, _ time.Time) { c["iss"] = 42 }, "invalid claims"},
		{"aud missing", func(c map[string]any, _ time.Time) { delete(c, "aud") }, "missing aud"},
		{"aud wrong", func(c map[string]any, _ time.Time) { c["aud"] = "https://gateway.example.org/authorize" }, "does not contain the token endpoint URL"},
		{"aud array without URL", func(c map[string]any, _ time.Time) {
			c["aud"] = []string{"https://a.example.org", "https://b.example.org"}
		}, "does not contain the token endpoint URL"},
		{"aud with trailing slash", func(c map[string]any, _ time.Time) { c["aud"] = testTokenURL + "/" }, "does not contain the token endpoint URL"},
		{"iat in the future", func(c map[string]any, now time.Time) { c["iat"] = now.Add(2 * time.Minute).Unix() }, "is in the future"},
		{"nbf in the future", func(c map[string]any, now time.Time) { c["nbf"] = now.Add(2 * time.Minute).Unix() }, "not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, replay := newTestVerifier()
			c := validClaims(clock.Now())
			tt.claims(c, clock.Now())
			client := Client{ID: testClientID, JWKS: keySet(publicJWK(ecKeyA(), "ec-384"))}

			_, err := v.Verify(context.Background(), client, signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), c))
			wantError(t, err, ErrInvalidClient, tt.fragment)
			if len(replay.ttls) != 0 {
				t.Errorf("replay cache called %d times for a rejected assertion", len(replay.ttls))
			}
		})
	}
}

func TestVerifyRejectsHeader(t *testing.T) {
	keys := keySet(
		publicJWK(rsaKeyA(), "rsa-1"),
		publicJWK(ecKeyA(), "ec-384"),
	)
	tests := []struct {
		name     string
		key      crypto.Signer
		signAlg  jose.SignatureAlgorithm
		header   map[string]any
		fragment string
	}{
		{"alg none", nil, "none", map[string]any{"alg": "none", "kid": "rsa-1"}, `alg "none" is not accepted`},
		{"alg HS256", nil, jose.HS256, map[string]any{"alg": "HS256", "kid": "rsa-1"}, `alg "HS256" is not accepted`},
		{"alg RS512", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS512", "kid": "rsa-1"}, `alg "RS512" is not accepted`},
		{"alg missing", rsaKeyA(), jose.RS384, map[string]any{"kid": "rsa-1"}, "missing alg header"},
		{"RSA alg on EC key", ecKeyA(), jose.ES384, map[string]any{"alg": "RS384", "kid": "ec-384"}, `no RS384 key with kid "ec-384"`},
		{"EC alg on RSA key", rsaKeyA(), jose.RS384, map[string]any{"alg": "ES384", "kid": "rsa-1"}, `no ES384 key with kid "rsa-1"`},
		{"ES256 on P-384 key", ecKeyA(), jose.ES384, map[string]any{"alg": "ES256", "kid": "ec-384"}, `no ES256 key with kid "ec-384"`},
		{"kid missing", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384"}, "missing kid"},
		{"kid empty", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": ""}, "missing kid"},
		{"kid unknown", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-9"}, `no RS384 key with kid "rsa-9" in the registered jwks`},
		{"typ wrong", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-1", "typ": "dpop+jwt"}, "typ header dpop+jwt is not JWT"},
		{"typ not a string", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-1", "typ": 1}, "typ header 1 is not JWT"},
		{"jku with inline jwks", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-1", "jku": "https://app.example.org/jwks"}, "does not match the registered jwks_uri"},
		{"crit header", rsaKeyA(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}, "crit header is not supported"},
		{"signed by another key", rsaKeyB(), jose.RS384, map[string]any{"alg": "RS384", "kid": "rsa-1"}, `signature does not verify with key "rsa-1"`},
		{"signed with other hash", rsaKeyA(), jose.RS256, map[string]any{"alg": "RS384", "kid": "rsa-1"}, "signature does not verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, _ := newTestVerifier()
			assertion := signJWT(t, tt.key, tt.signAlg, tt.header, validClaims(clock.Now()))

			_, err := v.Verify(context.Background(), Client{ID: testClientID, JWKS: keys}, assertion)
			wantError(t, err, ErrInvalidClient, tt.fragment)
		})
	}
}

func TestVerifyRejectsJKUMismatch(t *testing.T) {
	server := newJWKSServer(t, keySet(publicJWK(ecKeyA(), "ec-384")))
	tests := []struct {
		name     string
		jku      any
		fragment string
	}{
		{"other URL", "https://attacker.example.org/jwks.json", "does not match the registered jwks_uri"},
		{"trailing slash", server.uri() + "/", "does not match the registered jwks_uri"},
		{"not a string", 7, "jku header 7 does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, _ := newTestVerifier()
			h := header(jose.ES384, "ec-384")
			h["jku"] = tt.jku
			assertion := signJWT(t, ecKeyA(), jose.ES384, h, validClaims(clock.Now()))

			_, err := v.Verify(context.Background(), Client{ID: testClientID, JWKSURI: server.uri()}, assertion)
			wantError(t, err, ErrInvalidClient, tt.fragment)
			if n := server.fetchCount(); n != 0 {
				t.Errorf("JWKS fetched %d times, want 0", n)
			}
		})
	}

	t.Run("equal to registered URI accepted", func(t *testing.T) {
		v, clock, _ := newTestVerifier()
		h := header(jose.ES384, "ec-384")
		h["jku"] = server.uri()
		assertion := signJWT(t, ecKeyA(), jose.ES384, h, validClaims(clock.Now()))

		if _, err := v.Verify(context.Background(), Client{ID: testClientID, JWKSURI: server.uri()}, assertion); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	})
}

func TestVerifyRejectsMalformedAssertion(t *testing.T) {
	v, clock, _ := newTestVerifier()
	valid := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))
	parts := strings.Split(valid, ".")
	notJSON := base64.RawURLEncoding.EncodeToString([]byte("not json"))

	tests := []struct {
		name      string
		assertion string
		fragment  string
	}{
		{"empty", "", "three dot-separated parts"},
		{"one part", "abc", "three dot-separated parts"},
		{"two parts", parts[0] + "." + parts[1], "three dot-separated parts"},
		{"four parts", valid + ".abc", "three dot-separated parts"},
		{"bad base64", parts[0] + ".!!!." + parts[2], "invalid character at byte"},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], "invalid character at byte"},
		{"line break inside", parts[0] + "\n." + parts[1] + "." + parts[2], "invalid character at byte"},
		{"leading space", " " + valid, "invalid character at byte 0"},
		{"header not JSON", notJSON + "." + parts[1] + "." + parts[2], "malformed assertion"},
		{"payload not JSON", parts[0] + "." + notJSON + "." + parts[2], "signature does not verify"},
		{"base64 of impossible length", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-3], "malformed assertion: illegal base64"},
		{"empty signature", parts[0] + "." + parts[1] + ".", "signature does not verify"},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, "three dot-separated parts"},
		{"huge input", strings.Repeat("A", 1<<20) + "..", "more than the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := Client{ID: testClientID, JWKS: keySet(publicJWK(ecKeyA(), "ec-384"))}

			_, err := v.Verify(context.Background(), client, tt.assertion)
			wantError(t, err, ErrInvalidClient, tt.fragment)
		})
	}
}

func TestVerifyReplay(t *testing.T) {
	client := Client{ID: testClientID, JWKS: keySet(publicJWK(ecKeyA(), "ec-384"))}

	t.Run("second use rejected", func(t *testing.T) {
		v, clock, _ := newTestVerifier()
		assertion := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))
		if _, err := v.Verify(context.Background(), client, assertion); err != nil {
			t.Fatalf("first Verify: %v", err)
		}

		_, err := v.Verify(context.Background(), client, assertion)
		wantError(t, err, ErrInvalidClient, "was already used")
	})

	t.Run("same jti other client accepted", func(t *testing.T) {
		v, clock, _ := newTestVerifier()
		c := validClaims(clock.Now())
		if _, err := v.Verify(context.Background(), client, signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), c)); err != nil {
			t.Fatalf("first Verify: %v", err)
		}
		c["iss"], c["sub"] = "other-app", "other-app"
		other := Client{ID: "other-app", JWKS: client.JWKS}

		if _, err := v.Verify(context.Background(), other, signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), c)); err != nil {
			t.Fatalf("Verify for other client: %v", err)
		}
	})

	t.Run("ttl is exp plus skew", func(t *testing.T) {
		v, clock, replay := newTestVerifier()
		c := validClaims(clock.Now())
		c["exp"] = clock.Now().Add(90 * time.Second).Unix()
		if _, err := v.Verify(context.Background(), client, signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), c)); err != nil {
			t.Fatalf("Verify: %v", err)
		}

		if want := 90*time.Second + DefaultSkew; len(replay.ttls) != 1 || replay.ttls[0] != want {
			t.Errorf("ttls = %v, want [%v]", replay.ttls, want)
		}
	})

	t.Run("cache error is unavailable", func(t *testing.T) {
		v, clock, replay := newTestVerifier()
		replay.err = errors.New("redis: connection refused")
		assertion := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))

		_, err := v.Verify(context.Background(), client, assertion)
		wantError(t, err, ErrUnavailable, "replay cache: redis: connection refused")
		if errors.Is(err, ErrInvalidClient) {
			t.Errorf("error %q wraps ErrInvalidClient", err)
		}
	})

	t.Run("no cache is unavailable", func(t *testing.T) {
		v := NewVerifier([]string{testTokenURL}, nil)
		clock := newFakeClock()
		v.now = clock.Now
		assertion := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))

		_, err := v.Verify(context.Background(), client, assertion)
		wantError(t, err, ErrUnavailable, "no replay cache configured")
	})
}

func TestVerifyClientRegistration(t *testing.T) {
	keys := keySet(publicJWK(ecKeyA(), "ec-384"))
	tests := []struct {
		name     string
		client   Client
		fragment string
	}{
		{"no ID", Client{JWKS: keys}, "client has no ID"},
		{"no keys", Client{ID: testClientID}, "has neither jwks nor jwks_uri"},
		{"both keys and URI", Client{ID: testClientID, JWKS: keys, JWKSURI: "https://app.example.org/jwks"}, "has both jwks and jwks_uri"},
		{"relative URI", Client{ID: testClientID, JWKSURI: "/jwks"}, "is not an absolute http(s) URL"},
		{"file URI", Client{ID: testClientID, JWKSURI: "file:///etc/jwks.json"}, "is not an absolute http(s) URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, _ := newTestVerifier()
			assertion := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(clock.Now()))

			_, err := v.Verify(context.Background(), tt.client, assertion)
			wantError(t, err, ErrInvalidClient, tt.fragment)
		})
	}
}

func TestVerifyKeySelection(t *testing.T) {
	smallRSA := mustRSAKey(1024)
	encKey := publicJWK(ecKeyB(), "ec-enc")
	encKey.Use = "enc"
	algKey := publicJWK(ecKeyB(), "ec-alg")
	algKey.Algorithm = string(jose.ES256)

	tests := []struct {
		name     string
		keys     *jose.JSONWebKeySet
		key      crypto.Signer
		alg      jose.SignatureAlgorithm
		kid      string
		fragment string // empty when the assertion is accepted
	}{
		{
			name: "same kid on RSA and EC key picks by alg",
			keys: keySet(publicJWK(rsaKeyA(), "shared"), publicJWK(ecKeyA(), "shared")),
			key:  ecKeyA(), alg: jose.ES384, kid: "shared",
		},
		{
			name: "two keys with one kid rejected",
			keys: keySet(publicJWK(ecKeyA(), "dup"), publicJWK(ecKeyB(), "dup")),
			key:  ecKeyA(), alg: jose.ES384, kid: "dup",
			fragment: `2 ES384 keys with kid "dup"`,
		},
		{
			name: "key for encryption rejected",
			keys: keySet(encKey),
			key:  ecKeyB(), alg: jose.ES384, kid: "ec-enc",
			fragment: `no ES384 key with kid "ec-enc"`,
		},
		{
			name: "key for other alg rejected",
			keys: keySet(algKey),
			key:  ecKeyB(), alg: jose.ES384, kid: "ec-alg",
			fragment: `no ES384 key with kid "ec-alg"`,
		},
		{
			name: "RSA key under 2048 bits rejected",
			keys: keySet(publicJWK(smallRSA, "small")),
			key:  smallRSA, alg: jose.RS384, kid: "small",
			fragment: `no RS384 key with kid "small"`,
		},
		{
			name: "private key in registered set rejected",
			keys: keySet(jose.JSONWebKey{Key: ecKeyA(), KeyID: "private"}),
			key:  ecKeyA(), alg: jose.ES384, kid: "private",
			fragment: `no ES384 key with kid "private"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, clock, _ := newTestVerifier()
			assertion := signJWT(t, tt.key, tt.alg, header(tt.alg, tt.kid), validClaims(clock.Now()))

			_, err := v.Verify(context.Background(), Client{ID: testClientID, JWKS: tt.keys}, assertion)
			if tt.fragment == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantError(t, err, ErrInvalidClient, tt.fragment)
		})
	}
}

func TestVerifierOptions(t *testing.T) {
	client := Client{ID: testClientID, JWKS: keySet(publicJWK(ecKeyA(), "ec-384"))}
	tests := []struct {
		name     string
		opts     []Option
		audience []string
		exp      time.Duration // exp relative to now
		fragment string        // empty when the assertion is accepted
	}{
		{name: "skew zero rejects just expired", opts: []Option{WithSkew(0)}, exp: -time.Second, fragment: "expired at"},
		{name: "negative skew acts as zero", opts: []Option{WithSkew(-time.Minute)}, exp: -time.Second, fragment: "expired at"},
		{name: "longer max lifetime accepts", opts: []Option{WithMaxLifetime(time.Hour)}, exp: 50 * time.Minute},
		{name: "zero max lifetime keeps default", opts: []Option{WithMaxLifetime(0)}, exp: 10 * time.Minute, fragment: "more than 5m0s"},
		{name: "second audience accepted", audience: []string{"https://old.example.org/token", testTokenURL}, exp: time.Minute},
		{name: "empty audience ignored", audience: []string{""}, exp: time.Minute, fragment: "does not contain the token endpoint URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			audience := tt.audience
			if audience == nil {
				audience = []string{testTokenURL}
			}
			v := NewVerifier(audience, newMemoryReplayCache(clock.Now), tt.opts...)
			v.now = clock.Now
			c := validClaims(clock.Now())
			c["exp"] = clock.Now().Add(tt.exp).Unix()
			if tt.audience != nil && tt.audience[0] == "" {
				c["aud"] = ""
			}

			_, err := v.Verify(context.Background(), client, signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), c))
			if tt.fragment == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantError(t, err, ErrInvalidClient, tt.fragment)
		})
	}
}

func TestZeroVerifierRejects(t *testing.T) {
	var v Verifier
	assertion := signJWT(t, ecKeyA(), jose.ES384, header(jose.ES384, "ec-384"), validClaims(time.Now()))
	client := Client{ID: testClientID, JWKS: keySet(publicJWK(ecKeyA(), "ec-384"))}

	_, err := v.Verify(context.Background(), client, assertion)
	wantError(t, err, ErrInvalidClient, "does not contain the token endpoint URL")
}

func TestAlgorithmsReturnsCopy(t *testing.T) {
	got := Algorithms()
	want := []jose.SignatureAlgorithm{jose.RS384, jose.ES384, jose.RS256, jose.ES256}
	if len(got) != len(want) {
		t.Fatalf("Algorithms() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Algorithms()[%d] = %q, want %q", i, got[i], want[i])
		}
	}
	got[0] = jose.HS256
	if Algorithms()[0] != jose.RS384 {
		t.Error("changing the returned slice changed the accepted algorithms")
	}
}

func TestParseJWKS(t *testing.T) {
	rsaPublic := mustJSON(t, publicJWK(rsaKeyA(), "rsa-1"))
	ecPublic := mustJSON(t, publicJWK(ecKeyA(), "ec-384"))
	ecPrivate := mustJSON(t, jose.JSONWebKey{Key: ecKeyA(), KeyID: "ec-private"})
	noKid := mustJSON(t, publicJWK(ecKeyA(), ""))
	symmetric := mustJSON(t, jose.JSONWebKey{Key: hmacKey, KeyID: "oct"})

	tests := []struct {
		name     string
		doc      string
		wantKeys int
		fragment string // empty when the set is accepted
	}{
		{name: "RSA and EC keys", doc: `{"keys":[` + rsaPublic + `,` + ecPublic + `]}`, wantKeys: 2},
		{name: "not JSON", doc: `keys`, fragment: "invalid jwks: invalid character"},
		{name: "no keys member", doc: `{"kty":"EC"}`, fragment: "missing keys member"},
		{name: "empty keys", doc: `{"keys":[]}`, fragment: "invalid jwks: no keys"},
		{name: "missing kid", doc: `{"keys":[` + noKid + `]}`, fragment: "key 0: missing kid"},
		{name: "missing kty", doc: `{"keys":[{"kid":"a","x":"AA","y":"AA","crv":"P-256"}]}`, fragment: "key 0: go-jose/go-jose: missing json web key type"},
		{name: "private key", doc: `{"keys":[` + ecPublic + `,` + ecPrivate + `]}`, fragment: "key 1: contains private key material"},
		{name: "symmetric key", doc: `{"keys":[` + symmetric + `]}`, fragment: "key 0: symmetric key"},
		{name: "unknown kty", doc: `{"keys":[{"kty":"XYZ","kid":"x"}]}`, fragment: "key 0: go-jose/go-jose: unsupported key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := ParseJWKS([]byte(tt.doc))
			if tt.fragment != "" {
				wantError(t, err, ErrInvalidJWKS, tt.fragment)
				return
			}
			if err != nil {
				t.Fatalf("ParseJWKS: %v", err)
			}
			if len(set.Keys) != tt.wantKeys {
				t.Errorf("got %d keys, want %d", len(set.Keys), tt.wantKeys)
			}
		})
	}
}

func mustJSON(t *testing.T, key jose.JSONWebKey) string {
	t.Helper()
	b, err := key.MarshalJSON()
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	return string(b)
}
