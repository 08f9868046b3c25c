package store

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// conflictPair makes two stores that hold the same record, then has each
// write field name concurrently, and returns the deltas of the two writes.
func conflictPair(t *testing.T, a, b *Store, key crdt.Key, va, vb string) (da, db *crdt.Delta) {
	t.Helper()
	ins := mustLocal(t, a, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str("base")}}}, nil)
	mustMerge(t, b, ins.Delta)
	da = mustLocal(t, a, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str(va)}}}, nil).Delta
	db = mustLocal(t, b, "b", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str(vb)}}}, nil).Delta
	return da, db
}

// Concurrent writes are logged once per node and decision, with both
// values, on both nodes; the same delta again, or the loser's again, logs
// nothing more; the log survives a restart.
func TestConflictLogOnce(t *testing.T) {
	dir := t.TempDir()
	a := openDir(t, dir, crdt.MustSchema())
	b := openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	da, db := conflictPair(t, a, b, key, "from-a", "from-b")
	ra := mustMerge(t, a, db)
	rb := mustMerge(t, b, da)
	for name, res := range map[string]*MergeResult{"a": ra, "b": rb} {
		if len(res.Conflicts) != 1 {
			t.Fatalf("%s logged %d conflicts, want 1: %+v", name, len(res.Conflicts), res.Conflicts)
		}
		c := res.Conflicts[0]
		if c.Collection != "c" || c.Key != key || c.Field != "name" || c.Rule != "lww" {
			t.Fatalf("%s: conflict %+v", name, c)
		}
		vals := map[string]bool{c.Winner.Value.AsString(): true, c.Loser.Value.AsString(): true}
		if !vals["from-a"] || !vals["from-b"] || c.Winner.Stamp.Compare(c.Loser.Stamp) <= 0 {
			t.Fatalf("%s: conflict %+v, want both values, the newer winning", name, c)
		}
	}
	if ra.Conflicts[0].Winner.Stamp != rb.Conflicts[0].Winner.Stamp {
		t.Fatalf("the nodes disagree on the winner: %+v %+v", ra.Conflicts[0], rb.Conflicts[0])
	}
	for _, d := range []*crdt.Delta{db, da} {
		if res := mustMerge(t, a, d); len(res.Conflicts) != 0 {
			t.Fatalf("a delta merged again logged %+v", res.Conflicts)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a = openDir(t, dir, crdt.MustSchema())
	defer a.Close()
	if res := mustMerge(t, a, db); len(res.Conflicts) != 0 {
		t.Fatalf("after a restart, a delta merged again logged %+v", res.Conflicts)
	}
	got, next, err := a.Conflicts(ConflictQuery{})
	if err != nil || len(got) != 1 || next != 0 || got[0].ID != ra.Conflicts[0].ID || got[0].Loser.Value.AsString() == "" {
		t.Fatalf("Conflicts = %+v, %d, %v; want the one logged", got, next, err)
	}
}

// A write made after reading the other is not a conflict, nor is a write
// to another field.
func TestConflictLogCausal(t *testing.T) {
	a, b := openMem(t, crdt.MustSchema()), openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	ins := mustLocal(t, a, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str("x"), "city": str("y")}}}, nil)
	mustMerge(t, b, ins.Delta)
	first := mustLocal(t, a, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str("x1")}}}, nil)
	other := mustLocal(t, b, "b", []Change{{Collection: "c", Key: key, Row: crdt.Row{"city": str("y1")}}}, nil)
	if res := mustMerge(t, b, first.Delta); len(res.Conflicts) != 0 {
		t.Fatalf("writes to two fields logged %+v", res.Conflicts)
	}
	after := mustLocal(t, b, "b", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str("x2")}}}, nil)
	for _, d := range []*crdt.Delta{other.Delta, after.Delta} {
		if res := mustMerge(t, a, d); len(res.Conflicts) != 0 {
			t.Fatalf("a causal overwrite logged %+v", res.Conflicts)
		}
	}
}

// The log keeps at most ConflictKeep entries and none older than
// ConflictMaxAge, and pages with a cursor and filters.
func TestConflictLogRetention(t *testing.T) {
	ft := newFakeTime()
	mod := func(o *Options) {
		o.Physical = ft.now
		o.ConflictKeep = 3
		o.ConflictMaxAge = time.Hour
	}
	a, b := openMem(t, crdt.MustSchema(), mod), openMem(t, crdt.MustSchema(), mod)
	var ids []uint64
	for i := range 5 {
		key := crdt.IntKey(int64(i))
		_, db := conflictPair(t, a, b, key, "a", "b")
		res := mustMerge(t, a, db)
		if len(res.Conflicts) != 1 {
			t.Fatalf("write %d logged %+v", i, res.Conflicts)
		}
		ids = append(ids, res.Conflicts[0].ID)
		ft.advance(time.Minute)
	}
	got, _, err := a.Conflicts(ConflictQuery{})
	if err != nil || len(got) != 3 || got[0].ID != ids[2] || got[2].ID != ids[4] {
		t.Fatalf("Conflicts = %+v, %v; want the newest 3 of %v", got, err, ids)
	}
	page, next, err := a.Conflicts(ConflictQuery{Limit: 2})
	if err != nil || len(page) != 2 || next != page[1].ID {
		t.Fatalf("first page %+v, next %d, %v", page, next, err)
	}
	rest, next, err := a.Conflicts(ConflictQuery{After: next, Limit: 2})
	if err != nil || len(rest) != 1 || next != 0 || rest[0].ID != ids[4] {
		t.Fatalf("second page %+v, next %d, %v", rest, next, err)
	}
	if one, _, _ := a.Conflicts(ConflictQuery{Key: crdt.IntKey(3)}); len(one) != 1 || one[0].ID != ids[3] {
		t.Fatalf("by key: %+v", one)
	}
	if none, _, _ := a.Conflicts(ConflictQuery{Field: "other"}); len(none) != 0 {
		t.Fatalf("by field: %+v", none)
	}
	// An hour later the old ones are gone from reads; the next conflict
	// drops them from the store.
	ft.advance(time.Hour)
	if got, _, _ := a.Conflicts(ConflictQuery{}); len(got) != 0 {
		t.Fatalf("after max_age: %+v", got)
	}
	_, db := conflictPair(t, a, b, crdt.IntKey(9), "a", "b")
	mustMerge(t, a, db)
	if a.conflicts.next-a.conflicts.first != 1 {
		t.Fatalf("store holds conflicts [%d, %d), want only the new one", a.conflicts.first, a.conflicts.next)
	}
	if _, err := a.Conflict(ids[0]); err == nil {
		t.Fatalf("conflict %d still readable", ids[0])
	}
}

