package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validYAML is a small configuration that loads without problems. Cases
// edit it by replacing text, and find expected line numbers by text, so
// that adding a line here does not break them.
const validYAML = `server:
  public_url: https://smart.example.org
  cookie_secret: 0123456789abcdef0123456789abcdef
upstream:
  issuer: https://idp.example.org/realms/hospital
  client_id: smartgate
  client_secret: upstream-secret
redis:
  addr: 127.0.0.1:6379
fhir:
  base_urls:
    - https://fhir.example.org/r4
keys:
  access_token_file: keys/access.pem
  id_token_file: keys/id.pem
clients:
  - client_id: my-health
    name: My Health
    type: public
    redirect_uris:
      - https://app.example.org/callback
    scopes:
      - patient/*.rs
      - launch/patient
      - openid
  - client_id: growth-chart
    name: Growth Chart
    type: confidential-symmetric
    redirect_uris:
      - https://growth.example.org/callback
    scopes:
      - patient/Observation.rs
    client_secret: growth-chart-secret-0123456789abcdef
`

// edit returns doc with the first old replaced by replacement. It fails
// the test when old is not in doc, so a stale case cannot pass silently.
func edit(t *testing.T, doc, old, replacement string) string {
	t.Helper()
	if !strings.Contains(doc, old) {
		t.Fatalf("the configuration does not contain %q", old)
	}
	return strings.Replace(doc, old, replacement, 1)
}

// lineOf returns the 1-based number of the first line of doc containing text.
func lineOf(t *testing.T, doc, text string) int {
	t.Helper()
	for i, l := range strings.Split(doc, "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("no line of the configuration contains %q", text)
	return 0
}

// loadProblems loads doc and returns the problems of the *Error, or nil
// when it loads.
func loadProblems(t *testing.T, doc string) []Problem {
	t.Helper()
	cfg, err := Load("test.yaml", []byte(doc))
	if err == nil {
		if cfg == nil {
			t.Fatal("Load returned neither a configuration nor an error")
		}
		return nil
	}
	var cfgErr *Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("Load error is %T, want *Error: %v", err, err)
	}
	if cfgErr.File != "test.yaml" {
		t.Errorf("Error.File = %q, want test.yaml", cfgErr.File)
	}
	if cfg != nil {
		t.Errorf("Load returned a configuration together with an error")
	}
	return cfgErr.Problems
}

