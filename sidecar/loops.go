package sidecar

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// captureLoop runs the adapter's snapshot (once) and capture, restarting
// capture from the last durable cursor with backoff when the system fails.
func (a *Agent) captureLoop(ctx context.Context) {
	b := backoff{first: 200 * time.Millisecond, max: a.cfg.Apply.MaxBackoff}
	for ctx.Err() == nil {
		err := a.captureOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		a.m.captureErrors.Inc()
		a.setState(&a.captureSt, "retrying", err)
		a.log.Warn("capture stopped; restarting from the last durable cursor", "err", err, "retry_in", b.delay())
		if !b.wait(ctx, a.clock) {
			return
		}
	}
}

func (a *Agent) captureOnce(ctx context.Context) error {
	cursor, err := a.store.Cursor(a.cursorName)
	if err != nil {
		return err
	}
	if len(cursor) == 0 {
		a.setState(&a.captureSt, "snapshot", nil)
		if cursor, err = a.snapshot(ctx); err != nil {
			return errors.Wrap(err, "initial snapshot")
		}
	} else {
		a.engMu.Lock()
		first := a.eng.Positions().Empty()
		a.engMu.Unlock()
		if first {
			// Applies made before this process started are unknown: until
			// capture passes the system's current head, any captured change
			// may have been overwritten by one.
			head, err := a.adp.Head(ctx)
			if err != nil {
				return errors.Wrap(err, "read the system's capture head")
			}
			a.engMu.Lock()
			a.eng.Positions().Barrier(head)
			a.engMu.Unlock()
		}
	}
	a.setState(&a.captureSt, "capturing", nil)
	a.ready.Store(true)
	a.upOnce.Do(func() { close(a.captureUp) })
	prev := cursor
	err = a.adp.Capture(ctx, cursor, func(ctx context.Context, b adapters.Batch) error {
		if err := a.captured(ctx, b, prev, &engine.Cursor{Name: a.cursorName, Value: b.Cursor}, nil); err != nil {
			return err
		}
		prev = b.Cursor
		return nil
	})
	if errors.Is(err, adapters.ErrCursor) && ctx.Err() == nil {
		// The system cannot continue from the stored cursor (its change log
		// was reset): forget it, so that the next attempt takes a new
		// snapshot. Rows equal to the merged state diff to nothing.
		a.log.Error("the system cannot resume capture from the stored cursor; taking a new snapshot", "err", err)
		if _, ferr := a.storeCursor([]byte{}); ferr != nil {
			return errors.Wrap(ferr, "forget the cursor")
		}
	}
	return err
}

// snapshot stores every row of the system as a captured change, stores the
// cursor capture continues from, and queues for apply the records the store
// holds that the system lacks (learned from peers before the snapshot).
func (a *Agent) snapshot(ctx context.Context) ([]byte, error) {
	seen := map[crdt.ID]struct{}{}
	kept, taken := a.joinKept.Load(), a.joinTaken.Load()
	start := a.clock.Now()
	cursor, err := a.adp.Snapshot(ctx, func(ctx context.Context, b adapters.Batch) error {
		return a.captured(ctx, b, nil, nil, seen)
	})
	if err != nil {
		return nil, err
	}
	// The range tree lists every record without decoding one; only the
	// records the snapshot did not see are read, to skip tombstones.
	var unseen []crdt.ID
	a.store.Ascend("", "", func(id crdt.ID, _ crdt.Hash) bool {
		if _, ok := seen[id]; !ok {
			unseen = append(unseen, id)
		}
		return true
	})
	var missing []crdt.ID
	for part := range slices.Chunk(unseen, 1000) {
		d, err := a.store.Records(part)
		if err != nil {
			return nil, err
		}
		cat := a.catalog()
		for _, f := range d.Fragments {
			if cat.QueueUnseen(f) {
				missing = append(missing, crdt.MakeID(f.Collection, f.Key))
			}
		}
	}
	if len(missing) > 0 {
		if err := a.store.Enqueue(missing); err != nil {
			return nil, err
		}
		a.wakeApply()
	}
	if _, err := a.storeCursor(cursor); err != nil {
		return nil, err
	}
	if err := a.ack(ctx, cursor); err != nil {
		a.log.Warn("acknowledge snapshot cursor", "err", err)
	}
	a.log.Info("initial snapshot stored", "rows", len(seen), "queued_for_system", len(missing),
		"initial_sync", a.cfg.InitialSync.Mode, "known_kept", a.joinKept.Load()-kept, "known_taken_from_system", a.joinTaken.Load()-taken,
		"took", clock.Since(a.clock, start).Round(time.Millisecond))
	return cursor, nil
}

