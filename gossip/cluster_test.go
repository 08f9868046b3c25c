package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testLog routes logs to t.Log until the test ends.
type testLog struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testLog) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// fastMemberlist makes failure detection quick for tests (about a second
// from a crash to "dead" in a 5-node cluster), yet not so quick that a
// loaded machine running the race detector makes members flap.
func fastMemberlist(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.GossipInterval = 30 * time.Millisecond
	mc.SuspicionMult = 3
	mc.PushPullInterval = time.Second
	mc.TCPTimeout = 2 * time.Second
	mc.DeadNodeReclaimTime = 10 * time.Millisecond
	mc.GossipToTheDeadTime = time.Second
}

// steadyMemberlist keeps the LAN preset's failure detection (which a
// loaded machine does not trip) but exchanges full membership every second,
// so that a member missed by the probabilistic gossip is learnt quickly
// rather than at the preset's 30s push/pull.
func steadyMemberlist(mc *memberlist.Config) {
	mc.PushPullInterval = time.Second
	mc.GossipInterval = 100 * time.Millisecond
}

var testSchema = crdt.MustSchema(
	crdt.MustCollection("people", []string{"id"}, map[string]crdt.Policy{
		"tags": {Kind: crdt.ORSet},
		"seen": {Kind: crdt.Max},
	}),
)

type testNode struct {
	name string
	rep  *gossiptest.MemReplica
	node *Node
}

// cluster is a set of nodes on loopback or on a fault-injecting network.
type cluster struct {
	t      testing.TB
	net    *gossiptest.Network
	nodes  []*testNode
	cfg    func(i int, c *Config)
	logger *slog.Logger
	nextID crdt.ReplicaID
	mu     sync.Mutex
}

func newCluster(t testing.TB, size int, net *gossiptest.Network, cfg func(i int, c *Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, net: net, cfg: cfg, logger: testLogger(t, slog.LevelWarn)}
	t.Cleanup(c.closeAll)
	for i := range size {
		c.nodes = append(c.nodes, &testNode{name: fmt.Sprintf("n%02d", i)})
		c.start(i, true)
	}
	return c
}

func (c *cluster) config(i int) Config {
	cfg := DefaultConfig()
	cfg.Name = c.nodes[i].name
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Schema = testSchema
	cfg.Logger = c.logger
	cfg.SyncInterval = 200 * time.Millisecond
	cfg.IOTimeout = 2 * time.Second
	cfg.JoinTimeout = 5 * time.Second
	cfg.ReconnectInterval = 200 * time.Millisecond
	cfg.MemberlistConfig = fastMemberlist
	if c.net != nil {
		cfg.Transport = c.net.NewTransport(cfg.Name)
	}
	if c.cfg != nil {
		c.cfg(i, &cfg)
	}
	return cfg
}

// start starts node i, with a fresh replica if wipe or none yet.
func (c *cluster) start(i int, wipe bool) {
	c.t.Helper()
	tn := c.nodes[i]
	if wipe || tn.rep == nil {
		c.mu.Lock()
		c.nextID++
		id := c.nextID
		c.mu.Unlock()
		tn.rep = gossiptest.NewMemReplica(testSchema, id, tn.name)
	}
	n, err := New(c.config(i), tn.rep)
	if err != nil {
		c.t.Fatalf("start %s: %v", tn.name, err)
	}
	tn.node = n
}

// joinAll joins every node to the first live one and waits until all see
// each other.
func (c *cluster) joinAll() {
	c.t.Helper()
	ctx := context.Background()
	first := -1
	for i, tn := range c.nodes {
		if tn.node == nil {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if _, err := tn.node.Join(ctx, []string{c.nodes[first].node.Addr()}); err != nil {
			c.t.Fatalf("join %s: %v", tn.name, err)
		}
	}
	c.waitMembers(30 * time.Second)
}

func (c *cluster) live() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if tn.node != nil {
			out = append(out, tn)
		}
	}
	return out
}

// waitMembers waits until every live node has every other live node as a
// peer. Delta streams open with the first delta, so they may not be up yet.
func (c *cluster) waitMembers(timeout time.Duration) {
	c.t.Helper()
	live := c.live()
	waitFor(c.t, timeout, "full membership", func() bool {
		for _, tn := range live {
			if tn.node.Stats().Members != len(live)-1 {
				return false
			}
		}
		return true
	})
}

func (c *cluster) kill(i int) {
	c.t.Helper()
	if err := c.nodes[i].node.Close(); err != nil {
		c.t.Logf("close %s: %v", c.nodes[i].name, err)
	}
	c.nodes[i].node = nil
}

func (c *cluster) closeAll() {
	var wg sync.WaitGroup
	for _, tn := range c.nodes {
		if tn.node != nil {
			wg.Add(1)
			go func(n *Node) {
				defer wg.Done()
				_ = n.Close()
			}(tn.node)
			tn.node = nil
		}
	}
	wg.Wait()
}

func (c *cluster) converged() bool {
	live := c.live()
	d := live[0].rep.Digest()
	for _, tn := range live[1:] {
		if tn.rep.Digest() != d {
			return false
		}
	}
	return true
}

func (c *cluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, "identical digests", c.converged)
}

// put writes a record at node i and broadcasts the delta.
func (c *cluster) put(i int, key int64, row crdt.Row) {
	c.t.Helper()
	tn := c.nodes[i]
	d, err := tn.rep.Put("people", crdt.IntKey(key), row)
	if err != nil {
		c.t.Fatalf("put at %s: %v", tn.name, err)
	}
	tn.node.Broadcast(d)
}

func TestSmokeLoopback(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.joinAll()
	for k := range 50 {
		c.put(k%3, int64(k), crdt.Row{"name": crdt.String(fmt.Sprint("v", k))})
	}
	c.waitConverged(10 * time.Second)
	if got := c.nodes[0].rep.Len(); got != 50 {
		t.Fatalf("records = %d, want 50", got)
	}
	for _, tn := range c.nodes {
		t.Logf("%s: %+v", tn.name, tn.node.Stats())
	}
}
