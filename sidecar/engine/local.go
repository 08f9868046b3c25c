package engine

import (
	"maps"
	"slices"
	"strconv"
	"strings"

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
	// Insert says a captured change inserted the row (adapters.Change.Insert):
	// an OR-set field adds the elements it holds that the merged set lacks
	// and removes none (crdt.DiffInsert), since its user saw no element.
	Insert bool
	// Stale says the system may no longer hold Row: an apply may have
	// overwritten it after the change was committed and before it was
	// captured. If the change changes the merged state, the record is queued
	// for apply even when Row equals the new merged view. Engine.Capture
	// decides it from the apply positions inside the step, which the store
	// runs under its writer lock (see Reader).
	Stale bool
	// Committed is when the system committed a captured change, in Unix
	// nanoseconds by the system's clock; zero when unknown. Local then
	// stamps the change with that time instead of the time it is captured,
	// so that capture lag does not reorder it against changes made
	// elsewhere (see commitStamp).
	Committed int64
	// Snapshot says a captured change is a snapshot row: the system's row
	// as it is, not a change a user made. A snapshot row of a record the
	// store holds is decided by Params.Join: when the merged state wins it
	// writes nothing, and the record is queued for apply if the system's
	// row differs from the merged view.
	Snapshot bool
	// Resolves, when set, is the ID of a logged conflict this change
	// resolves (a manual override): the Ready marks it resolved by
	// ResolvedBy at the change's stamp, with the value Row holds for its
	// field (or none, for a delete).
	Resolves   uint64
	ResolvedBy string
}

// Conflict is a conflict a step decided: a captured change that won over a
// merged write its writer had not seen, or lost to one that had not seen
// it (crdt.Conflicts, crdt.LostWrite).
type Conflict struct {
	Collection string
	Key        crdt.Key
	crdt.Conflict
}

// Resolution marks a logged conflict resolved.
type Resolution struct {
	ID uint64
	By string
	// Stamp is the stamp of the change that resolved it, Value the value
	// it wrote (null for a delete).
	Stamp crdt.Stamp
	Value crdt.Value
}

// Cursor is an adapter's capture position, stored in the same transaction
// as the state it covers.
type Cursor struct {
	Name  string
	Value []byte
}

// ChangeError is a change that a step refused.
type ChangeError struct {
	// Index is the change's position in the step.
	Index      int
	Collection string
	Key        crdt.Key
	// Err is marked crdt.ErrPolicy, crdt.ErrInvalidKey or
	// crdt.ErrUnknownCollection for a change that does not fit the schema,
	// crdt.ErrTooLarge when the record it changes would be over the
	// Limits (every change of that record in the step then fails), or the
	// Reader's error for a record that cannot be read.
	Err error
}

func (e ChangeError) Error() string {
	return "change " + strconv.Itoa(e.Index) + " (" + e.Collection + "/" + e.Key.String() + "): " + e.Err.Error()
}

// Effect is a record put on the pending-apply queue, with its new merged
// state.
type Effect struct {
	Collection string
	Key        crdt.Key
	// Record is the new merged state.
	Record *crdt.Record
}

// Stored is what a Reader knows of one stored record.
type Stored struct {
	// Record is the merged state; nil when the store holds none.
	Record *crdt.Record
	// Queued says the record is on the pending-apply queue.
	Queued bool
	// Parked says the record is set aside as one the system refused.
	Parked bool
	// Err is set when the record cannot be read (it is corrupt): every
	// change of it fails with Err.
	Err error
}

// Reader is the engine's read-only view of the store. The store calls a
// step with a Reader under its writer lock (store.Commit), so what a step
// reads is what it writes over: no merge or queue acknowledgement lands in
// between.
type Reader interface {
	// Collection returns the merge rules of a collection, or an error
	// marked crdt.ErrUnknownCollection.
	Collection(name string) (*crdt.Collection, error)
	// Read reads the records ids, sorted by ID, into out (of the same
	// length). An error is a failure of the store itself.
	Read(ids []crdt.ID, out []Stored) error
}

