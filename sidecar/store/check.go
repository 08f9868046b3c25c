package store

import (
	"bytes"

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
	}
	it.Close()

	var queued int64
	it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixQueue}})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.KeyCopy(nil)
		seq, err := parseQueueKey(key)
		if err != nil {
			it.Close()
			return fp, err
		}
		if seq < s.minLive || seq > s.qseq {
			it.Close()
			return fp, errors.Mark(errors.Newf("%s outside [%d, %d]", keyName(key), s.minLive, s.qseq), ErrInconsistent)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			it.Close()
			return fp, err
		}
		if _, err := txn.Get(recordKey(crdt.ID(v))); err != nil {
			it.Close()
			return fp, errors.Mark(errors.Wrapf(err, "%s names record %s", keyName(key), crdt.ID(v)), ErrInconsistent)
		}
		queued++
	}
	it.Close()
	if n := s.pendingLen.Load(); n != queued {
		return fp, errors.Mark(errors.Newf("queue holds %d entries, counted %d", queued, n), ErrInconsistent)
	}

	if d := s.Digest(); d != fp {
		return fp, errors.Mark(errors.Newf("range tree digest %s, records %s", d, fp), ErrInconsistent)
	}
	return fp, nil
}
