package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
)

// tokenResponse is the body of a successful token response (RFC 6749
// §5.1 with SMART's launch context).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Patient      string `json:"patient,omitempty"`
}

// verifierText is the RFC 7636 §4.1 code_verifier grammar.
var verifierText = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

func (g *Gateway) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": errInvalidRequest, "error_description": "the token endpoint takes POST only"})
		return
	}
	resp, oerr := g.token(r)
	if oerr != nil {
		if oerr.Code == errInvalidClient && r.Header.Get("Authorization") != "" {
			// RFC 6749 §5.2: a failed Basic authentication is 401 with a challenge.
			w.Header().Set("WWW-Authenticate", `Basic realm="smartgate", charset="UTF-8"`)
		}
		g.writeOAuthError(w, r, oerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// token parses and runs one token request.
func (g *Gateway) token(r *http.Request) (*tokenResponse, *oauthError) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil, newError(errInvalidRequest, "send the parameters as application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		e := newError(errInvalidRequest, "the request body could not be read")
		e.Status = formErrorStatus(err)
		return nil, e
	}
	form := r.PostForm
	for name, vs := range form {
		if len(vs) > 1 {
			return nil, newError(errInvalidRequest, fmt.Sprintf("parameter %s is repeated", name))
		}
	}
	client, oerr := g.authenticateClient(r, form)
	if oerr != nil {
		return nil, oerr
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		return g.codeGrant(r, client, form)
	case "refresh_token":
		return g.refreshGrant(r, client, form)
	case "":
		return nil, newError(errInvalidRequest, "grant_type is required")
	default:
		return nil, newError(errUnsupportedGrantType, "supported grant types are authorization_code and refresh_token")
	}
}

// authenticateClient identifies the client: public clients by client_id,
// confidential clients by client_secret_basic or client_secret_post.
func (g *Gateway) authenticateClient(r *http.Request, form url.Values) (*clients.Client, *oauthError) {
	unauthorized := func(desc string) *oauthError {
		return &oauthError{Code: errInvalidClient, Description: desc, Status: http.StatusUnauthorized}
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: both parts are form-encoded before Base64.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, unauthorized("the Basic credentials are not form-encoded correctly")
		}
		if form.Get("client_secret") != "" {
			return nil, newError(errInvalidRequest, "use one client authentication method, not two")
		}
	} else {
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
	if client.Public() {
		if secret != "" || basic {
			return nil, unauthorized("a public client does not authenticate with a secret")
		}
		return client, nil
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

func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (g *Gateway) codeGrant(r *http.Request, client *clients.Client, form url.Values) (*tokenResponse, *oauthError) {
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		return nil, newError(errInvalidRequest, "code is required")
	case redirectURI == "":
		return nil, newError(errInvalidRequest, "redirect_uri is required")
	case verifier == "":
		return nil, newError(errInvalidRequest, "code_verifier is required (PKCE)")
	}
	gid, hash, ok := token.ParseHandle(token.CodePrefix, code)
	if !ok {
		return nil, newError(errInvalidGrant, "the code is invalid, expired or already used")
	}
	if !verifierText.MatchString(verifier) {
		return nil, newError(errInvalidGrant, "code_verifier does not match the code challenge")
	}
	refresh, refreshHash := token.NewHandle(token.RefreshPrefix, gid)
	grant, issued, err := g.store.Redeem(r.Context(), gid, hash, client.ID, redirectURI, pkceS256(verifier),
		refreshHash, g.cfg.Tokens.AccessTokenLifetime)
	var mismatch *store.CodeMismatchError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, newError(errInvalidGrant, "the code is invalid, expired or already used")
	case errors.Is(err, store.ErrCodeReused):
		g.log.WarnContext(r.Context(), "authorization code reused; grant revoked", "request_id", RequestID(r.Context()),
			"client_id", client.ID, "event", "code_reuse_detected")
		return nil, newError(errInvalidGrant, "the code is invalid, expired or already used")
	case errors.As(err, &mismatch):
		return nil, newError(errInvalidGrant, mismatch.Error())
	case err != nil:
		return nil, storeError(err)
	}
	if !issued {
		refresh = ""
	}
	return g.respond(r, gid, client, grant, grant.Scope, refresh, true)
}

func (g *Gateway) refreshGrant(r *http.Request, client *clients.Client, form url.Values) (*tokenResponse, *oauthError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return nil, newError(errInvalidRequest, "refresh_token is required")
	}
	gid, hash, ok := token.ParseHandle(token.RefreshPrefix, rt)
	if !ok {
		return nil, newError(errInvalidGrant, "the refresh token is invalid, expired or revoked")
	}
	if client == nil {
		_, owner, err := g.store.FamilyScope(r.Context(), gid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, newError(errInvalidGrant, "the refresh token is invalid, expired or revoked")
		case err != nil:
			return nil, storeError(err)
		}
		if client = g.clients.Lookup(owner); client == nil || !client.Public() {
			return nil, &oauthError{Code: errInvalidClient, Description: "client authentication is required",
				Status: http.StatusUnauthorized}
		}
	}
	var narrowed scope.List
	if raw, present := form["scope"]; present {
		// A narrower scope is checked against the grant before the token
		// is spent, so a rejected request leaves the token usable.
		requested, rejected := scope.ParseList(raw[0])
		if len(rejected) > 0 || len(requested) == 0 {
			return nil, newError(errInvalidScope, "the scope parameter is malformed")
		}
		grantedRaw, owner, err := g.store.FamilyScope(r.Context(), gid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, newError(errInvalidGrant, "the refresh token is invalid, expired or revoked")
		case err != nil:
			return nil, storeError(err)
		case owner != client.ID:
			return nil, newError(errInvalidGrant, "the refresh token was issued to another client")
		}
		granted, _ := scope.ParseList(grantedRaw)
		if !granted.CoversAll(requested) {
			return nil, newError(errInvalidScope, "the requested scope is wider than the original grant")
		}
		narrowed = requested
	}
	next, nextHash := token.NewHandle(token.RefreshPrefix, gid)
	grant, rotated, err := g.store.Refresh(r.Context(), gid, hash, client.ID, nextHash, g.cfg.Tokens.AccessTokenLifetime)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, newError(errInvalidGrant, "the refresh token is invalid, expired or revoked")
	case errors.Is(err, store.ErrWrongClient):
		return nil, newError(errInvalidGrant, "the refresh token was issued to another client")
	case errors.Is(err, store.ErrRefreshReused):
		g.log.WarnContext(r.Context(), "refresh token reused; family revoked", "request_id", RequestID(r.Context()),
			"client_id", client.ID, "event", "refresh_reuse_detected")
		return nil, newError(errInvalidGrant, "the refresh token is invalid, expired or revoked")
	case err != nil:
		return nil, storeError(err)
	}
	if !rotated {
		next = ""
	}
	effective := grant.Scope
	if narrowed != nil {
		effective = narrowed.String()
	}
	return g.respond(r, gid, client, grant, effective, next, false)
}

