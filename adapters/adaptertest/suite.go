package adaptertest

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Run runs every scenario of the conformance suite against the adapter of h,
// each as a subtest on a fresh system.
func Run(t *testing.T, h Harness) {
	scenarios := []struct {
		name string
		run  func(e *env)
	}{
		{"Tables", testTables},
		{"Snapshot", testSnapshot},
		{"CaptureTypes", testCaptureTypes},
		{"CaptureKeys", testCaptureKeys},
		{"Transactions", testTransactions},
		{"OldRows", testOldRows},
		{"ApplyNotCaptured", testApplyNotCaptured},
		{"ApplyValues", testApplyValues},
		{"ApplyPosition", testApplyPosition},
		{"Head", testHead},
		{"Cursors", testCursors},
		{"Resume", testResume},
		{"BadRows", testBadRows},
		{"ConcurrentMerge", testConcurrentMerge},
		{"Ranges", testRanges},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(newEnv(t, h)) })
	}
	// The scenarios of natural keys and local columns (local.go) run on
	// PeopleTable, for systems with Features.NaturalKeys.
	natural := []struct {
		name      string
		run       func(e *env)
		unindexed bool
	}{
		{"NaturalKeys", testNaturalKeys, false},
		{"LocalApply", testLocalApply, false},
		{"NaturalKeyIndex", testNaturalKeyIndex, true},
	}
	for _, sc := range natural {
		t.Run(sc.name, func(t *testing.T) {
			f := h.Features()
			if !f.NaturalKeys {
				t.Skip("the adapter does not take natural keys and local columns (Features.NaturalKeys)")
			}
			sc.run(newEnvWith(t, h, peopleTables(f, sc.unindexed)))
		})
	}
	t.Run("IDMap", func(t *testing.T) {
		if !h.Features().GeneratedKeys {
			t.Skip("the harness declares no generated keys")
		}
		testIDMap(newEnvWith(t, h, append(Tables(h.Features()), serialTable(h.Features()))))
	})
}

// testTables checks discovery: the suite's tables and nothing else, with
// their keys, columns, kinds and nullability.
func testTables(e *env) {
	a := e.open()
	got, err := a.Tables(e.ctx)
	if err != nil {
		e.t.Fatalf("tables: %+v", err)
	}
	want := Tables(e.f)
	if len(got) != len(want) {
		names := make([]string, len(got))
		for i, tb := range got {
			names[i] = tb.Name
		}
		e.t.Fatalf("tables %v, want %d tables (%s, %s)", names, len(want), want[0].Name, want[1].Name)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name {
			e.t.Errorf("table %d is %q, want %q (sorted by name)", i, g.Name, w.Name)
			continue
		}
		if !slices.Equal(g.Key, w.Key) {
			e.t.Errorf("table %s: key %v, want %v", w.Name, g.Key, w.Key)
		}
		if len(g.Columns) != len(w.Columns) {
			e.t.Errorf("table %s: %d columns, want %d", w.Name, len(g.Columns), len(w.Columns))
		}
		for _, wc := range w.Columns {
			gc := g.Column(wc.Name)
			if gc == nil {
				e.t.Errorf("table %s: column %s missing", w.Name, wc.Name)
				continue
			}
			if gc.Kind != wc.Kind {
				e.t.Errorf("table %s column %s (%s): kind %s, want %s", w.Name, wc.Name, gc.Type, gc.Kind, wc.Kind)
			}
			if wc.Kind == crdt.KindList && gc.Elem != wc.Elem {
				e.t.Errorf("table %s column %s (%s): element kind %s, want %s", w.Name, wc.Name, gc.Type, gc.Elem, wc.Elem)
			}
			if gc.Type == "" {
				e.t.Errorf("table %s column %s: empty system type name", w.Name, wc.Name)
			}
			if wantNull := !w.IsKey(wc.Name); gc.Nullable != wantNull {
				e.t.Errorf("table %s column %s: nullable %v, want %v", w.Name, wc.Name, gc.Nullable, wantNull)
			}
			// Other columns have no defaults; a key column may be generated
			// where the system makes every such key so (SQLite's INTEGER
			// PRIMARY KEY).
			if gc.Generated && !w.IsKey(wc.Name) {
				e.t.Errorf("table %s column %s: generated, but it has no default", w.Name, wc.Name)
			}
		}
		kinds := g.KeyKinds()
		for j, k := range w.Key {
			if kinds[j] != w.Column(k).Kind {
				e.t.Errorf("table %s: key kind %d is %s, want %s", w.Name, j, kinds[j], w.Column(k).Kind)
			}
		}
	}
}

