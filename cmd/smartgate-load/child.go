package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/app"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/logging"
)

// serveGateway runs smartgate from a configuration file with the same
// assembly as `smartgate serve` (app.LoadParts and app.Build), without the
// admin listener. SIGUSR1 starts a CPU profile into profilePath and
// SIGUSR2 stops it. SIGTERM ends the process. controlAddr serves the count
// of Redis round trips at /redis-round-trips.
func serveGateway(configPath, logPath, profilePath, controlAddr string) error {
	cfg, err := config.LoadFile(configPath)
	if err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := logging.New(cfg.Log.Format, cfg.Log.Level, logFile)
	parts, err := app.LoadParts(cfg)
	if err != nil {
		return err
	}

	counter := &roundTripCounter{}
	parts.Redis.AddHook(counter)
	control, err := net.Listen("tcp", controlAddr)
	if err != nil {
		return err
	}
	go http.Serve(control, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/goroutines" {
			fmt.Fprint(w, runtime.NumGoroutine())
			return
		}
		fmt.Fprint(w, counter.n.Load())
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gw, err := app.Build(ctx, cfg, parts, log)
	if err != nil {
		return fmt.Errorf("build gateway: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: gw.Handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go handleProfileSignals(profilePath, srv)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// roundTripCounter counts Redis round trips: one per command sent on its
// own and one per pipeline or transaction. A script that go-redis sends
// as EVALSHA and repeats as EVAL after NOSCRIPT counts twice.
type roundTripCounter struct{ n atomic.Int64 }

func (c *roundTripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *roundTripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// handleProfileSignals starts and stops the CPU profile on SIGUSR1 and
// SIGUSR2, and closes srv on SIGTERM or SIGINT.
func handleProfileSignals(profilePath string, srv *http.Server) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)
	var profile *os.File
	for s := range signals {
		switch s {
		case syscall.SIGUSR1:
			if profile != nil || profilePath == "" {
				continue
			}
			f, err := os.Create(profilePath)
			if err != nil {
				fmt.Fprintf(os.Stderr, "smartgate-load: create CPU profile: %v\n", err)
				continue
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				fmt.Fprintf(os.Stderr, "smartgate-load: start CPU profile: %v\n", err)
				f.Close()
				continue
			}
			profile = f
		case syscall.SIGUSR2:
			if profile != nil {
				pprof.StopCPUProfile()
				profile.Close()
				profile = nil
			}
		default:
			if profile != nil {
				pprof.StopCPUProfile()
				profile.Close()
			}
			srv.Close()
			return
		}
	}
}

// serveStub runs the stand-in identity provider: OpenID discovery and a
// JWKS, enough for the gateway to start, because no user signs in during a
// load run. /calibrate returns a fixed 62-byte JSON body, so that a run
// against it measures what plain HTTP handling costs on this machine.
func serveStub(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}

	issuer := "http://" + ln.Addr().String()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: "stub", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		return err
	}
	discovery, err := json.Marshal(map[string]any{
		"issuer": issuer, "authorization_endpoint": issuer + "/authorize", "token_endpoint": issuer + "/token",
		"jwks_uri": issuer + "/jwks", "response_types_supported": []string{"code"},
		"subject_types_supported": []string{"public"}, "id_token_signing_alg_values_supported": []string{"ES256"},
	})
	if err != nil {
		return err
	}

	calibration := []byte(`{"status":"ok","service":"calibration","padding":"0123456789"}`)
	mux := http.NewServeMux()
	serveBytes := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux.Handle("GET /.well-known/openid-configuration", serveBytes(discovery))
	mux.Handle("GET /jwks", serveBytes(jwks))
	mux.Handle("GET /calibrate", serveBytes(calibration))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go handleProfileSignals("", srv)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
