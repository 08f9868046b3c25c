package crdt_test

import (
	"bytes"
	"math/big"
	"slices"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/crdttest"
	"pgregory.net/rapid"
)

func requireEqual(t *rapid.T, what string, got, want *crdt.Record) {
	t.Helper()
	if !crdt.EqualRecords(got, want) {
		t.Fatalf("%s:\n got  %s\n want %s", what, got, want)
	}
}

// checkLaws checks the semilattice laws on three states, and that equal
// states encode (and so hash) identically.
func checkLaws(t *rapid.T, c *crdt.Collection, a, b, x *crdt.Record) {
	t.Helper()
	ab, ba := crdt.Join(c, a, b), crdt.Join(c, b, a)
	requireEqual(t, "commutative: a⊔b vs b⊔a", ab, ba)
	if !bytes.Equal(crdt.AppendRecord(nil, ab), crdt.AppendRecord(nil, ba)) {
		t.Fatalf("a⊔b and b⊔a are equal but encode differently:\n %s\n %s", ab, ba)
	}
	requireEqual(t, "associative: (a⊔b)⊔x vs a⊔(b⊔x)", crdt.Join(c, ab, x), crdt.Join(c, a, crdt.Join(c, b, x)))
	requireEqual(t, "idempotent: a⊔a vs a", crdt.Join(c, a, a), a)
	requireEqual(t, "identity: a⊔⊥ vs a", crdt.Join(c, a, nil), a)
	requireEqual(t, "inflation: a⊔(a⊔b) vs a⊔b", crdt.Join(c, a, ab), ab)
	requireEqual(t, "inflation: b⊔(a⊔b) vs a⊔b", crdt.Join(c, b, ab), ab)
	if _, changed := crdt.Merge(c, ab, a); changed {
		t.Fatalf("merging a into a⊔b changed it")
	}
	for _, s := range []*crdt.Record{a, ab} {
		got, err := crdt.DecodeRecord(crdt.AppendRecord(nil, s), crdt.DefaultLimits())
		if err != nil {
			t.Fatalf("decode %s: %v", s, err)
		}
		requireEqual(t, "round trip", got, s)
	}
}

func TestJoinLaws(t *testing.T) {
	for _, cc := range collectionCases() {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			rapid.Check(t, func(t *rapid.T) {
				w := newWorld(t, cc.coll, 1)
				w.run(t, rapid.IntRange(5, 60).Draw(t, "steps"))
				k := w.keys[0]
				for range 8 {
					checkLaws(t, cc.coll, w.drawState(t, k, "a"), w.drawState(t, k, "b"), w.drawState(t, k, "c"))
				}
			})
		})
	}
}

// TestConvergence checks what the laws promise: replicas that received the
// same deltas, in any order and with duplicates, are equal; and joining every
// replica's state gives the join of every delta.
func TestConvergence(t *testing.T) {
	for _, cc := range collectionCases() {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			rapid.Check(t, func(t *rapid.T) {
				w := newWorld(t, cc.coll, 1)
				w.run(t, rapid.IntRange(5, 80).Draw(t, "steps"))
				k := w.keys[0]
				ds := w.deltas[k]
				var all *crdt.Record
				for _, d := range ds {
					all = crdt.Join(cc.coll, all, d)
				}
				perm := rapid.Permutation(ds).Draw(t, "order")
				var other *crdt.Record
				for _, d := range perm {
					other = crdt.Join(cc.coll, other, d)
					if rapid.IntRange(0, 3).Draw(t, "dup") == 0 {
						other = crdt.Join(cc.coll, other, d)
					}
				}
				requireEqual(t, "deltas in another order", other, all)
				var states *crdt.Record
				for _, r := range w.reps {
					states = crdt.Join(cc.coll, states, r.state[k])
				}
				requireEqual(t, "join of the replicas' states", states, all)
			})
		})
	}
}

