package engine

import "github.com/lattice-crdt/lattice/crdt"

// Join modes: how a snapshot row meets a record the store already holds
// (the sidecar's initial_sync).
const (
	// JoinCluster keeps the merged state of every record the store holds
	// (live or deleted); rows of records it does not hold are new records.
	JoinCluster = "cluster"
	// JoinSystem lets the system's rows win: they diff against the merged
	// state as fresh changes.
	JoinSystem = "system"
	// JoinNewest compares one field per record: the side whose value is
	// newer wins.
	JoinNewest = "newest"
)

// Join says how snapshot rows (captured batches without a cursor: the
// initial snapshot, a new snapshot after capture could not resume, rows of
// tables that join the catalog) reconcile with records the store holds.
// Without it a stale system (a store lost beside its database, a database
// restored from a backup) would take its old rows for new writes stamped
// now and overwrite newer values everywhere.
type Join struct {
	// Mode is JoinCluster (the zero value's mode), JoinSystem or
	// JoinNewest.
	Mode string
	// Field names the field JoinNewest compares.
	Field string
}

// systemWins reports whether a snapshot row may change merged, a record
// the store holds.
func (j Join) systemWins(c *crdt.Collection, merged *crdt.Record, row crdt.Row) bool {
	switch j.Mode {
	case JoinSystem:
		return true
	case JoinNewest:
		v, ok := row[j.Field]
		return ok && newer(c, merged, j.Field, v)
	default:
		return false
	}
}

// newer reports whether v, a system row's value of field, is newer than the
// merged record's: its visible value of field, or for a deleted record the
// time of the delete (for time values only). Values of different kinds, or
// a null v, never win.
func newer(c *crdt.Collection, merged *crdt.Record, field string, v crdt.Value) bool {
	if v.Kind() == crdt.KindNull {
		return false
	}
	if !merged.Exists() {
		return v.Kind() == crdt.KindTime && v.AsTime().UnixNano() > merged.Deleted.TS.Wall
	}
	have, _, ok := merged.Get(c, field)
	if !ok || have.Kind() == crdt.KindNull {
		return true
	}
	return have.Kind() == v.Kind() && crdt.Compare(v, have) > 0
}
