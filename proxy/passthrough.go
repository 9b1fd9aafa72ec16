package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/smartgate/smartgate/internal/token"
)

// headerGatewayError marks a response that smartgate made in place of the
// one it forwards, such as a 502 when the backend cannot be reached. Its
// value is a short reason code.
const headerGatewayError = "X-Smartgate-Error"

// forwardDialTimeout bounds the TCP connection setup to the identity
// provider and to fronted FHIR servers.
const forwardDialTimeout = 5 * time.Second

// newForwardTransport returns a copy of http.DefaultTransport with a
// bounded dial and a bounded wait for the backend's response headers.
func newForwardTransport(responseHeaderTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: forwardDialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = responseHeaderTimeout
	return t
}

// spoofableForwardingHeaders are request headers that describe the
// original request to a backend. The reverse proxy removes
// X-Forwarded-For, -Host and -Proto before Rewrite. These are removed as
// well, so that a client cannot make the backend build URLs for another
// host, port or path prefix.
var spoofableForwardingHeaders = []string{"Forwarded", "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Server"}

// passThrough forwards every request that is not smartgate's own to the
// identity provider, for a gateway that has taken over the identity
// provider's host name. Requests on the identity provider's authorization
// and token endpoints from clients of smartgate's registry are handled by
// smartgate instead.
type passThrough struct {
	g       *Gateway
	forward http.Handler

	authorizePath string // path of the identity provider's authorization endpoint
	tokenPath     string // path of the identity provider's token endpoint

	// smartToken is smartgate's token endpoint with its CORS rules.
	smartToken http.Handler
	// tokenPreflight responds to a CORS preflight on the token path from an
	// origin of the registry's clients and forwards any other.
	tokenPreflight http.Handler
}

// newPassThrough forwards requests that are not smartgate's own to the
// identity provider at upstream.pass_through.target.
func (g *Gateway) newPassThrough() http.Handler {
	cfg := g.cfg.Upstream.PassThrough
	target, err := url.Parse(cfg.Target)
	if err != nil || target.Scheme == "" || target.Host == "" {
		// config.Validate rejects such a target, so only a configuration
		// that skipped validation gets here.
		g.log.Error("pass-through target is not an absolute URL; every forwarded request fails with 502",
			"target", cfg.Target)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.passThroughFailed(w, r, errors.New("invalid upstream.pass_through.target"))
		})
	}
	scheme := publicScheme(g.issuer)
	sessionCookie := g.cookieName()
	forward := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// The identity provider builds its redirects, form actions and
			// cookies for the host that the browser used.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			// The scheme comes from server.public_url, because TLS often
			// ends at a load balancer in front of the gateway, where
			// pr.In.TLS is nil even for an https request.
			pr.Out.Header.Set("X-Forwarded-Proto", scheme)
			for _, h := range spoofableForwardingHeaders {
				pr.Out.Header.Del(h)
			}
			// The browser sends smartgate's session cookie on every path of
			// the shared host name, and the identity provider has no use
			// for it.
			removeCookie(pr.Out.Header, sessionCookie)
		},
		Transport:    newForwardTransport(cfg.Timeout),
		ErrorHandler: g.passThroughFailed,
		ErrorLog:     slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	authorizeURL, tokenURL := g.upstream.Endpoints()
	return &passThrough{
		g:              g,
		forward:        forward,
		authorizePath:  endpointPath(authorizeURL),
		tokenPath:      endpointPath(tokenURL),
		smartToken:     g.tokenCORS(http.HandlerFunc(g.handleToken)),
		tokenPreflight: g.tokenCORS(forward),
	}
}

// endpointPath returns the path of an endpoint URL without a trailing
// slash, or "" when the URL cannot be parsed.
func endpointPath(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}

// ServeHTTP handles a request on the identity provider's authorization or
// token endpoint itself when the request comes from a client of
// smartgate's registry, and forwards every other request unchanged.
//
// A SMART app registered with smartgate may still use the identity
// provider's endpoint URLs, for example because it was set up before
// smartgate took over the host name. smartgate is the authorization server
// for such an app. Forwarding its request would skip smartgate's consent
// page and scope checks, and the identity provider would issue tokens that
// the FHIR servers behind smartgate do not accept. So the app gets the
// same flow as on smartgate's own /authorize and /token.
func (p *passThrough) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "":
		// An unparsable discovery URL leaves the endpoint path empty, and
		// the root must not match it.
	case path == p.authorizePath && (r.Method == http.MethodGet || r.Method == http.MethodPost):
		p.serveAuthorize(w, r)
		return
	case path == p.tokenPath && r.Method == http.MethodPost:
		p.serveToken(w, r)
		return
	case path == p.tokenPath && r.Method == http.MethodOptions:
		p.tokenPreflight.ServeHTTP(w, r)
		return
	}
	p.forward.ServeHTTP(w, r)
}

