package gossip

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

func mustKey(t testing.TB) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// intruder starts a node outside the cluster with its own settings.
func intruder(t *testing.T, net *gossiptest.Network, name string, mod func(*Config)) (*Node, *gossiptest.MemReplica) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Schema = testSchema
	cfg.Logger = testLogger(t, 100) // silent: its failures are the point
	cfg.IOTimeout = time.Second
	cfg.JoinTimeout = time.Second
	cfg.JoinRetries = 1
	cfg.MemberlistConfig = fastMemberlist
	if net != nil {
		cfg.Transport = net.NewTransport(name)
	}
	mod(&cfg)
	rep := gossiptest.NewMemReplica(testSchema, 999, name)
	n, err := New(cfg, rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n, rep
}

// inject tries to push a delta into target's replica by dialing a delta
// stream directly, sending the hello and a delta without waiting for the
// answer.
func inject(t *testing.T, from *Node, target *Node, targetName string) error {
	t.Helper()
	return injectAs(t, from, target, targetName, from.cfg.Name, from.schema)
}

// injectAs is inject with the hello claiming another name and schema.
func injectAs(t *testing.T, from *Node, target *Node, targetName, as string, schema schemaInfo) error {
	t.Helper()
	c, err := from.mux.DialAddressTimeout(memberlist.Address{Addr: target.Addr(), Name: targetName}, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	dc, err := clientHandshake(c, from.connOpts())
	if err != nil {
		return err
	}
	h := encodeHello(&hello{Name: as, Purpose: purposeDeltas, Label: from.cfg.Label, Schema: schema})
	if err := dc.write(h.bytes()); err != nil {
		return err
	}
	d := &crdt.Delta{}
	d.Add("people", crdt.IntKey(666), &crdt.Record{
		Written: crdt.Stamp{TS: crdt.Timestamp{Wall: time.Now().UnixNano()}, Replica: 666},
		Fields: []crdt.Field{{Name: "name", Reg: []crdt.Write{{
			Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: time.Now().UnixNano()}, Replica: 666},
			Value: crdt.String("injected")}}}},
	})
	msg := encodeFragments(d)
	if err := dc.write(deltasMessage(&msg, 0)); err != nil {
		return err
	}
	b, err := dc.read()
	if err != nil {
		return err
	}
	ack, err := decodeHelloAck(b, from.limits)
	if err != nil {
		return err
	}
	if ack.Status != ackOK {
		return errors.Newf("refused: %s", ack.Reason)
	}
	return nil
}

// injectRefused checks that x cannot push a record into target: the
// attempt fails, target counts a rejected stream and merges nothing.
func injectRefused(t *testing.T, x *Node, target *testNode) {
	t.Helper()
	before := target.node.Stats().RejectedPeers
	if err := inject(t, x, target.node, target.name); err == nil {
		t.Fatal("inject: the target answered")
	}
	waitFor(t, 5*time.Second, "the target to count the rejected stream", func() bool {
		return target.node.Stats().RejectedPeers > before
	})
	if r := target.rep.Get("people", crdt.IntKey(666)); r != nil {
		t.Fatalf("injected record merged: %+v", r)
	}
}

func TestNodeWithoutTheKeyCannotJoinOrInject(t *testing.T) {
	key := mustKey(t)
	net := gossiptest.NewNetwork(7)
	c := newCluster(t, 2, net, func(_ int, cfg *Config) { cfg.Keys = [][]byte{key} })
	c.joinAll()
	target := c.nodes[0]
	for _, tc := range []struct {
		name string
		keys [][]byte
	}{
		{"cleartext", nil},
		{"other key", [][]byte{mustKey(t)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := intruder(t, net, "x-"+strings.ReplaceAll(tc.name, " ", ""), func(cfg *Config) { cfg.Keys = tc.keys })
			_, err := x.Join(context.Background(), []string{target.node.Addr()})
			if !errors.Is(err, ErrJoin) {
				t.Fatalf("join: %v, want ErrJoin", err)
			}
			t.Logf("join refused: %v", err)
			injectRefused(t, x, target)
			if got := target.node.Stats().Members; got != 1 {
				t.Fatalf("members = %d, want 1", got)
			}
		})
	}
}

