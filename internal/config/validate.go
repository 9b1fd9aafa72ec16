package config

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/smartgate/smartgate/internal/scope"
)

// Defaults of values the file may leave out.
const (
	DefaultListen                = "127.0.0.1:8080"
	DefaultAdminListen           = "127.0.0.1:9090"
	DefaultKeyPrefix             = "sg:"
	DefaultAccessTokenLifetime   = 30 * time.Minute
	DefaultIDTokenLifetime       = 5 * time.Minute
	DefaultCodeLifetime          = 60 * time.Second
	DefaultAuthorizationLifetime = 10 * time.Minute
	DefaultGraceWindow           = 10 * time.Second
	// DefaultIdleTimeout meets the US certification expectation of refresh
	// tokens valid for at least three months, restarted by every refresh.
	DefaultIdleTimeout  = 90 * 24 * time.Hour
	DefaultPatientClaim = "patient_id"
	DefaultNameClaim    = "name"
)

// ApplyDefaults fills every value the file left empty.
func ApplyDefaults(c *Config) {
	if c.Server.Listen == "" {
		c.Server.Listen = DefaultListen
	}
	if c.Server.AdminListen == "" {
		c.Server.AdminListen = DefaultAdminListen
	}
	if len(c.Upstream.Scopes) == 0 {
		c.Upstream.Scopes = []string{"openid", "profile"}
	}
	if c.Upstream.Claims.Patient == "" {
		c.Upstream.Claims.Patient = DefaultPatientClaim
	}
	if c.Upstream.Claims.Name == "" {
		c.Upstream.Claims.Name = DefaultNameClaim
	}
	if c.Upstream.Claims.FHIRUser == nil {
		c.Upstream.Claims.FHIRUser = []string{"Patient/{" + c.Upstream.Claims.Patient + "}"}
	}
	if c.Redis.Mode == "" {
		c.Redis.Mode = RedisStandalone
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = DefaultKeyPrefix
	}
	t := &c.Tokens
	setDuration(&t.AccessTokenLifetime, DefaultAccessTokenLifetime)
	setDuration(&t.IDTokenLifetime, DefaultIDTokenLifetime)
	setDuration(&t.CodeLifetime, DefaultCodeLifetime)
	setDuration(&t.AuthorizationLifetime, DefaultAuthorizationLifetime)
	c.RefreshPolicy.Public.fill(RefreshPolicy{})
	c.RefreshPolicy.ConfidentialSymmetric.fill(RefreshPolicy{})
	c.RefreshPolicy.ConfidentialAsymmetric.fill(RefreshPolicy{})
	for i := range c.Clients {
		if len(c.Clients[i].GrantTypes) == 0 {
			c.Clients[i].GrantTypes = []string{"authorization_code", "refresh_token"}
		}
	}
	setDuration(&c.EHR.LaunchLifetime, 5*time.Minute)
	setDuration(&c.Upstream.PassThrough.Timeout, 30*time.Second)
	setDuration(&c.Upstream.Timeout, 15*time.Second)
	for i := range c.FHIR.Servers {
		setDuration(&c.FHIR.Servers[i].Timeout, 30*time.Second)
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// fill sets each empty field from base, then from the built-in defaults.
func (p *RefreshPolicy) fill(base RefreshPolicy) {
	if p.Rotation == nil {
		p.Rotation = base.Rotation
	}
	setDuration(&p.GraceWindow, base.GraceWindow)
	setDuration(&p.IdleTimeout, base.IdleTimeout)
	setDuration(&p.AbsoluteLifetime, base.AbsoluteLifetime)
	setDuration(&p.GraceWindow, DefaultGraceWindow)
	setDuration(&p.IdleTimeout, DefaultIdleTimeout)
}

// PolicyFor returns the refresh policy of a client: its own overrides on
// top of its type's policy. Public clients always rotate.
func (c *Config) PolicyFor(cl *Client) RefreshPolicy {
	base := c.RefreshPolicy.ConfidentialSymmetric
	switch cl.Type {
	case ClientPublic:
		base = c.RefreshPolicy.Public
	case ClientConfidentialAsymmetric:
		base = c.RefreshPolicy.ConfidentialAsymmetric
	}
	p := cl.RefreshPolicy
	p.fill(base)
	rotate := p.Rotation != nil && *p.Rotation
	if cl.Type == ClientPublic {
		rotate = true
	}
	p.Rotation = &rotate
	return p
}

var (
	clientIDText = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)
	hexColor     = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	claimName    = regexp.MustCompile(`\{([^{}]+)\}`)
)

// Validate checks a decoded configuration and returns every problem, each
// with its key path and line. It reads no file and opens no connection.
func Validate(c *Config, lines map[string]int) []Problem {
	v := validator{lines: lines}
	v.server(c)
	v.upstream(c)
	v.redis(c.Redis)
	if len(c.FHIR.BaseURLs) == 0 {
		v.add("fhir.base_urls", "missing; list the FHIR base URLs that apps may name as aud")
	}
	for i, u := range c.FHIR.BaseURLs {
		v.absoluteURL(fmt.Sprintf("fhir.base_urls[%d]", i), u, c.Server.InsecureAllowHTTP)
		if strings.HasSuffix(u, "/") {
			v.add(fmt.Sprintf("fhir.base_urls[%d]", i), "must not end with /; apps send the base URL without it")
		}
	}
	if c.Keys.AccessTokenFile == "" {
		v.add("keys.access_token_file", "missing; name a PEM file with an EC P-256 key (openssl ecparam -name prime256v1 -genkey -noout)")
	}
	if c.Keys.IDTokenFile == "" {
		v.add("keys.id_token_file", "missing; name a PEM file with an RSA key of 2048 bits or more (openssl genrsa 2048)")
	}
	v.tokens(c.Tokens)
	v.policy("refresh_policy.public", c.RefreshPolicy.Public, true)
	v.policy("refresh_policy.confidential_symmetric", c.RefreshPolicy.ConfidentialSymmetric, false)
	v.policy("refresh_policy.confidential_asymmetric", c.RefreshPolicy.ConfidentialAsymmetric, false)
	v.credentials("resource_servers", c.ResourceServers)
	v.credentials("ehr.launch_clients", c.EHR.LaunchClients)
	v.fhirServers(c)
	if c.EHR.LaunchJWKS != nil && c.EHR.LaunchJWKSURI != "" {
		v.add("ehr.launch_jwks", "set either launch_jwks or launch_jwks_uri, not both")
	}
	if c.EHR.LaunchJWKSURI != "" {
		v.absoluteURL("ehr.launch_jwks_uri", c.EHR.LaunchJWKSURI, c.Server.InsecureAllowHTTP)
	}
	if c.EHR.LaunchLifetime < 30*time.Second || c.EHR.LaunchLifetime > time.Hour {
		v.add("ehr.launch_lifetime", fmt.Sprintf("%s is outside 30s to 1h", c.EHR.LaunchLifetime))
	}
	if t := c.Upstream.Timeout; t < 100*time.Millisecond || t > 2*time.Minute {
		v.add("upstream.timeout", fmt.Sprintf("%s is outside 100ms to 2m", t))
	}
	if pt := c.Upstream.PassThrough; pt.Enabled {
		if pt.Target == "" {
			v.add("upstream.pass_through.target", "missing; set the URL the identity provider listens on")
		} else {
			v.absoluteURL("upstream.pass_through.target", pt.Target, true)
		}
	}
	v.clients(c)
	if c.Consent.AccentColor != "" && !hexColor.MatchString(c.Consent.AccentColor) {
		v.add("consent.accent_color", fmt.Sprintf("%q is not a colour like #005ea2", c.Consent.AccentColor))
	}
	if c.Consent.LogoURL != "" {
		v.absoluteURL("consent.logo_url", c.Consent.LogoURL, true)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		v.add("log.format", fmt.Sprintf("%q is not json or text", c.Log.Format))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", fmt.Sprintf("%q is not debug, info, warn or error", c.Log.Level))
	}
	return v.problems
}

type validator struct {
	lines    map[string]int
	problems []Problem
}

func (v *validator) add(path, msg string) {
	line := v.lines[path]
	// Report a missing key at its section when the section is there.
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = v.lines[p]
	}
	v.problems = append(v.problems, Problem{Path: path, Line: line, Message: msg})
}

