package store

import (
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Change is one local change to a record: captured from the local system or
// written through the HTTP API.
type Change struct {
	Collection string
	Key        crdt.Key
	// Row holds the observed or written fields (key columns are ignored).
	// Fields it does not name are left alone unless Full is set.
	Row crdt.Row
	// Full says Row is the whole row: visible fields it lacks become null.
	Full bool
	// Delete deletes the record; Row is ignored and Add and Remove must be
	// empty.
	Delete bool
	// Add and Remove are OR-set element operations by field (HTTP PATCH).
	// A field may not appear both here and in Row.
	Add, Remove map[string][]crdt.Value
	// Captured says the change was observed in the local system, which
	// therefore already holds Row.
	Captured bool
	// Base is the row before a captured change, when the system reports
	// it. Only the fields that differ between Base and Row are the change's
	// intent (crdt.DiffFrom): a field the change left alone is not written
	// even if the system's copy of it is stale.
	Base crdt.Row
	// Stale says the system may no longer hold Row: an apply may have
	// overwritten it after the change was committed and before it was
	// captured. If the change changes the merged state, the record is queued
	// for apply even when Row equals the new merged view.
	Stale bool
	// StaleCheck, when set, decides Stale inside Local, under the store's
	// writer lock, so that no queue acknowledgement (AckPending) lands
	// between the decision and the write. A check made before Local can be
	// overtaken: an apply that overwrote the change in the system and was
	// acknowledged after the check would leave the system holding the
	// applied row while the store holds the change. True counts as Stale.
	StaleCheck func() bool
	// Committed is when the system committed a captured change, in Unix
	// nanoseconds by the system's clock; zero when unknown. Local then
	// stamps the change with that time instead of the time it is captured,
	// so that capture lag does not reorder it against changes made
	// elsewhere (see commitStamp).
	Committed int64
	// Resolves, when set, is the ID of a logged conflict this change
	// resolves (a manual override): in the same transaction as the change,
	// the conflict is marked resolved by ResolvedBy, at the change's stamp,
	// with the value Row holds for its field (or as a delete). A change
	// naming a conflict the log does not hold fails with ErrNoConflict.
	Resolves   uint64
	ResolvedBy string
}

// Cursor is an adapter's capture position, stored in the same transaction
// as the state it covers.
type Cursor struct {
	Name  string
	Value []byte
}

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
	// Conflicts lists the conflicts captured changes decided and the log
	// recorded: a captured write that won over a merged write its writer
	// had not seen, or lost to one that had not seen it.
	Conflicts []Conflict
}

// ChangeError is a change that Local refused.
type ChangeError struct {
	// Index is the change's position in the Local call.
	Index      int
	Collection string
	Key        crdt.Key
	// Err is marked crdt.ErrPolicy, crdt.ErrInvalidKey or
	// crdt.ErrUnknownCollection for a change that does not fit the schema,
	// crdt.ErrTooLarge when the record it changes would be over the store's
	// Limits (every change of that record in the call then fails), or
	// ErrCorrupt when the record it changes cannot be read.
	Err error
}

func (e ChangeError) Error() string {
	return "change " + strconv.Itoa(e.Index) + " (" + e.Collection + "/" + e.Key.String() + "): " + e.Err.Error()
}

// localRecord is one record touched by a Local call.
type localRecord struct {
	id      crdt.ID
	key     []byte // record key
	col     *crdt.Collection
	change  *Change // first change, for the collection and key
	hdr     recordHeader
	old     *crdt.Record
	cur     *crdt.Record
	changed bool
	// apiChanged is set when a non-captured change changed the state: the
	// local system must receive it.
	apiChanged bool
	// captured is the last captured change: what the system now holds.
	captured *Change
	// stale is set when a captured change may have been overwritten in the
	// system by an apply (Change.Stale).
	stale bool
	// err is set when the record cannot be read (ErrCorrupt).
	err error
	// changes are the indexes of the changes that changed the record.
	changes []int
	// conflicts are those its captured changes decided.
	conflicts []crdt.Conflict
}

