package proxy

import (
	"encoding/json"
	"fmt"
	"log/slog"
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
	tokenContext
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

// tokenRequest is a parsed token request after client authentication.
type tokenRequest struct {
	Client *clients.Client // nil for a public client's refresh without client_id
	Form   url.Values
	JKT    string // thumbprint of the proven DPoP key, or ""
}

// token parses and runs one token request.
func (g *Gateway) token(r *http.Request) (*tokenResponse, *oauthError) {
	form, oerr := parsePostForm(r)
	if oerr != nil {
		return nil, oerr
	}
	client, oerr := g.authenticateClient(r, form)
	if oerr != nil {
		return nil, oerr
	}
	grantType := form.Get("grant_type")
	if client != nil && grantType != "" && !client.AllowsGrant(grantType) {
		return nil, newError(errUnauthorizedClient, "this client may not use grant_type "+grantType)
	}
	req := &tokenRequest{Client: client, Form: form}
	if req.JKT, oerr = g.dpopKey(r, client); oerr != nil {
		return nil, oerr
	}
	switch grantType {
	case "authorization_code":
		return g.codeGrant(r, req)
	case "refresh_token":
		return g.refreshGrant(r, req)
	case "client_credentials":
		return g.clientCredentialsGrant(r, req)
	case "":
		return nil, newError(errInvalidRequest, "grant_type is required")
	default:
		return nil, newError(errUnsupportedGrantType,
			"supported grant types are authorization_code, refresh_token and client_credentials")
	}
}

// parsePostForm reads a form-encoded POST body and rejects repeated
// parameters (RFC 6749 §3.2).
func parsePostForm(r *http.Request) (url.Values, *oauthError) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil, newError(errInvalidRequest, "send the parameters as application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		e := newError(errInvalidRequest, "the request body could not be read")
		e.Status = formErrorStatus(err)
		return nil, e
	}
	for name, vs := range r.PostForm {
		if len(vs) > 1 {
			return nil, newError(errInvalidRequest, fmt.Sprintf("parameter %s is repeated", name))
		}
	}
	return r.PostForm, nil
}

// issued describes what respond mints.
type issued struct {
	GrantID     string
	Client      *clients.Client
	ClientType  string
	Grant       store.Grant
	Scope       string
	Refresh     string // refresh token to hand out, or ""
	IDToken     bool   // mint an ID token when openid was granted
	JKT         string // DPoP binding of the access token, or ""
	Lifetime    time.Duration
	GrantType   string
	RefreshUsed bool
}

// respond mints the access token (and the ID token after a code exchange
// that granted openid) and builds the response.
func (g *Gateway) respond(r *http.Request, is issued) (*tokenResponse, *oauthError) {
	now := g.now()
	claims := token.AccessClaims{
		Issuer: g.issuer, Subject: is.Grant.Subject, Audience: is.Grant.Audience,
		Expiry: token.NumericDate(now.Add(is.Lifetime)), IssuedAt: token.NumericDate(now),
		ID: token.AccessTokenID(is.GrantID), ClientID: is.Client.ID, Scope: is.Scope,
		Patient: is.Grant.Patient, FHIRUser: is.Grant.FHIRUser,
	}
	var launchCtx tokenContext
	if is.Grant.Context != "" {
		if err := json.Unmarshal([]byte(is.Grant.Context), &launchCtx); err != nil {
			return nil, &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
		}
	}
	claims.Encounter, claims.FHIRContext, claims.Intent = launchCtx.Encounter, launchCtx.FHIRContext, launchCtx.Intent
	claims.NeedPatientBanner, claims.SmartStyleURL, claims.Tenant = launchCtx.NeedPatientBanner, launchCtx.SmartStyleURL, launchCtx.Tenant
	tokenType := "Bearer"
	if is.JKT != "" {
		claims.Confirmation = &token.Confirmation{JKT: is.JKT}
		tokenType = "DPoP"
	}
	at, err := g.minter.Access(claims)
	if err != nil {
		return nil, &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
	}
	resp := &tokenResponse{
		AccessToken: at, TokenType: tokenType, ExpiresIn: int64(is.Lifetime.Seconds()),
		Scope: is.Scope, RefreshToken: is.Refresh, Patient: is.Grant.Patient, tokenContext: launchCtx,
	}
	granted, _ := scope.ParseList(is.Scope)
	if is.IDToken && granted.Has(scope.KindOpenID) {
		idc := token.IDClaims{
			Issuer: g.issuer, Subject: is.Grant.Subject, Audience: is.Client.ID,
			Expiry: token.NumericDate(now.Add(g.cfg.Tokens.IDTokenLifetime)), IssuedAt: token.NumericDate(now),
			Nonce: is.Grant.Nonce, FHIRUser: is.Grant.FHIRUser,
		}
		if is.Grant.AuthTime > 0 {
			idc.AuthTime = token.NumericDate(time.Unix(is.Grant.AuthTime, 0))
		}
		if granted.Has(scope.KindProfile) {
			idc.Name = is.Grant.Name
		}
		if resp.IDToken, err = g.minter.ID(idc); err != nil {
			return nil, &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
		}
	}
	g.metrics.TokensIssued.WithLabelValues(is.GrantType, string(is.Client.Type)).Inc()
	// LogAttrs with typed attributes writes the same record as InfoContext
	// with key-value pairs, without boxing each value.
	g.log.LogAttrs(r.Context(), slog.LevelInfo, "tokens issued", slog.String("request_id", RequestID(r.Context())),
		slog.String("event", "tokens_issued"), slog.String("client_id", is.Client.ID), slog.String("sub", is.Grant.Subject),
		slog.String("grant_type", is.GrantType), slog.Bool("refresh_token_issued", is.Refresh != ""),
		slog.Bool("dpop", is.JKT != ""))
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