func drawDelta(t *rapid.T, w *world, label string) *crdt.Delta {
	d := &crdt.Delta{}
	for range rapid.IntRange(0, 5).Draw(t, label+" size") {
		k := w.keys[rapid.IntRange(0, len(w.keys)-1).Draw(t, label+" key")]
		coll := w.coll.Name
		if rapid.IntRange(0, 4).Draw(t, label+" other collection") == 0 {
			coll = "other" // unlisted: all LWW
		}
		d.Add(coll, k, w.drawState(t, k, label))
	}
	return d
}

func requireEqualDeltas(t *rapid.T, what string, got, want *crdt.Delta) {
	t.Helper()
	eq := got.Len() == want.Len()
	for i := 0; eq && i < got.Len(); i++ {
		g, w := got.Fragments[i], want.Fragments[i]
		eq = g.Collection == w.Collection && g.Key == w.Key && crdt.EqualRecords(g.Record, w.Record)
	}
	if !eq {
		t.Fatalf("%s:\n got\n%s\n want\n%s", what, got, want)
	}
}

// applyDelta merges a delta into a replica's records as a store would.
func applyDelta(t *rapid.T, s *crdt.Schema, states map[crdt.ID]*crdt.Record, d *crdt.Delta) {
	for _, f := range d.Fragments {
		c, err := s.Collection(f.Collection)
		if err != nil {
			t.Fatal(err)
		}
		id := crdt.MakeID(f.Collection, f.Key)
		states[id] = crdt.Join(c, states[id], f.Record)
	}
}

func TestJoinDeltasLaws(t *testing.T) {
	for _, cc := range collectionCases() {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			s, err := crdt.NewSchema(false, cc.coll)
			if err != nil {
				t.Fatal(err)
			}
			rapid.Check(t, func(t *rapid.T) {
				w := newWorld(t, cc.coll, 3)
				w.run(t, rapid.IntRange(10, 80).Draw(t, "steps"))
				norm := func(d *crdt.Delta) *crdt.Delta {
					n, err := crdt.JoinDeltas(s, d, nil)
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				join := func(a, b *crdt.Delta) *crdt.Delta {
					n, err := crdt.JoinDeltas(s, a, b)
					if err != nil {
						t.Fatal(err)
					}
					return n
				}
				ra, rb, rx := drawDelta(t, w, "a"), drawDelta(t, w, "b"), drawDelta(t, w, "c")
				a, b, x := norm(ra), norm(rb), norm(rx)
				for i := 1; i < a.Len(); i++ {
					p, q := a.Fragments[i-1], a.Fragments[i]
					if crdt.MakeID(p.Collection, p.Key) >= crdt.MakeID(q.Collection, q.Key) {
						t.Fatalf("JoinDeltas result not sorted and unique:\n%s", a)
					}
				}
				ab := join(a, b)
				requireEqualDeltas(t, "commutative", ab, join(b, a))
				requireEqualDeltas(t, "associative", join(ab, x), join(a, join(b, x)))
				requireEqualDeltas(t, "idempotent", join(a, a), a)
				requireEqualDeltas(t, "inflation", join(a, ab), ab)
				requireEqualDeltas(t, "normalizing twice", norm(a), a)
				requireEqualDeltas(t, "raw inputs", join(ra, rb), ab)

				// Merging a joined delta equals merging its parts, in any
				// order.
				one, two := map[crdt.ID]*crdt.Record{}, map[crdt.ID]*crdt.Record{}
				applyDelta(t, s, one, ab)
				applyDelta(t, s, two, rb)
				applyDelta(t, s, two, ra)
				for id := range one {
					if !crdt.EqualRecords(one[id], two[id]) {
						t.Fatalf("%s: merged joined delta %s, merged parts %s", id, one[id], two[id])
					}
				}
				for id, r := range two {
					if _, ok := one[id]; !ok && !r.IsEmpty() {
						t.Fatalf("%s: only the parts produced %s", id, r)
					}
				}

				for _, d := range []*crdt.Delta{ra, ab} {
					got, err := crdt.DecodeDelta(crdt.EncodeDelta(d), crdt.DefaultLimits())
					if err != nil {
						t.Fatalf("decode: %v", err)
					}
					requireEqualDeltas(t, "round trip", norm(got), norm(d))
				}
			})
		})
	}
}

