// Package keycloak starts a real Keycloak server for smartgate's
// integration tests. The server imports the realm that hospital operators
// deploy (deploy/keycloak/realm-hospital.json), listens on a free loopback
// port, keeps its database in memory and is stopped when the test ends.
//
// Keycloak needs Java 21 or newer, found through JAVA_HOME, the java on
// PATH or the JDKs under /usr/lib/jvm. Its distribution is a Maven
// artifact that Start fetches with mvn into the user's cache folder
// (smartgate/ under $XDG_CACHE_HOME or $HOME/.cache) on first use. A
// missing tool fails the test with what to install: these tests are never
// skipped. The package builds on Linux only, because it uses Pdeathsig to
// stop Keycloak when the test binary dies.
package keycloak

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/smartgate/smartgate/internal/testenv"
)

// Version is the Keycloak release that the tests run.
const Version = "26.7.3"

const (
	realmName = "hospital"
	clientID  = "smartgate"

	// secretVariable is the placeholder for the client secret in the realm
	// file. Keycloak replaces ${NAME} placeholders with environment
	// variables when it imports a realm at startup.
	secretVariable = "SMARTGATE_UPSTREAM_CLIENT_SECRET"

	adminUser = "admin"

	startTimeout = 180 * time.Second
	stopTimeout  = 15 * time.Second
	startTries   = 3
	minJava      = 21
)

// buildOptions are the Keycloak options that are fixed when Keycloak
// builds its Quarkus application. The first start-dev with them rebuilds
// the application, which took about 30 s on a 2-core machine, so Start
// keeps the built application in the cache, under a name derived from
// these options.
var buildOptions = []string{"--db=dev-mem"}

// Instance is a running Keycloak with the hospital realm.
type Instance struct {
	// Issuer is the realm's issuer URL, http://127.0.0.1:PORT/realms/hospital.
	Issuer string
	// ClientID and ClientSecret are the credentials of smartgate's
	// confidential client in the realm.
	ClientID     string
	ClientSecret string
}

// user is a test user that Start creates in the realm.
type user struct {
	Username  string
	Password  string
	FirstName string
	LastName  string
	Email     string
	PatientID string // empty: the user has no patient_id attribute
}

// testUsers share their usernames and passwords with the users of the
// Node test provider in testenv, so a test can run against either.
var testUsers = []user{
	{
		Username: testenv.PatientUser, Password: testenv.PatientPassword,
		FirstName: "Alice", LastName: "Example", Email: "alice@example.org",
		PatientID: testenv.PatientID,
	},
	{
		Username: testenv.ClinicianUser, Password: testenv.ClinicianPass,
		FirstName: "Bob", LastName: "Clinician", Email: "bob@example.org",
	},
}

