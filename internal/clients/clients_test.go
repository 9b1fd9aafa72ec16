package clients

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/config"
)

func TestRedirectURIAllowed(t *testing.T) {
	c := &Client{
		ID:   "app",
		Type: config.ClientPublic,
		RedirectURIs: []string{
			"https://app.example.org/callback",
			"https://app.example.org/cb?tenant=a",
			"org.example.app:/oauth",
			"http://127.0.0.1/cb",
			"http://127.0.0.1:8080/fixed",
			"http://127.0.0.1/empty-query?",
		},
	}
	tests := []struct {
		name string
		uri  string
		want bool
	}{
		{"exact https", "https://app.example.org/callback", true},
		{"exact with query", "https://app.example.org/cb?tenant=a", true},
		{"exact private-use scheme", "org.example.app:/oauth", true},
		{"exact loopback without port", "http://127.0.0.1/cb", true},
		{"exact loopback with port", "http://127.0.0.1:8080/fixed", true},

		{"empty", "", false},
		{"different path", "https://app.example.org/other", false},
		{"longer path", "https://app.example.org/callback2", false},
		{"extra query", "https://app.example.org/callback?x=1", false},
		{"empty query", "https://app.example.org/callback?", false},
		{"other query value", "https://app.example.org/cb?tenant=b", false},
		{"query dropped", "https://app.example.org/cb", false},
		{"fragment", "https://app.example.org/callback#x", false},
		{"empty fragment", "https://app.example.org/callback#", false},
		{"userinfo", "https://user@app.example.org/callback", false},
		{"http instead of https", "http://app.example.org/callback", false},
		{"host case differs", "https://App.Example.org/callback", false},
		{"scheme case differs", "HTTPS://app.example.org/callback", false},
		{"trailing slash", "https://app.example.org/callback/", false},
		{"percent-encoded letter", "https://app.example.org/%63allback", false},
		{"percent-encoded slash", "https://app.example.org%2Fcallback", false},
		{"explicit default port", "https://app.example.org:443/callback", false},
		{"other host", "https://evil.example.org/callback", false},
		{"host suffix", "https://app.example.org.evil.example/callback", false},
		{"private-use other path", "org.example.app:/oauth2", false},
		{"private-use other scheme", "org.example.evil:/oauth", false},

		// RFC 8252 section 7.3: any port on a loopback IP literal.
		{"loopback any port", "http://127.0.0.1:53211/cb", true},
		{"loopback port 1", "http://127.0.0.1:1/cb", true},
		{"loopback localhost name", "http://localhost:53211/cb", false},
		{"loopback other path", "http://127.0.0.1:53211/cb2", false},
		{"loopback https", "https://127.0.0.1:53211/cb", false},
		{"loopback trailing slash", "http://127.0.0.1:53211/cb/", false},
		{"loopback no path", "http://127.0.0.1:53211", false},
		{"loopback extra query", "http://127.0.0.1:53211/cb?x=1", false},
		{"loopback empty query", "http://127.0.0.1:53211/cb?", false},
		{"loopback fragment", "http://127.0.0.1:53211/cb#x", false},
		{"loopback empty fragment", "http://127.0.0.1:53211/cb#", false},
		{"loopback userinfo", "http://user@127.0.0.1:53211/cb", false},
		{"loopback percent-encoded path", "http://127.0.0.1:53211/%63b", false},
		{"loopback upper-case scheme", "HTTP://127.0.0.1:53211/cb", false},
		{"loopback other address", "http://127.0.0.2:53211/cb", false},
		{"loopback IPv6 for IPv4 registration", "http://[::1]:53211/cb", false},
		{"loopback empty port", "http://127.0.0.1:/cb", false},
		{"loopback port not a number", "http://127.0.0.1:abc/cb", false},
		{"loopback registered empty query", "http://127.0.0.1:53211/empty-query?", true},
		{"loopback registered empty query dropped", "http://127.0.0.1:53211/empty-query", false},
		{"registered port fixed", "http://127.0.0.1:9090/fixed", false},
		{"registered port fixed no port", "http://127.0.0.1/fixed", false},
		{"non-loopback http with port", "http://app.example.org:8080/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.RedirectURIAllowed(tt.uri); got != tt.want {
				t.Errorf("RedirectURIAllowed(%q) = %v, want %v", tt.uri, got, tt.want)
			}
		})
	}
}

