package gossip_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// The benchmarks use only the public API, as the engine does. Figures are
// reported with b.ReportMetric; ns/op is the time of one scenario.

var benchSchema = crdt.MustSchema(crdt.MustCollection("items", []string{"id"}, nil))

// writer is the local side of a replica: a change in, the delta to
// broadcast out.
type writer interface {
	gossip.Replica
	write(keys []crdt.Key, value string) (*crdt.Delta, error)
}

type memWriter struct{ *gossiptest.MemReplica }

func (m memWriter) write(keys []crdt.Key, value string) (*crdt.Delta, error) {
	out := &crdt.Delta{}
	for _, k := range keys {
		d, err := m.Put("items", k, crdt.Row{"v": crdt.String(value)})
		if err != nil {
			return nil, err
		}
		out.Fragments = append(out.Fragments, d.Fragments...)
	}
	return out, nil
}

type benchNode struct {
	name string
	rep  writer
	node *gossip.Node
	bind string
}

type benchCluster struct {
	b     testing.TB
	nodes []*benchNode
	net   *gossiptest.Network
	key   []byte
	mod   func(*gossip.Config)
	log   *slog.Logger
}

type logSink struct {
	b    testing.TB
	mu   sync.Mutex
	done bool
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.b.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// newBenchCluster starts size nodes, encrypted, on loopback (net == nil) or
// on an in-memory network, and joins them.
func newBenchCluster(b testing.TB, size int, net *gossiptest.Network, mod func(*gossip.Config), newRep func(i int) writer) *benchCluster {
	b.Helper()
	key, err := gossip.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	sink := &logSink{b: b}
	b.Cleanup(func() {
		sink.mu.Lock()
		sink.done = true
		sink.mu.Unlock()
	})
	c := &benchCluster{b: b, net: net, key: key, mod: mod,
		log: slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelError}))}
	for i := range size {
		c.nodes = append(c.nodes, &benchNode{name: fmt.Sprintf("b%02d", i), rep: newRep(i), bind: "127.0.0.1:0"})
	}
	b.Cleanup(c.close) // before the replicas' own cleanups
	for _, bn := range c.nodes {
		c.start(bn)
	}
	for _, bn := range c.nodes[1:] {
		if _, err := bn.node.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
			b.Fatal(err)
		}
	}
	c.waitFor(2*time.Minute, "membership", func() bool {
		for _, bn := range c.nodes {
			if bn.node.Stats().Members != size-1 {
				return false
			}
		}
		return true
	})
	return c
}

func (c *benchCluster) start(bn *benchNode) {
	cfg := gossip.DefaultConfig()
	cfg.Name = bn.name
	cfg.BindAddr = bn.bind
	cfg.Keys = [][]byte{c.key}
	cfg.Label = "bench"
	cfg.Schema = benchSchema
	cfg.Logger = c.log
	if c.net != nil {
		cfg.Transport = c.net.NewTransport(bn.name)
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	n, err := gossip.New(cfg, bn.rep)
	if err != nil {
		c.b.Fatal(err)
	}
	bn.node = n
	bn.bind = n.Addr() // a restart binds the same port
}

func (c *benchCluster) close() {
	var wg sync.WaitGroup
	for _, bn := range c.nodes {
		if bn.node != nil {
			wg.Add(1)
			go func(n *gossip.Node) {
				defer wg.Done()
				_ = n.Close()
			}(bn.node)
			bn.node = nil
		}
	}
	wg.Wait()
}

func (c *benchCluster) waitFor(timeout time.Duration, what string, cond func() bool) {
	c.b.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.b.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (c *benchCluster) converged() bool {
	d := c.nodes[0].rep.Digest()
	for _, bn := range c.nodes[1:] {
		if bn.rep.Digest() != d {
			return false
		}
	}
	return true
}

// tracker times each write from its local commit to its merge elsewhere.
type tracker struct {
	mu    sync.Mutex
	start map[crdt.Key]time.Time
	left  map[crdt.Key]int
	each  []time.Duration // per (write, receiver)
	all   []time.Duration // per write, until the last receiver
}

func newTracker() *tracker {
	return &tracker{start: map[crdt.Key]time.Time{}, left: map[crdt.Key]int{}}
}

func (t *tracker) committed(k crdt.Key, receivers int, at time.Time) {
	t.mu.Lock()
	t.start[k] = at
	t.left[k] = receivers
	t.mu.Unlock()
}

func (t *tracker) merged(d *crdt.Delta) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range d.Fragments {
		st, ok := t.start[f.Key]
		if !ok {
			continue
		}
		lat := now.Sub(st)
		t.each = append(t.each, lat)
		if t.left[f.Key]--; t.left[f.Key] == 0 {
			t.all = append(t.all, lat)
			delete(t.start, f.Key)
			delete(t.left, f.Key)
		}
	}
}

func (t *tracker) pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.start)
}

