package store

import (
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// Pending is an entry of the pending-apply queue: a record whose merged
// state the local system must receive.
type Pending struct {
	Collection string
	Key        crdt.Key
	// Record is the record's current merged state (not the state when it
	// was queued). It is nil when Err is set.
	Record *crdt.Record
	// Seq identifies this queueing of the record; it changes each time the
	// record is queued again.
	Seq uint64
	// Err is set, marked ErrCorrupt, when the record cannot be decoded (it
	// was written under larger limits, or damaged): the caller parks it, so
	// that it never holds up the records behind it.
	Err error
}

// ID returns the record's ID.
func (p Pending) ID() crdt.ID { return crdt.MakeID(p.Collection, p.Key) }

// Parked is a queue entry set aside because the local system refused it.
type Parked struct {
	Collection string
	Key        crdt.Key
	// Record is the record's current merged state, nil when it cannot be
	// decoded (Reason then says why).
	Record *crdt.Record
	// Seq is the queue entry that was parked.
	Seq uint64
	// Reason says why, as given to Park.
	Reason string
	// At is when it was parked.
	At time.Time
}

// ID returns the record's ID.
func (p Parked) ID() crdt.ID { return crdt.MakeID(p.Collection, p.Key) }

// PendingLen returns the number of records on the pending-apply queue.
func (s *Store) PendingLen() int { return int(s.pendingLen.Load()) }

// Pending returns up to limit queue entries (a limit <= 0 means all), oldest
// first, each with its record's current merged state.
func (s *Store) Pending(limit int) ([]Pending, error) {
	var out []Pending
	err := s.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixQueue}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.KeyCopy(nil)
			seq, err := parseQueueKey(key)
			if err != nil {
				return err
			}
			var ids []crdt.ID
			if err := item.Value(func(v []byte) error {
				ids, err = parseChunk(key, v)
				return err
			}); err != nil {
				return err
			}
			current := func(h recordHeader) bool { return h.queued == seq }
			for _, id := range ids {
				if limit > 0 && len(out) >= limit {
					return nil
				}
				h, r, ok, err := s.getRecordIf(txn, recordKey(id), current)
				if IsCorrupt(err) && h.queued == seq {
					// The header is sound and says the record is queued
					// here; only its state does not decode.
					col, k, _ := id.Split()
					out = append(out, Pending{Collection: col, Key: k, Seq: seq, Err: err})
					continue
				}
				if err != nil {
					return err
				}
				if !ok {
					return corruptf(key, "queued record %s does not exist", id)
				}
				if h.queued != seq {
					continue // queued again since, or acknowledged: not decoded
				}
				col, k, _ := id.Split()
				out = append(out, Pending{Collection: col, Key: k, Record: r, Seq: seq})
			}
		}
		return nil
	})
	return out, err
}

// AckPending removes the given entries from the queue, except those whose
// record was queued again since (its Seq changed): the newer state is still
// to be applied. Entries already gone are ignored.
func (s *Store) AckPending(items []Pending) error {
	return s.queueBatch(func(b *batch) error {
		done := map[crdt.ID]bool{}
		for _, p := range items {
			id := p.ID()
			if done[id] || p.Seq == 0 {
				continue
			}
			ok, err := b.dequeue(id, p.Seq)
			if err != nil {
				return err
			}
			if ok {
				done[id] = true
				b.acked++
			}
		}
		return nil
	})
}

// queueBatch runs fn on a new batch under the writer lock and commits what
// it wrote: the frame of the queue operations.
func (s *Store) queueBatch(fn func(b *batch) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	b := s.newBatch()
	defer b.discard()
	if err := fn(b); err != nil {
		return err
	}
	return b.finish(nil)
}

// dequeue takes a record off the queue if it is queued as seq, and reports
// whether it was.
func (b *batch) dequeue(id crdt.ID, seq uint64) (bool, error) {
	key := recordKey(id)
	raw, ok, err := getValue(b.reader(), key)
	if err != nil || !ok {
		return false, err
	}
	h, enc, err := parseRecordValue(key, raw)
	if err != nil || h.queued != seq {
		return false, err
	}
	if err := b.room(recordRoom(key, raw)); err != nil {
		return false, err
	}
	if err := b.unqueue(seq); err != nil {
		return false, err
	}
	h.queued = 0
	return true, b.putRecord(id, key, h, enc, false)
}

// requeue puts an existing record on the queue again, rewriting its header;
// it reports false when the record does not exist.
func (b *batch) requeue(id crdt.ID) (bool, error) {
	key := recordKey(id)
	raw, ok, err := getValue(b.reader(), key)
	if err != nil || !ok {
		return false, err
	}
	h, enc, err := parseRecordValue(key, raw)
	if err != nil {
		return false, err
	}
	if err := b.room(recordRoom(key, raw)); err != nil {
		return false, err
	}
	if h.queued, err = b.enqueue(id, h.queued); err != nil {
		return false, err
	}
	return true, b.putRecord(id, key, h, enc, false)
}