// With the log off, nothing is logged.
func TestConflictLogOff(t *testing.T) {
	off := func(o *Options) { o.NoConflictLog = true }
	a, b := openMem(t, crdt.MustSchema(), off), openMem(t, crdt.MustSchema(), off)
	_, db := conflictPair(t, a, b, crdt.IntKey(1), "a", "b")
	if res := mustMerge(t, a, db); len(res.Conflicts) != 0 {
		t.Fatalf("logged %+v with the log off", res.Conflicts)
	}
}

// A captured change that overwrites a merged write its system had not
// received yet is a conflict, logged by Local; so is one stamped with an
// earlier commit time that a merged write overtook (it loses).
func TestConflictLogCaptured(t *testing.T) {
	ft := newFakeTime()
	s := openMem(t, crdt.MustSchema(), func(o *Options) { o.Physical = ft.now })
	col, _ := s.Schema().Collection("c")
	for _, tc := range []struct {
		name      string
		committed int64 // 0: stamped when captured
		winner    string
	}{{"wins", 0, "from-system"}, {"loses", -1, "from-remote"}} {
		t.Run(tc.name, func(t *testing.T) {
			key := crdt.StringKey(tc.name)
			mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"name": str("base")}, Captured: true}}, nil)
			drain(t, s)
			ft.advance(time.Second)
			committed := ft.now() - int64(500*time.Millisecond) // before the remote write
			cur := mustGet(t, s, "c", key)
			d, err := crdt.Diff(col, cur, crdt.Row{"name": str("from-remote")}, crdt.Origin{Stamp: crdt.Stamp{TS: s.Clock().Now(), Replica: 99}})
			if err != nil {
				t.Fatal(err)
			}
			var remote crdt.Delta
			remote.Add("c", key, d)
			mustMerge(t, s, &remote)
			ch := Change{Collection: "c", Key: key, Captured: true, Base: crdt.Row{"name": str("base")}, Row: crdt.Row{"name": str("from-system")}}
			if tc.committed != 0 {
				ch.Committed = committed
			}
			res := mustLocal(t, s, "a", []Change{ch}, nil)
			if len(res.Conflicts) != 1 || res.Conflicts[0].Winner.Value.AsString() != tc.winner {
				t.Fatalf("conflicts %+v, want one won by %s", res.Conflicts, tc.winner)
			}
			if got := mustGet(t, s, "c", key).View(col)["name"].AsString(); got != tc.winner {
				t.Fatalf("name = %s, want %s", got, tc.winner)
			}
		})
	}
}

// A merge that logs more conflicts than ConflictKeep (the older writes of a
// arriving at b) keeps the newest ones and their index entries only, and a dropped decision is logged again when
// its losing write arrives again while a kept one is not.
func TestConflictLogRetentionOneMerge(t *testing.T) {
	mod := func(o *Options) { o.ConflictKeep = 3 }
	a, b := openMem(t, crdt.MustSchema(), mod), openMem(t, crdt.MustSchema(), mod)
	all := &crdt.Delta{}
	for i := range 5 {
		da, _ := conflictPair(t, a, b, crdt.IntKey(int64(i)), "a", "b")
		all.Fragments = append(all.Fragments, da.Fragments...)
	}
	res := mustMerge(t, b, all)
	if len(res.Conflicts) != 5 {
		t.Fatalf("logged %d conflicts, want 5", len(res.Conflicts))
	}
	got, _, err := b.Conflicts(ConflictQuery{})
	if err != nil || len(got) != 3 || got[0].ID != res.Conflicts[2].ID {
		t.Fatalf("Conflicts = %+v, %v; want the newest 3", got, err)
	}
	indexed := 0
	if err := b.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflictIndex}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			indexed++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if indexed != 3 || len(b.conflicts.seen) != 3 {
		t.Fatalf("%d index entries stored, %d in memory; want 3", indexed, len(b.conflicts.seen))
	}
	again := mustMerge(t, b, all)
	if len(again.Conflicts) != 2 || again.Conflicts[0].Key != crdt.IntKey(0) || again.Conflicts[1].Key != crdt.IntKey(1) {
		t.Fatalf("merging again logged %+v; want the two dropped decisions", again.Conflicts)
	}
}