// Start starts Keycloak with the hospital realm, smartgate's client
// registered with redirectURIs and a random client secret, and the test
// users alice (with patient_id) and bob (without). The server is stopped
// and its files removed when cleanup runs. A start took 12 to 25 s on a
// 2-core machine, and about 50 s when it included the build of the Quarkus
// application, so a test binary should start Keycloak once and share it.
func Start(t testing.TB, cleanup *testenv.Cleanup, redirectURIs []string) *Instance {
	t.Helper()
	if len(redirectURIs) == 0 {
		t.Fatal("keycloak: Start needs at least one redirect URI, such as smartgate's <public_url>/callback")
	}
	javaHome, err := findJava()
	if err != nil {
		t.Fatalf("keycloak: %v", err)
	}
	cache, err := cacheDir()
	if err != nil {
		t.Fatalf("keycloak: %v", err)
	}
	dist, err := distribution(cache)
	if err != nil {
		t.Fatalf("keycloak: %v", err)
	}

	secret := randomHex(t)
	adminPassword := randomHex(t)
	env := append(baseEnv(),
		"JAVA_HOME="+javaHome,
		"KC_BOOTSTRAP_ADMIN_USERNAME="+adminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD="+adminPassword,
		secretVariable+"="+secret,
	)

	var srv *server
	for try := 1; ; try++ {
		srv, err = startServer(dist, cache, redirectURIs, env)
		if srv != nil {
			cleanup.Add(srv.stop)
		}
		if err == nil {
			break
		}
		// The ports are free when chosen but another process can take
		// them before Keycloak binds them.
		if srv == nil || try == startTries || !strings.Contains(srv.output.String(), "already in use") {
			t.Fatalf("keycloak: %v", err)
		}
		t.Logf("keycloak: a port was taken before Keycloak bound it; starting again (try %d of %d)", try+1, startTries)
		srv.stop()
	}
	t.Logf("keycloak: started in %s: %s", srv.startup.Round(100*time.Millisecond), srv.issuer)
	if strings.Contains(srv.output.String(), "Quarkus augmentation completed") {
		t.Logf("keycloak: the start included a build of Keycloak's Quarkus application for %v, saved in %s for later runs",
			buildOptions, buildDir(cache))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createUsers(ctx, srv.baseURL, adminPassword); err != nil {
		t.Fatalf("keycloak: %v\nKeycloak output (end):\n%s", err, srv.output.tail(60))
	}
	return &Instance{Issuer: srv.issuer, ClientID: clientID, ClientSecret: secret}
}

// server is a Keycloak process, started through bin/kc.sh in its own
// process group.
type server struct {
	cmd     *exec.Cmd
	home    string
	baseURL string
	issuer  string
	output  *logBuffer
	exited  chan struct{}
	startup time.Duration
	once    sync.Once
}

// startServer prepares a home folder for one run and starts Keycloak in
// it. It returns the server whenever a process was started, also with an
// error, so that the caller can stop it.
func startServer(dist, cache string, redirectURIs, env []string) (*server, error) {
	home, err := prepareHome(dist, cache)
	if err != nil {
		return nil, err
	}
	if err := writeRealm(filepath.Join(home, "data", "import", "realm-hospital.json"), redirectURIs); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}

	// Keycloak opens its management interface (default port 9000) only
	// when something is exposed on it, such as health or metrics, which
	// are off here. The port is set anyway, so that parallel test
	// binaries would not share port 9000 if that changes.
	args := append([]string{"start-dev",
		"--http-host=127.0.0.1",
		"--http-port=" + strconv.Itoa(ports[0]),
		"--http-management-port=" + strconv.Itoa(ports[1]),
		"--import-realm",
	}, buildOptions...)
	cmd := exec.Command(filepath.Join(home, "bin", "kc.sh"), args...)
	cmd.Dir = home
	cmd.Env = env
	output := &logBuffer{}
	cmd.Stdout, cmd.Stderr = output, output
	// Keycloak runs as a child of kc.sh, so stop signals go to the
	// process group. Pdeathsig stops kc.sh, which forwards SIGTERM to
	// Java, when the test binary dies without running its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}

	srv := &server{
		cmd:     cmd,
		home:    home,
		baseURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		output:  output,
		exited:  make(chan struct{}),
	}
	srv.issuer = srv.baseURL + "/realms/" + realmName
	began := time.Now()
	if err := srv.run(); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if err := srv.waitReady(); err != nil {
		return srv, err
	}
	srv.startup = time.Since(began)
	saveBuild(home, cache)
	return srv, nil
}

// run starts the process from a goroutine locked to its OS thread. Linux
// sends Pdeathsig when the thread that started the child exits, and the
// Go runtime may end an unlocked thread at any time, so the goroutine
// keeps the thread until the process has exited.
func (s *server) run() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

// waitReady polls the realm's discovery document until it returns 200.
func (s *server) waitReady() error {
	client := &http.Client{Timeout: 5 * time.Second}
	discovery := s.issuer + "/.well-known/openid-configuration"
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(discovery)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("Keycloak exited before it served %s (%v); its output (end):\n%s",
				discovery, s.cmd.ProcessState, s.output.tail(60))
		case <-time.After(250 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("Keycloak did not serve %s within %s; its output (end):\n%s",
				discovery, startTimeout, s.output.tail(60))
		}
	}
}

// stop sends SIGTERM to the process group, SIGKILL after stopTimeout, and
// removes the home folder.
func (s *server) stop() {
	s.once.Do(func() {
		pgid := s.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-s.exited
		}
		os.RemoveAll(s.home)
	})
}

