package main

import (
	"context"
	"crypto"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// peer is a running peer server with its scenarios.
type peer struct {
	sys         system
	description string
	scenarios   func(sizes map[string]int, warmup int, timeCap time.Duration) []scenario
}

// startPeers installs (when missing) and starts the peers named in opts.
func startPeers(ctx context.Context, opts options, dir string, keys peerKeys, cleanups *[]func()) ([]*peer, error) {
	names, err := peerNames(opts.peers)
	if err != nil {
		return nil, err
	}
	var peers []*peer
	for _, name := range names {
		var p *peer
		switch name {
		case "oidc-provider":
			p, err = startOIDCProvider(ctx, opts.cacheDir, dir, keys, cleanups)
		case "hydra":
			p, err = startHydra(ctx, opts.cacheDir, dir, keys, cleanups)
		}
		if err != nil {
			return nil, fmt.Errorf("peer %s: %w", name, err)
		}
		peers = append(peers, p)
	}
	return peers, nil
}

// peerNames splits the -peers list and checks every name.
func peerNames(list string) ([]string, error) {
	var names []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "":
			continue
		case "oidc-provider", "hydra":
			names = append(names, name)
		default:
			return nil, fmt.Errorf("unknown peer %q; known peers: oidc-provider, hydra", name)
		}
	}
	return names, nil
}

// peerKeys are the backend clients' keys, shared by all systems.
type peerKeys struct {
	rs384, es384 crypto.Signer
}

//go:embed oidcprovider.mjs
var oidcProviderScript []byte

// oidcProviderVersion is the version installed into the cache when the
// repository's test environment does not have it.
const oidcProviderVersion = "9.13.3"

// oidcProviderModule returns the path of oidc-provider's lib/index.js: the
// copy that `npm ci` installs in internal/testenv/node, or else one
// installed with npm into the cache folder.
func oidcProviderModule(ctx context.Context, cacheDir string) (string, error) {
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "internal", "testenv", "node", "node_modules", "oidc-provider", "lib", "index.js")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	prefix := filepath.Join(cacheDir, "oidc-provider")
	p := filepath.Join(prefix, "node_modules", "oidc-provider", "lib", "index.js")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", err
	}
	fmt.Printf("installing oidc-provider@%s with npm into %s (once)\n", oidcProviderVersion, prefix)
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", prefix,
		"oidc-provider@"+oidcProviderVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install oidc-provider@%s into %s: %w\n%s", oidcProviderVersion, prefix, err, out)
	}
	return p, nil
}

// moduleRoot finds the folder of smartgate's go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/smartgate/smartgate\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod of github.com/smartgate/smartgate not found above the working directory")
		}
		dir = parent
	}
}

func jwksJSON(key crypto.Signer, alg string) string {
	data, err := json.Marshal(publicJWKS(key, alg))
	if err != nil {
		panic(err)
	}
	return string(data)
}

// freePorts returns n free loopback ports.
func freePorts(n int) ([]string, error) {
	ports := make([]string, n)
	for i := range ports {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		if _, ports[i], err = net.SplitHostPort(addr); err != nil {
			return nil, err
		}
	}
	return ports, nil
}