// Enqueue puts records on the pending-apply queue (for instance after an
// initial snapshot, so that the local system receives what its peers hold).
// A record already queued moves to the back; IDs the store does not have are
// skipped.
func (s *Store) Enqueue(ids []crdt.ID) error {
	for _, id := range ids {
		if err := validID(id); err != nil {
			return err
		}
	}
	return s.queueBatch(func(b *batch) error {
		for _, id := range dedupe(ids) {
			if _, err := b.requeue(id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Park moves a queue entry that the local system keeps refusing out of the
// queue, keeping it with the reason for Parked and Requeue. It does nothing
// when the entry is gone or its record was queued again since: the newer
// state gets its own attempt. A parked record that is queued again (by a
// change, Enqueue or Requeue) leaves the parked list.
func (s *Store) Park(p Pending, reason string) error {
	return s.queueBatch(func(b *batch) error {
		id := p.ID()
		ok, err := b.dequeue(id, p.Seq)
		if err != nil || !ok {
			return err
		}
		val := appendParkedValue(nil, parkedValue{seq: p.Seq, at: s.clock.Physical(), reason: reason})
		if err := b.set(parkedKey(id), val); err != nil {
			return err
		}
		b.park = append(b.park, id)
		return nil
	})
}

// Parked returns up to limit parked entries (a limit <= 0 means all) in ID
// order.
func (s *Store) Parked(limit int) ([]Parked, error) { return s.ParkedAfter("", limit) }

// ParkedLen returns the number of parked entries.
func (s *Store) ParkedLen() int { return int(s.parkedLen.Load()) }

// ParkedAfter returns up to limit parked entries (a limit <= 0 means all)
// with IDs after after ("" starts at the first), in ID order: a page of the
// parked list.
func (s *Store) ParkedAfter(after crdt.ID, limit int) ([]Parked, error) {
	var out []Parked
	err := s.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixParked}})
		defer it.Close()
		it.Rewind()
		if after != "" {
			// Seek lands on after itself when it is parked: step past it.
			start := parkedKey(after)
			it.Seek(start)
			if it.Valid() && string(it.Item().Key()) == string(start) {
				it.Next()
			}
		}
		for ; it.Valid(); it.Next() {
			if limit > 0 && len(out) >= limit {
				break
			}
			item := it.Item()
			key := item.KeyCopy(nil)
			id, err := idFromKey(key)
			if err != nil {
				return err
			}
			var pv parkedValue
			if err := item.Value(func(v []byte) error {
				pv, err = parseParkedValue(key, v)
				return err
			}); err != nil {
				return err
			}
			_, r, _, err := s.getRecord(txn, recordKey(id))
			if err != nil && !IsCorrupt(err) {
				return err
			}
			col, k, _ := id.Split()
			out = append(out, Parked{Collection: col, Key: k, Record: r, Seq: pv.seq, Reason: pv.reason,
				At: time.Unix(0, pv.at).UTC()})
		}
		return nil
	})
	return out, err
}

// Requeue moves parked records back to the queue. IDs that are not parked
// are skipped.
func (s *Store) Requeue(ids []crdt.ID) error {
	return s.queueBatch(func(b *batch) error {
		for _, id := range dedupe(ids) {
			if _, ok := s.parked[id]; !ok {
				continue
			}
			ok, err := b.requeue(id)
			if err != nil {
				return err
			}
			if !ok {
				// The record is gone (it never is, but a parked entry must
				// not outlive it): drop the parked entry alone.
				if err := b.room(1, entrySize(parkedKey(id), nil)); err != nil {
					return err
				}
				if err := b.del(parkedKey(id)); err != nil {
					return err
				}
				b.unpark = append(b.unpark, id)
			}
		}
		return nil
	})
}

// ParkedEntry returns the parked entry of id, and false when id is not
// parked.
func (s *Store) ParkedEntry(id crdt.ID) (Parked, bool, error) {
	if err := validID(id); err != nil {
		return Parked{}, false, err
	}
	var out Parked
	found := false
	err := s.read(func(txn *badger.Txn) error {
		key := parkedKey(id)
		raw, ok, err := getValue(txn, key)
		if err != nil || !ok {
			return err
		}
		pv, err := parseParkedValue(key, raw)
		if err != nil {
			return err
		}
		_, r, _, err := s.getRecord(txn, recordKey(id))
		if err != nil && !IsCorrupt(err) {
			return err
		}
		col, k, _ := id.Split()
		out = Parked{Collection: col, Key: k, Record: r, Seq: pv.seq, Reason: pv.reason, At: time.Unix(0, pv.at).UTC()}
		found = true
		return nil
	})
	return out, found, err
}

// Skip drops a parked entry without applying it, and reports whether it
// did. With seq > 0 it drops the entry only while it is the one parked as
// seq, so that an operator skips the failure they saw and not a later one.
// The record's merged state stays as it is: Skip only forgets that the
// local system still owes it an apply. A later change to the record queues
// it again, as for any record.
func (s *Store) Skip(id crdt.ID, seq uint64) (bool, error) {
	if err := validID(id); err != nil {
		return false, err
	}
	skipped := false
	err := s.queueBatch(func(b *batch) error {
		if _, ok := s.parked[id]; !ok {
			return nil
		}
		key := parkedKey(id)
		if seq > 0 {
			raw, ok, err := getValue(b.reader(), key)
			if err != nil || !ok {
				return err
			}
			pv, err := parseParkedValue(key, raw)
			if err != nil {
				return err
			}
			if pv.seq != seq {
				return nil
			}
		}
		if err := b.room(1, entrySize(key, nil)); err != nil {
			return err
		}
		if err := b.del(key); err != nil {
			return err
		}
		b.unpark = append(b.unpark, id)
		skipped = true
		return nil
	})
	return skipped && err == nil, err
}

func dedupe(ids []crdt.ID) []crdt.ID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}
