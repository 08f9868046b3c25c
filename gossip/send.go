package gossip

import (
	"context"
	"encoding/binary"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// outDelta is a delta encoded once for all the peers it goes to.
type outDelta struct {
	frags fragments
	delta *crdt.Delta // to re-encode without the collections a peer must not get
	relay bool
}

// deltasOverhead bounds the bytes of a deltas message besides its
// fragments.
const deltasOverhead = 16

// Broadcast sends a local delta to peers: to every peer in clusters of up
// to PushAllUpTo members, otherwise to Fanout peers that relay it further.
// It never blocks: a delta that does not fit a peer's queue is dropped and
// counted, and anti-entropy repairs it.
func (n *Node) Broadcast(d *crdt.Delta) {
	if d.Len() == 0 {
		return
	}
	targets, relay := n.targets("", false)
	n.enqueue(d, targets, relay)
}

// relay forwards the fragments that were new here to Fanout peers other
// than the one they came from.
func (n *Node) relay(d *crdt.Delta, from string) {
	targets, _ := n.targets(from, true)
	n.c.fragmentsRelayed.Add(uint64(d.Len() * len(targets)))
	n.enqueue(d, targets, true)
}

func (n *Node) enqueue(d *crdt.Delta, targets []*peer, relay bool) {
	if len(targets) == 0 {
		return
	}
	items := n.encodeOut(d, relay)
	for _, p := range targets {
		for _, it := range items {
			select {
			case p.queue <- it:
			default:
				n.c.fragmentsDropped.Add(uint64(it.frags.n))
			}
		}
	}
}

// encodeOut encodes d once, split into parts of at most BatchBytes unless a
// single fragment is larger. A fragment over MaxMessageBytes cannot be sent
// at all: it is dropped and logged (anti-entropy cannot carry it either).
func (n *Node) encodeOut(d *crdt.Delta, relay bool) []*outDelta {
	all := encodeFragments(d)
	if all.size() <= n.cfg.BatchBytes {
		return []*outDelta{{frags: all, delta: d, relay: relay}}
	}
	var out []*outDelta
	cur := &outDelta{delta: &crdt.Delta{}, relay: relay}
	for i, f := range encodeEach(d) {
		if f.size()+deltasOverhead > n.cfg.MaxMessageBytes {
			fr := &d.Fragments[i]
			n.c.fragmentsDropped.Add(1)
			n.log.Error("record too large to send", "collection", fr.Collection, "key", fr.Key.String(),
				"bytes", f.size(), "max_message_bytes", n.cfg.MaxMessageBytes,
				"hint", "raise max_message_bytes on every node")
			continue
		}
		if cur.frags.n > 0 && cur.frags.size()+len(f.body) > n.cfg.BatchBytes {
			out = append(out, cur)
			cur = &outDelta{delta: &crdt.Delta{}, relay: relay}
		}
		cur.frags.add(f)
		cur.delta.Fragments = append(cur.delta.Fragments, d.Fragments[i])
	}
	if cur.frags.n > 0 {
		out = append(out, cur)
	}
	return out
}

// targets returns the peers a delta goes to and whether they must relay it.
// Small clusters: everyone. Large ones (and every relay): the neighbours
// on a ring of members ordered by a hash of their names (the successor,
// and the predecessor when Fanout is 3 or more) plus random others up to
// Fanout, never the peer the delta came from. Every member that receives
// a new fragment passes it to its ring neighbours, so the members that
// have it are closed under "neighbour" and the whole ring gets it, however
// unlucky the random choices (pure random push misses about e^-Fanout of
// the members); with both neighbours, a member missing from one
// neighbour's view of the membership is still reached from the other
// side. The random links make it take O(log n) hops rather than O(n).
func (n *Node) targets(from string, relaying bool) ([]*peer, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !relaying && len(n.peers)+1 <= n.cfg.PushAllUpTo {
		return n.all, false
	}
	out := make([]*peer, 0, n.cfg.Fanout)
	taken := func(name string) bool {
		if name == n.cfg.Name || name == from {
			return true
		}
		for _, p := range out {
			if p.name == name {
				return true
			}
		}
		return false
	}
	slots := n.cfg.Fanout
	if k := len(n.ring); k > 1 {
		self := slices.Index(n.ring, n.cfg.Name)
		neighbours := []string{n.ring[(self+1)%k]}
		if n.cfg.Fanout >= 3 {
			neighbours = append(neighbours, n.ring[(self+k-1)%k])
		}
		for _, name := range neighbours {
			slots--
			if p := n.peers[name]; p != nil && !taken(name) {
				out = append(out, p)
			}
		}
	}
	if slots <= 0 {
		return out, true
	}
	cands := make([]*peer, 0, len(n.all))
	for _, p := range n.all {
		if !taken(p.name) {
			cands = append(cands, p)
		}
	}
	for ; slots > 0 && len(cands) > 0; slots-- {
		i := n.intn(len(cands))
		out = append(out, cands[i])
		cands[i] = cands[len(cands)-1]
		cands = cands[:len(cands)-1]
	}
	return out, true
}

func (n *Node) dropQueued(p *peer) {
	for {
		select {
		case it := <-p.queue:
			n.c.fragmentsDropped.Add(uint64(it.frags.n))
		default:
			return
		}
	}
}

// runPeer streams a peer's queue to it in batches until the peer leaves or
// the node closes.
func (n *Node) runPeer(p *peer) {
	defer n.wg.Done()
	var dc *dataConn
	var stop func() bool
	disconnect := func() {
		if dc != nil {
			stop()
			dc.close()
			dc = nil
		}
		p.connected.Store(false)
	}
	defer disconnect()
	var batch []*outDelta
	failures := 0
	// An idle stream gets a keepalive (an empty message) every third of
	// IdleTimeout, so that the receiver's read deadline does not end it.
	keepalive := n.cfg.Clock.NewTimer(n.cfg.IdleTimeout / 3)
	defer keepalive.Stop()
	for {
		if len(batch) == 0 {
			keepalive.Reset(n.cfg.IdleTimeout / 3)
			select {
			case <-p.ctx.Done():
				n.dropQueued(p)
				return
			case it := <-p.queue:
				batch = n.fill(p, append(batch, it))
			case <-keepalive.C():
				if dc != nil {
					if err := dc.write(nil); err != nil {
						n.log.Debug("delta stream to peer broke", "peer", p.name, "err", err.Error())
						disconnect()
					}
				}
				continue
			}
		}
		if dc == nil {
			var err error
			dc, err = n.dial(p.ctx, p, purposeDeltas)
			if err != nil {
				if p.ctx.Err() != nil {
					n.dropBatch(batch)
					clear(batch)
					batch = batch[:0]
					continue
				}
				failures++
				n.log.Debug("delta stream to peer failed", "peer", p.name, "attempt", failures, "err", err.Error())
				if failures >= 3 {
					n.log.Warn("dropping deltas for unreachable peer; anti-entropy will repair", "peer", p.name, "err", err.Error())
					n.dropBatch(batch)
					clear(batch)
					batch = batch[:0]
				}
				t := n.cfg.Clock.NewTimer(min(25*time.Millisecond<<failures, 2*time.Second))
				select {
				case <-p.ctx.Done():
				case <-t.C():
				}
				t.Stop()
				continue
			}
			c := dc
			stop = context.AfterFunc(p.ctx, c.close)
			failures = 0
			p.connected.Store(true)
		}
		if err := n.writeBatch(p, dc, batch); err != nil {
			if p.ctx.Err() == nil {
				n.log.Debug("delta stream to peer broke", "peer", p.name, "err", err.Error())
			}
			n.dropBatch(batch)
			disconnect()
		}
		clear(batch)
		batch = batch[:0]
	}
}

func (n *Node) dropBatch(batch []*outDelta) {
	for _, it := range batch {
		n.c.fragmentsDropped.Add(uint64(it.frags.n))
	}
}

// fill adds queued deltas to a batch until BatchBytes, waiting up to
// BatchDelay after the first for more to arrive.
func (n *Node) fill(p *peer, batch []*outDelta) []*outDelta {
	size := 0
	for _, it := range batch {
		size += len(it.frags.body)
	}
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for size < n.cfg.BatchBytes {
		select {
		case it := <-p.queue:
			batch = append(batch, it)
			size += len(it.frags.body)
			continue
		default:
		}
		if n.cfg.BatchDelay <= 0 {
			break
		}
		if timer == nil {
			timer = n.cfg.Clock.NewTimer(n.cfg.BatchDelay)
		}
		select {
		case it := <-p.queue:
			batch = append(batch, it)
			size += len(it.frags.body)
		case <-timer.C():
			return batch
		case <-p.ctx.Done():
			return batch
		}
	}
	return batch
}

// writeBatch writes a batch as one or more deltas messages of at most
// MaxMessageBytes, leaving out the collections the peer merges under other
// rules.
func (n *Node) writeBatch(p *peer, dc *dataConn, batch []*outDelta) error {
	excl := n.excluded(p.name)
	// The message is built in place: a deltas header whose flags and
	// fragment count are patched at the end, then the encoded fragments.
	const head = 9
	start := func() {
		p.buf = appendFragmentsHeader(appendDeltasHeader(p.buf[:0], 0), 0)
	}
	count := 0
	flush := func() error {
		if count == 0 {
			return nil
		}
		binary.BigEndian.PutUint32(p.buf[head-4:head], uint32(count))
		if err := dc.write(p.buf); err != nil {
			return err
		}
		n.c.deltasSent.Add(1)
		n.c.fragmentsSent.Add(uint64(count))
		count = 0
		start()
		return nil
	}
	start()
	for i, it := range batch {
		f := it.frags
		if kept, left := withoutCollections(it.delta, excl); left > 0 {
			n.c.fragmentsDropped.Add(uint64(left))
			f = encodeFragments(kept)
		}
		if f.size()+deltasOverhead > dc.sendMax {
			// Only a peer with a smaller max_message_bytes gets here.
			n.c.fragmentsDropped.Add(uint64(f.n))
			n.log.Warn("delta too large for the peer's max_message_bytes", "peer", p.name,
				"bytes", f.size(), "peer_max", dc.sendMax, "hint", "give every node the same max_message_bytes")
			continue
		}
		if count > 0 && len(p.buf)+len(f.body) > dc.sendMax {
			if err := flush(); err != nil {
				n.dropBatch(batch[i:])
				return err
			}
		}
		p.buf = append(p.buf, f.body...)
		count += f.n
		if it.relay {
			p.buf[3] |= flagRelay
		}
	}
	err := flush()
	if cap(p.buf) > 4*n.cfg.BatchBytes {
		p.buf = nil // a one-off large batch; do not keep its buffer
	}
	return err
}

// maxCoalesce bounds the fragments readDeltas joins into one Merge.
const maxCoalesce = 8192

// readDeltas merges the deltas a peer streams until the stream ends. When
// the replica falls behind, frames pile up in the stream; those already
// arrived are merged together, so a slow replica (one fsync per Merge)
// does fewer, larger merges instead of falling further behind.
func (n *Node) readDeltas(dc *dataConn, from string) {
	fail := func(err error) {
		switch {
		case errors.Is(err, ErrRejected):
			n.c.rejectedPeers.Add(1)
			n.warns.warn(n.log, "deltas:"+from, "delta stream rejected", "peer", from, "err", err.Error())
		case errors.Is(err, ErrTooLarge):
			n.c.decodeErrors.Add(1)
			n.warns.warn(n.log, "deltas:"+from, "delta stream dropped", "peer", from, "err", err.Error())
		}
	}
	var batch *crdt.Delta
	relay := false
	deltas := 0
	for {
		b, err := dc.readFrame(dc.maxFrame, time.Now().Add(n.cfg.IdleTimeout))
		if err != nil {
			if batch.Len() > 0 {
				n.deliver(from, batch, relay, deltas)
			}
			fail(err)
			return
		}
		if len(b) > 0 { // an empty message is a keepalive
			flags, d, err := decodeDeltas(b, n.limits)
			if err != nil {
				n.c.decodeErrors.Add(1)
				n.warns.warn(n.log, "undecodable:"+from, "undecodable delta dropped", "peer", from, "err", err.Error())
			} else {
				deltas++
				relay = relay || flags&flagRelay != 0
				if batch == nil {
					batch = d
				} else {
					batch.Fragments = append(batch.Fragments, d.Fragments...)
				}
			}
		}
		if dc.r.Buffered() > 0 && batch.Len() < maxCoalesce {
			continue // more is already here
		}
		if batch.Len() > 0 {
			n.deliver(from, batch, relay, deltas)
		}
		batch, relay, deltas = nil, false, 0
	}
}

// deliver merges a remote delta and relays what was new.
func (n *Node) deliver(from string, d *crdt.Delta, relay bool, deltas int) {
	n.c.deltasReceived.Add(uint64(deltas))
	n.c.fragmentsReceived.Add(uint64(d.Len()))
	d = n.filter(from, d)
	if d.Len() == 0 {
		return
	}
	changed, err := n.merge(from, d)
	if err != nil {
		return
	}
	if p := n.peerByName(from); p != nil {
		now := n.cfg.Clock.Now()
		p.lastContact.Store(now.UnixNano())
		p.lag.Store(now.UnixNano() - d.MaxStamp().TS.Wall)
	}
	if relay && changed.Len() > 0 {
		n.relay(changed, from)
	}
}

// filter drops the fragments of collections a peer merges under other
// rules.
func (n *Node) filter(from string, d *crdt.Delta) *crdt.Delta {
	d, left := withoutCollections(d, n.excluded(from))
	n.c.fragmentsRejected.Add(uint64(left))
	return d
}

// withoutCollections returns d without the fragments of the excluded
// collections (d itself when it has none) and how many it left out.
func withoutCollections(d *crdt.Delta, excluded map[string]bool) (*crdt.Delta, int) {
	if len(excluded) == 0 {
		return d, 0
	}
	kept := &crdt.Delta{Fragments: make([]crdt.Fragment, 0, d.Len())}
	for _, f := range d.Fragments {
		if !excluded[f.Collection] {
			kept.Fragments = append(kept.Fragments, f)
		}
	}
	if kept.Len() == d.Len() {
		return d, 0
	}
	return kept, d.Len() - kept.Len()
}

// merge joins d into the replica, counting rejections; an error means the
// replica failed.
func (n *Node) merge(from string, d *crdt.Delta) (*crdt.Delta, error) {
	changed, err := n.replica.Merge(d)
	if err != nil {
		if ok, k := isRejection(err); ok {
			n.c.fragmentsRejected.Add(uint64(k))
			n.log.Warn("fragments rejected", "peer", from, "count", k, "err", err.Error())
		} else {
			n.c.mergeErrors.Add(1)
			n.log.Error("merge failed", "peer", from, "fragments", d.Len(), "err", err.Error())
			return nil, err
		}
	}
	n.c.fragmentsMerged.Add(uint64(changed.Len()))
	return changed, nil
}
