package store

import (
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// Queued returns the IDs among ids whose records are on the pending-apply
// queue or parked: the system is still to receive (or has refused) their
// merged state, so a difference between the two is not drift.
func (s *Store) Queued(ids []crdt.ID) (map[crdt.ID]bool, error) {
	out := map[crdt.ID]bool{}
	s.wmu.Lock()
	for _, id := range ids {
		if _, ok := s.parked[id]; ok {
			out[id] = true
		}
	}
	s.wmu.Unlock()
	err := s.read(func(txn *badger.Txn) error {
		for _, id := range ids {
			h, _, _, err := s.getRecordIf(txn, recordKey(id), func(recordHeader) bool { return false })
			if err != nil && !IsCorrupt(err) {
				return err
			}
			if h.queued != 0 {
				out[id] = true
			}
		}
		return nil
	})
	return out, err
}