// serveAuthorize takes the client id from the query of a GET and from the
// form body of a POST, the same parameters that handleAuthorize reads.
func (p *passThrough) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	clientID := r.URL.Query().Get("client_id")
	if r.Method == http.MethodPost {
		form, err := peekForm(r)
		if err != nil {
			p.g.log.InfoContext(r.Context(), "authorization request body could not be read", "request_id",
				RequestID(r.Context()), "err", err)
			p.g.errorPage(w, r, formErrorStatus(err), "error.bad_request", "")
			return
		}
		clientID = form.Get("client_id")
	}
	if !p.isSMARTClient(clientID) {
		p.forward.ServeHTTP(w, r)
		return
	}
	p.g.log.DebugContext(r.Context(), "authorization request on the identity provider's path handled by smartgate",
		"request_id", RequestID(r.Context()), "client_id", clientID)
	p.g.handleAuthorize(w, r)
}

// serveToken identifies the client of a token request without consuming
// the body, which is forwarded unchanged for any other client.
func (p *passThrough) serveToken(w http.ResponseWriter, r *http.Request) {
	form, err := peekForm(r)
	if err != nil {
		e := newError(errInvalidRequest, "the request body could not be read")
		e.Status = formErrorStatus(err)
		e.Cause = err
		p.g.writeOAuthError(w, r, e)
		return
	}
	if !p.isSMARTTokenRequest(r, form) {
		p.forward.ServeHTTP(w, r)
		return
	}
	p.g.log.DebugContext(r.Context(), "token request on the identity provider's path handled by smartgate",
		"request_id", RequestID(r.Context()))
	p.smartToken.ServeHTTP(w, r)
}

// isSMARTTokenRequest reports whether a token request belongs to
// smartgate: its client, named by the Basic credentials, the client_id
// parameter or the iss claim of a client assertion, is in the registry, or
// it refreshes a smartgate refresh token.
func (p *passThrough) isSMARTTokenRequest(r *http.Request, form url.Values) bool {
	if id, _, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: the client id is form-encoded before Base64.
		if unescaped, err := url.QueryUnescape(id); err == nil {
			id = unescaped
		}
		return p.isSMARTClient(id)
	}
	if id := form.Get("client_id"); id != "" {
		return p.isSMARTClient(id)
	}
	if assertion := form.Get("client_assertion"); assertion != "" {
		return p.isSMARTClient(unverifiedIssuer(assertion))
	}
	// A public client may refresh without client_id, and only smartgate
	// issues refresh tokens with this prefix.
	return form.Get("grant_type") == "refresh_token" && strings.HasPrefix(form.Get("refresh_token"), token.RefreshPrefix)
}

// isSMARTClient reports whether smartgate's registry has the client. The
// client id under which smartgate itself logs in at the identity provider
// always goes to the identity provider, because handling it here would
// send smartgate's own login back to smartgate in a loop.
func (p *passThrough) isSMARTClient(id string) bool {
	return id != "" && id != p.g.cfg.Upstream.ClientID && p.g.clients.Lookup(id) != nil
}

// peekForm parses a form-encoded request body and puts the bytes back, so
// that the request can still be forwarded or handled. A body of another
// content type gives an empty form. A body over maxFormBytes is an error,
// the same limit that the gateway's middleware sets for POST bodies.
func peekForm(r *http.Request) (url.Values, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" || r.Body == nil || r.Body == http.NoBody {
		return url.Values{}, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err == nil && len(body) > maxFormBytes {
		err = &http.MaxBytesError{Limit: maxFormBytes}
	}
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// An unparsable body names no client, so it is forwarded as it is.
		return url.Values{}, nil
	}
	return form, nil
}

// removeCookie deletes one cookie from the Cookie headers of a request and
// keeps the other cookies as they were sent.
func removeCookie(h http.Header, name string) {
	lines := h.Values("Cookie")
	if len(lines) == 0 {
		return
	}
	var remaining []string
	for _, line := range lines {
		for _, pair := range strings.Split(line, ";") {
			pair = strings.TrimSpace(pair)
			cookieName, _, _ := strings.Cut(pair, "=")
			if pair != "" && cookieName != name {
				remaining = append(remaining, pair)
			}
		}
	}
	h.Del("Cookie")
	if len(remaining) > 0 {
		h.Set("Cookie", strings.Join(remaining, "; "))
	}
}

// passThroughFailed responds to a request that could not be forwarded to
// the identity provider with smartgate's error page.
func (g *Gateway) passThroughFailed(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
		g.log.InfoContext(ctx, "request body too large to forward to the identity provider", "request_id",
			RequestID(ctx), "path", r.URL.Path, "max_bytes", maxFormBytes)
		g.errorPage(w, r, http.StatusRequestEntityTooLarge, "error.bad_request", "")
		return
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		g.log.InfoContext(ctx, "client closed the request before the identity provider responded",
			"request_id", RequestID(ctx), "path", r.URL.Path)
	} else {
		g.metrics.UpstreamErrors.WithLabelValues("pass_through").Inc()
		// The query is not logged because it may carry codes or tokens.
		g.log.ErrorContext(ctx, "forwarding to the identity provider failed", "request_id", RequestID(ctx),
			"method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set(headerGatewayError, "upstream_unavailable")
	g.errorPage(w, r, http.StatusBadGateway, "error.unavailable", "")
}
