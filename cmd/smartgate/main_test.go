package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/token"
)

// validConfig is a complete configuration; %s are the Redis address, the
// upstream issuer, the listen and admin addresses, and the two key files.
const validConfig = `server:
  listen: %s
  admin_listen: %s
  public_url: http://%s
  cookie_secret: test-cookie-secret-0123456789abcdefghij
upstream:
  issuer: %s
  client_id: smartgate
  client_secret: smartgate-secret
redis:
  addr: %s
fhir:
  base_urls: [http://%s/fhir]
keys:
  access_token_file: %s
  id_token_file: %s
clients:
  - client_id: app
    name: App
    type: public
    redirect_uris: [http://127.0.0.1/callback]
    scopes: [launch/patient, patient/*.rs]
log:
  format: json
`

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	base := fmt.Sprintf(validConfig, "127.0.0.1:8080", "127.0.0.1:9090", "127.0.0.1:8080",
		"https://idp.example.org/realms/hospital", "127.0.0.1:6379", "127.0.0.1:8080", "a.pem", "b.pem")
	cases := []struct {
		name   string
		config string
		code   int
		want   string // fragment of the output
	}{
		{"valid", base, 0, "configuration is valid"},
		{"misspelt key", strings.Replace(base, "  cookie_secret:", "  cookie_secrt:", 1), 1,
			`line 5: unknown key "cookie_secrt" in server`},
		{"short cookie secret", strings.Replace(base, "test-cookie-secret-0123456789abcdefghij", "short", 1), 1,
			"line 5: server.cookie_secret: must be at least 32 characters"},
		{"unknown client type", strings.Replace(base, "type: public", "type: spa", 1), 1,
			`line 20: clients[0].type: "spa" is not public`},
		{"http redirect on a public host", strings.Replace(base, "http://127.0.0.1/callback", "http://app.example.org/cb", 1), 1,
			`line 21: clients[0].redirect_uris[0]: "http://app.example.org/cb" uses http`},
		{"unset variable", strings.Replace(base, "smartgate-secret", "${SMARTGATE_TEST_UNSET}", 1), 1,
			"line 9: upstream.client_secret: environment variable SMARTGATE_TEST_UNSET is not set"},
		{"bad scope pattern", strings.Replace(base, "patient/*.rs]", "patient/*.sr]", 1), 1,
			"line 22: clients[0].scopes[1]:"},
		{"unknown consent text", base + "consent:\n  text:\n    en:\n      page.titel: Hi\n", 1,
			`"page.titel" is not a message id`},
		{"not YAML", "server: [", 1, "invalid YAML"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			code := run([]string{"check-config", path}, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; output:\n%s%s", code, tc.code, out.String(), errOut.String())
			}
			if got := out.String() + errOut.String(); !strings.Contains(got, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, got)
			}
		})
	}
}

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "smartgate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "smartgate")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build smartgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writePEM(t *testing.T, path string, key any) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// process is a running `smartgate serve`.
type process struct {
	cmd    *exec.Cmd
	public string
	admin  string
	logs   *bytes.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // its exit error, once done is closed
}

// startServe runs the smartgate binary with a configuration for the test
// services.
func startServe(t *testing.T, services *testenv.Cleanup, redis *testenv.Redis) *process {
	t.Helper()
	dir := t.TempDir()
	public, admin := freeAddr(t), freeAddr(t)
	up := testenv.StartUpstream(t, services, "keycloak", "http://"+public+"/callback")
	writeKeys(t, dir)
	path := writeServeConfig(t, dir, "config.yaml", public, public, admin, up.Issuer, redis.Addr)
	return runServe(t, path, public, admin)
}

// writeKeys writes the two signing keys that writeServeConfig names.
func writeKeys(t *testing.T, dir string) {
	t.Helper()
	es, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	writePEM(t, filepath.Join(dir, "a.pem"), es)
	writePEM(t, filepath.Join(dir, "b.pem"), rs)
}

