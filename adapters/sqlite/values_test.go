package sqlite

import (
	"bytes"
	"cmp"
	"database/sql"
	"log/slog"
	"math"
	"path/filepath"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

func FuzzDecodeLayout(f *testing.F) {
	f.Add(`[{"name":"id","type":"INTEGER","kind":2,"key":1},{"name":"t","type":"TEXT[]","kind":8,"elem":4}]`)
	f.Add(`[{"name":"a","kind":99,"key":-3}]`)
	f.Add(`[]`)
	f.Add(`{`)
	f.Fuzz(func(t *testing.T, columns string) {
		l, err := decodeLayout(1, "t", columns)
		if err != nil {
			return
		}
		if len(l.key) == 0 {
			t.Fatalf("layout without key columns accepted: %s", columns)
		}
		again, err := decodeLayout(1, "t", encodeColumns(l.cols))
		if err != nil || encodeColumns(again.cols) != encodeColumns(l.cols) {
			t.Fatalf("layout %s does not re-encode: %v", columns, err)
		}
		// Whatever a stored layout says, building statements from it and
		// decoding values with it must not panic.
		newTable(l, nil)
		for _, c := range l.cols {
			fromNative("x", c)
			fromNative(int64(1), c)
		}
	})
}

// FuzzFromNative feeds capture's conversion with arbitrary values for every
// kind of column: it never panics, and a value it accepts has the column's
// kind.
func FuzzFromNative(f *testing.F) {
	for _, s := range []string{"", "1", "-1.5e3", "NaN", "true", "2024-01-02", "2024-01-02 03:04:05.123+02:00", `{"a":1}`, `["a",1]`, "\x00"} {
		f.Add(s, int64(len(s)), float64(len(s))/3, []byte(s))
	}
	kinds := []crdt.Kind{crdt.KindInt, crdt.KindFloat, crdt.KindString, crdt.KindBool, crdt.KindBytes, crdt.KindTime, crdt.KindJSON, crdt.KindList}
	f.Fuzz(func(t *testing.T, s string, i int64, fl float64, b []byte) {
		for _, k := range kinds {
			for _, elem := range []crdt.Kind{crdt.KindInt, crdt.KindString, crdt.KindTime, crdt.KindBytes} {
				c := &column{Name: "c", Type: "T", Kind: k, Elem: elem}
				for _, x := range []any{s, i, fl, b} {
					v, ok := fromNative(x, c)
					if ok && !v.IsNull() && v.Kind() != k {
						t.Fatalf("fromNative(%#v) for a %s column accepted a %s", x, k, v.Kind())
					}
					if !ok && v.IsNull() {
						t.Fatalf("fromNative(%#v) for a %s column lost the value", x, k)
					}
					if ok && !v.IsNull() {
						// What capture accepts, Apply can write back.
						if _, err := toNative(v, c); err != nil {
							t.Fatalf("fromNative(%#v) for a %s column gave %s, which toNative refuses: %v", x, k, v, err)
						}
					}
				}
			}
		}
	})
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		decl       string
		kind, elem crdt.Kind
		ok         bool
	}{
		{"INTEGER", crdt.KindInt, 0, true},
		{"int", crdt.KindInt, 0, true},
		{"BIGINT", crdt.KindInt, 0, true},
		{"UNSIGNED BIG INT", crdt.KindInt, 0, true},
		{"REAL", crdt.KindFloat, 0, true},
		{"DOUBLE PRECISION", crdt.KindFloat, 0, true},
		{"float", crdt.KindFloat, 0, true},
		{"TEXT", crdt.KindString, 0, true},
		{"VARCHAR(255)", crdt.KindString, 0, true},
		{"NVARCHAR(10)", crdt.KindString, 0, true},
		{"CHARACTER(20)", crdt.KindString, 0, true},
		{"CLOB", crdt.KindString, 0, true},
		{"BLOB", crdt.KindBytes, 0, true},
		{"BOOLEAN", crdt.KindBool, 0, true},
		{"bool", crdt.KindBool, 0, true},
		{"TIMESTAMP", crdt.KindTime, 0, true},
		{"DATETIME", crdt.KindTime, 0, true},
		{"date", crdt.KindTime, 0, true},
		{"JSON", crdt.KindJSON, 0, true},
		{"JSON TEXT", crdt.KindJSON, 0, true},
		{"TEXT[]", crdt.KindList, crdt.KindString, true},
		{"INTEGER[]", crdt.KindList, crdt.KindInt, true},
		{"TIMESTAMP []", crdt.KindList, crdt.KindTime, true},
		{"JSON[]", 0, 0, false},
		{"NUMERIC", crdt.KindString, 0, true},
		{"DECIMAL(10,2)", crdt.KindString, 0, true},
		{"NUMERIC[]", 0, 0, false},
		{"", 0, 0, false},
		{"UUID", 0, 0, false},
		{"TIME", 0, 0, false},
	}
	for _, tt := range tests {
		kind, elem, ok := kindOf(tt.decl)
		if kind != tt.kind || elem != tt.elem || ok != tt.ok {
			t.Errorf("kindOf(%q) = %s, %s, %v; want %s, %s, %v", tt.decl, kind, elem, ok, tt.kind, tt.elem, tt.ok)
		}
	}
}