// captured steps a batch of captured changes through the engine and
// carries out its Ready in order: the store makes the new states and the
// cursor durable (store.Commit, the step running under the store's writer
// lock), then the delta is broadcast and the applier woken, then the cursor
// is handed to ackLoop, which acknowledges it to the system between apply
// batches (queueAck). prev is the cursor the batch starts after (nil for
// snapshot batches).
func (a *Agent) captured(ctx context.Context, b adapters.Batch, prev []byte, cursor *engine.Cursor, seen map[crdt.ID]struct{}) error {
	if a.needsCatalog(b.Changes) {
		// A table or column created since the last look: map it before the
		// batch is read with the old mapping (key columns taken for fields).
		if err := a.refreshCatalog(ctx, false); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.log.Warn("refresh of the system's catalog failed; the previous mapping stays", "err", err)
		}
	}
	if len(b.Changes) == 0 && cursor == nil {
		return nil
	}
	if seen != nil {
		for _, c := range b.Changes {
			seen[crdt.MakeID(c.Collection, c.Key)] = struct{}{}
		}
	}
	if a.knobs.beforeLocal != nil && cursor != nil {
		a.knobs.beforeLocal(b)
	}
	rd, err := a.step(func(r engine.Reader) (*engine.Ready, error) { return a.eng.Capture(r, b, prev, cursor) })
	if err != nil {
		return err
	}
	a.joinKept.Add(int64(rd.JoinKept))
	a.joinTaken.Add(int64(rd.JoinTaken))
	for _, sk := range rd.Skipped {
		a.m.badRows.Inc()
		a.log.Warn("captured change for an unknown collection skipped", "collection", sk.Collection, "err", sk.Err)
	}
	a.afterLocal(rd, "capture")
	a.markBatch(&a.captureSt)
	if cursor != nil {
		a.engMu.Lock()
		a.eng.Advance(rd)
		a.engMu.Unlock()
		a.queueAck(rd.Ack)
	}
	return nil
}

// queueAck hands a durable capture cursor to ackLoop. Capture does not wait
// for the acknowledgement, which waits for the apply batch in progress (see
// ack): an adapter's Apply may itself wait for capture to read on
// (PostgreSQL's waits for its stream to decode a marker).
func (a *Agent) queueAck(cursor []byte) {
	a.ackMu.Lock()
	a.ackNext = cursor
	a.ackMu.Unlock()
	select {
	case a.ackWake <- struct{}{}:
	default:
	}
}

// ackLoop acknowledges the latest cursor queueAck was given, then wakes
// the applier if an Apply deferred writes for changes capture had not
// taken: they may go now.
func (a *Agent) ackLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.ackWake:
		}
		a.ackMu.Lock()
		cursor := a.ackNext
		a.ackNext = nil
		a.ackMu.Unlock()
		if cursor == nil {
			continue
		}
		if err := a.ack(ctx, cursor); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("acknowledge cursor", "err", err)
		} else if a.applyDeferred.Swap(false) {
			a.wakeApply()
		}
	}
}

// ack acknowledges a durable capture cursor to the system, between apply
// batches: an adapter may discard what capture passed on Ack (SQLite
// deletes its log rows), and an apply batch reads the log after the cursor
// its merged rows include to defer records changed since (see
// adapters.Adapter.Apply). Were the rows of a batch captured meanwhile
// discarded in between, the apply would not see them and would write its
// older rows over the users' changes.
func (a *Agent) ack(ctx context.Context, cursor []byte) error {
	if a.knobs.acking != nil {
		a.knobs.acking(true)
		defer a.knobs.acking(false)
	}
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	return a.adp.Ack(ctx, cursor)
}

