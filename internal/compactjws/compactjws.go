// Package compactjws parses a JWS in compact serialization strictly:
// only base64url characters and dots, exactly one signature, and an
// algorithm from the caller's list. It serves the parsers of client
// assertions and DPoP proofs, which wrap its errors in their own.
package compactjws

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// Parse parses s. The character check comes first because Go's base64
// decoder skips line breaks, so "a\nb" would otherwise decode like "ab".
func Parse(s string, algs []jose.SignatureAlgorithm) (*jose.JSONWebSignature, error) {
	if err := CheckAlphabet(s); err != nil {
		return nil, err
	}
	jws, err := jose.ParseSignedCompact(s, algs)
	if err != nil {
		if algErr, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			if algErr.Got == "" {
				return nil, errors.New("missing alg header")
			}
			return nil, fmt.Errorf("alg %q is not accepted; use one of %v", algErr.Got, algs)
		}
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%d signatures", len(jws.Signatures))
	}
	return jws, nil
}

// CheckAlphabet reports a character outside base64url and the dot, for a
// caller that decodes a part itself before Parse.
func CheckAlphabet(s string) error {
	if i := strings.IndexFunc(s, notCompactJWS); i >= 0 {
		return fmt.Errorf("invalid character at byte %d", i)
	}
	return nil
}

// notCompactJWS reports whether r is outside the base64url alphabet and
// the dot separator.
func notCompactJWS(r rune) bool {
	switch {
	case 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		return false
	case r == '-', r == '_', r == '.':
		return false
	}
	return true
}

// UnverifiedPayload decodes the payload of s without parsing the header
// or checking the signature. It is only for choosing which keys verify s,
// and costs a fraction of Parse.
func UnverifiedPayload(s string) ([]byte, error) {
	if err := CheckAlphabet(s); err != nil {
		return nil, err
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("malformed compact JWS: %d dot-separated parts, want 3", len(parts))
	}
	return base64.RawURLEncoding.DecodeString(parts[1])
}
