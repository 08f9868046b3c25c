package postgres

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

func typeOf(t *testing.T, name string) pgType {
	t.Helper()
	for _, typ := range builtinTypes {
		if typ.Name == name {
			return typ
		}
	}
	t.Fatalf("no builtin type %q", name)
	return pgType{}
}

func mustList(t *testing.T, vs ...crdt.Value) crdt.Value {
	t.Helper()
	l, err := crdt.List(vs...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDecodeText checks the decoder on what PostgreSQL prints, and that the
// encoder prints it back (modulo forms PostgreSQL reads the same).
func TestDecodeText(t *testing.T) {
	ts := func(y int, mo time.Month, d, h, mi, s, ns int) crdt.Value {
		return crdt.Time(time.Date(y, mo, d, h, mi, s, ns, time.UTC))
	}
	tests := []struct {
		typ  string
		in   string
		want crdt.Value
		// out is what encodeText prints when it differs from in.
		out string
	}{
		{"smallint", "-32768", crdt.Int(-32768), ""},
		{"bigint", "9223372036854775807", crdt.Int(math.MaxInt64), ""},
		{"bigint", "-9223372036854775808", crdt.Int(math.MinInt64), ""},
		{"numeric", "1.50", crdt.String("1.50"), ""},
		{"numeric", "-0.000000000000000000001", crdt.String("-0.000000000000000000001"), ""},
		{"numeric", "123456789012345678901234567890", crdt.String("123456789012345678901234567890"), ""},
		{"numeric", "NaN", crdt.String("NaN"), ""},
		{"numeric", "-Infinity", crdt.String("-Infinity"), ""},
		{"real", "1.1", crdt.Float(float64(float32(1.1))), "1.100000023841858"},
		{"double precision", "0.1", crdt.Float(0.1), ""},
		{"double precision", "5e-324", crdt.Float(math.SmallestNonzeroFloat64), ""},
		{"double precision", "1.7976931348623157e+308", crdt.Float(math.MaxFloat64), ""},
		{"double precision", "Infinity", crdt.Float(math.Inf(1)), ""},
		{"double precision", "-Infinity", crdt.Float(math.Inf(-1)), ""},
		{"double precision", "NaN", crdt.Float(math.NaN()), ""},
		{"double precision", "-0", crdt.Float(0), "0"},
		{"text", "", crdt.String(""), ""},
		{"text", "héllo ✓", crdt.String("héllo ✓"), ""},
		{"character", "ab  ", crdt.String("ab  "), ""},
		{"boolean", "t", crdt.Bool(true), ""},
		{"boolean", "f", crdt.Bool(false), ""},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", crdt.String("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ""},
		{"timestamp with time zone", "2024-02-29 23:59:59.123456+00", ts(2024, 2, 29, 23, 59, 59, 123456000), "2024-02-29 23:59:59.123456000+00"},
		{"timestamp with time zone", "2024-06-30 12:00:00+02", ts(2024, 6, 30, 10, 0, 0, 0), "2024-06-30 10:00:00+00"},
		{"timestamp with time zone", "1900-01-01 00:00:00-05:17:32", ts(1900, 1, 1, 5, 17, 32, 0), "1900-01-01 05:17:32+00"},
		{"timestamp with time zone", "0044-03-15 12:00:00+00 BC", ts(-43, 3, 15, 12, 0, 0, 0), ""},
		{"timestamp with time zone", "12345-01-01 00:00:00+00", ts(12345, 1, 1, 0, 0, 0, 0), ""},
		{"timestamp with time zone", "infinity", crdt.Time(posInfinity), ""},
		{"timestamp with time zone", "-infinity", crdt.Time(negInfinity), ""},
		{"timestamp without time zone", "1969-12-31 23:59:59.999999", ts(1969, 12, 31, 23, 59, 59, 999999000), "1969-12-31 23:59:59.999999000"},
		{"date", "2024-02-29", ts(2024, 2, 29, 0, 0, 0, 0), ""},
		{"date", "0001-01-01 BC", ts(0, 1, 1, 0, 0, 0, 0), ""},
		{"date", "5874897-12-31", ts(5874897, 12, 31, 0, 0, 0, 0), ""},
		{"date", "infinity", crdt.Time(posInfinity), ""},
		{"jsonb", `{"b": 1, "a": [1, 2.5, null]}`, crdt.MustJSON(`{"a":[1,2.5,null],"b":1}`), `{"a":[1,2.5,null],"b":1}`},
		{"json", `12345678901234567890`, crdt.MustJSON(`12345678901234567890`), ""},
		{"bytea", `\x`, crdt.Bytes(nil), ""},
		{"bytea", `\x00ff27`, crdt.Bytes([]byte{0, 0xff, 0x27}), ""},
		{"text[]", `{}`, mustList(t), ""},
		{"text[]", `{a,"b c","with,comma","quote\"d","back\\slash",NULL,"NULL",""}`,
			mustList(t, crdt.String("a"), crdt.String("b c"), crdt.String("with,comma"), crdt.String(`quote"d`),
				crdt.String(`back\slash`), crdt.Null(), crdt.String("NULL"), crdt.String("")),
			`{"a","b c","with,comma","quote\"d","back\\slash",NULL,"NULL",""}`},
		{"integer[]", `[0:1]={1,2}`, mustList(t, crdt.Int(1), crdt.Int(2)), `{"1","2"}`},
		{"bytea[]", `{"\\x01",NULL}`, mustList(t, crdt.Bytes([]byte{1}), crdt.Null()), ""},
		{"jsonb[]", `{"{\"a\": 1}","[]"}`, mustList(t, crdt.MustJSON(`{"a":1}`), crdt.MustJSON(`[]`)), `{"{\"a\":1}","[]"}`},
		{"timestamp with time zone[]", `{"2024-01-01 00:00:00+00"}`, mustList(t, ts(2024, 1, 1, 0, 0, 0, 0)), ""},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.in, func(t *testing.T) {
			typ := typeOf(t, tc.typ)
			got, err := decodeText(typ, tc.in)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !crdt.Equal(got, tc.want) {
				t.Fatalf("decode: got %v, want %v", got, tc.want)
			}
			out, ok, err := encodeText(typ, got)
			if err != nil || !ok {
				t.Fatalf("encode: %q, %v, %v", out, ok, err)
			}
			want := tc.out
			if want == "" {
				want = tc.in
			}
			if out != want {
				t.Fatalf("encode: got %q, want %q", out, want)
			}
			back, err := decodeText(typ, out)
			if err != nil || !crdt.Equal(back, got) {
				t.Fatalf("decode(encode): got %v, %v; want %v", back, err, got)
			}
		})
	}
}

