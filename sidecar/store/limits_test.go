package store

import (
	"fmt"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

func wideRow(prefix string, n int) crdt.Row {
	row := crdt.Row{}
	for i := range n {
		row[fmt.Sprintf("%s%04d", prefix, i)] = num(int64(i))
	}
	return row
}

// Two deltas each under the field limit whose join is over it: the second
// is rejected naming the limit, and the record stays readable as it was.
func TestMergeRefusesRecordOverLimit(t *testing.T) {
	s := openMem(t, testSchema(false), func(o *Options) { o.Limits.MaxFields = 8 })
	p := newPeer(9, "erp", testSchema(false), newFakeTime().now)
	k := crdt.IntKey(1)
	mustMerge(t, s, p.write("notes", k, wideRow("a", 5)))
	before := s.Digest()
	res := mustMerge(t, s, p.write("notes", k, wideRow("b", 5)))
	if len(res.Rejected) != 1 || res.Changed.Len() != 0 || len(res.Effects) != 0 {
		t.Fatalf("merge = %+v, want one rejection and nothing changed", res)
	}
	if le, ok := crdt.LimitOf(res.Rejected[0].Err); !ok || le.Limit != crdt.LimitFields {
		t.Fatalf("rejection %v does not name %s", res.Rejected[0].Err, crdt.LimitFields)
	}
	if got := mustGet(t, s, "notes", k); len(got.Fields) != 5 || s.Digest() != before {
		t.Fatalf("record after the refused merge: %s", got)
	}
}

// Local refuses every change of a record that would end over a limit, and
// stores and sends none of them; changes of other records commit.
func TestLocalRefusesRecordOverLimit(t *testing.T) {
	s := openMem(t, testSchema(false), func(o *Options) { o.Limits.MaxFields = 8 })
	res := mustLocal(t, s, "crm", []Change{
		{Collection: "notes", Key: crdt.IntKey(1), Row: wideRow("a", 5)},
		{Collection: "notes", Key: crdt.IntKey(2), Row: wideRow("a", 2)},
		{Collection: "notes", Key: crdt.IntKey(1), Row: wideRow("b", 5)},
	}, nil)
	if len(res.Failed) != 2 || res.Failed[0].Index != 0 || res.Failed[1].Index != 2 {
		t.Fatalf("failed = %v, want changes 0 and 2", res.Failed)
	}
	for _, f := range res.Failed {
		if le, ok := crdt.LimitOf(f.Err); !ok || le.Limit != crdt.LimitFields {
			t.Fatalf("failure %v does not name %s", f.Err, crdt.LimitFields)
		}
	}
	if res.Delta.Len() != 1 || res.Delta.Fragments[0].Key != crdt.IntKey(2) || len(res.Effects) != 1 {
		t.Fatalf("delta %v, effects %v: want record 2 only", res.Delta, res.Effects)
	}
	if got := mustGet(t, s, "notes", crdt.IntKey(1)); got.Exists() {
		t.Fatalf("record 1 stored: %s", got)
	}
	if s.PendingLen() != 1 {
		t.Fatalf("pending = %d, want 1", s.PendingLen())
	}
}

// A change to a parked record queues it again, also a captured change that
// leaves the system equal to the merged state: the change may be the fix,
// and a record must not stay listed as parked after it.
func TestChangeToParkedRecordQueuesIt(t *testing.T) {
	s := openMem(t, testSchema(false))
	k := crdt.IntKey(1)
	mustLocal(t, s, "crm", []Change{{Collection: "notes", Key: k, Row: crdt.Row{"name": crdt.Null()}}}, nil)
	p := mustPending(t, s)
	if len(p) != 1 {
		t.Fatalf("pending = %v", p)
	}
	if err := s.Park(p[0], "NOT NULL constraint failed: notes.name"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Parked(0); len(got) != 1 || s.PendingLen() != 0 {
		t.Fatalf("parked = %v, pending %d", got, s.PendingLen())
	}
	// The user fixes the row in the system; the system now holds exactly
	// the merged state.
	mustLocal(t, s, "crm", []Change{{Collection: "notes", Key: k, Captured: true,
		Base: crdt.Row{"name": str("old")}, Row: crdt.Row{"name": str("fixed")}}}, nil)
	if got, _ := s.Parked(0); len(got) != 0 {
		t.Fatalf("record still parked after the fix: %v", got)
	}
	if s.PendingLen() != 1 {
		t.Fatalf("pending = %d, want the fixed record queued", s.PendingLen())
	}
}
