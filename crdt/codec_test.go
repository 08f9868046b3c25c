package crdt_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/vmihailenco/msgpack/v5"
)

// mp builds msgpack by hand, element by element, the way a peer running
// another version (or another implementation) might.
type mp func(*msgpack.Encoder)

func enc(parts ...mp) []byte {
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	for _, p := range parts {
		p(e)
	}
	return b.Bytes()
}

func arr(elems ...mp) mp {
	return func(e *msgpack.Encoder) {
		_ = e.EncodeArrayLen(len(elems))
		for _, el := range elems {
			el(e)
		}
	}
}

func u(n uint64) mp    { return func(e *msgpack.Encoder) { _ = e.EncodeUint(n) } }
func i64(n int64) mp   { return func(e *msgpack.Encoder) { _ = e.EncodeInt(n) } }
func str(s string) mp  { return func(e *msgpack.Encoder) { _ = e.EncodeString(s) } }
func bin(b []byte) mp  { return func(e *msgpack.Encoder) { _ = e.EncodeBytes(b) } }
func nilv() mp         { return func(e *msgpack.Encoder) { _ = e.EncodeNil() } }
func f64(f float64) mp { return func(e *msgpack.Encoder) { _ = e.EncodeFloat64(f) } }
func raw(b ...byte) mp { return func(e *msgpack.Encoder) { _, _ = e.Writer().Write(b) } }
func ext(id int8, b []byte) mp {
	return func(e *msgpack.Encoder) {
		_ = e.EncodeExtHeader(id, len(b))
		_, _ = e.Writer().Write(b)
	}
}
func mapv(k string, v mp) mp {
	return func(e *msgpack.Encoder) {
		_ = e.EncodeMapLen(1)
		_ = e.EncodeString(k)
		v(e)
	}
}

func stampMP(wall int64, logical uint64, replica uint64) mp {
	return arr(i64(wall), u(logical), u(replica))
}

func envelope(frags ...mp) []byte { return enc(arr(u(1), u(1), arr(frags...))) }

func frag(coll string, key crdt.Key, rec mp) mp { return arr(str(coll), bin([]byte(key)), rec) }

var (
	st1 = stampMP(10, 0, 1)
	st2 = stampMP(20, 0, 2)
	k1  = crdt.IntKey(1)
)

