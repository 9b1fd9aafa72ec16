package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/store"
)

// OAuth 2.0 error codes (RFC 6749 §4.1.2.1 and §5.2, OpenID Connect Core §3.1.2.6).
const (
	errInvalidRequest          = "invalid_request"
	errInvalidClient           = "invalid_client"
	errInvalidGrant            = "invalid_grant"
	errInvalidScope            = "invalid_scope"
	errUnauthorizedClient      = "unauthorized_client"
	errUnsupportedGrantType    = "unsupported_grant_type"
	errUnsupportedResponseType = "unsupported_response_type"
	errAccessDenied            = "access_denied"
	errServerError             = "server_error"
	errTemporarilyUnavailable  = "temporarily_unavailable"
	errInteractionRequired     = "interaction_required"
)

// oauthError is a protocol error: the code and a description safe to send
// to the client, the HTTP status for the token endpoint, and the internal
// cause, which is logged and never sent.
type oauthError struct {
	Code        string
	Description string
	Status      int
	Cause       error
}

func (e *oauthError) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Description + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Description
}

func (e *oauthError) Unwrap() error { return e.Cause }

func newError(code, description string) *oauthError {
	return &oauthError{Code: code, Description: description, Status: http.StatusBadRequest}
}

// storeError maps a state store failure: Redis down is 503
// temporarily_unavailable, anything else a server error.
func storeError(err error) *oauthError {
	if errors.Is(err, store.ErrUnavailable) {
		return &oauthError{Code: errTemporarilyUnavailable, Description: "the service is temporarily unavailable; try again",
			Status: http.StatusServiceUnavailable, Cause: err}
	}
	return &oauthError{Code: errServerError, Description: "internal error", Status: http.StatusInternalServerError, Cause: err}
}

// writeJSON writes v with the headers every token-style response carries.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an RFC 6749 §5.2 error response and logs the cause.
func (g *Gateway) writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	g.logError(r, e)
	body := map[string]string{"error": e.Code}
	if e.Description != "" {
		body["error_description"] = e.Description
	}
	writeJSON(w, e.Status, body)
}

func (g *Gateway) logError(r *http.Request, e *oauthError) {
	attrs := []any{"request_id", RequestID(r.Context()), "route", routeName(r), "error", e.Code, "description", e.Description}
	if e.Cause != nil {
		attrs = append(attrs, "err", e.Cause.Error())
	}
	switch {
	case e.Status >= 500:
		g.log.ErrorContext(r.Context(), "request failed", attrs...)
	default:
		g.log.InfoContext(r.Context(), "request rejected", attrs...)
	}
}

// routeName is the route without the issuer path, for logs.
func routeName(r *http.Request) string {
	p := r.URL.Path
	if i := strings.LastIndexByte(p, '/'); i > 0 && !strings.Contains(p, ".well-known") {
		return p[i:]
	}
	return p
}

// redirectError sends an authorization error back to the app's verified
// redirect URI with error, state and iss (RFC 6749 §4.1.2.1, RFC 9207).
func (g *Gateway) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauthError) {
	g.logError(r, e)
	q := url.Values{"error": {e.Code}}
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	g.redirectToClient(w, r, redirectURI, state, q)
}

// redirectToClient redirects to a redirect URI that was checked against the
// registry, adding the parameters to any query the URI already has.
func (g *Gateway) redirectToClient(w http.ResponseWriter, r *http.Request, redirectURI, state string, params url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, g.clientRedirectURL(redirectURI, state, params), http.StatusFound)
}

func (g *Gateway) clientRedirectURL(redirectURI, state string, params url.Values) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI // unreachable: registered URIs are validated at startup
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", g.issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

// errorPage shows an error in the browser. It is used where redirecting
// to the app is not allowed (client or redirect URI not verified) or not
// useful. returnURL, when set, must be a verified redirect URL.
func (g *Gateway) errorPage(w http.ResponseWriter, r *http.Request, status int, messageID, returnURL string) {
	lang := consent.Language(r)
	body, err := g.pages.RenderError(lang, consent.ErrorView{
		MessageID: messageID, RequestID: RequestID(r.Context()), ReturnURL: returnURL, Page: r.URL,
	})
	pageHeaders(w.Header(), "")
	if err != nil {
		g.log.ErrorContext(r.Context(), "render error page", "request_id", RequestID(r.Context()), "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("Internal error. Request id: " + RequestID(r.Context()) + "\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// pageHeaders sets the headers of every HTML page: no caching, no framing,
// and a Content-Security-Policy that allows only the gateway's own styles,
// and form posts to the gateway and to formTarget (the app's origin, which
// the consent form redirects to).
func pageHeaders(h http.Header, formTarget string) {
	formAction := "'self'"
	if formTarget != "" {
		formAction += " " + formTarget
	}
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action "+
		formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}
