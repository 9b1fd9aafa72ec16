package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/smartgate/smartgate/internal/token"
)

// hydraVersion is the Ory Hydra release measured as a peer.
const hydraVersion = "v2.3.0"

// hydraRunDivisor divides the request count of each of Hydra's runs.
const hydraRunDivisor = 4

// hydraModule is Hydra's Go module path.
const hydraModule = "github.com/ory/hydra/v2"

// hydraBinary returns the path of a Hydra binary in the cache folder and
// builds it there when it is missing.
//
// `go install` rejects Hydra because its go.mod contains replace directives,
// and a scratch module that requires Hydra does not inherit them: the build
// then fails in persistence/sql. So the scratch module copies every
// non-local replace directive of Hydra's own go.mod before it builds.
func hydraBinary(ctx context.Context, cacheDir string) (string, error) {
	bin := filepath.Join(cacheDir, "hydra-"+hydraVersion, "hydra")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	build := filepath.Join(cacheDir, "hydra-"+hydraVersion, "build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		return "", err
	}
	fmt.Printf("building Ory Hydra %s into %s (a few minutes, once)\n", hydraVersion, filepath.Dir(bin))

	// Build next to the final path and rename, so that an interrupted
	// build leaves no binary that the next run would take as finished.
	partial := bin + ".partial"
	if err := buildHydra(ctx, build, partial); err != nil {
		return "", err
	}
	if err := os.Rename(partial, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// buildHydra builds Hydra into out from a scratch module in the folder build.
func buildHydra(ctx context.Context, build, out string) error {
	goCmd := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = build
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=1", "GOFLAGS=-mod=mod")
		output, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go %s failed: %w\n%s", strings.Join(args, " "), err, output)
		}
		return output, nil
	}

	if _, err := os.Stat(filepath.Join(build, "go.mod")); err != nil {
		if _, err := goCmd("mod", "init", "smartgate-load/hydra"); err != nil {
			return err
		}
	}
	output, err := goCmd("mod", "download", "-json", hydraModule+"@"+hydraVersion)
	if err != nil {
		return err
	}
	var download struct{ GoMod string }
	if err := json.Unmarshal(output, &download); err != nil || download.GoMod == "" {
		return fmt.Errorf("go mod download %s@%s returned no go.mod path: %v", hydraModule, hydraVersion, err)
	}
	replaces, err := remoteReplaces(download.GoMod)
	if err != nil {
		return err
	}

	if _, err := goCmd("get", "-tool", hydraModule+"@"+hydraVersion); err != nil {
		return err
	}
	for _, r := range replaces {
		if _, err := goCmd("mod", "edit", "-replace", r); err != nil {
			return err
		}
	}
	if _, err := goCmd("mod", "tidy"); err != nil {
		return err
	}
	_, err = goCmd("build", "-tags", "sqlite,sqlite_omit_load_extension", "-o", out, hydraModule)
	return err
}

// remoteReplaces reads the replace directives of a go.mod file that point
// at another module version, as `old=new@version` arguments of
// `go mod edit -replace`. Replacements by local folders are left out: the
// scratch module has no such folders.
func remoteReplaces(goModPath string) ([]string, error) {
	f, err := os.Open(goModPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "//")
		line = strings.TrimSpace(line)
		switch {
		case line == "replace (":
			inBlock = true
			continue
		case inBlock && line == ")":
			inBlock = false
			continue
		case strings.HasPrefix(line, "replace "):
			line = strings.TrimSpace(strings.TrimPrefix(line, "replace "))
		case !inBlock:
			continue
		}
		old, repl, ok := strings.Cut(line, "=>")
		if !ok {
			continue
		}
		oldFields, newFields := strings.Fields(old), strings.Fields(repl)
		if len(oldFields) == 0 || len(newFields) != 2 || strings.HasPrefix(newFields[0], ".") {
			continue
		}
		from := oldFields[0]
		if len(oldFields) == 2 {
			from += "@" + oldFields[1]
		}
		out = append(out, from+"="+newFields[0]+"@"+newFields[1])
	}
	return out, sc.Err()
}

// hydraPeer is a running Hydra with the clients of the load scenarios.
type hydraPeer struct {
	public, admin string
	logPath       string
}