// respond mints the access token (and the ID token after a code exchange
// that granted openid) and builds the response.
func (g *Gateway) respond(r *http.Request, gid string, client *clients.Client, grant store.Grant, scopeText, refresh string,
	withIDToken bool) (*tokenResponse, *oauthError) {
	now := g.now()
	lifetime := g.cfg.Tokens.AccessTokenLifetime
	at, err := g.minter.Access(token.AccessClaims{
		Issuer: g.issuer, Subject: grant.Subject, Audience: grant.Audience,
		Expiry: token.NumericDate(now.Add(lifetime)), IssuedAt: token.NumericDate(now),
		ID: token.AccessTokenID(gid), ClientID: client.ID, Scope: scopeText,
		Patient: grant.Patient, FHIRUser: grant.FHIRUser,
	})
	if err != nil {
		return nil, &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
	}
	resp := &tokenResponse{
		AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(lifetime.Seconds()),
		Scope: scopeText, RefreshToken: refresh, Patient: grant.Patient,
	}
	granted, _ := scope.ParseList(scopeText)
	if withIDToken && granted.Has(scope.KindOpenID) {
		claims := token.IDClaims{
			Issuer: g.issuer, Subject: grant.Subject, Audience: client.ID,
			Expiry: token.NumericDate(now.Add(g.cfg.Tokens.IDTokenLifetime)), IssuedAt: token.NumericDate(now),
			Nonce: grant.Nonce, FHIRUser: grant.FHIRUser,
		}
		if grant.AuthTime > 0 {
			claims.AuthTime = token.NumericDate(time.Unix(grant.AuthTime, 0))
		}
		if granted.Has(scope.KindProfile) {
			claims.Name = grant.Name
		}
		if resp.IDToken, err = g.minter.ID(claims); err != nil {
			return nil, &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
		}
	}
	g.log.InfoContext(r.Context(), "tokens issued", "request_id", RequestID(r.Context()), "event", "tokens_issued",
		"client_id", client.ID, "sub", grant.Subject, "grant_type", r.PostForm.Get("grant_type"),
		"refresh_token_issued", refresh != "")
	return resp, nil
}

// tokenCORS lets browser apps call /token from the origins of their
// registered redirect URIs, and no other origin.
func (g *Gateway) tokenCORS(next http.Handler) http.Handler {
	origins := map[string]bool{}
	for _, c := range g.cfg.Clients {
		for _, u := range c.RedirectURIs {
			if o := origin(u); o != "" {
				origins[o] = true
			}
		}
	}
	allowed := func(o string) bool {
		if origins[o] {
			return true
		}
		// A loopback redirect URI registered without a port matches any
		// port (RFC 8252 §7.3), and so does its origin.
		u, err := url.Parse(o)
		if err != nil || u.Scheme != "http" || u.Port() == "" {
			return false
		}
		ip := net.ParseIP(u.Hostname())
		return ip != nil && ip.IsLoopback() && origins["http://"+u.Host[:len(u.Host)-len(u.Port())-1]]
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if o != "" && allowed(o) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", o)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