// typesRow returns a row of the types table with every column set from the
// edge values, shifted by i so that rows differ.
func (e *env) typesRow(id int64, i int) crdt.Row {
	row := crdt.Row{"id": e.tid(id)}
	for _, c := range e.tables[TypesTable].Columns {
		if c.Name == "id" {
			continue
		}
		vs := edgeValues(c.Kind, e.f)
		row[c.Name] = vs[i%len(vs)]
	}
	return row
}

// pairRow returns a row of PairsTable.
func (e *env) pairRow(tenant string, n int64, note string) crdt.Row {
	row := e.pairKey(tenant, n)
	row["note"] = crdt.String(note)
	return row
}

// pairKey returns the columns of PairsTable that name the row (tenant, n):
// with Features.RecordIDs, its ID as well.
func (e *env) pairKey(tenant string, n int64) crdt.Row {
	row := crdt.Row{"tenant": crdt.String(tenant), "n": crdt.Int(n)}
	if e.f.RecordIDs {
		row["id"] = crdt.String(RecordID(row["tenant"], row["n"]))
	}
	return row
}

// tid returns the value of TypesTable's key column for the row a database
// keys by id: id itself, or with Features.RecordIDs the record's ID.
func (e *env) tid(id int64) crdt.Value {
	if e.f.RecordIDs {
		return crdt.String(RecordID(crdt.Int(id)))
	}
	return crdt.Int(id)
}

// tkey returns the key of TypesTable's row id.
func (e *env) tkey(id int64) crdt.Key {
	k, err := crdt.MakeKey(e.tid(id))
	if err != nil {
		panic(err)
	}
	return k
}

func (e *env) idRow(id int64) crdt.Row { return crdt.Row{"id": e.tid(id)} }

