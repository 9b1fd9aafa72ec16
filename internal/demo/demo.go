// Package demo runs smartgate with everything embedded: an in-memory
// Redis-compatible store (miniredis), a demo OpenID Connect provider
// (mockoidc) that signs in a demo patient without a password, fresh
// signing keys, and one registered public app. It exists for
// `smartgate demo` only; `smartgate serve` never uses any of it.
package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/app"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/token"
)

// The demo app and patient.
const (
	ClientID    = "demo-app"
	RedirectURI = "http://127.0.0.1/callback"
	PatientID   = "demo-patient-1"
	PatientName = "Maria Demo"
)

// Demo is a running demo gateway.
type Demo struct {
	Config  *config.Config
	Gateway *app.Gateway
	IDP     *mockoidc.MockOIDC
	Redis   *miniredis.Miniredis
}

// patient is the demo user that the demo provider signs in.
type patient struct{}

func (patient) ID() string { return "demo-user-1" }

func (patient) Userinfo([]string) ([]byte, error) {
	return []byte(`{"sub":"demo-user-1","name":"` + PatientName + `","patient_id":"` + PatientID + `"}`), nil
}

type patientClaims struct {
	*mockoidc.IDTokenClaims
	Name      string `json:"name"`
	PatientID string `json:"patient_id"`
}

func (patient) Claims(_ []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &patientClaims{IDTokenClaims: c, Name: PatientName, PatientID: PatientID}, nil
}

// Start starts the embedded store and provider and builds a gateway that
// will be reachable at publicURL.
func Start(ctx context.Context, publicURL string, log *slog.Logger) (*Demo, error) {
	mr, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	idp, err := mockoidc.NewServer(nil)
	if err != nil {
		mr.Close()
		return nil, fmt.Errorf("create demo identity provider: %w", err)
	}
	// Every sign-in at the demo provider is the demo patient.
	if err := idp.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, mockoidc.AuthorizationEndpoint) {
				idp.QueueUser(patient{})
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		mr.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		mr.Close()
		return nil, fmt.Errorf("listen for demo identity provider: %w", err)
	}
	if err := idp.Start(ln, nil); err != nil {
		mr.Close()
		return nil, fmt.Errorf("start demo identity provider: %w", err)
	}
	d := &Demo{IDP: idp, Redis: mr}
	d.Config = Config(publicURL, idp.Issuer(), idp.ClientID, idp.ClientSecret, mr.Addr())

	access, err := token.GenerateKey(jose.ES256)
	if err != nil {
		d.Close()
		return nil, err
	}
	id, err := token.GenerateKey(jose.RS256)
	if err != nil {
		d.Close()
		return nil, err
	}
	parts := &app.Parts{
		Redis:     redis.NewClient(&redis.Options{Addr: mr.Addr()}),
		AccessKey: access,
		IDKey:     id,
	}
	d.Gateway, err = app.Build(ctx, d.Config, parts, log)
	if err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Config is the demo configuration: one public app, one FHIR base on the
// gateway's own origin, and the embedded store and provider.
func Config(publicURL, issuer, upstreamClient, upstreamSecret, redisAddr string) *config.Config {
	cfg := &config.Config{
		Server: config.Server{PublicURL: publicURL, CookieSecret: token.RandomString(32)},
		Upstream: config.Upstream{
			Issuer: issuer, ClientID: upstreamClient, ClientSecret: upstreamSecret,
			Scopes: []string{"openid", "profile"},
		},
		Redis: config.Redis{Addr: redisAddr},
		FHIR:  config.FHIR{BaseURLs: []string{publicURL + "/fhir"}},
		Clients: []config.Client{{
			ClientID:     ClientID,
			Name:         "Demo Health Diary",
			Type:         config.ClientPublic,
			RedirectURIs: []string{RedirectURI},
			Scopes: []string{"openid", "fhirUser", "profile", "launch/patient", "offline_access",
				"patient/*.rs", "patient/*.read"},
		}},
		Consent: config.Consent{HospitalName: "Demo Hospital"},
	}
	config.ApplyDefaults(cfg)
	return cfg
}

// Close stops the embedded provider and store.
func (d *Demo) Close() {
	_ = d.IDP.Shutdown()
	d.Redis.Close()
}
