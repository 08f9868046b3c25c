package adaptertest

import (
	"maps"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// SerialTable has an int primary key "id" that the system generates, and a
// string column "note". Only the IDMap scenario's system holds it.
const SerialTable = "lt_serial"

func serialTable(f Features) TableSpec {
	idKind := crdt.KindInt
	if f.RecordIDs {
		idKind = crdt.KindString
	}
	return TableSpec{
		Name: SerialTable,
		Key:  []string{"id"},
		Columns: []ColumnSpec{
			{Name: "id", Kind: idKind, Generated: true},
			{Name: "note", Kind: crdt.KindString},
		},
	}
}

// testIDMap checks writes with a NewKey (adapters.IDMapper): each inserts a
// row under a key the system generates, reported in Applied.Generated and
// recorded in the ID map with the collection key, atomically and durably,
// without being captured; a NewKey already mapped updates its row instead
// of inserting a second one; a user's later update of such a row is
// captured under its local key; a delete by Apply drops the pair.
func testIDMap(e *env) {
	a := e.open()
	m, ok := a.(*closer).Adapter.(adapters.IDMapper)
	if !ok {
		e.t.Skip("the adapter keeps no ID map")
	}
	tables, err := a.Tables(e.ctx)
	if err != nil {
		e.t.Fatalf("tables: %+v", err)
	}
	i := slices.IndexFunc(tables, func(t adapters.Table) bool { return t.Name == SerialTable })
	if i < 0 {
		e.t.Fatalf("table %s not found", SerialTable)
	}
	if c := tables[i].Column("id"); c == nil || !c.Generated {
		e.t.Errorf("table %s: key column id not reported generated: %+v", SerialTable, c)
	}
	if c := tables[i].Column("note"); c == nil || c.Generated {
		e.t.Errorf("table %s: column note reported generated: %+v", SerialTable, c)
	}
	s := e.capture(a, e.snapshot(a, nil))

	c1, c2 := crdt.StringKey("collection-1"), crdt.StringKey("collection-2")
	fresh := func(coll crdt.Key, note string) adapters.Write {
		return adapters.Write{Collection: SerialTable, NewKey: coll, Row: crdt.Row{"note": crdt.String(note)}}
	}
	pairKey := e.key(PairsTable, e.pairRow("acme", 1, ""))
	res := s.apply(a, []adapters.Write{
		fresh(c1, "one"),
		{Collection: PairsTable, Key: pairKey, Row: e.pairRow("acme", 1, "beside")},
		fresh(c2, "two"),
	})
	if len(res.Generated) != 2 || res.Generated[0] == "" || res.Generated[2] == "" || res.Generated[0] == res.Generated[2] {
		e.t.Fatalf("generated keys %v, want two distinct keys at writes 0 and 2", res.Generated)
	}
	k1, k2 := res.Generated[0], res.Generated[2]
	idKind := e.tables[SerialTable].Column("id").Kind
	for _, k := range []crdt.Key{k1, k2} {
		if vals, err := k.Values(); err != nil || len(vals) != 1 || vals[0].Kind() != idKind {
			e.t.Errorf("generated key %s is not one %s (%v)", k, idKind, err)
		}
	}
	if got, _ := s.sync(); len(got) > 0 {
		e.t.Errorf("apply of new keys was captured: %s", describe(got[0]))
	}
	e.checkSerial("after the inserts", map[crdt.Key]string{k1: "one", k2: "two"})
	e.checkIDMap(m, "after the inserts", map[crdt.Key]crdt.Key{k1: c1, k2: c2})
	if other, err := m.IDMap(e.ctx, PairsTable); err != nil || len(other) != 0 {
		e.t.Errorf("id map of %s: %v, %v; want empty", PairsTable, other, err)
	}

	// Idempotence: the same NewKey again updates the row it maps to.
	res = s.apply(a, []adapters.Write{fresh(c1, "one again")})
	if res.Generated[0] != k1 {
		e.t.Errorf("repeated new key %s: generated %v, want %s", c1, res.Generated, k1)
	}
	if got, _ := s.sync(); len(got) > 0 {
		e.t.Errorf("repeated apply was captured: %s", describe(got[0]))
	}
	e.checkSerial("after the repeat", map[crdt.Key]string{k1: "one again", k2: "two"})

	// A NewKey write to a table whose key the system does not generate, or
	// one that names a key column, is a bad row named by its NewKey.
	namedID := crdt.Int(999)
	if idKind == crdt.KindString {
		namedID = crdt.String("q999")
	}
	bads := []adapters.Write{
		{Collection: SerialTable, NewKey: crdt.StringKey("q"), Row: crdt.Row{"id": namedID, "note": crdt.String("x")}},
	}
	// Where every record's ID is generated (Features.RecordIDs), no table
	// has a key the system does not generate.
	if !e.f.RecordIDs {
		bads = append(bads, adapters.Write{Collection: PairsTable, NewKey: crdt.StringKey("p"), Row: crdt.Row{"note": crdt.String("x")}})
	}
	for _, bad := range bads {
		batch := []adapters.Write{fresh(crdt.StringKey("ok"), "x"), bad}
		if e.f.NoTransactions {
			// The write before a bad one stays written: none goes before.
			batch = []adapters.Write{bad, fresh(crdt.StringKey("ok"), "x")}
		}
		_, err := a.Apply(e.ctx, batch, nil)
		re, ok := adapters.RowErrorOf(err)
		if !ok || !errors.Is(err, adapters.ErrBadRow) || re.Key != bad.NewKey {
			e.t.Errorf("apply of a bad new-key write to %s: %+v; want a bad row named by its NewKey %s", bad.Collection, err, bad.NewKey)
		}
	}
	e.checkSerial("after the bad rows", map[crdt.Key]string{k1: "one again", k2: "two"})

	// The map survives a restart.
	s.stop()
	cursor := e.head(a)
	if err := a.Close(); err != nil {
		e.t.Fatalf("close: %+v", err)
	}
	a = e.open()
	m = a.(*closer).Adapter.(adapters.IDMapper)
	e.checkIDMap(m, "after a restart", map[crdt.Key]crdt.Key{k1: c1, k2: c2})
	s = e.capture(a, cursor)
	res = s.apply(a, []adapters.Write{fresh(c2, "two again")})
	if res.Generated[0] != k2 {
		e.t.Errorf("new key %s after a restart: generated %v, want %s", c2, res.Generated, k2)
	}
	e.checkSerial("after the restart", map[crdt.Key]string{k1: "one again", k2: "two again"})

	// A user's update of an inserted row is captured under its local key.
	e.exec(Op{Kind: Update, Table: SerialTable, Row: crdt.Row{"id": e.keyValue(k1), "note": crdt.String("user")}})
	got, _ := s.sync()
	e.checkChanges(got, []adapters.Change{e.update(SerialTable,
		crdt.Row{"id": e.keyValue(k1), "note": crdt.String("one again")},
		crdt.Row{"id": e.keyValue(k1), "note": crdt.String("user")})})

	// Apply's delete of the row drops its pair; the same NewKey then
	// inserts a new row.
	s.apply(a, []adapters.Write{{Collection: SerialTable, Key: k2}})
	e.checkIDMap(m, "after a delete", map[crdt.Key]crdt.Key{k1: c1})
	res = s.apply(a, []adapters.Write{fresh(c2, "two reborn")})
	k3 := res.Generated[0]
	if k3 == "" || k3 == k1 {
		e.t.Fatalf("new key %s after its delete: generated %v", c2, res.Generated)
	}
	e.checkIDMap(m, "after the re-insert", map[crdt.Key]crdt.Key{k1: c1, k3: c2})
	e.checkSerial("after the re-insert", map[crdt.Key]string{k1: "user", k3: "two reborn"})
	if got, _ := s.sync(); len(got) > 0 {
		e.t.Errorf("apply was captured: %s", describe(got[0]))
	}
}

// keyValue returns the only value of a one-column key.
func (e *env) keyValue(k crdt.Key) crdt.Value {
	e.t.Helper()
	vals, err := k.Values()
	if err != nil || len(vals) != 1 {
		e.t.Fatalf("key %s: %v values, %v", k, len(vals), err)
	}
	return vals[0]
}

// checkSerial compares the rows of SerialTable with want, note by key.
func (e *env) checkSerial(what string, want map[crdt.Key]string) {
	e.t.Helper()
	rows, err := e.sys.Rows(e.ctx, SerialTable)
	if err != nil {
		e.t.Fatalf("read rows of %s: %+v", SerialTable, err)
	}
	got := map[crdt.Key]string{}
	for _, r := range rows {
		note := r["note"].AsString()
		got[e.key(SerialTable, r)] = note
	}
	if !maps.Equal(got, want) {
		e.t.Errorf("%s: %s holds %v, want %v", what, SerialTable, got, want)
	}
}

// checkIDMap compares the ID map of SerialTable with want.
func (e *env) checkIDMap(m adapters.IDMapper, what string, want map[crdt.Key]crdt.Key) {
	e.t.Helper()
	got, err := m.IDMap(e.ctx, SerialTable)
	if err != nil {
		e.t.Fatalf("%s: id map: %+v", what, err)
	}
	if !maps.Equal(got, want) {
		e.t.Errorf("%s: id map %v, want %v", what, got, want)
	}
}
