package crdt_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

const benchFields = 10

// benchReplica makes stamps for one replica with a fake physical clock.
type benchReplica struct {
	id     crdt.ReplicaID
	source string
	clock  *crdt.Clock
}

func newBenchReplica(id crdt.ReplicaID, source string, now *int64) *benchReplica {
	return &benchReplica{id: id, source: source, clock: crdt.NewClock(func() int64 { return *now }, -1)}
}

func (r *benchReplica) origin() crdt.Origin {
	return crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: r.id}, Source: r.source}
}

func benchValue(p crdt.PolicyKind, i, gen int) crdt.Value {
	if p == crdt.ORSet {
		var elems []crdt.Value
		for e := range 5 {
			elems = append(elems, crdt.String(fmt.Sprintf("tag-%d-%d", e+5*gen, i)))
		}
		return must(crdt.List(elems...))
	}
	v := int64(100*gen + i)
	if p == crdt.Min {
		v = -v
	}
	return crdt.Int(v)
}

// benchStates returns a collection of benchFields fields of one policy, a
// replica's state and a concurrent state of another replica: both start
// from a common record, then each rewrites half of the fields (OR-sets: adds
// five elements and removes five), with a delete-free history.
func benchStates(tb testing.TB, pol crdt.Policy) (*crdt.Collection, *crdt.Record, *crdt.Record) {
	return benchStatesOverlap(tb, pol, false)
}

// benchStatesOverlap is benchStates where, with overlap, both replicas
// rewrite every field concurrently: every field must really be merged.
func benchStatesOverlap(tb testing.TB, pol crdt.Policy, overlap bool) (*crdt.Collection, *crdt.Record, *crdt.Record) {
	fields := map[string]crdt.Policy{}
	for i := range benchFields {
		fields[fmt.Sprintf("f%02d", i)] = pol
	}
	c := crdt.MustCollection("bench", []string{"id"}, fields)
	now := int64(1_700_000_000_000_000_000)
	a := newBenchReplica(1, "r0", &now)
	b := newBenchReplica(2, "r1", &now)
	row := func(gen int, from, to int) crdt.Row {
		r := crdt.Row{}
		for i := from; i < to; i++ {
			r[fmt.Sprintf("f%02d", i)] = benchValue(pol.Kind, i, gen)
		}
		return r
	}
	diff := func(r *benchReplica, s *crdt.Record, rw crdt.Row) *crdt.Record {
		d, err := crdt.Diff(c, s, rw, r.origin())
		if err != nil {
			tb.Fatal(err)
		}
		return crdt.Join(c, s, d)
	}
	base := diff(a, nil, row(0, 0, benchFields))
	now += 1e6
	if overlap {
		// a rewrites the even fields, b all of them, then a the odd ones:
		// the newest writes alternate between the replicas.
		even, odd := crdt.Row{}, crdt.Row{}
		for f, v := range row(1, 0, benchFields) {
			if f[len(f)-1]%2 == 0 {
				even[f] = v
			} else {
				odd[f] = v
			}
		}
		sa := diff(a, base, even)
		now += 1e6
		sb := diff(b, base, row(2, 0, benchFields))
		now += 1e6
		return c, diff(a, sa, odd), sb
	}
	sa := diff(a, base, row(1, 0, benchFields/2))
	sb := diff(b, base, row(2, benchFields/2, benchFields))
	return c, sa, sb
}

// BenchmarkJoin joins two concurrent states of a record of benchFields
// fields of one policy in which both replicas rewrote every field, as a
// replica merging a peer's state does: the worst case, where every field is
// really merged.
func BenchmarkJoin(b *testing.B) {
	for _, pc := range policyCases {
		b.Run(pc.name, func(b *testing.B) {
			c, x, y := benchStatesOverlap(b, pc.pol, true)
			if crdt.EqualRecords(crdt.Join(c, x, y), x) {
				b.Fatal("the states do not differ")
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = crdt.Join(c, x, y)
			}
			b.ReportMetric(float64(benchFields)*float64(b.N)/b.Elapsed().Seconds(), "fields/s")
		})
	}
}

// BenchmarkJoinDisjoint joins two concurrent states of a record of every
// policy in which the replicas rewrote different fields: each field of the
// result is one of the inputs'.
func BenchmarkJoinDisjoint(b *testing.B) {
	c, x, y := benchStates(b, crdt.Policy{Kind: crdt.ORSet})
	b.ReportAllocs()
	for b.Loop() {
		_ = crdt.Join(c, x, y)
	}
	b.ReportMetric(float64(benchFields)*float64(b.N)/b.Elapsed().Seconds(), "fields/s")
}