// TestValueConversions checks that what Apply binds for a value reads back
// as the same value, for every kind, without SQLite in between (the
// conformance suite does it through SQLite).
func TestValueConversions(t *testing.T) {
	cols := []*column{
		{Name: "i", Type: "INTEGER", Kind: crdt.KindInt},
		{Name: "f", Type: "REAL", Kind: crdt.KindFloat},
		{Name: "s", Type: "TEXT", Kind: crdt.KindString},
		{Name: "b", Type: "BOOLEAN", Kind: crdt.KindBool},
		{Name: "y", Type: "BLOB", Kind: crdt.KindBytes},
		{Name: "t", Type: "TIMESTAMP", Kind: crdt.KindTime},
		{Name: "d", Type: "DATE", Kind: crdt.KindTime, date: true},
		{Name: "j", Type: "JSON", Kind: crdt.KindJSON},
		{Name: "l", Type: "TIMESTAMP[]", Kind: crdt.KindList, Elem: crdt.KindTime},
		{Name: "lf", Type: "REAL[]", Kind: crdt.KindList, Elem: crdt.KindFloat},
		{Name: "ly", Type: "BLOB[]", Kind: crdt.KindList, Elem: crdt.KindBytes},
	}
	rapid.Check(t, func(rt *rapid.T) {
		c := rapid.SampledFrom(cols).Draw(rt, "column")
		v := valueGen(c.Kind, c.Elem).Draw(rt, "value")
		x, err := toNative(v, c)
		if err != nil {
			rt.Fatalf("toNative(%s) for %s: %v", v, c.Type, err)
		}
		if b, ok := x.(bool); ok {
			rt.Fatalf("toNative returned a bool %v; SQLite stores integers", b)
		}
		got, ok := fromNative(x, c)
		if !ok || !crdt.Equal(got, v) {
			rt.Fatalf("%s value %s bound as %#v reads back as %s (ok %v)", c.Type, v, x, got, ok)
		}
	})
}

func valueGen(k, elem crdt.Kind) *rapid.Generator[crdt.Value] {
	switch k {
	case crdt.KindInt:
		return rapid.Map(rapid.Int64(), crdt.Int)
	case crdt.KindFloat:
		return rapid.Map(rapid.OneOf(rapid.Float64(), rapid.SampledFrom([]float64{math.NaN(), math.Inf(1), math.Inf(-1)})), crdt.Float)
	case crdt.KindString:
		return rapid.Map(rapid.String(), crdt.String)
	case crdt.KindBool:
		return rapid.Map(rapid.Bool(), crdt.Bool)
	case crdt.KindBytes:
		return rapid.Map(rapid.SliceOf(rapid.Byte()), crdt.Bytes)
	case crdt.KindTime:
		return rapid.Custom(func(t *rapid.T) crdt.Value {
			sec := rapid.Int64Range(-62135596800, 253402300799).Draw(t, "sec")
			nsec := rapid.Int64Range(0, 999999999).Draw(t, "nsec")
			if rapid.Bool().Draw(t, "midnight") {
				sec -= sec % 86400
				nsec = 0
				if sec < -62135596800 {
					sec += 86400
				}
			}
			return crdt.TimeUnix(sec, nsec)
		})
	case crdt.KindJSON:
		return rapid.Map(rapid.SampledFrom([]string{`{}`, `[1,"a",null]`, `"s"`, `0`, `{"b":{"c":[true]},"a":1.5}`}), crdt.MustJSON)
	case crdt.KindList:
		return rapid.Custom(func(t *rapid.T) crdt.Value {
			elems := rapid.SliceOfN(valueGen(elem, 0), 0, 5).Draw(t, "elems")
			l, err := crdt.List(elems...)
			if err != nil {
				t.Fatal(err)
			}
			return l
		})
	}
	panic("no generator for " + k.String())
}