func setValue(t *rapid.T, v crdt.Value) crdt.Value {
	if v.IsNull() {
		return v
	}
	s, err := crdt.SetOf(v.AsList()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.AsList()) == 0 {
		return crdt.Null()
	}
	return s
}

// checkOp checks an operation's delta against what the operation means.
func checkOp(t *rapid.T, w *world, r *replica, k crdt.Key, before *crdt.Record, o op, d *crdt.Record) {
	c := w.coll
	after := crdt.Join(c, before, d)
	requireEqual(t, "d⊔s vs s⊔d", crdt.Join(c, d, before), after)
	if _, changed := crdt.Merge(c, before, d); changed != (d != nil) {
		t.Fatalf("%s: Merge reports changed=%v for delta %s", o, changed, d)
	}
	if o.kind == "diff" && o.row == nil {
		o.kind = "delete" // Diff of a deleted row is Delete
	}
	// The writer saw before: its operation overwrites nothing it had not
	// seen, so merging it into before is no conflict.
	if d != nil {
		if cs := crdt.Conflicts(c, before, d, after); len(cs) != 0 {
			t.Fatalf("%s: a causal overwrite is reported as a conflict: %+v\n before %s\n delta  %s", o, cs, before, d)
		}
	}
	if d != nil {
		if o.kind == "delete" {
			if d.Deleted != o.origin.Stamp || d.MaxStamp() != o.origin.Stamp {
				t.Fatalf("delete delta %s, want only stamp %s", d, o.origin.Stamp)
			}
		} else if d.Written != o.origin.Stamp || d.MaxStamp() != o.origin.Stamp || !d.Deleted.IsZero() {
			t.Fatalf("%s: delta %s has stamps other than the origin's", o, d)
		}
	}
	next := func() crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: r.id}, Source: r.name}
	}
	// Echo-freedom: observing the merged view, or the same row again,
	// yields nothing.
	if after.Exists() {
		if e, err := crdt.Diff(c, after, after.View(c), next()); err != nil || e != nil {
			t.Fatalf("%s: diff of the merged view %v yields %s, %v", o, after.View(c), e, err)
		}
	} else if e, err := crdt.Diff(c, after, nil, next()); err != nil || e != nil {
		t.Fatalf("%s: deleting a deleted record yields %s, %v", o, e, err)
	}
	old := before.View(c) // nil when before does not exist
	now := after.View(c)
	switch o.kind {
	case "delete":
		if (d == nil) == before.Exists() {
			t.Fatalf("delete of %s gave delta %s", before, d)
		}
		if after.Exists() {
			t.Fatalf("record exists after delete: %s", after)
		}
		return
	case "diff":
		if o.row == nil {
			if after.Exists() {
				t.Fatalf("record exists after diff with a nil row: %s", after)
			}
			return
		}
		if e, err := crdt.Diff(c, after, o.row, next()); err != nil || e != nil {
			t.Fatalf("%s: observing the same row again yields %s, %v", o, e, err)
		}
		if !after.Exists() {
			t.Fatalf("%s: record does not exist after an observed row: %s", o, after)
		}
		for f, v := range o.row {
			if slices.Contains(c.Key, f) {
				continue
			}
			p := c.Policy(f)
			var want crdt.Value
			switch p.Kind {
			case crdt.LWW:
				want = v
				if v.Kind() == crdt.KindList && len(v.AsList()) == 0 {
					want = crdt.Null()
				}
			case crdt.ORSet:
				want = setValue(t, v)
			case crdt.Counter:
				// The field takes the observed value, compared as a
				// number: its digits after the point are the most any
				// part has. Null counts as zero.
				if got := now[f]; !sameNumber(got, v) {
					t.Fatalf("%s: counter %s is %v after the diff, want %v\n before %s\n delta  %s\n after  %s",
						o, f, got, v, before, d, after)
				}
				continue
			default:
				nw := crdt.Write{Value: v, Stamp: o.origin.Stamp}
				if p.Kind == crdt.Prefer {
					nw.Source = o.origin.Source
				}
				want = v
				if pw, ok := visibleWrite(before, f); ok && !crdttest.Beats(p, nw, pw) {
					want = pw.Value
				}
			}
			if got := now[f]; !crdt.Equal(got, want) {
				t.Fatalf("%s: field %s (%s) is %v after the diff, want %v\n before %s\n delta  %s\n after  %s",
					o, f, p, got, want, before, d, after)
			}
		}
		for f := range joinKeys(now, old) {
			if _, ok := o.row[f]; !ok && !crdt.Equal(now[f], old[f]) {
				t.Fatalf("%s: field %s not in the row changed from %v to %v", o, f, old[f], now[f])
			}
		}
		if d != nil {
			for _, f := range d.Fields {
				if before.Exists() && crdt.Equal(old[f.Name], now[f.Name]) {
					t.Fatalf("%s: delta field %s changes nothing visible (%v)\n delta %s", o, f.Name, now[f.Name], d)
				}
			}
		}
	case "setops":
		want := map[string]crdt.Value{}
		for _, v := range old[o.field].AsList() {
			want[string(v.AppendCanonical(nil))] = v
		}
		removed := false
		for _, v := range o.remove {
			if slices.ContainsFunc(o.add, func(a crdt.Value) bool { return crdt.Equal(a, v) }) {
				continue
			}
			key := string(v.AppendCanonical(nil))
			if _, ok := want[key]; ok {
				removed = true
			}
			delete(want, key)
		}
		for _, v := range o.add {
			want[string(v.AppendCanonical(nil))] = v
		}
		if (d == nil) != (len(o.add) == 0 && !removed) {
			t.Fatalf("%s on %s gave delta %s", o, before, d)
		}
		var elems []crdt.Value
		for _, v := range want {
			elems = append(elems, v)
		}
		wantV := setValue(t, must(crdt.List(elems...)))
		if d == nil {
			return
		}
		if got := now[o.field]; !crdt.Equal(got, wantV) {
			t.Fatalf("%s: set is %v, want %v\n before %s\n delta  %s\n after  %s", o, got, wantV, before, d, after)
		}
		for f := range joinKeys(now, old) {
			if f != o.field && !crdt.Equal(now[f], old[f]) {
				t.Fatalf("%s: field %s changed from %v to %v", o, f, old[f], now[f])
			}
		}
	}
}