// baseEnv returns this process's environment without the variables that
// configure Keycloak, Quarkus or its JVM, so that a developer's settings
// cannot change the test server.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "KC_"), strings.HasPrefix(name, "KEYCLOAK_"),
			strings.HasPrefix(name, "QUARKUS_"), strings.HasPrefix(name, "JAVA_"),
			name == "JDK_JAVA_OPTIONS", name == secretVariable:
			continue
		}
		env = append(env, kv)
	}
	return env
}

// javaVersion matches the version in the first line of `java -version`,
// as in `openjdk version "25.0.1" 2025-10-21` or `java version "1.8.0_412"`.
var javaVersion = regexp.MustCompile(`version "(?:1\.)?(\d+)`)

// findJava returns the home folder of a JDK or JRE of version minJava or
// newer. It checks JAVA_HOME, then the java on PATH, then the JDKs under
// /usr/lib/jvm, where Debian and Ubuntu packages install them.
func findJava() (string, error) {
	var candidates []string
	if home := os.Getenv("JAVA_HOME"); home != "" {
		candidates = append(candidates, home)
	}
	if bin, err := exec.LookPath("java"); err == nil {
		if real, err := filepath.EvalSymlinks(bin); err == nil {
			candidates = append(candidates, filepath.Dir(filepath.Dir(real)))
		}
	}
	installed, _ := filepath.Glob("/usr/lib/jvm/*")
	candidates = append(candidates, installed...)

	var older []string
	seen := map[string]bool{}
	for _, home := range candidates {
		// Debian links some names under /usr/lib/jvm to others.
		if real, err := filepath.EvalSymlinks(home); err == nil {
			if seen[real] {
				continue
			}
			seen[real] = true
		}
		out, err := exec.Command(filepath.Join(home, "bin", "java"), "-version").CombinedOutput()
		if err != nil {
			continue
		}
		m := javaVersion.FindSubmatch(out)
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(string(m[1]))
		if major >= minJava {
			return home, nil
		}
		older = append(older, fmt.Sprintf("%s (Java %d)", home, major))
	}
	listed := "none"
	if len(older) > 0 {
		listed = strings.Join(older, ", ")
	}
	return "", fmt.Errorf("no Java %d or newer found in JAVA_HOME, PATH or /usr/lib/jvm (older versions found: %s); "+
		"install a JDK %d or newer, for example Eclipse Temurin, and set JAVA_HOME to it",
		minJava, listed, minJava)
}

// cacheDir returns smartgate's folder in the user's cache folder and
// creates it if needed.
func cacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache folder for the Keycloak distribution: %w", err)
	}
	dir := filepath.Join(base, "smartgate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create the cache folder: %w", err)
	}
	return dir, nil
}

// distribution returns the folder of the extracted Keycloak distribution
// in the cache. It fetches the tarball with mvn and extracts it when they
// are missing. Both steps write to a temporary name and rename the result
// into place, so a test binary that runs at the same time or was
// interrupted never leaves a partial tarball or folder for the next run.
func distribution(cache string) (string, error) {
	dist := filepath.Join(cache, "keycloak-"+Version)
	if _, err := os.Stat(filepath.Join(dist, "bin", "kc.sh")); err == nil {
		return dist, nil
	}
	tarball := filepath.Join(cache, "keycloak-quarkus-dist-"+Version+".tar.gz")
	if _, err := os.Stat(tarball); err != nil {
		if err := fetch(cache, tarball); err != nil {
			return "", err
		}
	}

	tmp, err := os.MkdirTemp(cache, "keycloak-"+Version+".extract-")
	if err != nil {
		return "", fmt.Errorf("extract Keycloak: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := extract(tarball, tmp); err != nil {
		return "", fmt.Errorf("extract %s: %w", tarball, err)
	}
	if err := os.Rename(filepath.Join(tmp, "keycloak-"+Version), dist); err != nil {
		// Another test binary may have renamed its copy into place first.
		if _, statErr := os.Stat(filepath.Join(dist, "bin", "kc.sh")); statErr == nil {
			return dist, nil
		}
		return "", fmt.Errorf("move the extracted Keycloak into the cache: %w", err)
	}
	return dist, nil
}

// fetch downloads the Keycloak distribution from Maven Central to tarball.
func fetch(cache, tarball string) error {
	artifact := "org.keycloak:keycloak-quarkus-dist:" + Version + ":tar.gz"
	mvn, err := exec.LookPath("mvn")
	if err != nil {
		return fmt.Errorf("the Keycloak distribution is missing and mvn, which fetches it, was not found; "+
			"install Maven (Debian: apt-get install -y maven), or download %s from Maven Central to %s",
			artifact, tarball)
	}
	tmp, err := os.MkdirTemp(cache, "keycloak-download-")
	if err != nil {
		return fmt.Errorf("fetch Keycloak: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(mvn, "-q", "-B", "dependency:copy", "-Dartifact="+artifact, "-DoutputDirectory="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fetch %s with mvn: %w\n%s", artifact, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, filepath.Base(tarball)), tarball); err != nil {
		return fmt.Errorf("move the Keycloak tarball into the cache: %w", err)
	}
	return nil
}

// extract unpacks the regular files and folders of a .tar.gz file into dir.
func extract(tarball, dir string) error {
	f, err := os.Open(tarball)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if !filepath.IsLocal(hdr.Name) {
			return fmt.Errorf("invalid entry %q: the path leaves the target folder", hdr.Name)
		}
		target := filepath.Join(dir, hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, hdr.FileInfo().Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q has type %q, which extract does not support", hdr.Name, hdr.Typeflag)
		}
	}
}

