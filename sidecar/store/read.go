package store

import (
	"bytes"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// Entry is a record and its key, as Scan returns them.
type Entry struct {
	Key    crdt.Key
	Record *crdt.Record
}

// Get returns the merged state of a record, tombstones included, or nil when
// the store has never seen it. Use Record.View and Record.Get for its
// visible fields and their metadata (stamp, source).
func (s *Store) Get(collection string, key crdt.Key) (*crdt.Record, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var r *crdt.Record
	err := s.read(func(txn *badger.Txn) error {
		var err error
		_, r, _, err = s.getRecord(txn, recordKey(crdt.MakeID(collection, key)))
		return err
	})
	return r, err
}

// Scan returns up to limit records of a collection in key order, starting
// after the key after ("" starts at the first). A limit <= 0 means no limit.
// Deleted records (tombstones) are included; Record.Exists tells them apart.
func (s *Store) Scan(collection string, after crdt.Key, limit int) ([]Entry, error) {
	prefix := recordKey(crdt.MakeID(collection, ""))
	var out []Entry
	err := s.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		defer it.Close()
		start := append(bytes.Clone(prefix), after...)
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if after != "" && bytes.Equal(k, start) {
				continue
			}
			if limit > 0 && len(out) >= limit {
				break
			}
			r, err := s.decodeItem(item)
			if err != nil {
				return err
			}
			out = append(out, Entry{Key: crdt.Key(k[len(prefix):]), Record: r})
		}
		return nil
	})
	return out, err
}

func (s *Store) decodeItem(item *badger.Item) (*crdt.Record, error) {
	key := item.Key()
	var r *crdt.Record
	err := item.Value(func(v []byte) error {
		var err error
		_, r, err = decodeRecordValue(key, v, s.opts.Limits)
		return err
	})
	if err != nil && !IsCorrupt(err) {
		err = errors.Wrapf(err, "read %s", keyName(key))
	}
	return r, err
}

// Cursor returns the value of an adapter cursor, or nil when none was
// stored.
func (s *Store) Cursor(name string) ([]byte, error) {
	var v []byte
	err := s.read(func(txn *badger.Txn) error {
		var err error
		v, _, err = getValue(txn, cursorKey(name))
		return err
	})
	return v, err
}

// Digest returns the fingerprint of the whole replica: the XOR of every
// record's hash and the number of records. Converged replicas have equal
// digests whatever the order their deltas arrived in.
func (s *Store) Digest() crdt.Fingerprint {
	s.treeMu.RLock()
	defer s.treeMu.RUnlock()
	return s.tree.Total()
}

// Fingerprint returns the fingerprint of the records with IDs in [lo, hi);
// an empty hi means no upper bound.
func (s *Store) Fingerprint(lo, hi crdt.ID) crdt.Fingerprint {
	s.treeMu.RLock()
	defer s.treeMu.RUnlock()
	return s.tree.Fingerprint(lo, hi)
}

// Split returns up to parts-1 IDs that cut [lo, hi) into parts of nearly
// equal record counts; each starts a part.
func (s *Store) Split(lo, hi crdt.ID, parts int) []crdt.ID {
	s.treeMu.RLock()
	defer s.treeMu.RUnlock()
	return s.tree.Split(lo, hi, parts)
}

// Ascend calls fn with the ID and hash of each record in [lo, hi) in order
// until fn returns false. Writers wait while it runs: fn must be quick and
// must not call back into the store.
func (s *Store) Ascend(lo, hi crdt.ID, fn func(crdt.ID, crdt.Hash) bool) {
	s.treeMu.RLock()
	defer s.treeMu.RUnlock()
	s.tree.Ascend(lo, hi, fn)
}

// Records returns the current states of the given records as a delta,
// skipping those the store does not have and those that do not decode
// (logged): no peer could read them either, and the others must still flow.
func (s *Store) Records(ids []crdt.ID) (*crdt.Delta, error) {
	d := &crdt.Delta{}
	err := s.read(func(txn *badger.Txn) error {
		for _, id := range ids {
			col, key, err := id.Split()
			if err != nil {
				return err
			}
			_, r, ok, err := s.getRecord(txn, recordKey(id))
			if IsCorrupt(err) {
				s.log.Error("a stored record cannot be read; it is left out", "err", err)
				continue
			}
			if err != nil {
				return err
			}
			if ok {
				d.Add(col, key, r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ReadRange returns up to limit records with IDs in [lo, hi) in ID order (an
// empty hi means no upper bound; a limit <= 0 means no limit): the chunks of
// a bootstrap. Records that do not decode are left out (logged), as in
// Records.
func (s *Store) ReadRange(lo, hi crdt.ID, limit int) (*crdt.Delta, error) {
	d := &crdt.Delta{}
	err := s.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}, PrefetchValues: false})
		defer it.Close()
		var end []byte
		if hi != "" {
			end = recordKey(hi)
		}
		for it.Seek(recordKey(lo)); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if end != nil && bytes.Compare(k, end) >= 0 {
				break
			}
			if limit > 0 && d.Len() >= limit {
				break
			}
			id, err := idFromKey(k)
			if err != nil {
				return err
			}
			col, key, _ := id.Split()
			r, err := s.decodeItem(item)
			if IsCorrupt(err) {
				s.log.Error("a stored record cannot be read; it is left out", "err", err)
				continue
			}
			if err != nil {
				return err
			}
			d.Add(col, key, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}