// testSnapshot checks that Snapshot returns every row, that capture from its
// cursor misses nothing written after it, also while the snapshot is being
// read, and delivers nothing written before it.
func testSnapshot(e *env) {
	// Enough rows to need several snapshot batches in any adapter.
	bulk := int64(1500)
	if e.f.NoTransactions {
		// An API takes each insert with a request of its own: fewer
		// rows, still more than one batch of the http adapter's (500).
		bulk = 600
	}
	var ops []Op
	for i := range bulk {
		ops = append(ops, Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(i+1, int(i))})
	}
	e.exec(ops...)
	e.exec(
		Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 1, "one")},
		Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 2, "two")},
		Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("globex", 1, "uno")},
	)
	e.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(7), "s_text": crdt.String("updated before")}})
	e.exec(Op{Kind: Delete, Table: TypesTable, Row: e.idRow(8)})
	before := e.systemState()

	a := e.open()
	snap := state{}
	var duringOnce sync.Once
	var duringErr error
	batches := 0
	cursor := e.snapshot(a, func(b adapters.Batch) error {
		batches++
		for _, c := range b.Changes {
			if c.Row == nil {
				e.t.Errorf("snapshot delivered a delete: %s", describe(c))
				continue
			}
			e.checkShape(c)
			snap.put(c)
		}
		// Users keep writing while the snapshot is read.
		duringOnce.Do(func() {
			duringErr = e.sys.Exec(e.ctx,
				Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(bulk), "s_text": crdt.String("written during the snapshot")}},
				Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("during", 1, "inserted during the snapshot")},
				Op{Kind: Delete, Table: TypesTable, Row: e.idRow(1)},
			)
		})
		return nil
	})
	if duringErr != nil {
		e.t.Fatalf("user write during the snapshot: %+v", duringErr)
	}
	e.t.Logf("snapshot: %d rows in %d batches", len(snap[TypesTable])+len(snap[PairsTable]), batches)

	// The snapshot is consistent: it is the state before the concurrent
	// write or the state after it, nothing in between.
	after := e.systemState()
	sawDuring := e.checkSnapshotConsistent(snap, before, after)

	s := e.capture(a, cursor)
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 3, "after")})
	e.exec(Op{Kind: Update, Table: PairsTable, Row: e.pairRow("acme", 1, "changed after")})
	e.exec(Op{Kind: Delete, Table: PairsTable, Row: e.pairKey("acme", 2)})
	got, _ := s.sync()

	// Snapshot plus capture is the system.
	folded := state{}
	for name, rows := range snap {
		for k, r := range rows {
			folded.put(adapters.Change{Collection: name, Key: k, Row: r})
		}
	}
	for _, c := range got {
		folded.put(c)
	}
	e.checkState("snapshot + capture", folded, e.systemState(), nil)

	// Capture delivers exactly what was written after the snapshot's
	// cursor: the concurrent write unless the snapshot held it, then the
	// later writes. Nothing from before the snapshot comes again.
	var want []adapters.Change
	updated := e.typesRow(bulk, int(bulk-1))
	updated["s_text"] = crdt.String("written during the snapshot")
	for _, c := range []adapters.Change{
		e.update(TypesTable, e.typesRow(bulk, int(bulk-1)), updated),
		e.change(PairsTable, e.pairRow("during", 1, "inserted during the snapshot")),
		e.deletion(TypesTable, e.typesRow(1, 0)),
	} {
		// Where each write stands alone, the snapshot may hold some.
		if !sawDuring && !(e.f.NoTransactions && e.same(snap[c.Collection][c.Key], after[c.Collection][c.Key])) {
			want = append(want, c)
		}
	}
	want = append(want,
		e.change(PairsTable, e.pairRow("acme", 3, "after")),
		e.update(PairsTable, e.pairRow("acme", 1, "one"), e.pairRow("acme", 1, "changed after")),
		e.deletion(PairsTable, e.pairRow("acme", 2, "two")),
	)
	e.checkChanges(got, want)
}

// checkSnapshotConsistent checks that the snapshot is the state before or
// after the concurrent user write, and reports which.
func (e *env) checkSnapshotConsistent(snap, before, after state) (sawWrite bool) {
	e.t.Helper()
	equal := func(a, b state) bool {
		for name := range e.tables {
			if len(a[name]) != len(b[name]) {
				return false
			}
			for k, r := range a[name] {
				if !e.same(r, b[name][k]) {
					return false
				}
			}
		}
		return true
	}
	switch {
	case equal(snap, before):
		e.t.Logf("snapshot read the state before the concurrent user write")
		return false
	case equal(snap, after):
		e.t.Logf("snapshot read the state after the concurrent user write")
		return true
	case e.f.NoTransactions:
		// Each write stands alone: each record is as it was before or
		// after its own.
		ok := true
		for name := range e.tables {
			keys := map[crdt.Key]bool{}
			for _, st := range []state{before, after, snap} {
				for k := range st[name] {
					keys[k] = true
				}
			}
			for k := range keys {
				r := snap[name][k]
				if !e.same(r, before[name][k]) && !e.same(r, after[name][k]) {
					ok = false
				}
			}
		}
		if ok {
			e.t.Logf("snapshot read some of the concurrent user writes")
			return false
		}
	}
	e.checkState("snapshot (vs the state before the concurrent write)", snap, before, nil)
	e.t.Fatalf("snapshot is neither the state before nor after a concurrent user write")
	return false
}

