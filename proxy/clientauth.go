package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/compactjws"
	"github.com/smartgate/smartgate/internal/config"
)

// authenticateClient identifies the client of a token, revocation or
// similar request by its type: a public client by client_id, a
// confidential-symmetric client by client_secret_basic or
// client_secret_post, a confidential-asymmetric client by private_key_jwt.
// A public client's refresh request may leave out client_id; the client
// is then nil and the refresh token names it.
func (g *Gateway) authenticateClient(r *http.Request, form url.Values) (*clients.Client, *oauthError) {
	unauthorized := func(desc string) *oauthError {
		return &oauthError{Code: errInvalidClient, Description: desc, Status: http.StatusUnauthorized}
	}
	id, secret, basic := r.BasicAuth()
	assertion := form.Get("client_assertion")
	methods := 0
	for _, used := range []bool{basic, form.Get("client_secret") != "", assertion != ""} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return nil, newError(errInvalidRequest, "use one client authentication method, not several")
	}
	switch {
	case basic:
		// RFC 6749 §2.3.1: both parts are form-encoded before Base64.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, unauthorized("the Basic credentials are not form-encoded correctly")
		}
	case assertion != "":
		return g.authenticateAssertion(r, form, assertion)
	default:
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if fid := form.Get("client_id"); fid != "" && fid != id {
		return nil, newError(errInvalidRequest, "client_id does not match the authenticated client")
	}
	if id == "" {
		if form.Get("grant_type") == "refresh_token" {
			// A public client may refresh without naming itself; the
			// refresh token's family names it (see refreshGrant).
			return nil, nil
		}
		return nil, unauthorized("client authentication is required")
	}
	client := g.clients.Lookup(id)
	if client == nil {
		return nil, unauthorized("unknown client")
	}
	switch client.Type {
	case config.ClientPublic:
		if secret != "" || basic {
			return nil, unauthorized("a public client does not authenticate with a secret")
		}
		return client, nil
	case config.ClientConfidentialAsymmetric:
		return nil, unauthorized("this client must authenticate with private_key_jwt")
	}
	if secret == "" {
		return nil, unauthorized("this client must authenticate with its secret")
	}
	if !client.CheckSecret(secret) {
		g.log.InfoContext(r.Context(), "client authentication failed", "request_id", RequestID(r.Context()),
			"client_id", client.ID, "event", "client_auth_failed")
		return nil, unauthorized("client authentication failed")
	}
	return client, nil
}

// authenticateAssertion checks a private_key_jwt client assertion (RFC
// 7523 as SMART profiles it). Every failure is invalid_client, except a
// state store that cannot record the assertion's jti, which is 503.
func (g *Gateway) authenticateAssertion(r *http.Request, form url.Values, assertion string) (*clients.Client, *oauthError) {
	unauthorized := func(desc string, cause error) *oauthError {
		return &oauthError{Code: errInvalidClient, Description: desc, Status: http.StatusUnauthorized, Cause: cause}
	}
	if form.Get("client_assertion_type") != clientauth.AssertionType {
		return nil, unauthorized("client_assertion_type must be "+clientauth.AssertionType, nil)
	}
	id := form.Get("client_id")
	if id == "" {
		id = unverifiedIssuer(assertion)
	}
	client := g.clients.Lookup(id)
	if client == nil || client.Type != config.ClientConfidentialAsymmetric {
		return nil, unauthorized("unknown client, or not one that authenticates with private_key_jwt", nil)
	}
	if _, err := g.assertions.Verify(r.Context(), client.Keys, assertion); err != nil {
		if errors.Is(err, clientauth.ErrUnavailable) {
			return nil, g.storeFailure(err)
		}
		g.log.InfoContext(r.Context(), "client assertion rejected", "request_id", RequestID(r.Context()),
			"client_id", client.ID, "event", "client_auth_failed", "err", err.Error())
		return nil, unauthorized("the client assertion is invalid", err)
	}
	return client, nil
}

// unverifiedIssuer reads the iss claim of an assertion without checking
// it, only to find which client's keys verify it.
func unverifiedIssuer(assertion string) string {
	if len(assertion) > 16<<10 {
		return ""
	}
	payload, err := compactjws.UnverifiedPayload(assertion)
	if err != nil {
		return ""
	}
	var claims struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Issuer
}