func TestDecodeErrors(t *testing.T) {
	lim := crdt.DefaultLimits()
	small := lim
	small.MaxFragments, small.MaxFields, small.MaxWrites, small.MaxElems, small.MaxEntries, small.MaxDots, small.MaxValueBytes, small.MaxListLen = 1, 1, 1, 1, 1, 1, 4, 1
	small.MaxMessageBytes, small.MaxDepth = 200, 8
	rec := func(fields ...mp) mp { return arr(nilv(), st1, arr(fields...)) }
	field := func(name string, writes mp, set mp) mp { return arr(str(name), writes, set) }
	write := func(s, v mp) mp { return arr(s, v) }
	orset := func(elems, vv, cloud mp) mp { return arr(elems, vv, cloud) }
	okField := func(v mp) []byte { return envelope(frag("c", k1, rec(field("f", arr(write(st1, v)), nilv())))) }
	for _, tc := range []struct {
		name string
		in   []byte
		lim  crdt.Limits
	}{
		{"not msgpack", []byte{0xc1}, lim},
		{"empty", nil, lim},
		{"truncated", envelope(frag("c", k1, rec()))[:10], lim},
		{"trailing bytes", append(envelope(), 0x01), lim},
		{"too big", envelope(frag("c", k1, rec(field("f", arr(write(st1, str(strings.Repeat("x", 300)))), nilv())))), small},
		{"too deep", enc(arr(arr(arr(arr(arr(arr(arr(arr(arr(u(1))))))))))), small},
		{"container longer than input", []byte{0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, lim},
		{"envelope not an array", enc(u(1)), lim},
		{"envelope too short", enc(arr(u(1))), lim},
		{"version not a uint", enc(arr(str("1"), u(1), arr())), lim},
		{"newer version", enc(arr(u(2), u(1), arr())), lim},
		{"type out of range", enc(arr(u(1), u(300), arr())), lim},
		{"not a delta", enc(arr(u(1), u(16), arr())), lim},
		{"delta without body", enc(arr(u(1), u(1))), lim},
		{"too many fragments", envelope(frag("c", k1, rec()), frag("c", k1, rec())), small},
		{"fragment too short", envelope(arr(str("c"), bin([]byte(k1)))), lim},
		{"collection not a string", envelope(arr(u(1), bin([]byte(k1)), rec())), lim},
		{"invalid collection", envelope(frag("a/b", k1, rec())), lim},
		{"key not bytes", envelope(arr(str("c"), str(string(k1)), rec())), lim},
		{"invalid key", envelope(frag("c", crdt.Key("\x01"), rec())), lim},
		{"record not an array", envelope(frag("c", k1, u(1))), lim},
		{"fields out of order", envelope(frag("c", k1, rec(field("b", arr(write(st1, u(1))), nilv()), field("a", arr(write(st1, u(1))), nilv())))), lim},
		{"duplicate field", envelope(frag("c", k1, rec(field("a", arr(write(st1, u(1))), nilv()), field("a", arr(write(st1, u(1))), nilv())))), lim},
		{"too many fields", envelope(frag("c", k1, rec(field("a", arr(write(st1, u(1))), nilv()), field("b", arr(write(st1, u(1))), nilv())))), small},
		{"field without name", envelope(frag("c", k1, rec(arr()))), lim},
		{"invalid field name", envelope(frag("c", k1, rec(field("", arr(), nilv())))), lim},
		{"writes out of order", envelope(frag("c", k1, rec(field("f", arr(write(st1, u(1)), write(st2, u(2))), nilv())))), lim},
		{"too many writes", envelope(frag("c", k1, rec(field("f", arr(write(st2, u(1)), write(st1, u(2))), nilv())))), small},
		{"write without stamp", envelope(frag("c", k1, rec(field("f", arr(write(nilv(), u(1))), nilv())))), lim},
		{"write too short", envelope(frag("c", k1, rec(field("f", arr(arr(st1)), nilv())))), lim},
		{"source not a string", envelope(frag("c", k1, rec(field("f", arr(arr(st1, u(1), u(7))), nilv())))), lim},
		{"stamp too short", envelope(frag("c", k1, arr(arr(i64(1), u(0))))), lim},
		{"stamp with zero replica", envelope(frag("c", k1, arr(stampMP(5, 0, 0)))), lim},
		{"zero stamp", envelope(frag("c", k1, arr(stampMP(0, 0, 0)))), lim},
		{"logical out of range", envelope(frag("c", k1, arr(stampMP(5, math.MaxUint32+1, 1)))), lim},
		{"wall out of range", envelope(frag("c", k1, arr(arr(u(math.MaxUint64), u(0), u(1))))), lim},
		{"wall not an int", envelope(frag("c", k1, arr(arr(str("5"), u(0), u(1))))), lim},
		{"replica negative", envelope(frag("c", k1, arr(arr(i64(5), u(0), i64(-1))))), lim},
		{"elements out of order", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(2), arr(arr(u(1), st1))), arr(u(1), arr(arr(u(2), st1)))), arr(), arr()))))), lim},
		{"element is a list", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(arr(u(1)), arr(arr(u(1), st1)))), arr(), arr()))))), lim},
		{"element too short", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(1))), arr(), arr()))))), lim},
		{"too many elements", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(1), arr(arr(u(1), st1))), arr(u(2), arr(arr(u(2), st1)))), arr(), arr()))))), small},
		{"entry with zero counter", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(1), arr(arr(u(0), st1)))), arr(), arr()))))), lim},
		{"entry too short", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(1), arr(arr(u(1))))), arr(), arr()))))), lim},
		{"entries out of order", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(arr(u(1), arr(arr(u(2), st1), arr(u(1), st1)))), arr(), arr()))))), lim},
		{"vv out of order", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(), arr(arr(u(2), u(1)), arr(u(1), u(1))), arr()))))), lim},
		{"cloud out of order", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(), arr(), arr(arr(u(1), u(5)), arr(u(1), u(3)))))))), lim},
		{"dot with zero replica", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(), arr(arr(u(0), u(1))), arr()))))), lim},
		{"dot too short", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(), arr(arr(u(1))), arr()))))), lim},
		{"too many dots", envelope(frag("c", k1, rec(field("s", arr(), orset(arr(), arr(), arr(arr(u(1), u(3)), arr(u(1), u(5)))))))), small},
		{"value is a map", okField(mapv("a", u(1))), lim},
		{"nested list value", okField(arr(arr(u(1)))), lim},
		{"list too long", okField(arr(u(1), u(2))), small},
		{"string too long", okField(str("hello")), small},
		{"bytes too long", okField(bin([]byte("hello"))), small},
		{"unknown extension", okField(ext(9, []byte{1})), lim},
		{"time of 8 bytes", okField(ext(-1, make([]byte, 8))), lim},
		{"time nanoseconds", okField(ext(-1, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})), lim},
		{"invalid json", okField(ext(1, []byte("{"))), lim},
		{"json too long", okField(ext(1, []byte(`"hello"`))), small},
		{"uint64 value out of range", okField(u(math.MaxUint64)), lim},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := crdt.DecodeDelta(tc.in, tc.lim)
			if err == nil {
				t.Fatalf("decoded %s", d)
			}
			if !crdt.IsDecodeError(err) {
				t.Fatalf("%v is not a decode error", err)
			}
			if msg := err.Error(); msg == "" || strings.HasSuffix(msg, ".") {
				t.Fatalf("message %q", msg)
			}
		})
	}
}

