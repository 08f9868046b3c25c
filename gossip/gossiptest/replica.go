package gossiptest

import (
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/rangetree"
)

// MemReplica is an in-memory CRDT replica: records in a map, their hashes
// in a rangetree.Tree, a hybrid logical clock. It merges by crdt.Join like
// the store, rejects fragments stamped too far in the future like the
// store, and implements gossip.Replica. It is safe for concurrent use.
type MemReplica struct {
	schema *crdt.Schema
	clock  *crdt.Clock
	id     crdt.ReplicaID
	source string

	mu   sync.RWMutex
	recs map[crdt.ID]*crdt.Record
	tree rangetree.Tree
	buf  []byte
	hook func(*crdt.Delta)
}

// NewMemReplica returns an empty replica with the given ID (never reuse
// one for a replica that lost its data) and source name (for prefer
// policies), on the system clock with the default maximum offset.
func NewMemReplica(schema *crdt.Schema, id crdt.ReplicaID, source string) *MemReplica {
	return NewMemReplicaClock(schema, id, source, crdt.NewClock(func() int64 { return time.Now().UnixNano() }, 0))
}

// NewMemReplicaClock is NewMemReplica with a given clock.
func NewMemReplicaClock(schema *crdt.Schema, id crdt.ReplicaID, source string, clock *crdt.Clock) *MemReplica {
	return &MemReplica{schema: schema, clock: clock, id: id, source: source, recs: map[crdt.ID]*crdt.Record{}}
}

// ID returns the replica ID.
func (m *MemReplica) ID() crdt.ReplicaID { return m.id }

// Clock returns the replica's clock.
func (m *MemReplica) Clock() *crdt.Clock { return m.clock }

// SetMergeHook sets a function called after every Merge that changed state,
// with the changed fragments, outside the replica's lock.
func (m *MemReplica) SetMergeHook(fn func(changed *crdt.Delta)) {
	m.mu.Lock()
	m.hook = fn
	m.mu.Unlock()
}

// store puts a record and its hash; m.mu is held.
func (m *MemReplica) store(id crdt.ID, r *crdt.Record) {
	m.recs[id] = r
	m.buf = crdt.AppendRecord(m.buf[:0], r)
	m.tree.Set(id, crdt.HashRecord(id, m.buf))
}

// Merge joins d and returns the fragments that changed state. Fragments
// whose stamps are too far ahead of the clock, or of collections a strict
// schema does not list, are skipped and reported in the error (for which
// crdt.IsClockOffsetError or errors.Is(err, crdt.ErrUnknownCollection)
// holds); the others merge.
func (m *MemReplica) Merge(d *crdt.Delta) (*crdt.Delta, error) {
	changed := &crdt.Delta{}
	var errs []error
	m.mu.Lock()
	for _, f := range d.Fragments {
		c, err := m.schema.Collection(f.Collection)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := m.clock.Update(f.Record.MaxStamp().TS); err != nil {
			errs = append(errs, errors.Wrapf(err, "record %s/%s", f.Collection, f.Key))
			continue
		}
		id := crdt.MakeID(f.Collection, f.Key)
		next, ok := crdt.Merge(c, m.recs[id], f.Record)
		if !ok {
			continue
		}
		m.store(id, next)
		changed.Fragments = append(changed.Fragments, f)
	}
	hook := m.hook
	m.mu.Unlock()
	if hook != nil && changed.Len() > 0 {
		hook(changed)
	}
	return changed, errors.Join(errs...)
}

// Put writes the given fields of a record as a local change and returns the
// delta to broadcast (empty when nothing changed).
func (m *MemReplica) Put(collection string, key crdt.Key, row crdt.Row) (*crdt.Delta, error) {
	return m.local(collection, key, func(c *crdt.Collection, cur *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.Diff(c, cur, row, o)
	})
}

// SetOps adds and removes elements of an OR-set field as a local change
// and returns the delta.
func (m *MemReplica) SetOps(collection string, key crdt.Key, field string, add, remove []crdt.Value) (*crdt.Delta, error) {
	return m.local(collection, key, func(c *crdt.Collection, cur *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.SetOps(c, cur, field, add, remove, o)
	})
}

// Delete deletes a record as a local change and returns the delta.
func (m *MemReplica) Delete(collection string, key crdt.Key) (*crdt.Delta, error) {
	return m.local(collection, key, func(_ *crdt.Collection, cur *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.Delete(cur, o)
	})
}

func (m *MemReplica) local(collection string, key crdt.Key, op func(*crdt.Collection, *crdt.Record, crdt.Origin) (*crdt.Record, error)) (*crdt.Delta, error) {
	c, err := m.schema.Collection(collection)
	if err != nil {
		return nil, err
	}
	id := crdt.MakeID(collection, key)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.recs[id]
	o := crdt.Origin{Stamp: crdt.Stamp{TS: m.clock.Now(), Replica: m.id}, Source: m.source}
	d, err := op(c, cur, o)
	if err != nil || d == nil {
		return &crdt.Delta{}, err
	}
	m.store(id, crdt.Join(c, cur, d))
	return &crdt.Delta{Fragments: []crdt.Fragment{{Collection: collection, Key: key, Record: d}}}, nil
}

// Get returns a record's state (nil when absent).
func (m *MemReplica) Get(collection string, key crdt.Key) *crdt.Record {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.recs[crdt.MakeID(collection, key)]
}

// Len returns the number of records (tombstones included).
func (m *MemReplica) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.recs)
}

// Digest returns the fingerprint of the whole replica.
func (m *MemReplica) Digest() crdt.Fingerprint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tree.Total()
}

// Fingerprint returns the fingerprint of [lo, hi).
func (m *MemReplica) Fingerprint(lo, hi crdt.ID) crdt.Fingerprint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tree.Fingerprint(lo, hi)
}

// Split returns IDs that cut [lo, hi) into parts of equal counts.
func (m *MemReplica) Split(lo, hi crdt.ID, parts int) []crdt.ID {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tree.Split(lo, hi, parts)
}

// Ascend calls fn for the records of [lo, hi) in ID order; fn must not call
// back into the replica.
func (m *MemReplica) Ascend(lo, hi crdt.ID, fn func(crdt.ID, crdt.Hash) bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.tree.Ascend(lo, hi, fn)
}

// Records returns the states of the given records; absent ones are
// skipped.
func (m *MemReplica) Records(ids []crdt.ID) (*crdt.Delta, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d := &crdt.Delta{Fragments: make([]crdt.Fragment, 0, len(ids))}
	for _, id := range ids {
		r := m.recs[id]
		if r == nil {
			continue
		}
		c, k, err := id.Split()
		if err != nil {
			return nil, err
		}
		d.Fragments = append(d.Fragments, crdt.Fragment{Collection: c, Key: k, Record: r})
	}
	return d, nil
}

// ReadRange returns up to limit records of [lo, hi) in ID order.
func (m *MemReplica) ReadRange(lo, hi crdt.ID, limit int) (*crdt.Delta, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	d := &crdt.Delta{}
	var err error
	m.tree.Ascend(lo, hi, func(id crdt.ID, _ crdt.Hash) bool {
		if len(d.Fragments) >= limit {
			return false
		}
		c, k, e := id.Split()
		if e != nil {
			err = e
			return false
		}
		d.Fragments = append(d.Fragments, crdt.Fragment{Collection: c, Key: k, Record: m.recs[id]})
		return true
	})
	return d, err
}