// testCaptureTypes writes every edge value of every column through user
// writes (insert, update, update to null, delete) and checks each captured
// row exactly.
func testCaptureTypes(e *env) {
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))
	spec := e.tables[TypesTable]
	id := int64(100)
	for _, col := range spec.Columns {
		if col.Name == "id" {
			continue
		}
		e.t.Run(col.Name, func(t *testing.T) {
			sub := e.with(t)
			id++
			vs := edgeValues(col.Kind, e.f)
			row := crdt.Row{"id": e.tid(id), col.Name: vs[0]}
			var want []adapters.Change
			sub.exec(Op{Kind: Insert, Table: TypesTable, Row: row})
			want = append(want, sub.change(TypesTable, row))
			// After the other values: back to null, then the first value again,
			// then null: null and the edge values ("" , zero-length bytes, 0,
			// [], JSON null) must stay apart, in rows and in old rows.
			for _, v := range append(slices.Clone(vs[1:]), crdt.Null(), vs[0], crdt.Null()) {
				old := maps.Clone(row)
				row[col.Name] = v
				sub.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(id), col.Name: v}})
				want = append(want, sub.update(TypesTable, old, row))
			}
			sub.exec(Op{Kind: Delete, Table: TypesTable, Row: e.idRow(id)})
			want = append(want, sub.deletion(TypesTable, row))
			got, _ := s.with(sub).sync()
			sub.checkChanges(got, want)
		})
	}
	e.t.Run("full rows", func(t *testing.T) {
		sub := e.with(t)
		var want []adapters.Change
		for i, id := range []int64{e.f.minInt(), -1, 0, e.f.maxInt()} {
			row := sub.typesRow(id, i+1)
			sub.exec(Op{Kind: Insert, Table: TypesTable, Row: row})
			want = append(want, sub.change(TypesTable, row))
		}
		got, _ := s.with(sub).sync()
		sub.checkChanges(got, want)
	})
}

// testCaptureKeys checks the composite-key table: changes keyed by both
// columns, and an update of a key column captured as the delete of the old
// key and the row under the new one.
func testCaptureKeys(e *env) {
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 1, "first")})
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))
	k := func(tenant string, n int64) crdt.Row {
		return e.pairKey(tenant, n)
	}
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 2, "second")})
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("globex", 1, "same n, other tenant")})
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("", e.f.minInt(), "empty tenant")})
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("a,b\\c", -1, "separators in the key")})
	want := []adapters.Change{
		e.change(PairsTable, e.pairRow("acme", 2, "second")),
		e.change(PairsTable, e.pairRow("globex", 1, "same n, other tenant")),
		e.change(PairsTable, e.pairRow("", e.f.minInt(), "empty tenant")),
		e.change(PairsTable, e.pairRow("a,b\\c", -1, "separators in the key")),
	}
	// A record's ID never changes (Features.RecordIDs): no key moves.
	if !e.f.RecordIDs {
		e.exec(Op{Kind: Update, Table: PairsTable, Row: k("acme", 1), NewKey: crdt.Row{"n": crdt.Int(10)}})
		e.exec(Op{Kind: Update, Table: PairsTable, Row: k("globex", 1), NewKey: crdt.Row{"tenant": crdt.String("initech")}})
		want = append(want,
			// A new key is a new record: its row is an insert, without the
			// old one, which goes with the delete of the old key.
			e.deletion(PairsTable, e.pairRow("acme", 1, "first")),
			e.change(PairsTable, e.pairRow("acme", 10, "first")),
			e.deletion(PairsTable, e.pairRow("globex", 1, "same n, other tenant")),
			e.change(PairsTable, e.pairRow("initech", 1, "same n, other tenant")),
		)
	}
	e.exec(Op{Kind: Delete, Table: PairsTable, Row: k("acme", 2)})
	want = append(want, e.deletion(PairsTable, e.pairRow("acme", 2, "second")))
	got, _ := s.sync()
	e.checkChanges(got, want)
}

