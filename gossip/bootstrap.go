package gossip

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// bootstrapChunkBytes is the target size of one bootstrap chunk.
const bootstrapChunkBytes = 256 << 10

// Bootstrap streams the full state from a live peer into the replica, in
// chunks in ID order, for a new or wiped replica. Deltas keep arriving and
// merging meanwhile (joins commute), and an anti-entropy round follows to
// pick up what changed during the transfer. If a peer fails midway the next
// one resumes from the last chunk. Peers with the same schema fingerprint
// are tried first.
func (n *Node) Bootstrap(ctx context.Context) error {
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return errors.Wrap(ctx.Err(), "bootstrap: wait for a session slot")
	case <-n.ctx.Done():
		return ErrClosed
	}
	defer func() { <-n.sem }()
	ctx, stopAll := mergeCancel(ctx, n.ctx)
	defer stopAll()

	n.mu.Lock()
	var same, other []*peer
	for _, p := range n.peers {
		if p.meta.Schema == n.schema.FP {
			same = append(same, p)
		} else {
			other = append(other, p)
		}
	}
	n.mu.Unlock()
	n.rngMu.Lock()
	for _, ps := range [][]*peer{same, other} {
		n.rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	}
	n.rngMu.Unlock()
	cands := append(same, other...)
	if len(cands) == 0 {
		return errors.Mark(errors.WithHint(errors.New("bootstrap: no live peer"),
			"join a cluster with at least one running node first"), ErrNoPeer)
	}
	cursor := crdt.ID("")
	var errs []error
	start := n.cfg.Clock.Now()
	records := 0
	backoff := 50 * time.Millisecond
	for {
		busy := 0
		for _, p := range cands {
			done, err := n.bootstrapFrom(ctx, p, &cursor, &records)
			if done {
				n.c.bootstraps.Add(1)
				n.log.Info("bootstrap complete", "peer", p.name, "records", records, "took", n.cfg.Clock.Now().Sub(start))
				n.kickSync()
				return nil
			}
			if ctx.Err() != nil {
				return errors.Wrap(ctx.Err(), "bootstrap")
			}
			if errors.Is(err, ErrBusy) {
				busy++
				continue
			}
			n.log.Warn("bootstrap from peer failed, trying the next", "peer", p.name, "err", err.Error())
			errs = append(errs, err)
		}
		if busy == 0 || n.cfg.Clock.Now().Sub(start) > 10*n.cfg.IOTimeout {
			break
		}
		// Every peer that answered is busy with other sessions: wait.
		t := n.cfg.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Wrap(ctx.Err(), "bootstrap")
		case <-t.C():
		}
		backoff = min(2*backoff, time.Second)
	}
	return errors.Mark(errors.Wrapf(errors.Join(errs...), "bootstrap: no peer could serve the state (%d tried)", len(cands)), ErrNoPeer)
}

func (n *Node) bootstrapFrom(ctx context.Context, p *peer, cursor *crdt.ID, records *int) (bool, error) {
	dc, err := n.dial(ctx, p, purposeBootstrap)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			n.c.syncsRefused.Add(1)
		}
		return false, err
	}
	stop := context.AfterFunc(ctx, dc.close)
	defer stop()
	defer dc.close()
	m := encodeBootstrapReq(*cursor)
	err = dc.write(m.bytes())
	m.free()
	if err != nil {
		return false, err
	}
	for {
		b, err := dc.read()
		if err != nil {
			return false, errors.Wrap(err, "read chunk")
		}
		next, done, d, err := decodeBootstrapChunk(b, n.limits)
		if err != nil {
			n.c.decodeErrors.Add(1)
			return false, err
		}
		d = n.filter(p.name, d)
		if d.Len() > 0 {
			if _, err := n.merge(p.name, d); err != nil {
				return false, err
			}
		}
		*records += d.Len()
		n.c.bootstrapRecords.Add(uint64(d.Len()))
		n.c.bootstrapBytes.Add(uint64(len(b) + 4))
		if done {
			return true, nil
		}
		if next <= *cursor {
			return false, errors.Newf("bootstrap chunk does not advance (%s)", next)
		}
		*cursor = next
	}
}

// serveBootstrap streams the replica in ID order from the requested ID.
func (n *Node) serveBootstrap(dc *dataConn, from string) {
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, dc.close)
	defer stop()
	b, err := dc.read()
	if err != nil {
		return
	}
	cursor, err := decodeBootstrapReq(b, n.limits)
	if err != nil {
		n.c.decodeErrors.Add(1)
		n.log.Warn("bad bootstrap request", "peer", from, "err", err.Error())
		return
	}
	excl := n.excluded(from)
	limit := recordChunk
	maxChunk := min(bootstrapChunkBytes*4, dc.sendMax-64)
	for {
		d, err := n.replica.ReadRange(cursor, "", limit)
		if err != nil {
			n.log.Error("bootstrap read failed", "peer", from, "err", err.Error())
			return
		}
		done := d.Len() < limit
		var recs fragments
		next := cursor
		for i, f := range encodeEach(d) {
			fr := &d.Fragments[i]
			id := crdt.MakeID(fr.Collection, fr.Key)
			if excl[fr.Collection] {
				// Skip the whole collection.
				next = crdt.ID(fr.Collection + "\x01")
				done = false
				break
			}
			if f.size() > maxChunk {
				n.c.fragmentsDropped.Add(1)
				n.log.Error("record too large for bootstrap", "record", id.String(), "bytes", f.size(),
					"hint", "raise max_message_bytes on every node")
				next = id + "\x00"
				continue
			}
			if recs.n > 0 && recs.size()+len(f.body) > maxChunk {
				done = false
				break
			}
			recs.add(f)
			next = id + "\x00"
		}
		m := encodeBootstrapChunk(next, done, &recs)
		err = dc.write(m.bytes())
		m.free()
		if err != nil {
			n.log.Debug("bootstrap stream broke", "peer", from, "err", err.Error())
			return
		}
		if done {
			n.c.bootstrapsServed.Add(1)
			return
		}
		cursor = next
		// Aim chunks at bootstrapChunkBytes.
		switch {
		case recs.size() < bootstrapChunkBytes/2 && limit < 1<<14:
			limit *= 2
		case recs.size() > bootstrapChunkBytes*2 && limit > 1:
			limit /= 2
		}
	}
}