func writeFile(path string, r io.Reader, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// buildDir returns the cache folder for the Quarkus application that
// start-dev builds with buildOptions.
func buildDir(cache string) string {
	sum := sha256.Sum256([]byte(strings.Join(buildOptions, "\n")))
	return filepath.Join(cache, fmt.Sprintf("keycloak-%s-dev-build-%x", Version, sum[:6]))
}

// prepareHome creates a Keycloak home folder for one run in the system's
// temporary folder. Keycloak writes its data and the Quarkus application
// it builds below its home, which kc.sh derives from its own location.
// So the home has its own copy of kc.sh, of lib/quarkus (the built
// application, a few MB) and of data/, while the large read-only parts
// are symbolic links to the cached distribution. Runs then share no
// state, and the cache is never written by a run.
func prepareHome(dist, cache string) (home string, err error) {
	home, err = os.MkdirTemp("", "smartgate-keycloak-")
	if err != nil {
		return "", fmt.Errorf("create the Keycloak home folder: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(home)
			err = fmt.Errorf("prepare the Keycloak home folder: %w", err)
		}
	}()

	for _, dir := range []string{"bin", "lib", filepath.Join("data", "import")} {
		if err := os.MkdirAll(filepath.Join(home, dir), 0o755); err != nil {
			return "", err
		}
	}
	for _, name := range []string{"conf", "themes", "providers", filepath.Join("lib", "lib"), filepath.Join("lib", "app")} {
		if err := os.Symlink(filepath.Join(dist, name), filepath.Join(home, name)); err != nil {
			return "", err
		}
	}
	// kc.sh and quarkus-run.jar locate the home from their own real path.
	for _, name := range []string{filepath.Join("bin", "kc.sh"), filepath.Join("lib", "quarkus-run.jar")} {
		if err := copyFile(filepath.Join(dist, name), filepath.Join(home, name)); err != nil {
			return "", err
		}
	}
	built := filepath.Join(buildDir(cache), "quarkus")
	if _, err := os.Stat(built); err != nil {
		built = filepath.Join(dist, "lib", "quarkus")
	}
	if err := copyDir(built, filepath.Join(home, "lib", "quarkus")); err != nil {
		return "", err
	}
	return home, nil
}

// saveBuild copies the Quarkus application that start-dev built in home
// to the cache, unless the cache has it already. A failure only costs the
// next run the build time, so it is ignored.
func saveBuild(home, cache string) {
	dir := buildDir(cache)
	if _, err := os.Stat(dir); err == nil {
		return
	}
	tmp, err := os.MkdirTemp(cache, filepath.Base(dir)+".save-")
	if err != nil {
		return
	}
	defer os.RemoveAll(tmp)
	if err := copyDir(filepath.Join(home, "lib", "quarkus"), filepath.Join(tmp, "quarkus")); err != nil {
		return
	}
	_ = os.Rename(tmp, dir)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	return writeFile(dst, in, info.Mode().Perm())
}

// copyDir copies a folder of regular files, without subfolders.
func copyDir(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return fmt.Errorf("copy %s: %s is not a regular file", src, e.Name())
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// realmFile returns the path of the realm import for hospital operators.
func realmFile() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "keycloak", "realm-hospital.json")
}

