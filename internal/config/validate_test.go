package config

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// publicClient is the start of the public client entry of validYAML and
// confidentialSecret the secret line of the confidential one, for cases
// that edit one client only.
const (
	publicClient       = "  - client_id: my-health\n    name: My Health\n    type: public\n"
	confidentialSecret = "    client_secret: growth-chart-secret-0123456789abcdef\n"
)

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		want     problemWant
	}{
		// server
		{"missing public_url",
			"  public_url: https://smart.example.org\n", "",
			problemWant{"server.public_url", "missing; set the URL apps use to reach the gateway", "server:"}},
		{"http public_url on other host",
			"public_url: https://smart.example.org", "public_url: http://smart.example.org",
			problemWant{"server.public_url", `"http://smart.example.org" uses http; use https, or set server.insecure_allow_http`, "public_url:"}},
		{"public_url ending with slash",
			"public_url: https://smart.example.org", "public_url: https://smart.example.org/smart/",
			problemWant{"server.public_url", "must not end with /", "public_url:"}},
		{"public_url with query",
			"public_url: https://smart.example.org", "public_url: https://smart.example.org/smart?x=1",
			problemWant{"server.public_url", "must not have a query or fragment", "public_url:"}},
		{"relative public_url",
			"public_url: https://smart.example.org", "public_url: /smart",
			problemWant{"server.public_url", `"/smart" is not an absolute http(s) URL`, "public_url:"}},
		{"short cookie secret",
			"cookie_secret: 0123456789abcdef0123456789abcdef", "cookie_secret: 0123456789abcdef0123456789abcde",
			problemWant{"server.cookie_secret", "must be at least 32 characters", "cookie_secret:"}},
		{"listen without port",
			"server:\n", "server:\n  listen: 127.0.0.1\n",
			problemWant{"server.listen", `"127.0.0.1" is not host:port`, "listen:"}},
		{"TLS certificate without key",
			"server:\n", "server:\n  tls_cert_file: tls/cert.pem\n",
			problemWant{"server.tls_cert_file", "set both tls_cert_file and tls_key_file, or neither", "tls_cert_file:"}},
		{"TLS key without certificate",
			"server:\n", "server:\n  tls_key_file: tls/key.pem\n",
			problemWant{"server.tls_cert_file", "set both tls_cert_file and tls_key_file, or neither", "server:"}},

		// upstream, redis, fhir, keys
		{"missing issuer",
			"  issuer: https://idp.example.org/realms/hospital\n", "",
			problemWant{"upstream.issuer", "missing; set the issuer URL of the identity provider", "upstream:"}},
		{"http issuer on other host",
			"issuer: https://idp.example.org/realms/hospital", "issuer: http://idp.example.org/realms/hospital",
			problemWant{"upstream.issuer", "uses http; use https", "issuer:"}},
		{"missing upstream client_id",
			"  client_id: smartgate\n", "",
			problemWant{"upstream.client_id", "missing; register smartgate as a confidential client", "upstream:"}},
		{"missing upstream secret",
			"  client_secret: upstream-secret\n", "",
			problemWant{"upstream.client_secret", "missing; set the secret of smartgate's client", "upstream:"}},
		{"upstream scopes without openid",
			"  client_id: smartgate\n", "  client_id: smartgate\n  scopes: [profile, email]\n",
			problemWant{"upstream.scopes", "must include openid", "scopes: [profile, email]"}},
		{"fhirUser template without claim",
			"  client_id: smartgate\n", "  client_id: smartgate\n  claims:\n    fhir_user: [Patient/123]\n",
			problemWant{"upstream.claims.fhir_user[0]", `"Patient/123" must look like Patient/{claim_name}`, "fhir_user:"}},
		{"fhirUser template of other type",
			"  client_id: smartgate\n", "  client_id: smartgate\n  claims:\n    fhir_user:\n      - Device/{device_id}\n",
			problemWant{"upstream.claims.fhir_user[0]", "fhirUser must name a Patient, Practitioner", "Device/{device_id}"}},
		{"missing redis addr",
			"  addr: 127.0.0.1:6379\n", "  db: 1\n",
			problemWant{"redis.addr", "missing; set the host:port of the Redis server", "redis:"}},
		{"no FHIR base URL",
			"  base_urls:\n    - https://fhir.example.org/r4\n", "  base_urls: []\n",
			problemWant{"fhir.base_urls", "missing; list the FHIR base URLs", "base_urls:"}},
		{"FHIR base URL ending with slash",
			"    - https://fhir.example.org/r4\n", "    - https://fhir.example.org/r4/\n",
			problemWant{"fhir.base_urls[0]", "must not end with /", "https://fhir.example.org/r4/"}},
		{"http FHIR base URL",
			"    - https://fhir.example.org/r4\n", "    - http://fhir.example.org/r4\n",
			problemWant{"fhir.base_urls[0]", "uses http; use https", "http://fhir.example.org/r4"}},
		{"missing access token key",
			"  access_token_file: keys/access.pem\n", "",
			problemWant{"keys.access_token_file", "missing; name a PEM file with an EC P-256 key", "keys:"}},
		{"missing ID token key",
			"  id_token_file: keys/id.pem\n", "",
			problemWant{"keys.id_token_file", "missing; name a PEM file with an RSA key", "keys:"}},

		// tokens
		{"access token lifetime over 1h",
			"keys:\n", "tokens:\n  access_token_lifetime: 61m\nkeys:\n",
			problemWant{"tokens.access_token_lifetime", "1h1m0s is outside 1m0s to 1h0m0s; SMART asks for access tokens of at most one hour", "access_token_lifetime:"}},
		{"access token lifetime under 1m",
			"keys:\n", "tokens:\n  access_token_lifetime: 59s\nkeys:\n",
			problemWant{"tokens.access_token_lifetime", "59s is outside 1m0s to 1h0m0s", "access_token_lifetime:"}},
		{"ID token lifetime over 1h",
			"keys:\n", "tokens:\n  id_token_lifetime: 2h\nkeys:\n",
			problemWant{"tokens.id_token_lifetime", "2h0m0s is outside 1m0s to 1h0m0s", "id_token_lifetime:"}},
		{"code lifetime over 10m",
			"keys:\n", "tokens:\n  code_lifetime: 11m\nkeys:\n",
			problemWant{"tokens.code_lifetime", "11m0s is outside 10s to 10m0s", "code_lifetime:"}},
		{"authorization lifetime under 1m",
			"keys:\n", "tokens:\n  authorization_lifetime: 30s\nkeys:\n",
			problemWant{"tokens.authorization_lifetime", "30s is outside 1m0s to 1h0m0s", "authorization_lifetime:"}},

		// refresh policies of the client types
		{"public rotation false",
			"keys:\n", "refresh_policy:\n  public:\n    rotation: false\nkeys:\n",
			problemWant{"refresh_policy.public.rotation", "public clients always rotate refresh tokens", "rotation: false"}},
		{"absolute lifetime shorter than idle timeout",
			"keys:\n", "refresh_policy:\n  confidential_symmetric:\n    idle_timeout: 720h\n    absolute_lifetime: 24h\nkeys:\n",
			problemWant{"refresh_policy.confidential_symmetric.absolute_lifetime", "24h0m0s is shorter than the idle timeout 720h0m0s", "absolute_lifetime:"}},
		{"absolute lifetime shorter than default idle timeout",
			"keys:\n", "refresh_policy:\n  public:\n    absolute_lifetime: 720h\nkeys:\n",
			problemWant{"refresh_policy.public.absolute_lifetime", "720h0m0s is shorter than the idle timeout 2160h0m0s", "absolute_lifetime:"}},
		{"grace window over 1m",
			"keys:\n", "refresh_policy:\n  public:\n    grace_window: 2m\nkeys:\n",
			problemWant{"refresh_policy.public.grace_window", "2m0s is outside 0s to 1m", "grace_window:"}},
		{"negative grace window",
			"keys:\n", "refresh_policy:\n  confidential_symmetric:\n    grace_window: -1s\nkeys:\n",
			problemWant{"refresh_policy.confidential_symmetric.grace_window", "-1s is outside 0s to 1m", "grace_window:"}},
		{"idle timeout under 1h",
			"keys:\n", "refresh_policy:\n  confidential_symmetric:\n    idle_timeout: 59m\nkeys:\n",
			problemWant{"refresh_policy.confidential_symmetric.idle_timeout", "59m0s is shorter than 1h", "idle_timeout:"}},

		// clients
		{"bad client type",
			"    type: public\n", "    type: spa\n",
			problemWant{"clients[0].type", `"spa" is not public, confidential-symmetric or confidential-asymmetric`, "type: spa"}},
		{"missing client type",
			"    type: public\n", "",
			problemWant{"clients[0].type", "missing; set public, confidential-symmetric or confidential-asymmetric", "- client_id: my-health"}},
		{"duplicate client_id",
			"  - client_id: growth-chart\n", "  - client_id: my-health # second\n",
			problemWant{"clients[1].client_id", `"my-health" is already used by clients[0]`, "# second"}},
		{"client_id with space",
			"  - client_id: growth-chart\n", "  - client_id: growth chart\n",
			problemWant{"clients[1].client_id", `"growth chart" must be 1 to 128 letters, digits or ._~-`, "- client_id: growth chart"}},
		{"missing client name",
			"    name: My Health\n", "",
			problemWant{"clients[0].name", "missing; patients see this name on the consent page", "- client_id: my-health"}},
		{"no redirect URI",
			"    redirect_uris:\n      - https://app.example.org/callback\n", "    redirect_uris: []\n",
			problemWant{"clients[0].redirect_uris", "missing; list the exact redirect URIs of the app", "redirect_uris: []"}},
		{"redirect URI with fragment",
			"https://app.example.org/callback", "https://app.example.org/callback#done",
			problemWant{"clients[0].redirect_uris[0]", `"https://app.example.org/callback#done" must not have a fragment`, "#done"}},
		{"redirect URI with empty fragment",
			"https://app.example.org/callback", "https://app.example.org/callback#",
			problemWant{"clients[0].redirect_uris[0]", "must not have a fragment", "callback#"}},
		{"http redirect URI on other host",
			"https://app.example.org/callback", "http://app.example.org/callback",
			problemWant{"clients[0].redirect_uris[0]", "uses http on a host other than loopback; use https", "http://app.example.org"}},
		{"private-use scheme without dot",
			"https://app.example.org/callback", "myhealth:/callback",
			problemWant{"clients[0].redirect_uris[0]", "a native app's private-use scheme must be a reversed domain name", "myhealth:/callback"}},
		{"relative redirect URI",
			"https://app.example.org/callback", "/callback",
			problemWant{"clients[0].redirect_uris[0]", `"/callback" is not an absolute URI`, "- /callback"}},
		{"https redirect URI without host",
			"https://app.example.org/callback", "https:///callback",
			problemWant{"clients[0].redirect_uris[0]", "has no host", "https:///callback"}},
		{"bad scope pattern",
			"      - patient/*.rs\n", "      - patient/*.sr\n",
			problemWant{"clients[0].scopes[0]", `invalid scope: "patient/*.sr"`, "patient/*.sr"}},
		{"no scopes",
			"    scopes:\n      - patient/Observation.rs\n", "    scopes: []\n",
			problemWant{"clients[1].scopes", "missing; list the scopes this app may be granted", "scopes: []"}},
		{"public client with secret",
			publicClient, publicClient + "    client_secret: public-app-secret-0123456789abcdef\n",
			problemWant{"clients[0].client_secret", "a public client has no secret", "public-app-secret"}},
		{"public client with secret hash",
			publicClient, publicClient + "    client_secret_sha256: " + strings.Repeat("ab", 32) + "\n",
			problemWant{"clients[0].client_secret", "a public client has no secret", "- client_id: my-health"}},
		{"confidential client without secret",
			confidentialSecret, "",
			problemWant{"clients[1].client_secret", "a confidential client needs a secret of at least 32 characters", "- client_id: growth-chart"}},
		{"confidential client with short secret",
			confidentialSecret, "    client_secret: growth-chart-secret\n",
			problemWant{"clients[1].client_secret", "a confidential client needs a secret of at least 32 characters", "client_secret: growth-chart-secret"}},
		{"secret hash too short",
			confidentialSecret, "    client_secret_sha256: " + strings.Repeat("ab", 31) + "\n",
			problemWant{"clients[1].client_secret_sha256", "must be 64 hex digits", "client_secret_sha256:"}},
		{"secret hash too long",
			confidentialSecret, "    client_secret_sha256: " + strings.Repeat("ab", 33) + "\n",
			problemWant{"clients[1].client_secret_sha256", "must be 64 hex digits", "client_secret_sha256:"}},
		{"secret hash not hex",
			confidentialSecret, "    client_secret_sha256: " + strings.Repeat("zz", 32) + "\n",
			problemWant{"clients[1].client_secret_sha256", "must be 64 hex digits", "client_secret_sha256:"}},
		{"secret and secret hash both set",
			confidentialSecret, confidentialSecret + "    client_secret_sha256: " + strings.Repeat("ab", 32) + "\n",
			problemWant{"clients[1].client_secret_sha256", "set either client_secret or client_secret_sha256, not both", "client_secret_sha256:"}},

		// what the consent page shows about a client
		{"required scope not among scopes",
			publicClient, publicClient + "    required_scopes: [patient/Observation.cruds]\n",
			problemWant{"clients[0].required_scopes[0]", `"patient/Observation.cruds" is not among the client's scopes`, "required_scopes:"}},
		{"required scope invalid",
			publicClient, publicClient + "    required_scopes: [patient/Observation.sr]\n",
			problemWant{"clients[0].required_scopes[0]", `invalid scope: "patient/Observation.sr"`, "required_scopes:"}},
		{"remember consent over a year",
			publicClient, publicClient + "    remember_consent: 8785h\n",
			problemWant{"clients[0].remember_consent", "8785h0m0s is outside 0s to 8784h (one year)", "remember_consent:"}},
		{"client home page over http",
			publicClient, publicClient + "    home_page: http://myhealth.example.org\n",
			problemWant{"clients[0].home_page", "uses http; use https", "home_page:"}},
		{"client privacy policy with fragment",
			publicClient, publicClient + "    privacy_policy_url: https://myhealth.example.org/legal#privacy\n",
			problemWant{"clients[0].privacy_policy_url", "must not have a query or fragment", "privacy_policy_url:"}},

		// refresh policy of one client
		{"public client rotation false",
			publicClient, publicClient + "    refresh_policy:\n      rotation: false\n",
			problemWant{"clients[0].refresh_policy.rotation", "public clients always rotate refresh tokens", "rotation: false"}},
		{"client absolute lifetime shorter than type idle timeout",
			confidentialSecret, confidentialSecret + "    refresh_policy:\n      absolute_lifetime: 24h\n",
			problemWant{"clients[1].refresh_policy.absolute_lifetime", "24h0m0s is shorter than the idle timeout 2160h0m0s", "absolute_lifetime:"}},
		{"client grace window over 1m",
			confidentialSecret, confidentialSecret + "    refresh_policy:\n      grace_window: 90s\n",
			problemWant{"clients[1].refresh_policy.grace_window", "1m30s is outside 0s to 1m", "grace_window:"}},

		// consent and log
		{"accent colour of three digits",
			"keys:\n", "consent:\n  accent_color: \"#05a\"\nkeys:\n",
			problemWant{"consent.accent_color", `"#05a" is not a colour like #005ea2`, "accent_color:"}},
		{"accent colour by name",
			"keys:\n", "consent:\n  accent_color: blue\nkeys:\n",
			problemWant{"consent.accent_color", `"blue" is not a colour like #005ea2`, "accent_color:"}},
		{"logo URL with query",
			"keys:\n", "consent:\n  logo_url: https://smart.example.org/logo.svg?v=2\nkeys:\n",
			problemWant{"consent.logo_url", "must not have a query or fragment", "logo_url:"}},
		{"bad log format",
			"keys:\n", "log:\n  format: xml\nkeys:\n",
			problemWant{"log.format", `"xml" is not json or text`, "format: xml"}},
		{"bad log level",
			"keys:\n", "log:\n  level: verbose\nkeys:\n",
			problemWant{"log.level", `"verbose" is not debug, info, warn or error`, "level: verbose"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, tt.new)
			checkOneProblem(t, doc, loadProblems(t, doc), tt.want)
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
	}{
		{"http public_url on loopback",
			"public_url: https://smart.example.org", "public_url: http://127.0.0.1:8080"},
		{"http public_url on localhost",
			"public_url: https://smart.example.org", "public_url: http://localhost:8080/smart"},
		{"http URLs with insecure_allow_http",
			"server:\n  public_url: https://smart.example.org\n",
			"server:\n  insecure_allow_http: true\n  public_url: http://smart.lab.example.org\n"},
		{"public_url with path",
			"public_url: https://smart.example.org", "public_url: https://example.org/smart"},
		{"loopback IPv4 redirect URI",
			"https://app.example.org/callback", "http://127.0.0.1/callback"},
		{"loopback IPv6 redirect URI",
			"https://app.example.org/callback", "http://[::1]/callback"},
		{"localhost redirect URI",
			"https://app.example.org/callback", "http://localhost:8000/callback"},
		{"private-use scheme with dot",
			"https://app.example.org/callback", "org.example.myhealth:/callback"},
		{"redirect URI with query",
			"https://app.example.org/callback", "https://app.example.org/callback?tenant=a"},
		{"secret hash of 64 hex digits",
			confidentialSecret, "    client_secret_sha256: " + strings.Repeat("aB", 32) + "\n"},
		{"secret of exactly 32 characters",
			confidentialSecret, "    client_secret: " + strings.Repeat("s", 32) + "\n"},
		{"access token lifetime of exactly 1h",
			"keys:\n", "tokens:\n  access_token_lifetime: 1h\nkeys:\n"},
		{"public rotation true",
			"keys:\n", "refresh_policy:\n  public:\n    rotation: true\nkeys:\n"},
		{"confidential rotation false",
			"keys:\n", "refresh_policy:\n  confidential_symmetric:\n    rotation: false\nkeys:\n"},
		{"absolute lifetime equal to idle timeout",
			"keys:\n", "refresh_policy:\n  public:\n    idle_timeout: 720h\n    absolute_lifetime: 720h\nkeys:\n"},
		{"client policy longer than type policy",
			confidentialSecret, confidentialSecret + "    refresh_policy:\n      idle_timeout: 24h\n      absolute_lifetime: 48h\n      grace_window: 0s\n"},
		{"accent colour in upper case",
			"keys:\n", "consent:\n  accent_color: \"#00AA5E\"\nkeys:\n"},
		{"required scope covered by a pattern",
			publicClient, publicClient + "    required_scopes: [patient/Observation.read, launch/patient]\n"},
		{"remember consent of one year",
			publicClient, publicClient + "    remember_consent: 8784h\n"},
		{"text log at debug level",
			"keys:\n", "log:\n  format: text\n  level: debug\nkeys:\n"},
		{"fhirUser templates of several types",
			"  client_id: smartgate\n", "  client_id: smartgate\n  claims:\n    fhir_user: [\"Practitioner/{practitioner_id}\", \"Patient/{patient_id}\", \"https://fhir.example.org/r4/Person/{sub}\"]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, validYAML, tt.old, tt.new)
			if problems := loadProblems(t, doc); len(problems) > 0 {
				t.Errorf("got problems, want none:\n%s", problemList(problems))
			}
		})
	}
}