// BenchmarkJoinNoop joins a state with a delta it already holds, the common
// case of a duplicate delivery; its ns/op is the floor for BenchmarkJoin.
func BenchmarkJoinNoop(b *testing.B) {
	c, x, y := benchStates(b, crdt.Policy{Kind: crdt.LWW})
	xy := crdt.Join(c, x, y)
	b.ReportAllocs()
	for b.Loop() {
		_ = crdt.Join(c, xy, y)
	}
	b.ReportMetric(float64(benchFields)*float64(b.N)/b.Elapsed().Seconds(), "fields/s")
}

// BenchmarkDiff diffs an observed row with two changed fields (one LWW, one
// OR-set) against a merged record of every policy, as capture does.
func BenchmarkDiff(b *testing.B) {
	c := mixed()
	now := int64(1_700_000_000_000_000_000)
	r := newBenchReplica(1, "r1", &now)
	row := crdt.Row{
		"lww": crdt.String("active"), "prefer": crdt.String("+1 555"), "max": crdt.Int(10), "min": crdt.Int(3),
		"orset": must(crdt.List(crdt.String("a"), crdt.String("b"), crdt.String("c"))), "u": crdt.Float(1.5),
	}
	d, err := crdt.Diff(c, nil, row, r.origin())
	if err != nil {
		b.Fatal(err)
	}
	merged := crdt.Join(c, nil, d)
	observed := crdt.Row{}
	for f, v := range merged.View(c) {
		observed[f] = v
	}
	observed["lww"] = crdt.String("suspended")
	observed["orset"] = must(crdt.List(crdt.String("a"), crdt.String("c"), crdt.String("d")))
	o := r.origin()
	if d, err := crdt.Diff(c, merged, observed, o); err != nil || len(d.Fields) != 2 {
		b.Fatalf("diff: %s, %v", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = crdt.Diff(c, merged, observed, o)
	}
	b.ReportMetric(float64(len(observed))*float64(b.N)/b.Elapsed().Seconds(), "fields/s")
}

// benchDelta is a delta of 100 records of benchFields fields each, every
// policy present.
func benchDelta(b *testing.B) *crdt.Delta {
	d := &crdt.Delta{}
	for i := range 100 {
		pc := policyCases[i%len(policyCases)]
		c, x, y := benchStates(b, pc.pol)
		d.Add(pc.name, crdt.MustKey(crdt.String("tenant"), crdt.Int(int64(i))), crdt.Join(c, x, y))
	}
	return d
}

func BenchmarkEncodeDelta(b *testing.B) {
	d := benchDelta(b)
	n := len(crdt.EncodeDelta(d))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		_ = crdt.EncodeDelta(d)
	}
	b.ReportMetric(float64(n)/float64(d.Len()), "bytes/record")
}

func BenchmarkDecodeDelta(b *testing.B) {
	d := benchDelta(b)
	msg := crdt.EncodeDelta(d)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := crdt.DecodeDelta(msg, crdt.DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(msg))/float64(d.Len()), "bytes/record")
}

// BenchmarkAppendRecord encodes one stored state of every policy, as the
// store does on every merge (and hashes, for anti-entropy).
func BenchmarkAppendRecord(b *testing.B) {
	c, x, y := benchStates(b, crdt.Policy{Kind: crdt.ORSet})
	r := crdt.Join(c, x, y)
	id := crdt.MakeID("bench", crdt.IntKey(1))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = crdt.AppendRecord(buf[:0], r)
		_ = crdt.HashRecord(id, buf)
	}
}

