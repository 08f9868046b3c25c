package crdt_test

import (
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

var conflictColl = crdt.MustCollection("people", []string{"id"}, map[string]crdt.Policy{
	"seen":  {Kind: crdt.Max},
	"phone": {Kind: crdt.Prefer, Prefer: []string{"crm", "erp"}},
	"n":     {Kind: crdt.Counter},
})

func at(wall int64, replica crdt.ReplicaID, source string) crdt.Origin {
	return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: replica}, Source: source}
}

func mustDiff(t *testing.T, merged *crdt.Record, row crdt.Row, o crdt.Origin) *crdt.Record {
	t.Helper()
	d, err := crdt.Diff(conflictColl, merged, row, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// merge joins d into r and returns the new state and the conflicts the
// merge decided, as a store does: also for a merge that changes nothing,
// since an incoming write that loses leaves the state as it was.
func merge(r, d *crdt.Record) (*crdt.Record, []crdt.Conflict) {
	next := crdt.Join(conflictColl, r, d)
	return next, crdt.Conflicts(conflictColl, r, d, next)
}

func TestConflicts(t *testing.T) {
	base := mustDiff(t, nil, crdt.Row{"name": crdt.String("Ann"), "seen": crdt.Int(5), "phone": crdt.String("1"), "n": crdt.Int(1)}, at(10, 1, "crm"))

	t.Run("concurrent lww", func(t *testing.T) {
		a := mustDiff(t, base, crdt.Row{"name": crdt.String("Anna")}, at(20, 1, "crm"))
		b := mustDiff(t, base, crdt.Row{"name": crdt.String("Annie")}, at(21, 2, "erp"))
		// Each side logs the decision when the other's write arrives:
		// the newer write wins, both values are named.
		for _, tc := range []struct {
			name       string
			local, in  *crdt.Record
			win, loser string
		}{{"b arrives", a, b, "Annie", "Anna"}, {"a arrives", b, a, "Annie", "Anna"}} {
			state := crdt.Join(conflictColl, base, tc.local)
			next, cs := merge(state, tc.in)
			if len(cs) != 1 || cs[0].Field != "name" || cs[0].Rule != "lww" ||
				cs[0].Winner.Value.AsString() != tc.win || cs[0].Loser.Value.AsString() != tc.loser {
				t.Fatalf("%s: conflicts %+v, want name: %s over %s by lww", tc.name, cs, tc.win, tc.loser)
			}
			// The same delta again is the same decision (the store logs
			// it once), and the winner's own delta decides nothing.
			if _, again := merge(next, tc.in); len(again) > 1 || len(again) == 1 && (again[0].Winner.Stamp != cs[0].Winner.Stamp || again[0].Loser.Stamp != cs[0].Loser.Stamp) {
				t.Fatalf("%s: a duplicate decided %+v, want %+v", tc.name, again, cs)
			}
		}
	})
	t.Run("causal overwrite", func(t *testing.T) {
		a := mustDiff(t, base, crdt.Row{"name": crdt.String("Anna")}, at(20, 1, "crm"))
		seen := crdt.Join(conflictColl, base, a)
		b := mustDiff(t, seen, crdt.Row{"name": crdt.String("Annie")}, at(21, 2, "erp"))
		if _, cs := merge(crdt.Join(conflictColl, base, a), b); len(cs) != 0 {
			t.Fatalf("a write made after reading the other logged %+v", cs)
		}
	})
	t.Run("max", func(t *testing.T) {
		a := mustDiff(t, base, crdt.Row{"seen": crdt.Int(9)}, at(20, 1, "crm"))
		b := mustDiff(t, base, crdt.Row{"seen": crdt.Int(7)}, at(21, 2, "erp"))
		_, cs := merge(crdt.Join(conflictColl, base, a), b)
		if len(cs) != 1 || cs[0].Rule != "max" || cs[0].Winner.Value.AsInt() != 9 || cs[0].Loser.Value.AsInt() != 7 {
			t.Fatalf("conflicts %+v, want seen: 9 over 7 by max", cs)
		}
	})
	t.Run("prefer", func(t *testing.T) {
		erp := mustDiff(t, nil, crdt.Row{"phone": crdt.String("1")}, at(10, 2, "erp"))
		a := mustDiff(t, erp, crdt.Row{"phone": crdt.String("2")}, at(20, 1, "crm"))
		b := mustDiff(t, erp, crdt.Row{"phone": crdt.String("3")}, at(21, 2, "erp"))
		_, cs := merge(crdt.Join(conflictColl, erp, b), a)
		if len(cs) != 1 || cs[0].Rule != "prefer" || cs[0].Winner.Source != "crm" || cs[0].Loser.Source != "erp" {
			t.Fatalf("conflicts %+v, want phone: crm over erp by prefer", cs)
		}
	})
	t.Run("counter", func(t *testing.T) {
		a := mustDiff(t, base, crdt.Row{"n": crdt.Int(3)}, at(20, 1, "crm"))
		b := mustDiff(t, base, crdt.Row{"n": crdt.Int(4)}, at(21, 2, "erp"))
		if _, cs := merge(crdt.Join(conflictColl, base, a), b); len(cs) != 0 {
			t.Fatalf("a counter logged %+v: every increment counts", cs)
		}
	})
	t.Run("delete against update", func(t *testing.T) {
		state := crdt.Join(conflictColl, nil, base)
		del, err := crdt.Delete(state, at(20, 1, "crm"))
		if err != nil {
			t.Fatal(err)
		}
		up := mustDiff(t, state, crdt.Row{"name": crdt.String("Bo")}, at(21, 2, "erp"))
		for name, pair := range map[string][2]*crdt.Record{"update arrives": {del, up}, "delete arrives": {up, del}} {
			_, cs := merge(crdt.Join(conflictColl, state, pair[0]), pair[1])
			if len(cs) != 1 || cs[0].Rule != crdt.RuleDelete || !cs[0].Loser.Delete || cs[0].Winner.Stamp != up.Written {
				t.Fatalf("%s: conflicts %+v, want the update over the delete", name, cs)
			}
		}
		// A re-insert that saw the delete is no conflict.
		gone := crdt.Join(conflictColl, state, del)
		re := mustDiff(t, gone, crdt.Row{"name": crdt.String("Cy")}, at(22, 2, "erp"))
		if _, cs := merge(gone, re); len(cs) != 0 {
			t.Fatalf("a re-insert logged %+v", cs)
		}
	})
}
