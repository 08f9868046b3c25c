// Package rangetree is an in-memory B+tree from record IDs to record hashes
// in which every node also keeps the fingerprint (XOR of hashes and count) of
// its subtree. It answers the questions of range-based set reconciliation in
// O(log n): the fingerprint of any ID range, the k-th ID, the rank of an ID,
// and boundaries that split a range into parts of equal size.
//
// A Tree is not safe for concurrent use; its owner serialises access.
package rangetree

import (
	"slices"

	"github.com/lattice-crdt/lattice/crdt"
)

const (
	maxLeaf  = 64
	maxInner = 64
)

type node struct {
	// ids holds a leaf's keys, or each child's smallest key in an inner node.
	ids      []crdt.ID
	hashes   []crdt.Hash // leaf only
	children []*node     // inner only
	fp       crdt.Fingerprint
}

func (n *node) leaf() bool { return n.children == nil }

// Tree maps IDs to hashes. The zero Tree is empty and ready to use.
type Tree struct {
	root *node
}

// Len returns the number of IDs in the tree.
func (t *Tree) Len() int {
	if t.root == nil {
		return 0
	}
	return int(t.root.fp.Count)
}

// Total returns the fingerprint of the whole tree.
func (t *Tree) Total() crdt.Fingerprint {
	if t.root == nil {
		return crdt.Fingerprint{}
	}
	return t.root.fp
}

// Get returns the hash stored for id.
func (t *Tree) Get(id crdt.ID) (crdt.Hash, bool) {
	n := t.root
	if n == nil {
		return crdt.Hash{}, false
	}
	for !n.leaf() {
		n = n.children[childIndex(n, id)]
	}
	i, ok := slices.BinarySearch(n.ids, id)
	if !ok {
		return crdt.Hash{}, false
	}
	return n.hashes[i], true
}

// childIndex returns the child of inner node n whose range holds id.
func childIndex(n *node, id crdt.ID) int {
	i, ok := slices.BinarySearch(n.ids, id)
	if ok {
		return i
	}
	return max(i-1, 0)
}

// Set stores h for id, replacing any earlier hash.
func (t *Tree) Set(id crdt.ID, h crdt.Hash) {
	if t.root == nil {
		t.root = &node{ids: []crdt.ID{id}, hashes: []crdt.Hash{h}, fp: crdt.Fingerprint{}.Add(h)}
		return
	}
	if right := t.set(t.root, id, h); right != nil {
		left := t.root
		t.root = &node{
			ids:      []crdt.ID{left.ids[0], right.ids[0]},
			children: []*node{left, right},
			fp:       left.fp.Combine(right.fp),
		}
	}
}

// set inserts into the subtree of n and returns the new right sibling if n
// split.
func (t *Tree) set(n *node, id crdt.ID, h crdt.Hash) *node {
	if n.leaf() {
		i, ok := slices.BinarySearch(n.ids, id)
		if ok {
			n.fp.Hash = n.fp.Hash.Xor(n.hashes[i]).Xor(h)
			n.hashes[i] = h
			return nil
		}
		n.ids = slices.Insert(n.ids, i, id)
		n.hashes = slices.Insert(n.hashes, i, h)
		n.fp = n.fp.Add(h)
		if len(n.ids) <= maxLeaf {
			return nil
		}
		mid := len(n.ids) / 2
		right := &node{ids: slices.Clone(n.ids[mid:]), hashes: slices.Clone(n.hashes[mid:])}
		n.ids = slices.Clip(n.ids[:mid])
		n.hashes = slices.Clip(n.hashes[:mid])
		n.fp, right.fp = leafFingerprint(n), leafFingerprint(right)
		return right
	}
	i := childIndex(n, id)
	c := n.children[i]
	before := c.fp
	right := t.set(c, id, h)
	if id < n.ids[i] {
		n.ids[i] = id
	}
	if right == nil {
		// The subtree changed by one hash (and maybe one count).
		n.fp.Hash = n.fp.Hash.Xor(before.Hash).Xor(c.fp.Hash)
		n.fp.Count += c.fp.Count - before.Count
		return nil
	}
	n.ids = slices.Insert(n.ids, i+1, right.ids[0])
	n.children = slices.Insert(n.children, i+1, right)
	n.fp = innerFingerprint(n)
	if len(n.children) <= maxInner {
		return nil
	}
	mid := len(n.children) / 2
	sib := &node{ids: slices.Clone(n.ids[mid:]), children: slices.Clone(n.children[mid:])}
	n.ids = slices.Clip(n.ids[:mid])
	n.children = slices.Clip(n.children[:mid])
	n.fp, sib.fp = innerFingerprint(n), innerFingerprint(sib)
	return sib
}

func leafFingerprint(n *node) crdt.Fingerprint {
	var fp crdt.Fingerprint
	for _, h := range n.hashes {
		fp = fp.Add(h)
	}
	return fp
}

func innerFingerprint(n *node) crdt.Fingerprint {
	var fp crdt.Fingerprint
	for _, c := range n.children {
		fp = fp.Combine(c.fp)
	}
	return fp
}

// Delete removes id and reports whether it was present. Nodes are not
// rebalanced; empty ones are removed.
func (t *Tree) Delete(id crdt.ID) bool {
	if t.root == nil {
		return false
	}
	found := t.delete(t.root, id)
	if t.root.fp.Count == 0 {
		t.root = nil
	} else {
		for !t.root.leaf() && len(t.root.children) == 1 {
			t.root = t.root.children[0]
		}
	}
	return found
}

