package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/dpop"
	"github.com/smartgate/smartgate/internal/token"
)

// Request headers that carry the verified claims of the access token to
// the FHIR server. Inbound headers with the X-Smartgate- prefix are
// removed first, so the FHIR server can trust every one it receives.
const (
	headerClaimPrefix    = "X-Smartgate-"
	headerClaimPatient   = "X-Smartgate-Patient"
	headerClaimEncounter = "X-Smartgate-Encounter"
	headerClaimFHIRUser  = "X-Smartgate-Fhir-User"
	headerClaimSubject   = "X-Smartgate-Subject"
	headerClaimScope     = "X-Smartgate-Scope"
	headerClaimClientID  = "X-Smartgate-Client-Id"
)

// Bearer token error codes of RFC 6750 §3.1.
const (
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

// resourceRealm is the realm of the gateway's WWW-Authenticate challenges.
const resourceRealm = "smartgate"

// fhirProxy forwards requests under one fronted FHIR base URL to the FHIR
// server behind it, after checking the access token.
type fhirProxy struct {
	g           *Gateway
	audience    string   // the public base URL without a trailing slash: the aud a token must carry
	basePath    string   // path of the public base URL on the gateway's origin
	escapedBase string   // basePath as it appears in an escaped request path
	target      *url.URL // the FHIR server's own base URL
	targetBase  string   // target without a trailing slash, for rewriting Location headers
	scheme      string   // scheme of the public base URL, for X-Forwarded-Proto
	forward     http.Handler
}

type fhirClaimsKey struct{}

// newFHIRProxy forwards FHIR requests under a fronted FHIR base to the
// FHIR server.
func (g *Gateway) newFHIRProxy(srv config.FHIRServer) http.Handler {
	basePath, _ := g.localPath(srv.BaseURL)
	target, err := url.Parse(srv.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		// config.Validate rejects such a target, so only a configuration
		// that skipped validation gets here.
		g.log.Error("FHIR server target is not an absolute URL; every request to its base fails with 502",
			"fhir_base", srv.BaseURL, "target", srv.Target)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.fhirServerFailed(w, r, errors.New("invalid fhir.servers target"))
		})
	}
	p := &fhirProxy{
		g:           g,
		audience:    strings.TrimSuffix(srv.BaseURL, "/"),
		basePath:    basePath,
		escapedBase: (&url.URL{Path: basePath}).EscapedPath(),
		target:      target,
		targetBase:  strings.TrimSuffix(target.String(), "/"),
		scheme:      publicScheme(srv.BaseURL),
	}
	p.forward = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		Transport:      newForwardTransport(srv.Timeout),
		ErrorHandler:   g.fhirServerFailed,
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return p
}

// ServeHTTP checks the access token, then the request against the token,
// and forwards the request.
//
// NOTE: a CORS preflight carries no access token and gets 401, so browser
// apps on other origins cannot call a fronted FHIR base yet.
func (p *fhirProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cred, claims, rerr := p.authenticate(r)
	if rerr != nil {
		p.reject(w, r, rerr)
		return
	}
	if err := authorizeFHIRRequest(claims, r); err != nil {
		p.reject(w, r, &resourceError{Status: http.StatusForbidden, Code: errInsufficientScope,
			Description: "the access token does not allow this request", Scheme: cred.Scheme, Cause: err,
			ClientID: claims.ClientID})
		return
	}
	p.forward.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), fhirClaimsKey{}, claims)))
}

// authorizeFHIRRequest decides whether the scopes of the access token allow
// the FHIR interaction of r. A non-nil error rejects the request with 403
// insufficient_scope.
//
// NOTE: scopes are not enforced here yet. Any valid token for the base may
// make any request, so the FHIR server must check X-Smartgate-Scope.
func authorizeFHIRRequest(claims *token.AccessClaims, r *http.Request) error {
	return nil
}

// resourceError is a rejected FHIR request: the HTTP status, the error
// code, and the internal cause, which is logged and never sent. The code
// is an RFC 6750 or RFC 9449 code for the challenge of a 401 or 403 ("" when
// the request carried no credentials), and the OAuth code of a store
// failure otherwise.
type resourceError struct {
	Status      int
	Code        string
	Description string
	Scheme      string // the scheme the client used, "Bearer" or "DPoP", or "" for none
	Cause       error
	ClientID    string // the token's client, when the token was valid
}

// credentials are the access token of a request and the authorization
// scheme that it came with.
type credentials struct {
	Scheme string // "Bearer" or "DPoP"
	Token  string
}

