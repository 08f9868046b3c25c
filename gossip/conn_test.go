package gossip

import (
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// Lengths of 2^31 and more turn negative as an int on 32-bit platforms;
// they must be refused as too large before any conversion.
func TestFrameLengthsOver2to31AreRefused(t *testing.T) {
	for _, l := range []uint32{1 << 31, 1<<31 + 1, 3 << 30, math.MaxUint32} {
		var h [4]byte
		binary.BigEndian.PutUint32(h[:], l)
		if n, err := frameLen(h, DefaultMaxMessageBytes+cryptOverhead); !errors.Is(err, ErrTooLarge) {
			t.Errorf("frameLen(%d) = %d, %v; want ErrTooLarge", l, n, err)
		}
		r := frameConn(append(h[:], make([]byte, 64)...), false, DefaultMaxMessageBytes)
		if b, err := r.read(); !errors.Is(err, ErrTooLarge) {
			t.Errorf("read of a frame of %d bytes = %d bytes, %v; want ErrTooLarge", l, len(b), err)
		}
	}
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], 100)
	if n, err := frameLen(h, 100); n != 100 || err != nil {
		t.Errorf("frameLen(100) under a limit of 100 = %d, %v", n, err)
	}
	if _, err := frameLen(h, 99); !errors.Is(err, ErrTooLarge) {
		t.Errorf("frameLen(100) under a limit of 99: %v, want ErrTooLarge", err)
	}
}

// A peer's max message size (in its hello or ack) that an int cannot
// hold on a 32-bit platform is read as the largest that one can, never
// wrapped to a small or negative size.
func TestPeerMaxMessageSizeNeverWraps(t *testing.T) {
	for _, tc := range []struct{ sent, want uint64 }{
		{0, 0}, {1 << 20, 1 << 20}, {math.MaxInt32, math.MaxInt32},
		{1 << 31, math.MaxInt32}, {1<<32 + 1, math.MaxInt32}, {1 << 40, math.MaxInt32}, {math.MaxUint64, math.MaxInt32},
	} {
		b := binary.BigEndian.AppendUint64([]byte{0xcf}, tc.sent) // msgpack uint64
		d, err := crdt.NewDecoder(b, crdt.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		got, err := optMaxMsg(d, true)
		if err != nil || uint64(got) != tc.want {
			t.Errorf("max message size %d read as %d, %v; want %d", tc.sent, got, err, tc.want)
		}
	}
}

// A frame that announces the largest allowed length and then stalls costs
// the reader a buffer of what arrived plus one chunk, not the announced
// length.
func TestReadBufferGrowsAsBytesArrive(t *testing.T) {
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], DefaultMaxMessageBytes)
	for _, sent := range []int{0, 10, readChunk + 1, 5 * readChunk} {
		r := frameConn(append(h[:], make([]byte, sent)...), false, DefaultMaxMessageBytes)
		if _, err := r.read(); err == nil {
			t.Fatalf("a truncated frame was read")
		}
		if limit := 2*max(sent, readChunk) + readChunk; cap(r.rbuf) > limit {
			t.Errorf("after %d of %d announced bytes the buffer holds %d, over %d", sent, DefaultMaxMessageBytes, cap(r.rbuf), limit)
		}
	}
}

// Streams beyond the per-host cap are closed at once, those that stall in
// their handshake are cut at HandshakeTimeout, and each is counted.
func TestHandshakesAreCappedAndTimedOut(t *testing.T) {
	victim, _ := intruder(t, nil, "victim", func(c *Config) {
		c.HandshakeTimeout = time.Second
		c.MaxHandshakesPerHost = 8
	})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 20 {
		c, err := net.Dial("tcp", victim.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(streamMagic[:2]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "12 streams over the cap and 8 timed out", func() bool {
		s := victim.Stats()
		return s.HandshakesOverCap == 12 && s.HandshakeTimeouts == 8
	})
	if s := victim.Stats(); s.RejectedPeers != 20 {
		t.Errorf("RejectedPeers = %d, want 20", s.RejectedPeers)
	}
	// A handshake is counted before its slot is given back: wait for the
	// slots, which a leak would hold for good.
	waitFor(t, 10*time.Second, "every gate slot given back", func() bool { return victim.mux.gate.inUse() == 0 })
}

// A schema too large for the hello peers accept is refused at start, not
// by every peer at every stream.
func TestSchemaOverTheHelloBoundIsRefused(t *testing.T) {
	var cols []*crdt.Collection
	for i := range 2000 {
		cols = append(cols, crdt.MustCollection(fmt.Sprintf("collection_with_a_long_name_%04d", i), []string{"id"}, nil))
	}
	cfg := DefaultConfig()
	cfg.Name, cfg.BindAddr, cfg.Schema = "big", "127.0.0.1:0", crdt.MustSchema(cols...)
	n, err := New(cfg, gossiptest.NewMemReplica(cfg.Schema, 1, "big"))
	if err == nil {
		_ = n.Close()
		t.Fatal("a node started with a schema over the hello bound")
	}
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "collections") {
		t.Fatalf("New = %v, want a config error naming collections", err)
	}
}