// step runs an engine step under the store's writer lock (store.Commit)
// and the engine's lock, and returns its Ready once the durable part is
// durable. The caller carries out the rest, in order.
func (a *Agent) step(fn func(engine.Reader) (*engine.Ready, error)) (*engine.Ready, error) {
	return a.store.Commit(func(r engine.Reader) (*engine.Ready, error) {
		a.engMu.Lock()
		defer a.engMu.Unlock()
		return fn(r)
	})
}

// storeCursor makes the capture cursor durable, with no change.
func (a *Agent) storeCursor(cursor []byte) (*engine.Ready, error) {
	return a.step(func(r engine.Reader) (*engine.Ready, error) {
		return a.eng.Local(r, nil, &engine.Cursor{Name: a.cursorName, Value: cursor})
	})
}

// afterLocal carries out the part of a durable Ready that follows the
// store: it broadcasts the delta, counts it and wakes the applier.
func (a *Agent) afterLocal(rd *engine.Ready, via string) {
	for _, c := range rd.Conflicts {
		a.countConflict(c.Collection, c.Field, c.Rule)
	}
	for _, f := range rd.Failed {
		a.m.badRows.Inc()
		a.log.Warn("change rejected", "via", via, "collection", f.Collection, "key", f.Key, "err", f.Err)
	}
	if rd.Broadcast.Len() > 0 {
		a.m.localFragments.Add(float64(rd.Broadcast.Len()))
		a.node.Broadcast(rd.Broadcast)
	}
	if len(rd.Effects) > 0 && a.adp != nil {
		a.wakeApply()
	}
}

func (a *Agent) wakeApply() {
	select {
	case a.applyWake <- struct{}{}:
	default:
	}
}

// applyLoop writes queued merged records into the system, batch by batch,
// retrying with backoff while the system is down and setting aside rows the
// system rejects.
func (a *Agent) applyLoop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-a.captureUp:
	}
	// The tick is a safety net for wakes lost across restarts; every enqueue
	// also wakes the loop.
	tick := a.clock.NewTicker(time.Second)
	defer tick.Stop()
	b := backoff{first: 100 * time.Millisecond, max: a.cfg.Apply.MaxBackoff}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.applyWake:
		case <-tick.C():
		}
		for ctx.Err() == nil {
			n, err := a.applyBatch(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.m.applyErrors.Inc()
				a.setState(&a.applySt, "retrying", err)
				a.log.Warn("apply failed; the queue waits and retries", "err", err, "retry_in", b.delay(), "pending", a.store.PendingLen())
				if !b.wait(ctx, a.clock) {
					return
				}
				continue
			}
			b.reset()
			if n == 0 {
				a.setState(&a.applySt, "idle", nil)
				a.recovered(&a.applySt)
				break
			}
		}
	}
}