// FuzzDecodeLogRow feeds the change log decoder with arbitrary operations
// and values, as a corrupt or hand-edited log could hold them: it never
// panics, and a row it accepts is a well-formed change of its operation.
func FuzzDecodeLogRow(f *testing.F) {
	for op := int64(-1); op <= 4; op++ {
		f.Add(op, uint8(6), "k", int64(op), 1.5, []byte{0})
	}
	f.Add(int64(opUpdate), uint8(3), "", int64(0), math.NaN(), []byte(nil))
	f.Add(int64(opDeleteRow), uint8(1), "x", int64(-1), 0.0, []byte("x"))
	l := newLayout(1, "t", []*column{
		{Name: "a", Type: "TEXT", Kind: crdt.KindString, Key: 1},
		{Name: "b", Type: "INTEGER", Kind: crdt.KindInt, Key: 2},
		{Name: "c", Type: "TIMESTAMP[]", Kind: crdt.KindList, Elem: crdt.KindTime},
	})
	a := &Adapter{log: slog.New(slog.DiscardHandler), warned: map[string]bool{}}
	f.Fuzz(func(t *testing.T, op int64, n uint8, s string, i int64, fl float64, b []byte) {
		pool := []any{s, i, nil, fl, b, s + "x", i + 1}
		natives := make([]any, int(n)%10)
		for k := range natives {
			natives[k] = pool[(k+int(i&0xff))%len(pool)]
		}
		c, ok, err := a.decode(l, op, natives)
		if err != nil || !ok {
			return
		}
		if _, err := c.Key.Values(); err != nil {
			t.Fatalf("accepted a change with an invalid key: %v", err)
		}
		// An update whose old key differs from the new one is refused (see
		// decode), so every accepted update and delete carries its old row.
		if (c.Row != nil) != (op == opUpsert || op == opUpdate) || (c.Old != nil) != (op == opUpdate || op == opDeleteRow) {
			t.Fatalf("operation %d decoded to row %v, old %v", op, c.Row, c.Old)
		}
		if c.Old != nil {
			if k, err := crdt.MakeKey(c.Old["a"], c.Old["b"]); err != nil || k != c.Key {
				t.Fatalf("operation %d decoded to key %s with an old row of key %s (%v)", op, c.Key, k, err)
			}
		}
	})
}

// TestCursorOrder: within one install, cursors compare with bytes.Compare
// as their sequence numbers do, and decode back.
func TestCursorOrder(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		install := rapid.Int64Min(0).Draw(rt, "install")
		x, y := rapid.Int64Min(0).Draw(rt, "x"), rapid.Int64Min(0).Draw(rt, "y")
		cx, cy := encodeCursor(install, x), encodeCursor(install, y)
		if got, want := bytes.Compare(cx, cy), cmp.Compare(x, y); got != want {
			rt.Fatalf("cursors of %d and %d compare %d, want %d", x, y, got, want)
		}
		a := &Adapter{cat: &catalog{installID: install}}
		if got, err := a.decodeCursor(cx); err != nil || got != x {
			rt.Fatalf("decode(encode(%d)) = %d, %v", x, got, err)
		}
	})
}

// TestDecimalColumn binds decimal values for NUMERIC and DECIMAL columns
// into a real SQLite table and reads them back as capture does: every
// decimal of up to 15 significant digits, and every integer, is the same
// number (SQLite itself keeps 15 significant digits of a non-integer).
func TestDecimalColumn(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE m(id INTEGER PRIMARY KEY, a NUMERIC, b DECIMAL(12,2))`); err != nil {
		t.Fatal(err)
	}
	cols := []*column{{Name: "a", Type: "NUMERIC", Kind: crdt.KindString, decimal: true}, {Name: "b", Type: "DECIMAL(12,2)", Kind: crdt.KindString, decimal: true}}
	id := 0
	rapid.Check(t, func(rt *rapid.T) {
		var v crdt.Value
		switch rapid.IntRange(0, 2).Draw(rt, "kind") {
		case 0:
			v = crdt.Int(rapid.Int64().Draw(rt, "int"))
		default:
			digits := rapid.StringMatching(`-?[1-9][0-9]{0,8}\.[0-9]{1,6}|-?0\.[0-9]{1,14}`).Draw(rt, "decimal")
			v = crdt.String(digits)
		}
		c := rapid.SampledFrom(cols).Draw(rt, "column")
		x, err := toNative(v, c)
		if err != nil {
			rt.Fatalf("toNative(%s): %v", v, err)
		}
		id++
		if _, err := db.Exec(`INSERT INTO m(id, `+c.Name+`) VALUES(?, ?)`, id, x); err != nil {
			rt.Fatal(err)
		}
		var native any
		if err := db.QueryRow(`SELECT `+c.Name+` FROM m WHERE id = ?`, id).Scan(&native); err != nil {
			rt.Fatal(err)
		}
		got, ok := fromNative(native, c)
		if !ok || got.Kind() != crdt.KindString || !crdt.SameNumber(got, v) {
			rt.Fatalf("%s bound as %#v is stored as %#v and reads back as %s (ok %v)", v, x, native, got, ok)
		}
	})
	// Text that is not a number stays text, reported as not fitting.
	if got, ok := fromNative("abc", cols[0]); ok || !crdt.Equal(got, crdt.String("abc")) {
		t.Errorf("fromNative(abc) = %s, %v", got, ok)
	}
	if _, err := toNative(crdt.Float(1.5), cols[0]); err == nil {
		t.Error("a float was accepted for a decimal column")
	}
}