// readLocal reads the records of a Local call, sorted by ID, on up to
// GOMAXPROCS goroutines (started and waited for here) for large batches.
// A record that is corrupt gets its err set; other failures are returned.
func (s *Store) readLocal(recs []*localRecord) error {
	nw := min(runtime.GOMAXPROCS(0), 4, max(len(recs)/(pipelineMin/2), 1))
	errs := make([]error, nw)
	run := func(w int, part []*localRecord) {
		txn := s.db.NewTransaction(false)
		defer txn.Discard()
		for _, lr := range part {
			h, rec, _, err := s.getRecord(txn, lr.key)
			if err != nil {
				if !IsCorrupt(err) {
					errs[w] = err
					return
				}
				lr.err = err
				continue
			}
			lr.hdr, lr.old, lr.cur = h, rec, rec
		}
	}
	if nw == 1 {
		run(0, recs)
	} else {
		var wg sync.WaitGroup
		per := (len(recs) + nw - 1) / nw
		for i := range nw {
			lo, hi := min(i*per, len(recs)), min((i+1)*per, len(recs))
			wg.Go(func() { run(i, recs[lo:hi]) })
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

// Local records local changes. Each change is stamped under this replica's
// ID and source (the node name that Prefer policies rank) with a fresh
// Clock.Now() timestamp, or, for a captured change whose commit time is
// known, with that time (commitStamp), turned into a delta against the merged state
// (crdt.Diff, crdt.SetOps, crdt.Delete) and joined. The new states, their
// hashes, the pending-apply entries and the cursor are written in one
// transaction (split at record boundaries only when too large, the cursor
// then in the last part), durable before Local returns.
//
// A captured change queues its record for apply only when the new merged
// view differs from the captured row (a Prefer or Max field that the policy
// kept at another value), so that the system gets corrected; a change from
// the API queues every record whose state changed. A change equal to the
// merged state writes nothing; with nothing else to write, only the cursor
// is written.
//
// A change that does not fit the schema is reported in Failed and the
// others commit; the error return is for failures of the store itself,
// after which nothing (or, for a split batch, a prefix of whole records
// without the cursor) was written.
func (s *Store) Local(source string, changes []Change, cursor *Cursor) (*LocalResult, error) {
	if cursor != nil && (cursor.Name == "" || len(cursor.Name) > maxCursorName) {
		return nil, errors.Newf("cursor name of %d bytes outside [1, %d]", len(cursor.Name), maxCursorName)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	res := &LocalResult{Delta: &crdt.Delta{}}
	b := s.newBatch()
	defer b.discard()

	fail := func(i int, err error) {
		ch := &changes[i]
		res.Failed = append(res.Failed, ChangeError{Index: i, Collection: ch.Collection, Key: ch.Key, Err: err})
	}
	// Find the records, then read them all in key order, then apply the
	// changes in their order.
	recs := map[crdt.ID]*localRecord{}
	var order []*localRecord
	var resolved []struct {
		id uint64
		r  Resolution
	}
	of := make([]*localRecord, len(changes))
	for i := range changes {
		ch := &changes[i]
		c, err := s.collection(ch.Collection)
		if err != nil {
			fail(i, err)
			continue
		}
		if err := ch.Key.Validate(); err != nil {
			fail(i, err)
			continue
		}
		id := crdt.MakeID(ch.Collection, ch.Key)
		lr := recs[id]
		if lr == nil {
			lr = &localRecord{id: id, col: c, change: ch, key: recordKey(id)}
			recs[id] = lr
			order = append(order, lr)
		}
		of[i] = lr
	}
	slices.SortFunc(order, func(a, b *localRecord) int { return strings.Compare(string(a.id), string(b.id)) })
	if err := s.readLocal(order); err != nil {
		return nil, err
	}
	for i := range changes {
		ch, lr := &changes[i], of[i]
		if lr == nil {
			continue
		}
		if lr.err != nil {
			s.log.Error("cannot change a corrupt record", "err", lr.err)
			fail(i, lr.err)
			continue
		}
		c := lr.col
		o := s.origin(c, lr.cur, ch, source)
		if ch.Resolves != 0 {
			if _, err := b.txn.Get(conflictKey(ch.Resolves)); err != nil {
				fail(i, errors.Mark(errors.Wrapf(err, "conflict %d", ch.Resolves), ErrNoConflict))
				continue
			}
		}
		d, err := changeDelta(c, lr.cur, ch, o)
		if err != nil {
			fail(i, err)
			continue
		}
		if ch.Resolves != 0 {
			r := Resolution{By: ch.ResolvedBy, At: s.opts.Physical(), Stamp: o.Stamp}
			for _, v := range ch.Row {
				r.Value = v // one field
			}
			resolved = append(resolved, struct {
				id uint64
				r  Resolution
			}{ch.Resolves, r})
		}
		if ch.Captured {
			lr.captured = ch
			lr.stale = lr.stale || ch.Stale || (ch.StaleCheck != nil && ch.StaleCheck())
		}
		if ch.Captured && !s.opts.NoConflictLog {
			next := crdt.Join(c, lr.cur, d)
			if !d.IsEmpty() {
				lr.conflicts = append(lr.conflicts, crdt.Conflicts(c, lr.cur, d, next)...)
			}
			for name, v := range ch.Row {
				if ch.Base == nil || slices.Contains(c.Key, name) || crdt.Equal(ch.Base[name], v) {
					continue // not this change's intent
				}
				if cf, lost := crdt.LostWrite(c, next, name, v, o); lost {
					lr.conflicts = append(lr.conflicts, cf)
				}
			}
		}
		if d.IsEmpty() {
			continue
		}
		next, changed := crdt.Merge(c, lr.cur, d)
		if !changed {
			continue
		}
		lr.cur, lr.changed = next, true
		if !ch.Captured {
			lr.apiChanged = true
		}
		lr.changes = append(lr.changes, i)
		res.Delta.Add(ch.Collection, ch.Key, d)
	}

	stateChanged := false
	for _, lr := range order {
		if lr.err != nil {
			continue
		}
		if len(lr.conflicts) > 0 {
			logged, err := s.logConflicts(b, lr.change.Collection, lr.change.Key, lr.conflicts)
			if err != nil {
				return nil, err
			}
			res.Conflicts = append(res.Conflicts, logged...)
		}
		// A captured change that changes a record still on the queue moves
		// it to the back, even when the system now holds the new view: an
		// apply may have read the record before this change and be about to
		// write the older state over the captured row. Its acknowledgement
		// then no longer matches, and the record is applied again.
		//
		// A parked record that a change changed is queued again (which
		// takes it off the parked list): the change may be the fix, and
		// the system must get the new state or report why not.
		_, parked := s.parked[lr.id]
		queue := lr.apiChanged || (lr.changed && parked) || (lr.captured != nil &&
			((lr.changed && (lr.stale || lr.hdr.queued != 0)) || !matchesSystem(lr.col, lr.cur, lr.captured)))
		if !lr.changed && !queue {
			continue
		}
		enc, err := crdt.EncodeRecord(s.scratch.enc[:0], lr.cur, s.opts.Limits)
		s.scratch.enc = enc
		if err != nil {
			// The record would be over a limit: none of its changes is
			// stored or sent, so that every replica can read what it
			// holds.
			for _, i := range lr.changes {
				fail(i, err)
			}
			res.Delta.Fragments = slices.DeleteFunc(res.Delta.Fragments, func(f crdt.Fragment) bool {
				return f.Collection == lr.change.Collection && f.Key == lr.change.Key
			})
			continue
		}
		hdr := lr.hdr
		if lr.changed {
			hdr.hash = crdt.HashRecord(lr.id, enc)
		}
		count, size := recordRoom(lr.key, enc)
		if err := b.room(count, size+int64(recordHeaderLen)); err != nil {
			return nil, errors.Wrapf(err, "write %s", keyName(lr.key))
		}
		if queue {
			if !s.opts.NoApplyQueue {
				var err error
				if hdr.queued, err = b.enqueue(lr.id, lr.hdr.queued); err != nil {
					return nil, err
				}
			}
			res.Effects = append(res.Effects, Effect{Collection: lr.change.Collection, Key: lr.change.Key, Record: lr.cur})
		}
		if lr.changed {
			b.stamped = true
			stateChanged = true
		}
		if err := b.putRecord(lr.id, lr.key, hdr, enc, lr.changed); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(res.Failed, func(a, b ChangeError) int { return a.Index - b.Index })
	s.stats.localChanges.Add(uint64(res.Delta.Len()))
	s.stats.localFailed.Add(uint64(len(res.Failed)))
	seq := s.seq.Load()
	if stateChanged {
		seq++
	}
	err := b.finish(func() error {
		if stateChanged {
			if err := b.set(keySeq, encodeUint(seq)); err != nil {
				return err
			}
		}
		for _, rv := range resolved {
			if err := s.markResolved(b, rv.id, rv.r); err != nil {
				return err
			}
		}
		if cursor != nil {
			return b.set(cursorKey(cursor.Name), slices.Clone(cursor.Value))
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
	return res, nil
}

// origin returns the origin of a local change: stamped now, or for a
// captured change whose commit time is known, by commitStamp.
func (s *Store) origin(c *crdt.Collection, merged *crdt.Record, ch *Change, source string) crdt.Origin {
	if ch.Captured && ch.Committed != 0 {
		if ts, ok := s.commitStamp(c, merged, ch); ok {
			return crdt.Origin{Stamp: crdt.Stamp{TS: ts, Replica: s.replica}, Source: source, Late: true}
		}
	}
	return crdt.Origin{Stamp: crdt.Stamp{TS: s.clock.Now(), Replica: s.replica}, Source: source}
}

// commitStamp returns the timestamp of a captured change with a commit time:
// the commit time, raised above everything the change's writer saw (the
// stamps of the merged fields its old row holds, crdt.Record.Floor) and
// above every stamp this replica gave the record, and forwarded into the
// clock so that later stamps order after it. A commit time more than the
// clock's maximum offset ahead of the local clock is not adopted (ok is
// false: the change is stamped now), as a remote timestamp would not be.
//
// The stamp may be older than writes merged from elsewhere before the
// change was captured: the change was made before them, and loses to them.
func (s *Store) commitStamp(c *crdt.Collection, merged *crdt.Record, ch *Change) (crdt.Timestamp, bool) {
	at := crdt.Timestamp{Wall: ch.Committed}
	if s.clock.Check(at) != nil {
		s.stats.commitTimeAhead.Add(1)
		return crdt.Timestamp{}, false
	}
	if floor := merged.Floor(c, ch.Base, s.replica); !floor.TS.Less(at) {
		at = floor.TS.Next()
	}
	s.clock.Forward(at)
	return at, true
}

// changeDelta turns a change into a delta against the merged state.
func changeDelta(c *crdt.Collection, merged *crdt.Record, ch *Change, o crdt.Origin) (*crdt.Record, error) {
	if ch.Delete {
		if len(ch.Add)+len(ch.Remove) > 0 {
			return nil, errors.Mark(errors.New("a delete cannot carry set operations"), crdt.ErrPolicy)
		}
		return crdt.Delete(merged, o)
	}
	for name := range ch.Row {
		if _, ok := ch.Add[name]; ok {
			return nil, errors.Mark(errors.Newf("field %s is both written and given set operations", name), crdt.ErrPolicy)
		}
		if _, ok := ch.Remove[name]; ok {
			return nil, errors.Mark(errors.Newf("field %s is both written and given set operations", name), crdt.ErrPolicy)
		}
	}
	var d *crdt.Record
	if ch.Row != nil || ch.Full {
		row := ch.Row
		if ch.Full {
			row = maps.Clone(row)
			if row == nil {
				row = crdt.Row{}
			}
			if merged.Exists() {
				for i := range merged.Fields {
					name := merged.Fields[i].Name
					if _, ok := row[name]; ok {
						continue
					}
					if _, ok := ch.Add[name]; ok {
						continue
					}
					if _, ok := ch.Remove[name]; ok {
						continue
					}
					if _, _, visible := merged.Get(c, name); visible {
						row[name] = crdt.Null()
					}
				}
			}
		}
		var err error
		if d, err = crdt.DiffFrom(c, merged, ch.Base, row, o); err != nil {
			return nil, err
		}
	}
	names := slices.Sorted(maps.Keys(ch.Add))
	for name := range ch.Remove {
		if _, ok := ch.Add[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		sd, err := crdt.SetOps(c, merged, name, ch.Add[name], ch.Remove[name], o)
		if err != nil {
			return nil, err
		}
		if !sd.IsEmpty() {
			d = crdt.Join(c, d, sd)
		}
	}
	return d, nil
}
