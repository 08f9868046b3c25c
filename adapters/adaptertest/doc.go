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
// hold (lists, NaN, time precision) and report (old rows, cursors it
// refuses), and the suite leaves out the rest; for a system reached over an
// API, Exec sends plain requests as the API's other clients would, and Rows
// lists with plain GETs (see "Systems reached over an API").
//
// # Scenarios
//
//   - Tables: discovery returns the suite's tables and nothing else (no
//     adapter bookkeeping tables), sorted, with keys, kinds and nullability.
//   - Snapshot: every row, in batches that carry no cursor; the snapshot is
//     the state before or after a user write made while it is read, never a
//     mix; capture from its cursor delivers exactly what was written after
//     it.
//   - CaptureTypes: every edge value of every kind (int64 limits, ±Inf,
//     subnormals, unicode, empty string vs null, zero-length bytes vs null,
//     times with microseconds before 1970 and in 9999, nested JSON and JSON
//     null, lists with separators) through insert, update, update to null
//     and delete, each captured row compared exactly, nulls explicit.
//   - CaptureKeys: composite keys, and an update of a key column captured as
//     the delete of the old key followed by the row under the new one.
//   - Transactions: a user transaction arrives whole in one batch, in
//     statement order, however many rows it touches (3000 here).
//   - OldRows: the row before each change (Change.Old) is nil for an
//     insert and, where Features.OldRows says the system reports it, the
//     whole row before an update or a delete: as Apply left it when Apply
//     wrote it last, chained through updates of one row in one transaction,
//     with the delete of the old key (and not the insert of the new one)
//     when an update moves a row. Every scenario checks old rows the same
//     way, and checks every old row an adapter reports even without the
//     feature.
//   - ApplyNotCaptured: the echo guard. Apply a batch (twice: Apply is
//     idempotent), then make a user write as a barrier: the barrier must be
//     the only change captured. A later user write to an applied row is
//     captured with the applied values.
//   - ApplyValues: every edge value written by Apply reads back exactly;
//     unnamed columns become null; deletes land; an int is accepted for a
//     float column.
//   - ApplyPosition: the position Apply returns is at or after the cursor
//     of a change committed (and captured) before it; a change committed
//     before it but captured after it comes in a batch that starts before
//     it; a change committed after it ends after it; positions grow.
//   - Head: Head is at or after the snapshot's cursor and the cursor of
//     every change committed before it, and a change committed after it
//     ends after it.
//   - Cursors: Capture fails with an error marked adapters.ErrCursor from a
//     malformed cursor; from a cursor before one the adapter acknowledged,
//     where Features.RejectsDiscardedCursor says it discards (while the
//     acknowledged cursor itself still works); from another system's
//     cursor, where Features.RejectsForeignCursor says it can tell.
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
//   - IDMap (with Features.GeneratedKeys, for adapters that implement
//     adapters.IDMapper), on a system that also holds SerialTable, whose key
//     the system generates: writes with a NewKey insert rows under distinct
//     generated keys, reported in Applied.Generated and recorded in the ID
//     map (IDMap) in the same transaction, and are not captured; the same
//     NewKey again updates its row instead of inserting another, also after
//     a restart; a NewKey write to a table whose key is not generated, or
//     that sets the key, is a bad row named by its NewKey; a user's update
//     of such a row is captured under its local key; Apply's delete of the
//     row drops its pair, and the NewKey then inserts anew.
//
// Where Features.NaturalKeys says the adapter takes natural keys and local
// columns (adapters.Options.Keys and Local), three more scenarios run on a
// system holding PeopleTable (a generated primary key, the natural key
// email, local columns with and without NOT NULL) besides PairsTable: the
// harness creates the table from TableSpec.Natural and ColumnSpec.Local
// and opens adapters with the Options that Mapping returns.
//
//   - NaturalKeys: Tables reports the natural key and the synced columns
//     only; the snapshot, captures and range reads name records by the
//     natural key and carry no local column (nor the primary key); a change
//     of the natural key is the delete of the old key, then the row under
//     the new one; a change of local columns alone changes no synced column
//     and no range hash.
//   - LocalApply: Apply upserts and deletes by the natural key, keeps the
//     local columns and the primary key of the rows it updates, lets the
//     system generate the primary key of the rows it inserts and gives the
//     local columns their configured values (or their defaults), and is not
//     captured; a user's later change is captured with the applied row as
//     its old row; an adapter that defers writes defers exactly those to the
//     records with changes after since, by the natural key, both keys of a
//     changed natural key included.
//   - NaturalKeyIndex: Open refuses a natural key that no unique index
//     covers, with an error naming the table and the column.
//
// # Systems reached over an API
//
// A JSON REST API (adapters/http) is not a database: Features say what it
// cannot do, each leaving out of the scenarios exactly what needs it, and
// the scenarios check the rest.
//
//   - RecordIDs: a record is named by one ID that never changes. TypesTable
//     and PairsTable get a string key "id" (RecordID derives it from the key
//     a database would have: PairsTable keeps tenant and n as plain
//     columns); the key moves of CaptureKeys and OldRows, and the BadRows
//     cases of composite keys, are left out.
//   - NoTransactions: Exec sends each op on its own. Transactions checks
//     that each write arrives (300 rather than 3000: size means nothing
//     without a transaction), not that they arrive in one batch; Snapshot
//     that each record is as before or after its own concurrent write;
//     BadRows that nothing after the bad write landed.
//   - Polling: capture reports states, not writes. checkChanges compares
//     record by record (the rows captured for a record were written to it,
//     in order, ending with the last; a record inserted and deleted may be
//     missing), the barrier is inserted and then deleted (deletes come from
//     a listing, after later writes), and Head may be passed by the first
//     batch after it, which then holds everything committed before it.
//   - NoBytes, NoInf, NoJSONNull, IntLimit: the values JSON and a
//     JavaScript server hold; the suite leaves out the column or the edge
//     values, and still requires an Apply of NaN or ±Inf to store them
//     exactly or fail with a RowError.
//   - ZeroIsNull: the system has no null (PocketBase keeps "", 0, false);
//     rows are compared with zero values taken for null. A TimePrecision
//     coarser than a microsecond truncates the suite's times.
//   - With GeneratedKeys and RecordIDs, SerialTable's key is a string and
//     IDMap leaves out the table whose key the system does not generate:
//     every ID is.
//
// # Through a mapping
//
// Mapped(h) runs every scenario through adapters/mapping: the system holds
// each table as "sys_<table>" with columns "c_<column>", PairsTable's note
// column with a value map ("one" stored as "N:one") and TypesTable's
// boolean column as text 'Y' or 'N' (a conversion); the adapter the
// suite opens is the system's wrapped by mapping.New on a mapping that
// names them back, and the harness translates user writes and rows itself.
// The scenarios are unchanged, natural keys and local columns included
// (the mapping's NaturalKeys and Local are the Options h opens with).
// IDMap does not run: the mapping keeps the system's ID map for its own
// id_map tables and does not expose adapters.IDMapper.
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
// merge.go): captured changes are diffed against the merged records with
// crdt.DiffFrom and their old rows, under a local replica ID, and joined, so
// that only what a user changed counts; "remote" writes are deltas under
// another replica ID, joined, and the merged view of their rows applied.
// Every field is LWW. Because capture runs behind the system, a captured
// change may be older than an Apply that already overwrote it. The engine
// keeps the position each Apply returned for every row it wrote, and
// re-applies the merged view of a row when a change to it arrives in a batch
// that starts before that position (comparing, for a change that arrives
// while the Apply runs, once the Apply returns); a change in a batch that
// starts at or after the position was committed after the Apply and needs
// nothing. Without that rule the scenario fails: the system keeps values
// that Apply wrote over users' changes the merged state holds. After the
// users stop, rounds of barrier, merge and re-apply run until nothing is
// pending (a handful at most; more means Apply is captured back) and the
// system must then hold exactly the merged view of every row.
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
