package postgres

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// typesDDL has a column of every supported type.
const typesDDL = `
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE alltypes (
	id int PRIMARY KEY,
	i2 smallint, i4 integer, i8 bigint,
	num numeric, num2 numeric(10,2),
	f4 real, f8 double precision,
	t text, vc varchar(10), ch char(4),
	b boolean,
	tstz timestamptz, ts timestamp, d date,
	u uuid, j json, jb jsonb, by bytea,
	e mood, dom posint,
	ai int[], at text[], an numeric[], ab boolean[], atz timestamptz[], ad date[],
	au uuid[], ajb jsonb[], aby bytea[], af double precision[], ae mood[]
)`

// typesRows are the rows inserted, as SQL literals, and the Values the
// adapter must capture for them.
var typesRows = []struct {
	sql  string
	want func(t *testing.T) crdt.Row
}{
	{
		sql: `(1, -32768, 2147483647, -9223372036854775808,
			'123456789012345678901234567890.000000000000000000001', 1.5,
			1.1, 0.1,
			'héllo ✓ "q" \ ''s', 'abc', 'ab',
			true,
			'2024-02-29 23:59:59.123456+05:30', '1999-12-31 23:59:59.999999', '0044-03-15 BC',
			'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{"b": 1,  "a": [1, 2.50]}', '{"z": null, "a": "ü"}', '\x00ff27',
			'happy', 7,
			'{1,NULL,-3}', '{"a b","with,comma","quote\"d",NULL,"NULL",""}', '{1.10,NaN}', '{t,f}',
			'{"2000-01-01 00:00:00+00",infinity}', '{2024-01-01,-infinity}',
			'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', '{"{\"k\": [true]}","[]"}', '{"\\x01",NULL}', '{1e300,-Infinity}', '{sad,ok}')`,
		want: func(t *testing.T) crdt.Row {
			return crdt.Row{
				"id": crdt.Int(1), "i2": crdt.Int(-32768), "i4": crdt.Int(2147483647), "i8": crdt.Int(math.MinInt64),
				"num":  crdt.String("123456789012345678901234567890.000000000000000000001"),
				"num2": crdt.String("1.50"),
				"f4":   crdt.Float(float64(float32(1.1))), "f8": crdt.Float(0.1),
				"t": crdt.String(`héllo ✓ "q" \ 's`), "vc": crdt.String("abc"), "ch": crdt.String("ab  "),
				"b":    crdt.Bool(true),
				"tstz": crdt.Time(time.Date(2024, 2, 29, 18, 29, 59, 123456000, time.UTC)),
				"ts":   crdt.Time(time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC)),
				"d":    crdt.Time(time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC)),
				"u":    crdt.String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
				"j":    crdt.MustJSON(`{"a":[1,2.50],"b":1}`),
				"jb":   crdt.MustJSON(`{"a":"ü","z":null}`),
				"by":   crdt.Bytes([]byte{0, 0xff, 0x27}),
				"e":    crdt.String("happy"), "dom": crdt.Int(7),
				"ai": mustList(t, crdt.Int(1), crdt.Null(), crdt.Int(-3)),
				"at": mustList(t, crdt.String("a b"), crdt.String("with,comma"), crdt.String(`quote"d`), crdt.Null(),
					crdt.String("NULL"), crdt.String("")),
				"an":  mustList(t, crdt.String("1.10"), crdt.String("NaN")),
				"ab":  mustList(t, crdt.Bool(true), crdt.Bool(false)),
				"atz": mustList(t, crdt.Time(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)), crdt.Time(posInfinity)),
				"ad":  mustList(t, crdt.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), crdt.Time(negInfinity)),
				"au":  mustList(t, crdt.String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
				"ajb": mustList(t, crdt.MustJSON(`{"k":[true]}`), crdt.MustJSON(`[]`)),
				"aby": mustList(t, crdt.Bytes([]byte{1}), crdt.Null()),
				"af":  mustList(t, crdt.Float(1e300), crdt.Float(math.Inf(-1))),
				"ae":  mustList(t, crdt.String("sad"), crdt.String("ok")),
			}
		},
	},
	{
		sql: `(2, 0, 0, 0, 'NaN', -0.01, '-Infinity', 'NaN', '', '', '', false,
			'infinity', '-infinity', 'infinity', '00000000-0000-0000-0000-000000000000', 'null', '[]', '\x', 'sad', 1,
			'{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')`,
		want: func(t *testing.T) crdt.Row {
			return crdt.Row{
				"id": crdt.Int(2), "i2": crdt.Int(0), "i4": crdt.Int(0), "i8": crdt.Int(0),
				"num": crdt.String("NaN"), "num2": crdt.String("-0.01"),
				"f4": crdt.Float(math.Inf(-1)), "f8": crdt.Float(math.NaN()),
				"t": crdt.String(""), "vc": crdt.String(""), "ch": crdt.String("    "),
				"b":    crdt.Bool(false),
				"tstz": crdt.Time(posInfinity), "ts": crdt.Time(negInfinity), "d": crdt.Time(posInfinity),
				"u": crdt.String("00000000-0000-0000-0000-000000000000"), "j": crdt.MustJSON(`null`), "jb": crdt.MustJSON(`[]`),
				"by": crdt.Bytes(nil), "e": crdt.String("sad"), "dom": crdt.Int(1),
				"ai": mustList(t), "at": mustList(t), "an": mustList(t), "ab": mustList(t), "atz": mustList(t), "ad": mustList(t),
				"au": mustList(t), "ajb": mustList(t), "aby": mustList(t), "af": mustList(t), "ae": mustList(t),
			}
		},
	},
}

