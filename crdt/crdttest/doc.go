// Package crdttest is a deterministic, seeded simulator of Lattice replicas
// and a reference oracle, used to prove that the crdt package converges under
// the faults a real network and real machines produce.
//
// A simulation (Sim) runs N replicas, each a map from record ID to
// crdt.Record with its own crdt.Clock on a skewed physical clock that can
// jump. Replicas perform random local operations the way the sidecar does
// (an adapter observes a row and crdt.Diff turns it into a delta; set adds
// and removes; deletes; re-inserts after deletes) and merge each delta into
// their state. Deltas wait in an outbox, are joined (crdt.JoinDeltas) and
// sent through the wire codec over a Network that drops, duplicates, delays,
// reorders and partitions.
// Replicas crash and restart, losing their outbox and their messages in
// flight but keeping their state, and restore their clock from the
// persisted upper bound (crdt.Clock.Last). Receivers forward their clock past
// every stamp they merge and refuse messages from clocks too far ahead, as
// the sidecar must. Full-state exchanges between connected replicas stand in
// for anti-entropy.
//
// The oracle (see oracle.go) does not use Join. It keeps every operation as
// what it did (register writes; set adds and removes with the adds they
// observed; deletes) and computes a record's visible state from the rules of
// DESIGN.md: the record exists iff some write is newer than the latest
// delete; a register shows the best write newer than the delete under its
// policy; a set holds an element iff some add of it newer than the delete
// was observed by no remove or re-add. It also tracks which operations each
// replica knows, so every replica is checked against the oracle before and
// after each of its operations, not only at the end; and each operation's
// delta is checked against the intent the oracle derives from the Diff,
// SetOps and Delete contracts (minimality and echo-freedom included).
//
// After healing, draining the network and a full exchange, every replica
// must hold equal records (crdt.EqualRecords), equal to the oracle.
//
// Everything is driven by one seeded math/rand/v2 source and iterates in
// sorted order, so a Config (its Seed included) reproduces a run exactly;
// RandomConfig derives varied fault mixes from a seed. The simulator reads
// no clock, does no I/O and starts no goroutines.
//
// Trade-offs: histories are small (tens of operations on a few records) so
// that thousands of seeds run in seconds; the oracle is quadratic in the
// operations of one record, which is fine at that size.
package crdttest
