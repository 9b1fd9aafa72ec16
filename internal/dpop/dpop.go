// Package dpop verifies DPoP proofs (RFC 9449): the JWTs that a client
// sends in the DPoP header to show that it holds the private key a token
// is bound to.
//
// It owns the checks of RFC 9449 section 4.3 on one proof and the JWK
// Thumbprint (RFC 7638) that binds a token to the proof's key. It does not
// read HTTP requests, store jti values to detect replays, or issue nonces.
// The caller passes the value of the single DPoP header together with the
// request method and URL, rejects a request with more than one DPoP
// header, and stores each accepted proof's jti as Verify documents.
package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/smartgate/smartgate/internal/compactjws"
)

// ErrInvalidProof reports a DPoP proof that failed a check. The server
// responds with 400 invalid_dpop_proof at the token endpoint, and with 401
// and the same error code at a resource.
var ErrInvalidProof = errors.New("invalid DPoP proof")

// Defaults for Options.
const (
	DefaultMaxAge = 60 * time.Second
	DefaultSkew   = 5 * time.Second
)

const (
	// maxProofLen bounds the input before any decoding. A proof with a
	// 4096-bit RSA key in its header and a short htu is about 2 KiB.
	maxProofLen = 8 << 10

	// maxIDLen is the maximum length of jti in bytes.
	maxIDLen = 256

	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048

	proofType = "dpop+jwt"
)

// algorithms are the accepted "alg" values: asymmetric only, so never
// "none" or an HMAC.
var algorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.RS256, jose.RS384, jose.PS256, jose.EdDSA,
}

// Algorithms returns the accepted signing algorithms, for the
// dpop_signing_alg_values_supported metadata field.
func Algorithms() []jose.SignatureAlgorithm {
	return append([]jose.SignatureAlgorithm(nil), algorithms...)
}

// Options are the request-specific requirements of Verify. The zero value
// applies the default time window and requires neither ath nor nonce.
type Options struct {
	// MaxAge is how far iat may lie in the past. Zero or less means
	// DefaultMaxAge.
	MaxAge time.Duration
	// Skew is how far iat may lie in the future. Zero or less means
	// DefaultSkew.
	Skew time.Duration
	// AccessToken, when not empty, requires the ath claim to be the
	// base64url SHA-256 hash of it, as at a resource server.
	AccessToken string
	// Nonce, when not empty, requires the nonce claim to equal it.
	Nonce string
}

func (o Options) maxAge() time.Duration {
	if o.MaxAge <= 0 {
		return DefaultMaxAge
	}
	return o.MaxAge
}

func (o Options) skew() time.Duration {
	if o.Skew <= 0 {
		return DefaultSkew
	}
	return o.Skew
}

// Proof is a verified DPoP proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's public key,
	// base64url-encoded: the value of the cnf.jkt claim of a bound token.
	JKT      string
	ID       string // jti
	IssuedAt time.Time
}

// claims are the payload members that Verify reads.
type claims struct {
	ID              string           `json:"jti"`
	Method          string           `json:"htm"`
	URL             string           `json:"htu"`
	IssuedAt        *jwt.NumericDate `json:"iat"`
	AccessTokenHash string           `json:"ath"`
	Nonce           string           `json:"nonce"`
}

// Verify checks proof, the value of a request's DPoP header, against the
// request's method and targetURL at time now. targetURL is the absolute
// URL that the client used, so behind a proxy it is built from the public
// URL, not from the Host header the server receives. Its query and
// fragment are ignored.
//
// Every failure of the proof wraps ErrInvalidProof. An invalid targetURL
// is a mistake of the caller and returns an error that does not.
//
// Verify does not detect replays. The caller must store Proof.ID for
// opts.MaxAge plus opts.Skew after acceptance, per key (Proof.JKT) or
// globally, and reject a proof whose jti it has seen.
func Verify(proof, method, targetURL string, now time.Time, opts Options) (*Proof, error) {
	target, err := normalizeURL(targetURL)
	if err != nil {
		return nil, fmt.Errorf("invalid target URL %q: %w", targetURL, err)
	}

	jws, err := parseProof(proof)
	if err != nil {
		return nil, err
	}
	header := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(header.Algorithm)
	if err := checkHeader(header, alg); err != nil {
		return nil, err
	}

	payload, err := jws.Verify(header.JSONWebKey.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify with the jwk header: %w", ErrInvalidProof, err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("%w: invalid claims: %w", ErrInvalidProof, err)
	}
	if err := checkClaims(&c, method, target, now, opts); err != nil {
		return nil, err
	}

	jkt, err := Thumbprint(*header.JSONWebKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidProof, err)
	}
	return &Proof{JKT: jkt, ID: c.ID, IssuedAt: c.IssuedAt.Time()}, nil
}

