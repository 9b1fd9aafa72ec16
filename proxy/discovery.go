package proxy

import (
	"encoding/json"
	"net/http"
)

// scopesSupported lists what the gateway grants; SMART makes every listed
// scope a must-support, so only implemented scopes appear.
var scopesSupported = []string{
	"openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access",
	"patient/*.cruds", "patient/*.rs", "patient/*.read", "user/*.cruds", "user/*.rs", "user/*.read",
}

var capabilities = []string{
	"launch-ehr", "launch-standalone", "authorize-post",
	"client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
	"sso-openid-connect", "context-standalone-patient",
	"context-ehr-patient", "context-ehr-encounter", "context-banner", "context-style",
	"permission-offline", "permission-online", "permission-patient", "permission-user",
	"permission-v1", "permission-v2",
}

var (
	grantTypes    = []string{"authorization_code", "refresh_token", "client_credentials"}
	authMethods   = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	assertionAlgs = []string{"RS384", "ES384", "RS256", "ES256"}
	dpopAlgs      = []string{"ES256", "ES384", "RS256", "RS384", "PS256"}
)

// smartConfiguration is the SMART discovery document (SMART App Launch 2.2,
// Conformance). Every URL is absolute.
type smartConfiguration struct {
	Issuer                        string   `json:"issuer"`
	JWKSURI                       string   `json:"jwks_uri"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	ManagementEndpoint            string   `json:"management_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	TokenEndpointAuthSigningAlgs  []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	DPoPSigningAlgs               []string `json:"dpop_signing_alg_values_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	ScopesSupported               []string `json:"scopes_supported"`
	Capabilities                  []string `json:"capabilities"`
}

func (g *Gateway) handleSMARTConfig(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, smartConfiguration{
		Issuer:                        g.issuer,
		JWKSURI:                       g.URL(PathJWKS),
		AuthorizationEndpoint:         g.URL(PathAuthorize),
		TokenEndpoint:                 g.URL(PathToken),
		ManagementEndpoint:            g.URL(PathApps),
		IntrospectionEndpoint:         g.URL(PathIntrospect),
		RevocationEndpoint:            g.URL(PathRevoke),
		GrantTypesSupported:           grantTypes,
		ResponseTypesSupported:        []string{"code"},
		CodeChallengeMethodsSupported: []string{"S256"},
		TokenEndpointAuthMethods:      authMethods,
		TokenEndpointAuthSigningAlgs:  assertionAlgs,
		DPoPSigningAlgs:               dpopAlgs,
		ScopesSupported:               scopesSupported,
		Capabilities:                  capabilities,
	})
}

// openIDConfiguration is the OpenID Connect discovery document at the
// issuer, which SMART apps follow to verify ID tokens.
type openIDConfiguration struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	TokenEndpointAuthMethods          []string `json:"token_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
}

func (g *Gateway) handleOIDCConfig(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, openIDConfiguration{
		Issuer:                            g.issuer,
		AuthorizationEndpoint:             g.URL(PathAuthorize),
		TokenEndpoint:                     g.URL(PathToken),
		JWKSURI:                           g.URL(PathJWKS),
		ResponseTypesSupported:            []string{"code"},
		GrantTypesSupported:               grantTypes,
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"RS256"},
		ScopesSupported:                   scopesSupported,
		ClaimsSupported:                   []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"},
		TokenEndpointAuthMethods:          authMethods,
		CodeChallengeMethodsSupported:     []string{"S256"},
		AuthorizationResponseIssParameter: true,
	})
}

func (g *Gateway) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(g.jwks)
}

// writePublicJSON writes a discovery document, which any cache may keep
// for a few minutes.
func writePublicJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(v)
}
