// Package upstream logs users in at the hospital's identity provider as
// an OpenID Connect relying party, built on go-oidc and x/oauth2. It runs
// discovery, sends the authorization request with its own state, nonce
// and PKCE, exchanges the code, verifies the ID token, and maps claims to
// the SMART context (patient id, fhirUser, display name).
//
// It owns no routes; package proxy calls it from /authorize and /callback.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config is the relying party configuration.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string // smartgate's /callback
	Scopes       []string
	PatientClaim string
	NameClaim    string
	// FHIRUserTemplates such as "Patient/{patient_id}", tried in order.
	FHIRUserTemplates []string
	// Timeout bounds every call to the provider, so that a slow provider
	// gives an error instead of a hanging login. Zero means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a call to the identity provider when the
// configuration sets no timeout.
const DefaultTimeout = 15 * time.Second

// Provider is a discovered upstream identity provider.
type Provider struct {
	client   *http.Client
	cfg      Config
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	issuer   string
}

// Discover loads the provider's discovery document and keys.
func Discover(ctx context.Context, cfg Config) (*Provider, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	client := &http.Client{Timeout: timeout}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover upstream %s: %w", cfg.Issuer, err)
	}
	return &Provider{
		client: client,
		cfg:    cfg,
		issuer: cfg.Issuer,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  cfg.RedirectURL,
			Scopes:       cfg.Scopes,
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

// Issuer returns the upstream issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// Login holds the secrets of one upstream authorization request. They are
// kept with the pending request in Redis, never in the browser.
type Login struct {
	State    string
	Nonce    string
	Verifier string
}

// AuthCodeURL returns the upstream authorization URL for a login.
func (p *Provider) AuthCodeURL(l Login) string {
	return p.oauth.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier))
}

// Identity is the logged-in user, mapped to the SMART context.
type Identity struct {
	Subject  string
	Patient  string // FHIR Patient id, "" when the user has none
	FHIRUser string // relative FHIR reference, "" when no template matched
	Name     string
	AuthTime time.Time
	// RefreshToken is the provider's refresh token, when it issued one.
	RefreshToken string
}

var (
	// ErrLoginFailed: the upstream did not complete the login (denied,
	// mix-up, bad ID token). The message gives the reason.
	ErrLoginFailed = errors.New("upstream login failed")
	// ErrUnavailable: the upstream could not be reached or failed.
	ErrUnavailable = errors.New("upstream unavailable")
)

// Callback finishes a login: it checks the iss response parameter when
// present (RFC 9207, against mix-up), exchanges the code with the PKCE
// verifier, verifies the ID token and its nonce, and maps the claims.
func (p *Provider) Callback(ctx context.Context, l Login, code, iss string) (*Identity, error) {
	if iss != "" && iss != p.issuer {
		return nil, fmt.Errorf("%w: iss %q in the response is not the upstream issuer %q", ErrLoginFailed, iss, p.issuer)
	}
	if code == "" {
		return nil, fmt.Errorf("%w: no code in the response", ErrLoginFailed)
	}
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return nil, fmt.Errorf("%w: code exchange rejected: %s", ErrLoginFailed, re.ErrorCode)
		}
		return nil, fmt.Errorf("%w: code exchange: %w", ErrUnavailable, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: no id_token in the token response", ErrLoginFailed)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ID token: %w", ErrLoginFailed, err)
	}
	if idt.Nonce != l.Nonce {
		return nil, fmt.Errorf("%w: ID token nonce does not match the request", ErrLoginFailed)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: ID token claims: %w", ErrLoginFailed, err)
	}
	id := p.identity(idt.Subject, claims)
	id.RefreshToken = tok.RefreshToken
	return id, nil
}

func (p *Provider) identity(subject string, claims map[string]any) *Identity {
	id := &Identity{
		Subject:  subject,
		Patient:  claimString(claims, p.cfg.PatientClaim),
		Name:     claimString(claims, p.cfg.NameClaim),
		FHIRUser: FHIRUser(p.cfg.FHIRUserTemplates, claims),
		AuthTime: time.Now(),
	}
	if at, ok := claims["auth_time"].(float64); ok {
		id.AuthTime = time.Unix(int64(at), 0)
	}
	return id
}

var placeholder = regexp.MustCompile(`\{([^{}]+)\}`)

// fhirID is the FHIR id grammar: letters, digits, "-" and ".", 1 to 64.
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// FHIRUser forms the fhirUser reference from the first template whose
// claims are all present and are valid FHIR ids.
func FHIRUser(templates []string, claims map[string]any) string {
	for _, t := range templates {
		ok := true
		out := placeholder.ReplaceAllStringFunc(t, func(m string) string {
			v := claimString(claims, strings.Trim(m, "{}"))
			if !fhirID.MatchString(v) {
				ok = false
			}
			return v
		})
		if ok {
			return out
		}
	}
	return ""
}

// claimString reads a string claim; a one-element array counts too, as
// some identity providers send multivalued user attributes that way.
func claimString(claims map[string]any, name string) string {
	switch v := claims[name].(type) {
	case string:
		return v
	case []any:
		if len(v) == 1 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}

// ValidPatientID reports whether s is a usable FHIR Patient id.
func ValidPatientID(s string) bool { return fhirID.MatchString(s) }

// Refresh uses the identity provider's refresh token and returns the
// refresh token to keep: a new one when the provider rotates, else the
// same. A provider that rejects the token (the user's session ended) is
// ErrLoginFailed; a provider that cannot be reached is ErrUnavailable.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (string, error) {
	tok, err := p.oauth.TokenSource(oidc.ClientContext(ctx, p.client), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return "", fmt.Errorf("%w: refresh rejected: %s", ErrLoginFailed, re.ErrorCode)
		}
		return "", fmt.Errorf("%w: refresh: %w", ErrUnavailable, err)
	}
	if tok.RefreshToken != "" {
		return tok.RefreshToken, nil
	}
	return refreshToken, nil
}

// Endpoints returns the provider's authorization and token endpoint URLs
// from its discovery document.
func (p *Provider) Endpoints() (authorize, token string) {
	return p.oauth.Endpoint.AuthURL, p.oauth.Endpoint.TokenURL
}
