// Package proxy is smartgate's HTTP edge: the SMART endpoints (discovery,
// /authorize, the upstream /callback, /consent, /token, /jwks), their
// middleware, and the wiring of the packages behind them.
//
// Handlers parse a request into a typed struct, call a plain function for
// the decision, and write the response. What a scope means and how the
// consent page looks belong to package consent; state lives in package
// store; the upstream login in package upstream.
package proxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/logging"
	"github.com/smartgate/smartgate/internal/metrics"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
)

// Route paths, relative to the path of the issuer URL.
const (
	PathSMARTConfig = "/.well-known/smart-configuration"
	PathOIDCConfig  = "/.well-known/openid-configuration"
	PathJWKS        = "/jwks"
	PathAuthorize   = "/authorize"
	PathCallback    = "/callback"
	PathConsent     = "/consent"
	PathToken       = "/token"
	PathIntrospect  = "/introspect"
	PathLaunch      = "/launch"
	PathRevoke      = "/revoke"
	PathApps        = "/apps"
	PathAppsRevoke  = "/apps/revoke"
	PathAppsSignOut = "/apps/sign-out"
	PathStatic      = "/static/"
)

// Limits on what a request may carry.
const (
	maxFormBytes  = 64 << 10 // request bodies of smartgate's own routes
	maxFHIRBytes  = 16 << 20 // request bodies forwarded to a fronted FHIR server
	maxQueryBytes = 32 << 10 // GET query strings
	maxStateBytes = 2048
)

// Options are the collaborators of a Gateway.
type Options struct {
	Config   *config.Config
	Store    *store.Store
	Sessions *session.RedisStore
	Upstream *upstream.Provider
	Clients  *clients.Registry
	Minter   *token.Minter
	JWKS     jose.JSONWebKeySet
	Pages    *consent.Pages
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	// Sealer encrypts the identity provider's refresh tokens kept for
	// online_access.
	Sealer *token.Sealer
	// Assertions verifies private_key_jwt client assertions.
	Assertions *clientauth.Verifier
}

// Gateway serves the SMART endpoints.
type Gateway struct {
	cfg        *config.Config
	store      *store.Store
	sessions   *session.RedisStore
	upstream   *upstream.Provider
	clients    *clients.Registry
	minter     *token.Minter
	jwks       jose.JSONWebKeySet
	pages      *consent.Pages
	log        *slog.Logger
	metrics    *metrics.Metrics
	sealer     *token.Sealer
	assertions *clientauth.Verifier
	now        func() time.Time
	issuer     string
	base       string // path of the issuer URL, "" at the root
	secure     bool
	fhirBases  map[string]bool

	// Keys of launch JWTs fetched from ehr.launch_jwks_uri.
	launchMu         sync.Mutex
	launchSet        *jose.JSONWebKeySet
	launchSetExpires time.Time
}

// New checks the options and returns a gateway.
func New(o Options) (*Gateway, error) {
	u, err := url.Parse(o.Config.Server.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("public URL: %w", err)
	}
	g := &Gateway{
		cfg: o.Config, store: o.Store, sessions: o.Sessions, upstream: o.Upstream,
		clients: o.Clients, minter: o.Minter, jwks: o.JWKS, pages: o.Pages, log: o.Logger,
		metrics: o.Metrics, sealer: o.Sealer, assertions: o.Assertions,
		now:       time.Now,
		issuer:    o.Config.Server.PublicURL,
		base:      strings.TrimSuffix(u.Path, "/"),
		secure:    u.Scheme == "https",
		fhirBases: map[string]bool{},
	}
	for _, b := range o.Config.FHIR.BaseURLs {
		g.fhirBases[b] = true
	}
	return g, nil
}

// URL returns the absolute URL of a route.
func (g *Gateway) URL(path string) string { return g.issuer + path }

