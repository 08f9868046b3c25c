package crdt_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// genKeyScalar draws a value of a kind that may be part of a key, from a
// domain small enough to collide and wide enough to reach the edges: zero
// bytes and 0xff in strings, -0, NaN and infinities in floats, times before
// the epoch.
func genKeyScalar() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		switch rapid.IntRange(0, 5).Draw(t, "kind") {
		case 0:
			return crdt.Bool(rapid.Bool().Draw(t, "b"))
		case 1:
			return crdt.Int(rapid.OneOf(rapid.Int64Range(-3, 3), rapid.Int64()).Draw(t, "i"))
		case 2:
			f := rapid.OneOf(
				rapid.SampledFrom([]float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1), -1, 1, 0.5, math.SmallestNonzeroFloat64, -math.MaxFloat64}),
				rapid.Float64(),
			).Draw(t, "f")
			return crdt.Float(f)
		case 3:
			return crdt.String(rapid.StringOfN(rapid.RuneFrom([]rune{'a', 'b', 0, 0xff, 1, 'é'}), 0, 4, -1).Draw(t, "s"))
		case 4:
			return crdt.Bytes(rapid.SliceOfN(rapid.SampledFrom([]byte{0, 1, 0xfe, 0xff, 'a'}), 0, 4).Draw(t, "y"))
		}
		return crdt.TimeUnix(rapid.Int64Range(-1e10, 1e10).Draw(t, "sec"), rapid.Int64Range(0, 999_999_999).Draw(t, "nsec"))
	})
}

// genValue draws a value of any kind (lists of scalars included).
func genValue() *rapid.Generator[crdt.Value] {
	return rapid.Custom(func(t *rapid.T) crdt.Value {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0:
			return crdt.Null()
		case 1:
			return crdt.MustJSON(rapid.SampledFrom([]string{`{"a":1,"b":[true,null]}`, `{"b":[true,null],"a":1}`, `[1,2]`, `"x"`, `1.0`, `{}`}).Draw(t, "json"))
		case 2:
			elems := rapid.SliceOfN(rapid.OneOf(genKeyScalar(), rapid.Just(crdt.Null())), 0, 3).Draw(t, "list")
			v, err := crdt.List(elems...)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		return genKeyScalar().Draw(t, "scalar")
	})
}

// cmpTuple compares tuples element by element with the Value order, a
// prefix first: what the key encoding must agree with.
func cmpTuple(a, b []crdt.Value) int {
	for i := range min(len(a), len(b)) {
		if c := crdt.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

func TestKeyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.SliceOfN(genKeyScalar(), 1, 3).Draw(t, "a")
		b := rapid.SliceOfN(genKeyScalar(), 1, 3).Draw(t, "b")
		if rapid.Bool().Draw(t, "shared prefix") {
			b = append(append([]crdt.Value{}, a[:len(a)-1]...), b...)
		}
		ka, err := crdt.MakeKey(a...)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := crdt.MakeKey(b...)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := sign(strings.Compare(string(ka), string(kb))), cmpTuple(a, b); got != want {
			t.Fatalf("keys of %v and %v compare %d, tuples %d", a, b, got, want)
		}
		for _, tc := range []struct {
			k     crdt.Key
			tuple []crdt.Value
		}{{ka, a}, {kb, b}} {
			back, err := tc.k.Values()
			if err != nil {
				t.Fatalf("Values(%x): %v", string(tc.k), err)
			}
			if cmpTuple(back, tc.tuple) != 0 || len(back) != len(tc.tuple) {
				t.Fatalf("Values = %v, want %v", back, tc.tuple)
			}
			for i := range back {
				if !crdt.Equal(back[i], tc.tuple[i]) {
					t.Fatalf("element %d = %v, want %v", i, back[i], tc.tuple[i])
				}
			}
			again, err := crdt.MakeKey(back...)
			if err != nil || again != tc.k {
				t.Fatalf("re-encoding gives a different key")
			}
		}
	})
}