// startHydra builds Hydra when needed and starts it with a SQLite database
// in WAL mode, PBKDF2 with one iteration for client secrets, and JWT access
// tokens signed with one ES256 key.
func startHydra(ctx context.Context, cacheDir, dir string, keys peerKeys, cleanups *[]func()) (*peer, error) {
	bin, err := hydraBinary(ctx, cacheDir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	publicPort, adminPort := ports[0], ports[1]
	h := &hydraPeer{public: "http://127.0.0.1:" + publicPort, admin: "http://127.0.0.1:" + adminPort}
	dsn := "sqlite://" + filepath.Join(dir, "hydra.sqlite") + "?_fk=true&_journal_mode=WAL&_busy_timeout=10000"
	env := []string{
		"DSN=" + dsn,
		"SECRETS_SYSTEM=" + token.RandomString(32),
		"URLS_SELF_ISSUER=" + h.public + "/",
		// Hydra redirects the browser to these; the load tool accepts
		// login and consent through the admin API instead.
		"URLS_LOGIN=http://127.0.0.1:9/login", "URLS_CONSENT=http://127.0.0.1:9/consent",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT=" + publicPort,
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT=" + adminPort,
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"OAUTH2_HASHERS_ALGORITHM=pbkdf2", "OAUTH2_HASHERS_PBKDF2_ITERATIONS=1",
		"LOG_LEVEL=warn",
	}
	migrate := exec.CommandContext(ctx, bin, "migrate", "sql", "up", "-e", "--yes")
	migrate.Env = append(os.Environ(), env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hydra migrate: %w\n%s", err, out)
	}
	h.logPath = filepath.Join(dir, "hydra.log")
	proc, err := startPeerProcess("hydra", h.logPath, h.public+"/health/ready", env, cleanups,
		bin, "serve", "all", "--dev", "--sqa-opt-out")
	if err != nil {
		return nil, err
	}
	if err := h.setUp(ctx, keys); err != nil {
		return nil, h.withLog(err)
	}

	p := &peer{
		sys: system{name: "hydra", serverPID: proc.pid()},
		description: fmt.Sprintf("Ory Hydra %s built from the Go module proxy: SQLite file in WAL mode, JWT access tokens signed "+
			"ES256 (the access token key set replaced by one P-256 key), PBKDF2 with 1 iteration, refresh rotation (Hydra's default), "+
			"the public client with token_endpoint_auth_method none and PKCE, private_key_jwt RS384/ES384 for backend clients; "+
			"refresh tokens seeded through the authorization code flow with login and consent accepted by the admin API; "+
			"no code exchange scenario, because each seeded code costs a full login and consent flow", hydraVersion),
	}
	p.scenarios = func(sizes map[string]int, warmup int, timeCap time.Duration) []scenario {
		// Hydra serves about a tenth of smartgate's grants per second, so
		// its runs are a quarter of the size to stay inside the time cap.
		hydraSizes := map[string]int{}
		for id, n := range sizes {
			hydraSizes[id] = max(n/hydraRunDivisor, 1)
		}
		return peerScenarios(h.public+"/oauth2/token", h.seedRefresh, nil, keys, hydraSizes, warmup, timeCap)
	}
	return p, nil
}

// setUp replaces Hydra's access token key set by one ES256 key and
// registers the clients of the load scenarios.
func (h *hydraPeer) setUp(ctx context.Context, keys peerKeys) error {
	const keySet = "/admin/keys/hydra.jwt.access-token"
	if status, body, err := h.call(ctx, http.MethodDelete, h.admin+keySet, nil); err != nil ||
		(status != http.StatusNoContent && status != http.StatusNotFound) {
		return fmt.Errorf("delete Hydra's access token keys: HTTP %d %s %v", status, truncate(body, 200), err)
	}
	if err := h.post(ctx, h.admin+keySet, map[string]string{"alg": "ES256", "use": "sig", "kid": "es256-load"}); err != nil {
		return fmt.Errorf("create Hydra's ES256 access token key: %w", err)
	}
	clients := []map[string]any{
		{"client_id": publicClient, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "redirect_uris": []string{publicRedirect},
			"scope": familyScope, "token_endpoint_auth_method": "none"},
		h.backend(rs384Client, json.RawMessage(jwksJSON(keys.rs384, "RS384")), "RS384"),
		h.backend(es384Client, json.RawMessage(jwksJSON(keys.es384, "ES384")), "ES384"),
	}
	for _, c := range clients {
		if err := h.post(ctx, h.admin+"/admin/clients", c); err != nil {
			return fmt.Errorf("register Hydra client %s: %w", c["client_id"], err)
		}
	}
	return nil
}

func (h *hydraPeer) backend(id string, jwks json.RawMessage, alg string) map[string]any {
	return map[string]any{"client_id": id, "grant_types": []string{"client_credentials"}, "response_types": []string{"token"},
		"scope": backendScope, "token_endpoint_auth_method": "private_key_jwt",
		"token_endpoint_auth_signing_alg": alg, "jwks": jwks}
}

func (h *hydraPeer) post(ctx context.Context, target string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	status, body, err := h.call(ctx, http.MethodPost, target, data)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusCreated {
		return fmt.Errorf("POST %s: HTTP %d: %s", target, status, truncate(body, 300))
	}
	return nil
}

func (h *hydraPeer) call(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	return readBody(resp)
}

// seedRefresh obtains n refresh tokens, each through its own authorization
// code flow. The flows run one at a time: concurrent writes to Hydra's
// SQLite file fail with "database is locked" now and then.
func (h *hydraPeer) seedRefresh(ctx context.Context, n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		issued, err := h.refreshToken(ctx)
		if err != nil {
			return nil, h.withLog(err)
		}
		out[i] = issued
	}
	return out, nil
}

