// Package adaptertest is the conformance suite every adapter passes:
// Run(t, h) drives an adapter through the adapters.Adapter contract against
// a real system that the Harness h creates.
//
// # Implementing a Harness
//
// A Harness is small and knows nothing of the scenarios. NewSystem creates a
// fresh system (a database file, a database) holding the tables the suite
// describes in system-neutral TableSpecs (Tables lists them: one table with a
// column of every supported kind, one with a composite primary key); the
// harness declares each column with its system's type for the kind. On that
// system it opens adapters (again after a Close, to test restarts), performs
// user writes (Exec: plain INSERT, UPDATE and DELETE statements in one
// transaction on a connection of its own, exactly as an application would,
// untagged), and reads the rows back (Rows: plain queries, converted to
// Values independently of the adapter). Features says what the system can
// hold (lists, NaN, time precision), and the suite leaves out the rest.
//
// # Scenarios
//
//   - Tables: discovery returns the suite's tables and nothing else (no
//     adapter bookkeeping tables), sorted, with keys, kinds and nullability.
//   - Snapshot: every row, in batches; the snapshot is the state before or
//     after a user write made while it is read, never a mix; capture from
//     its cursor delivers exactly what was written after it.
//   - CaptureTypes: every edge value of every kind (int64 limits, ±Inf,
//     subnormals, unicode, empty string vs null, zero-length bytes vs null,
//     times with microseconds before 1970 and in 9999, nested JSON and JSON
//     null, lists with separators) through insert, update, update to null
//     and delete, each captured row compared exactly, nulls explicit.
//   - CaptureKeys: composite keys, and an update of a key column captured as
//     the delete of the old key followed by the row under the new one.
//   - Transactions: a user transaction arrives whole in one batch, in
//     statement order, however many rows it touches (3000 here).
//   - ApplyNotCaptured: the echo guard. Apply a batch (twice: Apply is
//     idempotent), then make a user write as a barrier: the barrier must be
//     the only change captured. A later user write to an applied row is
//     captured with the applied values.
//   - ApplyValues: every edge value written by Apply reads back exactly;
//     unnamed columns become null; deletes land; an int is accepted for a
//     float column.
//   - Resume: close the adapter mid-stream, let users write while it is
//     down, reopen and capture from the last acknowledged cursor: everything
//     after it arrives in order, nothing at or before it, and a second
//     restart from the same cursor delivers the same again.
//   - BadRows: a batch holding one bad write (a value of a kind the column
//     cannot hold, a missing or null primary key, a malformed key, an
//     unknown table or column) fails with an adapters.RowError naming that
//     write and marked adapters.ErrBadRow, writes nothing, and the other
//     writes of the batch apply once it is set aside.
//   - ConcurrentMerge: users write while merged rows are applied to the same
//     rows; at the end the system equals the merged state.
//
// # Waiting without sleeping
//
// The suite never sleeps to let capture catch up. It writes a barrier (a new
// row in PairsTable) and waits, with a deadline, for capture to deliver it:
// capture delivers in commit order, so everything committed before the
// barrier has been delivered by then. That is also how it shows a negative:
// an Apply followed by a barrier must yield the barrier alone.
//
// # What "merged" means
//
// ConcurrentMerge runs a tiny single-replica engine (see replica in
// merge.go): captured rows are diffed against the merged records with
// crdt.Diff under a local replica ID and joined; "remote" writes are deltas
// under another replica ID, joined, and the merged view of their rows
// applied. Every field is LWW. Because capture runs behind the system, a
// captured change may be older than an Apply that already reached its row;
// the engine therefore re-applies the merged view of any applied row after
// merging a capture for it (harmless when the row was already equal, never
// captured). After the users stop, rounds of barrier, merge and re-apply run
// until nothing is pending (a handful at most; more means Apply is captured
// back) and the system must then hold exactly the merged view of every row.
// An empty list and null are the same there, because a Lattice register
// holds an empty list as null.
//
// # NaN
//
// Not every system can store NaN in a float column (SQLite turns a bound NaN
// into NULL). Features.NaN says whether user writes can; without it the
// suite does not capture NaN, and requires an Apply of NaN either to store
// it exactly, as Rows reads it back, or to fail with a RowError: never to
// store something else silently.
package adaptertest
