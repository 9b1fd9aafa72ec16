package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestDemoComesUp starts the demo as `smartgate demo` does and reads its
// discovery document: no file, no Redis and no identity provider needed.
func TestDemoComesUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicURL := "http://" + ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	d, err := Start(ctx, publicURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := &http.Server{Handler: d.Gateway.Handler}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	resp, err := http.Get(publicURL + "/fhir/.well-known/smart-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: %d %v", resp.StatusCode, err)
	}
	if doc["authorization_endpoint"] != publicURL+"/authorize" {
		t.Errorf("authorization_endpoint = %v", doc["authorization_endpoint"])
	}
	t.Logf("demo ready in %v", time.Since(start))
}
