package config

import "time"

// Config is the whole configuration file. Every key is documented in
// config.example.yaml at the repository root; a test keeps the two in step.
type Config struct {
	Server        Server          `yaml:"server"`
	Upstream      Upstream        `yaml:"upstream"`
	Redis         Redis           `yaml:"redis"`
	FHIR          FHIR            `yaml:"fhir"`
	Keys          Keys            `yaml:"keys"`
	Tokens        Tokens          `yaml:"tokens"`
	RefreshPolicy RefreshPolicies `yaml:"refresh_policy"`
	Clients       []Client        `yaml:"clients"`
	// ResourceServers may call /introspect.
	ResourceServers []Credential `yaml:"resource_servers"`
	EHR             EHR          `yaml:"ehr"`
	Consent         Consent      `yaml:"consent"`
	Log             Log          `yaml:"log"`
}

// Server holds the public listener and the gateway's own identity.
type Server struct {
	// Listen is the address of the public listener, host:port.
	Listen string `yaml:"listen"`
	// AdminListen is the address of the admin listener, which serves
	// /metrics, /healthz and /readyz. Keep it off the public network.
	AdminListen string `yaml:"admin_listen"`
	// PublicURL is the gateway's issuer: the origin (and optional path)
	// under which apps reach /authorize, /token and discovery.
	PublicURL string `yaml:"public_url"`
	// CookieSecret signs the browser session cookie. At least 32 bytes.
	CookieSecret     string `yaml:"cookie_secret"`
	CookieSecretFile string `yaml:"cookie_secret_file"`
	// TLSCertFile and TLSKeyFile make the gateway serve HTTPS itself.
	// Without them it serves plain HTTP, for a TLS-terminating proxy in front.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// InsecureAllowHTTP allows a public_url with the http scheme on a host
	// other than loopback. OAuth 2.0 requires TLS; this is for labs only.
	InsecureAllowHTTP bool `yaml:"insecure_allow_http"`
}

// Upstream describes the identity provider smartgate logs users in at.
type Upstream struct {
	Issuer           string       `yaml:"issuer"`
	ClientID         string       `yaml:"client_id"`
	ClientSecret     string       `yaml:"client_secret"`
	ClientSecretFile string       `yaml:"client_secret_file"`
	Scopes           []string     `yaml:"scopes"`
	Claims           ClaimMapping `yaml:"claims"`
	// Timeout bounds every call smartgate makes to the identity provider.
	Timeout time.Duration `yaml:"timeout"`
	// PassThrough forwards every request that is not smartgate's own to
	// the identity provider, for a gateway that takes over its host name.
	PassThrough PassThrough `yaml:"pass_through"`
}

// PassThrough is the reverse proxy to the identity provider.
type PassThrough struct {
	Enabled bool `yaml:"enabled"`
	// Target is the URL the identity provider listens on, such as
	// http://keycloak.internal:8080. Requests keep their path and query.
	Target string `yaml:"target"`
	// Timeout bounds the wait for the identity provider's response headers.
	Timeout time.Duration `yaml:"timeout"`
}

// ClaimMapping names the upstream ID token claims that carry the SMART
// context of the user.
type ClaimMapping struct {
	// Patient is the claim holding the user's own FHIR Patient id.
	Patient string `yaml:"patient"`
	// Name is the claim holding the display name shown on the consent page.
	Name string `yaml:"name"`
	// FHIRUser lists templates for the fhirUser claim, tried in order. A
	// template such as "Patient/{patient_id}" takes the value of the claim
	// between braces; a template whose claim is missing is skipped.
	FHIRUser []string `yaml:"fhir_user"`
}

// RedisMode is the kind of Redis deployment smartgate connects to.
type RedisMode string

const (
	// RedisStandalone is one server at redis.addr.
	RedisStandalone RedisMode = "standalone"
	// RedisSentinel is the master that the Sentinels at redis.addrs
	// monitor under redis.master_name; the client follows its failovers.
	RedisSentinel RedisMode = "sentinel"
	// RedisCluster is a Redis Cluster reached through the seed nodes at
	// redis.addrs.
	RedisCluster RedisMode = "cluster"
)

