package sidecar

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/mapping"
)

// mapName gives node b's customers.name a pair of expressions: from is
// the field computed from the system's row, to the column computed back.
func mapName(from, to string) func(*Config) {
	return func(c *Config) {
		c.Mapping = mapping.Config{Tables: map[string]mapping.TableConfig{"customers": {
			Columns: map[string]mapping.ColumnConfig{"name": {ToSystem: to}},
			Fields:  map[string]mapping.FieldExpr{"name": {From: from, Type: "string"}},
		}}}
	}
}

// A mapping that never settles on some values (each round trip through the
// system appends a '?' to a name that ends in one) gets those records
// parked with an error that names the field; the others flow, and the
// record is counted in lattice_mapping_loops_total.
func TestMappingThatNeverSettlesIsParked(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, 5*time.Millisecond)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, 5*time.Millisecond,
		mapName(`row.name.endsWith('?') ? row.name + '?' : row.name`, `fields.name`))
	a.exec(t, `INSERT INTO customers (id, name) VALUES (1, 'loop?'), (2, 'fine')`)
	waitFor(t, 15*time.Second, "the settling record applied, the other parked", func() bool {
		return b.row(t, 2) == "fine|||" && b.a.Store().PendingLen() == 0 && len(b.a.Status().Parked) == 1
	})
	p := b.a.Status().Parked[0]
	if p.Collection != "customers" || p.Key != "1" || !strings.Contains(p.Reason, "fields name change on every round trip") {
		t.Fatalf("parked = %+v", p)
	}
	if got := b.row(t, 1); got != "<none>" {
		t.Fatalf("b's database holds the record that never settles: %s", got)
	}
	if n := metricValue(t, b.a, "lattice_mapping_loops_total"); n != 1 {
		t.Fatalf("lattice_mapping_loops_total = %v, want 1", n)
	}
	// The rest of the cluster goes on: a later change flows both ways.
	b.exec(t, `UPDATE customers SET status = 'Active' WHERE id = 2`)
	converged(t, 2, "fine|Active||", a, b)
}

// A mapping that normalises a value once (the system trims names) settles:
// the trimmed row is what the system holds, verification finds no drift in
// it, and nothing is written back to the other system, whose own row keeps
// its spaces. A later change of another field flows both ways and leaves
// the names as they are.
func TestLossyMappingSettles(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, 5*time.Millisecond)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, 5*time.Millisecond,
		mapName(`row.name`, `fields.name.trim()`))
	a.exec(t, `INSERT INTO customers (id, name) VALUES (1, '  Ann ')`)
	waitFor(t, 15*time.Second, "the trimmed name in b", func() bool {
		return b.row(t, 1) == "Ann|||" && b.a.Store().PendingLen() == 0
	})
	rep, err := b.a.Verify(context.Background(), "report", false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriftRecords != 0 {
		t.Fatalf("verification reports the normalised value as drift: %+v", rep.Drift)
	}
	if n := metricValue(t, b.a, "lattice_mapping_lossy_total"); n != 1 {
		t.Fatalf("lattice_mapping_lossy_total = %v, want 1", n)
	}
	b.exec(t, `UPDATE customers SET status = 'Active' WHERE id = 1`)
	waitFor(t, 15*time.Second, "b's status in a", func() bool {
		return a.row(t, 1) == "  Ann |Active||" && b.row(t, 1) == "Ann|Active||" &&
			a.a.Store().PendingLen() == 0 && b.a.Store().PendingLen() == 0 && a.a.Digest() == b.a.Digest()
	})
	if c := b.a.Store().Stats().LocalChanges; c != 1 {
		t.Fatalf("b captured %d changes, want 1 (its user's status): the normalised name came back as a change", c)
	}
	if n := metricValue(t, b.a, "lattice_mapping_loops_total"); n != 0 {
		t.Fatalf("lattice_mapping_loops_total = %v, want 0", n)
	}
}
