// Package clientauth authenticates OAuth clients at the token endpoint with
// a signed JWT (private_key_jwt): RFC 7523 sections 2.2 and 3, as the SMART
// App Launch 2.2 "Client Authentication: Asymmetric" profile uses them.
//
// It owns the checks on the assertion (header, signature, claims), the
// choice of the client's key, and the fetching and caching of the JWK Set
// behind a client's jwks_uri. It does not look clients up or decide which
// clients may use this method, and it does not store used jti values: the
// caller passes a ReplayCache. It fetches any absolute http or https
// jwks_uri, because package config enforces the scheme policy (https
// outside a lab) when it loads the configuration.
package clientauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/compactjws"
)

// AssertionType is the client_assertion_type form value that goes with a
// JWT client assertion (RFC 7523 section 2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

var (
	// ErrInvalidClient reports that the assertion, or the keys it is
	// checked against, failed a check. The token endpoint responds with
	// 401 invalid_client.
	ErrInvalidClient = errors.New("invalid client")

	// ErrUnavailable reports that the replay cache failed, so the
	// assertion could not be checked for reuse. The token endpoint
	// responds with 503, and the client may retry.
	ErrUnavailable = errors.New("client authentication unavailable")
)

// Defaults and limits of a Verifier.
const (
	DefaultSkew         = 60 * time.Second
	DefaultMaxLifetime  = 5 * time.Minute
	DefaultFetchTimeout = 5 * time.Second

	// maxAssertionLen bounds the input before any decoding. An RS384
	// assertion with a 2048-bit key is under 1 KiB, and the rest leaves
	// room for an x5c header.
	maxAssertionLen = 16 << 10

	// maxIDLen is the maximum length of jti in bytes.
	maxIDLen = 256
)

// algorithms are the accepted "alg" values. RS384 and ES384 are the ones
// SMART requires servers to support; RS256 and ES256 are accepted too.
var algorithms = []jose.SignatureAlgorithm{jose.RS384, jose.ES384, jose.RS256, jose.ES256}

// Algorithms returns the accepted signing algorithms, for the
// token_endpoint_auth_signing_alg_values_supported metadata field.
func Algorithms() []jose.SignatureAlgorithm {
	return append([]jose.SignatureAlgorithm(nil), algorithms...)
}

// Client is the registration data of a client that authenticates with
// private_key_jwt. Exactly one of JWKS and JWKSURI must be set (RFC 7591
// section 2 forbids both).
type Client struct {
	ID      string
	JWKS    *jose.JSONWebKeySet
	JWKSURI string
}

// Assertion is a verified client assertion.
type Assertion struct {
	ID        string // jti
	KeyID     string
	Algorithm jose.SignatureAlgorithm
	Expiry    time.Time
}

// ReplayCache stores the jti values of accepted assertions.
type ReplayCache interface {
	// Claim stores jti for clientID for ttl and reports whether it was
	// unused until now (fresh). It must be atomic: of two concurrent calls
	// with the same values, at most one returns fresh.
	Claim(ctx context.Context, clientID, jti string, ttl time.Duration) (fresh bool, err error)
}

// Verifier checks client assertions. It is safe for concurrent use and
// must not be copied after first use. Its zero value rejects every
// assertion because it has no accepted audience and no replay cache; use
// NewVerifier.
type Verifier struct {
	audiences    []string
	replay       ReplayCache
	skew         time.Duration
	maxLifetime  time.Duration
	fetchTimeout time.Duration
	httpClient   *http.Client
	now          func() time.Time // nil means time.Now; tests set a fake clock
	jwks         jwksCache
}

// Option changes a Verifier setting in NewVerifier.
type Option func(*Verifier)

// WithSkew sets the clock skew allowed on exp, nbf and iat (default
// DefaultSkew). A negative value is treated as zero.
func WithSkew(d time.Duration) Option {
	return func(v *Verifier) { v.skew = max(d, 0) }
}

// WithMaxLifetime sets how far in the future exp may be (default
// DefaultMaxLifetime), and the skew is added on top. A value of zero or
// less keeps the default.
func WithMaxLifetime(d time.Duration) Option {
	return func(v *Verifier) {
		if d > 0 {
			v.maxLifetime = d
		}
	}
}

// WithFetchTimeout sets the time limit of one JWK Set fetch, response body
// included (default DefaultFetchTimeout). A value of zero or less keeps
// the default.
func WithFetchTimeout(d time.Duration) Option {
	return func(v *Verifier) {
		if d > 0 {
			v.fetchTimeout = d
		}
	}
}

