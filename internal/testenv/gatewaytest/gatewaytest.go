// Package gatewaytest runs a real smartgate for integration tests: the
// same assembly as `smartgate serve`, on a loopback listener, with a
// configuration of test clients and fresh key files.
package gatewaytest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/app"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/logging"
	"github.com/smartgate/smartgate/internal/metrics"
	"github.com/smartgate/smartgate/internal/testenv"
)

// Test clients registered by Config.
const (
	PublicClient       = "patient-app"
	PublicRedirect     = "http://127.0.0.1/callback" // any port, as native apps use (RFC 8252)
	ConfidentialClient = "web-app"
	ConfidentialSecret = "web-app-secret-0123456789-abcdefghijklmnop"
	ConfidentialRedir  = "https://web-app.example.org/callback"
	// RememberingClient is a public client whose consent is remembered for a day.
	RememberingClient = "remembering-app"
)

// Listener reserves the gateway's address before anything that must know
// it (the upstream's registered callback) starts.
func Listener(t testing.TB) (net.Listener, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("gatewaytest: listen: %v", err)
	}
	return ln, "http://" + ln.Addr().String()
}

// Config returns a complete gateway configuration for tests: fresh key
// files in dir, the two test clients, and one FHIR base on the gateway's
// own origin (<publicURL>/fhir).
func Config(t testing.TB, dir, publicURL, redisAddr string, up *testenv.Upstream, extra ...func(*config.Config)) *config.Config {
	es, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	accessFile := writeKey(t, dir, "access.pem", es)
	idFile := writeKey(t, dir, "id.pem", rs)
	patientClaim := "patient_id"
	if up.Shape == "entra" {
		patientClaim = "extension_patientId"
	}
	cfg := &config.Config{
		Server: config.Server{PublicURL: publicURL, CookieSecret: "test-cookie-secret-0123456789abcdefghij"},
		Upstream: config.Upstream{
			Issuer: up.Issuer, ClientID: testenv.UpstreamClient, ClientSecret: testenv.UpstreamSecret,
			Scopes: []string{"openid", "profile"},
			Claims: config.ClaimMapping{Patient: patientClaim,
				FHIRUser: []string{"Patient/{" + patientClaim + "}", "Practitioner/{practitioner_id}"}},
		},
		Redis: config.Redis{Addr: redisAddr, KeyPrefix: "sgtest:" + filepath.Base(dir) + ":"},
		FHIR:  config.FHIR{BaseURLs: []string{publicURL + "/fhir"}},
		Keys:  config.Keys{AccessTokenFile: accessFile, IDTokenFile: idFile},
		Clients: []config.Client{
			{
				ClientID: PublicClient, Name: "Patient Diary", Type: config.ClientPublic,
				RedirectURIs: []string{PublicRedirect},
				Scopes: []string{"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access",
					"patient/*.cruds"},
			},
			{
				ClientID: RememberingClient, Name: "Steps Tracker", Type: config.ClientPublic,
				RedirectURIs: []string{PublicRedirect}, RememberConsent: 24 * time.Hour,
				Scopes:         []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"},
				RequiredScopes: []string{"patient/Patient.rs"},
				Publisher:      "Example Health Apps", HomePage: "https://steps.example.org",
				PrivacyPolicyURL: "https://steps.example.org/privacy", TermsURL: "https://steps.example.org/terms",
				Reviewed: true,
			},
			{
				ClientID: ConfidentialClient, Name: "Care Web", Type: config.ClientConfidentialSymmetric,
				RedirectURIs: []string{ConfidentialRedir}, ClientSecret: ConfidentialSecret,
				Scopes: []string{"openid", "fhirUser", "launch/patient", "offline_access", "patient/*.rs"},
			},
		},
		Log: config.Log{Format: "json", Level: "debug"},
	}
	for _, f := range extra {
		f(cfg)
	}
	config.ApplyDefaults(cfg)
	if problems := config.Validate(cfg, nil); len(problems) > 0 {
		t.Fatalf("gatewaytest: test configuration is invalid: %v", problems)
	}
	return cfg
}

func writeKey(t testing.TB, dir, name string, key any) string {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Gateway is a running smartgate.
type Gateway struct {
	URL     string
	Config  *config.Config
	Metrics *metrics.Metrics
	logs    *testenv.LockedBuffer
}

// Logs returns everything the gateway logged so far.
func (g *Gateway) Logs() string { return g.logs.String() }

// Serve builds smartgate from cfg, exactly as `smartgate serve` does, and
// serves it on ln until the cleanup runs.
func Serve(t testing.TB, cleanup *testenv.Cleanup, ln net.Listener, cfg *config.Config) *Gateway {
	logs := &testenv.LockedBuffer{}
	log := logging.New("json", "debug", logs)
	parts, err := app.LoadParts(cfg)
	if err != nil {
		t.Fatalf("gatewaytest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw, err := app.Build(ctx, cfg, parts, log)
	if err != nil {
		t.Fatalf("gatewaytest: build gateway: %v\nlogs:\n%s", err, logs.String())
	}
	srv := &http.Server{Handler: gw.Handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("test gateway stopped", "err", err)
		}
	}()
	cleanup.Add(func() {
		_ = srv.Close()
		<-done
		_ = parts.Redis.Close()
	})
	return &Gateway{URL: cfg.Server.PublicURL, Config: cfg, Metrics: gw.Metrics, logs: logs}
}