func (t *Tree) delete(n *node, id crdt.ID) bool {
	if n.leaf() {
		i, ok := slices.BinarySearch(n.ids, id)
		if !ok {
			return false
		}
		n.fp = crdt.Fingerprint{Hash: n.fp.Hash.Xor(n.hashes[i]), Count: n.fp.Count - 1}
		n.ids = slices.Delete(n.ids, i, i+1)
		n.hashes = slices.Delete(n.hashes, i, i+1)
		return true
	}
	i := childIndex(n, id)
	c := n.children[i]
	before := c.fp
	if !t.delete(c, id) {
		return false
	}
	n.fp.Hash = n.fp.Hash.Xor(before.Hash).Xor(c.fp.Hash)
	n.fp.Count--
	if c.fp.Count == 0 {
		n.ids = slices.Delete(n.ids, i, i+1)
		n.children = slices.Delete(n.children, i, i+1)
	} else {
		n.ids[i] = c.ids[0]
	}
	return true
}

// Fingerprint returns the fingerprint of the IDs in [lo, hi). An empty hi
// means no upper bound.
func (t *Tree) Fingerprint(lo, hi crdt.ID) crdt.Fingerprint {
	if t.root == nil {
		return crdt.Fingerprint{}
	}
	return fingerprint(t.root, lo, hi, "", "")
}

// below reports whether a < b with "" as +infinity for b.
func below(a, b crdt.ID) bool { return b == "" || a < b }

// fingerprint sums n's subtree restricted to [lo, hi); n covers [nlo, nhi).
func fingerprint(n *node, lo, hi, nlo, nhi crdt.ID) crdt.Fingerprint {
	if lo <= nlo && (hi == "" || (nhi != "" && nhi <= hi)) {
		return n.fp
	}
	var fp crdt.Fingerprint
	if n.leaf() {
		i, _ := slices.BinarySearch(n.ids, lo)
		for ; i < len(n.ids) && below(n.ids[i], hi); i++ {
			fp = fp.Add(n.hashes[i])
		}
		return fp
	}
	for i, c := range n.children {
		clo := n.ids[i]
		if i == 0 {
			clo = nlo
		}
		chi := nhi
		if i+1 < len(n.children) {
			chi = n.ids[i+1]
		}
		if !below(clo, hi) {
			break
		}
		if chi != "" && chi <= lo {
			continue
		}
		fp = fp.Combine(fingerprint(c, lo, hi, clo, chi))
	}
	return fp
}

// Rank returns the number of IDs smaller than id.
func (t *Tree) Rank(id crdt.ID) int {
	n := t.root
	r := 0
	if n == nil {
		return 0
	}
	for !n.leaf() {
		i := childIndex(n, id)
		for _, c := range n.children[:i] {
			r += int(c.fp.Count)
		}
		n = n.children[i]
	}
	i, _ := slices.BinarySearch(n.ids, id)
	return r + i
}

// At returns the k-th smallest ID (from 0) and its hash; ok is false when k
// is out of range.
func (t *Tree) At(k int) (id crdt.ID, h crdt.Hash, ok bool) {
	if k < 0 || k >= t.Len() {
		return "", crdt.Hash{}, false
	}
	n := t.root
	for !n.leaf() {
		for _, c := range n.children {
			if k < int(c.fp.Count) {
				n = c
				break
			}
			k -= int(c.fp.Count)
		}
	}
	return n.ids[k], n.hashes[k], true
}

// Count returns the number of IDs in [lo, hi).
func (t *Tree) Count(lo, hi crdt.ID) int {
	end := t.Len()
	if hi != "" {
		end = t.Rank(hi)
	}
	return max(end-t.Rank(lo), 0)
}

// Split returns up to parts-1 IDs that cut [lo, hi) into parts of nearly
// equal counts; each returned ID starts a part. Fewer come back when the
// range holds fewer IDs than parts.
func (t *Tree) Split(lo, hi crdt.ID, parts int) []crdt.ID {
	start := t.Rank(lo)
	n := t.Count(lo, hi)
	if parts < 2 || n < 2 {
		return nil
	}
	parts = min(parts, n)
	out := make([]crdt.ID, 0, parts-1)
	for p := 1; p < parts; p++ {
		id, _, _ := t.At(start + p*n/parts)
		out = append(out, id)
	}
	return out
}

// Ascend calls fn for the IDs in [lo, hi) in order until fn returns false.
func (t *Tree) Ascend(lo, hi crdt.ID, fn func(id crdt.ID, h crdt.Hash) bool) {
	if t.root == nil {
		return
	}
	ascend(t.root, lo, hi, fn)
}

func ascend(n *node, lo, hi crdt.ID, fn func(crdt.ID, crdt.Hash) bool) bool {
	if n.leaf() {
		i, _ := slices.BinarySearch(n.ids, lo)
		for ; i < len(n.ids); i++ {
			if !below(n.ids[i], hi) || !fn(n.ids[i], n.hashes[i]) {
				return false
			}
		}
		return true
	}
	for i := childIndex(n, lo); i < len(n.children); i++ {
		if !below(n.ids[i], hi) && i > 0 {
			return false
		}
		if !ascend(n.children[i], lo, hi, fn) {
			return false
		}
	}
	return true
}
