// Package sqlite is the adapter for SQLite database files, on
// modernc.org/sqlite (pure Go: no cgo). Other processes may read and write
// the file at the same time with any SQLite library; the adapter sees their
// writes and they see its own.
//
// # Capture
//
// Open switches the file to WAL mode (readers and one writer at once) and
// installs three AFTER triggers per synced table (_lattice_ins_<table>,
// _lattice_upd_<table>, _lattice_del_<table>). They append each changed row
// to the _lattice_log table under a sequence number that never goes back (a
// rowid, one more than the largest, and Ack always keeps the newest row). An
// insert logs the new row; an update logs the new row and the old one side
// by side in one log row; a delete logs the old row. So every captured update
// and delete carries the row before it (Change.Old), as the table held it,
// values written by Apply included: the engine merges only the columns the
// user changed, never a stale copy of the others. An update that changes the
// primary key logs the delete of the old row, then the new row as an insert
// (a new record has no old row). The values go into untyped columns c0, c1,
// ..., so SQLite keeps each exactly as the table held it, storage class and
// bytes, and the row names a layout (_lattice_layout), the table's column
// list when the triggers were built, so rows logged before a schema change
// still decode after it. The log has twice as many value columns as the
// widest synced table, and SQLite's default limit of 2000 columns caps a
// synced table at 997. Each log row also records when its trigger ran (the
// at column, Unix milliseconds from SQLite's own clock, inside the user's
// transaction): that is the change's Committed time, by which the engine
// orders it, so a change that waited in the log is not taken for a later
// one. The triggers are plain INSERTs, since they run inside
// every writing process's own SQLite, whatever its version; they make a
// user's insert about three times as expensive in CPU
// (BenchmarkSQLiteCapture's insert-ratio, 0.31 on the loaded development
// machine, where format 2 triggers, without the time, measured 0.61 in the
// same conditions) and an update, which logs twice the values, about four
// times (BenchmarkSQLiteCaptureUpdate's update-ratio, 0.23, format 2: 0.41).
//
// The log's format is versioned in _lattice_meta. Format 1 triggers logged
// an update as the new row alone and a delete as the key; Open rebuilds them
// as format 2 triggers and records format 2, which an older lattice refuses
// to read. Rows that format 1 triggers logged before the upgrade still
// decode, without an old row. Format 3 adds the at column; an upgrade adds
// it to the existing log (after the value columns it had, so the log is read
// by column name), rebuilds the triggers and records format 3. Rows logged
// before it have no Committed time.
//
// Capture polls: each PollInterval it reads PRAGMA data_version, which
// changes only when another connection commits, and reads the log only then.
// A poll is one prepared PRAGMA, a few microseconds; waking up for it costs
// more, and the default 5 ms costs a few percent of a core while idle. A
// write waits for the next poll: half the interval on average, the whole
// interval at worst (the case BenchmarkSQLiteCaptureLatency measures); 1 ms
// suits latency benchmarks.
//
// A cursor is the log's install ID and a sequence number, 8 bytes big endian
// each, so that the cursors of one install compare with bytes.Compare in
// capture order. Each read of the log after the cursor is one batch, and it
// ends on a transaction boundary because a SQLite reader sees commits whole.
// Triggers cannot tell where a transaction ends within the log, so batches
// cannot be cut shorter than a read: while capture keeps up a batch is the
// few transactions committed since the last poll, but the backlog written
// while the adapter was down (or a huge transaction) arrives as one batch.
// Ack deletes the log rows up to the cursor and records the position in
// _lattice_meta; capturing from a cursor before it fails with ErrCursor, as
// does a cursor from another install of the log (after Uninstall, or of
// another database file), whose numbers mean nothing here. Those errors are
// marked adapters.ErrCursor too: the engine takes a new snapshot.
//
// Snapshot reads every synced table and the log's current sequence in one
// read transaction: every later commit is in the log after that sequence,
// and nothing before it is in the snapshot twice. Its batches carry no
// cursor; the cursor it returns is that sequence. Head is the cursor of the
// log's last sequence number.
//
// # Echo suppression
//
// Apply writes in one write transaction that first inserts a row into
// _lattice_apply and deletes it again last. Every trigger has WHEN NOT
// EXISTS (SELECT 1 FROM _lattice_apply): within Apply's transaction the
// marker is visible and the triggers log nothing; no other connection ever
// sees it, because it is never committed, so their writes are captured as
// usual. A crash inside Apply rolls the marker back with everything else.
//
// Apply never writes over a user's change that capture has not taken. Its
// transaction takes SQLite's write lock as it begins, then reads the log
// rows after the acknowledged position (changes capture has not reported,
// or whose capture the engine has not confirmed with Ack) of the tables it
// writes, and defers every write to a record they name
// (adapters.Applied.Deferred): the row stays as the user left it, and the
// engine applies the merged state once the change is captured and
// acknowledged. Without this, a user who re-inserted a row just as Apply
// wrote an older delete would see the row vanish, and their next DELETE
// would find nothing, so the row would come back once the insert was
// captured and applied. The check reads only the key columns of the log
// rows after since, a few rows while capture keeps up. Behind a backlog of
// 1,000 uncaptured rows, an Apply of 1,000 rows runs at 0.72 to 0.80 of its
// rate without one (BenchmarkSQLiteApplyBehindCapture's ratio; reading
// whole log rows, it was 0.30 to 0.35).
//
// Apply returns its position in capture order: the log's last sequence
// number as its own transaction reads it. SQLite runs one write transaction
// at a time, so every change committed before the Apply is logged at or
// below that number and every later one above it.
//
// # Generated keys and the ID map
//
// Tables reports as Generated (adapters.Column) the column that is the
// table's rowid under another name (the only primary-key column, declared
// INTEGER, of a table with rowids, with or without AUTOINCREMENT; SQLite's
// INTEGER PRIMARY KEY DESC quirk, which is no alias, is not told apart) and
// every column with a DEFAULT.
//
// A write with a NewKey (adapters.Write) inserts its row with an INSERT
// that leaves the key columns out, reads the key SQLite filled in back with
// RETURNING, and records the pair (local key, NewKey) in _lattice_idmap, in
// Apply's transaction: the row and the pair commit together or not at all,
// and the insert is hidden from capture like every Apply write. The key is
// reported in Applied.Generated by write index, as a crdt.Key of the key
// columns' values in their kinds (an INTEGER PRIMARY KEY is one int). The
// key columns must be generated and absent from the row, else the write is
// a bad row; a RowError for a write with a NewKey names it by its NewKey.
// The other columns follow the Write contract: a column the row does not
// name is written null, not its default. A NewKey the map already holds is
// not inserted again: the write updates the record under its local key
// (an upsert, as for any write), reports that key, and is deferred like
// any write to a record with an uncaptured change.
//
// Apply's delete of a record drops its pair in the same transaction. A
// rowid alias without AUTOINCREMENT gives the largest rowid out again once
// its row is gone, so a kept pair could name a later, unrelated row; with
// the pair dropped, a record that comes back (an update that won over the
// delete) arrives as a NewKey again and is inserted anew. A row that a
// user deletes is not seen by Apply: its pair stays, and the next NewKey
// insert that SQLite gives the same rowid replaces it (the pair's local
// key is unique), while a user's insert that reuses it is captured as an
// insert (Change.Insert) of a key the map holds: a new record, not the
// mapped one. Declare AUTOINCREMENT to rule out reuse altogether.
// IDMap reads the pairs of a table; _lattice_idmap is never synced, and
// Uninstall drops it with the other lattice tables.
//
// # Types
//
// SQLite columns hold any value; the declared type says what the
// application means, and maps to a kind as follows (case-insensitive):
//
//	BOOLEAN, BOOL                     bool (stored 1 or 0)
//	TIMESTAMP, DATETIME, DATE         time (see below)
//	JSON, JSON TEXT, ...              json (first word JSON)
//	any type containing INT           int
//	containing CHAR, CLOB or TEXT     string
//	containing BLOB                   bytes
//	containing REAL, FLOA or DOUB     float
//	<one of the above scalars>[]      list of it, stored as a JSON array
//
//	NUMERIC, DECIMAL (any precision)  string holding exact decimal text
//
// A NUMERIC or DECIMAL column holds exact decimal text ("12.50"), for
// counter fields: never a float. SQLite's NUMERIC affinity stores what Apply
// binds as an INTEGER when whole, else as a REAL keeping 15 significant
// digits (SQLite's own rule, the same for every client), or as TEXT when it
// is not a number; capture reads an INTEGER as its digits and a REAL as the
// shortest decimal that is the same double, which for up to 15 significant
// digits is the decimal written (so "12.50" reads back as "12.5", the same
// number). Declare a TEXT column to keep more digits exactly.
//
// Other declared types (none at all, UUID, TIME, ...) are not supported. A
// table without a primary key, or with a column of an unsupported type, is
// skipped with a warning, or fails Open with ErrNotInstallable if
// Config.Tables lists it: a table syncs whole or not at all. Generated
// columns are left out (each system derives its own).
//
// Apply stores a time as RFC 3339 text in UTC with nine fraction digits
// (2024-05-01T12:00:00.000000000Z), which sorts as text in time order and
// which SQLite's date functions read; in a DATE column a time at midnight
// UTC is stored as 2024-05-01. Capture reads those, SQLite's own formats
// (2024-05-01 12:00:00, with or without fraction and zone; a time without a
// zone is UTC), Go's time.Time.String form that database/sql drivers store,
// and integers as Unix seconds. SQLite cannot store NaN (it becomes NULL), so
// Apply stores a NaN float as the text NaN, and capture reads text NaN and
// Inf in a float column back as floats. A plain JSON column has NUMERIC
// affinity: SQLite itself stores a document that is a bare number as a
// number (and a number beyond 64 bits as a REAL, keeping 15 digits); declare
// JSON TEXT to keep such documents exact. Objects, arrays and strings are
// unaffected.
//
// Capture converts what it reads to the column's kind. A value that does
// not fit (text in an INTEGER column, which SQLite allows) is captured as
// it is, in its own kind, with a warning once per column: nothing is lost,
// and other systems that cannot hold it reject it with a RowError. Apply is
// strict: it accepts a column's own kind, an int for a float column and a
// whole float for an int column, and fails anything else with a RowError
// before writing. A row whose primary key is NULL (SQLite allows that in
// rowid tables) cannot be keyed and is not captured, with a warning.
//
// # Schema changes
//
// Capture reads PRAGMA schema_version with data_version and re-installs when
// it changes: new columns get new triggers and a new layout, new tables are
// picked up (unless Config.Tables limits them), and dropped tables' triggers
// go with them. A table that had no triggers (new, re-created, or newly
// listed) has its existing rows logged once in the same transaction that
// creates them, so rows written before the triggers existed are not lost.
// Writes to a new column between the ALTER TABLE and the re-install (at most
// one poll) are logged by the old triggers, without that column; so the
// re-install logs every row that holds a value in a new column as an update
// of those columns from null (a DEFAULT of the new column counts as such a
// write). After a re-install that changed the synced tables or their
// columns, CatalogChanged signals, so that the engine maps them at once.
// Dropping a table does not
// delete its records elsewhere. A time primary key must be stored in the
// adapter's own time format, or Apply's upserts and deletes will not find
// the row. Like every SQLite trigger, the delete trigger does not fire for a
// row that INSERT OR REPLACE removes because it conflicts on a unique column
// other than the primary key (unless PRAGMA recursive_triggers is on), so
// such a removal is not captured.
//
// # A file deleted or replaced
//
// Capture compares the file at Config.Path with the one it opened
// (os.SameFile) on every poll, and Apply before every transaction. A file
// deleted or replaced while the adapter runs is closed at once, its
// write-ahead log first checkpointed into it and emptied (SQLite leaves the
// log of a moved file under the name a new file at the path would read as
// its own). Capture then fails with ErrFileChanged and, as after a restart,
// the next Capture opens the new file: its change log is new, so the cursor
// fails with adapters.ErrCursor and the engine takes a new snapshot and
// writes what the file lacks. A deleted file is not created again (an
// empty database holds no tables): Capture and Apply fail with
// ErrFileChanged until a database exists at the path again.
//
// Whichever call notices the change first reopens, so Capture may not be
// the one: reopen bumps a generation and ends every running Capture (it
// cancels its context with the reopen's cause and closes its connection)
// before it empties the old log, and Capture fails with ErrFileChanged
// when the generation it started on is gone. Were its connection left open
// (database/sql closes a checked-out connection only when it is returned),
// Capture would go on reading the old file, which nobody writes, and its
// reader would keep the checkpoint from emptying the old log. SQLite
// reports such a reader in the checkpoint's result row (busy), not as an
// error; reopen logs it: another process that keeps the old file open
// (the application's own pool) can still make the new file read the old
// log's pages ("database disk image is malformed"), so an application
// must close its connections before it replaces the file.
//
// A copy of the file (a backup restored) has the original's install ID,
// so a cursor from the old file decodes for the new one. Its position may
// be past the new log's head, the one thing that gives it away: Capture
// refuses it (ErrCursor, as for a restart), Ack ignores it (recorded, it
// would fail every cursor of the new file), and Apply treats it as a since
// it does not know, deferring writes to records changed after the
// acknowledged position. A cursor from the old file at or before the new
// head is not told apart: both files share the log up to the copy.
//
// # Natural keys and local columns
//
// Config.Keys (adapters.Options.Keys) keys a table by a natural key in
// place of its primary key: NOT NULL columns of scalar types that a unique
// index (not partial) covers exactly, which is what INSERT ... ON
// CONFLICT (natural key) needs. The primary key is then local: it needs a
// default, and an INTEGER PRIMARY KEY of a rowid table has one (the
// rowid), since Apply inserts without it. Tables reports the natural key
// as the table's Key; captures, the snapshot, the range reads, Apply's
// upserts and deletes and its deferral check (the log rows after since)
// name records by it. The log holds whole rows, and the adapter leaves out
// what is local when it reads them; the update trigger of such a table
// watches the natural key in place of the primary key (a new mapping
// rebuilds it). An update that changes the natural key is captured as the
// delete of the old key, then the row under the new one, and the deferral
// check defers writes to both keys; one that changes only the primary key
// is an update of the same record that changes no synced column. Update
// rows logged before the table had its natural key, by triggers that
// watched the primary key, are split the same way. A delete logged by
// format 1 triggers holds only the primary key and is left out, with a
// warning.
//
// Config.Local (adapters.Options.Local) lists columns the sync leaves to
// the database: Tables, Snapshot, Capture (rows and old rows) and the
// range reads leave them out, and Apply never writes them. An update
// keeps their values; an insert gives them the value Config.Local names,
// or leaves them to the column's default when it is null. A user's change
// of local columns alone is still captured, as an update whose row and old
// row are equal. An unknown table or column, a natural key without its
// index, a primary key without default, a NOT NULL local column with
// neither a value nor a default, or a value a local column cannot hold
// fail Open (and the re-install after a schema change) with
// ErrNotInstallable, naming every problem.
//
// # Installation
//
// Open installs idempotently: in one write transaction it creates the lattice
// tables if missing, records a new layout only when a table's columns
// changed, and rebuilds only the triggers whose SQL differs; a second Open
// changes nothing. Triggers named _lattice_* for tables no longer synced are
// dropped. Uninstall drops every trigger and table the adapter created,
// change log included; do it with the sidecar stopped.
//
// Foreign keys are not enforced on the adapter's connections (SQLite's
// default), so Apply can write rows in any order.
package sqlite