func (v *validator) absoluteURL(path, raw string, allowHTTP bool) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		v.add(path, fmt.Sprintf("%q is not an absolute http(s) URL", raw))
		return nil
	}
	if u.Scheme == "http" && !allowHTTP && !isLoopback(u.Hostname()) {
		v.add(path, fmt.Sprintf("%q uses http; use https, or set server.insecure_allow_http for a lab", raw))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		v.add(path, fmt.Sprintf("%q must not have a query or fragment", raw))
	}
	return u
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) server(c *Config) {
	s := c.Server
	if s.PublicURL == "" {
		v.add("server.public_url", "missing; set the URL apps use to reach the gateway, such as https://smart.example.org")
	} else if u := v.absoluteURL("server.public_url", s.PublicURL, s.InsecureAllowHTTP); u != nil && strings.HasSuffix(u.Path, "/") {
		v.add("server.public_url", "must not end with /")
	}
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		v.add("server.listen", fmt.Sprintf("%q is not host:port", s.Listen))
	}
	if _, _, err := net.SplitHostPort(s.AdminListen); err != nil {
		v.add("server.admin_listen", fmt.Sprintf("%q is not host:port", s.AdminListen))
	} else if s.AdminListen == s.Listen {
		v.add("server.admin_listen", "must differ from server.listen: metrics and health stay off the public listener")
	}
	if len(s.CookieSecret) < 32 {
		v.add("server.cookie_secret", "must be at least 32 characters; generate one with: openssl rand -base64 48")
	}
	if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
		v.add("server.tls_cert_file", "set both tls_cert_file and tls_key_file, or neither")
	}
}

