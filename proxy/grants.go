package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/scope"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// maxBackendLifetime caps access tokens of SMART Backend Services, which
// SMART limits to 300 seconds.
const maxBackendLifetime = 300

func pkceS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func invalidGrant(desc string) *oauthError { return newError(errInvalidGrant, desc) }

const (
	codeGone    = "the code is invalid, expired or already used"
	refreshGone = "the refresh token is invalid, expired or revoked"
)

func (g *Gateway) codeGrant(r *http.Request, req *tokenRequest) (*tokenResponse, *oauthError) {
	form := req.Form
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case req.Client == nil:
		return nil, &oauthError{Code: errInvalidClient, Description: "client authentication is required", Status: http.StatusUnauthorized}
	case code == "":
		return nil, newError(errInvalidRequest, "code is required")
	case redirectURI == "":
		return nil, newError(errInvalidRequest, "redirect_uri is required")
	case verifier == "":
		return nil, newError(errInvalidRequest, "code_verifier is required (PKCE)")
	}
	gid, hash, ok := token.ParseHandle(token.CodePrefix, code)
	if !ok {
		return nil, invalidGrant(codeGone)
	}
	if !verifierText.MatchString(verifier) {
		return nil, invalidGrant("code_verifier does not match the code challenge")
	}
	refresh, refreshHash := token.NewHandle(token.RefreshPrefix, gid)
	grant, hasRefresh, err := g.store.Redeem(r.Context(), store.Redemption{
		GrantID: gid, SecretHash: hash, ClientID: req.Client.ID, RedirectURI: redirectURI,
		Challenge: pkceS256(verifier), RefreshHash: refreshHash, JKT: req.JKT,
		AccessLifetime: g.cfg.Tokens.AccessTokenLifetime,
	})
	var mismatch *store.CodeMismatchError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidGrant(codeGone)
	case errors.Is(err, store.ErrCodeReused):
		g.metrics.ReuseDetected.WithLabelValues("code").Inc()
		g.log.WarnContext(r.Context(), "authorization code reused; grant revoked", "request_id", RequestID(r.Context()),
			"client_id", req.Client.ID, "event", "code_reuse_detected")
		return nil, invalidGrant(codeGone)
	case errors.As(err, &mismatch):
		return nil, invalidGrant(mismatch.Error())
	case err != nil:
		return nil, g.storeFailure(err)
	}
	if !hasRefresh {
		refresh = ""
	}
	return g.respond(r, issued{GrantID: gid, Client: req.Client, Grant: grant, Scope: grant.Scope, Refresh: refresh,
		IDToken: true, JKT: req.JKT, Lifetime: g.cfg.Tokens.AccessTokenLifetime, GrantType: "authorization_code"})
}