// testTransactions checks that a user transaction arrives whole in one
// batch, in statement order, however many rows it touches.
func testTransactions(e *env) {
	e.exec(
		Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(1, 1)},
		Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(2, 2)},
	)
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))

	row1 := e.typesRow(1, 1)
	row1["s_text"] = crdt.String("in a transaction")
	row3 := crdt.Row{"id": e.tid(3), "n_int": crdt.Int(3)}
	row3b := crdt.Row{"id": e.tid(3), "n_int": crdt.Int(4)}
	row3c := crdt.Row{"id": e.tid(3), "n_int": crdt.Int(4), "s_text": crdt.String("twice")}
	small := []adapters.Change{
		e.change(PairsTable, e.pairRow("tx", 1, "three rows")),
		e.update(TypesTable, e.typesRow(1, 1), row1),
		e.deletion(TypesTable, e.typesRow(2, 2)),
		e.change(TypesTable, row3),
		e.update(TypesTable, row3, row3b),
		e.update(TypesTable, row3b, row3c),
	}
	e.exec(
		Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("tx", 1, "three rows")},
		Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(1), "s_text": crdt.String("in a transaction")}},
		Op{Kind: Delete, Table: TypesTable, Row: e.idRow(2)},
		Op{Kind: Insert, Table: TypesTable, Row: row3},
		Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(3), "n_int": crdt.Int(4)}},
		Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(3), "s_text": crdt.String("twice")}},
	)
	large := 3000
	if e.f.NoTransactions {
		// Each write stands alone: the size of a transaction means nothing.
		large = 300
	}
	var ops []Op
	var big []adapters.Change
	for i := range large {
		row := e.pairRow("bulk", int64(i), "row "+strconv.Itoa(i))
		ops = append(ops, Op{Kind: Insert, Table: PairsTable, Row: row})
		big = append(big, e.change(PairsTable, row))
	}
	e.exec(ops...)
	got, batches := s.sync()
	e.checkChanges(got, append(slices.Clone(small), big...))
	if e.f.NoTransactions {
		// Each write stands alone: they arrive, in order, and that is all.
		return
	}
	for _, txn := range [][]adapters.Change{small, big} {
		first := txn[0]
		found := false
		for _, b := range batches {
			i := slices.IndexFunc(b.Changes, func(c adapters.Change) bool {
				return c.Collection == first.Collection && c.Key == first.Key
			})
			if i < 0 {
				continue
			}
			found = true
			if len(b.Changes)-i < len(txn) {
				e.t.Errorf("a transaction of %d changes was split: its batch holds only %d of them", len(txn), len(b.Changes)-i)
			}
			break
		}
		if !found {
			e.t.Errorf("transaction starting with %s not captured", describe(first))
		}
	}
}

// testApplyNotCaptured checks the echo guard: writes made by Apply are never
// captured, also when idempotently repeated, while user writes to the same
// rows right after are, with the applied values in their rows.
func testApplyNotCaptured(e *env) {
	e.exec(Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(1, 0)})
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("acme", 1, "user")})
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))

	writes := []adapters.Write{
		{Collection: TypesTable, Key: e.tkey(1), Row: e.typesRow(1, 3)},
		{Collection: TypesTable, Key: e.tkey(2), Row: e.typesRow(2, 4)},
		{Collection: TypesTable, Key: e.tkey(3), Row: crdt.Row{"id": e.tid(3)}},
		{Collection: PairsTable, Key: e.key(PairsTable, e.pairRow("acme", 1, "")), Row: nil},
		{Collection: PairsTable, Key: e.key(PairsTable, e.pairRow("acme", 2, "")), Row: e.pairRow("acme", 2, "applied")},
		// Deleting a row that does not exist is not an error.
		{Collection: PairsTable, Key: e.key(PairsTable, e.pairRow("nobody", 9, "")), Row: nil},
	}
	for round := range 2 {
		if _, err := a.Apply(e.ctx, writes, nil); err != nil {
			e.t.Fatalf("apply (round %d): %+v", round, err)
		}
		got, _ := s.sync()
		for _, c := range got {
			e.t.Errorf("apply round %d was captured: %s %s", round, describe(c), describeRow(c.Row))
		}
	}
	want := state{}
	want.put(adapters.Change{Collection: PairsTable, Key: e.key(PairsTable, e.pairRow("acme", 2, "")), Row: e.pairRow("acme", 2, "applied")})
	for _, w := range writes[:3] {
		want.putWrite(w)
	}
	e.checkState("after apply", e.systemState(), want, nil)

	// Apply leaves capture on for user writes, including to applied rows,
	// whose old rows are what Apply wrote.
	e.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(2), "n_int": crdt.Int(-5)}})
	e.exec(Op{Kind: Update, Table: PairsTable, Row: e.pairRow("acme", 2, "user again")})
	row2 := e.typesRow(2, 4)
	row2["n_int"] = crdt.Int(-5)
	got, _ := s.sync()
	e.checkChanges(got, []adapters.Change{
		e.update(TypesTable, e.typesRow(2, 4), row2),
		e.update(PairsTable, e.pairRow("acme", 2, "applied"), e.pairRow("acme", 2, "user again")),
	})
}