func TestDecodeVersion(t *testing.T) {
	_, err := crdt.DecodeDelta(enc(arr(u(2), u(1), arr(), str("from the future"))), crdt.DefaultLimits())
	if !crdt.IsDecodeError(err) || !strings.Contains(err.Error(), "wire version 2, this replica speaks 1") {
		t.Fatalf("err = %v", err)
	}
	if hints := errors.GetAllHints(err); len(hints) == 0 || !strings.Contains(hints[0], "same major version") {
		t.Fatalf("hints = %q", hints)
	}
}

// TestDecodeShort: structures from an older writer with fewer elements
// decode with zero values for the missing ones.
func TestDecodeShort(t *testing.T) {
	d, err := crdt.DecodeDelta(envelope(
		frag("c", k1, arr(st1)),
		frag("c", crdt.IntKey(2), arr(nilv(), st1, arr(arr(str("f"), arr(arr(st1, u(7))))))),
		frag("c", crdt.IntKey(3), arr(nilv(), nilv(), arr(arr(str("s"), arr(), arr(arr(arr(u(1), arr(arr(u(1), st2))))))))),
	), crdt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	s1 := crdt.Stamp{TS: crdt.Timestamp{Wall: 10}, Replica: 1}
	s2 := crdt.Stamp{TS: crdt.Timestamp{Wall: 20}, Replica: 2}
	want := []*crdt.Record{
		{Deleted: s1},
		{Written: s1, Fields: []crdt.Field{{Name: "f", Reg: []crdt.Write{{Stamp: s1, Value: crdt.Int(7)}}}}},
		// The live dot missing from the context is added; Written is raised
		// to the add.
		{Written: s2, Fields: []crdt.Field{{Name: "s", Set: &crdt.ORSetState{
			Elems: []crdt.Elem{{Value: crdt.Int(1), Entries: []crdt.Entry{{Counter: 1, Stamp: s2}}}},
			Ctx:   crdt.CausalContext{VV: []crdt.Dot{{Replica: 2, Counter: 1}}},
		}}}},
	}
	for i, w := range want {
		if got := d.Fragments[i].Record; !crdt.EqualRecords(got, w) {
			t.Errorf("fragment %d = %s, want %s", i, got, w)
		}
	}
}

// TestDecodeTombstone is a regression test: decoding used to raise Written
// to the delete stamp, so a deleted record changed state (and hash) on its
// way through the codec, and replicas that had it from different paths
// disagreed.
func TestDecodeTombstone(t *testing.T) {
	s1 := crdt.Stamp{TS: crdt.Timestamp{Wall: 10}, Replica: 1}
	s2 := crdt.Stamp{TS: crdt.Timestamp{Wall: 20}, Replica: 2}
	for _, r := range []*crdt.Record{
		{Deleted: s2, Written: s1},
		{Deleted: s2},
		{Deleted: s2, Written: s1, Fields: []crdt.Field{{Name: "s", Set: &crdt.ORSetState{Ctx: crdt.CausalContext{VV: []crdt.Dot{{Replica: 1, Counter: 3}}}}}}},
	} {
		got, err := crdt.DecodeRecord(crdt.AppendRecord(nil, r), crdt.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !crdt.EqualRecords(got, r) {
			t.Errorf("decoded %s, want %s", got, r)
		}
	}
}

func TestDecodeRecordTrailing(t *testing.T) {
	b := crdt.AppendRecord(nil, &crdt.Record{Deleted: crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 1}})
	if _, err := crdt.DecodeRecord(append(b, 0xc0), crdt.DefaultLimits()); !crdt.IsDecodeError(err) {
		t.Fatalf("err = %v", err)
	}
	if r, err := crdt.DecodeRecord(crdt.AppendRecord(nil, nil), crdt.DefaultLimits()); err != nil || !r.IsEmpty() {
		t.Fatalf("nil record: %s, %v", r, err)
	}
}

// TestDecoderAPI uses the Decoder the way another package embeds deltas in
// its own message: [type-specific header, fragments, value].
func TestDecoderAPI(t *testing.T) {
	d := goldenDelta()
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	_ = e.EncodeArrayLen(5)
	_ = e.EncodeUint(crdt.WireVersion)
	_ = e.EncodeUint(16)
	crdt.EncodeFragments(e, d)
	_ = e.EncodeString("tail")
	_ = e.EncodeBytes([]byte{1, 2})
	dec, err := crdt.NewDecoder(b.Bytes(), crdt.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	if dec.Limits() != crdt.DefaultLimits() || dec.Msgpack() == nil {
		t.Fatal("accessors")
	}
	typ, rest, err := dec.Envelope()
	if err != nil || typ != 16 || rest != 3 {
		t.Fatalf("Envelope = %d, %d, %v", typ, rest, err)
	}
	got, err := dec.Fragments()
	if err != nil {
		t.Fatal(err)
	}
	requireDeltasEqual(t, got, d)
	if s, err := dec.String(10); err != nil || s != "tail" {
		t.Fatalf("String = %q, %v", s, err)
	}
	if _, err := dec.String(10); !crdt.IsDecodeError(err) {
		t.Fatalf("String on bytes: %v", err)
	}
	if dec.Remaining() != 4 {
		t.Fatalf("Remaining = %d", dec.Remaining())
	}
	if err := dec.Skip(1); err != nil || dec.Remaining() != 0 {
		t.Fatalf("Skip: %v", err)
	}
	if err := dec.Skip(1); !crdt.IsDecodeError(err) {
		t.Fatalf("Skip past the end: %v", err)
	}
	for _, f := range []func(*crdt.Decoder) error{
		func(d *crdt.Decoder) error { _, err := d.Uint(); return err },
		func(d *crdt.Decoder) error { _, err := d.Int(); return err },
		func(d *crdt.Decoder) error { _, err := d.String(1); return err },
		func(d *crdt.Decoder) error { _, err := d.Bytes(1); return err },
		func(d *crdt.Decoder) error { _, err := d.ArrayLen(1); return err },
		func(d *crdt.Decoder) error { _, err := d.Value(); return err },
	} {
		if err := f(dec); !crdt.IsDecodeError(err) {
			t.Errorf("read past the end: %v", err)
		}
	}
	dec, _ = crdt.NewDecoder(enc(arr(i64(-1), u(300), str("x"))), crdt.DefaultLimits())
	if n, err := dec.ArrayLen(2); !crdt.IsDecodeError(err) {
		t.Fatalf("ArrayLen over the limit = %d, %v", n, err)
	}
	dec, _ = crdt.NewDecoder(enc(arr(i64(-1), u(300), str("x"))), crdt.DefaultLimits())
	_, _ = dec.ArrayLen(3)
	if _, err := dec.Uint(); !crdt.IsDecodeError(err) {
		t.Fatalf("Uint of -1: %v", err)
	}
	if v, err := dec.Int(); err != nil || v != -1 {
		t.Fatalf("Int = %d, %v", v, err)
	}
	if v, err := dec.Uint(); err != nil || v != 300 {
		t.Fatalf("Uint = %d, %v", v, err)
	}
	if _, err := dec.Bytes(5); !crdt.IsDecodeError(err) {
		t.Fatalf("Bytes of a string: %v", err)
	}
}

// TestForwardCompatible hand-builds a delta as a newer version might write
// it: every structure has extra trailing elements of every msgpack type,
// which this version must skip, decoding to the same delta.
func TestForwardCompatible(t *testing.T) {
	extras := []mp{
		nilv(), u(42), str("unknown"), mapv("k", arr(u(1), u(2))), arr(arr()), ext(7, []byte{1, 2, 3}),
		f64(1.5), bin([]byte{9}), raw(0xc3), mapv("nested", mapv("deeper", arr(str("x"), nilv()))),
	}
	next := 0
	extra := func() mp {
		x := extras[next%len(extras)]
		next++
		return x
	}
	with := func(elems ...mp) mp { return arr(append(elems, extra(), extra())...) }
	stamp := func(s crdt.Stamp) mp {
		if s.IsZero() {
			return nilv()
		}
		return with(i64(s.TS.Wall), u(uint64(s.TS.Logical)), u(uint64(s.Replica)))
	}
	dots := func(ds []crdt.Dot) mp {
		var out []mp
		for _, d := range ds {
			out = append(out, with(u(uint64(d.Replica)), u(d.Counter)))
		}
		return arr(out...)
	}
	value := valueMP
	record := func(r *crdt.Record) mp {
		var fields []mp
		for _, f := range r.Fields {
			var writes []mp
			for _, w := range f.Reg {
				src := nilv()
				if w.Source != "" {
					src = str(w.Source)
				}
				writes = append(writes, with(stamp(w.Stamp), value(w.Value), src, stamp(w.Prev)))
			}
			set := nilv()
			if f.Set != nil {
				var elems []mp
				for _, el := range f.Set.Elems {
					var entries []mp
					for _, en := range el.Entries {
						entries = append(entries, with(u(en.Counter), stamp(en.Stamp)))
					}
					elems = append(elems, with(value(el.Value), arr(entries...)))
				}
				set = with(arr(elems...), dots(f.Set.Ctx.VV), dots(f.Set.Ctx.Cloud))
			}
			ctr := nilv()
			if len(f.Ctr) > 0 {
				var entries []mp
				for _, e := range f.Ctr {
					entries = append(entries, with(stamp(e.Stamp), value(e.P), value(e.N)))
				}
				ctr = arr(entries...)
			}
			fields = append(fields, with(str(f.Name), arr(writes...), set, ctr))
		}
		return with(stamp(r.Deleted), stamp(r.Written), arr(fields...), stamp(r.Reset))
	}
	d := goldenDelta()
	var frags []mp
	for _, f := range d.Fragments {
		frags = append(frags, with(str(f.Collection), bin([]byte(f.Key)), record(f.Record)))
	}
	msg := enc(arr(u(crdt.WireVersion), u(uint64(crdt.MsgDelta)), arr(frags...), extra(), extra()))
	if bytes.Equal(msg, crdt.EncodeDelta(d)) {
		t.Fatal("the hand-built message has no extras")
	}
	got, err := crdt.DecodeDelta(msg, crdt.DefaultLimits())
	if err != nil {
		t.Fatalf("decode a newer message: %v", err)
	}
	requireDeltasEqual(t, got, d)
}

// valueMP writes a value by hand in the documented value encoding.
func valueMP(v crdt.Value) mp {
	switch v.Kind() {
	case crdt.KindNull:
		return nilv()
	case crdt.KindBool:
		return func(e *msgpack.Encoder) { _ = e.EncodeBool(v.AsBool()) }
	case crdt.KindInt:
		return i64(v.AsInt())
	case crdt.KindFloat:
		return f64(v.AsFloat())
	case crdt.KindString:
		return str(v.AsString())
	case crdt.KindBytes:
		return bin(v.AsBytes())
	case crdt.KindTime:
		t := v.AsTime()
		b := binary.BigEndian.AppendUint32(nil, uint32(t.Nanosecond()))
		return ext(-1, binary.BigEndian.AppendUint64(b, uint64(t.Unix())))
	case crdt.KindJSON:
		return ext(1, []byte(v.AsString()))
	}
	var elems []mp
	for _, e := range v.AsList() {
		elems = append(elems, valueMP(e))
	}
	return arr(elems...)
}

func requireDeltasEqual(t *testing.T, got, want *crdt.Delta) {
	t.Helper()
	if got.Len() != want.Len() {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	for i := range got.Fragments {
		g, w := got.Fragments[i], want.Fragments[i]
		if g.Collection != w.Collection || g.Key != w.Key || !crdt.EqualRecords(g.Record, w.Record) {
			t.Fatalf("fragment %d:\n got  %s %s\n want %s %s", i, crdt.MakeID(g.Collection, g.Key), g.Record, crdt.MakeID(w.Collection, w.Key), w.Record)
		}
	}
}

func TestCheckMsgpack(t *testing.T) {
	valid := [][]byte{
		enc(nilv()), enc(u(1 << 40)), enc(i64(-1 << 40)), enc(f64(1)), enc(raw(0xca, 0, 0, 0, 0)),
		enc(str(strings.Repeat("x", 300))), enc(bin(make([]byte, 70000))), enc(mapv("a", arr(u(1)))),
		enc(ext(1, []byte{1})), enc(ext(1, []byte{1, 2})), enc(ext(1, make([]byte, 4))), enc(ext(1, make([]byte, 8))),
		enc(ext(1, make([]byte, 16))), enc(ext(1, make([]byte, 3))), enc(ext(1, make([]byte, 300))), enc(ext(1, make([]byte, 70000))),
		enc(raw(0xde, 0, 1, 0xa1, 'k', 0xc0)), enc(raw(0xdf, 0, 0, 0, 1, 0xa1, 'k', 0xc0)), enc(raw(0xdc, 0, 1, 0xc0)),
		enc(raw(0xdb, 0, 0, 0, 1, 'x')), enc(raw(0xc6, 0, 0, 0, 1, 'x')), enc(raw(0xda, 0, 1, 'x')), enc(raw(0xc5, 0, 1, 'x')),
	}
	for _, b := range valid {
		if err := crdt.CheckMsgpack(b, 4); err != nil {
			t.Errorf("CheckMsgpack(%x): %v", b[:min(len(b), 8)], err)
		}
		for i := range min(len(b), 12) {
			if err := crdt.CheckMsgpack(b[:i], 4); err == nil {
				t.Errorf("CheckMsgpack accepts truncation %x", b[:i])
			}
		}
	}
	for _, b := range [][]byte{{0xc1}, {0xc0, 0xc0}, enc(arr(arr(arr(arr(arr()))))), {0x91}, {0xdd, 0xff, 0xff, 0xff, 0xff}} {
		if err := crdt.CheckMsgpack(b, 4); !crdt.IsDecodeError(err) {
			t.Errorf("CheckMsgpack(%x) = %v", b, err)
		}
	}
}
