package proxy

import (
	"errors"
	"net/http"
	"strings"

	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
)

// handleRevoke ends a token (RFC 7009). A refresh token ends its whole
// family and the access tokens issued from it; an access token goes on
// the deny list until it expires. The client authenticates as at /token
// and may revoke only its own tokens. An unknown or foreign token gets
// 200 all the same, so the endpoint reveals nothing.
func (g *Gateway) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": errInvalidRequest, "error_description": "the revocation endpoint takes POST only"})
		return
	}
	form, oerr := parsePostForm(r)
	if oerr != nil {
		g.writeOAuthError(w, r, oerr)
		return
	}
	client, oerr := g.authenticateClient(r, form)
	if oerr == nil && client == nil {
		oerr = &oauthError{Code: errInvalidClient, Description: "client authentication is required", Status: http.StatusUnauthorized}
	}
	if oerr != nil {
		if oerr.Code == errInvalidClient && r.Header.Get("Authorization") != "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="smartgate", charset="UTF-8"`)
		}
		g.writeOAuthError(w, r, oerr)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		g.writeOAuthError(w, r, newError(errInvalidRequest, "token is required"))
		return
	}
	if err := g.revoke(r, client.ID, raw); err != nil {
		g.writeOAuthError(w, r, g.storeFailure(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) revoke(r *http.Request, clientID, raw string) error {
	if strings.HasPrefix(raw, token.RefreshPrefix) {
		gid, hash, ok := token.ParseHandle(token.RefreshPrefix, raw)
		if !ok {
			return nil
		}
		live, err := g.store.LookupRefresh(r.Context(), gid, hash)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if live.ClientID != clientID {
			return nil
		}
		if err := g.store.RevokeGrant(r.Context(), gid, g.cfg.Tokens.AccessTokenLifetime); err != nil {
			return err
		}
		g.log.InfoContext(r.Context(), "refresh token revoked", "request_id", RequestID(r.Context()),
			"event", "token_revoked", "client_id", clientID, "sub", live.Subject)
		return nil
	}
	claims, ok := g.verifyAccessToken(raw)
	if !ok || claims.ClientID != clientID {
		return nil
	}
	if err := g.store.RevokeAccessToken(r.Context(), claims.ID, claims.Expiry.Time()); err != nil {
		return err
	}
	g.log.InfoContext(r.Context(), "access token revoked", "request_id", RequestID(r.Context()),
		"event", "token_revoked", "client_id", clientID, "sub", claims.Subject)
	return nil
}
