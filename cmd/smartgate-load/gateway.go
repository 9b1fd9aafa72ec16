package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/config"
	"github.com/smartgate/smartgate/internal/store"
	"github.com/smartgate/smartgate/internal/token"
)

// Clients and credentials of the load configuration.
const (
	publicClient    = "load-public"
	publicRedirect  = "http://127.0.0.1/callback"
	rs384Client     = "load-backend-rs384"
	es384Client     = "load-backend-es384"
	resourceServer  = "load-resource-server"
	resourceSecret  = "load-resource-server-secret-0123456789"
	familyScope     = "launch/patient patient/*.rs offline_access"
	backendScope    = "system/Observation.rs"
	seededPatient   = "example-patient"
	seededSubject   = "load-user"
	seededFHIRUser  = "Patient/example-patient"
	familyIdleLimit = time.Hour
)

// smartgateTarget is a running smartgate with what the scenarios need to
// talk to it and to seed its state.
type smartgateTarget struct {
	url     string
	proc    *process
	redis   *process
	rdb     *redis.Client
	store   *store.Store
	rs384   crypto.Signer
	es384   crypto.Signer
	profile string
	// controlURL serves the gateway's count of Redis round trips.
	controlURL string
}

// writeSmartgateConfig writes a configuration for the load run into dir
// and returns its path. Keys are generated fresh.
func writeSmartgateConfig(dir, listen, issuer, redisAddr string, rsKey, esKey crypto.Signer) (string, error) {
	access, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	id, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", err
	}

	accessPath, idPath := filepath.Join(dir, "access.pem"), filepath.Join(dir, "id.pem")
	if err := writePEMKey(accessPath, access); err != nil {
		return "", err
	}
	if err := writePEMKey(idPath, id); err != nil {
		return "", err
	}

	publicURL := "http://" + listen
	secretHash := sha256.Sum256([]byte(resourceSecret))
	backend := func(id string, key crypto.Signer, alg string) map[string]any {
		return map[string]any{
			"client_id": id, "name": id, "type": string(config.ClientConfidentialAsymmetric),
			"scopes": []string{"system/*.rs"}, "grant_types": []string{"client_credentials"},
			"jwks": publicJWKS(key, alg),
		}
	}
	// JSON is valid YAML, so the configuration is written with encoding/json.
	cfg := map[string]any{
		"server": map[string]any{"listen": listen, "public_url": publicURL,
			"cookie_secret": "load-cookie-secret-0123456789abcdefghijkl"},
		"upstream": map[string]any{"issuer": issuer, "client_id": "smartgate", "client_secret": "load-upstream-secret"},
		"redis":    map[string]any{"addr": redisAddr},
		"fhir":     map[string]any{"base_urls": []string{publicURL + "/fhir"}},
		"keys":     map[string]any{"access_token_file": accessPath, "id_token_file": idPath},
		"clients": []any{
			map[string]any{"client_id": publicClient, "name": "Load Public App", "type": string(config.ClientPublic),
				"redirect_uris": []string{publicRedirect}, "scopes": []string{"launch/patient", "patient/*.rs", "offline_access"}},
			backend(rs384Client, rsKey, "RS384"),
			backend(es384Client, esKey, "ES384"),
		},
		"resource_servers": []any{map[string]any{"id": resourceServer, "secret_sha256": hex.EncodeToString(secretHash[:])}},
		"log":              map[string]any{"format": "json", "level": "info"},
	}

	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "smartgate.yaml")
	return path, os.WriteFile(path, data, 0o600)
}

func writePEMKey(path string, key any) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// publicJWKS returns the JWKS document of a client's public key.
func publicJWKS(key crypto.Signer, alg string) map[string]any {
	jwk := jose.JSONWebKey{Key: key.Public(), KeyID: alg + "-load", Algorithm: alg, Use: "sig"}
	data, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk}})
	if err != nil {
		panic(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		panic(err)
	}
	return doc
}

// seedFamilies starts n refresh token families of the public client and
// returns their current refresh tokens. A family is started the way the
// token endpoint starts one: a saved code redeemed in Redis.
func (t *smartgateTarget) seedFamilies(ctx context.Context, n int) ([]string, error) {
	tokens := make([]string, n)
	for i := range tokens {
		gid := token.NewGrantID()
		_, codeHash := token.NewHandle(token.CodePrefix, gid)
		rt, rtHash := token.NewHandle(token.RefreshPrefix, gid)
		g := t.grant("c")
		terms := store.RefreshTerms{Issue: true, Rotate: true, IdleTimeout: familyIdleLimit}
		if err := t.store.SaveCode(ctx, gid, codeHash, g, terms, 10*time.Minute); err != nil {
			return nil, err
		}
		if _, _, err := t.store.Redeem(ctx, store.Redemption{GrantID: gid, SecretHash: codeHash, ClientID: publicClient,
			RedirectURI: publicRedirect, Challenge: "c", RefreshHash: rtHash, AccessLifetime: time.Hour}); err != nil {
			return nil, err
		}
		// The spent code would stay for the access token lifetime. It is
		// deleted so that Redis memory per family counts the family alone.
		if err := t.rdb.Del(ctx, config.DefaultKeyPrefix+"code:{"+gid+"}").Err(); err != nil {
			return nil, err
		}
		tokens[i] = rt
	}
	return tokens, nil
}

// seededCode is an authorization code with its PKCE verifier.
type seededCode struct {
	code, verifier string
}

// seedCodes saves n authorization codes of the public client, each with
// its own PKCE verifier, as the consent step would.
func (t *smartgateTarget) seedCodes(ctx context.Context, n int) ([]seededCode, error) {
	codes := make([]seededCode, n)
	for i := range codes {
		gid := token.NewGrantID()
		code, codeHash := token.NewHandle(token.CodePrefix, gid)
		verifier := token.RandomString(32)
		sum := sha256.Sum256([]byte(verifier))
		g := t.grant(base64.RawURLEncoding.EncodeToString(sum[:]))
		terms := store.RefreshTerms{Issue: true, Rotate: true, IdleTimeout: familyIdleLimit}
		if err := t.store.SaveCode(ctx, gid, codeHash, g, terms, 10*time.Minute); err != nil {
			return nil, err
		}
		codes[i] = seededCode{code: code, verifier: verifier}
	}
	return codes, nil
}

func (t *smartgateTarget) grant(challenge string) store.Grant {
	return store.Grant{ClientID: publicClient, Scope: familyScope, Subject: seededSubject, Patient: seededPatient,
		FHIRUser: seededFHIRUser, Audience: t.url + "/fhir", RedirectURI: publicRedirect, CodeChallenge: challenge,
		AuthTime: time.Now().Unix()}
}

// familyMemory seeds n families and returns Redis used_memory growth per family.
func (t *smartgateTarget) familyMemory(ctx context.Context, n int) (float64, error) {
	before, err := usedMemory(ctx, t.rdb)
	if err != nil {
		return 0, err
	}
	if _, err := t.seedFamilies(ctx, n); err != nil {
		return 0, err
	}
	after, err := usedMemory(ctx, t.rdb)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

func describeSmartgate() string {
	return fmt.Sprintf("smartgate (this repository): ES256 access tokens, refresh rotation for public clients, "+
		"Redis %s on the server core, JSON audit log at info level to a file", "without persistence")
}
