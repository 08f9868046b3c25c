package adaptertest

import (
	"bytes"
	"maps"
	"slices"
	"strings"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// PeopleTable is the table of the natural-key scenarios: a primary key "id"
// that the system generates and that stays local, the natural key "email",
// the synced columns "name" and "score", and the local columns "l_rank"
// (NOT NULL, set to 7 by inserts of Apply) and "l_memo" (nullable, left to
// its default by inserts of Apply).
const PeopleTable = "lt_people"

// rankDefault is the value Options.Local gives l_rank.
const rankDefault = 7

// peopleTables returns the tables of the natural-key scenarios, sorted by
// name: PairsTable for the barriers, and PeopleTable.
func peopleTables(f Features, unindexed bool) []TableSpec {
	var pairs TableSpec
	for _, t := range Tables(f) {
		if t.Name == PairsTable {
			pairs = t
		}
	}
	people := TableSpec{
		Name:      PeopleTable,
		Key:       []string{"id"},
		Natural:   []string{"email"},
		Unindexed: unindexed,
		Columns: []ColumnSpec{
			{Name: "id", Kind: crdt.KindInt},
			{Name: "email", Kind: crdt.KindString, NotNull: true},
			{Name: "name", Kind: crdt.KindString},
			{Name: "score", Kind: crdt.KindInt},
			{Name: "l_rank", Kind: crdt.KindInt, NotNull: true, Local: true, Default: crdt.Int(rankDefault)},
			{Name: "l_memo", Kind: crdt.KindString, Local: true},
		},
	}
	return []TableSpec{pairs, people}
}

// person is a row of PeopleTable's synced columns.
func person(email, name string, score int64) crdt.Row {
	return crdt.Row{"email": crdt.String(email), "name": crdt.String(name), "score": crdt.Int(score)}
}

// withLocal returns row with values for the local columns, for user
// inserts.
func withLocal(row crdt.Row, rank int64, memo string) crdt.Row {
	out := maps.Clone(row)
	out["l_rank"] = crdt.Int(rank)
	out["l_memo"] = crdt.String(memo)
	return out
}

func emailRow(email string) crdt.Row { return crdt.Row{"email": crdt.String(email)} }

// peopleRows reads PeopleTable as the system holds it, local columns
// included, by email.
func (e *env) peopleRows() map[string]crdt.Row {
	e.t.Helper()
	rows, err := e.sys.Rows(e.ctx, PeopleTable)
	if err != nil {
		e.t.Fatalf("read rows of %s: %+v", PeopleTable, err)
	}
	out := map[string]crdt.Row{}
	for _, r := range rows {
		out[r["email"].AsString()] = r
	}
	return out
}

// testNaturalKeys checks a table keyed by a natural key with local columns:
// Tables reports the natural key and only the synced columns; the
// snapshot, the capture and the range reads name records by the natural
// key and never carry a local column (nor the local primary key); a change
// of the natural key is the delete of the old key and the insert of the
// new one; a change of local columns alone changes no synced column, and
// no range hash.
func testNaturalKeys(e *env) {
	e.exec(Op{Kind: Insert, Table: PeopleTable, Row: withLocal(person("ann@example.com", "Ann", 1), 1, "ann's")})
	a := e.open()

	tables, err := a.Tables(e.ctx)
	if err != nil {
		e.t.Fatalf("tables: %+v", err)
	}
	i := slices.IndexFunc(tables, func(t adapters.Table) bool { return t.Name == PeopleTable })
	if i < 0 {
		e.t.Fatalf("tables do not include %s", PeopleTable)
	}
	people := tables[i]
	if !slices.Equal(people.Key, []string{"email"}) {
		e.t.Errorf("%s: key %v, want the natural key [email]", PeopleTable, people.Key)
	}
	var names []string
	for _, c := range people.Columns {
		names = append(names, c.Name)
	}
	if slices.Sort(names); !slices.Equal(names, []string{"email", "name", "score"}) {
		e.t.Errorf("%s: columns %v, want only the synced ones [email name score]", PeopleTable, names)
	}
	if c := people.Column("email"); c != nil && c.Nullable {
		e.t.Errorf("%s: natural key column email is nullable", PeopleTable)
	}

	var snap []adapters.Change
	cursor := e.snapshot(a, func(b adapters.Batch) error {
		for _, c := range b.Changes {
			e.checkShape(c)
			if c.Collection == PeopleTable {
				snap = append(snap, c)
			}
		}
		return nil
	})
	e.checkChanges(snap, []adapters.Change{e.change(PeopleTable, person("ann@example.com", "Ann", 1))})

	s := e.capture(a, cursor)
	ann := person("ann@example.com", "Ann", 1)
	annB := person("ann@example.com", "Ann B", 1)
	bob := person("bob@example.com", "Bob", 2)
	robert := person("robert@example.com", "Bob", 2)
	e.exec(Op{Kind: Insert, Table: PeopleTable, Row: withLocal(bob, 2, "bob's")})
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("ann@example.com"), "name": crdt.String("Ann B")}})
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("ann@example.com"), "l_rank": crdt.Int(5), "l_memo": crdt.String("changed")}})
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: emailRow("bob@example.com"), NewKey: crdt.Row{"email": crdt.String("robert@example.com")}})
	e.exec(Op{Kind: Delete, Table: PeopleTable, Row: emailRow("ann@example.com")})
	got, _ := s.sync()
	e.checkChanges(synced(got), []adapters.Change{
		e.change(PeopleTable, bob),
		e.update(PeopleTable, ann, annB),
		e.deletion(PeopleTable, bob),
		e.change(PeopleTable, robert),
		e.deletion(PeopleTable, annB),
	})

	var ops []Op
	for i, email := range []string{"b@x", "a@x", "ab@x", "B@x", "é@x", "a b@x"} {
		ops = append(ops, Op{Kind: Insert, Table: PeopleTable, Row: withLocal(person(email, "n"+email, int64(i)), int64(i), email)})
	}
	e.exec(ops...)
	e.checkNaturalRanges(a)
}

