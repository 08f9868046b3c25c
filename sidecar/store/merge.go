package store

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
)

// MergeResult says what a Merge did.
type MergeResult struct {
	// Changed holds the incoming fragments that changed local state, in
	// record order: what is worth relaying. Nil when none did.
	Changed *crdt.Delta
	// Effects lists the records whose visible state changed, with their new
	// merged state. They are already on the pending-apply queue.
	Effects []Effect
	// Rejected lists the fragments that were refused, with why.
	Rejected []Rejection
	// Conflicts lists the conflicts this merge logged (see Conflicts).
	Conflicts []Conflict
}

// Effect is a record whose visible state changed (engine.Effect).
type Effect = engine.Effect

// Rejection is a fragment that was not merged.
type Rejection struct {
	Collection string
	Key        crdt.Key
	// Err says why: crdt.IsClockOffsetError for a stamp too far in the
	// future, crdt.ErrUnknownCollection for a collection a strict schema
	// does not list, crdt.ErrInvalidKey, crdt.ErrTooLarge when the merged
	// record would be over the store's Limits, or ErrCorrupt for a stored
	// record that cannot be read.
	Err error
}

// Merge joins a remote delta into the store. Fragments are processed in
// record order, those of one record together; each record is read once,
// joined with its fragments and, if its state changed, written back with its
// new hash, and put on the pending-apply queue if its visible state changed.
// The batch is one Badger transaction, split at record boundaries when it
// would exceed Badger's limit; every part is consistent on its own, and the
// range tree follows each part after it commits.
//
// A fragment is rejected, not merged, when its highest stamp is too far
// ahead of the local clock (the clock is not moved), when its collection is
// unknown to a strict schema, when its key is empty or too long, or when the
// record it merges into would be over the store's Limits (the fragments of
// that record that would change it are then rejected and the record is left
// as it was). The error return is for failures of the store itself; the
// batch may then be partly applied, which is harmless because merging is
// idempotent.
func (s *Store) Merge(d *crdt.Delta) (*MergeResult, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.stats.merges.Add(1)
	res := &MergeResult{}
	n := d.Len()
	if n == 0 {
		return res, nil
	}
	frags := d.Fragments
	order := slices.Grow(s.scratch.order[:0], n)[:n]
	s.scratch.order = order
	sorted := true
	for i := range order {
		order[i] = int32(i)
		if i > 0 && sorted && cmpFragment(&frags[i-1], &frags[i]) > 0 {
			sorted = false
		}
	}
	if !sorted {
		slices.SortStableFunc(order, func(a, b int32) int { return cmpFragment(&frags[a], &frags[b]) })
	}
	groups := s.scratch.groups[:0]
	for i := 0; i < n; {
		j := i + 1
		for j < n && cmpFragment(&frags[order[j]], &frags[order[i]]) == 0 {
			j++
		}
		groups = append(groups, group{lo: int32(i), hi: int32(j)})
		i = j
	}
	s.scratch.groups = groups
	defer clear(groups) // drop references to records

	b := s.newBatch()
	defer b.discard()
	res.Effects = make([]Effect, 0, len(groups))
	if err := s.mergeGroups(b, frags, order, groups, res); err != nil {
		return nil, err
	}
	if err := b.finish(nil); err != nil {
		return nil, err
	}
	return res, nil
}

func cmpFragment(a, b *crdt.Fragment) int {
	if c := strings.Compare(a.Collection, b.Collection); c != 0 {
		return c
	}
	return strings.Compare(string(a.Key), string(b.Key))
}

// checkKey is the cheap validity check of a key taken from a delta (whose
// decoder already checked its encoding): not empty, not too long.
func checkKey(k crdt.Key) error {
	if len(k) == 0 || len(k) > crdt.MaxKeyBytes {
		return errors.Mark(errors.Newf("key of %d bytes outside [1, %d]", len(k), crdt.MaxKeyBytes), crdt.ErrInvalidKey)
	}
	return nil
}