// parseAuthorization reads the Authorization header. A request without one
// or with another scheme has no credentials (RFC 6750 §3.1).
func parseAuthorization(r *http.Request) (*credentials, *resourceError) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return nil, &resourceError{Status: http.StatusUnauthorized, Description: "an access token is required"}
	case 1:
	default:
		return nil, &resourceError{Status: http.StatusBadRequest, Code: errInvalidRequest,
			Description: "send exactly one Authorization header"}
	}
	scheme, raw, _ := strings.Cut(values[0], " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		scheme = "Bearer"
	case strings.EqualFold(scheme, "DPoP"):
		scheme = "DPoP"
	default:
		return nil, &resourceError{Status: http.StatusUnauthorized, Description: "an access token is required"}
	}
	raw = strings.TrimSpace(raw)
	if raw == "" || strings.ContainsAny(raw, " \t") {
		return nil, &resourceError{Status: http.StatusBadRequest, Code: errInvalidRequest, Scheme: scheme,
			Description: "the Authorization header must be " + scheme + " followed by one token"}
	}
	return &credentials{Scheme: scheme, Token: raw}, nil
}

// authenticate returns the request's credentials and the verified claims
// of its access token: signed by the gateway, not expired, issued for this
// FHIR base, bound to the request's DPoP key when the token is
// sender-constrained, and not revoked.
func (p *fhirProxy) authenticate(r *http.Request) (*credentials, *token.AccessClaims, *resourceError) {
	cred, rerr := parseAuthorization(r)
	if rerr != nil {
		return nil, nil, rerr
	}
	invalid := func(description string, cause error) *resourceError {
		return &resourceError{Status: http.StatusUnauthorized, Code: errInvalidToken, Scheme: cred.Scheme,
			Description: description, Cause: cause}
	}
	claims, ok := p.g.verifyAccessToken(cred.Token)
	if !ok {
		return nil, nil, invalid("the access token is invalid or expired", nil)
	}
	if strings.TrimSuffix(claims.Audience, "/") != p.audience {
		return nil, nil, invalid("the access token was issued for another FHIR server", nil)
	}
	if rerr := p.checkBinding(r, cred, claims); rerr != nil {
		return nil, nil, rerr
	}
	revoked, err := p.g.store.AccessTokenRevoked(r.Context(), token.GrantOfAccessTokenID(claims.ID), claims.ID)
	if err != nil {
		oerr := p.g.storeFailure(err)
		return nil, nil, &resourceError{Status: oerr.Status, Code: oerr.Code, Description: oerr.Description, Cause: err}
	}
	if revoked {
		return nil, nil, invalid("the access token was revoked", nil)
	}
	return cred, claims, nil
}

// checkBinding checks that a DPoP-bound token comes with the DPoP scheme
// and a fresh proof of its key for this request (RFC 9449 §7), and that a
// token without a binding comes with the Bearer scheme.
func (p *fhirProxy) checkBinding(r *http.Request, cred *credentials, claims *token.AccessClaims) *resourceError {
	bound := claims.Confirmation != nil && claims.Confirmation.JKT != ""
	switch {
	case !bound && cred.Scheme == "Bearer":
		return nil
	case !bound:
		return &resourceError{Status: http.StatusUnauthorized, Code: errInvalidToken, Scheme: cred.Scheme,
			Description: "the access token is not DPoP-bound; send it with the Bearer scheme"}
	case cred.Scheme != "DPoP":
		return &resourceError{Status: http.StatusUnauthorized, Code: errInvalidToken, Scheme: cred.Scheme,
			Description: "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof"}
	}

	badProof := func(description string, cause error) *resourceError {
		return &resourceError{Status: http.StatusUnauthorized, Code: errInvalidDPoPProof, Scheme: "DPoP",
			Description: description, Cause: cause}
	}
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return badProof("send exactly one DPoP header", nil)
	}
	proof, err := dpop.Verify(proofs[0], r.Method, p.publicURL(r), p.g.now(), dpop.Options{AccessToken: cred.Token})
	if err != nil {
		return badProof("the DPoP proof is invalid", err)
	}
	if proof.JKT != claims.Confirmation.JKT {
		return badProof("the DPoP proof is signed with a key the access token is not bound to", nil)
	}

	// A proof may be used once (RFC 9449 §11.1).
	fresh, err := p.g.store.ClaimJTI(r.Context(), "dpop:"+proof.JKT, proof.ID, dpop.DefaultMaxAge+2*dpop.DefaultSkew)
	if err != nil {
		oerr := p.g.storeFailure(err)
		return &resourceError{Status: oerr.Status, Code: oerr.Code, Description: oerr.Description, Cause: err}
	}
	if !fresh {
		return badProof("the DPoP proof was already used", nil)
	}
	return nil
}

