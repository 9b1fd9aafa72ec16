package proxy

import (
	"net/url"
	"strings"
	"testing"

	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/config"
)

func fuzzRegistry() (*clients.Registry, map[string]bool) {
	cfg := &config.Config{Clients: []config.Client{{
		ClientID: "app", Name: "App", Type: config.ClientPublic,
		RedirectURIs: []string{"http://127.0.0.1/cb", "https://app.example.org/cb?x=1"},
		Scopes:       []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access", "patient/*.cruds"},
	}}}
	config.ApplyDefaults(cfg)
	return clients.New(cfg), map[string]bool{"https://fhir.example.org/r4": true}
}

// FuzzParseAuthorize feeds arbitrary query strings to the authorization
// request parser. It must never panic, never redirect before the client
// and redirect URI are verified, and only ever redirect to a registered
// redirect URI.
func FuzzParseAuthorize(f *testing.F) {
	valid := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {"http://127.0.0.1/cb"},
		"scope": {"launch/patient patient/*.rs"}, "state": {"s"}, "aud": {"https://fhir.example.org/r4"},
		"code_challenge": {strings.Repeat("A", 43)}, "code_challenge_method": {"S256"}}
	f.Add(valid.Encode())
	f.Add("client_id=app&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcb&state=%3Cscript%3E")
	f.Add("client_id=app&client_id=app&redirect_uri=http://127.0.0.1/cb")
	f.Add("client_id=app&redirect_uri=http://127.0.0.1.evil.example/cb")
	f.Add("client_id=app&redirect_uri=http://user@127.0.0.1/cb&state=x")
	f.Add("client_id=%FF%FE&redirect_uri=%00")
	f.Add(valid.Encode() + "&launch=a.b.c&scope=launch")
	reg, bases := fuzzRegistry()
	f.Fuzz(func(t *testing.T, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req, aerr := parseAuthorize(form, reg, bases)
		if aerr != nil {
			if aerr.Page != "" {
				return
			}
			c := reg.Lookup(form.Get("client_id"))
			if c == nil || !c.RedirectURIAllowed(aerr.RedirectURI) {
				t.Fatalf("error redirects to %q, which is not registered for %q", aerr.RedirectURI, form.Get("client_id"))
			}
			return
		}
		if !req.Client.RedirectURIAllowed(req.RedirectURI) {
			t.Fatalf("accepted unregistered redirect URI %q", req.RedirectURI)
		}
		if req.CodeChallenge == "" || req.State == "" || !bases[req.Audience] {
			t.Fatalf("accepted a request without PKCE, state or a protected aud: %+v", req)
		}
	})
}
