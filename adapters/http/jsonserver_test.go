package http

import (
	"testing"

	"github.com/lattice-crdt/lattice/adapters/http/apitest"
)

// startJSONServer starts a json-server with db (collection name to
// records) for t; see apitest.StartJSONServer.
func startJSONServer(t *testing.T, db map[string][]map[string]any) *apitest.JSONServer {
	t.Helper()
	return apitest.StartJSONServer(t, db)
}