func (v *validator) upstream(c *Config) {
	u := c.Upstream
	if u.Issuer == "" {
		v.add("upstream.issuer", "missing; set the issuer URL of the identity provider, such as https://idp.example.org/realms/hospital")
	} else {
		v.absoluteURL("upstream.issuer", u.Issuer, c.Server.InsecureAllowHTTP)
	}
	if u.ClientID == "" {
		v.add("upstream.client_id", "missing; register smartgate as a confidential client at the identity provider and set its client id")
	}
	if u.ClientSecret == "" {
		v.add("upstream.client_secret", "missing; set the secret of smartgate's client at the identity provider, or client_secret_file")
	}
	hasOpenID := false
	for _, s := range u.Scopes {
		hasOpenID = hasOpenID || s == "openid"
	}
	if !hasOpenID {
		v.add("upstream.scopes", "must include openid")
	}
	for i, t := range u.Claims.FHIRUser {
		p := fmt.Sprintf("upstream.claims.fhir_user[%d]", i)
		typ, _, ok := strings.Cut(t, "/")
		switch {
		case !ok || !claimName.MatchString(t):
			v.add(p, fmt.Sprintf("%q must look like Patient/{claim_name}", t))
		case typ != "Patient" && typ != "Practitioner" && typ != "PractitionerRole" &&
			typ != "RelatedPerson" && typ != "Person" && !strings.Contains(typ, ":"):
			v.add(p, fmt.Sprintf("%q: fhirUser must name a Patient, Practitioner, PractitionerRole, RelatedPerson or Person", t))
		}
	}
}