var typesColumns = []string{"id", "i2", "i4", "i8", "num", "num2", "f4", "f8", "t", "vc", "ch", "b", "tstz", "ts", "d",
	"u", "j", "jb", "by", "e", "dom", "ai", "at", "an", "ab", "atz", "ad", "au", "ajb", "aby", "af", "ae"}

// TestIntegrationTypes: every supported type is captured as the documented
// Value, by the snapshot and by the stream alike, and Apply writes it back
// exactly: the applied copy equals the original in PostgreSQL's own eyes.
func TestIntegrationTypes(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, typesDDL)
	for _, r := range typesRows[:1] {
		exec(t, app, `INSERT INTO alltypes VALUES `+r.sql)
	}
	exec(t, app, `INSERT INTO alltypes (id) VALUES (3)`) // all null
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)

	tables, err := a.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]crdt.Kind{}
	for _, c := range tables[0].Columns {
		kinds[c.Name] = c.Kind
		if c.Kind == crdt.KindList {
			kinds[c.Name+"[]"] = c.Elem
		}
	}
	for col, want := range map[string]crdt.Kind{"num": crdt.KindString, "e": crdt.KindString, "dom": crdt.KindInt,
		"d": crdt.KindTime, "u": crdt.KindString, "j": crdt.KindJSON, "ae": crdt.KindList, "ae[]": crdt.KindString, "ajb[]": crdt.KindJSON} {
		if kinds[col] != want {
			t.Errorf("column %s: kind %s, want %s", col, kinds[col], want)
		}
	}

	nullRow := crdt.Row{}
	for _, c := range typesColumns {
		nullRow[c] = crdt.Null()
	}
	nullRow["id"] = crdt.Int(3)
	check := func(what string, got crdt.Row, want crdt.Row) {
		t.Helper()
		for _, c := range typesColumns {
			if !crdt.Equal(got[c], want[c]) {
				t.Errorf("%s: column %s is %v, want %v", what, c, got[c], want[c])
			}
		}
		if len(got) != len(typesColumns) {
			t.Errorf("%s: %d columns, want %d", what, len(got), len(typesColumns))
		}
	}

	snap := &recorder{}
	cursor, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	byID := map[int64]crdt.Row{}
	for _, c := range snap.changes() {
		byID[c.Row["id"].AsInt()] = c.Row
	}
	check("snapshot row 1", byID[1], typesRows[0].want(t))
	check("snapshot row 3", byID[3], nullRow)

	rec := &recorder{a: a, ack: true}
	capture(t, a, cursor, rec.sink)
	exec(t, app, `INSERT INTO alltypes VALUES `+typesRows[1].sql)
	exec(t, app, `UPDATE alltypes SET i2 = i2 WHERE id = 1`)
	exec(t, app, `UPDATE alltypes SET i2 = NULL WHERE id = 3`)
	waitFor(t, 10*time.Second, "3 changes", func() bool { return len(rec.changes()) >= 3 })
	got := rec.changes()
	check("captured insert of row 2", got[0].Row, typesRows[1].want(t))
	check("captured update of row 1", got[1].Row, typesRows[0].want(t))
	check("captured update of row 3", got[2].Row, nullRow)

	// Apply copies under id + 100; PostgreSQL must then see equal rows.
	var writes []adapters.Write
	for _, c := range got {
		row := crdt.Row{}
		for k, v := range c.Row {
			row[k] = v
		}
		id := row["id"].AsInt() + 100
		row["id"] = crdt.Int(id)
		writes = append(writes, adapters.Write{Collection: "alltypes", Key: crdt.IntKey(id), Row: row})
	}
	if _, err := a.Apply(ctx, writes, nil); err != nil {
		t.Fatalf("apply: %+v", err)
	}
	for _, c := range typesColumns[1:] {
		cmp := "a." + c + "::text IS DISTINCT FROM b." + c + "::text"
		if c == "j" {
			cmp = "a.j::jsonb IS DISTINCT FROM b.j::jsonb" // json keeps the text as written; its value must match
		}
		var n int
		err := app.QueryRow(ctx, `SELECT count(*) FROM alltypes a JOIN alltypes b ON b.id = a.id + 100 WHERE `+cmp).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			var x, y *string
			_ = app.QueryRow(ctx, `SELECT a.`+c+`::text, b.`+c+`::text FROM alltypes a JOIN alltypes b ON b.id = a.id + 100 WHERE `+cmp+` LIMIT 1`).Scan(&x, &y)
			t.Errorf("column %s: applied copy differs: %v vs %v", c, deref(x), deref(y))
		}
	}
	var copies int
	if err := app.QueryRow(ctx, `SELECT count(*) FROM alltypes WHERE id > 100`).Scan(&copies); err != nil || copies != 3 {
		t.Fatalf("%d applied copies, %v", copies, err)
	}

	// The copies are not captured; a user's touch of one is, with every
	// value as applied.
	exec(t, app, `UPDATE alltypes SET i4 = i4 WHERE id = 101`)
	waitFor(t, 10*time.Second, "the touch", func() bool { return len(rec.changes()) >= 4 })
	if got := rec.changes(); len(got) != 4 || got[3].Key != crdt.IntKey(101) {
		t.Fatalf("captured %d changes, the last %v", len(got), got[len(got)-1].Key)
	}
	want := typesRows[0].want(t)
	want["id"] = crdt.Int(101)
	check("captured touch of an applied row", rec.changes()[3].Row, want)
	// Values a column's modifier or a domain rejects fail as bad rows; they
	// are never truncated or rounded into something else.
	for col, v := range map[string]crdt.Value{
		"vc":   crdt.String("12345678901"),
		"ch":   crdt.String("abcde"),
		"dom":  crdt.Int(0),
		"e":    crdt.String("angry"),
		"u":    crdt.String("not-a-uuid"),
		"num2": crdt.String("123456789.5"),
	} {
		w := adapters.Write{Collection: "alltypes", Key: crdt.IntKey(500), Row: crdt.Row{"id": crdt.Int(500), col: v}}
		_, err := a.Apply(ctx, []adapters.Write{w}, nil)
		if re, ok := adapters.RowErrorOf(err); !ok || re.Key != w.Key {
			t.Errorf("apply of %v into %s: %v, want a RowError", v, col, err)
		} else {
			t.Logf("%s: %v", col, err)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strings.Clone(*s)
}