// TestJoinReturnsInput: joining what a state already holds allocates nothing
// and returns the state itself (records are immutable, so sharing is safe).
// It runs on the benchmarks' states, overlapping ones included, so that
// make test also builds what only the benchmarks would.
func TestJoinReturnsInput(t *testing.T) {
	for _, pc := range policyCases {
		for _, overlap := range []bool{false, true} {
			name := fmt.Sprintf("%s (overlap %v)", pc.name, overlap)
			c, x, y := benchStatesOverlap(t, pc.pol, overlap)
			xy := crdt.Join(c, x, y)
			if overlap && crdt.EqualRecords(xy, x) {
				t.Errorf("%s: the states do not differ", name)
			}
			for _, in := range []*crdt.Record{x, y, xy} {
				if got := crdt.Join(c, xy, in); got != xy {
					t.Errorf("%s: Join(xy, part) is a new record", name)
				}
				if got := crdt.Join(c, in, xy); got != xy {
					t.Errorf("%s: Join(part, xy) is a new record", name)
				}
			}
			if n := testing.AllocsPerRun(100, func() { crdt.Join(c, xy, y) }); n != 0 {
				t.Errorf("%s: joining a merged delta allocates %v times", name, n)
			}
		}
	}
}

// BenchmarkHashRecord hashes a record's encoding, as every merge does.
func BenchmarkHashRecord(b *testing.B) {
	id := crdt.MakeID("customers", crdt.IntKey(42))
	enc := make([]byte, 200)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		_ = crdt.HashRecord(id, enc)
	}
}

// BenchmarkCounterVsLWW measures, in the same run, the cost of joining two
// concurrent states of a record of benchFields counter fields and of
// benchFields lww fields in which both replicas rewrote every field
// (BenchmarkJoin's worst case), and of Merge (the join and the change
// test a store makes). Each iteration runs 100 of each, interleaved, so
// that both see the same machine: lww-ns and counter-ns are per operation,
// ratio is counter over lww.
func BenchmarkCounterVsLWW(b *testing.B) {
	lc, lx, ly := benchStatesOverlap(b, crdt.Policy{Kind: crdt.LWW}, true)
	cc, cx, cy := benchStatesOverlap(b, crdt.Policy{Kind: crdt.Counter}, true)
	for _, op := range []struct {
		name string
		run  func(c *crdt.Collection, x, y *crdt.Record)
	}{
		{"join", func(c *crdt.Collection, x, y *crdt.Record) { _ = crdt.Join(c, x, y) }},
		{"merge", func(c *crdt.Collection, x, y *crdt.Record) { _, _ = crdt.Merge(c, x, y) }},
	} {
		b.Run(op.name, func(b *testing.B) {
			const inner = 100
			var lww, ctr time.Duration
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				for range inner {
					op.run(lc, lx, ly)
				}
				t1 := time.Now()
				for range inner {
					op.run(cc, cx, cy)
				}
				lww += t1.Sub(t0)
				ctr += time.Since(t1)
			}
			n := float64(b.N * inner)
			b.ReportMetric(float64(lww.Nanoseconds())/n, "lww-ns")
			b.ReportMetric(float64(ctr.Nanoseconds())/n, "counter-ns")
			b.ReportMetric(float64(ctr)/float64(lww), "ratio")
		})
	}
}

// BenchmarkConflictsDetect measures what conflict detection adds to a
// merge's join: a causal update of every field of a benchFields-field lww
// record (nothing to report) joined into the state it overwrites, with and
// without crdt.Conflicts, interleaved in the same run. ratio is the rate
// with detection over the rate without.
func BenchmarkConflictsDetect(b *testing.B) {
	c, x, _ := benchStates(b, crdt.Policy{Kind: crdt.LWW})
	now := x.MaxStamp().TS.Wall + 1e6
	r := newBenchReplica(3, "r2", &now)
	row := crdt.Row{}
	for i := range benchFields {
		row[fmt.Sprintf("f%02d", i)] = crdt.Int(int64(1000 + i))
	}
	d, err := crdt.Diff(c, x, row, r.origin())
	if err != nil || len(d.Fields) != benchFields {
		b.Fatalf("diff: %s, %v", d, err)
	}
	if cs := crdt.Conflicts(c, x, d, crdt.Join(c, x, d)); len(cs) != 0 {
		b.Fatalf("a causal update conflicts: %+v", cs)
	}
	const inner = 100
	var plain, detect time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		for range inner {
			_, _ = crdt.Merge(c, x, d)
		}
		t1 := time.Now()
		for range inner {
			next, _ := crdt.Merge(c, x, d)
			_ = crdt.Conflicts(c, x, d, next)
		}
		plain += t1.Sub(t0)
		detect += time.Since(t1)
	}
	n := float64(b.N * inner)
	b.ReportMetric(float64(detect-plain)/n, "detect-ns")
	b.ReportMetric(float64(plain)/float64(detect), "ratio")
}
