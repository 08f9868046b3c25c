package store

import (
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// parkAll queues records 1..n of notes and parks them all.
func parkAll(t *testing.T, s *Store, n int) {
	t.Helper()
	var chs []Change
	for i := 1; i <= n; i++ {
		chs = append(chs, Change{Collection: "notes", Key: crdt.IntKey(int64(i)), Row: crdt.Row{"name": str("x")}})
	}
	mustLocal(t, s, "crm", chs, nil)
	for _, p := range mustPending(t, s) {
		if err := s.Park(p, "refused"); err != nil {
			t.Fatal(err)
		}
	}
	if s.ParkedLen() != n {
		t.Fatalf("parked = %d, want %d", s.ParkedLen(), n)
	}
}

// Skip drops a parked entry, keeps the record's merged state, honours the
// seq the operator saw, and survives a reopen; a later change queues the
// record again.
func TestSkipDropsParkedEntryKeepsState(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, testSchema(false))
	parkAll(t, s, 2)
	parked, err := s.Parked(0)
	if err != nil {
		t.Fatal(err)
	}
	one := parked[0]
	if ok, err := s.Skip(one.ID(), one.Seq+1); err != nil || ok {
		t.Fatalf("skip with a stale seq = %v, %v; want false", ok, err)
	}
	if ok, err := s.Skip(one.ID(), one.Seq); err != nil || !ok {
		t.Fatalf("skip = %v, %v; want true", ok, err)
	}
	if ok, err := s.Skip(one.ID(), 0); err != nil || ok {
		t.Fatalf("second skip = %v, %v; want false", ok, err)
	}
	if got, _ := s.Parked(0); len(got) != 1 || got[0].ID() == one.ID() || s.ParkedLen() != 1 {
		t.Fatalf("parked after skip = %v (len %d)", got, s.ParkedLen())
	}
	if s.PendingLen() != 0 {
		t.Fatalf("pending = %d after skip, want 0: skip applies nothing", s.PendingLen())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, testSchema(false))
	defer s.Close()
	if s.ParkedLen() != 1 {
		t.Fatalf("parked after reopen = %d, want 1", s.ParkedLen())
	}
	r, err := s.Get("notes", one.Key)
	if err != nil || !r.Exists() {
		t.Fatalf("skipped record's state = %v, %v; want it kept", r, err)
	}
	if v := r.View(mustColl(t, s, "notes"))["name"]; !crdt.Equal(v, str("x")) {
		t.Fatalf("skipped record's name = %v, want x", v)
	}
	mustLocal(t, s, "crm", []Change{{Collection: "notes", Key: one.Key, Row: crdt.Row{"name": str("y")}}}, nil)
	if s.PendingLen() != 1 {
		t.Fatalf("pending after a new change = %d, want 1", s.PendingLen())
	}
}

// ParkedAfter pages through the parked list in ID order.
func TestParkedAfterPages(t *testing.T) {
	s := openMem(t, testSchema(false))
	parkAll(t, s, 5)
	var seen []crdt.ID
	after := crdt.ID("")
	for {
		page, err := s.ParkedAfter(after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			seen = append(seen, p.ID())
		}
		after = page[len(page)-1].ID()
	}
	all, _ := s.Parked(0)
	if len(seen) != 5 || len(all) != 5 {
		t.Fatalf("paged %d, listed %d; want 5", len(seen), len(all))
	}
	for i := range all {
		if seen[i] != all[i].ID() {
			t.Fatalf("page order %v differs from %v", seen, all)
		}
	}
}

func mustColl(t *testing.T, s *Store, name string) *crdt.Collection {
	t.Helper()
	c, err := s.collection(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