func (g *Gateway) refreshGrant(r *http.Request, req *tokenRequest) (*tokenResponse, *oauthError) {
	rt := req.Form.Get("refresh_token")
	if rt == "" {
		return nil, newError(errInvalidRequest, "refresh_token is required")
	}
	gid, hash, ok := token.ParseHandle(token.RefreshPrefix, rt)
	if !ok {
		return nil, invalidGrant(refreshGone)
	}
	client, narrowed, oerr := g.checkRefreshRequest(r, req, gid)
	if oerr != nil {
		return nil, oerr
	}
	next, nextHash := token.NewHandle(token.RefreshPrefix, gid)
	grant, rotated, err := g.store.Refresh(r.Context(), store.RefreshUse{
		GrantID: gid, SecretHash: hash, ClientID: client.ID, NewHash: nextHash, JKT: req.JKT,
		AccessLifetime: g.cfg.Tokens.AccessTokenLifetime,
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, invalidGrant(refreshGone)
	case errors.Is(err, store.ErrWrongClient):
		return nil, invalidGrant("the refresh token was issued to another client")
	case errors.Is(err, store.ErrWrongKey):
		return nil, invalidGrant("the refresh token is bound to another DPoP key")
	case errors.Is(err, store.ErrRefreshReused):
		g.metrics.ReuseDetected.WithLabelValues("refresh_token").Inc()
		g.log.WarnContext(r.Context(), "refresh token reused; family revoked", "request_id", RequestID(r.Context()),
			"client_id", client.ID, "event", "refresh_reuse_detected")
		return nil, invalidGrant(refreshGone)
	case err != nil:
		return nil, g.storeFailure(err)
	}
	if grant.Upstream != "" {
		if oerr := g.refreshUpstream(r, gid, client, grant.Upstream); oerr != nil {
			return nil, oerr
		}
	}
	if rotated {
		g.metrics.RefreshRotations.WithLabelValues(string(client.Type)).Inc()
	} else {
		next = ""
	}
	effective := grant.Scope
	if narrowed != nil {
		effective = narrowed.String()
	}
	return g.respond(r, issued{GrantID: gid, Client: client, Grant: grant, Scope: effective, Refresh: next,
		JKT: req.JKT, Lifetime: g.cfg.Tokens.AccessTokenLifetime, GrantType: "refresh_token"})
}

// checkRefreshRequest finds the client of a public client's refresh that
// did not name itself, and checks a narrowed scope against the grant
// before the token is spent, so that a rejected request leaves it usable.
func (g *Gateway) checkRefreshRequest(r *http.Request, req *tokenRequest, gid string) (*clients.Client, scope.List, *oauthError) {
	client := req.Client
	raw, narrowing := req.Form["scope"]
	if client != nil && !narrowing {
		return client, nil, nil
	}
	grantedRaw, owner, err := g.store.FamilyScope(r.Context(), gid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil, invalidGrant(refreshGone)
	case err != nil:
		return nil, nil, g.storeFailure(err)
	}
	if client == nil {
		if client = g.clients.Lookup(owner); client == nil || !client.Public() {
			return nil, nil, &oauthError{Code: errInvalidClient, Description: "client authentication is required",
				Status: http.StatusUnauthorized}
		}
	}
	if owner != client.ID {
		return nil, nil, invalidGrant("the refresh token was issued to another client")
	}
	if !narrowing {
		return client, nil, nil
	}
	requested, rejected := scope.ParseList(raw[0])
	if len(rejected) > 0 || len(requested) == 0 {
		return nil, nil, newError(errInvalidScope, "the scope parameter is malformed")
	}
	granted, _ := scope.ParseList(grantedRaw)
	if !granted.CoversAll(requested) {
		return nil, nil, newError(errInvalidScope, "the requested scope is wider than the original grant")
	}
	return client, requested, nil
}

// refreshUpstream keeps an online_access family alive only while the
// identity provider still honours the user's session: the provider's own
// refresh token is used on every gateway refresh. When the provider
// rejects it, the family ends and the app gets invalid_grant.
func (g *Gateway) refreshUpstream(r *http.Request, gid string, client *clients.Client, sealed string) *oauthError {
	upstreamRT, err := g.sealer.Open(sealed)
	if err == nil {
		var next string
		next, err = g.upstream.Refresh(r.Context(), upstreamRT)
		if err == nil {
			if next != upstreamRT {
				if err := g.store.SetUpstream(r.Context(), gid, g.sealer.Seal(next)); err != nil {
					return g.storeFailure(err)
				}
			}
			return nil
		}
	}
	if errors.Is(err, upstream.ErrUnavailable) {
		g.metrics.UpstreamErrors.WithLabelValues("refresh").Inc()
		return &oauthError{Code: errTemporarilyUnavailable, Description: "the identity provider is temporarily unavailable",
			Status: http.StatusServiceUnavailable, Cause: err}
	}
	if rerr := g.store.RevokeGrant(r.Context(), gid, g.cfg.Tokens.AccessTokenLifetime); rerr != nil {
		return g.storeFailure(rerr)
	}
	g.log.InfoContext(r.Context(), "upstream session ended; online access revoked", "request_id", RequestID(r.Context()),
		"client_id", client.ID, "event", "online_access_ended", "err", err.Error())
	return invalidGrant("the user's session at the identity provider has ended")
}

// clientCredentialsGrant serves SMART Backend Services: a
// confidential-asymmetric client gets a short-lived access token for the
// scopes it is allowed, with no user and no refresh token.
func (g *Gateway) clientCredentialsGrant(r *http.Request, req *tokenRequest) (*tokenResponse, *oauthError) {
	client := req.Client
	if client == nil || client.Type != config.ClientConfidentialAsymmetric {
		return nil, newError(errUnauthorizedClient, "client_credentials needs a client that authenticates with private_key_jwt")
	}
	raw := req.Form.Get("scope")
	if raw == "" {
		return nil, newError(errInvalidRequest, "scope is required, such as system/Observation.rs")
	}
	requested, _ := scope.ParseList(raw)
	kept, _ := requested.Allowed(client.Allowed)
	var granted scope.List
	for _, s := range kept {
		if s.Kind == scope.KindResource || s.Kind == scope.KindExtension {
			granted = append(granted, s)
		}
	}
	if len(granted) == 0 {
		return nil, newError(errInvalidScope, "none of the requested scopes is allowed for this client")
	}
	lifetime := min(g.cfg.Tokens.AccessTokenLifetime, maxBackendLifetime*time.Second)
	return g.respond(r, issued{GrantID: token.NewGrantID(), Client: client,
		Grant: store.Grant{Subject: client.ID, Audience: g.defaultAudience()}, Scope: granted.String(),
		JKT: req.JKT, Lifetime: lifetime, GrantType: "client_credentials"})
}

// defaultAudience is the FHIR base a backend token is for: SMART Backend
// Services requests carry no aud, so the first configured base is used.
func (g *Gateway) defaultAudience() string {
	if len(g.cfg.FHIR.BaseURLs) > 0 {
		return g.cfg.FHIR.BaseURLs[0]
	}
	return ""
}

// storeFailure maps a state store error and counts Redis failures.
func (g *Gateway) storeFailure(err error) *oauthError {
	if errors.Is(err, store.ErrUnavailable) {
		g.metrics.RedisErrors.Inc()
	}
	return storeError(err)
}
