// Package postgres is the PostgreSQL adapter: it captures the changes a
// database's users commit through logical replication (the pgoutput plugin)
// and writes merged rows back in transactions that capture never reports.
//
// # Capture
//
// Open creates a publication for the synced tables and a replication origin
// (both idempotently). Snapshot drops any slot left over, then creates the
// logical replication slot with EXPORT_SNAPSHOT: PostgreSQL returns the
// slot's consistent point and a snapshot of exactly the transactions
// committed before it. The tables are read in a REPEATABLE READ transaction
// that imports that snapshot (SET TRANSACTION SNAPSHOT), and the consistent
// point is the cursor returned: no transaction falls between the snapshot and
// the stream, none is in both. Snapshot batches carry no cursor.
//
// Capture streams from the slot (START_REPLICATION, protocol version 1, no
// in-progress streaming, so a transaction arrives whole at its commit) and
// delivers batches that end on commits, at most BatchSize changes unless one
// transaction is larger, after waiting BatchWait for more. The cursor is a
// WAL position, 8 bytes big endian: the end of the commit record of the
// batch's last transaction, or the slot's consistent point after a snapshot.
// A transaction belongs after a cursor exactly when its commit record starts
// at or after it, which is the rule PostgreSQL applies to the position a
// stream starts from: the commit LSN itself would not do, because a
// transaction may commit exactly at the consistent point, outside the
// snapshot. After a restart PostgreSQL sends transactions again from the
// slot's confirmed position; those before the cursor given to Capture are
// skipped, so nothing before the cursor is delivered twice and nothing after
// it is lost. Every change carries its transaction's commit timestamp from
// the Commit message (Change.Committed, the server's clock), by which the
// engine orders it.
//
// Cursors compare with bytes.Compare as WAL positions do. Capture refuses,
// with an error marked ErrCursor and adapters.ErrCursor (the engine then
// takes a new snapshot), a cursor that is not 8 bytes, one ahead of the
// server's WAL insert position (from another server, or a server restored
// from a backup), and one before the position this adapter acknowledged,
// which the slot has discarded. After a restart the adapter cannot tell a
// cursor older than the one acknowledged before it from a current one: the
// slot's confirmed position also moves past transactions capture dropped
// (Apply's own, or other databases') while nothing was pending, so a cursor
// before it is normal; databases on one server share the WAL, so another
// database's cursor is not refused either. The engine never captures from
// before what it acknowledged.
//
// Each captured update and delete carries the row before it (Change.Old)
// when the server sends the whole old row, which it does with replica
// identity full (the adapter's default, see Hazards). With a key-only old
// tuple (replica identity default or index, with ReplicaIdentity keep) or
// none, Old is nil and the engine diffs the whole row. An unchanged value
// stored out of line (TOAST) that the new tuple leaves out is taken from the
// old row, so it is in both; if neither has it, it is left out of both. An
// update that moves a row to a new key is captured as the delete of the old
// key, with the old row, and the insert of the new one, without.
//
// Capture sends a standby status update every StatusInterval, and at once
// after an Ack, reporting as flushed the highest acknowledged cursor, which
// the engine acks only once the batch is durable in Lattice. When everything
// delivered is acknowledged and no transaction is pending, it reports the
// server's own position instead (from keepalives, or the end of a
// transaction it dropped): an idle slot, or one that only sees the adapter's
// own writes, does not hold back WAL.
//
// Relation messages are tracked per stream: a column added to a table is
// captured from its first change on (and appears in Tables), a dropped column
// is logged and no longer captured, and a column of an unsupported type or a
// vanished key column stops capture with a clear error. Nothing is skipped
// silently.
//
// # Echo suppression
//
// Apply runs on a session that has called pg_replication_origin_session_setup
// with the adapter's origin, so every transaction it commits carries that
// origin. On PostgreSQL 15 pgoutput sends an Origin message at the start of
// such a transaction and capture drops the transaction. On 16 and later
// capture also passes origin 'none', so the server does not send it at all;
// note that this drops transactions of every origin, including those a
// native logical replication subscription writes into the database. Apply
// upserts (INSERT ... ON CONFLICT (primary key) DO UPDATE, skipped when the
// row is already equal, so a repeated apply writes nothing) and deletes by
// primary key, in one transaction per call. Deadlocks with the users'
// transactions are retried.
//
// Apply returns its position in capture order: the server's WAL insert
// position (pg_current_wal_insert_lsn), read after its transaction
// committed. A user transaction that committed before it ends at or before
// that position, so its batch starts before it, and the engine knows the
// Apply may have overwritten it; one that commits after the read ends after
// it. Head returns the same position, read at the time of the call.
//
// Apply never writes over a user's change that capture has not taken (see
// Adapter.Apply): its transaction writes and locks its rows, then writes a
// marker, a transactional logical decoding message (pg_logical_emit_message,
// on the metadata session, committed with synchronous_commit local), and
// waits until capture's stream (START_REPLICATION with messages on) has
// decoded the marker's commit. Transactions arrive in commit order, so the
// stream has by then decoded every user's transaction that could touch the
// Apply's rows, and noted the records each changed. Writes to records a
// user changed after the cursor the merged rows include are left out: the
// transaction rolls back, runs again without them, and reports them
// deferred. Each Apply pays a round trip and the stream's delay, a few
// milliseconds on a local server (BenchmarkApplyDeferCheck).
//
// # Generated keys and the ID map
//
// Tables reports as Generated (adapters.Column) every identity column and
// every column with a default (pg_attribute.attidentity, atthasdef): a
// serial's nextval, a UUID generator such as gen_random_uuid().
//
// A write with a NewKey (adapters.Write) runs, in Apply's transaction and
// pipeline, one statement: an INSERT that leaves the key columns out
// (DEFAULT VALUES when the row has no other column) and RETURNING them,
// chained to an INSERT of the pair into the ID map, so the row and the
// pair commit together or not at all; the origin hides both from capture.
// The key is read back as the key columns' text forms, decoded as capture
// decodes them, and reported in Applied.Generated by write index as a
// crdt.Key of the columns' kinds (bigint and integer: int; uuid: its
// canonical text). The key columns must be generated and absent from the
// row, else the write is a bad row; a RowError for a write with a NewKey
// names it by its NewKey. The other columns follow the Write contract: a
// column the row does not name is written null, not its default. A NewKey
// the map already holds is not inserted again: Apply reads the map first
// (on its own session, outside the transaction: only that session writes
// the map) and writes the record under its local key, as any write, and
// reports that key.
//
// The ID map is the table idmap in a schema named like the replication
// origin (lattice_<node>), created by the first Apply with a NewKey, which
// needs CREATE on the database; the schema is never synced, whatever
// Config.Schemas says. It keys a pair by the table's collection name and
// the key columns' text forms (text[]) and holds the collection key as
// bytea. Once it exists, Apply's delete of a record drops the record's
// pair in the same statement: a sequence never gives a key out again, but a
// reset one (or an identity restarted) would, and a record that comes back
// after its delete arrives as a NewKey again and is inserted anew. A row a
// user deletes keeps its pair. Uninstall drops the table and then the
// schema, unless the schema holds other objects.
//
// # Types
//
// Values travel as text, read and written by one codec (values.go), so that
// the snapshot, the stream and Apply agree; the session fixes the text forms
// (DateStyle ISO, TimeZone UTC, extra_float_digits 3, bytea_output hex).
// smallint, integer and bigint map to int; real and double precision to
// float; text, varchar, char, name and enums to string; boolean to bool;
// timestamptz, timestamp and date to time (a timestamp without time zone is
// read as UTC, a date as midnight UTC; infinity and -infinity map to
// 5874898-01-01 and 4714-01-01 BC, times just outside what PostgreSQL
// stores); uuid to its canonical lowercase string; json and jsonb to json;
// bytea to bytes; domains to their base type; one-dimensional arrays of these
// to lists (whether a list merges as a register or as an add-wins set is the
// collection's policy, not the adapter's; Apply writes a list in the order
// given, and an OR-set field's view is sorted). numeric maps to a string holding its exact decimal text: a float
// would round (0.1 + 0.2) and an integer would overflow, while the text keeps
// every digit and the scale. Other types are reported at start-up by table
// and column.
//
// Some values change form when written: a numeric column rounds to its scale
// (1.5 becomes 1.50), timestamps to microseconds, real to single precision,
// json text to its canonical form. The next capture of such a row reports the
// stored form once; it converges and does not loop.
//
// # Verification reads
//
// ReadRange and ReadKeys (adapters.RangeReader) read rows on the catalog
// connection in the order of their crdt.Key encodings (text keys in the
// "C" collation, numeric keys by their text). HashRange and
// ReadHashedRange (adapters.RangeHasher) let verification skip the rows of
// a key range that has not changed: the server hashes each row's text,
// ROW(columns)::text in the "C" collation (the columns' output forms, which
// the session fixes; a null and an empty string differ), with
// hashtextextended under seeds 0 and 1 (two 64-bit halves), and XORs the
// rows' hashes (bit_xor) into the range's. HashRange returns only the
// hash, the count and the last key, in one statement; ReadHashedRange
// returns each row with its hash from one statement, so the rows and their
// hash are of one snapshot. hashtextextended is PostgreSQL's hash for
// partitioning: fast, stable, not cryptographic; a change escapes it by
// accident with a negligible probability, but a writer who crafts
// collisions could hide a row from the comparison (so could one who
// crafts collisions of any XOR of row hashes). The row's text costs more
// than its hash: on the 2-core development machine the server hashes a
// range of 1,000 four-column rows in about 1.2 ms (md5 of the same text
// was several times slower), sends the same rows in about 0.6 ms, and reads them
// with their hashes in about 1.8 ms; the sidecar then spends about 10 ms
// decoding, mapping and hashing what it read.
//
// # Natural keys and local columns
//
// Config.Keys (adapters.Options.Keys) keys a table by a natural key in
// place of its primary key: columns of scalar types, NOT NULL, that a
// unique index (not partial, without expressions) covers exactly, which
// is what INSERT ... ON CONFLICT (natural key) needs. The primary key is
// then local: it needs a default (an identity, a serial), since Apply
// inserts without it. Tables reports the natural key as the table's Key;
// captures, the snapshot, the range reads and Apply's upserts and deletes
// name records by it, and an update that changes it is captured as the
// delete of the old key, then the row under the new one (an update that
// changes only the primary key is an update of the same record, with no
// synced column changed). The old rows of the stream must carry the
// natural key: Open sets REPLICA IDENTITY FULL (ReplicaIdentity full, the
// default); with ReplicaIdentity keep the table must have REPLICA IDENTITY
// FULL, or USING INDEX of the natural key's unique index, or Open fails
// with ErrReplicaIdentity and says which.
//
// Config.Local (adapters.Options.Local) lists columns the sync leaves to
// the database. Tables, Snapshot, Capture (rows and old rows), ReadTables
// and the range reads leave them out, and so does the range hash: a change
// of local columns alone changes no hash. An update by Apply keeps their
// values; an insert gives them the value Config.Local names, or leaves
// them to the column's default when it is null. A user's change of local
// columns alone is still captured, as an update whose row and old row are
// equal. An unknown table or column, a natural key without its index, a
// primary key without default or a value a local column cannot hold fail
// Open (or Tables) with ErrNoTable, ErrNaturalKey or ErrLocalColumn, each
// with a hint.
//
// # Start-up checks
//
// Open reports, with a hint for each: a server older than MinVersion;
// wal_level not logical; max_replication_slots or max_wal_senders at zero;
// a database encoding other than UTF8; a role without REPLICATION or without
// EXECUTE on the replication origin functions; a table without a primary
// key, with an unusable replica identity (only with ReplicaIdentity keep),
// without the privileges Apply needs, or with a column of an unsupported
// type; a slot PostgreSQL invalidated.
//
// # Hazards
//
//   - Slot retention. A slot keeps every WAL segment its consumer has not
//     confirmed. A sidecar that stays down makes PostgreSQL keep WAL until the
//     disk fills. Set max_slot_wal_keep_size to bound it, watch
//     pg_replication_slots, and drop the slot (Uninstall) of a sidecar that
//     is gone for good.
//   - Invalidation. When max_slot_wal_keep_size is exceeded, PostgreSQL
//     invalidates the slot (wal_status lost) and the changes it held are
//     gone. The adapter refuses to capture from it (ErrSlotInvalidated, marked
//     adapters.ErrCursor, as is a missing slot): the engine takes a new
//     snapshot, which replaces the slot, and reconciles its rows with the
//     merged state by initial_sync.
//   - DDL. Added columns are picked up (and signalled on CatalogChanged);
//     dropped columns stop being captured (the other systems keep their
//     values). TRUNCATE does not say which rows it removed: capture stops
//     with ErrTruncate. A table created while the adapter runs is added to
//     the publication by the next Tables call that finds it, and captured
//     from then on; the rows written before are not in the stream, and
//     ReadTables (adapters.TableReader) reads them for the engine once its
//     catalog gains the table. A new table that cannot be synced is left out with a warning
//     until it is fixed. A table that existed at Open but is missing from the
//     publication is reported by Capture (ErrPublication): its earlier rows
//     were never captured, and a new snapshot adds it. A changed primary key
//     changes records' identity and needs a new snapshot too.
//   - Replica identity. By default the adapter sets REPLICA IDENTITY FULL on
//     the synced tables, so that updates and deletes carry the old row and
//     updates the values stored out of line (TOAST) that did not change; it
//     costs WAL on updates and deletes. With ReplicaIdentity keep, such
//     values are left out of the captured row, and a table without replica
//     identity full reports no old rows: a user's update then counts every
//     column the system holds, which writes back a column whose newer merged
//     value had not been applied yet.
//   - Long and large transactions. Creating the slot waits for the
//     transactions running at that moment to finish, and the slot holds WAL
//     from the oldest transaction still open. A transaction arrives whole
//     and is delivered in one batch, so capture holds its changes in memory:
//     a bulk update of millions of rows costs memory in proportion.
//   - One consumer per slot. Capture waits a few seconds for the session of
//     a capture that just ended to let go of the slot, then reports
//     ErrSlotInUse: two sidecars must not share a node name (or slot).
package postgres
