// Package token mints the gateway's JWTs (access tokens and ID tokens),
// loads the signing keys and publishes them as a JWK Set, and makes the
// random secrets behind codes and refresh tokens.
//
// It stores nothing; refresh token families and codes live in package
// store, which keeps only the hashes made here.
package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/go-jose/go-jose/v4"
)

// Key is a signing key with its JOSE algorithm and key id. Signer is nil
// for a key that is only published, such as a retired key kept in the
// JWK Set so that tokens it signed still verify.
type Key struct {
	Signer crypto.Signer
	Public crypto.PublicKey
	Alg    jose.SignatureAlgorithm
	KID    string
}

// LoadKeyFile reads a PEM private key (PKCS#8, PKCS#1 or SEC 1).
func LoadKeyFile(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	return k, nil
}

// ParseKeyPEM parses a PEM private key and picks its algorithm from the
// key type: P-256 is ES256, P-384 is ES384, RSA is RS256.
func ParseKeyPEM(data []byte) (*Key, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // EC PARAMETERS and other blocks come before the key
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", key)
		}
		return NewKey(signer)
	}
}

// NewKey wraps a private key. The key id is the RFC 7638 thumbprint of
// the public key, so it changes whenever the key does.
func NewKey(signer crypto.Signer) (*Key, error) {
	k, err := newPublicKey(signer.Public())
	if err != nil {
		return nil, err
	}
	k.Signer = signer
	return k, nil
}

// newPublicKey describes a public key: its algorithm and RFC 7638 key id.
func newPublicKey(pub crypto.PublicKey) (*Key, error) {
	var alg jose.SignatureAlgorithm
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jose.ES256
		case elliptic.P384():
			alg = jose.ES384
		default:
			return nil, fmt.Errorf("EC curve %s is not supported; use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too short; use 2048 bits or more", k.N.BitLen())
		}
		alg = jose.RS256
	default:
		return nil, fmt.Errorf("unsupported key type %T; use EC P-256, P-384 or RSA", pub)
	}
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	return &Key{Public: pub, Alg: alg, KID: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// LoadPublishedKeyFile reads a key that is only published in the JWK Set:
// a PEM public key (PKIX "PUBLIC KEY") or a private key, of which only the
// public half is used.
func LoadPublishedKeyFile(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "PUBLIC KEY" {
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("key %s: parse public key: %w", path, err)
			}
			k, err := newPublicKey(pub)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", path, err)
			}
			return k, nil
		}
	}
	k, err := ParseKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	k.Signer = nil
	return k, nil
}

// GenerateKey makes a fresh key: an EC P-256 key for ES256, or a 2048-bit
// RSA key for RS256. It serves demo mode and tests.
func GenerateKey(alg jose.SignatureAlgorithm) (*Key, error) {
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case jose.ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("cannot generate %s keys", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return NewKey(signer)
}

// JWKS builds the public JWK Set of the keys, without duplicates.
func JWKS(keys ...*Key) jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	seen := map[string]bool{}
	for _, k := range keys {
		if k == nil || seen[k.KID] {
			continue
		}
		seen[k.KID] = true
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       k.Public,
			KeyID:     k.KID,
			Algorithm: string(k.Alg),
			Use:       "sig",
		})
	}
	return set
}