// WithHTTPClient sets the client that fetches JWK Sets, for example one
// whose transport restricts which addresses may be reached. It is used as
// is, redirect policy included. The default client does not follow
// redirects. A nil client keeps the default.
func WithHTTPClient(c *http.Client) Option {
	return func(v *Verifier) {
		if c != nil {
			v.httpClient = c
		}
	}
}

// NewVerifier returns a Verifier that accepts assertions whose aud
// contains one of audiences (the token endpoint URL) and records their jti
// values in replay. Empty audience strings are ignored.
func NewVerifier(audiences []string, replay ReplayCache, opts ...Option) *Verifier {
	v := &Verifier{
		replay:       replay,
		skew:         DefaultSkew,
		maxLifetime:  DefaultMaxLifetime,
		fetchTimeout: DefaultFetchTimeout,
		httpClient:   newHTTPClient(),
	}
	for _, a := range audiences {
		if a != "" {
			v.audiences = append(v.audiences, a)
		}
	}
	for _, opt := range opts {
		opt(v)
	}
	return v
}

// newHTTPClient returns the default client for JWK Set fetches. It does
// not follow redirects, so a fetch reaches only the registered URL.
func newHTTPClient() *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (v *Verifier) clock() time.Time {
	if v.now != nil {
		return v.now()
	}
	return time.Now()
}

// Verify checks assertion as the client_assertion of client c and, when
// every check passes, claims its jti in the replay cache.
//
// Errors wrap ErrInvalidClient, except a failure of the replay cache,
// which wraps ErrUnavailable. A JWK Set that cannot be fetched is an
// ErrInvalidClient failure. Verify may fetch the client's jwks_uri, and
// ctx bounds the wait for that fetch.
func (v *Verifier) Verify(ctx context.Context, c Client, assertion string) (*Assertion, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}

	jws, err := parseAssertion(assertion)
	if err != nil {
		return nil, err
	}
	header := jws.Signatures[0].Header
	alg := jose.SignatureAlgorithm(header.Algorithm)
	if err := checkHeader(header, c); err != nil {
		return nil, err
	}

	key, err := v.verificationKey(ctx, c, header.KeyID, alg)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify with key %q: %w", ErrInvalidClient, header.KeyID, err)
	}

	var claims jwt.Claims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("%w: invalid claims: %w", ErrInvalidClient, err)
	}
	now := v.clock()
	if err := v.checkClaims(&claims, c.ID, now); err != nil {
		return nil, err
	}

	if err := v.claimID(ctx, c.ID, claims.ID, claims.Expiry.Time().Sub(now)+v.skew); err != nil {
		return nil, err
	}
	return &Assertion{
		ID:        claims.ID,
		KeyID:     header.KeyID,
		Algorithm: alg,
		Expiry:    claims.Expiry.Time(),
	}, nil
}

func (c Client) validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: client has no ID", ErrInvalidClient)
	case c.JWKS != nil && c.JWKSURI != "":
		return fmt.Errorf("%w: client %q has both jwks and jwks_uri", ErrInvalidClient, c.ID)
	case c.JWKS != nil:
		return nil
	case c.JWKSURI == "":
		return fmt.Errorf("%w: client %q has neither jwks nor jwks_uri", ErrInvalidClient, c.ID)
	}
	u, err := url.Parse(c.JWKSURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: client %q jwks_uri %q is not an absolute http(s) URL", ErrInvalidClient, c.ID, c.JWKSURI)
	}
	return nil
}

// parseAssertion parses a JWS in compact serialization whose alg is one
// of algorithms. It checks the length and the alphabet first, because the
// base64 decoder would skip line breaks inside a part.
func parseAssertion(assertion string) (*jose.JSONWebSignature, error) {
	if len(assertion) > maxAssertionLen {
		return nil, fmt.Errorf("%w: assertion is %d bytes, more than the maximum of %d", ErrInvalidClient, len(assertion), maxAssertionLen)
	}
	if strings.Count(assertion, ".") != 2 {
		return nil, fmt.Errorf("%w: malformed assertion: a JWT has three dot-separated parts", ErrInvalidClient)
	}
	jws, err := compactjws.Parse(assertion, algorithms)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed assertion: %w", ErrInvalidClient, err)
	}
	return jws, nil
}

