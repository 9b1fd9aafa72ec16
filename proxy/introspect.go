package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
)

// introspection is an RFC 7662 response with SMART's fields. An inactive
// token gets {"active": false} and nothing else.
type introspection struct {
	Active    bool                `json:"active"`
	Scope     string              `json:"scope,omitempty"`
	ClientID  string              `json:"client_id,omitempty"`
	Exp       int64               `json:"exp,omitempty"`
	Iat       int64               `json:"iat,omitempty"`
	Sub       string              `json:"sub,omitempty"`
	Iss       string              `json:"iss,omitempty"`
	Aud       string              `json:"aud,omitempty"`
	Patient   string              `json:"patient,omitempty"`
	Encounter string              `json:"encounter,omitempty"`
	FHIRUser  string              `json:"fhirUser,omitempty"`
	TokenType string              `json:"token_type,omitempty"`
	Cnf       *token.Confirmation `json:"cnf,omitempty"`
	// The EHR launch context of the token response, beside patient and encounter.
	FHIRContext       json.RawMessage `json:"fhirContext,omitempty"`
	Intent            string          `json:"intent,omitempty"`
	NeedPatientBanner *bool           `json:"need_patient_banner,omitempty"`
	SmartStyleURL     string          `json:"smart_style_url,omitempty"`
	Tenant            string          `json:"tenant,omitempty"`
}

var inactive = introspection{}

// handleIntrospect describes a token to a configured resource server (RFC 7662 with
// SMART's fields). Callers authenticate with HTTP Basic, so that no other
// caller can probe tokens.
func (g *Gateway) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	if !g.resourceServerAuthenticated(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="smartgate introspection", charset="UTF-8"`)
		g.writeOAuthError(w, r, &oauthError{Code: errInvalidClient, Description: "resource server authentication failed",
			Status: http.StatusUnauthorized})
		return
	}
	form, oerr := parsePostForm(r)
	if oerr != nil {
		g.writeOAuthError(w, r, oerr)
		return
	}
	raw := form.Get("token")
	if raw == "" {
		g.writeOAuthError(w, r, newError(errInvalidRequest, "token is required"))
		return
	}
	res, err := g.introspect(r, raw)
	if err != nil {
		g.writeOAuthError(w, r, g.storeFailure(err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// resourceServerAuthenticated checks HTTP Basic credentials against the
// configured resource servers.
func (g *Gateway) resourceServerAuthenticated(r *http.Request) bool {
	_, ok := credentialOK(r, g.cfg.ResourceServers)
	return ok
}

// introspect describes a token. Only a store failure is an error; any
// token that is not valid now is inactive.
func (g *Gateway) introspect(r *http.Request, raw string) (introspection, error) {
	if strings.HasPrefix(raw, token.RefreshPrefix) {
		gid, hash, ok := token.ParseHandle(token.RefreshPrefix, raw)
		if !ok {
			return inactive, nil
		}
		live, err := g.store.LookupRefresh(r.Context(), gid, hash)
		if errors.Is(err, store.ErrNotFound) {
			return inactive, nil
		}
		if err != nil {
			return inactive, err
		}
		return introspection{Active: true, Scope: live.Scope, ClientID: live.ClientID, Exp: live.Expires.Unix(),
			Sub: live.Subject, Iss: g.issuer, Aud: live.Audience, Patient: live.Patient, FHIRUser: live.FHIRUser,
			TokenType: "refresh_token"}, nil
	}
	claims, ok := g.verifyAccessToken(raw)
	if !ok {
		return inactive, nil
	}
	revoked, err := g.store.AccessTokenRevoked(r.Context(), token.GrantOfAccessTokenID(claims.ID), claims.ID)
	if err != nil {
		return inactive, err
	}
	if revoked {
		return inactive, nil
	}
	res := introspection{Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Exp: claims.Expiry.Time().Unix(),
		Sub: claims.Subject, Iss: claims.Issuer, Aud: claims.Audience, Patient: claims.Patient,
		Encounter: claims.Encounter, FHIRUser: claims.FHIRUser, TokenType: "Bearer", Cnf: claims.Confirmation,
		FHIRContext: claims.FHIRContext, Intent: claims.Intent, NeedPatientBanner: claims.NeedPatientBanner,
		SmartStyleURL: claims.SmartStyleURL, Tenant: claims.Tenant}
	if claims.IssuedAt != nil {
		res.Iat = claims.IssuedAt.Time().Unix()
	}
	if claims.Confirmation != nil {
		res.TokenType = "DPoP"
	}
	return res, nil
}

// verifyAccessToken checks an access token's signature against the
// gateway's published keys, its issuer and its expiry.
func (g *Gateway) verifyAccessToken(raw string) (*token.AccessClaims, bool) {
	if len(raw) > 16<<10 {
		return nil, false
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, false
	}
	if typ, _ := jws.Signatures[0].Header.ExtraHeaders["typ"].(string); typ != "at+jwt" {
		return nil, false
	}
	keys := g.jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		return nil, false
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		return nil, false
	}
	var c token.AccessClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Expiry == nil || c.Issuer != g.issuer {
		return nil, false
	}
	if !g.now().Before(c.Expiry.Time()) {
		return nil, false
	}
	return &c, true
}
