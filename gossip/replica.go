package gossip

import (
	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Replica is the local state a Node keeps in sync with its peers. The store
// implements it (through a thin wrapper); gossiptest.MemReplica is an
// in-memory one. All methods must be safe for concurrent use.
type Replica interface {
	// Merge joins a remote delta into the replica and returns the incoming
	// fragments that changed its state; the Node relays only those.
	// Fragments the replica refuses (a stamp too far in the future, an
	// unknown collection in a strict schema) are left out of changed and may
	// be reported with an error for which crdt.IsClockOffsetError or
	// errors.Is(err, crdt.ErrUnknownCollection) holds, alongside a valid
	// changed. Any other error means the replica failed: the delta is
	// dropped and anti-entropy retries it later.
	Merge(d *crdt.Delta) (changed *crdt.Delta, err error)
	// Digest returns the fingerprint of the whole replica.
	Digest() crdt.Fingerprint
	// Fingerprint returns the fingerprint of the records with IDs in
	// [lo, hi); hi == "" means unbounded.
	Fingerprint(lo, hi crdt.ID) crdt.Fingerprint
	// Split returns up to parts-1 IDs that cut [lo, hi) into parts of
	// nearly equal counts, each starting a part.
	Split(lo, hi crdt.ID, parts int) []crdt.ID
	// Ascend calls fn for the records in [lo, hi) in ID order until fn
	// returns false. fn must not call back into the replica.
	Ascend(lo, hi crdt.ID, fn func(crdt.ID, crdt.Hash) bool)
	// Records returns the current states of the given records as a delta;
	// absent IDs are skipped.
	Records(ids []crdt.ID) (*crdt.Delta, error)
	// ReadRange returns up to limit records in [lo, hi) in ID order.
	ReadRange(lo, hi crdt.ID, limit int) (*crdt.Delta, error)
}

// isRejection reports whether a Merge error only refused some fragments
// (the replica is fine) and how many errors it carries.
func isRejection(err error) (bool, int) {
	if err == nil {
		return false, 0
	}
	if !crdt.IsClockOffsetError(err) && !errors.Is(err, crdt.ErrUnknownCollection) {
		return false, 0
	}
	return true, countLeaves(err)
}

func countLeaves(err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countLeaves(e)
		}
		return max(n, 1)
	}
	return 1
}