// Redis locates the Redis deployment that holds all state.
type Redis struct {
	// Mode is standalone (the default), sentinel or cluster.
	Mode RedisMode `yaml:"mode"`
	// Addr is the host:port of the server in standalone mode.
	Addr string `yaml:"addr"`
	// Addrs are host:port addresses: the Sentinels in sentinel mode, or
	// seed nodes of the cluster in cluster mode.
	Addrs []string `yaml:"addrs"`
	// MasterName is the name the Sentinels monitor the master under.
	MasterName string `yaml:"master_name"`
	// Username and Password authenticate to the Redis servers that hold
	// the data: the server, the master and replicas, or the cluster nodes.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// SentinelUsername and SentinelPassword authenticate to the Sentinels
	// themselves, for Sentinels that require it.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	// DB is the database number. Redis Cluster has database 0 only.
	DB        int      `yaml:"db"`
	KeyPrefix string   `yaml:"key_prefix"`
	TLS       RedisTLS `yaml:"tls"`
}

// RedisTLS configures TLS to every Redis server and Sentinel. The server
// certificates are always verified.
type RedisTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CA certificates that sign the server
	// certificates. Empty: the system's trusted roots.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name the server certificates must carry. Empty:
	// the host of each address dialled.
	ServerName string `yaml:"server_name"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that require client certificates.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// FHIR lists the FHIR servers this gateway protects.
type FHIR struct {
	// BaseURLs are the FHIR base URLs accepted as the aud parameter.
	BaseURLs []string `yaml:"base_urls"`
	// Servers are FHIR servers the gateway fronts: it serves their SMART
	// discovery document and forwards FHIR requests with a valid token.
	Servers []FHIRServer `yaml:"servers"`
	// Picker is the FHIR server the patient picker searches when a
	// clinician launches an app that needs a patient.
	Picker PatientPicker `yaml:"patient_picker"`
}

// FHIRServer is one fronted FHIR server.
type FHIRServer struct {
	// BaseURL is the public FHIR base URL, on the gateway's own origin; it
	// must be one of fhir.base_urls.
	BaseURL string `yaml:"base_url"`
	// Target is the FHIR server's own base URL that requests go to.
	Target  string        `yaml:"target"`
	Timeout time.Duration `yaml:"timeout"`
}

// PatientPicker configures the search of the patient picker.
type PatientPicker struct {
	// BaseURL is the FHIR base URL to search; empty turns the picker off.
	BaseURL string `yaml:"base_url"`
	// Token is the bearer token of the gateway's service account there.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
}

// Keys names the PEM files of the signing keys.
type Keys struct {
	// AccessTokenFile signs access tokens: an EC P-256 key (ES256),
	// EC P-384 key (ES384) or RSA key (RS256).
	AccessTokenFile string `yaml:"access_token_file"`
	// IDTokenFile signs OpenID Connect ID tokens; an RSA key (RS256).
	IDTokenFile string `yaml:"id_token_file"`
	// PublishedFiles are PEM files of older keys (public, or private of
	// which only the public half is used) that stay in /jwks
	// so that tokens signed before a key rotation still verify.
	PublishedFiles []string `yaml:"published_files"`
}

// Tokens sets the lifetimes of short-lived artifacts.
type Tokens struct {
	AccessTokenLifetime   time.Duration `yaml:"access_token_lifetime"`
	IDTokenLifetime       time.Duration `yaml:"id_token_lifetime"`
	CodeLifetime          time.Duration `yaml:"code_lifetime"`
	AuthorizationLifetime time.Duration `yaml:"authorization_lifetime"`
}

// RefreshPolicies holds the refresh token policy of each client type.
type RefreshPolicies struct {
	Public                 RefreshPolicy `yaml:"public"`
	ConfidentialSymmetric  RefreshPolicy `yaml:"confidential_symmetric"`
	ConfidentialAsymmetric RefreshPolicy `yaml:"confidential_asymmetric"`
}

// RefreshPolicy decides how refresh tokens of one client type behave.
// A zero field takes the default of the client type.
type RefreshPolicy struct {
	// Rotation issues a new refresh token on every use. Always on for
	// public clients.
	Rotation *bool `yaml:"rotation"`
	// GraceWindow is how long a rotated-out token may still be used once,
	// for a client that lost the response to its refresh.
	GraceWindow time.Duration `yaml:"grace_window"`
	// IdleTimeout ends a refresh token family that is not used for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// AbsoluteLifetime ends a family this long after the consent, however
	// often it is used. Zero means no absolute limit.
	AbsoluteLifetime time.Duration `yaml:"absolute_lifetime"`
}

// ClientType is the SMART client profile of a registered app.
type ClientType string

const (
	ClientPublic                 ClientType = "public"
	ClientConfidentialSymmetric  ClientType = "confidential-symmetric"
	ClientConfidentialAsymmetric ClientType = "confidential-asymmetric"
)

// Client is one registered SMART app.
type Client struct {
	ClientID     string     `yaml:"client_id"`
	Name         string     `yaml:"name"`
	Type         ClientType `yaml:"type"`
	RedirectURIs []string   `yaml:"redirect_uris"`
	// Scopes are the scopes this client may be granted, as patterns:
	// "patient/*.rs" allows patient/Observation.rs and patient/Observation.read.
	Scopes []string `yaml:"scopes"`
	// ClientSecretSHA256 is the hex SHA-256 of the client secret, so that
	// the file need not hold the secret. ClientSecret and ClientSecretFile
	// give the secret itself.
	ClientSecretSHA256 string `yaml:"client_secret_sha256"`
	ClientSecret       string `yaml:"client_secret"`
	ClientSecretFile   string `yaml:"client_secret_file"`
	// RequiredScopes are scopes the app cannot work without. The consent
	// page shows them checked and locked, with a note saying so.
	RequiredScopes []string `yaml:"required_scopes"`
	// JWKS (inline, as YAML) or JWKSURI holds the public keys of a
	// confidential-asymmetric client, which authenticates with private_key_jwt.
	JWKS    map[string]any `yaml:"jwks"`
	JWKSURI string         `yaml:"jwks_uri"`
	// GrantTypes the client may use; default authorization_code and
	// refresh_token. client_credentials (SMART Backend Services) needs a
	// confidential-asymmetric client and system/ scopes.
	GrantTypes []string `yaml:"grant_types"`
	// RequireDPoP makes a public client prove possession of a key (RFC 9449)
	// at /token; its refresh tokens and access tokens are then bound to the key.
	RequireDPoP bool `yaml:"require_dpop"`
	// RefreshPolicy overrides the policy of the client's type.
	RefreshPolicy RefreshPolicy `yaml:"refresh_policy"`
	// RememberConsent skips the consent page for this long after the user
	// allowed the app, as long as the earlier grant covers the request.
	// Zero (the default) shows the page every time.
	RememberConsent time.Duration `yaml:"remember_consent"`

	// App details shown on the consent page and the patient's /apps page.
	LogoURL          string `yaml:"logo_url"`
	Publisher        string `yaml:"publisher"`
	HomePage         string `yaml:"home_page"`
	PrivacyPolicyURL string `yaml:"privacy_policy_url"`
	TermsURL         string `yaml:"terms_url"`
	// Reviewed marks an app the hospital has reviewed. Pages tell the
	// patient plainly when it has not.
	Reviewed bool `yaml:"reviewed"`
}

// EHR configures the EHR launch.
type EHR struct {
	// LaunchClients are the EHR systems that register launch contexts at
	// POST /launch, authenticating with HTTP Basic.
	LaunchClients []Credential `yaml:"launch_clients"`
	// LaunchJWKS or LaunchJWKSURI hold the keys that sign launch JWTs, the
	// alternative to registering a context: the EHR passes a signed JWT as
	// the launch value.
	LaunchJWKS    map[string]any `yaml:"launch_jwks"`
	LaunchJWKSURI string         `yaml:"launch_jwks_uri"`
	// LaunchLifetime is how long a registered launch value stays valid.
	LaunchLifetime time.Duration `yaml:"launch_lifetime"`
	// Tenant is sent as the tenant launch parameter when set.
	Tenant string `yaml:"tenant"`
}

// Credential is an id and secret for HTTP Basic authentication of a
// system calling the gateway: a resource server at /introspect, an EHR at
// /launch.
type Credential struct {
	ID           string `yaml:"id"`
	SecretSHA256 string `yaml:"secret_sha256"`
	Secret       string `yaml:"secret"`
	SecretFile   string `yaml:"secret_file"`
}

// Consent holds the hospital's branding and wording on the patient pages.
type Consent struct {
	HospitalName string `yaml:"hospital_name"`
	LogoURL      string `yaml:"logo_url"`
	// AccentColor is a CSS hex colour such as "#005ea2".
	AccentColor string `yaml:"accent_color"`
	// Text overrides catalog texts by language and message id, for
	// example text: {en: {"page.title": "Share your records?"}}.
	Text map[string]map[string]string `yaml:"text"`
}

// Log chooses the log format and level.
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}
