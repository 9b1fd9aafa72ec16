package clients

import (
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/config"
)

// FuzzRedirectURIAllowed checks the redirect URI matcher against arbitrary
// URIs: anything it accepts is a registered URI, or the same loopback URI
// with only a port added.
func FuzzRedirectURIAllowed(f *testing.F) {
	registered := []string{"http://127.0.0.1/cb", "https://app.example.org/cb", "org.example.app:/cb", "http://[::1]/cb"}
	c := New(&config.Config{Clients: []config.Client{{ClientID: "a", Type: config.ClientPublic, RedirectURIs: registered}}}).Lookup("a")
	for _, s := range []string{"http://127.0.0.1:8080/cb", "https://app.example.org/cb/", "https://APP.example.org/cb",
		"https://app.example.org/cb#x", "http://127.0.0.1:80/cb?", "http://127.0.0.1:1/%63b", "http://[::1]:9/cb",
		"https://app.example.org@evil.example/cb", "https://аpp.example.org/cb", "http://[::1]:1/cb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		if !c.RedirectURIAllowed(uri) {
			return
		}
		for _, r := range registered {
			if r == uri {
				return
			}
		}
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			t.Fatalf("accepted %q, which is not registered and not a loopback URI with a port", uri)
		}
		// The port is the last ":<digits>" of the host, so it is cut from
		// the end of the host; an IPv6 host such as [::1] contains colons.
		stripped := *u
		stripped.Host = strings.TrimSuffix(u.Host, ":"+u.Port())
		without := stripped.String()
		found := false
		for _, r := range registered {
			found = found || r == without
		}
		if !found {
			t.Fatalf("accepted %q, which differs from every registered URI in more than the port", uri)
		}
	})
}
