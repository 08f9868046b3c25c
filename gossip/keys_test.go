package gossip

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// Frames are sealed under a key derived for their stream and direction,
// with the sequence number as the nonce; the ring key itself opens none.
func TestFramesUsePerStreamKeysAndCounterNonces(t *testing.T) {
	key := mustKey(t)
	var keys atomic.Pointer[keyring]
	kr, err := newKeyring([][]byte{key})
	if err != nil {
		t.Fatal(err)
	}
	keys.Store(kr)
	o := connOptions{keys: &keys, encrypt: true, label: "l", maxMsg: 1 << 16, timeout: time.Second}
	dn, an := bytes.Repeat([]byte{1}, nonceLen), bytes.Repeat([]byte{2}, nonceLen)
	var out bytes.Buffer
	w := newDataConn(recordConn{out: &out}, nil, o, dn, an, 'd', 'a')
	msg := []byte("the same message")
	for range 3 {
		if err := w.write(msg); err != nil {
			t.Fatal(err)
		}
	}
	own, err := streamAEAD(key, dn, an, "l", 'd')
	if err != nil {
		t.Fatal(err)
	}
	raw, err := streamAEAD(key, dn, an, "l", 'a') // the other direction
	if err != nil {
		t.Fatal(err)
	}
	wire := out.Bytes()
	var bodies [][]byte
	for seq := uint64(0); len(wire) > 0; seq++ {
		n := int(binary.BigEndian.Uint32(wire))
		body := wire[4 : 4+n]
		wire = wire[4+n:]
		if want := 1 + len(msg) + gcmTagLen; len(body) != want {
			t.Fatalf("frame %d: body of %d bytes, want %d (no nonce on the wire)", seq, len(body), want)
		}
		var nonce [gcmNonceLen]byte
		binary.BigEndian.PutUint64(nonce[4:], seq)
		aad := w.frameAAD(new([]byte), 'd', seq)
		pt, err := own.Open(nil, nonce[:], body[1:], aad)
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("frame %d does not open with its stream key and sequence nonce: %v", seq, err)
		}
		if _, err := raw.Open(nil, nonce[:], body[1:], aad); err == nil {
			t.Fatalf("frame %d opens with the other direction's key", seq)
		}
		for _, b := range bodies {
			if bytes.Equal(b, body) {
				t.Fatal("two frames of one message are equal")
			}
		}
		bodies = append(bodies, body)
	}

	// Another stream (other nonces) has other keys: the same frames do not
	// open there.
	r := newDataConn(byteConn{bytes.NewReader(out.Bytes())}, bufio.NewReader(bytes.NewReader(out.Bytes())),
		o, bytes.Repeat([]byte{3}, nonceLen), an, 'a', 'd')
	if _, err := r.read(); err == nil {
		t.Fatal("a frame opened on another stream")
	}
}

// memberlist never gets a ring key, only a key derived from it.
func TestMemberlistKeyIsDerived(t *testing.T) {
	key := mustKey(t)
	n, _ := intruder(t, gossiptest.NewNetwork(21), "n", func(c *Config) { c.Keys = [][]byte{key} })
	mk, err := memberlistKey(key)
	if err != nil {
		t.Fatal(err)
	}
	got := n.mlKeys.GetPrimaryKey()
	if bytes.Equal(got, key) || !bytes.Equal(got, mk) || len(got) != len(key) {
		t.Fatalf("memberlist's key is not the derived one")
	}
	if ks := n.Keys(); len(ks) != 1 || !bytes.Equal(ks[0], key) {
		t.Fatalf("Keys() does not return the ring key")
	}
}

// Version 1 preambles are refused: the versions do not interoperate.
func TestOldStreamVersionIsRefused(t *testing.T) {
	old := append([]byte("LTC1"), make([]byte, nonceLen+1)...)
	if _, _, err := readPreamble(bytes.NewReader(old), false); err == nil {
		t.Fatal("a version 1 preamble was accepted")
	}
}