func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(int(float64(len(s))*p), len(s)-1)
	return float64(s[i]) / float64(time.Millisecond)
}

func memReplicas(i int) writer {
	return memWriter{gossiptest.NewMemReplica(benchSchema, crdt.ReplicaID(i+1), fmt.Sprint("b", i))}
}

// BenchmarkPropagation: 3 nodes on loopback, 1,000 writes/s at one node;
// the time from local commit to merge at each of the others.
func BenchmarkPropagation(b *testing.B) {
	c := newBenchCluster(b, 3, nil, nil, memReplicas)
	tr := newTracker()
	for _, bn := range c.nodes[1:] {
		bn.rep.(memWriter).SetMergeHook(tr.merged)
	}
	src := c.nodes[0]
	value := strings.Repeat("v", 100)
	seq := 0
	b.ReportAllocs()
	for b.Loop() {
		// One second at 1,000 writes/s.
		start := time.Now()
		for i := range 1000 {
			if d := time.Until(start.Add(time.Duration(i) * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
			seq++
			k := crdt.IntKey(int64(seq))
			d, err := src.rep.write([]crdt.Key{k}, value)
			if err != nil {
				b.Fatal(err)
			}
			tr.committed(k, 2, time.Now())
			src.node.Broadcast(d)
		}
	}
	c.waitFor(30*time.Second, "every write merged", func() bool { return tr.pending() == 0 })
	for _, bn := range c.nodes {
		b.Logf("%s: %+v", bn.name, bn.node.Stats())
	}
	for _, p := range []float64{0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999} {
		b.Logf("p%v = %.2f ms", p*100, percentile(tr.each, p))
	}
	b.ReportMetric(percentile(tr.each, 0.50), "p50-ms")
	b.ReportMetric(percentile(tr.each, 0.99), "p99-ms")
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "writes/s")
}

// throughput has every node write distinct single-field records of 100
// bytes, batch records per local change, as fast as it can while its
// delta queues have room (Node.Backlog: a writer that outruns its streams
// only pushes work to anti-entropy), until all replicas hold the same
// state.
func throughput(b *testing.B, newRep func(i int) writer, batch int) {
	c := newBenchCluster(b, 3, nil, nil, newRep)
	const perNode = 60000
	value := strings.Repeat("x", 100)
	round := 0
	var fields int
	var busy, cpu time.Duration
	b.ReportAllocs()
	for b.Loop() {
		round++
		start := time.Now()
		cpu0 := cpuTime()
		var wg sync.WaitGroup
		for i, bn := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys := make([]crdt.Key, 0, batch)
				for j := range perNode {
					keys = append(keys, crdt.MustKey(crdt.Int(int64(round)), crdt.Int(int64(i)), crdt.Int(int64(j))))
					if len(keys) < batch && j < perNode-1 {
						continue
					}
					for bn.node.Backlog() > gossip.DefaultQueueLen/2 {
						time.Sleep(100 * time.Microsecond)
					}
					d, err := bn.rep.write(keys, value)
					if err != nil {
						b.Error(err)
						return
					}
					bn.node.Broadcast(d)
					keys = keys[:0]
				}
			}()
		}
		wg.Wait()
		c.waitFor(5*time.Minute, "convergence", func() bool {
			return c.converged() && int(c.nodes[0].rep.Digest().Count) == round*3*perNode
		})
		busy += time.Since(start)
		cpu += cpuTime() - cpu0
		fields += 3 * perNode
	}
	var dropped uint64
	for _, bn := range c.nodes {
		dropped += bn.node.Stats().FragmentsDropped
	}
	b.ReportMetric(float64(fields)/busy.Seconds(), "fields/s")
	// The machine may be shared: fields per CPU-second of this process
	// says what two dedicated cores would sustain (about twice this).
	b.ReportMetric(float64(fields)/cpu.Seconds(), "fields/cpu-s")
	b.ReportMetric(float64(dropped)/float64(fields), "dropped/field")
}

// cpuTime returns the CPU time (user and system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkThroughput: 3 nodes on loopback, in-memory replicas.
func BenchmarkThroughput(b *testing.B) {
	throughput(b, memReplicas, 1)
}