// testApplyValues applies every edge value of every column and reads it back
// exactly; updates and deletes by Apply land too.
func testApplyValues(e *env) {
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))

	want := state{}
	var writes []adapters.Write
	id := int64(0)
	add := func(row crdt.Row) {
		id++
		row["id"] = e.tid(id)
		w := adapters.Write{Collection: TypesTable, Key: e.tkey(id), Row: row}
		writes = append(writes, w)
		want.putWrite(w)
	}
	for _, col := range e.tables[TypesTable].Columns {
		if col.Name == "id" {
			continue
		}
		for _, v := range edgeValues(col.Kind, e.f) {
			add(crdt.Row{col.Name: v})
		}
	}
	for i := range 8 {
		add(e.typesRow(0, i))
	}
	// An int is stored in a float column as the same number.
	writes = append(writes, adapters.Write{Collection: TypesTable, Key: e.tkey(1000), Row: crdt.Row{"id": e.tid(1000), "n_float": crdt.Int(-7)}})
	want.put(adapters.Change{Collection: TypesTable, Key: e.tkey(1000), Row: crdt.Row{"id": e.tid(1000), "n_float": crdt.Float(-7)}})
	if _, err := a.Apply(e.ctx, writes, nil); err != nil {
		e.t.Fatalf("apply: %+v", err)
	}
	e.checkState("after apply", e.systemState(), want, nil)

	// Updates replace the whole row (unnamed columns become null); deletes.
	var second []adapters.Write
	for i, w := range writes[:20] {
		if i%3 == 0 {
			second = append(second, adapters.Write{Collection: w.Collection, Key: w.Key})
			want.put(adapters.Change{Collection: w.Collection, Key: w.Key})
			continue
		}
		row := e.typesRow(0, i+5)
		row["id"] = w.Row["id"]
		if i%3 == 1 {
			row = crdt.Row{"id": w.Row["id"], "s_text": crdt.String("only this")}
		}
		second = append(second, adapters.Write{Collection: w.Collection, Key: w.Key, Row: row})
		want.put(adapters.Change{Collection: w.Collection, Key: w.Key, Row: row})
	}
	if _, err := a.Apply(e.ctx, second, nil); err != nil {
		e.t.Fatalf("apply updates: %+v", err)
	}
	e.checkState("after apply of updates", e.systemState(), want, nil)

	// A float the system cannot hold is stored exactly or refused, never
	// silently stored as something else.
	var special []float64
	if !e.f.NaN {
		special = append(special, math.NaN())
	}
	if e.f.NoInf {
		special = append(special, math.Inf(1), math.Inf(-1))
	}
	for i, f := range special {
		id := int64(2000 + i)
		w := adapters.Write{Collection: TypesTable, Key: e.tkey(id), Row: crdt.Row{"id": e.tid(id), "n_float": crdt.Float(f)}}
		_, err := a.Apply(e.ctx, []adapters.Write{w}, nil)
		if err != nil {
			if re, ok := adapters.RowErrorOf(err); !ok || re.Key != w.Key {
				e.t.Errorf("apply of %v failed without a RowError for it: %+v", f, err)
			}
			e.t.Logf("apply of %v: %v", f, err)
		} else {
			want.putWrite(w)
			e.t.Logf("apply of %v stored it", f)
		}
		e.checkState(fmt.Sprintf("after apply of %v", f), e.systemState(), want, nil)
	}

	got, _ := s.sync()
	for _, c := range got {
		e.t.Errorf("apply was captured: %s", describe(c))
	}
}

