// Command smartgate is a SMART on FHIR authorization gateway in front of a
// hospital's OpenID Connect identity provider.
//
//	smartgate serve --config FILE    run the gateway
//	smartgate check-config FILE      validate a configuration and exit
//	smartgate demo                   run a self-contained demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartgate/smartgate/consent"
	"github.com/smartgate/smartgate/internal/app"
	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/demo"
	"github.com/smartgate/smartgate/internal/logging"
)

const usage = `smartgate: a SMART on FHIR authorization gateway

Usage:
  smartgate serve --config FILE    run the gateway with the configuration FILE
  smartgate check-config FILE      check a configuration file and exit (0 valid, 1 not)
  smartgate demo [--listen ADDR]   run a self-contained demo (embedded store and identity provider)
  smartgate healthcheck [--url U]  exit 0 when the admin listener reports ready (for images without a shell)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "smartgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path of the YAML configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *path == "" {
		fmt.Fprintln(stderr, "smartgate serve: --config FILE is required (see config.example.yaml)")
		return 2
	}
	cfg, err := config.LoadFile(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	parts, err := app.LoadParts(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	admin := app.NewAdmin(parts)
	adminSrv := newServer(cfg.Server.AdminListen, admin.Handler(), log)
	adminDone := make(chan error, 1)
	go func() { adminDone <- listenAndServe(ctx, adminSrv, "", "") }()
	gw, err := app.Build(ctx, cfg, parts, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	admin.SetReady()
	srv := newServer(cfg.Server.Listen, gw.Handler, log)
	log.Info("smartgate listening", "addr", cfg.Server.Listen, "issuer", cfg.Server.PublicURL)
	if err := listenAndServe(ctx, srv, cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile); err != nil {
		log.Error("server stopped", "err", err)
		return 1
	}
	if err := <-adminDone; err != nil {
		log.Error("admin listener stopped", "addr", cfg.Server.AdminListen, "err", err)
	}
	log.Info("smartgate stopped")
	return 0
}

func checkConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: smartgate check-config FILE")
		return 2
	}
	cfg, err := config.LoadFile(args[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if _, err := consent.NewCatalog(cfg.Consent.Text); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", args[0], err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", args[0])
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger { return logging.New(c.Format, c.Level, w) }

func newServer(addr string, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// listenAndServe serves until ctx ends, then lets requests in flight finish.
func listenAndServe(ctx context.Context, srv *http.Server, certFile, keyFile string) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "smartgate demo: %v\n", err)
		return 1
	}
	publicURL := "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := demo.Start(ctx, publicURL, log)
	if err != nil {
		ln.Close()
		fmt.Fprintf(stderr, "smartgate demo: %v\n", err)
		return 1
	}
	defer d.Close()
	fmt.Fprint(stdout, demoBanner(publicURL, d))
	srv := newServer(ln.Addr().String(), d.Gateway.Handler, log)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "smartgate demo: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return 0
}

func demoBanner(publicURL string, d *demo.Demo) string {
	authorize := publicURL + "/authorize?response_type=code&client_id=" + demo.ClientID +
		"&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback" +
		"&scope=openid+fhirUser+launch%2Fpatient+offline_access+patient%2F*.rs" +
		"&state=demo-state&aud=" + publicURL + "%2Ffhir" +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
	return fmt.Sprintf(`
  ************************************************************************
  *  DEMO MODE: in-memory store, demo identity provider, throwaway keys. *
  *  Nothing is kept. Never put this in front of real patients.         *
  ************************************************************************

  Gateway:            %s
  SMART discovery:    %s/fhir/.well-known/smart-configuration
  Demo identity provider (signs in %q without a password): %s
  Registered app:     client_id %q, public, redirect URI %s

  Open this in a browser, sign in happens by itself, then review the consent page:

    %s

  After Allow, the browser lands on %s?code=...; that page does not exist,
  so copy the code from the address bar and exchange it:

    curl -s %s/token -d grant_type=authorization_code -d client_id=%s \
      -d redirect_uri=%s -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk \
      --data-urlencode code=PASTE_THE_CODE

  The README shows the same walk with curl alone. Press Ctrl-C to stop.
`, publicURL, publicURL, demo.PatientName, d.IDP.Issuer(), demo.ClientID, demo.RedirectURI,
		authorize, demo.RedirectURI, publicURL, demo.ClientID, demo.RedirectURI)
}

// healthcheck requests the admin listener's /readyz, for container health
// checks in images that have no shell or curl.
func healthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "http://127.0.0.1:9090/readyz", "readiness URL of the admin listener")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(*target)
	if err != nil {
		fmt.Fprintf(stderr, "smartgate healthcheck: %v\n", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "smartgate healthcheck: %s returned %s\n", *target, resp.Status)
		return 1
	}
	return 0
}