// synced leaves out the changes that changed no synced column: a change of
// local columns alone, which an adapter may capture.
func synced(changes []adapters.Change) []adapters.Change {
	var out []adapters.Change
	for _, c := range changes {
		if c.Row != nil && c.Old != nil && rowsEqual(c.Row, c.Old) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// checkNaturalRanges checks the range reads of PeopleTable, where the
// adapter has them: in the order of the natural key, synced columns only,
// and a range hash that a change of local columns leaves alone.
func (e *env) checkNaturalRanges(a adapters.Adapter) {
	e.t.Helper()
	rr, ok := a.(*closer).Adapter.(adapters.RangeReader)
	if !ok {
		return
	}
	want := map[crdt.Key]crdt.Row{}
	for _, r := range e.peopleRows() {
		want[e.key(PeopleTable, r)] = e.full(PeopleTable, r)
	}
	var got []adapters.Change
	after := crdt.Key("")
	for pages := 0; ; pages++ {
		if pages > 100 {
			e.t.Fatalf("%s: ReadRange does not end", PeopleTable)
		}
		page, err := rr.ReadRange(e.ctx, PeopleTable, after, 2)
		if err != nil {
			e.t.Fatalf("%s: ReadRange after %s: %+v", PeopleTable, after, err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Key
	}
	if len(got) != len(want) {
		e.t.Errorf("%s: ReadRange read %d rows, the table holds %d", PeopleTable, len(got), len(want))
	}
	for i, c := range got {
		e.checkShape(c)
		if i > 0 && bytes.Compare([]byte(got[i-1].Key), []byte(c.Key)) >= 0 {
			e.t.Errorf("%s: key %s read after %s, want the natural key's crdt.Key order", PeopleTable, c.Key, got[i-1].Key)
		}
		if !rowsEqual(c.Row, want[c.Key]) {
			e.t.Errorf("%s: ReadRange row %s\n want %s", PeopleTable, describeRow(c.Row), describeRow(want[c.Key]))
		}
	}
	key := e.key(PeopleTable, emailRow("a@x"))
	rows, err := rr.ReadKeys(e.ctx, PeopleTable, []crdt.Key{key, e.key(PeopleTable, emailRow("nobody@x"))})
	if err != nil {
		e.t.Fatalf("%s: ReadKeys: %+v", PeopleTable, err)
	}
	if len(rows) != 1 || rows[0].Key != key || !rowsEqual(rows[0].Row, want[key]) {
		e.t.Errorf("%s: ReadKeys of a@x and a missing key returned %d rows, want a@x's row %s", PeopleTable, len(rows), describeRow(want[key]))
	}

	rh, ok := rr.(adapters.RangeHasher)
	if !ok {
		return
	}
	hash := func() adapters.RangeHash {
		e.t.Helper()
		h, err := rh.HashRange(e.ctx, PeopleTable, "", "", 1000)
		if err != nil {
			e.t.Fatalf("%s: HashRange: %+v", PeopleTable, err)
		}
		return h
	}
	h0 := hash()
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("a@x"), "l_rank": crdt.Int(99), "l_memo": crdt.String("local only")}})
	if h1 := hash(); h1 != h0 {
		e.t.Errorf("%s: a change of local columns alone changed the range hash", PeopleTable)
	}
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("a@x"), "score": crdt.Int(99)}})
	if h2 := hash(); h2 == h0 {
		e.t.Errorf("%s: a change of a synced column left the range hash unchanged", PeopleTable)
	}
}

