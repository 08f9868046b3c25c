package gossip

import (
	"bufio"
	"bytes"
	"net"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

func genID() *rapid.Generator[crdt.ID] {
	return rapid.Custom(func(t *rapid.T) crdt.ID {
		coll := rapid.SampledFrom([]string{"people", "orders", "o"}).Draw(t, "coll")
		return crdt.MakeID(coll, crdt.IntKey(rapid.Int64Range(-5, 1000).Draw(t, "key")))
	})
}

func genHash() *rapid.Generator[shortHash] {
	return rapid.Custom(func(t *rapid.T) shortHash {
		var h shortHash
		copy(h[:], rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "h"))
		return h
	})
}

// genEntries draws contiguous or scattered ranges in ID order.
func genEntries(t *rapid.T) []rangeEntry {
	ids := rapid.SliceOfNDistinct(genID(), 0, 40, func(id crdt.ID) crdt.ID { return id }).Draw(t, "ids")
	slices.Sort(ids)
	var out []rangeEntry
	for i := 0; i+1 < len(ids); i += 2 {
		e := rangeEntry{Lo: ids[i], Hi: ids[i+1]}
		if i == 0 && rapid.Bool().Draw(t, "from start") {
			e.Lo = ""
		}
		if i+3 >= len(ids) && rapid.Bool().Draw(t, "unbounded") {
			e.Hi = ""
		}
		if rapid.Bool().Draw(t, "items") {
			e.Kind = kindItems
			e.Items = []item{{ID: e.Lo, Hash: genHash().Draw(t, "h")}}
			if e.Lo == "" {
				e.Items = nil
			}
		} else {
			e.Kind = kindFP
			e.FP = shortFP{Hash: genHash().Draw(t, "fp"), Count: rapid.Uint64().Draw(t, "count")}
		}
		out = append(out, e)
	}
	return out
}

func TestRangeCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		entries := genEntries(t)
		var w rangeWriter
		for i := range entries {
			w.add(&entries[i])
		}
		got, err := decodeRanges(w.b, maxSyncEntries, maxSyncItems)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if len(got) == 0 && len(entries) == 0 {
			return
		}
		if !reflect.DeepEqual(got, entries) {
			t.Fatalf("got %+v, want %+v", got, entries)
		}
	})
}

func TestWantsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 50).Draw(t, "n")
		var ws []want
		for range n {
			ws = append(ws, want{ID: genID().Draw(t, "id"), Hint: rapid.Int64Min(0).Draw(t, "hint")})
		}
		got, err := decodeWants(appendWants(nil, ws), maxWants)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(ws) || (len(ws) > 0 && !reflect.DeepEqual(got, ws)) {
			t.Fatalf("got %+v, want %+v", got, ws)
		}
	})
}

// deltasMessage builds a deltas message as writeBatch does.
func deltasMessage(f *fragments, flags uint8) []byte {
	return append(appendFragmentsHeader(appendDeltasHeader(nil, flags), f.n), f.body...)
}

func testDelta() *crdt.Delta {
	d := &crdt.Delta{}
	s := crdt.Stamp{TS: crdt.Timestamp{Wall: 1e18, Logical: 2}, Replica: 7}
	d.Add("people", crdt.IntKey(1), &crdt.Record{Written: s, Fields: []crdt.Field{{Name: "name", Reg: []crdt.Write{{Stamp: s, Value: crdt.String("ada")}}}}})
	d.Add("people", crdt.IntKey(2), &crdt.Record{Deleted: s, Written: s})
	return d
}

