package token

import (
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func benchMinter(b *testing.B, alg jose.SignatureAlgorithm) *Minter {
	b.Helper()
	access, err := GenerateKey(alg)
	if err != nil {
		b.Fatal(err)
	}
	id, err := GenerateKey(jose.RS256)
	if err != nil {
		b.Fatal(err)
	}
	m, err := NewMinter(access, id)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// benchAccessClaims are the claims of a patient app's access token after
// a refresh grant.
func benchAccessClaims() AccessClaims {
	now := time.Now()
	return AccessClaims{Issuer: "https://smart.example.org", Subject: "user-1", Audience: "https://smart.example.org/fhir",
		Expiry: NumericDate(now.Add(time.Hour)), IssuedAt: NumericDate(now), ID: AccessTokenID(NewGrantID()),
		ClientID: "patient-app", Scope: "launch/patient patient/*.rs offline_access", Patient: "example-patient",
		FHIRUser: "Patient/example-patient"}
}

func BenchmarkAccessES256(b *testing.B) {
	m := benchMinter(b, jose.ES256)
	claims := benchAccessClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Access(claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIDRS256(b *testing.B) {
	m := benchMinter(b, jose.ES256)
	now := time.Now()
	claims := IDClaims{Issuer: "https://smart.example.org", Subject: "user-1", Audience: "patient-app",
		Expiry: NumericDate(now.Add(time.Hour)), IssuedAt: NumericDate(now), Nonce: "nonce", FHIRUser: "Patient/example-patient"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.ID(claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewHandle(b *testing.B) {
	gid := NewGrantID()
	b.ReportAllocs()
	for b.Loop() {
		NewHandle(RefreshPrefix, gid)
	}
}