// checkHeader checks the header parameters other than alg, which
// parseAssertion has checked.
func checkHeader(h jose.Header, c Client) error {
	if h.KeyID == "" {
		return fmt.Errorf("%w: missing kid header", ErrInvalidClient)
	}
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		s, isString := typ.(string)
		if !isString || !strings.EqualFold(s, "JWT") {
			return fmt.Errorf("%w: typ header %v is not JWT", ErrInvalidClient, typ)
		}
	}
	// The jku header can only name the registered jwks_uri, so keys are
	// never fetched from a URL that the assertion chooses.
	if jku, ok := h.ExtraHeaders["jku"]; ok {
		s, isString := jku.(string)
		if !isString || c.JWKSURI == "" || s != c.JWKSURI {
			return fmt.Errorf("%w: jku header %v does not match the registered jwks_uri %q", ErrInvalidClient, jku, c.JWKSURI)
		}
	}
	// go-jose accepts "b64" as a critical extension; SMART assertions use
	// none, so crit is rejected outright.
	if _, ok := h.ExtraHeaders["crit"]; ok {
		return fmt.Errorf("%w: crit header is not supported", ErrInvalidClient)
	}
	return nil
}

// checkClaims checks iss, sub, aud, exp, nbf, iat and jti at time now.
func (v *Verifier) checkClaims(claims *jwt.Claims, clientID string, now time.Time) error {
	switch {
	case claims.Issuer == "":
		return fmt.Errorf("%w: missing iss claim", ErrInvalidClient)
	case claims.Subject == "":
		return fmt.Errorf("%w: missing sub claim", ErrInvalidClient)
	case claims.Issuer != claims.Subject:
		return fmt.Errorf("%w: iss %q and sub %q differ", ErrInvalidClient, claims.Issuer, claims.Subject)
	case claims.Issuer != clientID:
		return fmt.Errorf("%w: iss %q is not the client_id %q", ErrInvalidClient, claims.Issuer, clientID)
	}

	if len(claims.Audience) == 0 {
		return fmt.Errorf("%w: missing aud claim", ErrInvalidClient)
	}
	if !v.audienceAccepted(claims.Audience) {
		return fmt.Errorf("%w: aud %q does not contain the token endpoint URL", ErrInvalidClient, []string(claims.Audience))
	}

	if claims.Expiry == nil {
		return fmt.Errorf("%w: missing exp claim", ErrInvalidClient)
	}
	exp := claims.Expiry.Time()
	if !now.Before(exp.Add(v.skew)) {
		return fmt.Errorf("%w: assertion expired at %s", ErrInvalidClient, formatTime(exp))
	}
	if exp.Sub(now) > v.maxLifetime+v.skew {
		return fmt.Errorf("%w: exp %s is more than %s in the future", ErrInvalidClient, formatTime(exp), v.maxLifetime)
	}
	if claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(v.skew)) {
		return fmt.Errorf("%w: assertion is not valid before %s", ErrInvalidClient, formatTime(claims.NotBefore.Time()))
	}
	if claims.IssuedAt != nil && claims.IssuedAt.Time().After(now.Add(v.skew)) {
		return fmt.Errorf("%w: iat %s is in the future", ErrInvalidClient, formatTime(claims.IssuedAt.Time()))
	}

	switch {
	case claims.ID == "":
		return fmt.Errorf("%w: missing jti claim", ErrInvalidClient)
	case len(claims.ID) > maxIDLen:
		return fmt.Errorf("%w: jti is %d bytes, more than the maximum of %d", ErrInvalidClient, len(claims.ID), maxIDLen)
	}
	return nil
}

func (v *Verifier) audienceAccepted(aud jwt.Audience) bool {
	for _, a := range v.audiences {
		if aud.Contains(a) {
			return true
		}
	}
	return false
}

// claimID records jti in the replay cache for ttl.
func (v *Verifier) claimID(ctx context.Context, clientID, jti string, ttl time.Duration) error {
	if v.replay == nil {
		return fmt.Errorf("%w: no replay cache configured", ErrUnavailable)
	}
	fresh, err := v.replay.Claim(ctx, clientID, jti, ttl)
	if err != nil {
		return fmt.Errorf("%w: replay cache: %w", ErrUnavailable, err)
	}
	if !fresh {
		return fmt.Errorf("%w: jti %q was already used", ErrInvalidClient, jti)
	}
	return nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}
