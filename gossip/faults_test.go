package gossip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// oracle collects every local delta; its state is what every replica must
// converge to.
type oracle struct {
	rep *gossiptest.MemReplica
}

func newOracle() *oracle {
	return &oracle{rep: gossiptest.NewMemReplicaClock(testSchema, 1<<40, "oracle",
		crdt.NewClock(func() int64 { return time.Now().UnixNano() }, -1))}
}

func (o *oracle) add(t testing.TB, d *crdt.Delta) {
	if _, err := o.rep.Merge(d); err != nil {
		t.Errorf("oracle merge: %v", err)
	}
}

// randomWrite makes one random local change at node i: a field write, an
// OR-set change, a max field or a delete, on a small key space so that
// writes conflict.
func (c *cluster) randomWrite(rng *rand.Rand, i int, o *oracle, keys int) {
	c.t.Helper()
	tn := c.nodes[i]
	k := crdt.IntKey(int64(rng.IntN(keys)))
	var d *crdt.Delta
	var err error
	switch rng.IntN(10) {
	case 0:
		d, err = tn.rep.Delete("people", k)
	case 1, 2:
		el := crdt.String(fmt.Sprint("t", rng.IntN(5)))
		if rng.IntN(3) == 0 {
			d, err = tn.rep.SetOps("people", k, "tags", nil, []crdt.Value{el})
		} else {
			d, err = tn.rep.SetOps("people", k, "tags", []crdt.Value{el}, nil)
		}
	case 3:
		d, err = tn.rep.Put("people", k, crdt.Row{"seen": crdt.Int(int64(rng.IntN(1000)))})
	default:
		d, err = tn.rep.Put("people", k, crdt.Row{"name": crdt.String(fmt.Sprintf("%s-%d", tn.name, rng.IntN(1e6)))})
	}
	if err != nil {
		c.t.Fatalf("write at %s: %v", tn.name, err)
	}
	o.add(c.t, d)
	tn.node.Broadcast(d)
}

// writeConcurrently runs one writer per listed node.
func (c *cluster) writeConcurrently(seed uint64, nodes []int, perNode, keys int, o *oracle) {
	var wg sync.WaitGroup
	for _, i := range nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for range perNode {
				c.randomWrite(rng, i, o, keys)
			}
		}(i)
	}
	wg.Wait()
}

func (c *cluster) waitOracle(o *oracle, timeout time.Duration) {
	c.t.Helper()
	want := o.rep.Digest()
	waitFor(c.t, timeout, "every replica equal to the oracle", func() bool {
		for _, tn := range c.live() {
			if tn.rep.Digest() != want {
				return false
			}
		}
		return true
	})
}

func all(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestFiveNodesConvergeUnderConcurrentWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faulty bool
	}{{"loopback", false}, {"loss, resets and delay", true}} {
		t.Run(tc.name, func(t *testing.T) {
			const seed = 1
			t.Logf("seed %d", seed)
			var net *gossiptest.Network
			if tc.faulty {
				net = gossiptest.NewNetwork(seed)
			}
			c := newCluster(t, 5, net, nil)
			c.joinAll()
			if net != nil {
				net.SetLoss(0.05)
				net.SetResetRate(0.01)
				net.SetDelay(time.Millisecond, 2*time.Millisecond)
			}
			o := newOracle()
			c.writeConcurrently(seed, all(5), 400, 100, o)
			c.waitOracle(o, 30*time.Second)
			var dropped uint64
			for _, tn := range c.nodes {
				dropped += tn.node.Stats().FragmentsDropped
			}
			if net != nil {
				t.Logf("network: %+v; fragments dropped and repaired: %d", net.Stats(), dropped)
			}
		})
	}
}

func TestSplitBrainHeals(t *testing.T) {
	const seed = 2
	t.Logf("seed %d", seed)
	net := gossiptest.NewNetwork(seed)
	net.SetDelay(0, time.Millisecond)
	c := newCluster(t, 5, net, nil)
	c.joinAll()
	o := newOracle()
	c.writeConcurrently(seed, all(5), 20, 50, o)
	c.waitOracle(o, 20*time.Second)

	left, right := []string{"n00", "n01"}, []string{"n02", "n03", "n04"}
	net.Partition(left, right)
	waitFor(t, 30*time.Second, "each side to see only itself", func() bool {
		for i, tn := range c.nodes {
			want := 2
			if i < 2 {
				want = 1
			}
			if tn.node.Stats().Members != want {
				return false
			}
		}
		return true
	})
	// Both sides write, on the same keys.
	c.writeConcurrently(seed+1, all(5), 100, 50, o)
	if c.converged() {
		t.Fatal("the two sides agree while partitioned")
	}
	net.Heal()
	c.waitMembers(30 * time.Second)
	c.waitOracle(o, 30*time.Second)
}

