package store

import (
	"bytes"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// ErrInconsistent marks the errors Check returns for a store whose parts
// disagree (a hash, the range tree, the queue or the clock bound).
var ErrInconsistent = errors.New("store: inconsistent")

// Check reads the whole store and verifies it: every record decodes, its
// stored hash is the hash of its encoding, that encoding is canonical, the
// persisted clock bound is at or above every stored stamp, every queue entry names
// a record, the queue length matches, and the range tree agrees with the
// records. It returns the digest recomputed from the records. Writers wait
// while it runs.
func (s *Store) Check() (crdt.Fingerprint, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var fp crdt.Fingerprint
	if s.closed {
		return fp, ErrClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()

	var bound crdt.Timestamp
	if v, ok, err := getValue(txn, keyHLC); err != nil {
		return fp, err
	} else if ok {
		if bound, err = parseTimestamp(keyHLC, v); err != nil {
			return fp, err
		}
	}
	if last := s.clock.Last(); last.Less(bound) {
		return fp, errors.Mark(errors.Newf("clock at %s is behind the persisted bound %s", last, bound), ErrInconsistent)
	}

	queuedIn := map[uint64][]crdt.ID{} // chunk -> records whose header names it
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
	var enc []byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		id, err := idFromKey(key)
		if err != nil {
			it.Close()
			return fp, err
		}
		var h recordHeader
		var r *crdt.Record
		err = item.Value(func(v []byte) error {
			var body []byte
			var err error
			if h, body, err = parseRecordValue(key, v); err != nil {
				return err
			}
			if r, err = crdt.DecodeRecord(body, s.opts.Limits); err != nil {
				return corrupt(key, err)
			}
			if got := crdt.HashRecord(id, body); got != h.hash {
				return errors.Mark(errors.Newf("%s: stored hash %s, encoding hashes to %s", keyName(key), h.hash, got), ErrInconsistent)
			}
			enc = crdt.AppendRecord(enc[:0], r)
			if !bytes.Equal(enc, body) {
				return errors.Mark(errors.Newf("%s: stored encoding is not canonical", keyName(key)), ErrInconsistent)
			}
			return nil
		})
		if err != nil {
			it.Close()
			return fp, err
		}
		if ms := r.MaxStamp(); bound.Less(ms.TS) {
			it.Close()
			return fp, errors.Mark(errors.Newf("%s: stamp %s above the persisted clock bound %s", keyName(key), ms, bound), ErrInconsistent)
		}
		fp = fp.Add(h.hash)
		if h.queued != 0 {
			queuedIn[h.queued] = append(queuedIn[h.queued], id)
		}
	}
	it.Close()

	var queued int64
	chunks := 0
	it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixQueue}})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		seq, err := parseQueueKey(key)
		if err == nil && seq > s.qseq {
			err = errors.Mark(errors.Newf("%s above the last issued seq %d", keyName(key), s.qseq), ErrInconsistent)
		}
		var ids []crdt.ID
		if err == nil {
			err = item.Value(func(v []byte) error {
				var err error
				ids, err = parseChunk(key, v)
				return err
			})
		}
		if err != nil {
			it.Close()
			return fp, err
		}
		chunks++
		live := queuedIn[seq]
		if len(live) == 0 {
			it.Close()
			return fp, errors.Mark(errors.Newf("%s holds no queued record", keyName(key)), ErrInconsistent)
		}
		if s.chunkLive[seq] != len(live) {
			it.Close()
			return fp, errors.Mark(errors.Newf("%s: %d records queued, counted %d", keyName(key), len(live), s.chunkLive[seq]), ErrInconsistent)
		}
		for _, id := range live {
			if !slices.Contains(ids, id) {
				it.Close()
				return fp, errors.Mark(errors.Newf("%s does not list record %s queued in it", keyName(key), id), ErrInconsistent)
			}
		}
		queued += int64(len(live))
	}
	it.Close()
	if chunks != len(queuedIn) || chunks != len(s.chunkLive) {
		return fp, errors.Mark(errors.Newf("%d queue chunks, %d named by records, %d counted", chunks, len(queuedIn), len(s.chunkLive)), ErrInconsistent)
	}
	if n := s.pendingLen.Load(); n != queued {
		return fp, errors.Mark(errors.Newf("queue holds %d records, counted %d", queued, n), ErrInconsistent)
	}

	if d := s.Digest(); d != fp {
		return fp, errors.Mark(errors.Newf("range tree digest %s, records %s", d, fp), ErrInconsistent)
	}
	return fp, nil
}