// parseProof parses a single JWS in compact serialization whose alg is
// one of algorithms and whose jwk header holds no private key.
func parseProof(proof string) (*jose.JSONWebSignature, error) {
	switch {
	case proof == "":
		return nil, fmt.Errorf("%w: missing proof", ErrInvalidProof)
	case len(proof) > maxProofLen:
		return nil, fmt.Errorf("%w: proof is %d bytes, more than the maximum of %d", ErrInvalidProof, len(proof), maxProofLen)
	case strings.HasPrefix(proof, "{"):
		return nil, fmt.Errorf("%w: malformed proof: JWS JSON serialization is not accepted", ErrInvalidProof)
	case strings.Contains(proof, ","):
		return nil, fmt.Errorf("%w: more than one proof", ErrInvalidProof)
	case strings.Count(proof, ".") != 2:
		return nil, fmt.Errorf("%w: malformed proof: a JWS in compact serialization has three dot-separated parts", ErrInvalidProof)
	}
	// The header is read before go-jose parses it, so that a jwk with
	// private material gets its own error.
	if err := compactjws.CheckAlphabet(proof); err != nil {
		return nil, fmt.Errorf("%w: malformed proof: %w", ErrInvalidProof, err)
	}
	if err := checkNoPrivateKey(proof[:strings.IndexByte(proof, '.')]); err != nil {
		return nil, err
	}
	jws, err := compactjws.Parse(proof, algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed proof: %w", ErrInvalidProof, err)
	}
	return jws, nil
}

// checkNoPrivateKey rejects a protected header whose jwk member carries
// private or symmetric key material. go-jose rejects such a header too,
// but with a message that does not name the check.
func checkNoPrivateKey(encodedHeader string) error {
	raw, err := base64.RawURLEncoding.DecodeString(encodedHeader)
	if err != nil {
		return fmt.Errorf("%w: malformed proof: header: %w", ErrInvalidProof, err)
	}
	var header struct {
		JWK *struct {
			D, P, Q, DP, DQ, QI, K, Priv json.RawMessage
		} `json:"jwk"`
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		return fmt.Errorf("%w: malformed proof: header: %w", ErrInvalidProof, err)
	}
	if k := header.JWK; k != nil && (k.D != nil || k.P != nil || k.Q != nil || k.DP != nil ||
		k.DQ != nil || k.QI != nil || k.K != nil || k.Priv != nil) {
		return fmt.Errorf("%w: jwk header contains private or symmetric key material", ErrInvalidProof)
	}
	return nil
}

// checkHeader checks typ, jwk and crit.
func checkHeader(h jose.Header, alg jose.SignatureAlgorithm) error {
	rawType, ok := h.ExtraHeaders[jose.HeaderType]
	if !ok {
		return fmt.Errorf("%w: missing typ header", ErrInvalidProof)
	}
	if typ, isString := rawType.(string); !isString || !strings.EqualFold(typ, proofType) {
		return fmt.Errorf("%w: typ header %v is not %s", ErrInvalidProof, rawType, proofType)
	}
	if h.JSONWebKey == nil {
		return fmt.Errorf("%w: missing jwk header", ErrInvalidProof)
	}
	if !h.JSONWebKey.IsPublic() {
		return fmt.Errorf("%w: jwk header is not a public key", ErrInvalidProof)
	}
	if !keyFits(h.JSONWebKey.Key, alg) {
		return fmt.Errorf("%w: jwk header is a %s, which does not fit alg %s", ErrInvalidProof, describeKey(h.JSONWebKey.Key), alg)
	}
	// go-jose accepts "b64" as a critical extension; DPoP uses none, so
	// crit is rejected outright.
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return fmt.Errorf("%w: crit header is not supported", ErrInvalidProof)
	}
	return nil
}