// testResume checks restarts: an adapter closed mid-stream and reopened
// captures from the last acknowledged cursor everything after it, including
// what users wrote while it was down, and nothing at or before it.
func testResume(e *env) {
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))
	// One user transaction at a time, each waited for, so that batches end
	// between them.
	var batches []batch
	for i := range 6 {
		row := e.pairRow("resume", int64(i), "before restart")
		e.exec(Op{Kind: Insert, Table: PairsTable, Row: row})
		batches = append(batches, s.until(e.change(PairsTable, row))...)
	}
	if len(batches) < 2 {
		e.t.Fatalf("six transactions came in %d batch: cannot pick a cursor between them", len(batches))
	}
	// Acknowledge the middle batch, keep capturing a little, then stop.
	mid := len(batches) / 2
	if err := a.Ack(e.ctx, batches[mid-1].Cursor); err != nil {
		e.t.Fatalf("ack: %+v", err)
	}
	if err := a.Ack(e.ctx, batches[mid].Cursor); err != nil {
		e.t.Fatalf("ack: %+v", err)
	}
	// Acknowledging an older cursor is a no-op.
	if err := a.Ack(e.ctx, batches[0].Cursor); err != nil {
		e.t.Fatalf("ack of an older cursor: %+v", err)
	}
	acked := batches[mid].Cursor
	var want []adapters.Change
	for _, b := range batches[mid+1:] {
		want = append(want, b.Changes...)
	}
	e.exec(Op{Kind: Update, Table: PairsTable, Row: e.pairRow("resume", 0, "not acked")})
	want = append(want, e.update(PairsTable, e.pairRow("resume", 0, "before restart"), e.pairRow("resume", 0, "not acked")))
	s.until(want[len(want)-1])
	s.stop()
	if err := a.Close(); err != nil {
		e.t.Fatalf("close: %+v", err)
	}

	// Users write while the adapter is down.
	for i := 6; i < 9; i++ {
		row := e.pairRow("resume", int64(i), "while down")
		e.exec(Op{Kind: Insert, Table: PairsTable, Row: row})
		want = append(want, e.change(PairsTable, row))
	}
	e.exec(Op{Kind: Delete, Table: PairsTable, Row: e.pairKey("resume", 1)})
	want = append(want, e.deletion(PairsTable, e.pairRow("resume", 1, "before restart")))

	b := e.open()
	s2 := e.capture(b, acked)
	got, _ := s2.sync()
	e.checkChanges(got, want)

	// A second restart from the same cursor delivers the same again: nothing
	// was lost by reading it once without an Ack.
	s2.stop()
	if err := b.Close(); err != nil {
		e.t.Fatalf("close: %+v", err)
	}
	c := e.open()
	s3 := e.capture(c, acked)
	got, _ = s3.sync()
	var noBarriers []adapters.Change
	for _, ch := range got {
		if !isBarrier(ch) {
			noBarriers = append(noBarriers, ch)
		}
	}
	e.checkChanges(noBarriers, want)
}

