package gossip

import (
	"bufio"
	"bytes"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// fuzzKeys is a keyring of one fixed key.
func fuzzKeys() *atomic.Pointer[keyring] {
	var keys atomic.Pointer[keyring]
	kr, _ := newKeyring([][]byte{bytes.Repeat([]byte{7}, 32)})
	keys.Store(kr)
	return &keys
}

// recordedStream returns what a dialer writes on a stream: its preamble
// and the given messages as frames, with the acceptor's nonce fixed to
// zeros.
func recordedStream(encrypted bool, msgs ...[]byte) []byte {
	var out bytes.Buffer
	_ = writePreamble(recordConn{out: &out}, make([]byte, nonceLen), encrypted)
	o := connOptions{keys: fuzzKeys(), encrypt: encrypted, maxMsg: 1 << 16, timeout: time.Second}
	w := newDataConn(recordConn{out: &out}, nil, o, make([]byte, nonceLen), make([]byte, nonceLen), 'd', 'a')
	for _, m := range msgs {
		_ = w.write(m)
	}
	return out.Bytes()
}

// FuzzHandshake feeds an incoming stream (after the byte the mux reads)
// to the acceptor's side of the handshake: the preamble, the hello frame
// under its 64 KiB bound, the hello.
func FuzzHandshake(f *testing.F) {
	si := localSchemaInfo(testSchema)
	h := encodeHello(&hello{Name: "crm", Purpose: purposeDeltas, Label: "prod", Schema: si, MaxMsg: 1 << 20})
	for _, enc := range []bool{false, true} {
		s := recordedStream(enc, h.bytes())
		f.Add(s[1:], enc)
		f.Add(s[1:len(s)/2], enc)
	}
	h.free()
	f.Add([]byte("TC2\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"), false)
	lim := crdt.DefaultLimits()
	f.Fuzz(func(t *testing.T, b []byte, enc bool) {
		c := byteConn{bytes.NewReader(b)}
		o := connOptions{keys: fuzzKeys(), encrypt: enc, label: "prod", maxMsg: 1 << 20, timeout: time.Second}
		dc, err := serverHandshake(c, o, time.Now().Add(time.Second))
		if err != nil {
			return
		}
		msg, err := dc.readFrame(maxHelloBytes, time.Now().Add(time.Second))
		if err != nil {
			return
		}
		if len(msg) > maxHelloBytes {
			t.Fatalf("hello of %d bytes over the limit", len(msg))
		}
		if cap(dc.rbuf) > 2*maxHelloBytes+readChunk {
			t.Fatalf("read buffer of %d bytes for a hello", cap(dc.rbuf))
		}
		_, _ = decodeHello(msg, lim)
	})
}

// FuzzHelloAck feeds an acceptor's answer to the dialer's side of the
// handshake: the preamble, the ack frame, the ack.
func FuzzHelloAck(f *testing.F) {
	si := localSchemaInfo(testSchema)
	a := encodeHelloAck(&helloAck{Name: "erp", Status: ackBusy, Reason: "at max_syncs", Schema: si, MaxMsg: 1 << 20})
	for _, enc := range []bool{false, true} {
		s := recordedStream(enc, a.bytes())
		f.Add(s, enc)
	}
	a.free()
	lim := crdt.DefaultLimits()
	f.Fuzz(func(t *testing.T, b []byte, enc bool) {
		c := recordConn{byteConn: byteConn{bytes.NewReader(b)}, out: new(bytes.Buffer)}
		o := connOptions{keys: fuzzKeys(), encrypt: enc, label: "prod", maxMsg: 1 << 20, timeout: time.Second}
		dc, err := clientHandshake(c, o)
		if err != nil {
			return
		}
		msg, err := dc.readFrame(maxHelloBytes, time.Now().Add(time.Second))
		if err != nil {
			return
		}
		_, _ = decodeHelloAck(msg, lim)
	})
}

// FuzzDeltaStream feeds frames to the reader of a delta stream:
// keepalives, deltas, anything.
func FuzzDeltaStream(f *testing.F) {
	fr := encodeFragments(testDelta())
	for _, enc := range []bool{false, true} {
		s := recordedStream(enc, nil, deltasMessage(&fr, flagRelay), nil, deltasMessage(&fr, 0))
		_, _, _ = readPreamble(bytes.NewReader(s), false)
		f.Add(slices.Clone(s[preambleLen:]), enc)
	}
	lim := crdt.DefaultLimits()
	lim.MaxMessageBytes = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte, enc bool) {
		o := connOptions{keys: fuzzKeys(), encrypt: enc, maxMsg: 1 << 16, timeout: time.Second}
		r := newDataConn(byteConn{bytes.NewReader(b)}, bufio.NewReader(bytes.NewReader(b)), o,
			make([]byte, nonceLen), make([]byte, nonceLen), 'a', 'd')
		for range 64 {
			msg, err := r.readFrame(r.maxFrame, time.Now().Add(time.Second))
			if err != nil {
				return
			}
			if len(msg) == 0 {
				continue // keepalive
			}
			_, d, err := decodeDeltas(msg, lim)
			if err == nil && d == nil {
				t.Fatal("nil delta without an error")
			}
		}
	})
}