// Handler returns the gateway's routes behind its middleware.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	cors := func(h http.HandlerFunc) http.Handler { return anyOrigin(h) }
	mux.Handle("GET "+g.base+PathSMARTConfig, cors(g.handleSMARTConfig))
	mux.Handle("GET "+g.base+PathOIDCConfig, cors(g.handleOIDCConfig))
	mux.Handle("GET "+g.base+PathJWKS, cors(g.handleJWKS))
	for b := range g.fhirBases {
		if p, ok := g.localPath(b); ok && p != g.base {
			mux.Handle("GET "+p+PathSMARTConfig, cors(g.handleSMARTConfig))
		}
	}
	// Every route of smartgate's own that reads a body gets the form
	// limit. Fronted FHIR servers get a larger one, and pass-through leaves
	// bodies to the identity provider.
	own := func(h http.Handler) http.Handler { return limitBody(h, maxFormBytes) }
	csrf := func(h http.HandlerFunc) http.Handler { return own(http.NewCrossOriginProtection().Handler(h)) }
	mux.HandleFunc("GET "+g.base+PathAuthorize, g.handleAuthorize)
	mux.Handle("POST "+g.base+PathAuthorize, own(http.HandlerFunc(g.handleAuthorize)))
	mux.HandleFunc("GET "+g.base+PathCallback, g.handleCallback)
	mux.HandleFunc("GET "+g.base+PathConsent, g.handleConsentPage)
	mux.Handle("POST "+g.base+PathConsent, csrf(g.handleConsentDecision))
	mux.Handle(g.base+PathToken, own(g.tokenCORS(http.HandlerFunc(g.handleToken))))
	mux.Handle(g.base+PathRevoke, own(g.tokenCORS(http.HandlerFunc(g.handleRevoke))))
	mux.Handle("POST "+g.base+PathIntrospect, own(http.HandlerFunc(g.handleIntrospect)))
	mux.Handle("POST "+g.base+PathLaunch, own(http.HandlerFunc(g.handleLaunch)))
	mux.HandleFunc("GET "+g.base+PathPicker, g.handlePicker)
	mux.Handle("POST "+g.base+PathPicker, csrf(g.handlePickerChoice))
	mux.HandleFunc("GET "+g.base+PathApps, g.handleApps)
	mux.Handle("POST "+g.base+PathAppsRevoke, csrf(g.handleAppsRevoke))
	mux.Handle("POST "+g.base+PathAppsSignOut, csrf(g.handleAppsSignOut))
	mux.Handle("GET "+g.base+PathStatic, g.pages.Static())
	for _, srv := range g.cfg.FHIR.Servers {
		if p, ok := g.localPath(srv.BaseURL); ok {
			h := limitBody(g.newFHIRProxy(srv), maxFHIRBytes)
			mux.Handle(p+"/", h)
			mux.Handle(p, h) // POST <base> (a transaction) without a redirect to <base>/
		}
	}
	if g.cfg.Upstream.PassThrough.Enabled {
		mux.Handle("/", g.newPassThrough())
	} else {
		mux.HandleFunc("/", g.handleNotFound)
	}
	return g.middleware(mux)
}

// localPath returns the path of a FHIR base URL served on the gateway's
// own origin.
func (g *Gateway) localPath(base string) (string, bool) {
	b, err1 := url.Parse(base)
	i, err2 := url.Parse(g.issuer)
	if err1 != nil || err2 != nil || !strings.EqualFold(b.Scheme, i.Scheme) || !strings.EqualFold(b.Host, i.Host) {
		return "", false
	}
	return strings.TrimSuffix(b.Path, "/"), true
}

// RequestID returns the id the middleware gave the request.
func RequestID(ctx context.Context) string { return logging.RequestID(ctx) }

// middleware gives every request an id, sets the headers every gateway
// response carries, bounds query strings, and turns a panic into a plain
// 500 page so that no stack trace reaches a browser.
func (g *Gateway) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := token.RandomString(9)
		ctx := logging.WithRequestID(r.Context(), id)
		r = r.WithContext(ctx)
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				g.log.ErrorContext(ctx, "handler panicked", "request_id", id, "route", r.URL.Path, "panic", fmt.Sprint(v))
				g.errorPage(w, r, http.StatusInternalServerError, "error.internal", "")
			}
		}()
		if len(r.URL.RawQuery) > maxQueryBytes {
			g.errorPage(w, r, http.StatusRequestURITooLong, "error.bad_request", "")
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		g.metrics.Observe(routeLabel(r), rec.status, time.Since(start))
	})
}

// limitBody caps the request body of a route at n bytes.
func limitBody(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// routeLabel is the route pattern the mux matched, a bounded label.
func routeLabel(r *http.Request) string {
	if r.Pattern == "" || r.Pattern == "/" {
		return "other"
	}
	return r.Pattern
}

// anyOrigin lets browser apps of any origin read public documents.
func anyOrigin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		next(w, r)
	})
}

func (g *Gateway) handleNotFound(w http.ResponseWriter, r *http.Request) {
	g.errorPage(w, r, http.StatusNotFound, "error.not_found", "")
}
