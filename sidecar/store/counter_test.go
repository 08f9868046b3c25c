package store

import (
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// Two stores capture concurrent changes of one counter from the rows their
// systems held: each becomes an increment of new - old owned by its
// replica, and after exchanging deltas both stores hold, and queue for
// their systems, the sum of every change.
func TestLocalCounterCapture(t *testing.T) {
	schema := crdt.MustSchema(crdt.MustCollection("acct", []string{"id"}, map[string]crdt.Policy{
		"bal":  {Kind: crdt.Counter},
		"cash": {Kind: crdt.Counter},
	}))
	a, b := openMem(t, schema), openMem(t, schema)
	key := crdt.IntKey(1)
	col, _ := schema.Collection("acct")
	ins := mustLocal(t, a, "a", []Change{{Collection: "acct", Key: key, Captured: true,
		Row: crdt.Row{"bal": crdt.Int(100), "cash": crdt.String("10.00")}}}, nil)
	mustMerge(t, b, ins.Delta)
	drain(t, a)
	drain(t, b)

	base := crdt.Row{"bal": crdt.Int(100), "cash": crdt.String("10.00")}
	ra := mustLocal(t, a, "a", []Change{{Collection: "acct", Key: key, Captured: true, Base: base,
		Row: crdt.Row{"bal": crdt.Int(130), "cash": crdt.String("9.75")}}}, nil)
	rb := mustLocal(t, b, "b", []Change{{Collection: "acct", Key: key, Captured: true, Base: base,
		Row: crdt.Row{"bal": crdt.Int(95), "cash": crdt.String("12.5")}}}, nil)
	if len(ra.Effects)+len(rb.Effects) != 0 {
		t.Fatalf("effects %v %v: each system holds its own change", ra.Effects, rb.Effects)
	}
	ma := mustMerge(t, a, rb.Delta)
	mustMerge(t, b, ra.Delta)
	for name, s := range map[string]*Store{"a": a, "b": b} {
		view := mustGet(t, s, "acct", key).View(col)
		if !crdt.Equal(view["bal"], crdt.Int(125)) || !crdt.Equal(view["cash"], crdt.String("12.25")) {
			t.Fatalf("%s: view %v, want bal 125 (100 +30 -5) and cash 12.25 (10.00 -0.25 +2.50)", name, view)
		}
	}
	if len(ma.Effects) != 1 {
		t.Fatalf("merge effects = %v, want the record queued for the system", ma.Effects)
	}
	// The apply writes the total; capturing it back (its echo) or the
	// same row again changes nothing.
	again := mustLocal(t, a, "a", []Change{{Collection: "acct", Key: key, Captured: true,
		Base: crdt.Row{"bal": crdt.Int(125), "cash": crdt.String("12.25")},
		Row:  crdt.Row{"bal": crdt.Int(125), "cash": crdt.String("12.25")}}}, nil)
	if again.Delta.Len() != 0 {
		t.Fatalf("an unchanged row made a delta: %v", again.Delta)
	}
}