// withLog adds the end of Hydra's log to err, because Hydra's error
// responses leave out the cause.
func (h *hydraPeer) withLog(err error) error {
	data, _ := os.ReadFile(h.logPath)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return fmt.Errorf("%w\nend of hydra.log:\n%s", err, data)
}

// refreshToken runs one authorization code flow with PKCE for the public
// client. Login and consent are accepted through the admin API, and the
// grant leaves out openid so that refreshes sign no ID token.
func (h *hydraPeer) refreshToken(ctx context.Context) (string, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", err
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := token.RandomString(32)
	sum := sha256.Sum256([]byte(verifier))
	authorize := h.public + "/oauth2/auth?" + url.Values{
		"response_type": {"code"}, "client_id": {publicClient}, "redirect_uri": {publicRedirect},
		"scope": {familyScope}, "state": {token.RandomString(16)},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}.Encode()

	loginURL, err := redirectOf(ctx, browser, authorize)
	if err != nil {
		return "", fmt.Errorf("authorize: %w", err)
	}
	next, err := h.accept(ctx, "login", loginURL, map[string]any{"subject": seededSubject})
	if err != nil {
		return "", err
	}
	consentURL, err := redirectOf(ctx, browser, next)
	if err != nil {
		return "", fmt.Errorf("after login: %w", err)
	}
	next, err = h.accept(ctx, "consent", consentURL, map[string]any{"grant_scope": strings.Fields(familyScope)})
	if err != nil {
		return "", err
	}
	callback, err := redirectOf(ctx, browser, next)
	if err != nil {
		return "", fmt.Errorf("after consent: %w", err)
	}
	cb, err := url.Parse(callback)
	if err != nil || cb.Query().Get("code") == "" {
		return "", fmt.Errorf("no code in the redirect to %s", truncate([]byte(callback), 300))
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {publicRedirect}, "code_verifier": {verifier}, "client_id": {publicClient}}
	status, body, err := postForm(ctx, http.DefaultClient, h.public+"/oauth2/token", form, "", "")
	if err != nil {
		return "", err
	}
	var resp struct {
		RefreshToken string `json:"refresh_token"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &resp) != nil || resp.RefreshToken == "" {
		return "", fmt.Errorf("code exchange: HTTP %d: %s", status, truncate(body, 300))
	}
	return resp.RefreshToken, nil
}

// accept accepts a login or consent request through the admin API and
// returns the URL Hydra sends the browser to next.
func (h *hydraPeer) accept(ctx context.Context, kind, challengeURL string, body map[string]any) (string, error) {
	u, err := url.Parse(challengeURL)
	if err != nil {
		return "", err
	}
	challenge := u.Query().Get(kind + "_challenge")
	if challenge == "" {
		return "", fmt.Errorf("no %s_challenge in %s", kind, truncate([]byte(challengeURL), 300))
	}
	data, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	target := h.admin + "/admin/oauth2/auth/requests/" + kind + "/accept?" + url.Values{kind + "_challenge": {challenge}}.Encode()
	status, resp, err := h.call(ctx, http.MethodPut, target, data)
	if err != nil {
		return "", err
	}
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if status != http.StatusOK || json.Unmarshal(resp, &out) != nil || out.RedirectTo == "" {
		return "", fmt.Errorf("accept %s: HTTP %d: %s", kind, status, truncate(resp, 300))
	}
	return out.RedirectTo, nil
}

// redirectOf sends a GET and returns the Location of the redirect.
func redirectOf(ctx context.Context, client *http.Client, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<14))
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || loc == "" {
		return "", fmt.Errorf("GET %s: HTTP %d without a redirect: %s", target, resp.StatusCode, truncate(body, 300))
	}
	next, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", err
	}
	return next.String(), nil
}