// startPeerProcess starts a peer pinned to the server CPU, adds its stop
// to cleanups and waits until healthURL returns 200. When the peer does
// not come up, the error carries the peer's log.
func startPeerProcess(name, logPath, healthURL string, env []string, cleanups *[]func(), bin string, args ...string) (*process, error) {
	proc, err := startProcess(name, serverCore, logPath, env, bin, args...)
	if err != nil {
		return nil, err
	}
	*cleanups = append(*cleanups, proc.stop)
	if err := waitHTTP(proc, healthURL); err != nil {
		out, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	return proc, nil
}

func startOIDCProvider(ctx context.Context, cacheDir, dir string, keys peerKeys, cleanups *[]func()) (*peer, error) {
	module, err := oidcProviderModule(ctx, cacheDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, err
	}

	script := filepath.Join(cacheDir, "smartgate-load-oidc-provider.mjs")
	if err := os.WriteFile(script, oidcProviderScript, 0o644); err != nil {
		return nil, err
	}

	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	port, controlPort := ports[0], ports[1]

	env := []string{"OIDC_PROVIDER_MODULE=" + module, "PORT=" + port, "CONTROL_PORT=" + controlPort,
		"RS384_JWKS=" + jwksJSON(keys.rs384, "RS384"), "ES384_JWKS=" + jwksJSON(keys.es384, "ES384"),
		"NODE_ENV=production"}
	issuer := "http://127.0.0.1:" + port
	proc, err := startPeerProcess("oidc-provider", filepath.Join(dir, "oidc-provider.log"),
		issuer+"/.well-known/openid-configuration", env, cleanups, "node", script)
	if err != nil {
		return nil, err
	}

	control := "http://127.0.0.1:" + controlPort
	p := &peer{
		sys: system{name: "oidc-provider", serverPID: proc.pid()},
		description: fmt.Sprintf("oidc-provider %s on Node %s: in-process Map store without eviction, JWT access tokens "+
			"signed ES256 (one P-256 key), refresh rotation, PKCE required, private_key_jwt RS384/ES384 for backend clients, "+
			"public client with token_endpoint_auth_method none", oidcProviderVersion, nodeVersion()),
	}
	p.scenarios = func(sizes map[string]int, warmup int, timeCap time.Duration) []scenario {
		return peerScenarios(issuer+"/token", func(ctx context.Context, n int) ([]string, error) {
			var tokens []string
			return tokens, getJSON(ctx, fmt.Sprintf("%s/seed/refresh?n=%d", control, n), &tokens)
		}, func(ctx context.Context, n int) ([]seededCode, error) {
			var raw []struct{ Code, Verifier string }
			if err := getJSON(ctx, fmt.Sprintf("%s/seed/code?n=%d", control, n), &raw); err != nil {
				return nil, err
			}
			codes := make([]seededCode, len(raw))
			for i, c := range raw {
				codes[i] = seededCode{code: c.Code, verifier: c.Verifier}
			}
			return codes, nil
		}, keys, sizes, warmup, timeCap)
	}
	return p, nil
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func getJSON(ctx context.Context, target string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	status, body, err := readBody(resp)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d: %s", target, status, truncate(body, 300))
	}
	return json.Unmarshal(body, v)
}

// peerScenarios returns a peer's scenarios. A peer's non-200 responses are
// counted, not treated as invalid runs, because only HTTP 200 counts as a
// grant. seedCodes may be nil when the peer cannot seed codes.
func peerScenarios(tokenURL string, seedRefresh func(context.Context, int) ([]string, error),
	seedCodes func(context.Context, int) ([]seededCode, error), keys peerKeys,
	sizes map[string]int, warmup int, timeCap time.Duration) []scenario {
	mk := func(id string, c int, prepare prepareFunc) scenario {
		return scenario{id: id, concurrency: c, requests: sizes[id], warmup: min(warmup, sizes[id]), timeCap: timeCap,
			prepare: prepare}
	}
	out := []scenario{
		mk(scenarioRefresh16, 16, refreshPrepare(tokenURL, seedRefresh)),
		mk(scenarioRefresh1, 1, refreshPrepare(tokenURL, seedRefresh)),
		mk(scenarioRS384, 16, clientCredentialsPrepare(tokenURL, rs384Client, keys.rs384, jose.RS384)),
		mk(scenarioES384, 16, clientCredentialsPrepare(tokenURL, es384Client, keys.es384, jose.ES384)),
	}
	if seedCodes != nil {
		out = append(out, mk(scenarioCode16, 16, codePrepare(tokenURL, seedCodes)))
	}
	return out
}