// mustLoad loads doc and fails the test on any problem.
func mustLoad(t *testing.T, doc string) *Config {
	t.Helper()
	cfg, err := Load("test.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// problemWant is the one problem a broken configuration must report.
type problemWant struct {
	path    string // Problem.Path, "" for decoding problems
	message string // fragment of Problem.Message
	lineOf  string // text on the line the problem must point at
}

// checkOneProblem asserts that problems contains exactly the wanted problem.
func checkOneProblem(t *testing.T, doc string, problems []Problem, want problemWant) {
	t.Helper()
	if len(problems) != 1 {
		t.Fatalf("got %d problems, want 1:\n%s", len(problems), problemList(problems))
	}
	p := problems[0]
	if p.Path != want.path {
		t.Errorf("path = %q, want %q", p.Path, want.path)
	}
	if !strings.Contains(p.Message, want.message) {
		t.Errorf("message = %q, want it to contain %q", p.Message, want.message)
	}
	if wantLine := lineOf(t, doc, want.lineOf); p.Line != wantLine {
		t.Errorf("line = %d, want %d (the line with %q)", p.Line, wantLine, want.lineOf)
	}
}

func problemList(problems []Problem) string {
	var b strings.Builder
	for _, p := range problems {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func TestLoadValidConfiguration(t *testing.T) {
	cfg := mustLoad(t, validYAML)
	if got := cfg.Server.PublicURL; got != "https://smart.example.org" {
		t.Errorf("server.public_url = %q", got)
	}
	if got := len(cfg.Clients); got != 2 {
		t.Fatalf("got %d clients, want 2", got)
	}
	if got := cfg.Clients[1].Type; got != ClientConfidentialSymmetric {
		t.Errorf("clients[1].type = %q", got)
	}
	if got := cfg.FHIR.BaseURLs; !reflect.DeepEqual(got, []string{"https://fhir.example.org/r4"}) {
		t.Errorf("fhir.base_urls = %q", got)
	}
}

func TestLoadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "smartgate.yaml")
	if err := os.WriteFile(path, []byte(validYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); err != nil {
		t.Errorf("LoadFile of a valid file: %v", err)
	}

	_, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: error = %v, want os.ErrNotExist", err)
	}
}

func TestLoadStrictDecoding(t *testing.T) {
	tests := []struct {
		name        string
		old, insert string
		want        problemWant
	}{
		{"unknown top-level key",
			"keys:\n", "fihr:\n  base_urls: []\nkeys:\n",
			problemWant{message: `unknown key "fihr" in the top level`, lineOf: "fihr:"}},
		{"misspelt key in section",
			"server:\n", "server:\n  pubic_url: https://smart.example.org\n",
			problemWant{message: `unknown key "pubic_url" in server`, lineOf: "pubic_url:"}},
		{"misspelt key in nested section",
			"  client_id: smartgate\n", "  client_id: smartgate\n  claims:\n    pateint: pid\n",
			problemWant{message: `unknown key "pateint" in upstream.claims`, lineOf: "pateint:"}},
		{"misspelt key in list item",
			"    name: Growth Chart\n", "    name: Growth Chart\n    redirect_uri: https://growth.example.org/callback\n",
			problemWant{message: `unknown key "redirect_uri" in a client`, lineOf: "redirect_uri:"}},
		{"misspelt key in client refresh policy",
			"    name: Growth Chart\n", "    name: Growth Chart\n    refresh_policy:\n      rotate: true\n",
			problemWant{message: `unknown key "rotate" in a refresh policy`, lineOf: "rotate:"}},
		{"misspelt client type policy",
			"keys:\n", "refresh_policy:\n  publik:\n    rotation: true\nkeys:\n",
			problemWant{message: `unknown key "publik" in refresh_policy`, lineOf: "publik:"}},
		{"message points at example file",
			"keys:\n", "logs:\n  level: info\nkeys:\n",
			problemWant{message: "check its spelling against config.example.yaml", lineOf: "logs:"}},
		{"string where number expected",
			"  addr: 127.0.0.1:6379\n", "  addr: 127.0.0.1:6379\n  db: zero\n",
			problemWant{message: "cannot unmarshal !!str `zero` into int", lineOf: "db: zero"}},
		{"invalid duration",
			"keys:\n", "tokens:\n  access_token_lifetime: soon\nkeys:\n",
			problemWant{message: "cannot unmarshal !!str `soon` into time.Duration", lineOf: "soon"}},
		{"list where string expected",
			"  client_id: smartgate\n", "  client_id: [smartgate]\n",
			problemWant{message: "cannot unmarshal !!seq into string", lineOf: "client_id: [smartgate]"}},
		{"invalid YAML",
			"client_id: smartgate", "client_id: smart: gate",
			problemWant{message: "invalid YAML: mapping values are not allowed", lineOf: "smart: gate"}},
		{"tab indentation",
			"  addr: 127.0.0.1:6379", "\taddr: 127.0.0.1:6379",
			problemWant{message: "invalid YAML: found character that cannot start any token", lineOf: "\taddr:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, tt.insert)
			checkOneProblem(t, doc, loadProblems(t, doc), tt.want)
		})
	}
}

func TestLoadReportsEveryUnknownKey(t *testing.T) {
	doc := edit(t, validYAML, "server:\n", "colour: blue\nserver:\n  lisen: :8080\n")
	doc = edit(t, doc, "    type: public\n", "    type: public\n    secret: x\n")
	problems := loadProblems(t, doc)
	want := []string{
		`line 1: unknown key "colour" in the top level`,
		`line 3: unknown key "lisen" in server`,
		`unknown key "secret" in a client`,
	}
	if len(problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(problems), len(want), problemList(problems))
	}
	for i, w := range want {
		if got := problems[i].String(); !strings.Contains(got, w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, got, w)
		}
	}
	if got, want := problems[2].Line, lineOf(t, doc, "secret: x"); got != want {
		t.Errorf("unknown client key on line %d, want %d", got, want)
	}
}

func TestLoadEmptyFile(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"no bytes", ""},
		{"only a comment", "# nothing configured yet\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := loadProblems(t, tt.doc)
			if len(problems) != 1 || problems[0].Message != "the file is empty" {
				t.Errorf("problems = %+v, want one: the file is empty", problems)
			}
		})
	}
}

