package store

import (
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
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
}

// Effect is a record whose visible state changed.
type Effect struct {
	Collection string
	Key        crdt.Key
	// Record is the new merged state.
	Record *crdt.Record
}

// Rejection is a fragment that was not merged.
type Rejection struct {
	Collection string
	Key        crdt.Key
	// Err says why: crdt.IsClockOffsetError for a stamp too far in the
	// future, crdt.ErrUnknownCollection for a collection a strict schema
	// does not list, crdt.ErrInvalidKey, or ErrCorrupt for a stored record
	// that cannot be read.
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
// unknown to a strict schema, or when its key is empty or too long. The
// error return is for failures of the store itself; the batch may then be
// partly applied, which is harmless because merging is idempotent.
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
	order := make([]int32, n)
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
	b := s.newBatch()
	defer b.discard()
	for i := 0; i < n; {
		j := i + 1
		for j < n && cmpFragment(&frags[order[j]], &frags[order[i]]) == 0 {
			j++
		}
		if err := s.mergeRecord(b, frags, order[i:j], res); err != nil {
			return nil, err
		}
		i = j
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

// mergeRecord merges the fragments of one record (frags[group...]).
func (s *Store) mergeRecord(b *batch, frags []crdt.Fragment, group []int32, res *MergeResult) error {
	f0 := &frags[group[0]]
	rejectAll := func(err error) {
		for _, gi := range group {
			res.Rejected = append(res.Rejected, Rejection{Collection: frags[gi].Collection, Key: frags[gi].Key, Err: err})
		}
		s.stats.fragsRejected.Add(uint64(len(group)))
	}
	c, err := s.collection(f0.Collection)
	if err == nil {
		err = checkKey(f0.Key)
	}
	if err != nil {
		rejectAll(err)
		return nil
	}
	id := crdt.MakeID(f0.Collection, f0.Key)
	key := appendRecordKey(s.scratch.rkey[:0], id)
	s.scratch.rkey = key
	h, old, _, err := s.getRecord(b.rtxn, key)
	if err != nil {
		if IsCorrupt(err) {
			s.log.Error("cannot merge into a corrupt record", "err", err)
			rejectAll(err)
			return nil
		}
		return err
	}
	cur := old
	s.scratch.changed = s.scratch.changed[:0]
	for _, gi := range group {
		f := &frags[gi]
		if f.Record.IsEmpty() {
			s.stats.fragsUnchanged.Add(1)
			continue
		}
		if _, err := s.clock.Update(f.Record.MaxStamp().TS); err != nil {
			res.Rejected = append(res.Rejected, Rejection{Collection: f.Collection, Key: f.Key, Err: err})
			s.stats.fragsRejected.Add(1)
			s.stats.clockRejections.Add(1)
			continue
		}
		next, changed := crdt.Merge(c, cur, f.Record)
		if !changed {
			s.stats.fragsUnchanged.Add(1)
			continue
		}
		cur = next
		s.scratch.changed = append(s.scratch.changed, gi)
	}
	changed := s.scratch.changed
	if len(changed) == 0 {
		return nil
	}

	enc := crdt.AppendRecord(s.scratch.enc[:0], cur)
	s.scratch.enc = enc
	hdr := recordHeader{hash: crdt.HashRecord(id, enc), queued: h.queued}
	visible := !sameView(c, old, cur)
	count, size := 1, entrySize(key, enc)+32
	if visible {
		count += 3
		size += 3 * entrySize(key, nil)
	}
	if err := b.room(count, size); err != nil {
		s.log.Error("cannot store a merged record", "record", id.String(), "err", err)
		rejectAll(err)
		return nil
	}
	if visible {
		if hdr.queued, err = b.enqueue(id, h.queued); err != nil {
			return err
		}
		res.Effects = append(res.Effects, Effect{Collection: f0.Collection, Key: f0.Key, Record: cur})
	}
	b.stamped = true
	if err := b.putRecord(id, hdr, enc, true); err != nil {
		return err
	}
	if res.Changed == nil {
		res.Changed = &crdt.Delta{Fragments: make([]crdt.Fragment, 0, len(frags))}
	}
	for _, gi := range changed {
		res.Changed.Fragments = append(res.Changed.Fragments, frags[gi])
	}
	s.stats.fragsMerged.Add(uint64(len(changed)))
	return nil
}
