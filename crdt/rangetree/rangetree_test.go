package rangetree

import (
	"fmt"
	"slices"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// model is the obvious implementation the tree must agree with.
type model map[crdt.ID]crdt.Hash

func (m model) sorted() []crdt.ID {
	ids := make([]crdt.ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m model) fingerprint(lo, hi crdt.ID) crdt.Fingerprint {
	var fp crdt.Fingerprint
	for id, h := range m {
		if id >= lo && (hi == "" || id < hi) {
			fp = fp.Add(h)
		}
	}
	return fp
}

func genID() *rapid.Generator[crdt.ID] {
	return rapid.Custom(func(t *rapid.T) crdt.ID {
		return crdt.MakeID("c", crdt.IntKey(rapid.Int64Range(0, 400).Draw(t, "k")))
	})
}

func genHash() *rapid.Generator[crdt.Hash] {
	return rapid.Custom(func(t *rapid.T) crdt.Hash {
		var h crdt.Hash
		copy(h[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(t, "h"))
		return h
	})
}

func TestTreeMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var tr Tree
		m := model{}
		ops := rapid.IntRange(1, 600).Draw(t, "ops")
		for range ops {
			id := genID().Draw(t, "id")
			if rapid.IntRange(0, 9).Draw(t, "op") == 0 {
				_, had := m[id]
				if got := tr.Delete(id); got != had {
					t.Fatalf("Delete(%s) = %v, want %v", id, got, had)
				}
				delete(m, id)
				continue
			}
			h := genHash().Draw(t, "h")
			tr.Set(id, h)
			m[id] = h
		}
		if got, want := tr.Len(), len(m); got != want {
			t.Fatalf("Len = %d, want %d", got, want)
		}
		if got, want := tr.Total(), m.fingerprint("", ""); got != want {
			t.Fatalf("Total = %v, want %v", got, want)
		}
		ids := m.sorted()
		for k, id := range ids {
			got, h, ok := tr.At(k)
			if !ok || got != id || h != m[id] {
				t.Fatalf("At(%d) = %s, want %s", k, got, id)
			}
			if r := tr.Rank(id); r != k {
				t.Fatalf("Rank(%s) = %d, want %d", id, r, k)
			}
		}
		for range 20 {
			lo, hi := genID().Draw(t, "lo"), genID().Draw(t, "hi")
			if rapid.Bool().Draw(t, "open") {
				hi = ""
			}
			if got, want := tr.Fingerprint(lo, hi), m.fingerprint(lo, hi); got != want {
				t.Fatalf("Fingerprint(%s, %s) = %v, want %v", lo, hi, got, want)
			}
			var seen []crdt.ID
			tr.Ascend(lo, hi, func(id crdt.ID, h crdt.Hash) bool {
				if m[id] != h {
					t.Fatalf("Ascend gave wrong hash for %s", id)
				}
				seen = append(seen, id)
				return true
			})
			var want []crdt.ID
			for _, id := range ids {
				if id >= lo && (hi == "" || id < hi) {
					want = append(want, id)
				}
			}
			if !slices.Equal(seen, want) {
				t.Fatalf("Ascend(%s, %s) = %v, want %v", lo, hi, seen, want)
			}
			if got := tr.Count(lo, hi); got != len(want) {
				t.Fatalf("Count = %d, want %d", got, len(want))
			}
			parts := rapid.IntRange(2, 16).Draw(t, "parts")
			cuts := tr.Split(lo, hi, parts)
			if len(want) >= 2 && len(cuts) != min(parts, len(want))-1 {
				t.Fatalf("Split gave %d cuts for %d ids in %d parts", len(cuts), len(want), parts)
			}
			total := crdt.Fingerprint{}
			prev := lo
			for _, c := range append(cuts, hi) {
				total = total.Combine(tr.Fingerprint(prev, c))
				prev = c
			}
			if hi == "" || lo <= hi {
				if total != m.fingerprint(lo, hi) {
					t.Fatalf("split parts of [%s, %s) do not add up", lo, hi)
				}
			}
		}
	})
}

func BenchmarkSet(b *testing.B) {
	b.ReportAllocs()
	var tr Tree
	var h crdt.Hash
	i := 0
	for b.Loop() {
		h[0] = byte(i)
		tr.Set(crdt.MakeID("c", crdt.IntKey(int64(i*7919%1_000_003))), h)
		i++
	}
}

func BenchmarkFingerprint(b *testing.B) {
	var tr Tree
	for i := range 200_000 {
		var h crdt.Hash
		h[0], h[1] = byte(i), byte(i>>8)
		tr.Set(crdt.MakeID("c", crdt.IntKey(int64(i))), h)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		lo := crdt.MakeID("c", crdt.IntKey(int64(i%100_000)))
		hi := crdt.MakeID("c", crdt.IntKey(int64(i%100_000+50_000)))
		_ = tr.Fingerprint(lo, hi)
		i++
	}
}

func ExampleTree() {
	var t Tree
	for i := range 10 {
		t.Set(crdt.MakeID("customers", crdt.IntKey(int64(i))), crdt.Hash{byte(i)})
	}
	lo, hi := crdt.MakeID("customers", crdt.IntKey(2)), crdt.MakeID("customers", crdt.IntKey(5))
	fmt.Println(t.Count(lo, hi), t.Fingerprint(lo, hi).Count, len(t.Split("", "", 4)))
	// Output: 3 3 3
}