// publicURL returns the URL that the client called, built from the public
// base URL, for the htu check of a DPoP proof.
func (p *fhirProxy) publicURL(r *http.Request) string {
	return p.audience + strings.TrimPrefix(r.URL.EscapedPath(), p.escapedBase)
}

// rewrite maps the path under the public base onto the target base, keeps
// the query, and replaces the client's credentials with the verified
// claims.
//
// The Authorization and DPoP headers are removed: the FHIR server trusts
// the gateway and gets the verified claims in X-Smartgate-* headers, so
// the access token, a credential for the gateway's audience, does not
// leave the gateway. Cookies are removed because on the gateway's origin
// they belong to smartgate and to the identity provider.
func (p *fhirProxy) rewrite(pr *httputil.ProxyRequest) {
	out := pr.Out.URL
	out.Scheme = p.target.Scheme
	out.Host = p.target.Host
	targetPath := strings.TrimSuffix(p.target.Path, "/")
	out.Path = targetPath + strings.TrimPrefix(pr.In.URL.Path, p.basePath)
	out.RawPath = ""
	if pr.In.URL.RawPath != "" {
		out.RawPath = strings.TrimSuffix(p.target.EscapedPath(), "/") +
			strings.TrimPrefix(pr.In.URL.EscapedPath(), p.escapedBase)
	}
	switch {
	case p.target.RawQuery == "":
	case out.RawQuery == "":
		out.RawQuery = p.target.RawQuery
	default:
		out.RawQuery = p.target.RawQuery + "&" + out.RawQuery
	}
	pr.Out.Host = "" // the FHIR server's own host name

	pr.SetXForwarded()
	h := pr.Out.Header
	h.Set("X-Forwarded-Proto", p.scheme)
	for _, name := range spoofableForwardingHeaders {
		h.Del(name)
	}
	// The FHIR server can build public URLs from X-Forwarded-Host, -Proto
	// and -Prefix. HAPI FHIR's ApacheProxyAddressStrategy reads all three
	// (checked in its 2022 source).
	h.Set("X-Forwarded-Prefix", p.basePath)
	h.Set("X-Request-Id", RequestID(pr.In.Context()))
	h.Del("Authorization")
	h.Del("DPoP")
	h.Del("Cookie")
	for name := range h {
		if len(name) >= len(headerClaimPrefix) && strings.EqualFold(name[:len(headerClaimPrefix)], headerClaimPrefix) {
			delete(h, name)
		}
	}
	claims, _ := pr.In.Context().Value(fhirClaimsKey{}).(*token.AccessClaims)
	if claims == nil {
		return // unreachable: ServeHTTP forwards only with verified claims
	}
	setClaimHeader(h, headerClaimPatient, claims.Patient)
	setClaimHeader(h, headerClaimEncounter, claims.Encounter)
	setClaimHeader(h, headerClaimFHIRUser, claims.FHIRUser)
	setClaimHeader(h, headerClaimSubject, claims.Subject)
	setClaimHeader(h, headerClaimScope, claims.Scope)
	setClaimHeader(h, headerClaimClientID, claims.ClientID)
}

func setClaimHeader(h http.Header, name, value string) {
	if value != "" {
		h.Set(name, value)
	}
}

// publicScheme returns the scheme of the public base URL.
func publicScheme(base string) string {
	if u, err := url.Parse(base); err == nil && u.Scheme != "" {
		return strings.ToLower(u.Scheme)
	}
	return "http"
}

// modifyResponse maps the FHIR server's own base URL in Location and
// Content-Location onto the public base, and drops cookies, which the FHIR
// server may not set on the gateway's origin.
//
// NOTE: URLs inside response bodies, such as Bundle.link, are not
// rewritten. The FHIR server must build them from the X-Forwarded-*
// headers.
func (p *fhirProxy) modifyResponse(resp *http.Response) error {
	for _, name := range []string{"Location", "Content-Location"} {
		if v := resp.Header.Get(name); v != "" {
			resp.Header.Set(name, p.publicLocation(v))
		}
	}
	resp.Header.Del("Set-Cookie")
	return nil
}

// publicLocation maps a URL under the target base onto the public base and
// returns any other URL unchanged.
func (p *fhirProxy) publicLocation(v string) string {
	rest, ok := strings.CutPrefix(v, p.targetBase)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "?")) {
		return v
	}
	return p.audience + rest
}

