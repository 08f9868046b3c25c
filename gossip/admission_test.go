package gossip

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// A peer holding the key cannot open streams under a name that is not a
// member, nor under a member's name from another host; neither hello
// leaves schema state behind.
func TestForgedHellosAreRefused(t *testing.T) {
	key := mustKey(t)
	net := gossiptest.NewNetwork(11)
	c := newCluster(t, 2, net, func(_ int, cfg *Config) { cfg.Keys = [][]byte{key} })
	c.joinAll()
	target := c.nodes[0]
	x, _ := intruder(t, net, "x", func(cfg *Config) { cfg.Keys = [][]byte{key} })
	other := localSchemaInfo(crdt.MustSchema(crdt.MustCollection("people", []string{"id"},
		map[string]crdt.Policy{"name": {Kind: crdt.Max}})))
	for _, tc := range []struct{ name, as string }{
		{"unknown name", "ghost"},
		{"member name from another host", c.nodes[1].name},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := target.node.Stats()
			if err := injectAs(t, x, target.node, target.name, tc.as, other); err == nil {
				t.Fatal("the target accepted the hello")
			}
			waitFor(t, 5*time.Second, "the refusal to be counted", func() bool {
				return target.node.Stats().HandshakesRefused > before.HandshakesRefused
			})
			if r := target.rep.Get("people", crdt.IntKey(666)); r != nil {
				t.Fatalf("injected record merged: %+v", r)
			}
			if ex := target.node.excluded(tc.as); len(ex) > 0 {
				t.Fatalf("the forged hello's schema was recorded: %s excluded %v", tc.as, ex)
			}
			target.node.mu.Lock()
			ps := target.node.schemas["ghost"]
			target.node.mu.Unlock()
			if ps != nil {
				t.Fatal("schema of a non-member kept")
			}
		})
	}
}

// What a handshake said about a peer's schema goes when the peer leaves.
func TestSchemaOfALeftPeerIsDropped(t *testing.T) {
	c := newCluster(t, 2, gossiptest.NewNetwork(12), nil)
	c.joinAll()
	c.put(1, 1, crdt.Row{"name": crdt.String("a")})
	c.waitConverged(10 * time.Second)
	n0 := c.nodes[0].node
	has := func() bool {
		n0.mu.Lock()
		defer n0.mu.Unlock()
		return n0.schemas[c.nodes[1].name] != nil
	}
	waitFor(t, 5*time.Second, "n00 to know n01's schema", has)
	if err := c.nodes[1].node.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.kill(1)
	waitFor(t, 10*time.Second, "n01's schema to be dropped", func() bool { return !has() })
}

// A member whose advertised data address is on another host is not
// dialed: peers do not take it as a member.
func TestDataAddressOffTheMembersHostIsIgnored(t *testing.T) {
	net := gossiptest.NewNetwork(13)
	c := newCluster(t, 1, net, nil)
	target := c.nodes[0].node
	x, _ := intruder(t, net, "x", func(*Config) {})
	x.metaMu.Lock()
	x.meta.Data = "10.200.0.1:7946"
	x.metaMu.Unlock()
	if err := x.ml.UpdateNode(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Join(context.Background(), []string{target.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the target to refuse x", func() bool {
		return x.Stats().Members == 1 && target.Stats().RejectedPeers > 0
	})
	if m := target.Members(); len(m) != 0 {
		t.Fatalf("target lists %+v as members", m)
	}
}

// One incoming session per peer; incoming sessions leave one of MaxSyncs
// to the node's own anti-entropy; a new delta stream from a peer replaces
// its old one.
func TestPerPeerStreamCaps(t *testing.T) {
	c := newCluster(t, 3, gossiptest.NewNetwork(14), func(_ int, cfg *Config) {
		cfg.SyncInterval = 0
		cfg.MaxSyncs = 2
	})
	c.joinAll()
	ctx := context.Background()
	n0, n1, n2 := c.nodes[0], c.nodes[1].node, c.nodes[2].node
	first, err := n1.dial(ctx, n1.peerByName(n0.name), purposeSync)
	if err != nil {
		t.Fatal(err)
	}
	defer first.close()
	if dc, err := n1.dial(ctx, n1.peerByName(n0.name), purposeSync); !errors.Is(err, ErrBusy) {
		if dc != nil {
			dc.close()
		}
		t.Fatalf("a second session from one peer: %v, want ErrBusy", err)
	}
	if dc, err := n2.dial(ctx, n2.peerByName(n0.name), purposeBootstrap); !errors.Is(err, ErrBusy) {
		if dc != nil {
			dc.close()
		}
		t.Fatalf("an incoming session beyond MaxSyncs-1: %v, want ErrBusy", err)
	}
	if _, err := n0.node.SyncWith(ctx, c.nodes[2].name); err != nil {
		t.Fatalf("outgoing anti-entropy while a peer holds a session: %v", err)
	}

	old, err := n1.dial(ctx, n1.peerByName(n0.name), purposeDeltas)
	if err != nil {
		t.Fatal(err)
	}
	defer old.close()
	repl, err := n1.dial(ctx, n1.peerByName(n0.name), purposeDeltas)
	if err != nil {
		t.Fatal(err)
	}
	defer repl.close()
	if _, err := old.read(); err == nil {
		t.Fatal("the replaced delta stream is still open")
	}
}

// A client failing streams in a loop produces one warning per key and
// interval, not one per stream.
func TestFailedStreamWarningsAreRateLimited(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var w warnLimiter
	for range 100 {
		w.warn(log, "malformed:10.0.0.9", "data stream rejected")
	}
	w.warn(log, "malformed:10.0.0.8", "data stream rejected")
	if got := strings.Count(buf.String(), "data stream rejected"); got != 2 {
		t.Fatalf("%d warnings logged, want 2:\n%s", got, buf.String())
	}
}

// An idle delta stream lives on keepalives; a silent one is closed after
// IdleTimeout, in the clear too.
func TestIdleDeltaStreams(t *testing.T) {
	c := newCluster(t, 2, gossiptest.NewNetwork(15), func(_ int, cfg *Config) {
		cfg.IdleTimeout = 300 * time.Millisecond
		cfg.SyncInterval = 0
	})
	c.joinAll()
	n0, n1 := c.nodes[0].node, c.nodes[1].node
	deltaStream := func() *dataConn {
		n0.mu.Lock()
		defer n0.mu.Unlock()
		for dc, in := range n0.inbound {
			if in.from == c.nodes[1].name && in.purpose == purposeDeltas {
				return dc
			}
		}
		return nil
	}
	c.put(1, 1, crdt.Row{"name": crdt.String("a")})
	c.waitConverged(10 * time.Second)
	first := deltaStream()
	if first == nil {
		t.Fatal("no delta stream from n01")
	}
	out := n1.Stats().BytesOut
	waitFor(t, 10*time.Second, "keepalives over two idle timeouts", func() bool {
		return n1.Stats().BytesOut >= out+8*4
	})
	if got := deltaStream(); got != first {
		t.Fatal("the idle delta stream was closed despite its keepalives")
	}

	silent, err := n1.dial(context.Background(), n1.peerByName(c.nodes[0].name), purposeDeltas)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.close()
	waitFor(t, 10*time.Second, "the silent delta stream to be closed", func() bool {
		n0.mu.Lock()
		defer n0.mu.Unlock()
		for _, in := range n0.inbound {
			if in.from == c.nodes[1].name {
				return false
			}
		}
		return true
	})
}