func TestLoadExpandsEnvironment(t *testing.T) {
	t.Setenv("SG_TEST_COOKIE_SECRET", "cookie-secret-from-env-0123456789abcdef")
	t.Setenv("SG_TEST_HOST", "smart.example.org")
	t.Setenv("SG_TEST_FHIR", "https://fhir.example.org/r5")
	t.Setenv("SG_TEST_CLIENT_SECRET", "client-secret-from-env-0123456789abcdef")
	t.Setenv("SG_TEST_NESTED", "${SG_TEST_HOST}")

	doc := validYAML
	doc = edit(t, doc, "cookie_secret: 0123456789abcdef0123456789abcdef", "cookie_secret: ${SG_TEST_COOKIE_SECRET}")
	doc = edit(t, doc, "public_url: https://smart.example.org", "public_url: https://${SG_TEST_HOST}")
	doc = edit(t, doc, "    - https://fhir.example.org/r4", "    - https://fhir.example.org/r4\n    - ${SG_TEST_FHIR}")
	doc = edit(t, doc, "client_secret: growth-chart-secret-0123456789abcdef", `client_secret: "${SG_TEST_CLIENT_SECRET}"`)
	doc = edit(t, doc, "redis:\n", "consent:\n  hospital_name: Pay $${AMOUNT} at ${SG_TEST_NESTED}\nredis:\n")
	cfg := mustLoad(t, doc)

	tests := []struct {
		name string
		got  string
		want string
	}{
		{"whole value", cfg.Server.CookieSecret, "cookie-secret-from-env-0123456789abcdef"},
		{"part of value", cfg.Server.PublicURL, "https://smart.example.org"},
		{"list item", cfg.FHIR.BaseURLs[1], "https://fhir.example.org/r5"},
		{"quoted value in client", cfg.Clients[1].ClientSecret, "client-secret-from-env-0123456789abcdef"},
		{"escaped reference and value not expanded twice", cfg.Consent.HospitalName, "Pay ${AMOUNT} at ${SG_TEST_HOST}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestLoadEnvironmentProblems(t *testing.T) {
	// Set and then unset, so that the variable is surely absent and the
	// test restores any value it had.
	t.Setenv("SG_TEST_UNSET", "x")
	if err := os.Unsetenv("SG_TEST_UNSET"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		old, new string
		want     problemWant
	}{
		{"unset variable",
			"cookie_secret: 0123456789abcdef0123456789abcdef", "cookie_secret: ${SG_TEST_UNSET}",
			problemWant{path: "server.cookie_secret", message: "environment variable SG_TEST_UNSET is not set", lineOf: "SG_TEST_UNSET"}},
		{"unset variable in list item",
			"    - https://fhir.example.org/r4", "    - https://${SG_TEST_UNSET}/r4",
			problemWant{path: "fhir.base_urls[0]", message: "environment variable SG_TEST_UNSET is not set", lineOf: "SG_TEST_UNSET"}},
		{"unset variable in client",
			"client_secret: growth-chart-secret-0123456789abcdef", "client_secret: ${SG_TEST_UNSET}",
			problemWant{path: "clients[1].client_secret", message: "environment variable SG_TEST_UNSET is not set", lineOf: "SG_TEST_UNSET"}},
		{"name starting with digit",
			"client_id: smartgate", "client_id: ${1ST}",
			problemWant{path: "upstream.client_id", message: `"${1ST}" is not a valid variable reference`, lineOf: "${1ST}"}},
		{"unterminated reference",
			"client_id: smartgate", "client_id: smart${GATE",
			problemWant{path: "upstream.client_id", message: `"${GATE" is not a valid variable reference`, lineOf: "${GATE"}},
		{"empty reference",
			"client_id: smartgate", "client_id: smart${}gate",
			problemWant{path: "upstream.client_id", message: `"${}" is not a valid variable reference`, lineOf: "${}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, tt.new)
			checkOneProblem(t, doc, loadProblems(t, doc), tt.want)
		})
	}
}

func TestLoadReportsEveryUnsetVariable(t *testing.T) {
	for _, name := range []string{"SG_TEST_UNSET_A", "SG_TEST_UNSET_B"} {
		t.Setenv(name, "x")
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	doc := edit(t, validYAML, "client_id: smartgate", "client_id: ${SG_TEST_UNSET_A}")
	doc = edit(t, doc, "client_secret: upstream-secret", "client_secret: ${SG_TEST_UNSET_B}")
	problems := loadProblems(t, doc)
	if len(problems) != 2 {
		t.Fatalf("got %d problems, want 2:\n%s", len(problems), problemList(problems))
	}
	for i, name := range []string{"SG_TEST_UNSET_A", "SG_TEST_UNSET_B"} {
		if !strings.Contains(problems[i].Message, name) {
			t.Errorf("problem %d = %q, want it to name %s", i, problems[i].Message, name)
		}
		if want := lineOf(t, doc, name); problems[i].Line != want {
			t.Errorf("problem %d on line %d, want %d", i, problems[i].Line, want)
		}
	}
}

func TestLoadSecretFiles(t *testing.T) {
	const fileSecret = "secret-from-file-0123456789abcdef0123"
	tests := []struct {
		name     string
		old      string // lines of validYAML to replace
		fileOnly string // replacement naming the file only; %s is its path
		both     string // replacement setting the value and the file
		fileKey  string
		get      func(*Config) string
	}{
		{"cookie secret",
			"  cookie_secret: 0123456789abcdef0123456789abcdef\n",
			"  cookie_secret_file: %s\n",
			"  cookie_secret: 0123456789abcdef0123456789abcdef\n  cookie_secret_file: %s\n",
			"server.cookie_secret_file",
			func(c *Config) string { return c.Server.CookieSecret }},
		{"upstream client secret",
			"  client_secret: upstream-secret\n",
			"  client_secret_file: %s\n",
			"  client_secret: upstream-secret\n  client_secret_file: %s\n",
			"upstream.client_secret_file",
			func(c *Config) string { return c.Upstream.ClientSecret }},
		{"redis password",
			"  addr: 127.0.0.1:6379\n",
			"  addr: 127.0.0.1:6379\n  password_file: %s\n",
			"  addr: 127.0.0.1:6379\n  password: inline\n  password_file: %s\n",
			"redis.password_file",
			func(c *Config) string { return c.Redis.Password }},
		{"client secret",
			"    client_secret: growth-chart-secret-0123456789abcdef\n",
			"    client_secret_file: %s\n",
			"    client_secret: growth-chart-secret-0123456789abcdef\n    client_secret_file: %s\n",
			"clients[1].client_secret_file",
			func(c *Config) string { return c.Clients[1].ClientSecret }},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		secretPath := filepath.Join(dir, "secret")
		if err := os.WriteFile(secretPath, []byte(fileSecret+"\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}

		t.Run(tt.name+" read from file", func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, fmt.Sprintf(tt.fileOnly, secretPath))
			cfg := mustLoad(t, doc)
			if got := tt.get(cfg); got != fileSecret {
				t.Errorf("secret = %q, want the file content without the line break %q", got, fileSecret)
			}
		})

		t.Run(tt.name+" and its file both set", func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, fmt.Sprintf(tt.both, secretPath))
			checkOneProblem(t, doc, loadProblems(t, doc), problemWant{
				path:    tt.fileKey,
				message: "set either the value or its _file companion, not both",
				lineOf:  secretPath,
			})
		})

		t.Run(tt.name+" file missing", func(t *testing.T) {
			missing := filepath.Join(dir, "missing")
			doc := edit(t, validYAML, tt.old, fmt.Sprintf(tt.fileOnly, missing))
			problems := loadProblems(t, doc)
			// The secret stays empty, so validation may add a problem
			// about the value itself. The file problem comes first.
			if len(problems) == 0 {
				t.Fatal("Load succeeded with a missing secret file")
			}
			checkOneProblem(t, doc, problems[:1], problemWant{
				path:    tt.fileKey,
				message: "cannot read " + missing + ": no such file or directory",
				lineOf:  missing,
			})
		})
	}
}

func TestApplyDefaults(t *testing.T) {
	var c Config
	ApplyDefaults(&c)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"listen", c.Server.Listen, DefaultListen},
		{"upstream scopes", c.Upstream.Scopes, []string{"openid", "profile"}},
		{"patient claim", c.Upstream.Claims.Patient, DefaultPatientClaim},
		{"name claim", c.Upstream.Claims.Name, DefaultNameClaim},
		{"fhirUser template", c.Upstream.Claims.FHIRUser, []string{"Patient/{patient_id}"}},
		{"redis key prefix", c.Redis.KeyPrefix, DefaultKeyPrefix},
		{"access token lifetime", c.Tokens.AccessTokenLifetime, 30 * time.Minute},
		{"ID token lifetime", c.Tokens.IDTokenLifetime, 5 * time.Minute},
		{"code lifetime", c.Tokens.CodeLifetime, time.Minute},
		{"authorization lifetime", c.Tokens.AuthorizationLifetime, 10 * time.Minute},
		{"public grace window", c.RefreshPolicy.Public.GraceWindow, 10 * time.Second},
		{"public idle timeout", c.RefreshPolicy.Public.IdleTimeout, 90 * 24 * time.Hour},
		{"public absolute lifetime", c.RefreshPolicy.Public.AbsoluteLifetime, time.Duration(0)},
		{"public rotation left unset", c.RefreshPolicy.Public.Rotation, (*bool)(nil)},
		{"confidential grace window", c.RefreshPolicy.ConfidentialSymmetric.GraceWindow, 10 * time.Second},
		{"confidential idle timeout", c.RefreshPolicy.ConfidentialSymmetric.IdleTimeout, 90 * 24 * time.Hour},
		{"log format", c.Log.Format, "json"},
		{"log level", c.Log.Level, "info"},
		{"hospital name", c.Consent.HospitalName, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestApplyDefaultsKeepsSetValues(t *testing.T) {
	c := Config{
		Server:   Server{Listen: "0.0.0.0:9000"},
		Upstream: Upstream{Scopes: []string{"openid"}, Claims: ClaimMapping{Patient: "pid", Name: "display", FHIRUser: []string{}}},
		Redis:    Redis{KeyPrefix: "gw:"},
		Tokens:   Tokens{AccessTokenLifetime: 5 * time.Minute},
		Log:      Log{Format: "text", Level: "debug"},
		Consent:  Consent{HospitalName: "General Hospital"},
	}
	ApplyDefaults(&c)
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"listen", c.Server.Listen, "0.0.0.0:9000"},
		{"upstream scopes", c.Upstream.Scopes, []string{"openid"}},
		{"patient claim", c.Upstream.Claims.Patient, "pid"},
		{"name claim", c.Upstream.Claims.Name, "display"},
		{"empty fhirUser list kept empty", c.Upstream.Claims.FHIRUser, []string{}},
		{"redis key prefix", c.Redis.KeyPrefix, "gw:"},
		{"access token lifetime", c.Tokens.AccessTokenLifetime, 5 * time.Minute},
		{"log format", c.Log.Format, "text"},
		{"log level", c.Log.Level, "debug"},
		{"hospital name", c.Consent.HospitalName, "General Hospital"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func TestApplyDefaultsFHIRUserFollowsPatientClaim(t *testing.T) {
	c := Config{Upstream: Upstream{Claims: ClaimMapping{Patient: "mrn"}}}
	ApplyDefaults(&c)
	if want := []string{"Patient/{mrn}"}; !reflect.DeepEqual(c.Upstream.Claims.FHIRUser, want) {
		t.Errorf("fhir_user = %q, want %q", c.Upstream.Claims.FHIRUser, want)
	}
}

func TestPolicyFor(t *testing.T) {
	yes, no := true, false
	c := Config{RefreshPolicy: RefreshPolicies{
		Public:                RefreshPolicy{IdleTimeout: 30 * 24 * time.Hour},
		ConfidentialSymmetric: RefreshPolicy{Rotation: &yes, AbsoluteLifetime: 365 * 24 * time.Hour},
	}}
	ApplyDefaults(&c)
	tests := []struct {
		name   string
		client Client
		want   RefreshPolicy
	}{
		{"public takes type policy and always rotates",
			Client{Type: ClientPublic},
			RefreshPolicy{Rotation: &yes, GraceWindow: DefaultGraceWindow, IdleTimeout: 30 * 24 * time.Hour}},
		{"public rotates even with rotation false",
			Client{Type: ClientPublic, RefreshPolicy: RefreshPolicy{Rotation: &no}},
			RefreshPolicy{Rotation: &yes, GraceWindow: DefaultGraceWindow, IdleTimeout: 30 * 24 * time.Hour}},
		{"confidential takes type policy",
			Client{Type: ClientConfidentialSymmetric},
			RefreshPolicy{Rotation: &yes, GraceWindow: DefaultGraceWindow, IdleTimeout: DefaultIdleTimeout, AbsoluteLifetime: 365 * 24 * time.Hour}},
		{"client overrides type policy",
			Client{Type: ClientConfidentialSymmetric, RefreshPolicy: RefreshPolicy{Rotation: &no, GraceWindow: 30 * time.Second, IdleTimeout: 7 * 24 * time.Hour}},
			RefreshPolicy{Rotation: &no, GraceWindow: 30 * time.Second, IdleTimeout: 7 * 24 * time.Hour, AbsoluteLifetime: 365 * 24 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.PolicyFor(&tt.client)
			if got.Rotation == nil || *got.Rotation != *tt.want.Rotation {
				t.Errorf("rotation = %v, want %v", got.Rotation, *tt.want.Rotation)
			}
			got.Rotation, tt.want.Rotation = nil, nil
			if got != tt.want {
				t.Errorf("policy = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPolicyForConfidentialDefaultsToNoRotation(t *testing.T) {
	var c Config
	ApplyDefaults(&c)
	p := c.PolicyFor(&Client{Type: ClientConfidentialSymmetric})
	if p.Rotation == nil || *p.Rotation {
		t.Errorf("rotation = %v, want false", p.Rotation)
	}
}