// Params are what a step stamps changes with.
type Params struct {
	// Replica and Source (the node name that Prefer policies rank) sign
	// every change.
	Replica crdt.ReplicaID
	Source  string
	// Clock stamps changes; a commit time is forwarded into it.
	Clock *crdt.Clock
	// Limits bound the records a step writes (zero: crdt.DefaultLimits).
	Limits crdt.Limits
	// Join decides snapshot rows of records the store holds (zero:
	// JoinCluster, the merged state wins).
	Join Join
	// Scratch, when set, is a buffer steps reuse for the records' encodings
	// (the store's, used under its writer lock): a Ready's Write.Encoded
	// is then valid only until the next step with the same Scratch. Nil:
	// every step allocates.
	Scratch *[]byte
	// NoConflicts turns conflict detection off (the store's conflict log
	// is off).
	NoConflicts bool
}

// Write is one record a Ready makes durable.
type Write struct {
	// Slot is the record's index in the step's Reader.Read call.
	Slot       int
	ID         crdt.ID
	Collection string
	Key        crdt.Key
	// Record is the new merged state and Encoded its encoding
	// (crdt.EncodeRecord, within Params.Limits).
	Record  *crdt.Record
	Encoded []byte
	// Changed says the state changed (Hash is then the new
	// crdt.HashRecord); otherwise only the queue entry is written.
	Changed bool
	Hash    crdt.Hash
	// Queue puts the record on the pending-apply queue (at its back).
	Queue bool
}

// Ready is what a step decided, to be carried out in this order: the
// store makes Writes and Cursor durable in one transaction (split at record
// boundaries only when too large, the cursor then in the last part); then
// gossip may broadcast Broadcast and the applier may take Effects; then
// the adapter may be acknowledged Ack. Nothing of a Ready may be acted on
// before its durable part is.
type Ready struct {
	Writes []Write
	Cursor *Cursor
	// Broadcast holds the deltas of the changes that changed state. Empty
	// when none did.
	Broadcast *crdt.Delta
	// Effects lists the records the Writes queue for apply.
	Effects []Effect
	// Ack is the capture position the adapter may be acknowledged once the
	// Writes are durable; nil when the step has no cursor.
	Ack []byte
	// Failed lists the changes that were refused; the others commit.
	Failed []ChangeError
	// Skipped lists the captured changes the catalog could not map
	// (Engine.Capture); they are not in the step.
	Skipped []Skipped
	// Changed says some record's state changed.
	Changed bool
	// CommitTimesAhead counts the captured changes whose commit time was
	// too far ahead of the clock to adopt (stamped now instead).
	CommitTimesAhead int
	// JoinKept and JoinTaken count the snapshot rows of records the store
	// held that kept the merged state, and that won over it (Params.Join).
	JoinKept, JoinTaken int
	// Conflicts lists the conflicts captured changes decided, for the
	// store's conflict log (in the Writes' transaction). The store leaves
	// only those it logged: a decision already logged is not again.
	Conflicts []Conflict
	// Resolved lists the conflicts the changes resolve, for the store to
	// mark in the same transaction.
	Resolved []Resolution
}

// localRecord is one record touched by a step.
type localRecord struct {
	slot    int
	id      crdt.ID
	col     *crdt.Collection
	change  *Change // first change, for the collection and key
	stored  Stored
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
	// changes are the indexes of the changes that changed the record.
	changes []int
}