// applyBatch applies one batch of the pending queue and returns how many
// records it settled.
func (a *Agent) applyBatch(ctx context.Context) (int, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	// The capture position the merged states read next include: the
	// adapter defers a write whose record changed in the system after it.
	since, err := a.store.Cursor(a.cursorName)
	if err != nil {
		return 0, err
	}
	items, err := a.store.Pending(a.cfg.Apply.BatchSize)
	if err != nil || len(items) == 0 {
		return 0, err
	}
	writes := make([]adapters.Write, 0, len(items))
	var settled, apply []store.Pending
	parked := 0
	info := a.catalog()
	for _, p := range items {
		if p.Err != nil {
			// The stored state does not decode: it cannot be written, and
			// must not hold up the records behind it.
			if err := a.park(p, p.Err); err != nil {
				return 0, err
			}
			parked++
			continue
		}
		ci, err := info.Lookup(p.Collection)
		if err != nil || !ci.Synced {
			// The system does not hold this collection: nothing to write.
			settled = append(settled, p)
			continue
		}
		col, err := a.schema.Collection(p.Collection)
		if err != nil {
			settled = append(settled, p)
			continue
		}
		w := adapters.Write{Collection: p.Collection, Key: p.Key}
		if view := p.Record.View(col); view != nil {
			row, err := ci.KeyRow(p.Key)
			if err == nil {
				maps.Copy(row, view)
				w.Row, err = ci.ToSystem(row)
			}
			if err != nil {
				if err := a.park(p, err); err != nil {
					return 0, err
				}
				parked++
				continue
			}
		}
		writes = append(writes, w)
		apply = append(apply, p)
	}
	if len(settled) > 0 {
		if err := a.store.AckPending(settled); err != nil {
			return 0, err
		}
	}
	if len(writes) == 0 {
		return len(settled) + parked, nil
	}
	a.setState(&a.applySt, "applying", nil)
	ids := make([]crdt.ID, len(writes))
	for i, w := range writes {
		ids[i] = crdt.MakeID(w.Collection, w.Key)
	}
	a.engMu.Lock()
	a.eng.Positions().Applying(ids)
	a.engMu.Unlock()
	if a.knobs.beforeApply != nil {
		a.knobs.beforeApply(writes)
	}
	start := a.clock.Now()
	res, err := a.adp.Apply(ctx, writes, since)
	if a.knobs.afterApply != nil && err == nil {
		a.knobs.afterApply(res)
	}
	if err != nil {
		re, ok := adapters.RowErrorOf(err)
		switch {
		case ok && errors.Is(err, adapters.ErrBadRow):
			for _, p := range apply {
				if p.Collection == re.Collection && p.Key == re.Key {
					if err := a.park(p, re.Err); err != nil {
						return 0, err
					}
					return 1, nil
				}
			}
			return 0, errors.Wrap(err, "apply reported a bad row outside its batch")
		case errors.Is(err, adapters.ErrUnavailable):
			return 0, err
		}
		// An error that names no write and does not say the system is
		// unavailable: find the write that causes it.
		return a.applyEach(ctx, apply, writes, since, err)
	}
	a.engMu.Lock()
	a.eng.Positions().AppliedAt(ids, res.Position)
	a.engMu.Unlock()
	a.m.applyLatency.Observe(clock.Since(a.clock, start).Seconds())
	a.m.appliedRows.Add(float64(len(writes) - len(res.Deferred)))
	a.markBatch(&a.applySt)
	if len(res.Deferred) > 0 {
		// The system holds changes to these records that capture has not
		// taken yet.
		later := make([]crdt.ID, len(res.Deferred))
		for i, d := range res.Deferred {
			later[i] = ids[d]
		}
		apply = slices.DeleteFunc(apply, func(p store.Pending) bool { return slices.Contains(later, p.ID()) })
		if err := a.deferApply(later); err != nil {
			return 0, err
		}
	}
	if err := a.store.AckPending(apply); err != nil {
		return 0, err
	}
	return len(items) - len(res.Deferred), nil
}

// deferApply puts records whose writes Apply deferred at the back of the
// queue, so that the records behind them are applied meanwhile; the next
// acknowledged capture wakes the applier to try them again.
func (a *Agent) deferApply(ids []crdt.ID) error {
	a.applyDeferred.Store(true)
	a.m.applyDeferred.Add(float64(len(ids)))
	return a.store.Enqueue(ids)
}