func TestDecodeTextRejects(t *testing.T) {
	tests := []struct{ typ, in string }{
		{"bigint", "9223372036854775808"},
		{"bigint", "1.5"},
		{"numeric", "1e5"},
		{"numeric", "-"},
		{"numeric", "1."},
		{"boolean", "yes"},
		{"uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"},
		{"timestamp with time zone", "2024-02-30 00:00:00+00"},
		{"timestamp with time zone", "2024-01-01 00:00:00"},
		{"timestamp without time zone", "2024-01-01 00:00:00+00"},
		{"timestamp with time zone", "2024-01-01 24:00:00+00"},
		{"date", "2023-02-29"},
		{"date", "0000-01-01"},
		{"jsonb", `{"a":`},
		{"bytea", `00ff`},
		{"bytea", `\x0`},
		{"text[]", `{{a,b},{c,d}}`},
		{"text[]", `{"unterminated}`},
		{"text[]", `{a,,b}`},
		{"text[]", `a,b`},
		{"integer[]", `{1,x}`},
		{"text", "\xff"},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.in, func(t *testing.T) {
			if v, err := decodeText(typeOf(t, tc.typ), tc.in); err == nil {
				t.Fatalf("decode %q as %s: got %v, want an error", tc.in, tc.typ, v)
			}
		})
	}
}