func TestOtherLabelIsIgnored(t *testing.T) {
	net := gossiptest.NewNetwork(8)
	c := newCluster(t, 2, net, func(_ int, cfg *Config) { cfg.Label = "prod" })
	c.joinAll()
	target := c.nodes[0]
	for _, label := range []string{"staging", ""} {
		t.Run(fmt.Sprintf("label=%q", label), func(t *testing.T) {
			x, _ := intruder(t, net, "x-"+label, func(cfg *Config) { cfg.Label = label })
			if _, err := x.Join(context.Background(), []string{target.node.Addr()}); !errors.Is(err, ErrJoin) {
				t.Fatalf("join: %v, want ErrJoin", err)
			}
			injectRefused(t, x, target)
		})
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	net := gossiptest.NewNetwork(9)
	c := newCluster(t, 3, net, func(_ int, cfg *Config) { cfg.Keys = [][]byte{k1} })
	c.joinAll()
	o := newOracle()
	step := func(name string, op func(n *Node) error) {
		t.Helper()
		for _, tn := range c.nodes {
			if err := op(tn.node); err != nil {
				t.Fatalf("%s on %s: %v", name, tn.name, err)
			}
		}
		c.writeConcurrently(uint64(len(name)), all(3), 20, 50, o)
		c.waitOracle(o, 10*time.Second)
	}
	step("install", func(n *Node) error { return n.InstallKey(k2) })
	step("use", func(n *Node) error { return n.UseKey(k2) })
	step("remove", func(n *Node) error { return n.RemoveKey(k1) })
	for _, tn := range c.nodes {
		if ks := tn.node.Keys(); len(ks) != 1 || string(ks[0]) != string(k2) {
			t.Fatalf("%s keys after rotation: %d keys", tn.name, len(ks))
		}
		if s := tn.node.Stats(); s.RejectedPeers != 0 {
			t.Fatalf("%s rejected streams during the rotation: %+v", tn.name, s)
		}
	}
	if err := c.nodes[0].node.RemoveKey(k2); err == nil {
		t.Fatal("removed the primary key")
	}
	old, _ := intruder(t, net, "old-key", func(cfg *Config) { cfg.Keys = [][]byte{k1} })
	if _, err := old.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err == nil {
		t.Fatal("a node with the removed key joined")
	}
	fresh, _ := intruder(t, net, "new-key", func(cfg *Config) { cfg.Keys = [][]byte{k2} })
	if _, err := fresh.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
		t.Fatalf("a node with the new key cannot join: %v", err)
	}
}

func TestKeyOpsNeedEncryption(t *testing.T) {
	n, _ := intruder(t, nil, "clear", func(*Config) {})
	if err := n.InstallKey(mustKey(t)); !errors.Is(err, ErrNoEncryption) {
		t.Fatalf("InstallKey on a cleartext node: %v", err)
	}
}

var otherSchema = crdt.MustSchema(
	crdt.MustCollection("people", []string{"id"}, map[string]crdt.Policy{
		"tags": {Kind: crdt.ORSet},
		"seen": {Kind: crdt.Min}, // Max on the others
	}),
)

func TestSchemaMismatchIsReportedAndNotMerged(t *testing.T) {
	net := gossiptest.NewNetwork(10)
	c := newCluster(t, 2, net, func(i int, cfg *Config) {
		if i == 1 {
			cfg.Schema = otherSchema
		}
	})
	c.joinAll()
	a, b := c.nodes[0], c.nodes[1]
	for k := range 20 {
		c.put(1, int64(k), crdt.Row{"name": crdt.String("from b")})
		d, err := b.rep.Put("other", crdt.IntKey(int64(k)), crdt.Row{"x": crdt.Int(int64(k))})
		if err != nil {
			t.Fatal(err)
		}
		b.node.Broadcast(d)
	}
	waitFor(t, 10*time.Second, "the shared collection to arrive", func() bool {
		return a.rep.Fingerprint("other\x00", "other\x01") == b.rep.Fingerprint("other\x00", "other\x01")
	})
	syncs := a.node.Stats().Syncs
	waitFor(t, 10*time.Second, "anti-entropy rounds", func() bool { return a.node.Stats().Syncs >= syncs+3 })
	if got := a.rep.Fingerprint("people\x00", "people\x01").Count; got != 0 {
		t.Fatalf("a merged %d records of the mismatched collection", got)
	}
	ms := a.node.Members()
	if len(ms) != 1 || fmt.Sprint(ms[0].SchemaMismatch) != "[people]" {
		t.Fatalf("members = %+v, want people reported", ms)
	}
	if s := a.node.Stats(); s.SchemaMismatches != 1 {
		t.Fatalf("stats = %+v, want one mismatch", s)
	}
}

func TestMembersCarryMeta(t *testing.T) {
	c := newCluster(t, 2, gossiptest.NewNetwork(11), func(i int, cfg *Config) {
		cfg.APIAddr = fmt.Sprintf("127.0.0.1:70%02d", i)
		cfg.Version = "v1.2.3"
	})
	c.joinAll()
	waitFor(t, 5*time.Second, "an open delta stream", func() bool {
		c.put(0, 1, crdt.Row{"name": crdt.String(time.Now().String())})
		ms := c.nodes[0].node.Members()
		return len(ms) == 1 && ms[0].Connected
	})
	m := c.nodes[0].node.Members()[0]
	if m.Name != "n01" || m.APIAddr != "127.0.0.1:7001" || m.Version != "v1.2.3" || m.State != "alive" ||
		m.SchemaFingerprint != testSchema.Fingerprint() || len(m.SchemaMismatch) != 0 {
		t.Fatalf("member = %+v", m)
	}
}

func TestJoinFailsClearly(t *testing.T) {
	n, _ := intruder(t, nil, "lonely", func(cfg *Config) {
		cfg.JoinTimeout = 2 * time.Second
		cfg.JoinRetries = 2
	})
	start := time.Now()
	_, err := n.Join(context.Background(), []string{"127.0.0.1:1"})
	if !errors.Is(err, ErrJoin) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("join = %v, want ErrJoin naming the seed", err)
	}
	if errors.FlattenHints(err) == "" {
		t.Fatalf("join error has no hint: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("join took %s", d)
	}
	if k, err := n.Join(context.Background(), nil); k != 0 || err != nil {
		t.Fatalf("join without seeds = %d, %v; want a cluster of one", k, err)
	}
}