// keyFits reports whether key is a public key of the type and size that
// alg needs.
func keyFits(key any, alg jose.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return (alg == jose.ES256 && k.Curve == elliptic.P256()) ||
			(alg == jose.ES384 && k.Curve == elliptic.P384())
	case *rsa.PublicKey:
		return (alg == jose.RS256 || alg == jose.RS384 || alg == jose.PS256) &&
			k.N != nil && k.N.BitLen() >= minRSABits
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

func describeKey(key any) string {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		return "EC " + k.Curve.Params().Name + " key"
	case *rsa.PublicKey:
		return fmt.Sprintf("%d-bit RSA key", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519 key"
	}
	return fmt.Sprintf("%T key", key)
}

// checkClaims checks jti, htm, htu, iat, nonce and ath.
func checkClaims(c *claims, method, target string, now time.Time, opts Options) error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: missing jti claim", ErrInvalidProof)
	case len(c.ID) > maxIDLen:
		return fmt.Errorf("%w: jti is %d bytes, more than the maximum of %d", ErrInvalidProof, len(c.ID), maxIDLen)
	case c.Method == "":
		return fmt.Errorf("%w: missing htm claim", ErrInvalidProof)
	case c.Method != method:
		return fmt.Errorf("%w: htm %q does not match the request method %q", ErrInvalidProof, c.Method, method)
	case c.URL == "":
		return fmt.Errorf("%w: missing htu claim", ErrInvalidProof)
	case c.IssuedAt == nil:
		return fmt.Errorf("%w: missing iat claim", ErrInvalidProof)
	}

	htu, err := normalizeURL(c.URL)
	if err != nil {
		return fmt.Errorf("%w: htu %q: %w", ErrInvalidProof, c.URL, err)
	}
	if htu != target {
		return fmt.Errorf("%w: htu %q does not match the request URL %q", ErrInvalidProof, c.URL, target)
	}

	iat := c.IssuedAt.Time()
	if iat.Before(now.Add(-opts.maxAge())) {
		return fmt.Errorf("%w: iat %s is more than %s in the past", ErrInvalidProof, formatTime(iat), opts.maxAge())
	}
	if iat.After(now.Add(opts.skew())) {
		return fmt.Errorf("%w: iat %s is more than %s in the future", ErrInvalidProof, formatTime(iat), opts.skew())
	}

	if opts.Nonce != "" {
		switch {
		case c.Nonce == "":
			return fmt.Errorf("%w: missing nonce claim", ErrInvalidProof)
		case subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(opts.Nonce)) != 1:
			return fmt.Errorf("%w: nonce does not match the nonce the server issued", ErrInvalidProof)
		}
	}
	if opts.AccessToken != "" {
		want := AccessTokenHash(opts.AccessToken)
		switch {
		case c.AccessTokenHash == "":
			return fmt.Errorf("%w: missing ath claim", ErrInvalidProof)
		case subtle.ConstantTimeCompare([]byte(c.AccessTokenHash), []byte(want)) != 1:
			return fmt.Errorf("%w: ath does not match the access token", ErrInvalidProof)
		}
	}
	return nil
}

// AccessTokenHash returns the ath value for accessToken: its SHA-256 hash,
// base64url-encoded without padding (RFC 9449 section 4.2).
func AccessTokenHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Thumbprint returns the RFC 7638 JWK Thumbprint of jwk with SHA-256,
// base64url-encoded without padding. For a private key it is the
// thumbprint of the public key. A symmetric key returns an error.
func Thumbprint(jwk jose.JSONWebKey) (string, error) {
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jwk thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