func TestKeyErrors(t *testing.T) {
	for _, elems := range [][]crdt.Value{
		nil,
		{crdt.Null()},
		{crdt.Int(1), crdt.MustJSON(`{}`)},
		{must(crdt.List(crdt.Int(1)))},
		{crdt.String(strings.Repeat("x", crdt.MaxKeyBytes))},
	} {
		if _, err := crdt.MakeKey(elems...); err == nil || !errors.Is(err, crdt.ErrInvalidKey) {
			t.Errorf("MakeKey(%v) = %v, want ErrInvalidKey", elems, err)
		}
	}
	good := crdt.MustKey(crdt.Int(7), crdt.String("a\x00b"), crdt.Bool(true), crdt.Float(1.5), crdt.Bytes([]byte{0}), crdt.TimeUnix(1, 2))
	// A truncated key decodes only if it ends at an element boundary, and
	// then to a prefix of the tuple.
	full, err := good.Values()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(good); i++ {
		vals, err := crdt.Key(good[:i]).Values()
		if err != nil {
			continue
		}
		if len(vals) >= len(full) || cmpTuple(vals, full[:len(vals)]) != 0 || crdt.MustKey(vals...) != good[:i] {
			t.Errorf("truncation at %d decodes to %v", i, vals)
		}
	}
	for _, bad := range []string{
		"",
		"\x00",          // tag of no kind
		"\x01",          // null cannot be in a key
		"\x02\x02",      // bool byte 2
		"\x03\x00",      // truncated int
		"\x05a",         // unterminated string
		"\x05a\x00",     // unterminated escape
		"\x05a\x00\x07", // bad escape
		"\x07\x80\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff", // nanoseconds over 1e9
		"\x04\xff\xf0\x00\x00\x00\x00\x0a\xbc",                 // a non-canonical NaN
		"\x04\x7f\xff\xff\xff\xff\xff\xff\xff",                 // -0
		"\x09",                                                 // list tag
		strings.Repeat("\x02\x01", crdt.MaxKeyBytes),
	} {
		if _, err := crdt.Key(bad).Values(); err == nil {
			t.Errorf("Values(%q) accepted", bad)
		} else if !errors.Is(err, crdt.ErrInvalidKey) {
			t.Errorf("Values(%q): %v is not ErrInvalidKey", bad, err)
		}
		if s := crdt.Key(bad).String(); !strings.HasPrefix(s, "invalid-key:") {
			t.Errorf("String of a bad key = %q", s)
		}
	}
}