// applyEach applies a batch whose Apply failed with an error that named no
// write (batchErr) one write at a time, in order. A write that fails alone
// with a bad row, or with an error that names no write while the system
// answers (its Head can be read), is parked; the others are applied. An
// unavailable system ends the pass: what is left stays queued and the error
// is retried with backoff.
func (a *Agent) applyEach(ctx context.Context, items []store.Pending, writes []adapters.Write, since []byte, batchErr error) (int, error) {
	a.log.Warn("apply of a batch failed with an error that names no record; applying its records one at a time",
		"records", len(writes), "err", batchErr)
	settled := 0
	for i, w := range writes {
		id := crdt.MakeID(w.Collection, w.Key)
		res, err := a.adp.Apply(ctx, []adapters.Write{w}, since)
		if err == nil {
			a.engMu.Lock()
			a.eng.Positions().AppliedAt([]crdt.ID{id}, res.Position)
			a.engMu.Unlock()
			if len(res.Deferred) > 0 {
				if err := a.deferApply([]crdt.ID{id}); err != nil {
					return settled, err
				}
				continue
			}
			a.m.appliedRows.Inc()
			if err := a.store.AckPending(items[i : i+1]); err != nil {
				return settled, err
			}
			settled++
			continue
		}
		why := err
		if re, ok := adapters.RowErrorOf(err); ok && errors.Is(err, adapters.ErrBadRow) {
			why = re.Err
		} else if errors.Is(err, adapters.ErrUnavailable) || ctx.Err() != nil {
			return settled, err
		} else if _, herr := a.adp.Head(ctx); herr != nil {
			// The system does not answer: the write may not be at fault.
			return settled, errors.CombineErrors(err, herr)
		}
		if err := a.park(items[i], why); err != nil {
			return settled, err
		}
		settled++
	}
	a.markBatch(&a.applySt)
	return settled, nil
}

// park sets aside a record that cannot be written into the system.
func (a *Agent) park(p store.Pending, why error) error {
	a.log.Error("a record cannot be written into the system; it is set aside (see /v1/status)",
		"collection", p.Collection, "key", p.Key, "err", why)
	if err := a.store.Park(p, why.Error()); err != nil {
		return err
	}
	a.m.parked.Inc()
	return nil
}

// replica is the store as gossip sees it: merging also counts, measures
// propagation delay and wakes the applier.
type replica struct{ a *Agent }

var _ gossip.Replica = replica{}

func (r replica) Merge(d *crdt.Delta) (*crdt.Delta, error) {
	a := r.a
	res, err := a.store.Merge(d)
	if err != nil {
		return nil, err
	}
	a.m.receivedFragments.Add(float64(d.Len()))
	for _, c := range res.Conflicts {
		a.countConflict(c.Collection, c.Field, c.Rule)
	}
	for _, rej := range res.Rejected {
		reason := "other"
		switch {
		case crdt.IsClockOffsetError(rej.Err):
			reason = "clock_offset"
		case errors.Is(rej.Err, crdt.ErrUnknownCollection):
			reason = "unknown_collection"
		case crdt.IsTooLarge(rej.Err):
			reason = "too_large"
		}
		a.m.rejected.WithLabelValues(reason).Inc()
		a.log.Warn("remote change rejected", "collection", rej.Collection, "key", rej.Key, "reason", reason, "err", rej.Err)
	}
	if res.Changed.Len() > 0 {
		now := a.store.Clock().Physical()
		for _, f := range res.Changed.Fragments {
			if delay := now - f.Record.MaxStamp().TS.Wall; delay >= 0 {
				a.m.propagation.Observe(float64(delay) / 1e9)
			}
		}
		a.m.mergedFragments.Add(float64(res.Changed.Len()))
	}
	if len(res.Effects) > 0 && a.adp != nil {
		a.wakeApply()
	}
	return res.Changed, nil
}

func (r replica) Digest() crdt.Fingerprint { return r.a.store.Digest() }

func (r replica) Fingerprint(lo, hi crdt.ID) crdt.Fingerprint { return r.a.store.Fingerprint(lo, hi) }

func (r replica) Split(lo, hi crdt.ID, parts int) []crdt.ID { return r.a.store.Split(lo, hi, parts) }

func (r replica) Ascend(lo, hi crdt.ID, fn func(crdt.ID, crdt.Hash) bool) {
	r.a.store.Ascend(lo, hi, fn)
}

func (r replica) Records(ids []crdt.ID) (*crdt.Delta, error) { return r.a.store.Records(ids) }

func (r replica) ReadRange(lo, hi crdt.ID, limit int) (*crdt.Delta, error) {
	return r.a.store.ReadRange(lo, hi, limit)
}
