package crdt_test

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// This file generates realistic concurrent histories for the property tests:
// a few replicas, each with its own Clock on a skewed (and sometimes jumping)
// physical clock, issue operations against their local states and exchange
// the resulting deltas and states in random orders, with duplicates and
// losses. Every record state and every delta seen along the way is kept in a
// pool: they are the lattice elements the laws are checked on.

// policyCases are the field policies under test. Sources of Prefer are
// replica names; r2 and r3 are unlisted and rank last.
var policyCases = []struct {
	name string
	pol  crdt.Policy
}{
	{"lww", crdt.Policy{Kind: crdt.LWW}},
	{"prefer", crdt.Policy{Kind: crdt.Prefer, Prefer: []string{"r1", "r0"}}},
	{"orset", crdt.Policy{Kind: crdt.ORSet}},
	{"max", crdt.Policy{Kind: crdt.Max}},
	{"min", crdt.Policy{Kind: crdt.Min}},
	{"counter", crdt.Policy{Kind: crdt.Counter}},
}

// singleField is a collection with one field "f" of policy p.
func singleField(p crdt.Policy) *crdt.Collection {
	return crdt.MustCollection("c", []string{"id"}, map[string]crdt.Policy{"f": p})
}

// mixed is a collection with one field of every policy and an unlisted
// (LWW) field u.
func mixed() *crdt.Collection {
	fields := map[string]crdt.Policy{}
	for _, pc := range policyCases {
		fields[pc.name] = pc.pol
	}
	return crdt.MustCollection("c", []string{"id"}, fields)
}

// collectionCases are the collections the laws are checked under: one field
// per policy, and all policies together.
func collectionCases() []struct {
	name string
	coll *crdt.Collection
} {
	var out []struct {
		name string
		coll *crdt.Collection
	}
	for _, pc := range policyCases {
		out = append(out, struct {
			name string
			coll *crdt.Collection
		}{pc.name, singleField(pc.pol)})
	}
	return append(out, struct {
		name string
		coll *crdt.Collection
	}{"mixed", mixed()})
}

const baseWall = int64(1_700_000_000_000_000_000)

type replica struct {
	name  string
	id    crdt.ReplicaID
	skew  int64 // physical clock offset from true time, ns
	clock *crdt.Clock
	state map[crdt.Key]*crdt.Record
}

type world struct {
	coll *crdt.Collection
	keys []crdt.Key
	reps []*replica
	now  int64 // true time, ns
	// pool holds, per key, every state and delta seen.
	pool map[crdt.Key][]*crdt.Record
	// deltas holds every delta an operation produced, per key.
	deltas map[crdt.Key][]*crdt.Record
	// check, when set, is called after every local operation with the
	// state before, the operation and its delta.
	check func(t *rapid.T, w *world, r *replica, k crdt.Key, before *crdt.Record, op op, d *crdt.Record)
}

// op describes a local operation for checks and failure messages.
type op struct {
	kind   string // "diff", "setops", "delete"
	row    crdt.Row
	field  string
	add    []crdt.Value
	remove []crdt.Value
	origin crdt.Origin
}

func (o op) String() string {
	switch o.kind {
	case "diff":
		return fmt.Sprintf("diff %v at %s", o.row, o.origin.Stamp)
	case "setops":
		return fmt.Sprintf("setops %s +%v -%v at %s", o.field, o.add, o.remove, o.origin.Stamp)
	}
	return fmt.Sprintf("%s at %s", o.kind, o.origin.Stamp)
}

// newWorld draws the replicas (2 to 4, with distinct random IDs so that stamp
// ties break either way) and their clock skews.
func newWorld(t *rapid.T, coll *crdt.Collection, nkeys int) *world {
	n := rapid.IntRange(2, 4).Draw(t, "replicas")
	ids := rapid.SliceOfNDistinct(rapid.Uint64Range(1, 1<<40), n, n, rapid.ID).Draw(t, "ids")
	w := &world{coll: coll, now: baseWall, pool: map[crdt.Key][]*crdt.Record{}, deltas: map[crdt.Key][]*crdt.Record{}}
	for i := range nkeys {
		w.keys = append(w.keys, crdt.IntKey(int64(i)))
	}
	for i := range n {
		r := &replica{
			name:  fmt.Sprintf("r%d", i),
			id:    crdt.ReplicaID(ids[i]),
			skew:  rapid.Int64Range(-int64(300*time.Millisecond), int64(300*time.Millisecond)).Draw(t, "skew"),
			state: map[crdt.Key]*crdt.Record{},
		}
		r.clock = crdt.NewClock(func() int64 { return w.now + r.skew }, 0)
		w.reps = append(w.reps, r)
	}
	return w
}

// run performs steps random steps.
func (w *world) run(t *rapid.T, steps int) {
	for range steps {
		w.step(t)
	}
}