func TestKeyText(t *testing.T) {
	kinds := []crdt.Kind{crdt.KindString, crdt.KindInt, crdt.KindBool, crdt.KindFloat, crdt.KindBytes, crdt.KindTime}
	k := crdt.MustKey(crdt.String(`a,b\c`), crdt.Int(-4), crdt.Bool(true), crdt.Float(2.5), crdt.Bytes([]byte{0xfb, 0xff}), crdt.TimeUnix(1700000000, 5))
	text := k.String()
	if want := `a\,b\\c,-4,true,2.5,-_8=,2023-11-14T22:13:20.000000005Z`; text != want {
		t.Fatalf("String = %q, want %q", text, want)
	}
	back, err := crdt.ParseKeyText(text, kinds)
	if err != nil || back != k {
		t.Fatalf("ParseKeyText(%q) = %q, %v", text, back, err)
	}
	for _, tc := range []struct {
		text  string
		kinds []crdt.Kind
	}{
		{`a\`, []crdt.Kind{crdt.KindString}},
		{`a,b`, []crdt.Kind{crdt.KindString}},
		{`x`, []crdt.Kind{crdt.KindInt}},
		{`x`, []crdt.Kind{crdt.KindJSON}},
	} {
		if _, err := crdt.ParseKeyText(tc.text, tc.kinds); !errors.Is(err, crdt.ErrInvalidKey) {
			t.Errorf("ParseKeyText(%q) = %v, want ErrInvalidKey", tc.text, err)
		}
	}
	// Regression: escaping went rune by rune and turned invalid UTF-8 into
	// U+FFFD, so the text named another key.
	odd := crdt.MustKey(crdt.String("\xff,\xfe\\"), crdt.Bytes([]byte{0xff}))
	if back, err := crdt.ParseKeyText(odd.String(), []crdt.Kind{crdt.KindString, crdt.KindBytes}); err != nil || back != odd {
		t.Fatalf("ParseKeyText(%q) = %q, %v", odd.String(), back, err)
	}
	if crdt.StringKey("a") != crdt.MustKey(crdt.String("a")) || crdt.IntKey(3) != crdt.MustKey(crdt.Int(3)) {
		t.Fatal("StringKey/IntKey")
	}
}

func TestID(t *testing.T) {
	id := crdt.MakeID("customers", crdt.IntKey(42))
	c, k, err := id.Split()
	if err != nil || c != "customers" || k != crdt.IntKey(42) {
		t.Fatalf("Split = %q, %q, %v", c, k, err)
	}
	if got := id.String(); got != "customers/42" {
		t.Fatalf("String = %q", got)
	}
	for _, bad := range []crdt.ID{"", "nozero", "\x00key", "coll\x00"} {
		if _, _, err := bad.Split(); !errors.Is(err, crdt.ErrInvalidKey) {
			t.Errorf("Split(%q) = %v", string(bad), err)
		}
		if !strings.HasPrefix(bad.String(), "invalid-id:") {
			t.Errorf("String(%q) = %q", string(bad), bad.String())
		}
	}
	// IDs sort by collection, then key.
	if !(crdt.MakeID("a", crdt.IntKey(9)) < crdt.MakeID("b", crdt.IntKey(1)) && crdt.MakeID("a", crdt.IntKey(1)) < crdt.MakeID("a", crdt.IntKey(2)) && crdt.MakeID("a", crdt.IntKey(1)) < crdt.MakeID("ab", crdt.IntKey(0))) {
		t.Fatal("ID order")
	}
}

func TestHashAndFingerprint(t *testing.T) {
	enc := crdt.AppendRecord(nil, &crdt.Record{Written: crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 1}})
	h1 := crdt.HashRecord(crdt.MakeID("a", crdt.IntKey(1)), enc)
	h2 := crdt.HashRecord(crdt.MakeID("a", crdt.IntKey(2)), enc)
	if h1 == h2 || h1.IsZero() || h1 != crdt.HashRecord(crdt.MakeID("a", crdt.IntKey(1)), enc) {
		t.Fatal("hashes")
	}
	if !h1.Xor(h1).IsZero() || h1.Xor(h2) != h2.Xor(h1) || len(h1.String()) != 32 {
		t.Fatal("Xor/String")
	}
	var f crdt.Fingerprint
	a := f.Add(h1)
	b := f.Add(h2)
	ab := a.Combine(b)
	if ab != f.Add(h2).Add(h1) || ab.Count != 2 || a.Combine(crdt.Fingerprint{}) != a {
		t.Fatal("fingerprints")
	}
	if got := (crdt.Fingerprint{Count: 10}).String(); got != strings.Repeat("0", 32)+"/10" {
		t.Fatalf("String = %q", got)
	}
}

// TestCanonicalEncoding checks that two values have equal canonical
// encodings exactly when they are Equal, and that Compare is a total order
// consistent with Equal.
func TestCanonicalEncoding(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := genValue().Draw(t, "a"), genValue().Draw(t, "b"), genValue().Draw(t, "c")
		ea, eb := a.AppendCanonical(nil), b.AppendCanonical(nil)
		if bytes.Equal(ea, eb) != crdt.Equal(a, b) {
			t.Fatalf("%v and %v: encodings equal %v, Equal %v", a, b, bytes.Equal(ea, eb), crdt.Equal(a, b))
		}
		if (crdt.Compare(a, b) == 0) != crdt.Equal(a, b) {
			t.Fatalf("Compare(%v, %v) = %d but Equal %v", a, b, crdt.Compare(a, b), crdt.Equal(a, b))
		}
		if crdt.Compare(a, b) != -crdt.Compare(b, a) {
			t.Fatalf("Compare not antisymmetric on %v, %v", a, b)
		}
		if crdt.Compare(a, b) <= 0 && crdt.Compare(b, c) <= 0 && crdt.Compare(a, c) > 0 {
			t.Fatalf("Compare not transitive on %v, %v, %v", a, b, c)
		}
		// The encoding is prefix-free: it can be concatenated.
		if !crdt.Equal(a, b) && (bytes.HasPrefix(ea, eb) || bytes.HasPrefix(eb, ea)) {
			t.Fatalf("encodings of %v and %v: one is a prefix of the other", a, b)
		}
	})
}

func TestFloatCanonical(t *testing.T) {
	if !crdt.Equal(crdt.Float(0), crdt.Float(math.Copysign(0, -1))) {
		t.Error("-0 and 0 differ")
	}
	if !crdt.Equal(crdt.Float(math.NaN()), crdt.Float(-math.NaN())) || !crdt.Equal(crdt.Float(math.NaN()), crdt.Float(math.Float64frombits(0x7ff0000000000abc))) {
		t.Error("NaNs differ")
	}
	if crdt.Compare(crdt.Float(math.NaN()), crdt.Float(math.Inf(1))) != 1 || crdt.Compare(crdt.Float(math.Inf(-1)), crdt.Float(-math.MaxFloat64)) != -1 {
		t.Error("float order")
	}
	if crdt.Compare(crdt.Int(5), crdt.Float(1)) != -1 {
		t.Error("kinds order first")
	}
}

func TestValueAccessors(t *testing.T) {
	tm := time.Date(2024, 2, 29, 12, 0, 0, 7, time.FixedZone("x", 3600))
	j := crdt.MustJSON(` { "b" : 1, "a" : [ "<&>" ] } `)
	l := must(crdt.List(crdt.Int(1), crdt.Null()))
	for _, tc := range []struct {
		v    crdt.Value
		kind crdt.Kind
		str  string
	}{
		{crdt.Null(), crdt.KindNull, "null"},
		{crdt.Bool(true), crdt.KindBool, "true"},
		{crdt.Int(-3), crdt.KindInt, "-3"},
		{crdt.Float(0.25), crdt.KindFloat, "0.25"},
		{crdt.String("hi"), crdt.KindString, `"hi"`},
		{crdt.Bytes([]byte{0xab}), crdt.KindBytes, "0xab"},
		{crdt.Time(tm), crdt.KindTime, "2024-02-29T11:00:00.000000007Z"},
		{j, crdt.KindJSON, `{"a":["<&>"],"b":1}`},
		{l, crdt.KindList, "[1, null]"},
	} {
		if tc.v.Kind() != tc.kind || tc.v.String() != tc.str || tc.kind.String() == "" {
			t.Errorf("%v: kind %v string %q", tc.v, tc.v.Kind(), tc.v.String())
		}
		if k, err := crdt.ParseKind(tc.kind.String()); err != nil || k != tc.kind {
			t.Errorf("ParseKind(%s) = %v, %v", tc.kind, k, err)
		}
		if tc.v.IsNull() != (tc.kind == crdt.KindNull) {
			t.Errorf("IsNull(%v)", tc.v)
		}
	}
	if _, err := crdt.ParseKind("blob"); err == nil || crdt.Kind(77).String() != "kind(77)" {
		t.Error("ParseKind of an unknown kind")
	}
	if !crdt.Bool(true).AsBool() || crdt.Int(1).AsBool() || crdt.Int(-3).AsInt() != -3 || crdt.String("1").AsInt() != 0 ||
		crdt.Float(0.5).AsFloat() != 0.5 || crdt.Int(1).AsFloat() != 0 || crdt.Int(1).AsString() != "" ||
		string(crdt.Bytes([]byte("x")).AsBytes()) != "x" || crdt.Int(1).AsBytes() != nil ||
		!crdt.Time(tm).AsTime().Equal(tm) || !crdt.Int(1).AsTime().IsZero() || len(l.AsList()) != 2 || crdt.Int(1).AsList() != nil {
		t.Error("accessors")
	}
	if _, err := crdt.List(l); err == nil {
		t.Error("nested list accepted")
	}
	if _, err := crdt.SetOf(l); err == nil {
		t.Error("nested set accepted")
	}
	s := must(crdt.SetOf(crdt.Int(2), crdt.Int(1), crdt.Int(2)))
	if s.String() != "[1, 2]" {
		t.Errorf("SetOf = %v", s)
	}
}

func TestJSONCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{` {"b": 1, "a": {"d": [1, 2.50, "x"], "c": null}} `, `{"a":{"c":null,"d":[1,2.50,"x"]},"b":1}`},
		{`"<a&b>"`, `"<a&b>"`},
		{`1e2`, `1e2`},
		{"\"\u2028\"", `"\u2028"`},
	} {
		v, err := crdt.JSON([]byte(tc.in))
		if err != nil || v.AsString() != tc.want {
			t.Errorf("JSON(%q) = %q, %v; want %q", tc.in, v.AsString(), err, tc.want)
		}
	}
	// Regression: trailing data after the document used to be ignored
	// whenever it did not start a valid token.
	for _, bad := range []string{``, `{`, `{} }`, `1 x`, `[1] ]`, `1 2`, `{"a":1}{"b":2}`, `nul`} {
		if v, err := crdt.JSON([]byte(bad)); err == nil {
			t.Errorf("JSON(%q) = %v, want an error", bad, v)
		}
	}
}

func TestMarshalJSONRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genValue().Draw(t, "v")
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v, err)
		}
		if !json.Valid(raw) {
			t.Fatalf("marshal %v gave invalid json %s", v, raw)
		}
		elem := crdt.KindNull
		if v.Kind() == crdt.KindList {
			// Lists are checked element by element below.
			for _, e := range v.AsList() {
				r, _ := json.Marshal(e)
				back, err := crdt.FromJSON(r, e.Kind(), crdt.KindNull)
				if err != nil || !crdt.Equal(back, e) {
					t.Fatalf("element %v: %s -> %v, %v", e, r, back, err)
				}
			}
			return
		}
		back, err := crdt.FromJSON(raw, v.Kind(), elem)
		if err != nil || !crdt.Equal(back, v) {
			t.Fatalf("%v -> %s -> %v, %v", v, raw, back, err)
		}
	})
}

// TestInferJSONRoundTrip: a value inferred from JSON renders to JSON that
// infers the same value. Regression: integral floats rendered as "1" came
// back as ints, so a client that read a record and wrote it back turned a
// float field into an int field, a change that Diff would send everywhere.
func TestInferJSONRoundTrip(t *testing.T) {
	for _, in := range []string{`1.0`, `-0.0`, `1e300`, `1.5`, `12`, `"s"`, `true`, `[1, 2.0, "x", [3], {"a": 1}]`, `{"z": 1.0, "a": [1]}`, `null`} {
		v, err := crdt.FromJSON(json.RawMessage(in), crdt.KindNull, crdt.KindNull)
		if err != nil {
			t.Fatalf("FromJSON(%s): %v", in, err)
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := crdt.FromJSON(out, crdt.KindNull, crdt.KindNull)
		if err != nil || !crdt.Equal(back, v) {
			t.Errorf("%s -> %v -> %s -> %v (%v)", in, v, out, back, err)
		}
	}
	if got, _ := json.Marshal(crdt.Float(1)); string(got) != "1.0" {
		t.Errorf("Float(1) marshals to %s", got)
	}
}

func TestFromJSONErrors(t *testing.T) {
	for _, tc := range []struct {
		raw        string
		want, elem crdt.Kind
	}{
		{``, crdt.KindNull, crdt.KindNull},
		{`"x"`, crdt.KindBool, 0},
		{`1.5`, crdt.KindInt, 0},
		{`"x"`, crdt.KindFloat, 0},
		{`1`, crdt.KindString, 0},
		{`"%%"`, crdt.KindBytes, 0},
		{`1`, crdt.KindBytes, 0},
		{`"yesterday"`, crdt.KindTime, 0},
		{`1`, crdt.KindTime, 0},
		{`{`, crdt.KindJSON, 0},
		{`{}`, crdt.KindList, 0},
		{`[[1]]`, crdt.KindList, crdt.KindList},
		{`["x"]`, crdt.KindList, crdt.KindInt},
		{`[[1]]`, crdt.KindList, crdt.KindNull},
		{`1e999`, crdt.KindNull, 0},
		{`[1e999]`, crdt.KindNull, 0},
		{`-`, crdt.KindNull, 0},
		{`1`, crdt.Kind(99), 0},
		// Regression: times that an offset pushes out of years 0-9999 in
		// UTC render as text that does not parse back.
		{`"0000-01-01T00:00:00+01:00"`, crdt.KindTime, 0},
		{`"9999-12-31T23:59:59-01:00"`, crdt.KindTime, 0},
	} {
		if v, err := crdt.FromJSON(json.RawMessage(tc.raw), tc.want, tc.elem); err == nil {
			t.Errorf("FromJSON(%s, %s, %s) = %v, want an error", tc.raw, tc.want, tc.elem, v)
		}
	}
	for _, tc := range []struct {
		raw        string
		want, elem crdt.Kind
		out        crdt.Value
	}{
		{`null`, crdt.KindInt, 0, crdt.Null()},
		{`"NaN"`, crdt.KindFloat, 0, crdt.Float(math.NaN())},
		{`"+Inf"`, crdt.KindFloat, 0, crdt.Float(math.Inf(1))},
		{`"AAE="`, crdt.KindBytes, 0, crdt.Bytes([]byte{0, 1})},
		{`[1, 2]`, crdt.KindList, crdt.KindFloat, must(crdt.List(crdt.Float(1), crdt.Float(2)))},
		{`"2024-01-02T03:04:05+01:00"`, crdt.KindTime, 0, crdt.TimeUnix(1704161045, 0)},
		{`9223372036854775808`, crdt.KindNull, 0, crdt.Float(9223372036854775808)},
	} {
		v, err := crdt.FromJSON(json.RawMessage(tc.raw), tc.want, tc.elem)
		if err != nil || !crdt.Equal(v, tc.out) {
			t.Errorf("FromJSON(%s, %s, %s) = %v, %v; want %v", tc.raw, tc.want, tc.elem, v, err, tc.out)
		}
	}
	for _, v := range []crdt.Value{crdt.Float(math.NaN()), crdt.Float(math.Inf(-1))} {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := crdt.FromJSON(raw, crdt.KindFloat, 0)
		if err != nil || !crdt.Equal(back, v) {
			t.Errorf("%v -> %s -> %v", v, raw, back)
		}
	}
}

func TestParseText(t *testing.T) {
	for _, v := range []crdt.Value{crdt.String("a b"), crdt.Int(-9), crdt.Float(0.1), crdt.Bool(false), crdt.TimeUnix(0, 1), crdt.Bytes([]byte{0xff, 0xfe})} {
		back, err := crdt.ParseText(v.Text(), v.Kind())
		if err != nil || !crdt.Equal(back, v) {
			t.Errorf("ParseText(%q, %s) = %v, %v", v.Text(), v.Kind(), back, err)
		}
	}
	if v, err := crdt.ParseText("//8=", crdt.KindBytes); err != nil || !crdt.Equal(v, crdt.Bytes([]byte{0xff, 0xff})) {
		t.Errorf("standard base64: %v %v", v, err)
	}
	for _, tc := range []struct {
		s string
		k crdt.Kind
	}{{"x", crdt.KindInt}, {"x", crdt.KindFloat}, {"x", crdt.KindBool}, {"x", crdt.KindTime}, {"!", crdt.KindBytes}, {"x", crdt.KindJSON},
		{"9999-12-31T23:59:59-01:00", crdt.KindTime}} {
		if _, err := crdt.ParseText(tc.s, tc.k); err == nil {
			t.Errorf("ParseText(%q, %s) accepted", tc.s, tc.k)
		}
	}
}