// redis checks the redis section: the keys that the mode needs, and no
// key of another mode, so that a half-converted file does not start.
func (v *validator) redis(r Redis) {
	switch r.Mode {
	case RedisStandalone:
		if r.Addr == "" {
			v.add("redis.addr", "missing; set the host:port of the Redis server, or set mode to sentinel or cluster")
		} else {
			v.hostPort("redis.addr", r.Addr)
		}
		if len(r.Addrs) > 0 {
			v.add("redis.addrs", "is for sentinel and cluster modes; in standalone mode set addr only, or set mode")
		}
	case RedisSentinel, RedisCluster:
		if r.Addr != "" {
			v.add("redis.addr", fmt.Sprintf("is for standalone mode; in %s mode list the addresses in addrs", r.Mode))
		}
		if len(r.Addrs) == 0 {
			what := "of each Sentinel"
			if r.Mode == RedisCluster {
				what = "of one or more cluster nodes"
			}
			v.add("redis.addrs", "missing; list the host:port "+what)
		}
		seen := map[string]bool{}
		for i, a := range r.Addrs {
			p := fmt.Sprintf("redis.addrs[%d]", i)
			if seen[a] {
				v.add(p, fmt.Sprintf("%q is listed twice", a))
			}
			seen[a] = true
			v.hostPort(p, a)
		}
	default:
		v.add("redis.mode", fmt.Sprintf("%q is not standalone, sentinel or cluster", r.Mode))
		return
	}

	if r.Mode == RedisSentinel {
		if r.MasterName == "" {
			v.add("redis.master_name", "missing; set the name the Sentinels monitor the master under (sentinel monitor <name> ...)")
		}
		if r.SentinelUsername != "" && r.SentinelPassword == "" {
			v.add("redis.sentinel_password", "missing; sentinel_username needs sentinel_password")
		}
	} else {
		for _, k := range []struct{ key, val string }{{"master_name", r.MasterName},
			{"sentinel_username", r.SentinelUsername}, {"sentinel_password", r.SentinelPassword}} {
			if k.val != "" {
				v.add("redis."+k.key, fmt.Sprintf("is for sentinel mode only; remove it in %s mode", r.Mode))
			}
		}
	}

	if r.DB < 0 {
		v.add("redis.db", fmt.Sprintf("%d is negative; Redis databases are numbered from 0", r.DB))
	} else if r.Mode == RedisCluster && r.DB != 0 {
		v.add("redis.db", fmt.Sprintf("%d: Redis Cluster has database 0 only; remove the key or set 0", r.DB))
	}
	// Every key carries its owner in a hash tag, {id}. Redis hashes only
	// the first {...} of a key, so a brace in the prefix would move the
	// keys of one grant to different slots of a cluster.
	if r.Mode == RedisCluster && strings.ContainsAny(r.KeyPrefix, "{}") {
		v.add("redis.key_prefix", fmt.Sprintf("%q must not contain { or } in cluster mode: smartgate puts a hash tag after the prefix", r.KeyPrefix))
	}
	v.redisTLS(r.TLS)
}

// redisTLS checks the redis.tls keys. Whether the files can be read is
// checked when the gateway starts, so that validation reads no files.
func (v *validator) redisTLS(t RedisTLS) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.add("redis.tls.cert_file", "set both cert_file and key_file, or neither")
	}
	if t.Enabled {
		return
	}
	var set []string
	for _, k := range []struct{ key, val string }{{"ca_file", t.CAFile}, {"server_name", t.ServerName},
		{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if k.val != "" {
			set = append(set, k.key)
		}
	}
	if len(set) > 0 {
		v.add("redis.tls.enabled", fmt.Sprintf("is false, but %s is set; set enabled: true to use TLS, or remove them",
			strings.Join(set, ", ")))
	}
}

// hostPort checks a host:port address with a host and a port number.
func (v *validator) hostPort(path, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		v.add(path, fmt.Sprintf("%q is not host:port", addr))
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(path, fmt.Sprintf("%q: the port must be a number from 1 to 65535", addr))
	}
}