// testBadRows checks that a row the system cannot hold fails Apply with a
// RowError naming it, writes nothing of the batch, and that the rest of the
// batch applies once the bad row is set aside.
func testBadRows(e *env) {
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))
	base := []adapters.Write{
		{Collection: TypesTable, Key: e.tkey(1), Row: e.typesRow(1, 1)},
		{Collection: PairsTable, Key: e.key(PairsTable, e.pairRow("acme", 1, "")), Row: e.pairRow("acme", 1, "base")},
	}
	if _, err := a.Apply(e.ctx, base, nil); err != nil {
		e.t.Fatalf("apply: %+v", err)
	}
	pairKey := e.key(PairsTable, e.pairRow("acme", 1, ""))
	type badCase struct {
		name string
		bad  adapters.Write
	}
	cases := []badCase{
		{"string into int", adapters.Write{Collection: TypesTable, Key: e.tkey(50), Row: crdt.Row{"id": e.tid(50), "n_int": crdt.String("not a number")}}},
		{"string into bool", adapters.Write{Collection: TypesTable, Key: e.tkey(51), Row: crdt.Row{"id": e.tid(51), "b_bool": crdt.String("maybe")}}},
		{"string into time", adapters.Write{Collection: TypesTable, Key: e.tkey(52), Row: crdt.Row{"id": e.tid(52), "t_time": crdt.String("yesterday")}}},
		{"bool into float", adapters.Write{Collection: TypesTable, Key: e.tkey(53), Row: crdt.Row{"id": e.tid(53), "n_float": crdt.Bool(true)}}},
		{"fractional float into int", adapters.Write{Collection: TypesTable, Key: e.tkey(54), Row: crdt.Row{"id": e.tid(54), "n_int": crdt.Float(1.5)}}},
		{"missing primary key", adapters.Write{Collection: TypesTable, Key: e.tkey(55), Row: crdt.Row{"n_int": crdt.Int(1)}}},
		{"invalid key on delete", adapters.Write{Collection: TypesTable, Key: ""}},
		{"unknown table", adapters.Write{Collection: "lt_nope", Key: e.tkey(1), Row: crdt.Row{"id": e.tid(1)}}},
		{"unknown column", adapters.Write{Collection: TypesTable, Key: e.tkey(56), Row: crdt.Row{"id": e.tid(56), "nope": crdt.Int(1)}}},
	}
	if e.f.RecordIDs {
		nullID := e.pairRow("acme", 1, "x")
		nullID["id"] = crdt.Null()
		cases = append(cases,
			badCase{"null primary key", adapters.Write{Collection: PairsTable, Key: pairKey, Row: nullID}},
			badCase{"int key for a string ID", adapters.Write{Collection: PairsTable, Key: crdt.IntKey(1)}},
		)
	} else {
		cases = append(cases,
			badCase{"null primary key", adapters.Write{Collection: PairsTable, Key: pairKey, Row: crdt.Row{"tenant": crdt.String("acme"), "n": crdt.Null(), "note": crdt.String("x")}}},
			badCase{"short key on delete", adapters.Write{Collection: PairsTable, Key: crdt.StringKey("acme")}},
		)
	}
	if e.f.Lists {
		cases = append(cases,
			badCase{"int into list", adapters.Write{Collection: TypesTable, Key: e.tkey(57), Row: crdt.Row{"id": e.tid(57), "l_tags": crdt.Int(5)}}},
			badCase{"int element in string list", adapters.Write{Collection: TypesTable, Key: e.tkey(58), Row: crdt.Row{"id": e.tid(58), "l_tags": mustListOf(crdt.String("a"), crdt.Int(1))}}},
		)
	}
	for i, c := range cases {
		e.t.Run(c.name, func(t *testing.T) {
			sub := e.with(t)
			before := sub.systemState()
			good1 := adapters.Write{Collection: TypesTable, Key: e.tkey(int64(100 + i)), Row: crdt.Row{"id": e.tid(int64(100 + i)), "s_text": crdt.String(c.name)}}
			good2 := adapters.Write{Collection: PairsTable, Key: pairKey, Row: e.pairRow("acme", 1, "after "+c.name)}
			_, err := a.Apply(sub.ctx, []adapters.Write{good1, c.bad, good2}, nil)
			if err == nil {
				t.Fatalf("apply of a batch with a bad row (%s) succeeded", c.name)
			}
			t.Logf("error: %v", err)
			re, ok := adapters.RowErrorOf(err)
			switch {
			case !ok:
				t.Errorf("error has no RowError: %+v", err)
			case re.Collection != c.bad.Collection || re.Key != c.bad.Key:
				t.Errorf("RowError names %s/%s, want the bad write %s/%s", re.Collection, re.Key, c.bad.Collection, c.bad.Key)
			}
			if !errors.Is(err, adapters.ErrBadRow) {
				t.Errorf("error is not marked adapters.ErrBadRow: %+v", err)
			}
			// Nothing of the failed batch landed (where each write stands
			// alone, nothing after the bad one), and nothing is lost: the
			// good writes apply once the bad one is set aside.
			got := sub.systemState()
			if sub.f.NoTransactions {
				if g := got[TypesTable][good1.Key]; g != nil && e.same(g, good1.Row) {
					t.Logf("the write before the bad one landed")
					before.putWrite(good1)
				}
			}
			sub.checkState("after the failed apply", got, before, nil)
			if _, err := a.Apply(sub.ctx, []adapters.Write{good1, good2}, nil); err != nil {
				t.Fatalf("apply of the good writes: %+v", err)
			}
			want := before
			want.putWrite(good1)
			want.putWrite(good2)
			sub.checkState("after re-applying the good writes", sub.systemState(), want, nil)
		})
	}
	got, _ := s.sync()
	for _, c := range got {
		e.t.Errorf("apply was captured: %s", describe(c))
	}
}
