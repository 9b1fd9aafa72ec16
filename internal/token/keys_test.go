package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublishedKeys(t *testing.T) {
	dir := t.TempDir()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	privFile, pubFile := filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	_ = os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	_ = os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)

	fromPriv, err := LoadPublishedKeyFile(privFile)
	if err != nil {
		t.Fatal(err)
	}
	fromPub, err := LoadPublishedKeyFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	if fromPriv.Signer != nil || fromPub.Signer != nil {
		t.Error("a published key keeps its private half")
	}
	if fromPriv.KID != fromPub.KID || fromPub.Alg != "ES256" {
		t.Errorf("kid %q and %q, alg %s: want the same thumbprint for one key and ES256", fromPriv.KID, fromPub.KID, fromPub.Alg)
	}
	signing, err := GenerateKey("RS256")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(JWKS(signing, fromPub, fromPriv))
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	_ = json.Unmarshal(b, &set)
	if len(set.Keys) != 2 {
		t.Errorf("JWKS has %d keys, want 2 (duplicates removed)", len(set.Keys))
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`} {
		if strings.Contains(string(b), private+":") {
			t.Errorf("JWKS contains the private parameter %s", private)
		}
	}
	if _, err := LoadPublishedKeyFile(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing file loaded")
	}
}