func (v *validator) tokens(t Tokens) {
	check := func(path string, d, lo, hi time.Duration, why string) {
		if d < lo || d > hi {
			v.add(path, fmt.Sprintf("%s is outside %s to %s; %s", d, lo, hi, why))
		}
	}
	check("tokens.access_token_lifetime", t.AccessTokenLifetime, time.Minute, time.Hour,
		"SMART asks for access tokens of at most one hour")
	check("tokens.id_token_lifetime", t.IDTokenLifetime, time.Minute, time.Hour, "ID tokens are short-lived")
	check("tokens.code_lifetime", t.CodeLifetime, 10*time.Second, 10*time.Minute,
		"authorization codes must expire shortly after they are issued")
	check("tokens.authorization_lifetime", t.AuthorizationLifetime, time.Minute, time.Hour,
		"this is how long a user may take to log in and consent")
}

func (v *validator) policy(path string, p RefreshPolicy, public bool) {
	if public && p.Rotation != nil && !*p.Rotation {
		v.add(path+".rotation", "public clients always rotate refresh tokens; remove the key or set true")
	}
	if p.GraceWindow < 0 || p.GraceWindow > time.Minute {
		v.add(path+".grace_window", fmt.Sprintf("%s is outside 0s to 1m; a longer window weakens reuse detection", p.GraceWindow))
	}
	if p.IdleTimeout < time.Hour {
		v.add(path+".idle_timeout", fmt.Sprintf("%s is shorter than 1h", p.IdleTimeout))
	}
	if p.AbsoluteLifetime != 0 && p.AbsoluteLifetime < p.IdleTimeout {
		v.add(path+".absolute_lifetime", fmt.Sprintf("%s is shorter than the idle timeout %s", p.AbsoluteLifetime, p.IdleTimeout))
	}
}

func (v *validator) clients(c *Config) {
	seen := map[string]int{}
	for i, cl := range c.Clients {
		p := fmt.Sprintf("clients[%d]", i)
		if !clientIDText.MatchString(cl.ClientID) {
			v.add(p+".client_id", fmt.Sprintf("%q must be 1 to 128 letters, digits or ._~-", cl.ClientID))
		} else if j, dup := seen[cl.ClientID]; dup {
			v.add(p+".client_id", fmt.Sprintf("%q is already used by clients[%d]", cl.ClientID, j))
		}
		seen[cl.ClientID] = i
		if cl.Name == "" {
			v.add(p+".name", "missing; patients see this name on the consent page")
		}
		switch cl.Type {
		case ClientPublic:
			if cl.ClientSecret != "" || cl.ClientSecretSHA256 != "" {
				v.add(p+".client_secret", "a public client has no secret; remove it or use type confidential-symmetric")
			}
		case ClientConfidentialSymmetric:
			v.clientSecret(p, cl)
		case ClientConfidentialAsymmetric:
			v.clientKeys(p, cl, c.Server.InsecureAllowHTTP)
		case "":
			v.add(p+".type", "missing; set public, confidential-symmetric or confidential-asymmetric")
		default:
			v.add(p+".type", fmt.Sprintf("%q is not public, confidential-symmetric or confidential-asymmetric", cl.Type))
		}
		if cl.Type != ClientConfidentialAsymmetric && (cl.JWKSURI != "" || cl.JWKS != nil) {
			v.add(p+".jwks", "only a confidential-asymmetric client has keys")
		}
		if cl.RequireDPoP && cl.Type != ClientPublic {
			v.add(p+".require_dpop", "DPoP binding is offered to public clients; confidential clients are bound by their credentials")
		}
		codeFlow := v.grantTypes(p, cl)
		if codeFlow && len(cl.RedirectURIs) == 0 {
			v.add(p+".redirect_uris", "missing; list the exact redirect URIs of the app")
		}
		for j, r := range cl.RedirectURIs {
			v.redirectURI(fmt.Sprintf("%s.redirect_uris[%d]", p, j), r)
		}
		if len(cl.Scopes) == 0 {
			v.add(p+".scopes", "missing; list the scopes this app may be granted, such as patient/*.rs")
		}
		allowed, _ := scope.ParseList(strings.Join(cl.Scopes, " "))
		for j, s := range cl.Scopes {
			if _, err := scope.Parse(s); err != nil {
				v.add(fmt.Sprintf("%s.scopes[%d]", p, j), err.Error())
			}
		}
		for j, s := range cl.RequiredScopes {
			rs, err := scope.Parse(s)
			switch {
			case err != nil:
				v.add(fmt.Sprintf("%s.required_scopes[%d]", p, j), err.Error())
			case !allowed.Covers(rs):
				v.add(fmt.Sprintf("%s.required_scopes[%d]", p, j), fmt.Sprintf("%q is not among the client's scopes", s))
			}
		}
		if cl.RememberConsent < 0 || cl.RememberConsent > 366*24*time.Hour {
			v.add(p+".remember_consent", fmt.Sprintf("%s is outside 0s to 8784h (one year)", cl.RememberConsent))
		}
		for _, link := range []struct{ key, val string }{{"logo_url", cl.LogoURL}, {"home_page", cl.HomePage},
			{"privacy_policy_url", cl.PrivacyPolicyURL}, {"terms_url", cl.TermsURL}} {
			if link.val != "" {
				v.absoluteURL(p+"."+link.key, link.val, c.Server.InsecureAllowHTTP)
			}
		}
		if o := cl.RefreshPolicy; o.Rotation != nil || o.GraceWindow != 0 || o.IdleTimeout != 0 || o.AbsoluteLifetime != 0 {
			merged := c.PolicyFor(&c.Clients[i])
			merged.Rotation = o.Rotation
			v.policy(p+".refresh_policy", merged, cl.Type == ClientPublic)
		}
	}
}

