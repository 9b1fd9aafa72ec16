// Package testenv starts the real components that smartgate's integration
// tests run against, each on a free loopback port and stopped when the
// test ends: redis-server, an upstream OpenID Connect provider (npm
// oidc-provider shaped like a Keycloak realm or an Entra ID tenant), a
// SMART app built on npm fhirclient, and smartgate itself, built by the
// same code as `smartgate serve`.
//
// The Node programs live in node/ beside this file; `npm ci` there
// installs their packages (the test command does it). A missing program
// fails the test with the command that installs it: these tests are never
// skipped.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// NodeDir returns the folder of the Node programs.
func NodeDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate its own source folder")
	}
	dir := filepath.Join(filepath.Dir(file), "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		t.Fatalf("testenv: Node packages are missing; run: (cd %s && npm ci)", dir)
	}
	return dir
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Redis is a redis-server process.
type Redis struct {
	Addr string
	cmd  *exec.Cmd
	args []string
}

// Stop stops the server, as an outage would.
func (r *Redis) Stop() { stop(r.cmd) }

// Restart starts the server again on the same port after Stop.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	cmd := exec.Command(r.cmd.Path, r.args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: restart redis-server: %v", err)
	}
	r.cmd = cmd
	if err := waitRedis(r.Addr, cmd); err != nil {
		t.Fatalf("testenv: redis-server did not come back: %v", err)
	}
}

// StartRedis starts a private redis-server with persistence off. It is
// stopped when the test (or the TestMain cleanup list) ends.
func StartRedis(t testing.TB, cleanup *Cleanup) *Redis {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("testenv: redis-server not found; install it (Debian: apt-get install -y redis-server)")
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port := freePort(t)
		dir, err := os.MkdirTemp("", "smartgate-redis-")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "",
			"--appendonly", "no", "--dir", dir, "--protected-mode", "yes"}
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatalf("testenv: start redis-server: %v", err)
		}
		r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, args: args}
		if lastErr = waitRedis(r.Addr, cmd); lastErr == nil {
			cleanup.Add(func() { stop(r.cmd); os.RemoveAll(dir) })
			return r
		}
		stop(cmd)
		os.RemoveAll(dir)
	}
	t.Fatalf("testenv: redis-server did not come up: %v", lastErr)
	return nil
}

func waitRedis(addr string, cmd *exec.Cmd) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Cleanup collects stop functions for services shared by a whole test
// binary (started from TestMain) or by one test.
type Cleanup struct {
	mu  sync.Mutex
	fns []func()
}

// Add registers fn to run at Run, in reverse order of registration.
func (c *Cleanup) Add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

// Run stops everything registered.
func (c *Cleanup) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// node starts a Node program from NodeDir with env, and returns the URL
// it prints on its first line ("listening <url>"). Its stdin is a pipe, so
// it exits when this process does, even after a crash.
func node(t testing.TB, cleanup *Cleanup, script string, env []string) (string, *exec.Cmd) {
	dir := NodeDir(t)
	bin, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("testenv: node not found; install Node.js 20 or later")
	}
	cmd := exec.Command(bin, script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var stderr LockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", script, err)
	}
	cleanup.Add(func() { _ = stdin.Close(); stop(cmd) })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		url, found := strings.CutPrefix(line, "listening ")
		if !ok || !found {
			t.Fatalf("testenv: %s did not start; its output:\n%s", script, stderr.String())
		}
		return url, cmd
	case <-time.After(30 * time.Second):
		t.Fatalf("testenv: %s did not start in 30 s; its output:\n%s", script, stderr.String())
	}
	return "", nil
}

// LockedBuffer collects output written from several goroutines, such as
// a child process's stdout and stderr, and is safe to read meanwhile.
type LockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Upstream users of the test provider (node/upstream.mjs).
const (
	PatientUser     = "alice"
	PatientPassword = "alice-password"
	PatientID       = "pat-alice-123"
	PatientName     = "Alice Example"
	ClinicianUser   = "bob"
	ClinicianPass   = "bob-password"
	StaffUser       = "carol" // neither a patient record nor a clinician role
	StaffPassword   = "carol-password"
	UpstreamClient  = "smartgate"
	UpstreamSecret  = "smartgate-secret"
)

// Upstream is a running test identity provider.
type Upstream struct {
	Issuer string
	Shape  string
	cmd    *exec.Cmd
}

// Freeze stops the provider's process without closing its sockets, so
// that it accepts connections and never responds, like a hung server.
func (u *Upstream) Freeze() { _ = u.cmd.Process.Signal(syscall.SIGSTOP) }

// Thaw lets a frozen provider run again.
func (u *Upstream) Thaw() { _ = u.cmd.Process.Signal(syscall.SIGCONT) }

// StartUpstream starts node/upstream.mjs in the given shape ("keycloak" or
// "entra"), with smartgate's callback URLs registered for its client.
func StartUpstream(t testing.TB, cleanup *Cleanup, shape string, redirectURIs ...string) *Upstream {
	issuer, cmd := node(t, cleanup, "upstream.mjs", []string{
		"PORT=0", "SHAPE=" + shape, "CLIENT_ID=" + UpstreamClient, "CLIENT_SECRET=" + UpstreamSecret,
		"REDIRECT_URIS=" + strings.Join(redirectURIs, ","),
	})
	return &Upstream{Issuer: issuer, Shape: shape, cmd: cmd}
}

// StartSmartApp starts node/smartapp.cjs, a SMART app on fhirclient, and
// returns its base URL. Its redirect URI is <base>/callback.
func StartSmartApp(t testing.TB, cleanup *Cleanup) string {
	url, _ := node(t, cleanup, "smartapp.cjs", []string{"PORT=0"})
	return url
}