func TestRedirectURIAllowedIPv6Loopback(t *testing.T) {
	c := &Client{ID: "app", Type: config.ClientPublic, RedirectURIs: []string{"http://[::1]/cb"}}
	tests := []struct {
		name string
		uri  string
		want bool
	}{
		{"exact", "http://[::1]/cb", true},
		{"any port", "http://[::1]:53211/cb", true},
		{"localhost name", "http://localhost:53211/cb", false},
		{"IPv4 for IPv6 registration", "http://127.0.0.1:53211/cb", false},
		{"long form of address", "http://[0:0:0:0:0:0:0:1]:53211/cb", false},
		{"other path", "http://[::1]:53211/cb2", false},
		{"https", "https://[::1]:53211/cb", false},
		{"query", "http://[::1]:53211/cb?x=1", false},
		{"fragment", "http://[::1]:53211/cb#x", false},
		{"zone", "http://[::1%25eth0]:53211/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.RedirectURIAllowed(tt.uri); got != tt.want {
				t.Errorf("RedirectURIAllowed(%q) = %v, want %v", tt.uri, got, tt.want)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestCheckSecret(t *testing.T) {
	const (
		inline = "inline-secret-0123456789abcdef0123"
		hashed = "hashed-secret-0123456789abcdef0123"
	)
	cfg := &config.Config{Clients: []config.Client{
		{ClientID: "inline", Type: config.ClientConfidentialSymmetric, ClientSecret: inline},
		{ClientID: "hashed", Type: config.ClientConfidentialSymmetric, ClientSecretSHA256: sha256Hex(hashed)},
		{ClientID: "hashed-upper", Type: config.ClientConfidentialSymmetric, ClientSecretSHA256: strings.ToUpper(sha256Hex(hashed))},
		{ClientID: "public", Type: config.ClientPublic},
	}}
	config.ApplyDefaults(cfg)
	reg := New(cfg)

	tests := []struct {
		name   string
		client string
		secret string
		want   bool
	}{
		{"inline right", "inline", inline, true},
		{"inline wrong", "inline", "inline-secret-0123456789abcdef0124", false},
		{"inline empty", "inline", "", false},
		{"inline prefix", "inline", inline[:len(inline)-1], false},
		{"inline with trailing newline", "inline", inline + "\n", false},
		{"inline other case", "inline", strings.ToUpper(inline), false},
		{"inline other client's secret", "inline", hashed, false},
		{"hash right", "hashed", hashed, true},
		{"hash wrong", "hashed", inline, false},
		{"hash empty", "hashed", "", false},
		{"hash presented as secret", "hashed", sha256Hex(hashed), false},
		{"upper-case hash right", "hashed-upper", hashed, true},
		{"upper-case hash wrong", "hashed-upper", inline, false},
		{"public empty", "public", "", false},
		{"public any", "public", inline, false},
		{"public hash of empty string", "public", sha256Hex(""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := reg.Lookup(tt.client)
			if c == nil {
				t.Fatalf("Lookup(%q) = nil", tt.client)
			}
			if got := c.CheckSecret(tt.secret); got != tt.want {
				t.Errorf("CheckSecret(%q) = %v, want %v", tt.secret, got, tt.want)
			}
		})
	}
}

func TestAddSecret(t *testing.T) {
	reg := New(&config.Config{})
	reg.Add(&Client{ID: "with", Type: config.ClientConfidentialSymmetric}, "added-secret")
	reg.Add(&Client{ID: "without", Type: config.ClientPublic}, "")
	tests := []struct {
		name   string
		client string
		secret string
		want   bool
	}{
		{"added secret right", "with", "added-secret", true},
		{"added secret wrong", "with", "added-secreT", false},
		{"added secret empty", "with", "", false},
		{"no secret empty", "without", "", false},
		{"no secret any", "without", "added-secret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reg.Lookup(tt.client).CheckSecret(tt.secret); got != tt.want {
				t.Errorf("CheckSecret(%q) = %v, want %v", tt.secret, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	cfg := &config.Config{Clients: []config.Client{
		{
			ClientID: "my-health", Name: "My Health", Type: config.ClientPublic,
			RedirectURIs: []string{"http://127.0.0.1/cb"},
			Scopes:       []string{"openid", "patient/*.rs", "launch/patient"},
		},
		{
			ClientID: "growth-chart", Name: "Growth Chart", Type: config.ClientConfidentialSymmetric,
			RedirectURIs: []string{"https://growth.example.org/cb"},
			Scopes:       []string{"patient/Observation.rs"},
			ClientSecret: "growth-chart-secret-0123456789abcdef",
		},
	}}
	config.ApplyDefaults(cfg)
	reg := New(cfg)

	if reg.Lookup("unknown") != nil {
		t.Error("Lookup of an unregistered id returned a client")
	}
	public := reg.Lookup("my-health")
	if public == nil {
		t.Fatal("Lookup(my-health) = nil")
	}
	if !public.Public() {
		t.Error("my-health is not public")
	}
	if got := public.Allowed.String(); got != "openid patient/*.rs launch/patient" {
		t.Errorf("Allowed = %q", got)
	}
	if public.Policy.Rotation == nil || !*public.Policy.Rotation {
		t.Errorf("public client policy rotation = %v, want true", public.Policy.Rotation)
	}
	confidential := reg.Lookup("growth-chart")
	if confidential == nil {
		t.Fatal("Lookup(growth-chart) = nil")
	}
	if confidential.Public() {
		t.Error("growth-chart is public")
	}
	if confidential.Name != "Growth Chart" {
		t.Errorf("Name = %q", confidential.Name)
	}
}