func TestEncodeTextKinds(t *testing.T) {
	tests := []struct {
		typ string
		v   crdt.Value
		ok  bool
	}{
		{"bigint", crdt.Int(1), true},
		{"bigint", crdt.Float(1), false},
		{"bigint", crdt.String("1"), false},
		{"double precision", crdt.Int(-7), true},
		{"double precision", crdt.Bool(true), false},
		{"numeric", crdt.String("1.25"), true},
		{"numeric", crdt.Int(3), true},
		{"numeric", crdt.Float(0.5), true},
		{"text", crdt.String("x"), true},
		{"text", crdt.String("nul\x00"), false},
		{"text", crdt.Bytes([]byte("x")), false},
		{"boolean", crdt.String("t"), false},
		{"date", crdt.Time(time.Unix(0, 0)), true},
		{"jsonb", crdt.String(`{"a":1}`), true},
		{"jsonb", crdt.Int(1), false},
		{"bytea", crdt.String("x"), false},
		{"text[]", crdt.String("x"), false},
		{"text[]", mustList(t, crdt.String("x"), crdt.Int(1)), false},
		{"bigint[]", mustList(t, crdt.Int(1), crdt.Null()), true},
	}
	for _, tc := range tests {
		t.Run(tc.typ+" "+tc.v.String(), func(t *testing.T) {
			_, _, err := encodeText(typeOf(t, tc.typ), tc.v)
			if (err == nil) != tc.ok {
				t.Fatalf("encode %v into %s: err %v, want ok %v", tc.v, tc.typ, err, tc.ok)
			}
		})
	}
	if _, ok, err := encodeText(typeOf(t, "bigint"), crdt.Null()); ok || err != nil {
		t.Fatalf("null: ok %v err %v, want not ok and no error", ok, err)
	}
}