// writeServeConfig writes a configuration whose public URL is public and
// whose listeners are listen and admin.
func writeServeConfig(t *testing.T, dir, name, public, listen, admin, issuer, redisAddr string) string {
	t.Helper()
	cfg := fmt.Sprintf(validConfig, listen, admin, public, issuer, redisAddr, public,
		filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem"))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runServe starts `smartgate serve` and waits until it is ready.
func runServe(t *testing.T, path, listen, admin string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, "serve", "--config", path), public: listen, admin: admin,
		logs: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	p.waitStatus(t, "/readyz", http.StatusOK)
	return p
}

// waitStatus polls an admin path until it returns want.
func (p *process) waitStatus(t *testing.T, path string, want int) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	last := 0
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + p.admin + path); err == nil {
			resp.Body.Close()
			if last = resp.StatusCode; last == want {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d (last %d); logs:\n%s", path, want, last, p.logs)
}

func TestServeReadinessFollowsRedis(t *testing.T) {
	var services testenv.Cleanup
	t.Cleanup(services.Run)
	redis := testenv.StartRedis(t, &services)
	p := startServe(t, &services, redis)

	if code := run([]string{"healthcheck", "--url", "http://" + p.admin + "/readyz"}, io.Discard, io.Discard); code != 0 {
		t.Errorf("healthcheck while ready: exit %d, want 0", code)
	}
	redis.Stop()
	p.waitStatus(t, "/readyz", http.StatusServiceUnavailable)
	if code := run([]string{"healthcheck", "--url", "http://" + p.admin + "/readyz"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("healthcheck while Redis is down: exit %d, want 1", code)
	}
	p.waitStatus(t, "/healthz", http.StatusOK)
	redis.Restart(t)
	p.waitStatus(t, "/readyz", http.StatusOK)
}

func TestServeFinishesRequestOnSIGTERM(t *testing.T) {
	var services testenv.Cleanup
	t.Cleanup(services.Run)
	p := startServe(t, &services, testenv.StartRedis(t, &services))

	// A token request whose body is still on its way when SIGTERM comes.
	conn, err := net.Dial("tcp", p.public)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := "grant_type=refresh_token&client_id=app&refresh_token=sgr_unknown.unknown"
	fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: %d\r\nConnection: close\r\n\r\n%s", p.public, len(body), body[:10])
	time.Sleep(200 * time.Millisecond) // let the server start reading the request
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := io.WriteString(conn, body[10:]); err != nil {
		t.Fatalf("finish the request body after SIGTERM: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to the in-flight request: %v; logs:\n%s", err, p.logs)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("in-flight token request: %d, want 400 (its refresh token is unknown)", resp.StatusCode)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("smartgate exited with %v after SIGTERM; logs:\n%s", p.err, p.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("smartgate did not exit after SIGTERM")
	}
}

// TestSIGKILLDuringRotations kills the gateway while clients rotate
// refresh tokens as fast as they can. Each rotation is one Redis script,
// so every family afterwards is complete, and either still on the last
// token its client received or one rotation further, whose response was
// lost.
func TestSIGKILLDuringRotations(t *testing.T) {
	var services testenv.Cleanup
	t.Cleanup(services.Run)
	r := testenv.StartRedis(t, &services)
	p := startServe(t, &services, r)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	st := store.New(rdb, config.DefaultKeyPrefix)
	ctx := context.Background()

	const families = 40
	type fam struct {
		gid  string
		last string // the last refresh token the client received
	}
	fams := make([]*fam, families)
	for i := range fams {
		gid := token.NewGrantID()
		_, codeHash := token.NewHandle(token.CodePrefix, gid)
		rt, rtHash := token.NewHandle(token.RefreshPrefix, gid)
		g := store.Grant{ClientID: "app", Scope: "launch/patient patient/*.rs", Subject: "u", Patient: "p",
			Audience: "http://" + p.public + "/fhir", RedirectURI: "http://127.0.0.1/callback", CodeChallenge: "c"}
		terms := store.RefreshTerms{Issue: true, Rotate: true, IdleTimeout: time.Hour}
		if err := st.SaveCode(ctx, gid, codeHash, g, terms, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Redeem(ctx, store.Redemption{GrantID: gid, SecretHash: codeHash, ClientID: "app",
			RedirectURI: g.RedirectURI, Challenge: "c", RefreshHash: rtHash, AccessLifetime: time.Minute}); err != nil {
			t.Fatal(err)
		}
		fams[i] = &fam{gid: gid, last: rt}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 2 * time.Second}
	for _, f := range fams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.PostForm("http://"+p.public+"/token", url.Values{"grant_type": {"refresh_token"},
					"refresh_token": {f.last}, "client_id": {"app"}})
				if err != nil {
					return // the gateway is gone
				}
				var body struct {
					RefreshToken string `json:"refresh_token"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || body.RefreshToken == "" {
					return
				}
				f.last = body.RefreshToken
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()

	fields := []string{"cur", "cid", "scope", "sub", "pat", "aud", "rot", "idle", "abs", "created"}
	rotated := 0
	for _, f := range fams {
		h := rdb.HGetAll(ctx, config.DefaultKeyPrefix+"fam:{"+f.gid+"}").Val()
		if len(h) == 0 {
			t.Errorf("family %s is gone", f.gid)
			continue
		}
		for _, k := range fields {
			if _, ok := h[k]; !ok {
				t.Errorf("family %s lacks %s: half-written", f.gid, k)
			}
		}
		_, lastHash, _ := token.ParseHandle(token.RefreshPrefix, f.last)
		switch lastHash {
		case h["cur"]:
		case h["prev"]:
			rotated++ // rotated by the gateway, response lost in the kill
		default:
			t.Errorf("family %s is on neither the client's last token nor the next one", f.gid)
		}
	}
	t.Logf("%d families, %d with a rotation whose response was lost", families, rotated)
}

// TestTwoProcessesShareRedis runs two smartgate processes with one
// configuration and one Redis behind a proxy that alternates between
// them, so a login starts on one process and finishes on the other.
func TestTwoProcessesShareRedis(t *testing.T) {
	var services testenv.Cleanup
	t.Cleanup(services.Run)
	r := testenv.StartRedis(t, &services)
	dir := t.TempDir()
	public := freeAddr(t)
	up := testenv.StartUpstream(t, &services, "keycloak", "http://"+public+"/callback")
	writeKeys(t, dir)
	var procs []*process
	for _, name := range []string{"a.yaml", "b.yaml"} {
		listen, admin := freeAddr(t), freeAddr(t)
		procs = append(procs, runServe(t, writeServeConfig(t, dir, name, public, listen, admin, up.Issuer, r.Addr), listen, admin))
	}

	var (
		mu     sync.Mutex
		next   int
		served = map[string]int{} // path -> index of the process that served it last
	)
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		mu.Lock()
		i := next % len(procs)
		next++
		served[pr.In.URL.Path] = i
		mu.Unlock()
		target, _ := url.Parse("http://" + procs[i].public)
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	ln, err := net.Listen("tcp", public)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	const redirect = "http://127.0.0.1:9/callback"
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {redirect},
		"scope": {"launch/patient patient/*.rs"}, "state": {"two-processes"}, "aud": {"http://" + public + "/fhir"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	b := testenv.NewBrowser(t, redirect)
	login := b.Get("http://" + public + "/authorize?" + q.Encode())
	consentPage := b.LogIn(login, testenv.PatientUser, testenv.PatientPassword)
	done := b.Submit(consentPage.Form(t), url.Values{"decision": {"allow"}})
	loc, err := url.Parse(done.Location)
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code after the login: %d %q", done.Status, done.Location)
	}
	mu.Lock()
	if served["/authorize"] == served["/callback"] {
		t.Errorf("/authorize and /callback were served by the same process; the test proves nothing")
	}
	mu.Unlock()
	resp, err := http.PostForm("http://"+public+"/token", url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {verifier}, "client_id": {"app"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("code exchange across processes: %d", resp.StatusCode)
	}
}
