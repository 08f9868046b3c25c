package engine

import (
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// QueueMerged queues a merged record when, and only when, what its system
// shows changed: a value, or whether the record exists; not a stamp alone.
func TestQueueMerged(t *testing.T) {
	c := crdt.MustCollection("c", []string{"id"}, nil)
	stamp := func(ms int64) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: ms * int64(time.Millisecond)}, Replica: 2}, Source: "n2"}
	}
	rec := func(ms int64, row crdt.Row) *crdt.Record {
		d, err := crdt.Diff(c, nil, row, stamp(ms))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := rec(1000, crdt.Row{"x": crdt.String("a")})
	deleted, err := crdt.Delete(a, stamp(3000))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		old, new *crdt.Record
		want     bool
	}{
		{"nothing to nothing", nil, nil, false},
		{"new record", nil, a, true},
		{"same value, newer stamp", a, rec(2000, crdt.Row{"x": crdt.String("a")}), false},
		{"new value", a, rec(2000, crdt.Row{"x": crdt.String("b")}), true},
		{"new field", a, crdt.Join(c, a, rec(2000, crdt.Row{"y": crdt.Int(1)})), true},
		{"deleted", a, crdt.Join(c, a, deleted), true},
	} {
		if got := QueueMerged(c, tt.old, tt.new); got != tt.want {
			t.Errorf("%s: QueueMerged = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// After a snapshot, a record the system did not show is queued only if its
// collection lives in the system and the record exists.
func TestQueueUnseen(t *testing.T) {
	tc := crdt.MustCollection("t", []string{"id"}, nil)
	schema := crdt.MustSchema(tc, crdt.MustCollection("elsewhere", []string{"id"}, nil))
	cat, err := NewCatalog(CatalogConfig{}, schema, []adapters.Table{{Name: "t", Key: []string{"id"}, Columns: []adapters.Column{{Name: "id", Kind: crdt.KindInt}, {Name: "x", Kind: crdt.KindString, Nullable: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	o := crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: int64(time.Second)}, Replica: 2}, Source: "n2"}
	live, err := crdt.Diff(tc, nil, crdt.Row{"x": crdt.String("a")}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Stamp.TS.Wall *= 2
	gone, err := crdt.Delete(live, o)
	if err != nil {
		t.Fatal(err)
	}
	gone = crdt.Join(tc, live, gone)
	key, err := crdt.MakeKey(crdt.Int(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		f    crdt.Fragment
		want bool
	}{
		{"live, in the system", crdt.Fragment{Collection: "t", Key: key, Record: live}, true},
		{"tombstone", crdt.Fragment{Collection: "t", Key: key, Record: gone}, false},
		{"collection the system lacks", crdt.Fragment{Collection: "elsewhere", Key: key, Record: live}, false},
	} {
		if got := cat.QueueUnseen(tt.f); got != tt.want {
			t.Errorf("%s: QueueUnseen = %v, want %v", tt.name, got, tt.want)
		}
	}
}