// writeRealm writes a copy of the operators' realm file to path, with the
// smartgate client's redirect URIs replaced by redirectURIs. The client
// secret placeholder stays, and Keycloak fills it in from the environment.
func writeRealm(path string, redirectURIs []string) error {
	src := realmFile()
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read the realm file: %w", err)
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var realm map[string]any
	if err := dec.Decode(&realm); err != nil {
		return fmt.Errorf("parse %s: %w", src, err)
	}
	clients, _ := realm["clients"].([]any)
	found := false
	for _, c := range clients {
		client, ok := c.(map[string]any)
		if ok && client["clientId"] == clientID {
			client["redirectUris"] = redirectURIs
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s has no client %q", src, clientID)
	}

	out, err := json.MarshalIndent(realm, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the realm: %w", err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("write the realm file: %w", err)
	}
	return nil
}

// createUsers adds testUsers to the realm through the admin REST API, as
// the bootstrap admin of the master realm.
func createUsers(ctx context.Context, baseURL, adminPassword string) error {
	token, err := adminToken(ctx, baseURL, adminPassword)
	if err != nil {
		return err
	}
	usersURL := baseURL + "/admin/realms/" + realmName + "/users"
	for _, u := range testUsers {
		rep := map[string]any{
			"username":        u.Username,
			"enabled":         true,
			"firstName":       u.FirstName,
			"lastName":        u.LastName,
			"email":           u.Email,
			"emailVerified":   true,
			"requiredActions": []string{},
			"credentials": []map[string]any{
				{"type": "password", "value": u.Password, "temporary": false},
			},
		}
		if u.PatientID != "" {
			rep["attributes"] = map[string][]string{"patient_id": {u.PatientID}}
		}
		if err := adminCall(ctx, http.MethodPost, usersURL, token, rep, nil); err != nil {
			return fmt.Errorf("create user %s: %w", u.Username, err)
		}

		// Keycloak drops attributes that the realm's user profile does
		// not declare, without an error.
		var found []struct {
			Attributes map[string][]string `json:"attributes"`
		}
		query := usersURL + "?exact=true&username=" + url.QueryEscape(u.Username)
		if err := adminCall(ctx, http.MethodGet, query, token, nil, &found); err != nil {
			return fmt.Errorf("read user %s: %w", u.Username, err)
		}
		if len(found) != 1 {
			return fmt.Errorf("read user %s: found %d users", u.Username, len(found))
		}
		if got := found[0].Attributes["patient_id"]; u.PatientID != "" && !slices.Equal(got, []string{u.PatientID}) {
			return fmt.Errorf("user %s has patient_id %q after creation, expected %q: "+
				"the realm's user profile must declare the attribute patient_id", u.Username, got, u.PatientID)
		}
	}
	return nil
}

// adminToken returns an access token of the bootstrap admin, from the
// master realm's admin-cli client.
func adminToken(ctx context.Context, baseURL, adminPassword string) (string, error) {
	form := url.Values{
		"grant_type": {"password"},
		"client_id":  {"admin-cli"},
		"username":   {adminUser},
		"password":   {adminPassword},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		baseURL+"/realms/master/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := do(req, &tok); err != nil {
		return "", fmt.Errorf("get an admin token: %w", err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("get an admin token: the response has no access_token")
	}
	return tok.AccessToken, nil
}

func adminCall(ctx context.Context, method, target, token string, body, out any) error {
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(req, out)
}

// do sends req and decodes a JSON response into out, if out is not nil.
// A status outside 2xx is an error that contains the response body.
func do(req *http.Request, out any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read the response: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode the response: %w", req.Method, req.URL, err)
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomHex(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("keycloak: %v", err)
	}
	return hex.EncodeToString(b)
}

// logBuffer collects the output of the Keycloak process.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines of the output.
func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