func TestKilledNodeRestartsAndCatchesUp(t *testing.T) {
	const seed = 3
	net := gossiptest.NewNetwork(seed)
	c := newCluster(t, 3, net, nil)
	c.joinAll()
	o := newOracle()
	c.writeConcurrently(seed, all(3), 50, 200, o)
	c.waitOracle(o, 20*time.Second)

	c.kill(2) // no Leave: the others see it fail
	waitFor(t, 20*time.Second, "the others to notice", func() bool {
		return c.nodes[0].node.Stats().Members == 1 && c.nodes[1].node.Stats().Members == 1
	})
	if ms := c.nodes[0].node.Members(); len(ms) != 2 || ms[1].Name != "n02" || ms[1].State != "failed" {
		t.Fatalf("members after the kill: %+v, want n02 failed", ms)
	}
	c.writeConcurrently(seed+1, []int{0, 1}, 200, 500, o)
	c.start(2, false) // same replica, same name
	if _, err := c.nodes[2].node.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
		t.Fatal(err)
	}
	c.waitOracle(o, 20*time.Second)
	if s := c.nodes[2].node.Stats(); s.SyncRecordsReceived == 0 {
		t.Errorf("restarted node caught up without anti-entropy: %+v", s)
	}
}

func TestLeftNodeIsNotReconnected(t *testing.T) {
	c := newCluster(t, 3, gossiptest.NewNetwork(14), nil)
	c.joinAll()
	if err := c.nodes[2].node.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	c.kill(2)
	waitFor(t, 10*time.Second, "the leave to spread", func() bool {
		return c.nodes[0].node.Stats().Members == 1 && c.nodes[1].node.Stats().Members == 1
	})
	for _, tn := range c.live() {
		if ms := tn.node.Members(); len(ms) != 1 {
			t.Fatalf("%s members: %+v, want only the live peer", tn.name, ms)
		}
	}
}

func TestWipedNodeBootstraps(t *testing.T) {
	const seed = 4
	net := gossiptest.NewNetwork(seed)
	c := newCluster(t, 3, net, nil)
	c.joinAll()
	o := newOracle()
	c.writeConcurrently(seed, all(3), 700, 5000, o)
	c.waitOracle(o, 20*time.Second)

	c.kill(2)
	c.start(2, true) // new empty replica under a new replica ID
	if _, err := c.nodes[2].node.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
		t.Fatal(err)
	}
	// Writes keep coming while it bootstraps.
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.writeConcurrently(seed+1, []int{0, 1}, 100, 5000, o)
	}()
	if err := c.nodes[2].node.Bootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	c.waitOracle(o, 20*time.Second)
	s := c.nodes[2].node.Stats()
	if s.Bootstraps != 1 || s.BootstrapRecords < uint64(c.nodes[0].rep.Len()/2) {
		t.Errorf("bootstrap stats %+v, want 1 bootstrap of about %d records", s, c.nodes[0].rep.Len())
	}
}

// TestRelayReachesEveryone disables anti-entropy and pushes to Fanout peers
// only: the ring successor alone must carry every delta to every node.
func TestRelayReachesEveryone(t *testing.T) {
	const seed = 5
	net := gossiptest.NewNetwork(seed)
	c := newCluster(t, 9, net, func(_ int, cfg *Config) {
		cfg.PushAllUpTo = 1
		cfg.Fanout = 2
		cfg.SyncInterval = 0
		// Without anti-entropy a member falsely declared dead loses what
		// was in flight to it: keep failure detection at the LAN preset.
		cfg.MemberlistConfig = steadyMemberlist
	})
	c.joinAll()
	o := newOracle()
	c.writeConcurrently(seed, all(9), 30, 100, o)
	c.waitOracle(o, 20*time.Second)
	var relayed uint64
	for _, tn := range c.nodes {
		s := tn.node.Stats()
		relayed += s.FragmentsRelayed
		if s.Syncs != 0 {
			t.Fatalf("%s ran anti-entropy", tn.name)
		}
	}
	if relayed == 0 {
		t.Fatal("nothing relayed")
	}
}

// TestLargeCluster runs 50 nodes (20 under the race detector, which is
// several times slower) in relay mode.
func TestLargeCluster(t *testing.T) {
	size := 50
	if raceEnabled {
		size = 20
	}
	net := gossiptest.NewNetwork(6)
	c := newCluster(t, size, net, func(_ int, cfg *Config) {
		cfg.Logger = nil
		cfg.SyncInterval = time.Second
		cfg.MemberlistConfig = steadyMemberlist // 50 nodes probing every 200ms is too busy
	})
	c.joinAll()
	o := newOracle()
	c.writeConcurrently(6, all(size), 4, 1000, o)
	c.waitOracle(o, 60*time.Second)
}