func TestMessagesRoundTrip(t *testing.T) {
	lim := crdt.DefaultLimits()
	si := localSchemaInfo(testSchema)
	h := &hello{Name: "crm", Purpose: purposeSync, Label: "prod", Version: "v1", Schema: si}
	m := encodeHello(h)
	gh, err := decodeHello(m.bytes(), lim)
	m.free()
	if err != nil || !reflect.DeepEqual(gh, h) {
		t.Fatalf("hello: %+v, %v", gh, err)
	}
	a := &helloAck{Name: "erp", Status: ackBusy, Reason: "full", Schema: si}
	m = encodeHelloAck(a)
	ga, err := decodeHelloAck(m.bytes(), lim)
	m.free()
	if err != nil || !reflect.DeepEqual(ga, a) {
		t.Fatalf("ack: %+v, %v", ga, err)
	}
	d := testDelta()
	f := encodeFragments(d)
	var each fragments
	for _, e := range encodeEach(d) {
		each.add(e)
	}
	if each.n != f.n || !bytes.Equal(each.body, f.body) {
		t.Fatalf("fragments encoded one by one differ from the delta's encoding")
	}
	flags, gd, err := decodeDeltas(deltasMessage(&f, flagRelay), lim)
	if err != nil || flags != flagRelay || gd.Len() != 2 || !crdt.EqualRecords(gd.Fragments[0].Record, d.Fragments[0].Record) {
		t.Fatalf("deltas: %d %+v %v", flags, gd, err)
	}
	var w rangeWriter
	w.add(&rangeEntry{Lo: "", Hi: "people\x00", Kind: kindFP, FP: shortFP{Count: 3}})
	ws := []want{{ID: "people\x00a", Hint: 5}}
	m = encodeSync(flagDone, w.b, appendWants(nil, ws), &f)
	st, err := decodeSync(m.bytes(), lim)
	m.free()
	if err != nil || st.Flags != flagDone || len(st.Entries) != 1 || !reflect.DeepEqual(st.Wants, ws) || st.Records.Len() != 2 {
		t.Fatalf("sync: %+v, %v", st, err)
	}
	m = encodeSync(0, nil, nil, nil)
	st, err = decodeSync(m.bytes(), lim)
	m.free()
	if err != nil || !st.empty() {
		t.Fatalf("empty sync: %+v, %v", st, err)
	}
	m = encodeBootstrapReq("people\x00x")
	from, err := decodeBootstrapReq(m.bytes(), lim)
	m.free()
	if err != nil || from != "people\x00x" {
		t.Fatalf("bootstrap req: %q %v", from, err)
	}
	m = encodeBootstrapChunk("people\x00y", true, &f)
	next, done, cd, err := decodeBootstrapChunk(m.bytes(), lim)
	m.free()
	if err != nil || next != "people\x00y" || !done || cd.Len() != 2 {
		t.Fatalf("bootstrap chunk: %q %v %+v %v", next, done, cd, err)
	}
	nm := nodeMeta{API: "127.0.0.1:7070", Data: "10.0.0.1:7946", Version: "v1", Schema: si.FP, Replica: "5df32e853dc5272d"}
	gm, err := decodeMeta(encodeMeta(&nm))
	if err != nil || gm != nm {
		t.Fatalf("meta: %+v %v", gm, err)
	}
	// A node that does not advertise its replica sends six elements.
	old := msgPool.Get().(*msgBuf)
	old.buf.Reset()
	_ = old.enc.EncodeArrayLen(6)
	_ = old.enc.EncodeUint(metaVersion)
	for _, s := range []string{nm.API, nm.Data, nm.Version, nm.Schema} {
		_ = old.enc.EncodeString(s)
	}
	_ = old.enc.EncodeUint(0)
	gm, err = decodeMeta(old.buf.Bytes())
	old.free()
	if want := (nodeMeta{API: nm.API, Data: nm.Data, Version: nm.Version, Schema: nm.Schema}); err != nil || gm != want {
		t.Fatalf("six-element meta: %+v %v, want %+v", gm, err, want)
	}
	if len(encodeMeta(&nodeMeta{API: string(make([]byte, maxMetaField)), Data: "255.255.255.255:65535",
		Version: string(make([]byte, maxMetaField)), Schema: si.FP, Replica: string(make([]byte, maxMetaField))})) > 512 {
		t.Fatal("the largest meta Validate allows is over memberlist's 512 bytes")
	}
}

// A newer peer may append fields; an older decoder must skip them.
func TestMessagesSkipUnknownTrailingFields(t *testing.T) {
	lim := crdt.DefaultLimits()
	m := newMsg(msgBootstrapReq, 3)
	_ = m.enc.EncodeBytes([]byte("x"))
	_ = m.enc.EncodeString("future")
	_ = m.enc.EncodeArrayLen(1)
	_ = m.enc.EncodeUint(9)
	from, err := decodeBootstrapReq(m.bytes(), lim)
	m.free()
	if err != nil || from != "x" {
		t.Fatalf("got %q, %v", from, err)
	}
}

