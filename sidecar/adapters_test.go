package sidecar

// The tests start agents beside real systems; the adapters register
// themselves when imported, as in cmd/lattice.
import (
	_ "github.com/lattice-crdt/lattice/adapters/http"
	_ "github.com/lattice-crdt/lattice/adapters/postgres"
	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)