// BenchmarkCatchup: 200k records everywhere, one node away while 2k of
// them change, then back: the time until its digest equals the others',
// the bytes anti-entropy moved per changed record, and their ratio to a
// full-state transfer (a bootstrap of a fourth, empty node measured in the
// same run).
func BenchmarkCatchup(b *testing.B) {
	const records, changes = 200_000, 2_000
	value := strings.Repeat("c", 100)
	base := memReplicas(99).(memWriter)
	keys := make([]crdt.Key, records)
	for i := range keys {
		keys[i] = crdt.IntKey(int64(i))
	}
	all, err := base.write(keys, value)
	if err != nil {
		b.Fatal(err)
	}
	c := newBenchCluster(b, 3, nil, func(cfg *gossip.Config) {
		cfg.SyncInterval = time.Hour // only the catch-up round on join
	}, func(i int) writer {
		r := memReplicas(i).(memWriter)
		if _, err := r.Merge(all); err != nil {
			b.Fatal(err)
		}
		return r
	})
	away := c.nodes[2]
	rng := rand.New(rand.NewPCG(1, 2))
	var secs, perChanged, ratio, xChanged []float64
	b.ReportAllocs()
	for b.Loop() {
		_ = away.node.Close()
		away.node = nil
		c.waitFor(time.Minute, "the others to notice", func() bool {
			return c.nodes[0].node.Stats().Members == 1 && c.nodes[1].node.Stats().Members == 1
		})
		changedBytes := 0
		for range changes {
			k := keys[rng.IntN(records)]
			d, err := c.nodes[0].rep.write([]crdt.Key{k}, fmt.Sprintf("%0100d", rng.Int64()))
			if err != nil {
				b.Fatal(err)
			}
			changedBytes += len(crdt.EncodeDelta(d))
			c.nodes[0].node.Broadcast(d)
		}
		c.waitFor(time.Minute, "the second node to get the changes", func() bool {
			return c.nodes[0].rep.Digest() == c.nodes[1].rep.Digest()
		})
		start := time.Now()
		c.start(away)
		if _, err := away.node.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
			b.Fatal(err)
		}
		c.waitFor(time.Minute, "catch-up", c.converged)
		secs = append(secs, time.Since(start).Seconds())
		s := away.node.Stats()
		perChanged = append(perChanged, float64(s.SyncBytes)/changes)
		xChanged = append(xChanged, float64(s.SyncBytes)/float64(changedBytes))
		ratio = append(ratio, float64(s.SyncBytes))
	}
	b.StopTimer()
	// The baseline: a full-state transfer to an empty node.
	fresh := &benchNode{name: "fresh", rep: memReplicas(50), bind: "127.0.0.1:0"}
	c.nodes = append(c.nodes, fresh)
	c.start(fresh)
	if _, err := fresh.node.Join(context.Background(), []string{c.nodes[0].node.Addr()}); err != nil {
		b.Fatal(err)
	}
	if err := fresh.node.Bootstrap(context.Background()); err != nil {
		b.Fatal(err)
	}
	full := float64(fresh.node.Stats().BootstrapBytes)
	for i := range ratio {
		ratio[i] /= full
	}
	b.ReportMetric(median(secs), "seconds")
	b.ReportMetric(median(perChanged), "bytes/changed")
	b.ReportMetric(median(xChanged), "x-changed-bytes")
	b.ReportMetric(median(ratio), "ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkScale: 50 nodes in one process (on the in-memory network, with
// the default configuration: relay to 3 peers, anti-entropy every 2s);
// the time for a write to reach every other node.
func BenchmarkScale(b *testing.B) {
	const size = 50
	c := newBenchCluster(b, size, gossiptest.NewNetwork(1), nil, memReplicas)
	tr := newTracker()
	for _, bn := range c.nodes {
		bn.rep.(memWriter).SetMergeHook(tr.merged)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	value := strings.Repeat("s", 100)
	seq := 0
	b.ReportAllocs()
	for b.Loop() {
		// Five seconds at 20 writes/s from random nodes.
		start := time.Now()
		for i := range 100 {
			if d := time.Until(start.Add(time.Duration(i) * 50 * time.Millisecond)); d > 0 {
				time.Sleep(d)
			}
			seq++
			src := c.nodes[rng.IntN(size)]
			k := crdt.IntKey(int64(seq))
			d, err := src.rep.write([]crdt.Key{k}, value)
			if err != nil {
				b.Fatal(err)
			}
			tr.committed(k, size-1, time.Now())
			src.node.Broadcast(d)
		}
	}
	c.waitFor(time.Minute, "every write everywhere", func() bool { return tr.pending() == 0 })
	b.ReportMetric(percentile(tr.all, 0.50), "p50-ms")
	b.ReportMetric(percentile(tr.all, 0.99), "p99-ms")
	var syncRecs uint64
	for _, bn := range c.nodes {
		syncRecs += bn.node.Stats().SyncRecordsReceived
	}
	b.ReportMetric(float64(syncRecs)/float64(seq*(size-1)), "via-anti-entropy")
}
