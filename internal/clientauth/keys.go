package clientauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// minRSABits is the smallest RSA modulus accepted for RS256 and RS384.
const minRSABits = 2048

// verificationKey returns the one key of client c that has key ID kid and
// fits alg. With a jwks_uri, a kid that the cached set lacks triggers one
// refetch, throttled per URI (see keySet).
func (v *Verifier) verificationKey(ctx context.Context, c Client, kid string, alg jose.SignatureAlgorithm) (*jose.JSONWebKey, error) {
	if c.JWKS != nil {
		return pickKey(c.JWKS, kid, alg, "the registered jwks")
	}

	source := "the JWKS at " + c.JWKSURI
	set, fetched, err := v.keySet(ctx, c.JWKSURI, false)
	if err != nil {
		return nil, fmt.Errorf("%w: fetch JWKS from %s: %w", ErrInvalidClient, c.JWKSURI, err)
	}
	if fetched || len(matchingKeys(set, kid, alg)) > 0 {
		return pickKey(set, kid, alg, source)
	}

	// The client may have rotated its keys since the set was cached.
	set, _, err = v.keySet(ctx, c.JWKSURI, true)
	if errors.Is(err, errRefetchThrottled) {
		return nil, fmt.Errorf("%w: no %s key with kid %q in %s, which was fetched less than %s ago", ErrInvalidClient, alg, kid, source, minRefetchInterval)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: fetch JWKS from %s: %w", ErrInvalidClient, c.JWKSURI, err)
	}
	return pickKey(set, kid, alg, source)
}

// pickKey returns the only key in set that matches kid and alg.
func pickKey(set *jose.JSONWebKeySet, kid string, alg jose.SignatureAlgorithm, source string) (*jose.JSONWebKey, error) {
	keys := matchingKeys(set, kid, alg)
	switch len(keys) {
	case 1:
		return &keys[0], nil
	case 0:
		return nil, fmt.Errorf("%w: no %s key with kid %q in %s", ErrInvalidClient, alg, kid, source)
	default:
		return nil, fmt.Errorf("%w: %d %s keys with kid %q in %s; key IDs must be unique", ErrInvalidClient, len(keys), alg, kid, source)
	}
}

// matchingKeys returns the keys in set whose kid equals kid and that can
// verify alg signatures.
func matchingKeys(set *jose.JSONWebKeySet, kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	if set == nil || kid == "" {
		return nil
	}
	var keys []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.KeyID == kid && keyFits(k, alg) {
			keys = append(keys, k)
		}
	}
	return keys
}

// keyFits reports whether k is a public signing key of the type and size
// that alg needs. A key whose own "use" or "alg" member names another use
// or algorithm does not fit (RFC 7517 sections 4.2 and 4.4).
func keyFits(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if k.Use != "" && k.Use != "sig" {
		return false
	}
	if k.Algorithm != "" && k.Algorithm != string(alg) {
		return false
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		return (alg == jose.RS256 || alg == jose.RS384) && pub.N != nil && pub.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return (alg == jose.ES256 && pub.Curve == elliptic.P256()) ||
			(alg == jose.ES384 && pub.Curve == elliptic.P384())
	}
	return false
}

// ErrInvalidJWKS reports a JWK Set document that cannot be used.
var ErrInvalidJWKS = errors.New("invalid jwks")

// ParseJWKS parses a client's registered JWK Set strictly: the set must
// have at least one key, and every key must parse, be a public RSA or EC
// key and have a kid. Use it when a registration is loaded, so that a
// mistake shows then rather than at the first token request.
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	set, err := parseKeySet(data, true)
	if err != nil {
		return nil, err
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrInvalidJWKS)
	}
	return set, nil
}

// parseKeySet parses a JWK Set document. In strict mode any unusable key
// is an error. Otherwise unusable keys are left out, as RFC 7517 section 5
// recommends for keys of unknown type or with missing members. A key that
// carries private material is left out too, so it is never used.
func parseKeySet(data []byte, strict bool) (*jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidJWKS, err)
	}
	if doc.Keys == nil {
		return nil, fmt.Errorf("%w: missing keys member", ErrInvalidJWKS)
	}

	set := &jose.JSONWebKeySet{}
	for i, raw := range doc.Keys {
		key, err := parsePublicKey(raw)
		if err != nil {
			if strict {
				return nil, fmt.Errorf("%w: key %d: %w", ErrInvalidJWKS, i, err)
			}
			continue
		}
		set.Keys = append(set.Keys, key)
	}
	return set, nil
}

// parsePublicKey parses one JWK that must be a public RSA or EC key with a
// kid. Private members are checked on the raw JSON, before go-jose parses
// the key.
func parsePublicKey(raw json.RawMessage) (jose.JSONWebKey, error) {
	var private struct {
		D, P, Q, DP, DQ, QI, K, Priv json.RawMessage
	}
	if err := json.Unmarshal(raw, &private); err != nil {
		return jose.JSONWebKey{}, err
	}
	switch {
	case private.K != nil:
		return jose.JSONWebKey{}, errors.New("symmetric key; register public keys only")
	case private.D != nil || private.P != nil || private.Q != nil || private.DP != nil ||
		private.DQ != nil || private.QI != nil || private.Priv != nil:
		return jose.JSONWebKey{}, errors.New("contains private key material; register public keys only")
	}

	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		return jose.JSONWebKey{}, err
	}
	switch key.Key.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
	default:
		return jose.JSONWebKey{}, fmt.Errorf("unsupported key type %T; use an RSA or EC key", key.Key)
	}
	if key.KeyID == "" {
		return jose.JSONWebKey{}, errors.New("missing kid")
	}
	return key, nil
}
