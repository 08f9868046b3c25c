package sidecar

import (
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// coalesce joins neighbouring ranges of the same kind (equal or not) while
// they hold at most the limit together, and joins their hashes and
// fingerprints as the union of their rows and records would have them.
func TestCoalesceRanges(t *testing.T) {
	h := func(b byte, rows int, last string) adapters.RangeHash {
		return adapters.RangeHash{Sum: [16]byte{b}, Rows: rows, Last: crdt.Key(last)}
	}
	fp := func(b byte, n uint64) crdt.Fingerprint { return crdt.Fingerprint{Hash: crdt.Hash{b}, Count: n} }
	in := []verifiedRange{
		{through: "a", sys: h(1, 0, ""), equal: true, store: fp(1, 2), fp: fp(1, 0)},
		{through: "b", sys: h(2, 4, "b"), equal: true, store: fp(2, 4), fp: fp(2, 4)},
		{through: "c", sys: h(4, 6, "c"), equal: true, store: fp(4, 6), fp: fp(4, 6)},
		{through: "d", sys: h(8, 1, "d"), equal: false},
		{through: "d2", sys: h(128, 9, "d2"), equal: false},
		{through: "e", sys: h(16, 2, "e"), equal: false},
		{through: "f", sys: h(32, 3, "f"), equal: true, store: fp(32, 3), fp: fp(32, 3)},
		{through: "", sys: h(64, 0, ""), equal: true, store: fp(64, 1), fp: fp(64, 0)},
	}
	got := coalesce(in, 10)
	want := []verifiedRange{
		{through: "c", sys: h(1^2^4, 10, "c"), equal: true, store: fp(1^2^4, 12), fp: fp(1^2^4, 10)},
		{through: "d2", sys: h(8^128, 10, "d2"), equal: false},
		{through: "e", sys: h(16, 2, "e"), equal: false},
		{through: "", sys: h(32^64, 3, "f"), equal: true, store: fp(32^64, 4), fp: fp(32^64, 3)},
	}
	if len(got) != len(want) {
		t.Fatalf("coalesce gave %d ranges, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("range %d: %+v\nwant %+v", i, got[i], want[i])
		}
	}
}
