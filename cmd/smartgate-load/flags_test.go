package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRemoteReplaces(t *testing.T) {
	goMod := `module example.com/app

go 1.22

replace example.com/local => ./internal/local

replace github.com/gobuffalo/pop/v6 => github.com/ory/pop/v6 v6.2.1-0.20241121111754-e5dfc0f3344b

replace (
	example.com/a v1.0.0 => example.com/a-fork v1.0.1 // until upstream merges the fix
	example.com/b => ../b
	// example.com/old => example.com/new v1.0.0
)

require example.com/c v1.2.3
`
	path := filepath.Join(t.TempDir(), "go.mod")
	if err := os.WriteFile(path, []byte(goMod), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := remoteReplaces(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b",
		"example.com/a@v1.0.0=example.com/a-fork@v1.0.1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("remoteReplaces = %q, want %q", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	valid := options{runs: 3, requests: 20000, warmup: 500, families: 10000, timeCap: 30 * time.Second,
		peers: "oidc-provider, hydra", profileScenario: scenarioRefresh16}
	if err := valid.validate(false); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	tests := []struct {
		name, wantErr      string
		change             func(*options)
		profileScenarioSet bool
	}{
		{"no runs", "-runs 0", func(o *options) { o.runs = 0 }, false},
		{"no requests", "-requests 0", func(o *options) { o.requests = 0 }, false},
		{"negative warm-up", "-warmup -1", func(o *options) { o.warmup = -1 }, false},
		{"no families", "-families 0", func(o *options) { o.families = 0 }, false},
		{"no time cap", "-cap 0s", func(o *options) { o.timeCap = 0 }, false},
		{"unknown peer", `unknown peer "keycloak"`, func(o *options) { o.peers = "hydra,keycloak" }, false},
		{"unknown scenario", `"refresh": unknown scenario`, func(o *options) { o.profile, o.profileScenario = "cpu.out", "refresh" }, true},
		{"scenario without profile", "needs -cpuprofile", func(o *options) { o.profileScenario = scenarioRefresh1 }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := valid
			tc.change(&o)
			err := o.validate(tc.profileScenarioSet)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
