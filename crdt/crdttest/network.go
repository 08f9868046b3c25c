package crdttest

import (
	"math/rand/v2"
	"slices"
)

// NetConfig sets how badly a Network behaves.
type NetConfig struct {
	// DropRate is the probability that a sent message is lost.
	DropRate float64
	// DupRate is the probability that a sent message is delivered twice.
	DupRate float64
	// MaxDelay is the largest number of ticks a message spends in flight;
	// messages with different delays overtake each other. Zero delivers
	// every message on the next tick, still in random order.
	MaxDelay int
}

// Delivery is one message arriving at a node.
type Delivery[M any] struct {
	From, To int
	Msg      M
}

// NetStats counts what happened to messages.
type NetStats struct {
	Sent       int // Send calls
	Delivered  int // deliveries, duplicates included
	Dropped    int // lost to DropRate
	Cut        int // lost to a partition or a crash
	Duplicated int // extra copies made
}

type inflight[M any] struct {
	Delivery[M]
	due int
}

// Network is a seeded simulated network between nodes 0..n-1 that drops,
// duplicates, delays and reorders messages, and can be partitioned. It is
// deterministic for a given random source and sequence of calls, and does
// nothing by itself: time moves only when Tick is called. It is not safe for
// concurrent use.
type Network[M any] struct {
	rng   *rand.Rand
	cfg   NetConfig
	n     int
	now   int
	group []int // partition group of each node
	queue []inflight[M]
	stats NetStats
}

// NewNetwork returns a healed network of n nodes drawing from rng.
func NewNetwork[M any](rng *rand.Rand, n int, cfg NetConfig) *Network[M] {
	return &Network[M]{rng: rng, cfg: cfg, n: n, group: make([]int, n)}
}

// Stats returns the message counters.
func (nw *Network[M]) Stats() NetStats { return nw.stats }

// InFlight returns the number of messages not yet delivered.
func (nw *Network[M]) InFlight() int { return len(nw.queue) }

// Connected reports whether a and b can reach each other.
func (nw *Network[M]) Connected(a, b int) bool { return nw.group[a] == nw.group[b] }

// Partitioned reports whether the network is split.
func (nw *Network[M]) Partitioned() bool {
	for _, g := range nw.group {
		if g != nw.group[0] {
			return true
		}
	}
	return false
}

// Partition splits the nodes into groups; nodes in no group form one more
// group. Messages between groups are lost, also those already in flight.
func (nw *Network[M]) Partition(groups ...[]int) {
	for i := range nw.group {
		nw.group[i] = 0
	}
	for g, nodes := range groups {
		for _, n := range nodes {
			nw.group[n] = g + 1
		}
	}
}

// RandomPartition splits the nodes into two non-empty random groups.
func (nw *Network[M]) RandomPartition() {
	if nw.n < 2 {
		return
	}
	perm := nw.rng.Perm(nw.n)
	cut := 1 + nw.rng.IntN(nw.n-1)
	nw.Partition(perm[:cut])
}

// Heal reconnects every node.
func (nw *Network[M]) Heal() { nw.Partition() }

// Send puts a message from one node to another in flight, unless the network
// drops it; it may also duplicate it.
func (nw *Network[M]) Send(from, to int, m M) {
	nw.stats.Sent++
	if !nw.Connected(from, to) {
		nw.stats.Cut++
		return
	}
	if nw.rng.Float64() < nw.cfg.DropRate {
		nw.stats.Dropped++
		return
	}
	nw.enqueue(from, to, m)
	if nw.rng.Float64() < nw.cfg.DupRate {
		nw.stats.Duplicated++
		nw.enqueue(from, to, m)
	}
}

func (nw *Network[M]) enqueue(from, to int, m M) {
	delay := 1
	if nw.cfg.MaxDelay > 0 {
		delay += nw.rng.IntN(nw.cfg.MaxDelay + 1)
	}
	nw.queue = append(nw.queue, inflight[M]{Delivery: Delivery[M]{From: from, To: to, Msg: m}, due: nw.now + delay})
}

// Crash loses every message in flight from or to node.
func (nw *Network[M]) Crash(node int) {
	nw.queue = slices.DeleteFunc(nw.queue, func(f inflight[M]) bool {
		if f.From == node || f.To == node {
			nw.stats.Cut++
			return true
		}
		return false
	})
}

// Tick advances time by one tick and returns the messages that arrive, in
// random order. Messages whose endpoints were partitioned apart while they
// were in flight are lost.
func (nw *Network[M]) Tick() []Delivery[M] {
	nw.now++
	return nw.take(func(f inflight[M]) bool { return f.due <= nw.now })
}

// Drain delivers every message still in flight, in random order, as if
// enough ticks had passed.
func (nw *Network[M]) Drain() []Delivery[M] {
	return nw.take(func(inflight[M]) bool { return true })
}

func (nw *Network[M]) take(ready func(inflight[M]) bool) []Delivery[M] {
	var out []Delivery[M]
	keep := nw.queue[:0]
	for _, f := range nw.queue {
		switch {
		case !ready(f):
			keep = append(keep, f)
		case !nw.Connected(f.From, f.To):
			nw.stats.Cut++
		default:
			out = append(out, f.Delivery)
		}
	}
	clear(nw.queue[len(keep):])
	nw.queue = keep
	nw.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	nw.stats.Delivered += len(out)
	return out
}
