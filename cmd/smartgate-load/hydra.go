package main

import (
	"context"
	"errors"
)

// errHydraUnavailable explains why the Hydra peer is not measured.
//
// NOTE: `go get -tool github.com/ory/hydra/v2@v2.3.0` in a scratch module
// fetches Hydra, but the build fails in persistence/sql ("p.conn.Store.SQLDB
// undefined"). Hydra's go.mod replaces github.com/gobuffalo/pop/v6 with
// github.com/ory/pop/v6, and Go ignores replace directives of dependencies.
var errHydraUnavailable = errors.New("Ory Hydra v2.3.0 does not build as a Go tool dependency " +
	"(its go.mod replaces github.com/gobuffalo/pop/v6, which Go ignores in a dependency); Hydra is not measured")

// startHydra reports that the Hydra peer is unavailable.
func startHydra(ctx context.Context, cacheDir, dir string, keys peerKeys, cleanups *[]func()) (*peer, error) {
	return nil, errHydraUnavailable
}
