// Package app assembles a running gateway from a validated configuration:
// the Redis client, the signing keys, the upstream provider, the client
// registry and the HTTP handler. `smartgate serve`, `smartgate demo` and
// the end-to-end tests all build the gateway here, so they run the same code.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/clientauth"
	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/metrics"
	"github.com/smartgate/smartgate/internal/session"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
	"github.com/smartgate/smartgate/internal/upstream"
	"github.com/smartgate/smartgate/proxy"
)

// Parts are the resources a gateway is built from.
type Parts struct {
	Redis     redis.UniversalClient
	Metrics   *metrics.Metrics // created by Build when nil
	AccessKey *token.Key
	IDKey     *token.Key
	Published []*token.Key
}

// LoadParts opens the Redis client and reads the key files named in cfg.
func LoadParts(cfg *config.Config) (*Parts, error) {
	access, err := token.LoadKeyFile(cfg.Keys.AccessTokenFile)
	if err != nil {
		return nil, fmt.Errorf("keys.access_token_file: %w", err)
	}
	id, err := token.LoadKeyFile(cfg.Keys.IDTokenFile)
	if err != nil {
		return nil, fmt.Errorf("keys.id_token_file: %w", err)
	}
	if id.Alg != "RS256" {
		return nil, fmt.Errorf("keys.id_token_file: ID tokens are signed RS256, so the key must be RSA, not %s", id.Alg)
	}
	p := &Parts{AccessKey: access, IDKey: id}
	for i, f := range cfg.Keys.PublishedFiles {
		k, err := token.LoadPublishedKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("keys.published_files[%d]: %w", i, err)
		}
		p.Published = append(p.Published, k)
	}
	p.Redis, err = NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Gateway is an assembled gateway: the public handler and its metrics.
type Gateway struct {
	Handler http.Handler
	Metrics *metrics.Metrics
}

// Build discovers the upstream provider, retrying with backoff until ctx
// ends, and returns the gateway.
func Build(ctx context.Context, cfg *config.Config, parts *Parts, log *slog.Logger) (*Gateway, error) {
	provider, err := discover(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	minter, err := token.NewMinter(parts.AccessKey, parts.IDKey)
	if err != nil {
		return nil, err
	}
	text, err := consent.NewCatalog(cfg.Consent.Text)
	if err != nil {
		return nil, err
	}
	pages, err := consent.NewPages(consent.Branding{
		HospitalName: cfg.Consent.HospitalName,
		LogoURL:      cfg.Consent.LogoURL,
		AccentColor:  cfg.Consent.AccentColor,
	}, basePath(cfg)+proxy.PathStatic, text)
	if err != nil {
		return nil, err
	}
	secure := isHTTPS(cfg.Server.PublicURL)
	sessions := session.NewRedisStore(parts.Redis, cfg.Redis.KeyPrefix, []byte(cfg.Server.CookieSecret), secure,
		cfg.Tokens.AuthorizationLifetime)
	keys := append([]*token.Key{parts.AccessKey, parts.IDKey}, parts.Published...)
	sealer, err := token.NewSealer([]byte(cfg.Server.CookieSecret), "smartgate upstream refresh token")
	if err != nil {
		return nil, err
	}
	st := store.New(parts.Redis, cfg.Redis.KeyPrefix)
	m := parts.Metrics
	if m == nil {
		m = metrics.New()
	}
	g, err := proxy.New(proxy.Options{
		Config:   cfg,
		Store:    st,
		Sessions: sessions,
		Upstream: provider,
		Clients:  clients.New(cfg),
		Minter:   minter,
		JWKS:     token.JWKS(keys...),
		Pages:    pages,
		Logger:   log,
		Metrics:  m,
		Sealer:   sealer,
		Assertions: clientauth.NewVerifier([]string{cfg.Server.PublicURL + proxy.PathToken},
			replayCache{st}),
	})
	if err != nil {
		return nil, err
	}
	return &Gateway{Handler: g.Handler(), Metrics: m}, nil
}

// replayCache records client assertion ids in Redis.
type replayCache struct{ store *store.Store }

func (c replayCache) Claim(ctx context.Context, clientID, jti string, ttl time.Duration) (bool, error) {
	return c.store.ClaimJTI(ctx, "assertion:"+clientID, jti, ttl)
}

func discover(ctx context.Context, cfg *config.Config, log *slog.Logger) (*upstream.Provider, error) {
	ucfg := upstream.Config{
		Issuer:            cfg.Upstream.Issuer,
		ClientID:          cfg.Upstream.ClientID,
		ClientSecret:      cfg.Upstream.ClientSecret,
		RedirectURL:       cfg.Server.PublicURL + proxy.PathCallback,
		Scopes:            cfg.Upstream.Scopes,
		PatientClaim:      cfg.Upstream.Claims.Patient,
		NameClaim:         cfg.Upstream.Claims.Name,
		FHIRUserTemplates: cfg.Upstream.Claims.FHIRUser,
		Timeout:           cfg.Upstream.Timeout,
	}
	delay := 500 * time.Millisecond
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		p, err := upstream.Discover(attemptCtx, ucfg)
		cancel()
		if err == nil {
			log.InfoContext(ctx, "upstream discovered", "issuer", cfg.Upstream.Issuer)
			return p, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(err, ctx.Err())
		}
		log.WarnContext(ctx, "upstream discovery failed; retrying", "issuer", cfg.Upstream.Issuer, "err", err,
			"retry_in", delay.String())
		select {
		case <-ctx.Done():
			return nil, errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

func basePath(cfg *config.Config) string {
	u, err := url.Parse(cfg.Server.PublicURL)
	if err != nil {
		return ""
	}
	return u.Path
}

func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https"
}

// Admin serves the admin listener: Prometheus metrics, /healthz (the
// process is alive) and /readyz (the gateway is built, which needs the
// upstream discovery document, and Redis responds to PING). It serves from the
// start, so that an orchestrator sees "not ready" while the upstream is
// still being discovered.
type Admin struct {
	redis   redis.UniversalClient
	metrics *metrics.Metrics
	ready   atomic.Bool
}

// NewAdmin returns the admin handler of parts; parts.Metrics is created
// when nil.
func NewAdmin(parts *Parts) *Admin {
	if parts.Metrics == nil {
		parts.Metrics = metrics.New()
	}
	return &Admin{redis: parts.Redis, metrics: parts.Metrics}
}

// SetReady marks the gateway as built.
func (a *Admin) SetReady() { a.ready.Store(true) }

// Handler returns the admin routes.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "upstream discovery not loaded yet", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := a.redis.Ping(ctx).Err(); err != nil {
			http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