// grantTypes checks the client's grant types and reports whether it
// uses the authorization code flow.
func (v *validator) grantTypes(p string, cl Client) bool {
	codeFlow := false
	for j, gt := range cl.GrantTypes {
		path := fmt.Sprintf("%s.grant_types[%d]", p, j)
		switch gt {
		case "authorization_code", "refresh_token":
			codeFlow = codeFlow || gt == "authorization_code"
		case "client_credentials":
			if cl.Type != ClientConfidentialAsymmetric {
				v.add(path, "client_credentials (SMART Backend Services) needs a confidential-asymmetric client")
			}
		default:
			v.add(path, fmt.Sprintf("%q is not authorization_code, refresh_token or client_credentials", gt))
		}
	}
	return codeFlow
}

// clientKeys checks the keys of a private_key_jwt client: inline or at a
// URL, not both.
func (v *validator) clientKeys(p string, cl Client, allowHTTP bool) {
	switch {
	case cl.JWKSURI != "" && cl.JWKS != nil:
		v.add(p+".jwks", "set either jwks or jwks_uri, not both")
	case cl.JWKSURI != "":
		v.absoluteURL(p+".jwks_uri", cl.JWKSURI, allowHTTP)
	case cl.JWKS != nil:
		set := ParseJWKS(cl.JWKS)
		if set == nil || len(set.Keys) == 0 {
			v.add(p+".jwks", "must be a JWK Set: a map with a non-empty keys list of public keys")
			break
		}
		for j, k := range set.Keys {
			if k.KeyID == "" || !k.IsPublic() {
				v.add(fmt.Sprintf("%s.jwks.keys[%d]", p, j), "each key needs a kid and must be a public key")
			}
		}
	default:
		v.add(p+".jwks_uri", "missing; a confidential-asymmetric client needs jwks_uri (preferred) or jwks")
	}
	if cl.ClientSecret != "" || cl.ClientSecretSHA256 != "" {
		v.add(p+".client_secret", "a confidential-asymmetric client authenticates with its keys, not a secret")
	}
}