// Local decides what local changes do. Each change is stamped under
// p.Replica and p.Source with a fresh Clock.Now() timestamp, or, for a
// captured change whose commit time is known, with that time (commitStamp),
// turned into a delta against the merged state (crdt.Diff, crdt.SetOps,
// crdt.Delete) and joined.
//
// A captured change queues its record for apply only when the new merged
// view differs from the captured row (a Prefer or Max field that the policy
// kept at another value), so that the system gets corrected; a change from
// the API queues every record whose state changed. A change equal to the
// merged state writes nothing; with nothing else to write, only the cursor
// is written.
//
// A change that does not fit the schema, or whose record would be over the
// limits, is reported in Failed and the others commit; the error return is
// for failures of the Reader.
func Local(r Reader, p Params, changes []Change, cursor *Cursor) (*Ready, error) {
	if p.Limits == (crdt.Limits{}) {
		p.Limits = crdt.DefaultLimits()
	}
	rd := &Ready{Broadcast: &crdt.Delta{}, Cursor: cursor}
	if cursor != nil {
		rd.Ack = cursor.Value
	}
	fail := func(i int, err error) {
		ch := &changes[i]
		rd.Failed = append(rd.Failed, ChangeError{Index: i, Collection: ch.Collection, Key: ch.Key, Err: err})
	}
	// Find the records, then read them all in key order, then apply the
	// changes in their order.
	recs := map[crdt.ID]*localRecord{}
	var order []*localRecord
	of := make([]*localRecord, len(changes))
	for i := range changes {
		ch := &changes[i]
		c, err := r.Collection(ch.Collection)
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
			lr = &localRecord{id: id, col: c, change: ch}
			recs[id] = lr
			order = append(order, lr)
		}
		of[i] = lr
	}
	slices.SortFunc(order, func(a, b *localRecord) int { return strings.Compare(string(a.id), string(b.id)) })
	if len(order) > 0 {
		ids := make([]crdt.ID, len(order))
		stored := make([]Stored, len(order))
		for i, lr := range order {
			ids[i] = lr.id
		}
		if err := r.Read(ids, stored); err != nil {
			return nil, err
		}
		for i, lr := range order {
			lr.slot, lr.stored, lr.cur = i, stored[i], stored[i].Record
		}
	}
	for i := range changes {
		ch, lr := &changes[i], of[i]
		if lr == nil {
			continue
		}
		if lr.stored.Err != nil {
			fail(i, lr.stored.Err)
			continue
		}
		c := lr.col
		if ch.Captured && ch.Snapshot && lr.cur != nil && !ch.Delete {
			if !p.Join.systemWins(c, lr.cur, ch.Row) {
				// The merged state wins over the system's row: the record
				// is queued for apply if the two differ (matchesSystem).
				lr.captured = ch
				rd.JoinKept++
				continue
			}
			rd.JoinTaken++
		}
		o := origin(&p, c, lr.cur, ch, &rd.CommitTimesAhead)
		d, err := changeDelta(c, lr.cur, ch, o)
		if err != nil {
			fail(i, err)
			continue
		}
		if ch.Captured {
			lr.captured = ch
			lr.stale = lr.stale || ch.Stale
			// A snapshot row is the system's state, not a user's
			// change: Params.Join decides it, and it is no conflict.
			if !p.NoConflicts && !ch.Snapshot {
				rd.Conflicts = append(rd.Conflicts, capturedConflicts(c, lr.cur, d, ch, o)...)
			}
		}
		if ch.Resolves != 0 {
			res := Resolution{ID: ch.Resolves, By: ch.ResolvedBy, Stamp: o.Stamp}
			for _, v := range ch.Row {
				res.Value = v // the conflict's one field
			}
			rd.Resolved = append(rd.Resolved, res)
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
		rd.Broadcast.Add(ch.Collection, ch.Key, d)
	}

	var enc []byte
	if p.Scratch != nil {
		enc = (*p.Scratch)[:0]
		defer func() { *p.Scratch = enc[:0] }()
	}
	rd.Writes = make([]Write, 0, len(order))
	for _, lr := range order {
		if lr.stored.Err != nil {
			continue
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
		queue := lr.apiChanged || (lr.changed && lr.stored.Parked) || (lr.captured != nil &&
			((lr.changed && (lr.stale || lr.stored.Queued)) || !matchesSystem(lr.col, lr.cur, lr.captured)))
		if !lr.changed && !queue {
			continue
		}
		start := len(enc)
		var err error
		enc, err = crdt.EncodeRecord(enc, lr.cur, p.Limits)
		if err != nil {
			// The record would be over a limit: none of its changes is
			// stored or sent, so that every replica can read what it
			// holds.
			enc = enc[:start]
			for _, i := range lr.changes {
				fail(i, err)
			}
			rd.Broadcast.Fragments = slices.DeleteFunc(rd.Broadcast.Fragments, func(f crdt.Fragment) bool {
				return f.Collection == lr.change.Collection && f.Key == lr.change.Key
			})
			continue
		}
		w := Write{Slot: lr.slot, ID: lr.id, Collection: lr.change.Collection, Key: lr.change.Key,
			Record: lr.cur, Encoded: enc[start:len(enc):len(enc)], Changed: lr.changed, Queue: queue}
		if lr.changed {
			w.Hash = crdt.HashRecord(lr.id, w.Encoded)
			rd.Changed = true
		}
		rd.Writes = append(rd.Writes, w)
		if queue {
			rd.Effects = append(rd.Effects, Effect{Collection: w.Collection, Key: w.Key, Record: lr.cur})
		}
	}
	slices.SortFunc(rd.Failed, func(a, b ChangeError) int { return a.Index - b.Index })
	return rd, nil
}

// capturedConflicts returns the conflicts a captured change decides when
// its delta d joins merged: its writes that win over merged writes its
// system had not received, and those that lose to merged writes that did
// not see them (a change stamped with its commit time, overtaken).
func capturedConflicts(c *crdt.Collection, merged, d *crdt.Record, ch *Change, o crdt.Origin) []Conflict {
	var out []Conflict
	next := crdt.Join(c, merged, d)
	if !d.IsEmpty() {
		for _, cf := range crdt.Conflicts(c, merged, d, next) {
			out = append(out, Conflict{Collection: ch.Collection, Key: ch.Key, Conflict: cf})
		}
	}
	if ch.Base == nil {
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(ch.Row)) {
		v := ch.Row[name]
		if slices.Contains(c.Key, name) || crdt.Equal(ch.Base[name], v) {
			continue // not this change's intent
		}
		if cf, lost := crdt.LostWrite(c, next, name, v, o); lost {
			out = append(out, Conflict{Collection: ch.Collection, Key: ch.Key, Conflict: cf})
		}
	}
	return out
}

// origin returns the origin of a local change: stamped now, or for a
// captured change whose commit time is known, by commitStamp.
func origin(p *Params, c *crdt.Collection, merged *crdt.Record, ch *Change, ahead *int) crdt.Origin {
	if ch.Captured && ch.Committed != 0 {
		if ts, ok := commitStamp(p, c, merged, ch); ok {
			return crdt.Origin{Stamp: crdt.Stamp{TS: ts, Replica: p.Replica}, Source: p.Source, Late: true}
		}
		*ahead++
	}
	return crdt.Origin{Stamp: crdt.Stamp{TS: p.Clock.Now(), Replica: p.Replica}, Source: p.Source}
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
func commitStamp(p *Params, c *crdt.Collection, merged *crdt.Record, ch *Change) (crdt.Timestamp, bool) {
	at := crdt.Timestamp{Wall: ch.Committed}
	if p.Clock.Check(at) != nil {
		return crdt.Timestamp{}, false
	}
	if floor := merged.Floor(c, ch.Base, p.Replica); !floor.TS.Less(at) {
		at = floor.TS.Next()
	}
	p.Clock.Forward(at)
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
		if ch.Insert && ch.Captured && !ch.Snapshot {
			d, err = crdt.DiffInsert(c, merged, row, o)
		} else {
			d, err = crdt.DiffFrom(c, merged, ch.Base, row, o)
		}
		if err != nil {
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

// systemValue is how a value observed in a system compares with a merged
// one: OR-set lists in set order, empty lists as null for registers.
func systemValue(p *crdt.Policy, v crdt.Value) crdt.Value {
	if v.Kind() != crdt.KindList {
		return v
	}
	l := v.AsList()
	if len(l) == 0 {
		return crdt.Null()
	}
	if p.Kind == crdt.ORSet {
		set, err := crdt.SetOf(l...)
		if err != nil {
			return v
		}
		return set
	}
	return v
}

// matchesSystem reports whether the merged record r is what the system holds
// after the captured change ch: the merged view equals the captured row on
// every field the row names, and, for a full row, r has no visible field the
// row lacks. Key columns are not compared.
func matchesSystem(c *crdt.Collection, r *crdt.Record, ch *Change) bool {
	if ch.Delete {
		return !r.Exists()
	}
	if !r.Exists() {
		return false
	}
	for name, v := range ch.Row {
		if slices.Contains(c.Key, name) {
			continue
		}
		have, _, _ := r.Get(c, name)
		p := c.Policy(name)
		if p.Kind == crdt.Counter {
			// A system may print a decimal with fewer digits than the
			// total carries ("12.5" for "12.50"): the same number.
			if !crdt.SameNumber(v, have) {
				return false
			}
			continue
		}
		if !crdt.Equal(systemValue(p, v), have) {
			return false
		}
	}
	if ch.Full {
		for i := range r.Fields {
			name := r.Fields[i].Name
			if _, inRow := ch.Row[name]; inRow || slices.Contains(c.Key, name) {
				continue
			}
			if _, _, ok := r.Get(c, name); ok {
				return false
			}
		}
	}
	return true
}
