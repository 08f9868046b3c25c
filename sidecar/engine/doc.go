// Package engine holds the decisions of the boundary between a system and
// its replica, as a state machine without I/O in the shape of etcd raft's
// RawNode: it never reads the clock (time comes in through crdt.Clock),
// never starts a goroutine, never touches Badger, gossip or an adapter. It
// reads stored records through a small read-only interface (Reader) and
// answers each input with one Ready value that says what the store must make
// durable, then what gossip may broadcast, then which cursor the adapter may
// acknowledge; the driver (sidecar.Agent) obeys that order.
//
// In it:
//
//   - the catalog mapping (Catalog, Mapping): the system's tables and
//     columns as collections, rebuilt when the adapter reports a change;
//   - apply positions (Positions): which captured changes may have been
//     overwritten in the system by an apply before capture saw them;
//   - the stamp rule (commit time raised above what the writer saw), the
//     diff from the old row, and the decision which records to queue for
//     apply (Local, and Engine.Capture for captured batches), the same
//     decision for merges of remote changes (QueueMerged, which the store
//     calls inside its merge transaction) and after a snapshot
//     (Catalog.QueueUnseen). Under the counter policy the diff is the capture rule:
//     a change from old to new is an increment of new - old owned by this
//     replica (crdt.DiffFrom), and apply writes the total; a decimal the
//     system prints with fewer digits than the total is the same number
//     (crdt.SameNumber), not a difference to apply;
//   - the conflicts captured changes decide (Ready.Conflicts): a captured
//     write that wins over a merged write its system had not received, or
//     that a merged write which had not seen it overtook (crdt.Conflicts,
//     crdt.LostWrite); the store logs them with the step's writes, and
//     marks the conflicts a change resolves (Change.Resolves,
//     Ready.Resolved).
//
// An Engine is not safe for concurrent use: the driver serialises calls
// (Catalog and SetCatalog excepted). The store runs each step under its
// writer lock (store.Commit), so that what a step reads is what it writes
// over.
// The interleavings behind each hazard of sidecar/doc.go are scripted in
// testdata/ and run by TestEngine (datadriven).
package engine