// testLocalApply checks Apply on a table with a natural key and local
// columns: it upserts and deletes by the natural key, an update keeps the
// local columns and the primary key, an insert lets the system generate
// the primary key and gives the local columns their configured values,
// none of it is captured, and a write to a record whose natural key a user
// changed after since is deferred with the write to the new key when the
// adapter defers at all.
func testLocalApply(e *env) {
	e.exec(Op{Kind: Insert, Table: PeopleTable, Row: withLocal(person("carol@example.com", "Carol", 3), 3, "kept")})
	e.exec(Op{Kind: Insert, Table: PeopleTable, Row: withLocal(person("erin@example.com", "Erin", 5), 5, "erin's")})
	before := e.peopleRows()
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))

	carol := person("carol@example.com", "Carol applied", 30)
	dave := person("dave@example.com", "Dave", 4)
	writes := []adapters.Write{
		{Collection: PeopleTable, Key: e.key(PeopleTable, carol), Row: carol},
		{Collection: PeopleTable, Key: e.key(PeopleTable, dave), Row: dave},
		{Collection: PeopleTable, Key: e.key(PeopleTable, emailRow("nobody@example.com"))},
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
	rows := e.peopleRows()
	wantCarol := maps.Clone(before["carol@example.com"])
	maps.Copy(wantCarol, carol)
	if !rowsEqual(rows["carol@example.com"], wantCarol) {
		e.t.Errorf("after an applied update: %s, want %s (the local columns and the primary key kept)",
			describeRow(rows["carol@example.com"]), describeRow(wantCarol))
	}
	d := rows["dave@example.com"]
	switch {
	case d == nil:
		e.t.Errorf("applied insert of dave@example.com missing")
	case d["id"].IsNull():
		e.t.Errorf("applied insert %s: the system did not generate the primary key", describeRow(d))
	case d["id"].AsInt() == before["carol@example.com"]["id"].AsInt() || d["id"].AsInt() == before["erin@example.com"]["id"].AsInt():
		e.t.Errorf("applied insert %s has the primary key of another row", describeRow(d))
	case !crdt.Equal(d["l_rank"], crdt.Int(rankDefault)) || !d["l_memo"].IsNull():
		e.t.Errorf("applied insert %s: want l_rank %d (its value in Options.Local) and l_memo null (its default)", describeRow(d), rankDefault)
	case !rowsEqual(e.full(PeopleTable, d), dave):
		e.t.Errorf("applied insert %s, want %s", describeRow(d), describeRow(dave))
	}

	// A delete by the natural key, not captured either.
	if _, err := a.Apply(e.ctx, []adapters.Write{{Collection: PeopleTable, Key: e.key(PeopleTable, dave)}}, nil); err != nil {
		e.t.Fatalf("apply of a delete: %+v", err)
	}
	if _, ok := e.peopleRows()["dave@example.com"]; ok {
		e.t.Errorf("applied delete of dave@example.com: the row is still there")
	}

	// A user's change to an applied row: its old row is what Apply wrote.
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("carol@example.com"), "score": crdt.Int(31)}})
	carol2 := maps.Clone(carol)
	carol2["score"] = crdt.Int(31)
	got, batches := s.sync()
	e.checkChanges(synced(got), []adapters.Change{e.update(PeopleTable, carol, carol2)})

	// Changes after since: the record a user updated, and both keys of a
	// natural key a user changed, have changes the merged rows miss.
	since := last(batches).Cursor
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: crdt.Row{"email": crdt.String("carol@example.com"), "name": crdt.String("user")}})
	e.exec(Op{Kind: Update, Table: PeopleTable, Row: emailRow("erin@example.com"), NewKey: crdt.Row{"email": crdt.String("erin2@example.com")}})
	frank := person("frank@example.com", "Frank", 6)
	late := []adapters.Write{
		{Collection: PeopleTable, Key: e.key(PeopleTable, carol), Row: person("carol@example.com", "merged", 1)},
		{Collection: PeopleTable, Key: e.key(PeopleTable, emailRow("erin@example.com")), Row: person("erin@example.com", "merged", 1)},
		{Collection: PeopleTable, Key: e.key(PeopleTable, emailRow("erin2@example.com")), Row: person("erin2@example.com", "merged", 1)},
		{Collection: PeopleTable, Key: e.key(PeopleTable, frank), Row: frank},
	}
	res, err := a.Apply(e.ctx, late, since)
	if err != nil {
		e.t.Fatalf("apply after since: %+v", err)
	}
	if len(res.Deferred) > 0 && !slices.Equal(res.Deferred, []int{0, 1, 2}) {
		e.t.Errorf("apply deferred %v, want [0 1 2] (the records with changes after since, by natural key) or none", res.Deferred)
	}
	e.t.Logf("apply after since deferred %v", res.Deferred)
	if len(res.Deferred) > 0 {
		rows := e.peopleRows()
		if n := rows["carol@example.com"]["name"]; !crdt.Equal(n, crdt.String("user")) {
			e.t.Errorf("a deferred write was written: carol's name is %s", n)
		}
		if f := rows["frank@example.com"]; f == nil || !rowsEqual(e.full(PeopleTable, f), frank) {
			e.t.Errorf("the write of a record without changes after since was not applied: %s", describeRow(f))
		}
	}
}

// testNaturalKeyIndex checks that an adapter refuses a natural key that no
// unique index covers, with an error naming the table and the columns.
func testNaturalKeyIndex(e *env) {
	a, err := e.sys.Open(e.ctx)
	if err == nil {
		a.Close()
		e.t.Fatalf("open with a natural key that no unique index covers succeeded")
	}
	e.t.Logf("error: %v", err)
	if msg := err.Error(); !strings.Contains(msg, PeopleTable) || !strings.Contains(msg, "email") {
		e.t.Errorf("the error does not name the table %s and the column email: %v", PeopleTable, err)
	}
}
