package proxy

import (
	"net/http"

	"github.com/smartgate/smartgate/internal/clients"
	"github.com/smartgate/smartgate/internal/dpop"
)

// errInvalidDPoPProof is the RFC 9449 §5 error for a bad DPoP proof.
const errInvalidDPoPProof = "invalid_dpop_proof"

// dpopKey checks the DPoP proof of a token request, when there is one,
// and returns the thumbprint of its key. A client registered with
// require_dpop must send one. A proof's jti is recorded, so that a proof
// can be used once.
func (g *Gateway) dpopKey(r *http.Request, client *clients.Client) (string, *oauthError) {
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) == 0 && client != nil && client.RequireDPoP:
		return "", newError(errInvalidDPoPProof, "this client must send a DPoP proof")
	case len(proofs) == 0:
		return "", nil
	case len(proofs) > 1:
		return "", newError(errInvalidDPoPProof, "send exactly one DPoP header")
	}
	p, err := dpop.Verify(proofs[0], r.Method, g.URL(PathToken), g.now(), dpop.Options{})
	if err != nil {
		e := newError(errInvalidDPoPProof, "the DPoP proof is invalid")
		e.Cause = err
		return "", e
	}
	fresh, err := g.store.ClaimJTI(r.Context(), "dpop:"+p.JKT, p.ID, dpop.DefaultMaxAge+2*dpop.DefaultSkew)
	if err != nil {
		return "", g.storeFailure(err)
	}
	if !fresh {
		return "", newError(errInvalidDPoPProof, "the DPoP proof was already used")
	}
	return p.JKT, nil
}