func (v *validator) credentials(path string, list []Credential) {
	seen := map[string]bool{}
	for i, c := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if !clientIDText.MatchString(c.ID) {
			v.add(p+".id", fmt.Sprintf("%q must be 1 to 128 letters, digits or ._~-", c.ID))
		} else if seen[c.ID] {
			v.add(p+".id", fmt.Sprintf("%q is listed twice", c.ID))
		}
		seen[c.ID] = true
		v.clientSecret(p, Client{ClientSecret: c.Secret, ClientSecretSHA256: c.SecretSHA256})
	}
}

func (v *validator) fhirServers(c *Config) {
	for i, s := range c.FHIR.Servers {
		p := fmt.Sprintf("fhir.servers[%d]", i)
		found := false
		for _, b := range c.FHIR.BaseURLs {
			found = found || b == s.BaseURL
		}
		if !found {
			v.add(p+".base_url", fmt.Sprintf("%q must be one of fhir.base_urls", s.BaseURL))
		} else if u, err := url.Parse(s.BaseURL); err == nil && !sameOrigin(u, c.Server.PublicURL) {
			v.add(p+".base_url", "a fronted FHIR base must be on the origin of server.public_url")
		} else if err == nil && (strings.Trim(u.Path, "/") == "" || gatewayRoute(u.Path)) {
			v.add(p+".base_url", fmt.Sprintf("%q needs a path of its own, such as /fhir, apart from smartgate's routes", s.BaseURL))
		}
		if s.Target == "" {
			v.add(p+".target", "missing; set the base URL of the FHIR server itself")
		} else {
			v.absoluteURL(p+".target", s.Target, true)
		}
	}
	if pk := c.FHIR.Picker; pk.BaseURL != "" {
		v.absoluteURL("fhir.patient_picker.base_url", pk.BaseURL, true)
	}
}

// gatewayRoute reports whether a path is one of smartgate's own routes.
func gatewayRoute(path string) bool {
	first := strings.Split(strings.Trim(path, "/"), "/")[0]
	switch first {
	case "authorize", "callback", "consent", "token", "revoke", "introspect", "launch", "picker", "apps",
		"static", "jwks", ".well-known":
		return true
	}
	return false
}

func sameOrigin(u *url.URL, other string) bool {
	o, err := url.Parse(other)
	return err == nil && strings.EqualFold(u.Scheme, o.Scheme) && strings.EqualFold(u.Host, o.Host)
}

func (v *validator) clientSecret(p string, cl Client) {
	switch {
	case cl.ClientSecret != "" && cl.ClientSecretSHA256 != "":
		v.add(p+".client_secret_sha256", "set either client_secret or client_secret_sha256, not both")
	case cl.ClientSecretSHA256 != "":
		if b, err := hex.DecodeString(cl.ClientSecretSHA256); err != nil || len(b) != 32 {
			v.add(p+".client_secret_sha256", "must be 64 hex digits: printf %s \"$SECRET\" | sha256sum")
		}
	case len(cl.ClientSecret) < 32:
		v.add(p+".client_secret", "a confidential client needs a secret of at least 32 characters, or client_secret_sha256")
	}
}

// redirectURI checks a registered redirect URI: absolute, no fragment,
// https or a loopback http address, or a private-use scheme of a native app.
func (v *validator) redirectURI(path, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Scheme == "":
		v.add(path, fmt.Sprintf("%q is not an absolute URI", raw))
	case u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(path, fmt.Sprintf("%q must not have a fragment", raw))
	case u.Scheme == "https":
		if u.Host == "" {
			v.add(path, fmt.Sprintf("%q has no host", raw))
		}
	case u.Scheme == "http":
		if !isLoopback(u.Hostname()) {
			v.add(path, fmt.Sprintf("%q uses http on a host other than loopback; use https", raw))
		}
	case !strings.Contains(u.Scheme, "."):
		v.add(path, fmt.Sprintf("%q: a native app's private-use scheme must be a reversed domain name such as com.example.app", raw))
	}
}

// ParseJWKS reads a JWK Set written as YAML. It returns nil for anything
// that is not a valid JWK Set.
func ParseJWKS(m map[string]any) *jose.JSONWebKeySet {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil
	}
	return &set
}
