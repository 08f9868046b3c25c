package crdt_test

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// Seeds live in testdata/fuzz/FuzzXxx as well; these keep the targets
// meaningful without them.

func addWireSeeds(f *testing.F) {
	for _, g := range goldenCases() {
		f.Add(g.encode())
	}
	f.Add(enc(arr(u(1), u(1), arr(), str("newer"))))
	f.Add([]byte{0x93, 0x01, 0x01, 0x91, 0x93})
}

// checkDecodedDelta checks what must hold of any delta a peer can send: it
// normalizes, the normal form is idempotent, and it survives the codec.
func checkDecodedDelta(t *testing.T, d *crdt.Delta) {
	again, err := crdt.DecodeDelta(crdt.EncodeDelta(d), crdt.DefaultLimits())
	if err != nil {
		t.Fatalf("re-encoded delta does not decode: %v\n%s", err, d)
	}
	requireDeltasEqual(t, again, d)
	s := goldenSchema()
	n, err := crdt.JoinDeltas(s, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	nn, err := crdt.JoinDeltas(s, n, n)
	if err != nil {
		t.Fatal(err)
	}
	requireDeltasEqual(t, nn, n)
	back, err := crdt.DecodeDelta(crdt.EncodeDelta(n), crdt.DefaultLimits())
	if err != nil {
		t.Fatalf("normalized delta does not decode: %v", err)
	}
	requireDeltasEqual(t, back, n)
	for _, f := range n.Fragments {
		c, _ := s.Collection(f.Collection)
		_ = f.Record.View(c)
		_ = f.Record.MaxStamp()
		_ = f.Record.String()
	}
}

func FuzzDecodeDelta(f *testing.F) {
	addWireSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := crdt.DecodeDelta(b, crdt.DefaultLimits())
		if err != nil {
			if !crdt.IsDecodeError(err) {
				t.Fatalf("error without identity: %v", err)
			}
			return
		}
		checkDecodedDelta(t, d)
	})
}

func FuzzDecodeRecord(f *testing.F) {
	addWireSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := crdt.DecodeRecord(b, crdt.DefaultLimits())
		if err != nil {
			if !crdt.IsDecodeError(err) {
				t.Fatalf("error without identity: %v", err)
			}
			return
		}
		again, err := crdt.DecodeRecord(crdt.AppendRecord(nil, r), crdt.DefaultLimits())
		if err != nil || !crdt.EqualRecords(again, r) {
			t.Fatalf("round trip of %s: %s, %v", r, again, err)
		}
		d := &crdt.Delta{}
		d.Add("customers", crdt.IntKey(1), r)
		d.Add("notes", crdt.IntKey(1), r)
		checkDecodedDelta(t, d)
	})
}

func FuzzKeyValues(f *testing.F) {
	for _, k := range []crdt.Key{
		crdt.MustKey(crdt.Int(-1), crdt.String("a\x00b"), crdt.Bool(false)),
		crdt.MustKey(crdt.Float(-0.5), crdt.Bytes([]byte{0, 0xff}), crdt.TimeUnix(-5, 7)),
		crdt.StringKey(""),
	} {
		f.Add([]byte(k))
	}
	f.Add([]byte{0x05, 'a', 0x00})
	f.Add([]byte(crdt.MustKey(crdt.String("\xff,\\"), crdt.Float(math.Inf(1)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := crdt.Key(b)
		vals, err := k.Values()
		_ = k.String()
		if err != nil {
			return
		}
		again, err := crdt.MakeKey(vals...)
		if err != nil || again != k {
			t.Fatalf("Values(%x) = %v, which encodes to %x, %v", b, vals, string(again), err)
		}
		// The text form parses back to the key, for times that RFC 3339
		// can express.
		kinds := make([]crdt.Kind, len(vals))
		textual := true
		for i, v := range vals {
			kinds[i] = v.Kind()
			if y := v.AsTime().Year(); v.Kind() == crdt.KindTime && (y < 0 || y > 9999) {
				textual = false
			}
		}
		if textual {
			if back, err := crdt.ParseKeyText(k.String(), kinds); err != nil || back != k {
				t.Fatalf("ParseKeyText(%q) = %x, %v; want %x", k.String(), string(back), err, b)
			}
		}
		// Keys order like their tuples.
		other := crdt.MustKey(crdt.Int(3), crdt.String("m"))
		ov, _ := other.Values()
		if got, want := sign(bytes.Compare(b, []byte(other))), cmpTuple(vals, ov); got != want {
			t.Fatalf("%v vs %v: bytes %d, tuples %d", vals, ov, got, want)
		}
	})
}

func FuzzCheckMsgpack(f *testing.F) {
	addWireSeeds(f)
	f.Add(enc(mapv("a", arr(ext(3, []byte{1}), f64(1), raw(0xca, 0, 0, 0, 0)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := crdt.CheckMsgpack(b, 16)
		if err != nil {
			if !crdt.IsDecodeError(err) {
				t.Fatalf("error without identity: %v", err)
			}
			return
		}
		// What CheckMsgpack accepts, the msgpack library can skip, and it
		// is exactly one value.
		r := bytes.NewReader(b)
		if err := msgpack.NewDecoder(r).Skip(); err != nil || r.Len() != 0 {
			t.Fatalf("CheckMsgpack accepts %x, but Skip: %v (%d left)", b, err, r.Len())
		}
	})
}

func FuzzJSONValue(f *testing.F) {
	for _, s := range []string{`null`, `1`, `1.0`, `-0`, `"x"`, `true`, `[1, "a", [2], {"b": null}]`, `{"b": 1, "a": [1.50]}`,
		`"2024-01-02T03:04:05.5+01:00"`, `"0000-01-01T00:30:00+01:00"`, `"AAE="`, `"NaN"`, `1e400`, `{} }`} {
		for k := range byte(9) {
			f.Add([]byte(s), k, byte(0))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, want, elem byte) {
		wk, ek := crdt.Kind(want%9), crdt.Kind(elem%9)
		v, err := crdt.FromJSON(raw, wk, ek)
		if err != nil {
			return
		}
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %v: %v", v, err)
		}
		back, err := crdt.FromJSON(out, wk, ek)
		if err != nil || !crdt.Equal(back, v) {
			t.Fatalf("FromJSON(%q, %s, %s) = %v -> %s -> %v, %v", raw, wk, ek, v, out, back, err)
		}
		if v.Kind() == crdt.KindJSON {
			if again, err := crdt.JSON([]byte(v.AsString())); err != nil || !crdt.Equal(again, v) {
				t.Fatalf("canonical JSON %s is not canonical: %v, %v", v.AsString(), again, err)
			}
		}
	})
}

// FuzzJoinLaws turns fuzzer bytes into concurrent histories (through rapid)
// and checks the join laws on the states they reach.
func FuzzJoinLaws(f *testing.F) {
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0x5a, 0x01, 0xf0, 0x33}, 64))
	f.Add(bytes.Repeat([]byte{0xff, 0x00, 0x80}, 200))
	colls := collectionCases()
	f.Fuzz(rapid.MakeFuzz(func(t *rapid.T) {
		cc := colls[rapid.IntRange(0, len(colls)-1).Draw(t, "collection")]
		w := newWorld(t, cc.coll, 1)
		w.run(t, rapid.IntRange(1, 60).Draw(t, "steps"))
		k := w.keys[0]
		checkLaws(t, cc.coll, w.drawState(t, k, "a"), w.drawState(t, k, "b"), w.drawState(t, k, "c"))
	}))
}
