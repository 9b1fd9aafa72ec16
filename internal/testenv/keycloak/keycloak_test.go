package keycloak_test

import (
	"context"
	"crypto/rand"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/testenv/keycloak"
)

// redirectURI is registered for the client but never contacted: the test's
// HTTP client stops at the redirect to it.
const redirectURI = "http://127.0.0.1:9/callback"

// formTag matches the opening tag of an HTML form, and formAction its
// action attribute.
var (
	formTag    = regexp.MustCompile(`<form\b[^>]*>`)
	formAction = regexp.MustCompile(`\baction="([^"]*)"`)
)

func TestKeycloakLogin(t *testing.T) {
	var cleanup testenv.Cleanup
	t.Cleanup(cleanup.Run)
	kc := keycloak.Start(t, &cleanup, []string{redirectURI})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	provider, err := oidc.NewProvider(ctx, kc.Issuer)
	if err != nil {
		t.Fatalf("discovery of %s: %v", kc.Issuer, err)
	}
	conf := &oauth2.Config{
		ClientID:     kc.ClientID,
		ClientSecret: kc.ClientSecret,
		Endpoint:     provider.Endpoint(),
		RedirectURL:  redirectURI,
		Scopes:       []string{oidc.ScopeOpenID, "profile"},
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: kc.ClientID})

	t.Run("patient", func(t *testing.T) {
		claims := login(ctx, t, conf, verifier, kc.Issuer, testenv.PatientUser, testenv.PatientPassword)
		if got := claims["patient_id"]; got != testenv.PatientID {
			t.Errorf("patient_id claim = %#v, expected %q", got, testenv.PatientID)
		}
		if got := claims["name"]; got != testenv.PatientName {
			t.Errorf("name claim = %#v, expected %q", got, testenv.PatientName)
		}
		if _, ok := claims["auth_time"]; !ok {
			t.Error("the ID token has no auth_time claim")
		}
	})

	t.Run("clinician without patient_id", func(t *testing.T) {
		claims := login(ctx, t, conf, verifier, kc.Issuer, testenv.ClinicianUser, testenv.ClinicianPass)
		if got, ok := claims["patient_id"]; ok {
			t.Errorf("patient_id claim = %#v, expected none", got)
		}
		if got := claims["name"]; got != "Bob Clinician" {
			t.Errorf("name claim = %#v, expected %q", got, "Bob Clinician")
		}
	})

	t.Run("request without PKCE", func(t *testing.T) {
		client := newBrowser(t)
		resp := get(t, client, conf.AuthCodeURL("state-without-pkce", oidc.Nonce("nonce")))
		readBody(t, resp)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorization request without code_challenge: status %d, expected %d with an error",
				resp.StatusCode, http.StatusFound)
		}
		params := redirectParams(t, resp)
		if got := params.Get("error"); got != "invalid_request" {
			t.Errorf("error = %q (%s), expected invalid_request", got, params.Get("error_description"))
		}
		if params.Has("code") {
			t.Error("the redirect has a code, expected none")
		}
	})

	t.Run("password grant", func(t *testing.T) {
		_, err := conf.PasswordCredentialsToken(ctx, testenv.PatientUser, testenv.PatientPassword)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("password grant: error %v, expected a token error response", err)
		}
		if re.ErrorCode != "unauthorized_client" {
			t.Errorf("password grant: error %q, expected unauthorized_client", re.ErrorCode)
		}
	})
}

// login signs username in through the authorization code flow with PKCE,
// as a browser without JavaScript would: it submits the login form of
// Keycloak's default theme. It returns the claims of the verified ID token.
func login(ctx context.Context, t *testing.T, conf *oauth2.Config, verifier *oidc.IDTokenVerifier,
	issuer, username, password string) map[string]any {
	t.Helper()
	client := newBrowser(t)
	state, nonce, pkce := rand.Text(), rand.Text(), oauth2.GenerateVerifier()

	resp := get(t, client, conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkce)))
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: status %d, expected 200; body:\n%s", resp.StatusCode, page)
	}
	forms := formTag.FindAllString(page, -1)
	if len(forms) != 1 {
		t.Fatalf("login page has %d forms, expected 1; body:\n%s", len(forms), page)
	}
	action := formAction.FindStringSubmatch(forms[0])
	if action == nil {
		t.Fatalf("login form %s has no action attribute", forms[0])
	}

	resp, err := client.PostForm(html.UnescapeString(action[1]), url.Values{
		"username": {username},
		"password": {password},
	})
	if err != nil {
		t.Fatalf("submit the login form: %v", err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login form: status %d, expected a redirect to %s; body:\n%s", resp.StatusCode, redirectURI, body)
	}
	params := redirectParams(t, resp)
	if got := params.Get("state"); got != state {
		t.Errorf("state = %q, expected %q", got, state)
	}
	if got := params.Get("iss"); got != issuer {
		t.Errorf("iss = %q, expected %q", got, issuer)
	}
	code := params.Get("code")
	if code == "" {
		t.Fatalf("the redirect has no code: %v", params)
	}

	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		t.Fatal("the token response has no id_token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify the ID token: %v", err)
	}
	if idt.Subject == "" {
		t.Error("the ID token has no sub claim")
	}
	if idt.Nonce != nonce {
		t.Errorf("ID token nonce = %q, expected %q", idt.Nonce, nonce)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatalf("ID token claims: %v", err)
	}
	return claims
}

// newBrowser returns an HTTP client with a cookie jar that follows
// redirects, except the one to redirectURI.
func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatalf("cookie jar: %v", err)
	}
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirectURI) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
}

func get(t *testing.T, client *http.Client, target string) *http.Response {
	t.Helper()
	resp, err := client.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read the response from %s: %v", resp.Request.URL, err)
	}
	return string(data)
}

// redirectParams returns the query parameters of a redirect to redirectURI.
func redirectParams(t *testing.T, resp *http.Response) url.Values {
	t.Helper()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, redirectURI+"?") {
		t.Fatalf("Location = %q, expected a redirect to %s", loc, redirectURI)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("parse Location %q: %v", loc, err)
	}
	return u.Query()
}
