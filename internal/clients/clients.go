// Package clients is the registry of SMART apps, read from the
// configuration file: their type, redirect URIs, allowed scopes, secrets
// (kept only as SHA-256 hashes) and refresh policy.
package clients

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/scope"
)

// Client is one registered app.
type Client struct {
	ID           string
	Name         string
	Type         config.ClientType
	RedirectURIs []string
	Allowed      scope.List
	Required     scope.List // shown locked on the consent page
	Policy       config.RefreshPolicy
	// RememberConsent is how long an allowed consent skips the page; zero shows it every time.
	RememberConsent time.Duration
	Info            Info
	// Keys locates the public keys of a confidential-asymmetric client.
	Keys clientauth.Client
	// GrantTypes the client may use.
	GrantTypes  []string
	RequireDPoP bool
	secretHash  []byte // SHA-256 of the secret, confidential clients only
}

// AllowsGrant reports whether the client may use a grant type.
func (c *Client) AllowsGrant(grantType string) bool {
	for _, g := range c.GrantTypes {
		if g == grantType {
			return true
		}
	}
	return false
}

// Info is the description of an app that patients are shown.
type Info struct {
	LogoURL, Publisher, HomePage, PrivacyPolicyURL, TermsURL string
	Reviewed                                                 bool
}

// Public reports whether the client cannot keep a secret.
func (c *Client) Public() bool { return c.Type == config.ClientPublic }

// Registry finds clients by id. It is read-only after New.
type Registry struct {
	byID map[string]*Client
}

// New builds the registry from a validated configuration.
func New(cfg *config.Config) *Registry {
	r := &Registry{byID: map[string]*Client{}}
	for i := range cfg.Clients {
		cc := &cfg.Clients[i]
		allowed, _ := scope.ParseList(strings.Join(cc.Scopes, " "))
		required, _ := scope.ParseList(strings.Join(cc.RequiredScopes, " "))
		c := &Client{
			GrantTypes:      cc.GrantTypes,
			RequireDPoP:     cc.RequireDPoP,
			Keys:            clientauth.Client{ID: cc.ClientID, JWKSURI: cc.JWKSURI, JWKS: config.ParseJWKS(cc.JWKS)},
			Required:        required,
			RememberConsent: cc.RememberConsent,
			Info: Info{LogoURL: cc.LogoURL, Publisher: cc.Publisher, HomePage: cc.HomePage,
				PrivacyPolicyURL: cc.PrivacyPolicyURL, TermsURL: cc.TermsURL, Reviewed: cc.Reviewed},
			ID:           cc.ClientID,
			Name:         cc.Name,
			Type:         cc.Type,
			RedirectURIs: cc.RedirectURIs,
			Allowed:      allowed,
			Policy:       cfg.PolicyFor(cc),
		}
		switch {
		case cc.ClientSecretSHA256 != "":
			c.secretHash, _ = hex.DecodeString(cc.ClientSecretSHA256)
		case cc.ClientSecret != "":
			sum := sha256.Sum256([]byte(cc.ClientSecret))
			c.secretHash = sum[:]
		}
		r.byID[c.ID] = c
	}
	return r
}

// Lookup returns the client or nil.
func (r *Registry) Lookup(id string) *Client { return r.byID[id] }

// Add registers a client at run time (demo mode and tests).
func (r *Registry) Add(c *Client, secret string) {
	if secret != "" {
		sum := sha256.Sum256([]byte(secret))
		c.secretHash = sum[:]
	}
	r.byID[c.ID] = c
}

// CheckSecret compares a presented secret with the registered one in
// constant time. Clients without a secret never pass.
func (c *Client) CheckSecret(secret string) bool {
	if len(c.secretHash) == 0 {
		return false
	}
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], c.secretHash) == 1
}

// RedirectURIAllowed reports whether uri is registered for the client.
// Matching is by exact string, with one exception from RFC 8252 §7.3: a
// registered http redirect URI on a loopback IP literal matches the same
// URI on any port, because native apps get their port from the OS.
func (c *Client) RedirectURIAllowed(uri string) bool {
	for _, r := range c.RedirectURIs {
		if r == uri {
			return true
		}
	}
	// Only the port may differ from the registered URI, so the scheme is
	// compared as written and an empty query ("?") or fragment ("#") counts.
	u, err := url.Parse(uri)
	if err != nil || !strings.HasPrefix(uri, "http://") || u.Port() == "" || u.User != nil || strings.Contains(uri, "#") {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || !ip.IsLoopback() {
		return false
	}
	for _, r := range c.RedirectURIs {
		ru, err := url.Parse(r)
		if err != nil || ru.Scheme != "http" || ru.Port() != "" || ru.Hostname() != u.Hostname() {
			continue
		}
		if ru.Path == u.Path && ru.RawQuery == u.RawQuery && ru.ForceQuery == u.ForceQuery && ru.RawPath == u.RawPath {
			return true
		}
	}
	return false
}
