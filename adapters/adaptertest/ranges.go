package adaptertest

import (
	"bytes"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// testRanges checks adapters.RangeReader, for adapters that implement it:
// ReadRange pages through a table in the order of the crdt.Key encodings
// (negative and positive integers, text that sorts differently by length
// and by byte, composite keys), every row whole and equal to what the
// system holds; ReadKeys returns exactly the rows that exist.
func testRanges(e *env) {
	rr, ok := e.open().(*closer).Adapter.(adapters.RangeReader)
	if !ok {
		e.t.Skip("the adapter does not implement adapters.RangeReader")
	}
	var ops []Op
	for _, id := range []int64{-1 << 40, -3, 0, 2, 10, 11, 1 << 40} {
		ops = append(ops, Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(id, int(id&7))})
	}
	for _, tenant := range []string{"b", "a", "ab", "B", "a b", "é"} {
		for _, n := range []int64{-2, 1, 10} {
			ops = append(ops, Op{Kind: Insert, Table: PairsTable, Row: e.pairRow(tenant, n, tenant+"-note")})
		}
	}
	e.exec(ops...)
	want := e.systemState()
	for _, table := range []string{TypesTable, PairsTable} {
		for _, limit := range []int{1, 4, 1000} {
			var got []adapters.Change
			after := crdt.Key("")
			for pages := 0; ; pages++ {
				if pages > 100 {
					e.t.Fatalf("%s: ReadRange with limit %d does not end", table, limit)
				}
				page, err := rr.ReadRange(e.ctx, table, after, limit)
				if err != nil {
					e.t.Fatalf("%s: ReadRange after %s: %+v", table, after, err)
				}
				if len(page) > limit {
					e.t.Fatalf("%s: ReadRange returned %d rows, limit %d", table, len(page), limit)
				}
				got = append(got, page...)
				if len(page) < limit {
					break
				}
				after = page[len(page)-1].Key
			}
			if len(got) != len(want[table]) {
				e.t.Fatalf("%s, limit %d: ReadRange read %d rows, the table holds %d", table, limit, len(got), len(want[table]))
			}
			for i, c := range got {
				if c.Collection != table {
					e.t.Errorf("%s: row of collection %q", table, c.Collection)
				}
				if i > 0 && bytes.Compare([]byte(got[i-1].Key), []byte(c.Key)) >= 0 {
					e.t.Errorf("%s, limit %d: key %s read after %s, want crdt.Key order", table, limit, c.Key, got[i-1].Key)
				}
				if w, ok := want[table][c.Key]; !ok || !e.same(c.Row, e.full(table, w)) {
					e.t.Errorf("%s: ReadRange row %s\n want %s", table, describeRow(c.Row), describeRow(e.full(table, w)))
				}
			}
		}
	}
	missing := e.key(TypesTable, e.idRow(12345))
	keys := []crdt.Key{e.key(TypesTable, e.idRow(10)), missing, e.key(TypesTable, e.idRow(-3))}
	got, err := rr.ReadKeys(e.ctx, TypesTable, keys)
	if err != nil {
		e.t.Fatalf("ReadKeys: %+v", err)
	}
	if len(got) != 2 {
		e.t.Fatalf("ReadKeys of 2 present keys and 1 missing returned %d rows", len(got))
	}
	for _, c := range got {
		if w, ok := want[TypesTable][c.Key]; !ok || !e.same(c.Row, e.full(TypesTable, w)) {
			e.t.Errorf("ReadKeys row %s %s", c.Key, describeRow(c.Row))
		}
	}
}
