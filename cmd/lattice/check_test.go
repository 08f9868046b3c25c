package main

import (
	"io"
	"strings"
	"testing"

	"github.com/lattice-crdt/lattice/bench"
)

// --check-postgres takes auto, off or a number of sidecars; off and 0
// leave PostgreSQL out without looking for its binaries.
func TestCheckPostgresMix(t *testing.T) {
	for _, pg := range []string{"off", "0"} {
		o := bench.CheckOptions{Postgres: 5}
		if err := checkPostgresMix(&o, pg, io.Discard); err != nil || o.Postgres != 0 {
			t.Errorf("--check-postgres %s: Postgres %d, err %v; want 0, no error", pg, o.Postgres, err)
		}
	}
	for _, pg := range []string{"some", "-1", "4"} {
		var o bench.CheckOptions
		err := checkPostgresMix(&o, pg, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not auto, off or a number of sidecars") {
			t.Errorf("--check-postgres %s: got %v, want it refused", pg, err)
		}
	}
}
