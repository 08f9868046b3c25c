// Package sidecar is the Lattice engine: it wires one system adapter, the
// Badger store and the gossip node into an Agent, and serves the HTTP API
// and Prometheus metrics. It is the one composition root; cmd/lattice only
// parses flags and config and calls Start.
//
// # Data flow
//
// The boundary's decisions live in one pure package, sidecar/engine (etcd
// raft's RawNode shape): the catalog mapping, the stamp rule, the diff from
// the old row, the queue decision and the apply positions. The Agent is its
// driver: it steps the engine (a captured batch, an API write) inside
// store.Commit, under the store's writer lock, and carries out the
// engine.Ready it returns in the order raft's Ready prescribes: the store
// makes the new states and the cursor durable, then gossip broadcasts the
// delta, then the adapter is acknowledged the cursor.
//
// Local changes: the adapter captures rows its system's users commit, in
// batches that end on transaction boundaries. For each batch the engine
// stamps the changes, diffs them against the merged state (a row equal to it
// yields nothing), and says what to write; the store writes the new state
// and the adapter's cursor in one durable transaction. Only then is the
// delta broadcast and the cursor acknowledged to the system (Adapter.Ack):
// capture is at-least-once and merging is idempotent, so a crash at any
// point loses nothing and duplicates nothing visible.
//
// Remote changes: gossip hands received deltas to the store (through the
// replica type, which also counts them and measures propagation delay).
// Records whose visible state changed are put, in the same transaction, on
// the store's durable pending-apply queue. The apply loop drains that queue
// in batches: it writes each record's current merged state (never the raw
// delta) into the system in one tagged transaction that capture skips, and
// acknowledges the queue entries afterwards. While the system is down the
// queue waits and the loop retries with exponential backoff; a row the
// system rejects for its content is parked (kept, shown in /v1/status,
// re-queueable with POST /v1/parked/requeue) so that one bad row cannot
// block the rest. The adapter says which: an error naming a write
// (adapters.ErrBadRow) parks it; one marked adapters.ErrUnavailable retries
// the batch; any other error names no write, so the loop applies the
// batch's records one at a time and parks the one that fails alone while the
// system still answers (TestUnclassifiedApplyErrorParksOneRow).
//
// Ordering: a captured change is stamped with the time its system committed
// it where the adapter reports one (PostgreSQL's commit timestamp, the time
// SQLite's capture trigger ran), raised above the merged values its old row
// shows, so that capture lag never reorders changes made milliseconds apart
// in two systems (TestDeleteAfterUpdateElsewhereNotUndone,
// TestIntegrationPostgresDeleteAfterUpdateNotUndone). A change older than
// writes merged before it was captured loses to them, and the system is
// brought back to the merged state by apply.
//
// Capture racing apply: whether a captured change may have been overwritten
// in the system by an apply (its batch starts before the apply's position,
// engine.Positions) is decided inside the engine's step, which the store
// runs under the writer lock that acknowledges applies (store.Commit).
// Decided before, an apply acknowledged in between left the system holding
// the applied row while the store held the user's change
// (TestCaptureRacesApplyAck).
//
// Why no update loops: a remote change reaches the system only through
// apply, which capture never reports; and if it did, the diff against the
// merged state would be empty. Each winning change is written into each
// system once.
//
// # Start-up
//
// Start opens the store, the adapter and gossip, and serves the API at once.
// In the background it joins the configured seeds (retrying), streams the
// full state from a peer if its own store is empty, and then runs capture
// (preceded, when no cursor is stored, by an initial snapshot of the system)
// and apply. /readyz turns ready once capture runs, and unready while capture
// or apply has been failing for longer than ready.fail_after (health.go: a
// run of failures ends with a finished batch, or for capture with a second
// of running without error); held by TestReadyzReportsFailingCapture and
// TestReadyzToleratesShortFailures, and, to the millisecond in a synctest
// bubble, by TestReadinessFailAfter.
//
// # Time
//
// Every wait and reading of the time of day in the agent, its gossip node
// and its adapter goes through one injected clock.Clock (Options.Clock,
// gossip.Config.Clock, adapters.Options.Clock; default clock.Real), so
// timing tests run in a testing/synctest bubble instead of polling:
// TestBackoffDoublesUpToMax, TestReadinessFailAfter,
// TestCatalogPeriodicRefreshSchedule.
//
// # Safe join
//
// A snapshot (no stored cursor: a first start, a lost data directory, a
// cursor the system cannot resume from) meets the merged state. Its rows
// used to be diffed against it as fresh local changes stamped now, so a
// stale database overwrote newer values everywhere. Now an empty store with
// peers bootstraps from them first, retrying until it succeeds unless
// initial_sync is system (join.go), and each snapshot row of a record the
// store holds is decided by the engine's Join (engine/join.go, Params.Join)
// inside the step, under the store's writer lock: cluster keeps the merged
// state and queues the record for apply, newest compares a field, system
// lets the row win. Held by the engine scripts initial_sync_*.txt,
// TestStoreLostBesideStaleDatabase (cmd/lattice),
// TestInitialSyncOverlappingSystems, TestRestoredBackupTakesClusterState and
// TestIntegrationPostgresDroppedSlotTakesClusterState.
//
// # Verification
//
// verify.go compares the system's rows (adapters.RangeReader) with the
// merged state's visible rows, range by range, fingerprints first, through
// the catalog mapping capture uses; a difference is confirmed only after
// capture has caught up with the system's head, and records on the apply
// queue or parked are not drift. Repairs go through the apply queue (with
// apply positions), or through an engine step (capture). Held by
// TestVerifyReportsDrift, TestVerifyRepairsDriftWithinInterval,
// TestVerifyRepairCaptureTakesSystemRows, TestVerifyIgnoresUncapturedUserWrite
// and TestIntegrationPostgresVerifyRepairsDrift.
//
// Where the adapter hashes key ranges in the system
// (adapters.RangeHasher), a range is equal without reading its rows only
// when the system's hash of it and the store's fingerprint of it are both
// those of the last pass that compared its rows and found them equal. The
// hazard is a pair that stands for states never compared: the system's
// hash comes from the statement that read the rows, and the store's
// fingerprint is taken before its records are read (the range tree follows
// commits, and a record's hash changes with every change of its state). A
// range with drift is never remembered, so the next pass reads it again; a
// changed mapping forgets the collection's ranges. Held by
// TestIntegrationPostgresVerifyReadsOnlyChangedRanges.
//
// # A store that fails
//
// Badger retries a failed memtable flush forever, so an agent whose data
// directory goes away would hang, acknowledging writes it cannot keep. The
// agent checks the directory every second (store.CheckDir) and stops on
// its own (Agent.Done, Agent.Err) without closing the store; cmd/lattice
// then exits with status 1, and bounds every shutdown by shutdown_timeout.
// Held by TestAgentStopsWhenDataDirVanishes and
// TestSIGTERMEndsAgentWithHungStore in cmd/lattice.
//
// # The live catalog
//
// The mapping of the system's tables and columns (engine.Catalog) is replaced while
// running (catalog.go): every adapter.catalog_interval, when an adapter that
// implements adapters.CatalogNotifier reports a change, and before a captured
// batch that names an unknown table or column is read. A new table gets every
// record of its collection queued for apply; parked records of a collection
// that gained a table or column are requeued. Held by
// TestTableCreatedWhileRunning and TestColumnAddedWhileRunning (SQLite), and
// for PostgreSQL, whose adapter adds a new table to its publication when
// Tables finds it, by TestIntegrationPostgresCatalogWhileRunning in
// cmd/lattice and TestIntegrationTablesCreatedWhileRunning in
// adapters/postgres.
//
// # Hazards
//
// Each place where a system and its store could part ways, and the test
// that holds it. A digest compares stores only, so every end-to-end test
// named here compares the system's tables too. The engine's scripts
// (sidecar/engine/testdata, run by TestEngine) replay each interleaving
// step by step; each fails when the rule it names is taken out.
//
// HAZARD: an apply writes over a user's change that capture has not taken
// yet. The system briefly shows an older row, and the user's next statement
// acts on it: a DELETE of a row they had just re-inserted finds nothing,
// and the row comes back once the insert is captured and applied (the
// randomized checker found it). The same holds for a change captured,
// stored and acknowledged after the applier read the record from the
// queue: the row it writes does not include it. So the applier reads the
// store's capture cursor before the queue and passes it to Apply (since),
// and an adapter that can tell defers the writes of records changed in the
// system after it (adapters.Applied.Deferred; SQLite reads its log after
// since inside the apply's transaction, which holds the write lock;
// PostgreSQL's transaction, its rows written and locked, waits for its
// capture stream to decode a marker and asks it which records users'
// transactions changed): the record goes to the back of the queue and the
// applier retries after the next acknowledged capture
// (lattice_apply_deferred_total). Acknowledgements wait for the apply
// batch in flight (Agent.ack): SQLite's Ack discards the log rows that
// check reads, and the checker once lost an UPDATE to an ack that landed
// between the applier's read of the cursor and its Apply. Capture does not
// wait for them (Agent.queueAck): PostgreSQL's Apply waits for capture's
// stream, which would otherwise wait for the Apply.
// TestApplyDefersUncapturedRecords (adapters/sqlite),
// TestIntegrationApplyDefersUncapturedChanges (adapters/postgres),
// TestCaptureRacesApply, TestCaptureRacesApplyAck,
// TestApplyOfRowReadBeforeCapturedChange,
// TestDeleteAfterUpdateElsewhereNotUndone; the randomized checker fails a
// schedule in which a client's statement finds its own write undone. The
// two hazards below remain for adapters that cannot tell (HTTP APIs).
//
// HAZARD: a user's write captured while an apply of the same record is in
// flight, after the apply overwrote it. The engine marks the change stale
// (its batch starts before the apply's position) and queues the record
// again; the decision is made in the step that store.Commit runs under the
// writer lock the apply acknowledgement takes, so an acknowledgement cannot
// land between the decision and the write. TestEngine/capture_races_apply,
// TestCaptureRacesApplyAck, TestCommitStepUnderWriterLock (sidecar/store).
//
// HAZARD: an apply overwrites a user's write that lands between the apply's
// read and its commit. A captured change that changes a record still on the
// queue moves it to the back, so the apply's acknowledgement no longer
// matches and the merged result is written back.
// TestEngine/apply_read_then_user_write, TestCaptureRacesApply,
// TestCapturedChangeRequeuesInflightApply (sidecar/store).
//
// HAZARD: a captured row older than the merged state (the Old row a user
// read before a remote write landed). Only the fields the user changed
// are diffed from the old row; the others keep the merged values.
// TestLocalBaseKeepsRemoteWrites, TestLocalStaleQueues (sidecar/store).
//
// HAZARD: capture lag reorders writes milliseconds apart in two systems
// (a delete right after an update elsewhere). A change is stamped with the
// time its system committed it where the system reports one, never below
// what its writer saw, forwarded into the HLC within max_clock_offset.
// TestEngine/delete_races_update, TestDeleteAfterUpdateElsewhereNotUndone,
// TestIntegrationPostgresDeleteAfterUpdateNotUndone, TestLocalCommitStamp
// (sidecar/store).
//
// HAZARD: a table or column created while running, named by a batch
// mid-stream. The driver asks engine.Catalog.Unknown before the step and
// maps the catalog again (see "The live catalog"), so the whole batch is
// read with the new mapping; records waiting for it are queued.
// TestEngine/catalog_mid_batch, TestTableCreatedWhileRunning,
// TestColumnAddedWhileRunning, TestCatalogPeriodicRefresh,
// TestCatalogPeriodicRefreshSchedule.
//
// HAZARD: rows written into a PostgreSQL table before the adapter adds it to
// its publication are not in the change stream. Before the catalog that
// gains a table is swapped in, the agent reads that table's rows
// (adapters.TableReader) and steps them as snapshot rows
// (engine.CaptureTables), which the diff makes idempotent.
// TestIntegrationPostgresRowsBeforePublication (cmd/lattice).
//
// HAZARD: an apply reported back by capture (an echo). The diff against the
// merged state is empty: no delta, no queue entry. TestEngine/echo.
//
// HAZARD: a record no peer can decode, or no system can store. One set of
// size limits (crdt.Limits) is checked at the door, before anything is
// stored, by the API, capture and merge alike; encoder and decoder share
// it. A write that names a missing column, a wrong type or NULL into NOT
// NULL gets 400 and stores nothing. TestAPIWriteOverLimitStoresNothing,
// TestLocalRefusesRecordOverLimit, TestMergeRefusesRecordOverLimit,
// TestLimitsEncoderAndDecoderAgree, TestAPIWriteMustFitTheTable.
//
// HAZARD: one record blocks the apply queue. A queued record that does not
// decode, or that the system refuses, is parked alone; a later change to
// it queues it again. TestUndecodableQueuedRecordIsParked,
// TestRejectedRowIsParked, TestUnclassifiedApplyErrorParksOneRow,
// TestParkedRecordFlowsAgainAfterAFix, TestChangeToParkedRecordQueuesIt.
//
// HAZARD: the system is down or failing. Apply retries with backoff and
// loses nothing; readiness turns 503 after ready.fail_after.
// TestApplyRetriesWhileSystemDown, TestBackoffDoublesUpToMax,
// TestReadyzReportsFailingCapture, TestReadinessFailAfter.
//
// HAZARD: the SQLite file is deleted or replaced while running. Noticed
// within a poll and handled as on restart. TestDatabaseFileReplaced,
// TestDatabaseFileDeleted.
//
// HAZARD: a cursor the adapter cannot continue from. A new snapshot is
// taken and merged. TestInvalidCursorTakesNewSnapshot.
//
// HAZARD: a crash between the store's commit and the acknowledgement to the
// system. Capture is at-least-once and merging idempotent; the Ready's order
// (durable, then broadcast, then acknowledged) is what makes it so.
// TestCrashRecovery (sidecar/store).
//
// HAZARD: the data directory vanishes. See "A store that fails".
// TestAgentStopsWhenDataDirVanishes.
//
// # Types
//
// Adapters report the kind of every column; nodes without an adapter take
// value kinds from the config (collections.X.key_types and fields.F.type)
// or infer them from JSON. All nodes must agree on the kinds of key columns,
// or the same key text names different records. An OR-set field may live in
// a JSON column holding an array: the agent turns the array into a set when
// it captures and back into an array (in canonical order) when it applies.
package sidecar
