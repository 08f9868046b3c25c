package store

import (
	"cmp"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/rangetree"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"pgregory.net/rapid"
)

// propStore opens small in-memory stores whose batches often split.
func propStore(t *rapid.T, tb testing.TB, schema *crdt.Schema) *Store {
	o := testOptions(tb)
	o.InMemory = true
	o.MemTableSize = 1 << 20
	o.MaxClockOffset = -1
	s, err := Open("", schema, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	// The histories hold a few small records, which fit in the smallest
	// MaxBatchBytes (4 KiB): split them at a smaller size, still above the
	// largest record.
	if n := rapid.SampledFrom([]int64{0, 1200, 2000}).Draw(t, "batchBytes"); n > 0 {
		s.batchBytes = n
	}
	return s
}

// genHistory draws a history of operations by a few replicas that exchange
// some of their deltas, and returns every delta in the order it was made.
func genHistory(t *rapid.T, schema *crdt.Schema) []*crdt.Delta {
	ft := newFakeTime()
	sources := []string{"crm", "erp", "web"}
	n := rapid.IntRange(1, 3).Draw(t, "replicas")
	peers := make([]*peer, n)
	for i := range peers {
		skew := time.Duration(rapid.IntRange(-50, 50).Draw(t, "skew")) * time.Millisecond
		peers[i] = newPeer(crdt.ReplicaID(100+i), sources[i], schema, func() int64 { return ft.now() + int64(skew) })
	}
	values := []crdt.Value{crdt.Null(), str("a"), str("b"), num(1), num(2), num(5)}
	fields := []string{"name", "city", "phone", "seen", "low"}
	var out []*crdt.Delta
	ops := rapid.IntRange(1, 40).Draw(t, "ops")
	for range ops {
		ft.advance(time.Duration(rapid.IntRange(0, 5).Draw(t, "dt")) * time.Millisecond)
		p := peers[rapid.IntRange(0, n-1).Draw(t, "peer")]
		col := rapid.SampledFrom([]string{"people", "people", "misc"}).Draw(t, "collection")
		key := crdt.IntKey(int64(rapid.IntRange(0, 3).Draw(t, "key")))
		switch op := rapid.IntRange(0, 9).Draw(t, "op"); {
		case op < 5:
			row := crdt.Row{}
			for _, f := range fields {
				if rapid.Bool().Draw(t, "has-"+f) {
					row[f] = rapid.SampledFrom(values).Draw(t, "value")
				}
			}
			out = append(out, p.write(col, key, row))
		case op < 7 && col == "people":
			add := rapid.SliceOfN(rapid.SampledFrom(values[3:]), 0, 2).Draw(t, "add")
			rem := rapid.SliceOfN(rapid.SampledFrom(values[3:]), 0, 2).Draw(t, "remove")
			out = append(out, p.setOps(col, key, "tags", add, rem))
		case op < 8:
			out = append(out, p.delete(col, key))
		default:
			if len(out) > 0 {
				p.receive(out[rapid.IntRange(0, len(out)-1).Draw(t, "received")])
			}
		}
	}
	return out
}

// regroup draws a permutation of the fragments of deltas (some duplicated)
// cut into random batches.
func regroup(t *rapid.T, deltas []*crdt.Delta) []*crdt.Delta {
	var all []crdt.Fragment
	for _, d := range deltas {
		all = append(all, d.Fragments...)
	}
	if len(all) > 0 {
		for range rapid.IntRange(0, 3).Draw(t, "dups") {
			all = append(all, all[rapid.IntRange(0, len(all)-1).Draw(t, "dup")])
		}
	}
	all = rapid.Permutation(all).Draw(t, "order")
	var out []*crdt.Delta
	for len(all) > 0 {
		k := rapid.IntRange(1, len(all)).Draw(t, "batch")
		out = append(out, &crdt.Delta{Fragments: all[:k]})
		all = all[k:]
	}
	return out
}

// oracle joins every fragment in memory.
func oracle(schema *crdt.Schema, deltas []*crdt.Delta) map[crdt.ID]*crdt.Record {
	out := map[crdt.ID]*crdt.Record{}
	for _, d := range deltas {
		for _, f := range d.Fragments {
			id := crdt.MakeID(f.Collection, f.Key)
			out[id] = crdt.Join(mustCol(schema, f.Collection), out[id], f.Record)
		}
	}
	return out
}

func storeRecords(t *rapid.T, s *Store) map[crdt.ID]*crdt.Record {
	d, err := s.ReadRange("", "", 0)
	if err != nil {
		t.Fatalf("read range: %v", err)
	}
	out := map[crdt.ID]*crdt.Record{}
	for _, f := range d.Fragments {
		out[crdt.MakeID(f.Collection, f.Key)] = f.Record
	}
	return out
}

func sameRecords(t *rapid.T, what string, got, want map[crdt.ID]*crdt.Record) {
	for id, w := range want {
		if w.IsEmpty() {
			continue
		}
		if !crdt.EqualRecords(got[id], w) {
			t.Fatalf("%s: record %s = %v, want %v", what, id, got[id], w)
		}
	}
	for id, g := range got {
		if want[id].IsEmpty() {
			t.Fatalf("%s: unexpected record %s = %v", what, id, g)
		}
	}
}

// Merging the same deltas in any order and any grouping, with duplicates,
// gives the same states as joining them in memory, and the same digest.
func TestPropMergeOrderAndGrouping(t *testing.T) {
	schema := testSchema(false)
	rapid.Check(t, func(rt *rapid.T) {
		history := genHistory(rt, schema)
		want := oracle(schema, history)
		a, b := propStore(rt, t, schema), propStore(rt, t, schema)
		defer a.Close()
		defer b.Close()
		for _, d := range regroup(rt, history) {
			if res, err := a.Merge(d); err != nil || len(res.Rejected) > 0 {
				rt.Fatalf("merge a: %v %v", err, res)
			}
		}
		for _, d := range regroup(rt, history) {
			if res, err := b.Merge(d); err != nil || len(res.Rejected) > 0 {
				rt.Fatalf("merge b: %v %v", err, res)
			}
		}
		sameRecords(rt, "store a", storeRecords(rt, a), want)
		sameRecords(rt, "store b", storeRecords(rt, b), want)
		if a.Digest() != b.Digest() {
			rt.Fatalf("digests differ: %s and %s", a.Digest(), b.Digest())
		}
		for _, s := range []*Store{a, b} {
			// Check also compares the digest recomputed from the records
			// with the range tree's.
			if _, err := s.Check(); err != nil {
				rt.Fatalf("check: %v", err)
			}
		}
	})
}

// The pending-apply queue holds exactly the records whose visible state
// changed since they were last acknowledged, oldest first, and an
// acknowledgement of an entry whose record was queued again since removes
// nothing.
func TestPropPendingQueue(t *testing.T) {
	schema := testSchema(false)
	rapid.Check(t, func(rt *rapid.T) {
		history := genHistory(rt, schema)
		s := propStore(rt, t, schema)
		defer s.Close()

		model := map[crdt.ID]*crdt.Record{} // merged state
		type entry struct {
			call    int     // merge call that queued it
			version int     // times queued
			id      crdt.ID // order within a call
		}
		queue := map[crdt.ID]entry{}
		versions := map[crdt.ID]int{}
		var snapshots [][]Pending // Pending results kept for later (stale) acks
		type snapKey struct {
			seq uint64
			id  crdt.ID
		}
		snapVersions := map[snapKey]int{}

		for call, d := range regroup(rt, history) {
			res, err := s.Merge(d)
			if err != nil {
				rt.Fatalf("merge: %v", err)
			}
			var changed []crdt.ID
			touched := map[crdt.ID]bool{}
			before := maps.Clone(model)
			for _, f := range d.Fragments {
				id := crdt.MakeID(f.Collection, f.Key)
				model[id] = crdt.Join(mustCol(schema, f.Collection), model[id], f.Record)
				touched[id] = true
			}
			for id := range touched {
				c, _, _ := id.Split()
				if !engine.SameView(mustCol(schema, c), before[id], model[id]) {
					changed = append(changed, id)
				}
			}
			var effects []crdt.ID
			for _, e := range res.Effects {
				id := crdt.MakeID(e.Collection, e.Key)
				effects = append(effects, id)
				if !crdt.EqualRecords(e.Record, model[id]) {
					rt.Fatalf("effect %s carries %v, want %v", id, e.Record, model[id])
				}
			}
			slices.Sort(changed)
			if !slices.Equal(effects, changed) {
				rt.Fatalf("call %d: effects %v, want the records whose view changed %v", call, effects, changed)
			}
			for _, id := range changed {
				versions[id]++
				queue[id] = entry{call: call, version: versions[id], id: id}
			}

			// Take a snapshot of the queue, and ack a random earlier one.
			if rapid.Bool().Draw(rt, "snapshot") {
				p, err := s.Pending(rapid.IntRange(0, 5).Draw(rt, "limit"))
				if err != nil {
					rt.Fatalf("pending: %v", err)
				}
				for _, it := range p {
					snapVersions[snapKey{it.Seq, it.ID()}] = versions[it.ID()]
				}
				snapshots = append(snapshots, p)
			}
			if len(snapshots) > 0 && rapid.Bool().Draw(rt, "ack") {
				i := rapid.IntRange(0, len(snapshots)-1).Draw(rt, "snapshot to ack")
				p := snapshots[i]
				snapshots = slices.Delete(snapshots, i, i+1)
				if err := s.AckPending(p); err != nil {
					rt.Fatalf("ack: %v", err)
				}
				for _, it := range p {
					id := it.ID()
					if e, ok := queue[id]; ok && e.version == snapVersions[snapKey{it.Seq, id}] {
						delete(queue, id)
					}
				}
			}

			want := slices.SortedFunc(maps.Values(queue), func(a, b entry) int {
				return cmp.Or(cmp.Compare(a.call, b.call), cmp.Compare(a.id, b.id))
			})
			got := mustPendingRapid(rt, s)
			if len(got) != len(want) || s.PendingLen() != len(want) {
				rt.Fatalf("call %d: pending %d (len %d), want %d", call, len(got), s.PendingLen(), len(want))
			}
			for i := range got {
				if got[i].ID() != want[i].id {
					rt.Fatalf("call %d: pending[%d] = %s, want %s", call, i, got[i].ID(), want[i].id)
				}
				if !crdt.EqualRecords(got[i].Record, model[want[i].id]) {
					rt.Fatalf("pending %s carries a stale state", got[i].ID())
				}
			}
		}
		if _, err := s.Check(); err != nil {
			rt.Fatalf("check: %v", err)
		}
	})
}

func mustPendingRapid(t *rapid.T, s *Store) []Pending {
	p, err := s.Pending(0)
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	return p
}

// Fingerprints of a range equal the XOR of the hashes of the records in it;
// two stores that differ in one record have different fingerprints exactly
// on the ranges holding it; Split cuts ranges whose fingerprints combine.
func TestPropFingerprints(t *testing.T) {
	schema := testSchema(false)
	rapid.Check(t, func(rt *rapid.T) {
		history := genHistory(rt, schema)
		a, b := propStore(rt, t, schema), propStore(rt, t, schema)
		defer a.Close()
		defer b.Close()
		for _, d := range history {
			mustMergeRapid(rt, a, d)
			mustMergeRapid(rt, b, d)
		}
		// One more write in b only.
		ft := newFakeTime()
		ft.advance(time.Hour)
		extra := newPeer(999, "web", schema, ft.now)
		key := crdt.IntKey(int64(rapid.IntRange(0, 5).Draw(rt, "extra key")))
		mustMergeRapid(rt, b, extra.write("people", key, crdt.Row{"name": str("extra")}))
		diffID := crdt.MakeID("people", key)

		ids := []crdt.ID{"", diffID}
		for id := range storeRecords(rt, b) {
			ids = append(ids, id)
		}
		ids = append(ids, "a", "people", "people\x00", "zzz")
		for range 20 {
			lo := rapid.SampledFrom(ids).Draw(rt, "lo")
			hi := rapid.SampledFrom(ids).Draw(rt, "hi")
			var want crdt.Fingerprint
			rr, err := b.ReadRange(lo, hi, 0)
			if err != nil {
				rt.Fatal(err)
			}
			for _, f := range rr.Fragments {
				id := crdt.MakeID(f.Collection, f.Key)
				want = want.Add(crdt.HashRecord(id, crdt.AppendRecord(nil, f.Record)))
			}
			if got := b.Fingerprint(lo, hi); got != want {
				rt.Fatalf("Fingerprint(%q, %q) = %s, recomputed %s", lo, hi, got, want)
			}
			holds := lo <= diffID && (hi == "" || diffID < hi)
			if same := a.Fingerprint(lo, hi) == b.Fingerprint(lo, hi); same == holds {
				rt.Fatalf("range [%q, %q) holds the differing record: %v, fingerprints equal: %v", lo, hi, holds, same)
			}
		}
		parts := rapid.IntRange(1, 6).Draw(rt, "parts")
		cuts := b.Split("", "", parts)
		bounds := append(append([]crdt.ID{""}, cuts...), "")
		var total crdt.Fingerprint
		for i := 0; i+1 < len(bounds); i++ {
			total = total.Combine(b.Fingerprint(bounds[i], bounds[i+1]))
		}
		if total != b.Digest() {
			rt.Fatalf("split parts combine to %s, digest %s", total, b.Digest())
		}
	})
}

func mustMergeRapid(t *rapid.T, s *Store, d *crdt.Delta) {
	res, err := s.Merge(d)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("merge: %v %+v", err, res)
	}
}