// group is the merge of the fragments of one record: frags[order[lo:hi]].
// prepare fills it in, apply writes it.
type group struct {
	lo, hi    int32
	id        crdt.ID
	key       []byte // record key
	val       []byte // new record value, nil when the state did not change
	hash      crdt.Hash
	queued    uint64 // the record's queue chunk before the merge
	cur       *crdt.Record
	visible   bool    // the visible state changed
	changed   []int32 // fragments that changed the state
	rejected  []Rejection
	conflicts []crdt.Conflict // decided by the merge, logged or not yet
	err       error           // failure of the store itself
}

// worker is the reusable memory of one prepare goroutine.
type worker struct {
	arena   arena
	enc     []byte
	changed []int32
}

// pipelineChunk is the number of records a prepare goroutine takes at a
// time; pipelineMin the least number of records worth the goroutines.
const (
	pipelineChunk = 128
	pipelineMin   = 512
)

func (s *Store) worker(i int) *worker {
	for len(s.scratch.workers) <= i {
		s.scratch.workers = append(s.scratch.workers, &worker{})
	}
	return s.scratch.workers[i]
}

// mergeGroups reads, joins and encodes the groups and writes them into the
// batch in order. For a large batch the reads, joins and encodings run on up
// to GOMAXPROCS goroutines (at most 4, started and waited for here), a chunk
// of records at a time, while the caller's goroutine writes the chunks into
// the transaction in order as they become ready.
func (s *Store) mergeGroups(b *batch, frags []crdt.Fragment, order []int32, groups []group, res *MergeResult) error {
	// Point lookups, not one iterator walked in key order: an iterator
	// steps over every version of every key between two targets (memtables
	// keep old versions until they flush), while a lookup goes to the newest
	// version and skips tables by their bloom filters.
	if len(groups) < pipelineMin {
		w := s.worker(0)
		w.changed = w.changed[:0]
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		for i := range groups {
			g := &groups[i]
			if s.prepareGroup(w, txn, frags, order, g); g.err != nil {
				return g.err
			}
			if err := s.apply(b, frags, order, g, res); err != nil {
				return err
			}
		}
		return nil
	}
	nw := min(runtime.GOMAXPROCS(0), 4)
	chunks := (len(groups) + pipelineChunk - 1) / pipelineChunk
	span := func(k int) []group { return groups[k*pipelineChunk : min((k+1)*pipelineChunk, len(groups))] }
	ready := make([]chan struct{}, chunks)
	for k := range ready {
		ready[k] = make(chan struct{})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for i := range nw {
		w := s.worker(i)
		wg.Go(func() {
			w.changed = w.changed[:0]
			txn := s.db.NewTransaction(false)
			defer txn.Discard()
			for {
				k := int(next.Add(1) - 1)
				if k >= chunks {
					return
				}
				gs := span(k)
				for j := range gs {
					s.prepareGroup(w, txn, frags, order, &gs[j])
				}
				close(ready[k])
			}
		})
	}
	var err error
	for k := 0; k < chunks && err == nil; k++ {
		<-ready[k]
		gs := span(k)
		for j := 0; j < len(gs) && err == nil; j++ {
			if err = gs[j].err; err == nil {
				err = s.apply(b, frags, order, &gs[j], res)
			}
		}
	}
	if err != nil {
		next.Store(int64(chunks)) // the goroutines stop after their chunk
	}
	wg.Wait()
	return err
}

// prepareGroup computes the new state of one record.
func (s *Store) prepareGroup(w *worker, txn *badger.Txn, frags []crdt.Fragment, order []int32, g *group) {
	idx := order[g.lo:g.hi]
	f0 := &frags[idx[0]]
	rejectAll := func(err error) {
		for _, gi := range idx {
			g.rejected = append(g.rejected, Rejection{Collection: frags[gi].Collection, Key: frags[gi].Key, Err: err})
		}
	}
	c, err := s.collection(f0.Collection)
	if err == nil {
		err = checkKey(f0.Key)
	}
	if err != nil {
		rejectAll(err)
		return
	}
	g.id = crdt.MakeID(f0.Collection, f0.Key)
	g.key = appendRecordKey(w.arena.alloc(1+len(g.id)), g.id)
	var h recordHeader
	var old *crdt.Record
	if !s.treeSound.Load() || s.inTree(g.id) {
		h, old, _, err = s.getRecord(txn, g.key)
	}
	if err != nil {
		if IsCorrupt(err) {
			s.log.Error("cannot merge into a corrupt record", "err", err)
			rejectAll(err)
			return
		}
		g.err = err
		return
	}
	g.queued = h.queued
	cur := old
	first := len(w.changed)
	for _, gi := range idx {
		f := &frags[gi]
		if f.Record.IsEmpty() {
			continue
		}
		if _, err := s.clock.Update(f.Record.MaxStamp().TS); err != nil {
			g.rejected = append(g.rejected, Rejection{Collection: f.Collection, Key: f.Key, Err: err})
			s.stats.clockRejections.Add(1)
			continue
		}
		next, changed := crdt.Merge(c, cur, f.Record)
		if !s.opts.NoConflictLog {
			// Also when nothing changed: an incoming write that loses
			// leaves the state as it was.
			g.conflicts = append(g.conflicts, crdt.Conflicts(c, cur, f.Record, next)...)
		}
		if !changed {
			continue
		}
		cur = next
		w.changed = append(w.changed, gi)
	}
	g.changed = w.changed[first:len(w.changed):len(w.changed)]
	if len(g.changed) == 0 {
		return
	}
	if w.enc, err = crdt.EncodeRecord(w.enc[:0], cur, s.opts.Limits); err != nil {
		// The merged record would be over a limit: keep the record as it
		// was, so that everything stored stays readable.
		for _, gi := range g.changed {
			g.rejected = append(g.rejected, Rejection{Collection: frags[gi].Collection, Key: frags[gi].Key, Err: err})
		}
		w.changed, g.changed = w.changed[:first], nil
		return
	}
	g.cur = cur
	g.hash = crdt.HashRecord(g.id, w.enc)
	g.val = appendRecordValue(w.arena.alloc(recordHeaderLen+len(w.enc)), recordHeader{hash: g.hash, queued: h.queued}, w.enc)
	g.visible = engine.QueueMerged(c, old, cur)
}

// apply writes a prepared group into the batch and reports it in res.
func (s *Store) apply(b *batch, frags []crdt.Fragment, order []int32, g *group, res *MergeResult) error {
	n := uint64(g.hi - g.lo)
	res.Rejected = append(res.Rejected, g.rejected...)
	s.stats.fragsRejected.Add(uint64(len(g.rejected)))
	if len(g.conflicts) > 0 {
		f0 := &frags[order[g.lo]]
		logged, err := s.logConflicts(b, f0.Collection, f0.Key, g.conflicts)
		if err != nil {
			return err
		}
		res.Conflicts = append(res.Conflicts, logged...)
	}
	if g.val == nil {
		s.stats.fragsUnchanged.Add(n - uint64(len(g.rejected)))
		return nil
	}
	count, size := recordRoom(g.key, g.val)
	if err := b.room(count, size); err != nil {
		s.log.Error("cannot store a merged record", "record", g.id.String(), "err", err)
		for _, gi := range order[g.lo:g.hi] {
			res.Rejected = append(res.Rejected, Rejection{Collection: frags[gi].Collection, Key: frags[gi].Key, Err: err})
		}
		s.stats.fragsRejected.Add(n)
		return nil
	}
	if g.visible {
		if !s.opts.NoApplyQueue {
			q, err := b.enqueue(g.id, g.queued)
			if err != nil {
				return err
			}
			setQueued(g.val, q)
		}
		f0 := &frags[order[g.lo]]
		res.Effects = append(res.Effects, Effect{Collection: f0.Collection, Key: f0.Key, Record: g.cur})
	}
	b.stamped = true
	if err := b.putValue(g.id, g.key, g.val, g.hash, true); err != nil {
		return err
	}
	if res.Changed == nil {
		res.Changed = &crdt.Delta{Fragments: make([]crdt.Fragment, 0, len(frags))}
	}
	for _, gi := range g.changed {
		res.Changed.Fragments = append(res.Changed.Fragments, frags[gi])
	}
	s.stats.fragsMerged.Add(uint64(len(g.changed)))
	s.stats.fragsUnchanged.Add(n - uint64(len(g.changed)) - uint64(len(g.rejected)))
	return nil
}