// genValue draws a Value that a column of scalar sc holds exactly, in the
// form capture produces.
func genValue(sc scalar) *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		switch sc {
		case scalarInt:
			return crdt.Int(rapid.Int64().Draw(t, "int"))
		case scalarNumeric:
			s := rapid.StringMatching(`-?[1-9][0-9]{0,30}(\.[0-9]{1,20})?|0\.[0-9]{1,10}|NaN|Infinity|-Infinity`).Draw(t, "numeric")
			return crdt.String(s)
		case scalarFloat4:
			return crdt.Float(float64(rapid.Float32().Draw(t, "float32")))
		case scalarFloat8:
			return crdt.Float(rapid.Float64().Draw(t, "float64"))
		case scalarText:
			return crdt.String(strings.ReplaceAll(rapid.String().Draw(t, "text"), "\x00", ""))
		case scalarUUID:
			return crdt.String(rapid.StringMatching(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`).Draw(t, "uuid"))
		case scalarBool:
			return crdt.Bool(rapid.Bool().Draw(t, "bool"))
		case scalarTimestamptz, scalarTimestamp, scalarDate:
			// PostgreSQL's range: 4713 BC to 294276 AD for timestamps.
			sec := rapid.Int64Range(-210866803200, 9224318015999).Draw(t, "sec")
			ns := int64(0)
			if sc != scalarDate {
				ns = rapid.Int64Range(0, 999999).Draw(t, "usec") * 1000
			} else {
				sec -= sec % 86400
				if sec < -210866803200 {
					sec += 86400
				}
			}
			return crdt.Time(time.Unix(sec, ns))
		case scalarJSON, scalarJSONB:
			doc := rapid.SampledFrom([]string{`{}`, `[]`, `null`, `"s"`, `{"a":[1,2.5,{"b":null}]}`, `-17`, `12345678901234567890`}).Draw(t, "json")
			return crdt.MustJSON(doc)
		case scalarBytea:
			return crdt.Bytes(rapid.SliceOf(rapid.Byte()).Draw(t, "bytes"))
		}
		t.Fatalf("scalar %d", sc)
		return crdt.Value{}
	})
}

var allScalars = []scalar{scalarInt, scalarNumeric, scalarFloat4, scalarFloat8, scalarText, scalarBool,
	scalarTimestamptz, scalarTimestamp, scalarDate, scalarUUID, scalarJSON, scalarJSONB, scalarBytea}

// TestTextRoundTrip: decode(encode(v)) == v for every value a column holds,
// scalars and arrays (with nulls) alike.
func TestTextRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sc := rapid.SampledFrom(allScalars).Draw(t, "scalar")
		typ := pgType{Scalar: sc, Name: scalarName(sc), Array: rapid.Bool().Draw(t, "array")}
		var v crdt.Value
		if typ.Array {
			elems := rapid.SliceOfN(rapid.OneOf(genValue(sc), rapid.Just(crdt.Null())), 0, 6).Draw(t, "elems")
			var err error
			if v, err = crdt.List(elems...); err != nil {
				t.Fatal(err)
			}
		} else {
			v = genValue(sc).Draw(t, "value")
		}
		s, ok, err := encodeText(typ, v)
		if err != nil || !ok {
			t.Fatalf("encode %v: %q %v %v", v, s, ok, err)
		}
		back, err := decodeText(typ, s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		if !crdt.Equal(back, v) {
			t.Fatalf("round trip of %v through %q gave %v", v, s, back)
		}
	})
}

// FuzzDecodeText: the decoder never panics, and whatever it accepts encodes
// to a text it decodes to the same value.
func FuzzDecodeText(f *testing.F) {
	for _, s := range []string{"1", "-1.5", "NaN", "t", "2024-01-01 00:00:00+00", "2024-01-01", `\x00ff`,
		`{"a":1}`, `{a,"b",NULL}`, `[1:2]={1,2}`, "infinity", "0044-03-15 12:00:00+00 BC", `{"\\x01"}`} {
		for i := range allScalars {
			f.Add(uint8(i), false, s)
			f.Add(uint8(i), true, s)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, array bool, s string) {
		typ := pgType{Scalar: allScalars[int(which)%len(allScalars)], Array: array, Name: "fuzz"}
		v, err := decodeText(typ, s)
		if err != nil {
			return
		}
		out, ok, err := encodeText(typ, v)
		if err != nil || !ok {
			// Text holding a NUL decodes but cannot be written back; so can
			// a timestamp beyond the infinity sentinels, which encodes as
			// infinity.
			if strings.Contains(s, "\x00") {
				return
			}
			t.Fatalf("encode %v (from %q): %q %v %v", v, s, out, ok, err)
		}
		back, err := decodeText(typ, out)
		if err != nil {
			t.Fatalf("decode %q (encoded from %q): %v", out, s, err)
		}
		if !crdt.Equal(back, v) && !beyondInfinity(v) {
			t.Fatalf("%q decoded to %v, encoded to %q, decoded to %v", s, v, out, back)
		}
	})
}

// beyondInfinity reports whether v holds a time the encoder clamps to
// infinity (years the decoder accepts but PostgreSQL never prints).
func beyondInfinity(v crdt.Value) bool {
	check := func(e crdt.Value) bool {
		return e.Kind() == crdt.KindTime && (!e.AsTime().Before(posInfinity) || !e.AsTime().After(negInfinity))
	}
	if check(v) {
		return true
	}
	for _, e := range v.AsList() {
		if check(e) {
			return true
		}
	}
	return false
}

func TestCursor(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := lsn(rapid.Uint64().Draw(t, "a"))
		b := lsn(rapid.Uint64().Draw(t, "b"))
		ca, cb := encodeCursor(a), encodeCursor(b)
		if got, err := decodeCursor(ca); err != nil || got != a {
			t.Fatalf("decode(encode(%d)) = %d, %v", a, got, err)
		}
		if (string(ca) < string(cb)) != (a < b) {
			t.Fatalf("cursor order differs from lsn order for %d, %d", a, b)
		}
	})
	for _, bad := range [][]byte{nil, {1}, make([]byte, 9)} {
		if _, err := decodeCursor(bad); !errors.Is(err, ErrCursor) || !errors.Is(err, adapters.ErrCursor) {
			t.Errorf("decodeCursor(%x): %v, want ErrCursor and adapters.ErrCursor", bad, err)
		}
	}
}