func TestValidateWithoutLines(t *testing.T) {
	c := Config{}
	ApplyDefaults(&c)
	c.Log.Format = "xml"
	var found bool
	for _, p := range Validate(&c, nil) {
		if p.Line != 0 {
			t.Errorf("problem %q has line %d without a line map", p.Path, p.Line)
		}
		found = found || p.Path == "log.format"
	}
	if !found {
		t.Error("no problem for log.format")
	}
}

func TestValidateShortLifetimeMessageUnits(t *testing.T) {
	c := mustLoad(t, validYAML)
	c.Tokens.CodeLifetime = 5 * time.Second
	problems := Validate(c, nil)
	if len(problems) != 1 || problems[0].Path != "tokens.code_lifetime" ||
		!strings.Contains(problems[0].Message, "5s is outside 10s to 10m0s") {
		t.Errorf("problems = %+v, want one for tokens.code_lifetime naming 5s", problems)
	}
}

func TestErrorListsEveryProblem(t *testing.T) {
	doc := edit(t, validYAML, "  public_url: https://smart.example.org\n", "")
	doc = edit(t, doc, "    type: public\n", "    type: spa\n")
	doc = edit(t, doc, "keys:\n", "log:\n  format: xml\nkeys:\n")
	_, err := Load("smartgate.yaml", []byte(doc))
	if err == nil {
		t.Fatal("Load succeeded, want three problems")
	}
	msg := err.Error()
	want := []string{
		"smartgate.yaml: 3 problem(s) in the configuration",
		"\n  line 1: server.public_url: missing;",
		"\n  line " + strconv.Itoa(lineOf(t, doc, "type: spa")) + `: clients[0].type: "spa" is not public, confidential-symmetric or confidential-asymmetric`,
		"\n  line " + strconv.Itoa(lineOf(t, doc, "format: xml")) + `: log.format: "xml" is not json or text`,
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Error() = %q\nwant it to contain %q", msg, w)
		}
	}
	if got := strings.Count(msg, "\n  "); got != 3 {
		t.Errorf("Error() has %d problem lines, want 3:\n%s", got, msg)
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name    string
		problem Problem
		want    string
	}{
		{"line and path", Problem{Path: "log.level", Line: 7, Message: "bad"}, "line 7: log.level: bad"},
		{"line only", Problem{Line: 3, Message: "unknown key"}, "line 3: unknown key"},
		{"path only", Problem{Path: "redis.addr", Message: "missing"}, "redis.addr: missing"},
		{"message only", Problem{Message: "the file is empty"}, "the file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.problem.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
