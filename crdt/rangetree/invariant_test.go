package rangetree

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// check verifies the tree's structure: node sizes, that every inner key is
// its child's smallest ID, that IDs increase across leaves, and that every
// fingerprint is the sum of what is below it. It returns the IDs in order.
func check(t *testing.T, tr *Tree) []crdt.ID {
	t.Helper()
	if tr.root == nil {
		return nil
	}
	var ids []crdt.ID
	var walk func(n *node, depth int) (crdt.Fingerprint, int)
	walk = func(n *node, depth int) (crdt.Fingerprint, int) {
		var fp crdt.Fingerprint
		if n.leaf() {
			if len(n.ids) == 0 || len(n.ids) != len(n.hashes) || len(n.ids) > maxLeaf {
				t.Fatalf("leaf of %d ids, %d hashes", len(n.ids), len(n.hashes))
			}
			for i, id := range n.ids {
				if len(ids) > 0 && ids[len(ids)-1] >= id {
					t.Fatalf("ids out of order: %s then %s", ids[len(ids)-1], id)
				}
				ids = append(ids, id)
				fp = fp.Add(n.hashes[i])
			}
		} else {
			if len(n.children) == 0 || len(n.ids) != len(n.children) || len(n.children) > maxInner {
				t.Fatalf("inner node of %d ids, %d children", len(n.ids), len(n.children))
			}
			leafDepth := -1
			for i, c := range n.children {
				first := len(ids)
				cfp, d := walk(c, depth+1)
				if leafDepth >= 0 && d != leafDepth {
					t.Fatalf("leaves at depths %d and %d", leafDepth, d)
				}
				leafDepth = d
				if n.ids[i] != ids[first] {
					t.Fatalf("inner key %s, child starts at %s", n.ids[i], ids[first])
				}
				fp = fp.Combine(cfp)
			}
			depth = leafDepth
		}
		if fp != n.fp {
			t.Fatalf("node fingerprint %v, children sum to %v", n.fp, fp)
		}
		return fp, depth
	}
	walk(tr.root, 0)
	if tr.Len() != len(ids) {
		t.Fatalf("Len %d, %d ids", tr.Len(), len(ids))
	}
	return ids
}

func hashOf(i int) crdt.Hash {
	var h crdt.Hash
	for j := range h {
		h[j] = byte(i >> (j % 8 * 8))
	}
	h[15] ^= byte(i * 31)
	return h
}

// TestTreeLarge grows a tree three levels deep, rewrites and deletes most of
// it in random order, and checks the structure and the answers throughout.
func TestTreeLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tr Tree
	m := model{}
	const n = 20_000
	perm := rng.Perm(n)
	for i, k := range perm {
		id := crdt.MakeID("c", crdt.IntKey(int64(k)))
		tr.Set(id, hashOf(k))
		m[id] = hashOf(k)
		if i%4000 == 0 {
			check(t, &tr)
		}
	}
	ids := check(t, &tr)
	if len(ids) != n || tr.root.leaf() || tr.root.children[0].leaf() {
		t.Fatalf("%d ids; want a tree of three levels", len(ids))
	}
	for _, k := range perm[:500] {
		id := crdt.MakeID("c", crdt.IntKey(int64(k)))
		tr.Set(id, hashOf(k+1))
		m[id] = hashOf(k + 1)
	}
	check(t, &tr)
	for i, k := range rng.Perm(n)[:n-7] {
		id := crdt.MakeID("c", crdt.IntKey(int64(k)))
		if !tr.Delete(id) {
			t.Fatalf("Delete(%s) = false", id)
		}
		if tr.Delete(id) {
			t.Fatalf("second Delete(%s) = true", id)
		}
		delete(m, id)
		if i%2000 == 0 {
			check(t, &tr)
			lo := crdt.MakeID("c", crdt.IntKey(int64(rng.IntN(n))))
			hi := crdt.MakeID("c", crdt.IntKey(int64(rng.IntN(n))))
			if got, want := tr.Fingerprint(lo, hi), m.fingerprint(lo, hi); got != want {
				t.Fatalf("Fingerprint(%s, %s) = %v, want %v", lo, hi, got, want)
			}
		}
	}
	ids = check(t, &tr)
	for id, h := range m {
		if got, ok := tr.Get(id); !ok || got != h {
			t.Fatalf("Get(%s) = %v, %v", id, got, ok)
		}
	}
	want := m.sorted()
	if !slices.Equal(ids, want) {
		t.Fatalf("ids %v, want %v", ids, want)
	}
	if _, ok := tr.Get(crdt.MakeID("c", crdt.IntKey(n+1))); ok {
		t.Fatal("Get of an absent id")
	}
	for _, id := range want {
		tr.Delete(id)
	}
	if tr.root != nil || tr.Len() != 0 || tr.Total() != (crdt.Fingerprint{}) {
		t.Fatal("tree not empty after deleting everything")
	}
}

func TestTreeEmpty(t *testing.T) {
	var tr Tree
	id := crdt.MakeID("c", crdt.IntKey(1))
	if _, ok := tr.Get(id); ok || tr.Delete(id) || tr.Len() != 0 || tr.Rank(id) != 0 || tr.Count("", "") != 0 {
		t.Fatal("empty tree")
	}
	if _, _, ok := tr.At(0); ok {
		t.Fatal("At on an empty tree")
	}
	if tr.Fingerprint("", "") != (crdt.Fingerprint{}) || tr.Split("", "", 4) != nil {
		t.Fatal("empty tree ranges")
	}
	tr.Ascend("", "", func(crdt.ID, crdt.Hash) bool { t.Fatal("Ascend on an empty tree"); return false })
	tr.Set(id, hashOf(1))
	if _, _, ok := tr.At(-1); ok {
		t.Fatal("At(-1)")
	}
	if tr.Delete(crdt.MakeID("c", crdt.IntKey(2))) || !tr.Delete(id) || tr.root != nil {
		t.Fatal("delete the only id")
	}
}

// TestAscendStops checks that Ascend stops when fn returns false, also
// across leaves.
func TestAscendStops(t *testing.T) {
	var tr Tree
	for i := range 1000 {
		tr.Set(crdt.MakeID("c", crdt.IntKey(int64(i))), hashOf(i))
	}
	for _, stop := range []int{1, 64, 65, 500} {
		n := 0
		tr.Ascend("", "", func(crdt.ID, crdt.Hash) bool { n++; return n < stop })
		if n != stop {
			t.Fatalf("Ascend called fn %d times, want %d", n, stop)
		}
	}
}