func (w *world) step(t *rapid.T) {
	w.now += rapid.Int64Range(0, int64(20*time.Millisecond)).Draw(t, "dt")
	r := w.reps[rapid.IntRange(0, len(w.reps)-1).Draw(t, "replica")]
	k := w.keys[rapid.IntRange(0, len(w.keys)-1).Draw(t, "key")]
	switch a := rapid.IntRange(0, 19).Draw(t, "action"); {
	case a < 7:
		w.local(t, r, k, op{kind: "diff", row: w.genRow(t, r, k)})
	case a < 10:
		f, ok := w.setField()
		if !ok {
			w.local(t, r, k, op{kind: "diff", row: w.genRow(t, r, k)})
			break
		}
		w.local(t, r, k, op{kind: "setops", field: f,
			add:    rapid.SliceOfN(genElem(), 0, 3).Draw(t, "add"),
			remove: rapid.SliceOfN(genElem(), 0, 3).Draw(t, "remove")})
	case a < 12:
		w.local(t, r, k, op{kind: "delete"})
	case a < 17:
		if ds := w.deltas[k]; len(ds) > 0 {
			w.receive(t, r, k, ds[rapid.IntRange(0, len(ds)-1).Draw(t, "delta")])
		}
	case a < 19:
		from := w.reps[rapid.IntRange(0, len(w.reps)-1).Draw(t, "from")]
		w.receive(t, r, k, from.state[k])
	default:
		// An NTP step: the physical clock jumps, possibly backwards.
		r.skew = rapid.Int64Range(-int64(300*time.Millisecond), int64(300*time.Millisecond)).Draw(t, "jump")
	}
}

// receive merges a remote state or delta, forwarding the clock first as the
// sidecar must; a timestamp too far ahead is refused, as it would be.
func (w *world) receive(t *rapid.T, r *replica, k crdt.Key, d *crdt.Record) {
	if d.IsEmpty() {
		return
	}
	if _, err := r.clock.Update(d.MaxStamp().TS); err != nil {
		if !crdt.IsClockOffsetError(err) {
			t.Fatalf("Update: %v", err)
		}
		return
	}
	next := crdt.Join(w.coll, r.state[k], d)
	if !crdt.EqualRecords(next, r.state[k]) {
		r.state[k] = next
		w.pool[k] = append(w.pool[k], next)
	}
}

func (w *world) setField() (string, bool) {
	for _, name := range slices.Sorted(maps.Keys(w.coll.Fields)) {
		if w.coll.Fields[name].Kind == crdt.ORSet {
			return name, true
		}
	}
	return "", false
}

// local performs an operation at r, joins its delta into r's state and
// records both.
func (w *world) local(t *rapid.T, r *replica, k crdt.Key, o op) {
	o.origin = crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: r.id}, Source: r.name}
	before := r.state[k]
	var d *crdt.Record
	var err error
	switch o.kind {
	case "diff":
		d, err = crdt.Diff(w.coll, before, o.row, o.origin)
	case "setops":
		d, err = crdt.SetOps(w.coll, before, o.field, o.add, o.remove, o.origin)
	case "delete":
		d, err = crdt.Delete(before, o.origin)
	}
	if err != nil {
		t.Fatalf("%s at %s on %s: %v", o, r.name, before, err)
	}
	if w.check != nil {
		w.check(t, w, r, k, before, o, d)
	}
	if d == nil {
		return
	}
	w.deltas[k] = append(w.deltas[k], d)
	w.pool[k] = append(w.pool[k], d)
	r.state[k] = crdt.Join(w.coll, before, d)
	w.pool[k] = append(w.pool[k], r.state[k])
}

// genRow draws an observed row: usually the replica's current view with some
// fields changed, sometimes a fresh row, sometimes a deletion (nil).
func (w *world) genRow(t *rapid.T, r *replica, k crdt.Key) crdt.Row {
	switch rapid.IntRange(0, 9).Draw(t, "rowkind") {
	case 0:
		return nil
	case 1, 2:
		return crdt.Row{} // fresh, possibly empty row: an insert
	}
	row := crdt.Row{}
	for f, v := range r.state[k].View(w.coll) {
		row[f] = v
	}
	names := append(slices.Sorted(maps.Keys(w.coll.Fields)), "u")
	for _, f := range names {
		if !rapid.Bool().Draw(t, "change "+f) {
			continue
		}
		switch w.coll.Policy(f).Kind {
		case crdt.ORSet:
			row[f] = genSetValue().Draw(t, f)
		case crdt.Counter:
			row[f] = genNumber().Draw(t, f)
		default:
			row[f] = genScalar().Draw(t, f)
		}
	}
	return row
}

// genScalar draws register values from a small domain so that writes
// collide: mostly small ints, some strings and floats, some nulls.
func genScalar() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0:
			return crdt.Null()
		case 1:
			return crdt.String(rapid.SampledFrom([]string{"a", "b"}).Draw(t, "s"))
		case 2:
			return crdt.Float(float64(rapid.IntRange(-2, 2).Draw(t, "f")) / 2)
		}
		return crdt.Int(int64(rapid.IntRange(0, 4).Draw(t, "i")))
	})
}

// genNumber draws counter values: small ints, some exact decimals, some
// nulls.
func genNumber() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0:
			return crdt.Null()
		case 1:
			return crdt.String(rapid.SampledFrom([]string{"0.5", "-1.25", "2.50", "0.00"}).Draw(t, "d"))
		}
		return crdt.Int(int64(rapid.IntRange(-4, 4).Draw(t, "i")))
	})
}

func genElem() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		if rapid.IntRange(0, 4).Draw(t, "kind") == 0 {
			return crdt.String("x")
		}
		return crdt.Int(int64(rapid.IntRange(0, 3).Draw(t, "e")))
	})
}

func genSetValue() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		if rapid.IntRange(0, 5).Draw(t, "null") == 0 {
			return crdt.Null()
		}
		v, err := crdt.List(rapid.SliceOfN(genElem(), 0, 4).Draw(t, "elems")...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	})
}

// drawState draws an element of the pool for k (or the empty record).
func (w *world) drawState(t *rapid.T, k crdt.Key, label string) *crdt.Record {
	p := w.pool[k]
	i := rapid.IntRange(-1, len(p)-1).Draw(t, label)
	if i < 0 {
		return nil
	}
	return p[i]
}