// visibleWrite returns the visible write of a register field, also when its
// value is null (which View and Get leave out).
func visibleWrite(r *crdt.Record, f string) (crdt.Write, bool) {
	if !r.Exists() {
		return crdt.Write{}, false
	}
	for _, fl := range r.Fields {
		if fl.Name == f && len(fl.Reg) > 0 {
			return fl.Reg[len(fl.Reg)-1], true
		}
	}
	return crdt.Write{}, false
}

// joinKeys returns the field names of two rows.
func joinKeys(a, b crdt.Row) map[string]bool {
	out := map[string]bool{}
	for f := range a {
		out[f] = true
	}
	for f := range b {
		out[f] = true
	}
	return out
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestOperationsAreJoins checks every operation of random histories: the
// state after it is the join of the state before and its delta, and that
// state shows what the operation means: Diff reproduces the observed row for
// LWW and OR-set fields and the policy's resolution for the others, SetOps
// adds and removes, Delete deletes, and observing the result yields nothing.
func TestOperationsAreJoins(t *testing.T) {
	for _, cc := range collectionCases() {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			rapid.Check(t, func(t *rapid.T) {
				w := newWorld(t, cc.coll, 1)
				w.check = checkOp
				w.run(t, rapid.IntRange(10, 80).Draw(t, "steps"))
			})
		})
	}
}

// sameNumber reports whether two counter values are the same number (null
// is zero).
func sameNumber(a, b crdt.Value) bool {
	ra, rb := ratOf(a), ratOf(b)
	return ra != nil && rb != nil && ra.Cmp(rb) == 0
}

func ratOf(v crdt.Value) *big.Rat {
	switch v.Kind() {
	case crdt.KindNull:
		return new(big.Rat)
	case crdt.KindInt:
		return new(big.Rat).SetInt64(v.AsInt())
	case crdt.KindString:
		r, ok := new(big.Rat).SetString(v.AsString())
		if ok {
			return r
		}
	}
	return nil
}
