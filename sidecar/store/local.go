package store

import (
	"runtime"
	"slices"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
)

// Change is one local change to a record (engine.Change).
type Change = engine.Change

// Cursor is an adapter's capture position, stored in the same transaction
// as the state it covers (engine.Cursor).
type Cursor = engine.Cursor

// ChangeError is a change that a step refused (engine.ChangeError).
type ChangeError = engine.ChangeError

// LocalResult says what a Local call did.
type LocalResult struct {
	// Delta holds the deltas of the changes that changed state, to
	// broadcast. Empty when none did.
	Delta *crdt.Delta
	// Effects lists the records put on the pending-apply queue, with their
	// new merged state.
	Effects []Effect
	// Failed lists the changes that were refused; the others committed.
	Failed []ChangeError
	// Conflicts lists the conflicts captured changes decided that the
	// log recorded (engine.Ready.Conflicts).
	Conflicts []engine.Conflict
}

// stepReader is the engine's view of the store during a Commit: it reads
// records under the writer lock and keeps their headers for the write.
type stepReader struct {
	s    *Store
	keys [][]byte
	hdrs []recordHeader
}

var _ engine.Reader = (*stepReader)(nil)

func (r *stepReader) Collection(name string) (*crdt.Collection, error) { return r.s.collection(name) }

// Read reads the records of a step, sorted by ID, on up to GOMAXPROCS
// goroutines (started and waited for here) for large batches. A record that
// is corrupt gets its Err set; other failures are returned.
func (r *stepReader) Read(ids []crdt.ID, out []engine.Stored) error {
	s := r.s
	r.keys = make([][]byte, len(ids))
	r.hdrs = make([]recordHeader, len(ids))
	for i, id := range ids {
		r.keys[i] = recordKey(id)
		_, out[i].Parked = s.parked[id]
	}
	nw := min(runtime.GOMAXPROCS(0), 4, max(len(ids)/(pipelineMin/2), 1))
	errs := make([]error, nw)
	run := func(w, lo, hi int) {
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		for i := lo; i < hi; i++ {
			h, rec, _, err := s.getRecord(txn, r.keys[i])
			if err != nil {
				if !IsCorrupt(err) {
					errs[w] = err
					return
				}
				out[i].Err = err
				continue
			}
			r.hdrs[i] = h
			out[i].Record, out[i].Queued = rec, h.queued != 0
		}
	}
	if nw == 1 {
		run(0, 0, len(ids))
	} else {
		var wg sync.WaitGroup
		per := (len(ids) + nw - 1) / nw
		for i := range nw {
			lo, hi := min(i*per, len(ids)), min((i+1)*per, len(ids))
			wg.Go(func() { run(i, lo, hi) })
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Local records local changes: engine.Local decides, under the writer
// lock, with this store's replica ID and clock, and Commit makes the result
// durable before Local returns. source is the node name that Prefer
// policies rank. See engine.Local for what the changes do, and Commit for
// the errors.
func (s *Store) Local(source string, changes []Change, cursor *Cursor) (*LocalResult, error) {
	p := s.Params(source)
	rd, err := s.Commit(func(r engine.Reader) (*engine.Ready, error) {
		return engine.Local(r, p, changes, cursor)
	})
	if err != nil {
		return nil, err
	}
	return &LocalResult{Delta: rd.Broadcast, Effects: rd.Effects, Failed: rd.Failed, Conflicts: rd.Conflicts}, nil
}

// Params are the engine parameters of this store, for source: its replica
// ID, clock and limits, and its encoding buffer, which steps may use only
// inside Commit (under the writer lock).
func (s *Store) Params(source string) engine.Params {
	return engine.Params{Replica: s.replica, Source: source, Clock: s.clock, Limits: s.opts.Limits, NoConflicts: s.opts.NoConflictLog, Scratch: &s.scratch.enc}
}

// Commit runs step under the writer lock with a Reader over the stored
// records, and carries out the durable part of the Ready it returns: its
// Writes (new states, their hashes, their pending-apply entries) and its
// Cursor in one transaction (split at record boundaries only when too
// large, the cursor then in the last part), durable before Commit returns.
// The rest of the Ready (broadcast, acknowledgement) is the caller's, in
// that order.
//
// Because step runs under the lock that queue acknowledgements (AckPending)
// and merges take, nothing lands between what it reads and what is written.
// The error return is for failures of the store itself (or of step), after
// which nothing (or, for a split batch, a prefix of whole records without
// the cursor) was written.
func (s *Store) Commit(step func(engine.Reader) (*engine.Ready, error)) (*engine.Ready, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := &stepReader{s: s}
	rd, err := step(r)
	if err != nil {
		return nil, err
	}
	if cursor := rd.Cursor; cursor != nil && (cursor.Name == "" || len(cursor.Name) > maxCursorName) {
		return nil, errors.Newf("cursor name of %d bytes outside [1, %d]", len(cursor.Name), maxCursorName)
	}
	b := s.newBatch()
	defer b.discard()
	for _, f := range rd.Failed {
		if IsCorrupt(f.Err) {
			s.log.Error("cannot change a corrupt record", "err", f.Err)
		}
	}
	for i := range rd.Writes {
		w := &rd.Writes[i]
		if w.Slot < 0 || w.Slot >= len(r.keys) || crdt.MakeID(w.Collection, w.Key) != w.ID {
			return nil, errors.AssertionFailedf("write of %s names no record the step read", w.ID)
		}
		key, hdr := r.keys[w.Slot], r.hdrs[w.Slot]
		if w.Changed {
			hdr.hash = w.Hash
		}
		count, size := recordRoom(key, w.Encoded)
		if err := b.room(count, size+int64(recordHeaderLen)); err != nil {
			return nil, errors.Wrapf(err, "write %s", keyName(key))
		}
		if w.Queue && !s.opts.NoApplyQueue {
			var err error
			if hdr.queued, err = b.enqueue(w.ID, r.hdrs[w.Slot].queued); err != nil {
				return nil, err
			}
		}
		if w.Changed {
			b.stamped = true
		}
		if err := b.putRecord(w.ID, key, hdr, w.Encoded, w.Changed); err != nil {
			return nil, err
		}
	}
	if len(rd.Conflicts) > 0 {
		logged := rd.Conflicts[:0]
		for _, cf := range rd.Conflicts {
			seq, err := s.logConflict(b, cf.Collection, cf.Key, &cf.Conflict)
			if err != nil {
				return nil, err
			}
			if seq != 0 {
				logged = append(logged, cf)
			}
		}
		rd.Conflicts = logged
	}
	s.stats.localChanges.Add(uint64(rd.Broadcast.Len()))
	s.stats.localFailed.Add(uint64(len(rd.Failed)))
	s.stats.commitTimeAhead.Add(uint64(rd.CommitTimesAhead))
	seq := s.seq.Load()
	if rd.Changed {
		seq++
	}
	err = b.finish(func() error {
		if rd.Changed {
			if err := b.set(keySeq, encodeUint(seq)); err != nil {
				return err
			}
		}
		for _, r := range rd.Resolved {
			if err := s.markResolved(b, r.ID, Resolution{By: r.By, At: r.Stamp.TS.Wall, Stamp: r.Stamp, Value: r.Value}); err != nil {
				return err
			}
		}
		if rd.Cursor != nil {
			return b.set(cursorKey(rd.Cursor.Name), slices.Clone(rd.Cursor.Value))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.seq.Store(seq)
	if b.parts > 0 {
		s.stats.localTxns.Add(1)
	}
	return rd, nil
}
