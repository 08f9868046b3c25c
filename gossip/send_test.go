package gossip

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

func TestOversizedDeltasAreSplitNotStuck(t *testing.T) {
	c := newCluster(t, 2, gossiptest.NewNetwork(12), func(_ int, cfg *Config) {
		cfg.MaxMessageBytes = 256 << 10
		cfg.BatchBytes = 16 << 10
		cfg.SyncInterval = 0 // deltas alone
	})
	c.joinAll()
	a, b := c.nodes[0], c.nodes[1]
	// One delta of ~600 KiB: over the message limit, split into batches.
	big := &crdt.Delta{}
	for k := range 600 {
		d, err := a.rep.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String(strings.Repeat("x", 1000) + fmt.Sprint(k))})
		if err != nil {
			t.Fatal(err)
		}
		big.Fragments = append(big.Fragments, d.Fragments...)
	}
	a.node.Broadcast(big)
	// One record larger than any message: dropped and counted.
	huge, err := a.rep.Put("people", crdt.IntKey(100000), crdt.Row{"name": crdt.String(strings.Repeat("y", 300<<10))})
	if err != nil {
		t.Fatal(err)
	}
	a.node.Broadcast(huge)
	// Later deltas still flow.
	c.put(0, 100001, crdt.Row{"name": crdt.String("after")})
	waitFor(t, 10*time.Second, "all but the huge record", func() bool {
		return b.rep.Len() == 601 && b.rep.Get("people", crdt.IntKey(100001)) != nil
	})
	s := a.node.Stats()
	if s.FragmentsDropped != 1 || s.DeltasSent < 3 {
		t.Fatalf("stats %+v: want the huge record dropped and the big delta split", s)
	}
}

// blockingReplica holds every Merge until released.
type blockingReplica struct {
	*gossiptest.MemReplica
	once    sync.Once
	release chan struct{}
}

func (r *blockingReplica) Merge(d *crdt.Delta) (*crdt.Delta, error) {
	<-r.release
	return r.MemReplica.Merge(d)
}

func (r *blockingReplica) open() { r.once.Do(func() { close(r.release) }) }

func TestFullQueueDropsAndAntiEntropyRepairs(t *testing.T) {
	net := gossiptest.NewNetwork(13)
	logger := testLogger(t, 100)
	start := func(name string, rep Replica) *Node {
		cfg := DefaultConfig()
		cfg.Name = name
		cfg.Schema = testSchema
		cfg.Logger = logger
		cfg.Transport = net.NewTransport(name)
		cfg.QueueLen = 4
		cfg.BatchBytes = 4 << 10
		cfg.IOTimeout = time.Second
		cfg.SyncInterval = 100 * time.Millisecond
		cfg.MemberlistConfig = fastMemberlist
		n, err := New(cfg, rep)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close() })
		return n
	}
	ra := gossiptest.NewMemReplica(testSchema, 1, "a")
	rb := &blockingReplica{MemReplica: gossiptest.NewMemReplica(testSchema, 2, "b"), release: make(chan struct{})}
	na := start("a", ra)
	nb := start("b", rb)
	t.Cleanup(rb.open)
	if _, err := nb.Join(t.Context(), []string{na.Addr()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "membership", func() bool { return na.Stats().Members == 1 })
	// b merges nothing: a's stream and queue fill up and deltas drop.
	for k := range 3000 {
		d, err := ra.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String(strings.Repeat("z", 500))})
		if err != nil {
			t.Fatal(err)
		}
		na.Broadcast(d)
	}
	waitFor(t, 10*time.Second, "drops", func() bool { return na.Stats().FragmentsDropped > 0 })
	rb.open()
	waitFor(t, 30*time.Second, "anti-entropy to repair the drops", func() bool { return ra.Digest() == rb.Digest() })
	t.Logf("a: %+v", na.Stats())
}

// Nodes with different max_message_bytes agree on the smaller one per
// stream: a session from the larger side does not send what the smaller
// side would refuse.
func TestMessageLimitIsNegotiated(t *testing.T) {
	c := newCluster(t, 2, gossiptest.NewNetwork(15), func(i int, cfg *Config) {
		cfg.SyncInterval = 0
		if i == 1 {
			cfg.MaxMessageBytes = 128 << 10
			cfg.BatchBytes = 16 << 10
		}
	})
	c.joinAll()
	a, b := c.nodes[0], c.nodes[1]
	for k := range 3000 {
		if _, err := a.rep.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String(strings.Repeat("n", 1000))}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := a.node.SyncWith(t.Context(), b.name)
	if err != nil {
		t.Fatal(err)
	}
	if a.rep.Digest() != b.rep.Digest() {
		t.Fatalf("not in sync after %+v", res)
	}
	if s := b.node.Stats(); s.DecodeErrors != 0 || s.RejectedPeers != 0 {
		t.Fatalf("b refused messages: %+v", s)
	}
}