// reject writes a FHIR request rejection: the WWW-Authenticate challenge
// for 401 and 403 (RFC 6750 §3, RFC 9449 §7.1) and an OperationOutcome.
func (p *fhirProxy) reject(w http.ResponseWriter, r *http.Request, e *resourceError) {
	attrs := []any{"request_id", RequestID(r.Context()), "fhir_base", p.audience, "status", e.Status,
		"error", e.Code, "description", e.Description}
	if e.ClientID != "" {
		attrs = append(attrs, "client_id", e.ClientID)
	}
	if e.Cause != nil {
		attrs = append(attrs, "err", e.Cause.Error())
	}
	switch {
	case e.Status >= 500:
		p.g.log.ErrorContext(r.Context(), "FHIR request failed", attrs...)
	case e.Code == "":
		// Requests without credentials are routine, such as an app probing
		// the base, so they are logged at debug level only.
		p.g.log.DebugContext(r.Context(), "FHIR request rejected", attrs...)
	default:
		p.g.log.InfoContext(r.Context(), "FHIR request rejected", attrs...)
	}

	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		for _, c := range challenges(e) {
			w.Header().Add("WWW-Authenticate", c)
		}
	}
	reason := e.Code
	if reason == "" {
		reason = "missing_token"
	}
	issue := "security"
	switch {
	case e.Status == http.StatusUnauthorized:
		issue = "login"
	case e.Status == http.StatusForbidden:
		issue = "forbidden"
	case e.Status == http.StatusBadRequest:
		issue = "invalid"
	case e.Status == http.StatusServiceUnavailable:
		issue = "transient"
	case e.Status >= 500:
		issue = "exception"
	}
	writeOperationOutcome(w, e.Status, reason, issue, e.Description)
}

// challenges returns the WWW-Authenticate values for a rejection. The
// error goes into the challenge of the scheme the client used. A Bearer
// challenge is followed by a DPoP one, which announces DPoP support and
// the algorithms that proofs may use.
func challenges(e *resourceError) []string {
	params := func(withError bool) string {
		s := `realm="` + resourceRealm + `"`
		if withError && e.Code != "" {
			s += `, error="` + e.Code + `", error_description="` + e.Description + `"`
		}
		return s
	}
	algs := make([]string, 0, len(dpop.Algorithms()))
	for _, a := range dpop.Algorithms() {
		algs = append(algs, string(a))
	}
	dpopParams := `, algs="` + strings.Join(algs, " ") + `"`
	if e.Scheme == "DPoP" {
		return []string{"DPoP " + params(true) + dpopParams}
	}
	return []string{"Bearer " + params(true), "DPoP " + params(false) + dpopParams}
}

// operationOutcome is a FHIR OperationOutcome with one issue.
type operationOutcome struct {
	ResourceType string                  `json:"resourceType"`
	Issue        []operationOutcomeIssue `json:"issue"`
}

type operationOutcomeIssue struct {
	Severity    string `json:"severity"`
	Code        string `json:"code"` // FHIR IssueType
	Diagnostics string `json:"diagnostics,omitempty"`
}

// writeOperationOutcome writes an error that the gateway made, marked with
// headerGatewayError. issueType is a FHIR IssueType code.
func writeOperationOutcome(w http.ResponseWriter, status int, reason, issueType, diagnostics string) {
	h := w.Header()
	h.Set("Content-Type", "application/fhir+json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set(headerGatewayError, reason)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(operationOutcome{ResourceType: "OperationOutcome", Issue: []operationOutcomeIssue{{
		Severity: "error", Code: issueType, Diagnostics: diagnostics,
	}}})
}

// fhirServerFailed responds to a request that could not be forwarded to
// the FHIR server with 502 and an OperationOutcome.
func (g *Gateway) fhirServerFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	// The route caps request bodies at maxFHIRBytes, and the transport
	// reports a larger body as the failure to forward it.
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		g.log.InfoContext(ctx, "FHIR request body too large", "request_id", RequestID(ctx), "route", r.Pattern,
			"max_bytes", maxFHIRBytes)
		writeOperationOutcome(w, http.StatusRequestEntityTooLarge, "body_too_large", "too-long",
			"the request body is larger than the gateway accepts")
		return
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		g.log.InfoContext(ctx, "client closed the request before the FHIR server responded",
			"request_id", RequestID(ctx), "route", r.Pattern)
	} else {
		// The path and query are not logged because they may contain
		// patient ids and search terms.
		g.log.ErrorContext(ctx, "forwarding to the FHIR server failed", "request_id", RequestID(ctx),
			"method", r.Method, "route", r.Pattern, "err", err)
	}
	writeOperationOutcome(w, http.StatusBadGateway, "fhir_server_unavailable", "transient",
		"the FHIR server could not be reached; try again later")
}