// Reverting the range-tree updates of a failed commit restores the tree.
func TestPropTreeRevert(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		id := rapid.Custom(func(t *rapid.T) crdt.ID {
			return crdt.MakeID("c", crdt.IntKey(int64(rapid.IntRange(0, 50).Draw(t, "key"))))
		})
		hash := rapid.Custom(func(t *rapid.T) crdt.Hash {
			var h crdt.Hash
			h[0] = byte(rapid.IntRange(0, 255).Draw(t, "h0"))
			h[15] = byte(rapid.IntRange(0, 255).Draw(t, "h15"))
			return h
		})
		var tree rangetree.Tree
		for _, id := range rapid.SliceOf(id).Draw(rt, "initial") {
			tree.Set(id, hash.Draw(rt, "hash"))
		}
		var before []treeOp
		tree.Ascend("", "", func(id crdt.ID, h crdt.Hash) bool {
			before = append(before, treeOp{id, h})
			return true
		})
		var ops []treeOp
		for _, id := range rapid.SliceOf(id).Draw(rt, "ops") {
			ops = append(ops, treeOp{id, hash.Draw(rt, "new hash")})
		}
		total := tree.Total()
		revertTree(&tree, applyTree(&tree, ops, nil))
		var after []treeOp
		tree.Ascend("", "", func(id crdt.ID, h crdt.Hash) bool {
			after = append(after, treeOp{id, h})
			return true
		})
		if !slices.Equal(before, after) || tree.Total() != total {
			rt.Fatalf("tree after revert %v, want %v", after, before)
		}
	})
}