func TestSchemaMismatchRules(t *testing.T) {
	lww := crdt.MustSchema(crdt.MustCollection("people", []string{"id"}, map[string]crdt.Policy{"name": {Kind: crdt.LWW}}))
	strict, err := crdt.NewSchema(true, crdt.MustCollection("orders", []string{"id"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		a, b *crdt.Schema
		want []string
	}{
		{"same", testSchema, testSchema, nil},
		{"other rules", testSchema, otherSchema, []string{"people"}},
		{"listed with only lww vs default", lww, crdt.MustSchema(), nil},
		{"strict vs open", testSchema, strict, []string{"people"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := localSchemaInfo(tc.a), localSchemaInfo(tc.b)
			if got := mismatch(&a, &b); !slices.Equal(got, tc.want) {
				t.Fatalf("mismatch = %v, want %v", got, tc.want)
			}
		})
	}
}

// byteConn is a net.Conn that reads from a buffer and discards writes.
type byteConn struct {
	*bytes.Reader
}

func (byteConn) Write(b []byte) (int, error)      { return len(b), nil }
func (byteConn) Close() error                     { return nil }
func (byteConn) LocalAddr() net.Addr              { return nil }
func (byteConn) RemoteAddr() net.Addr             { return nil }
func (byteConn) SetDeadline(time.Time) error      { return nil }
func (byteConn) SetReadDeadline(time.Time) error  { return nil }
func (byteConn) SetWriteDeadline(time.Time) error { return nil }

func frameConn(data []byte, encrypted bool, maxMsg int) *dataConn {
	var keys atomic.Pointer[keyring]
	kr, _ := newKeyring([][]byte{make([]byte, 32)})
	keys.Store(kr)
	c := byteConn{bytes.NewReader(data)}
	o := connOptions{keys: &keys, encrypt: encrypted, label: "l", maxMsg: maxMsg, timeout: time.Second}
	return newDataConn(c, bufio.NewReader(c), o, make([]byte, 16), make([]byte, 16), 'a', 'd')
}

// recordConn captures what a dataConn writes.
type recordConn struct {
	byteConn
	out *bytes.Buffer
}

func (r recordConn) Write(b []byte) (int, error) { return r.out.Write(b) }

func TestFramesRoundTripAndAuthenticate(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		var out bytes.Buffer
		var keys atomic.Pointer[keyring]
		kr, _ := newKeyring([][]byte{make([]byte, 32)})
		keys.Store(kr)
		o := connOptions{keys: &keys, encrypt: encrypted, label: "l", maxMsg: 1 << 16, timeout: time.Second}
		w := newDataConn(recordConn{out: &out}, nil, o, make([]byte, 16), make([]byte, 16), 'd', 'a')
		msgs := [][]byte{[]byte("one"), {}, bytes.Repeat([]byte("x"), 1000)}
		for _, m := range msgs {
			if err := w.write(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.write(make([]byte, 1<<16+1)); err == nil {
			t.Fatal("wrote a message over the limit")
		}
		wire := out.Bytes()
		r := frameConn(slices.Clone(wire), encrypted, 1<<16)
		for i, m := range msgs {
			got, err := r.read()
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("encrypted=%v frame %d: %q, %v", encrypted, i, got, err)
			}
		}
		if !encrypted {
			continue
		}
		// A flipped bit, a replayed frame, a frame from the other direction:
		// all fail to authenticate.
		tampered := slices.Clone(wire)
		tampered[len(tampered)-1] ^= 1
		r = frameConn(tampered, true, 1<<16)
		for range 2 {
			if _, err := r.read(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := r.read(); err == nil {
			t.Fatal("tampered frame accepted")
		}
		first := wire[:4+int(wire[3])]
		r = frameConn(append(slices.Clone(first), first...), true, 1<<16)
		if _, err := r.read(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.read(); err == nil {
			t.Fatal("replayed frame accepted")
		}
		wrongDir := newDataConn(byteConn{bytes.NewReader(first)}, bufio.NewReader(bytes.NewReader(first)), o, make([]byte, 16), make([]byte, 16), 'd', 'a')
		if _, err := wrongDir.read(); err == nil {
			t.Fatal("frame accepted in the wrong direction")
		}
	}
}

// Seeds for the fuzzers: one valid message of every type.
func messageSeeds() [][]byte {
	si := localSchemaInfo(testSchema)
	f := encodeFragments(testDelta())
	var w rangeWriter
	w.add(&rangeEntry{Lo: "", Hi: "people\x00", Kind: kindFP, FP: shortFP{Count: 3}})
	w.add(&rangeEntry{Lo: "people\x00", Hi: "", Kind: kindItems, Items: []item{{ID: "people\x00a"}}})
	var out [][]byte
	for _, m := range []*msgBuf{
		encodeHello(&hello{Name: "crm", Purpose: purposeDeltas, Label: "prod", Schema: si}),
		encodeHelloAck(&helloAck{Name: "erp", Status: ackOK, Schema: si}),
		encodeSync(0, w.b, appendWants(nil, []want{{ID: "people\x00a", Hint: 1}}), &f),
		encodeBootstrapReq("people\x00"),
		encodeBootstrapChunk("people\x00z", false, &f),
	} {
		out = append(out, slices.Clone(m.bytes()))
		m.free()
	}
	out = append(out, deltasMessage(&f, flagRelay))
	out = append(out, encodeMeta(&nodeMeta{API: "a", Data: "b", Version: "c", Schema: "d"}))
	return out
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s)
		f.Add(s[:len(s)/2])
	}
	lim := crdt.DefaultLimits()
	lim.MaxMessageBytes = 1 << 20
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeHello(b, lim)
		_, _ = decodeHelloAck(b, lim)
		_, _, _ = decodeDeltas(b, lim)
		_, _ = decodeSync(b, lim)
		_, _ = decodeBootstrapReq(b, lim)
		_, _, _, _ = decodeBootstrapChunk(b, lim)
		_, _ = decodeMeta(b)
	})
}

func FuzzDecodeRanges(f *testing.F) {
	var w rangeWriter
	w.add(&rangeEntry{Lo: "", Hi: "people\x00\x03", Kind: kindFP, FP: shortFP{Count: 300}})
	w.add(&rangeEntry{Lo: "people\x00\x03", Hi: "", Kind: kindItems, Items: []item{{ID: "people\x00\x04"}, {ID: "people\x00\x05"}}})
	f.Add(w.b)
	f.Add(appendWants(nil, []want{{ID: "a\x00b", Hint: 3}, {ID: "a\x00c"}}))
	f.Add([]byte{0x81, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if es, err := decodeRanges(b, 1<<10, 1<<12); err == nil {
			// What decodes re-encodes to something that decodes the same.
			var w rangeWriter
			for i := range es {
				w.add(&es[i])
			}
			again, err := decodeRanges(w.b, 1<<10, 1<<12)
			if err != nil || len(again) != len(es) {
				t.Fatalf("re-encoding: %d entries, %v; want %d", len(again), err, len(es))
			}
		}
		_, _ = decodeWants(b, 1<<10)
	})
}

func FuzzReadFrame(f *testing.F) {
	var out bytes.Buffer
	var keys atomic.Pointer[keyring]
	kr, _ := newKeyring([][]byte{make([]byte, 32)})
	keys.Store(kr)
	for _, enc := range []bool{false, true} {
		out.Reset()
		o := connOptions{keys: &keys, encrypt: enc, label: "l", maxMsg: 1 << 16, timeout: time.Second}
		w := newDataConn(recordConn{out: &out}, nil, o, make([]byte, 16), make([]byte, 16), 'd', 'a')
		for _, m := range messageSeeds() {
			_ = w.write(m)
		}
		f.Add(slices.Clone(out.Bytes()), enc)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, b []byte, enc bool) {
		r := frameConn(b, enc, 1<<16)
		lim := crdt.DefaultLimits()
		for range 64 {
			msg, err := r.read()
			if err != nil {
				return
			}
			if len(msg) > 1<<16+cryptOverhead {
				t.Fatalf("frame of %d bytes over the limit", len(msg))
			}
			_, _ = decodeSync(msg, lim)
		}
	})
}

func FuzzPreamble(f *testing.F) {
	var b bytes.Buffer
	_ = writePreamble(recordConn{out: &b}, make([]byte, 16), true)
	f.Add(b.Bytes())
	f.Add([]byte("LTC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		nonce, _, err := readPreamble(bytes.NewReader(b), false)
		if err == nil && len(nonce) != nonceLen {
			t.Fatalf("nonce of %d bytes", len(nonce))
		}
	})
}
