// Package store is a replica's durable state on Badger v4: merged record
// states, the hashes and range fingerprints that anti-entropy compares, the
// replica's identity and clock bound, adapter cursors and the pending-apply
// queue of records still to be written into the local system.
//
// # Writes
//
// One writer at a time (Merge, Commit and the queue operations share a
// lock). Merge joins remote deltas. Commit carries out what the sidecar's
// engine decided for local changes (sidecar/engine: it stamps them with the
// hybrid logical clock, diffs them against the merged state and says which
// records to write and queue): it runs the engine's step under the lock with
// a read-only view of the records, then writes the Ready's durable part, so
// that nothing lands between the read and the write. Local is Commit with
// engine.Local, for callers without an engine. Each call is one Badger
// transaction, split at record boundaries only when
// it would exceed Badger's transaction limit (15% of the memtable size). A
// record, its hash and its queue entries always share a transaction, so every
// committed transaction leaves the store consistent; Commit writes the
// adapter cursor in its last transaction, so a cursor never covers a change that is
// not durable. With SyncWrites (the default) every commit is fsynced before
// the call returns.
//
// Merge reads each record once, with the fragments sorted by ID and those of
// one record joined together, and writes it only if its state changed. The
// reads, joins, encodings and hashes of a large batch run on up to
// GOMAXPROCS goroutines (at most 4) that Merge starts and waits for; the
// writes into the transaction stay on the caller's goroutine, in ID order.
// A record the range tree does not hold is not looked up at all. Its memory
// (keys, values, Badger entries, encode buffers) is reused from call to
// call, and the record values are built in place, so the queue seq is set in
// them without a copy. Commit reads the records of a step the same way; the
// engine then stamps and diffs the changes in their order.
//
// # Invariants
//
//   - The HLC upper bound (Clock.Last) is written in every transaction that
//     stores a stamp, and Open forwards the clock to it, so Clock.Now is
//     greater than every stored stamp also after a restart with a clock that
//     went backwards. A remote stamp too far ahead is rejected, never adopted.
//   - The replica ID is created from crypto/rand with the store and never
//     changes; a wiped data directory gets a new one.
//   - Each record value carries crdt.HashRecord of its encoding, the range
//     tree maps every record ID to that hash, and Digest is their XOR and
//     count: equal on replicas holding equal states, whatever the order of
//     the deltas that built them. The tree follows each commit under the
//     writer lock, and readers never see it ahead of the data: a small
//     commit updates it after Badger committed; a large one holds its lock
//     from before the commit, updates it while Badger writes and puts it
//     back if the commit fails. Open rebuilds it from the record headers.
//   - A record is on the pending-apply queue at most once. Re-queueing it
//     gives it a new, larger seq (its chunk's); AckPending removes an entry
//     only if its seq is still current, so an apply of an older state never
//     hides a newer one.
//   - Deleted records stay as tombstones; records are never removed.
//   - Every stored record is within Options.Limits: Local and Merge encode
//     with crdt.EncodeRecord and refuse (ChangeError, Rejection marked
//     crdt.ErrTooLarge) a change or fragment that would take a record over
//     a limit, and the decoder reads with the same Limits, so what the store
//     writes it can read (TestLocalRefusesRecordOverLimit,
//     TestMergeRefusesRecordOverLimit).
//   - A record that does not decode (written under larger limits, or
//     damaged) holds up nothing: Pending returns it with Err for the caller
//     to park, Parked lists it without a state, and Records and ReadRange
//     leave it out.
//   - A change to a parked record queues it again, which takes it off the
//     parked list (TestChangeToParkedRecordQueuesIt).
//   - Skip drops a parked entry and nothing else: the record's merged state
//     stays, and its next change queues it as usual
//     (TestSkipDropsParkedEntryKeepsState).
//
// # Persisted layout
//
// Keys start with a one-byte prefix:
//
//	m format          uint64 BE: layout version (1); Open refuses a newer one
//	m replica         uint64 BE: the replica ID
//	m hlc             int64 BE wall + uint32 BE logical: HLC upper bound
//	m seq             uint64 BE: local sequence number (Seq)
//	m qseq            uint64 BE: last queue chunk seq issued (never reused)
//	r <id>            record: 0x01, hash [16], queued chunk seq uint64 BE (0: not queued),
//	                  crdt.AppendRecord bytes
//	q <seq uint64 BE> queue chunk, oldest first: 0x01, uvarint n, n x (uvarint len, id)
//	x <id>            parked entry: 0x01, uvarint seq, varint unix ns, reason
//	c <name>          adapter cursor: opaque bytes
//	k <seq uint64 BE> logged conflict (its ID): 0x02, binary fields (see encodeConflict);
//	                  0x01, JSON from earlier releases, is still read
//	K <hash [16]>     conflict index: the decision's hash -> seq uint64 BE
//
// where <id> is a crdt.ID (collection, 0x00, order-preserving key), so
// records sort by collection and key and Scan and ReadRange are range scans.
//
// The hash index lives in the record headers rather than under keys of its
// own, and so does the queue index by record: a merge writes one key per
// record, plus one queue chunk per 128 queued records, instead of three keys
// per record. Open rebuilds the range tree and the queue counts by scanning
// the records (values up to ValueThreshold sit in the LSM tree, so the scan
// reads no value log). A record is queued exactly when its header names a
// chunk; that chunk lists it, and a chunk is deleted in the transaction that
// takes its last record off the queue. A chunk may still list records that
// were queued again (in a later chunk) or acknowledged since; Pending skips
// them. Acknowledging rewrites the record's header, which moves that cost
// from the merge path to the apply path, where the local system's own write
// dominates.
//
// Data on disk that does not parse is reported as an ErrCorrupt error that
// names the key, never a panic. Its hint never advises a step that loses
// data: the directory may hold writes no other replica has.
//
// # Trade-offs
//
//   - Memory: the range tree holds every record ID and hash in memory (about
//     55 bytes per record after Open, more for records added since, whose
//     leaves fill less); the parked set holds parked IDs. Badger adds its
//     memtables (each about 1.3 x MemTableSize, up to NumMemtables+1 of
//     them while flushes run) and its caches. A replica of 1M records of 5
//     fields holds about 130 MB of Go heap with the default options. During
//     a write burst (a bootstrap) Badger's table builders also keep pooled
//     buffers of a few memtables' size each: 0.5 to 0.9 GB right after
//     loading 1M records, from run to run (BenchmarkStoreMemory
//     fill-heap-MB), given back one buffer every 2 s once writes stop.
//   - After a crash between a commit and the broadcast of its delta, the
//     delta is not sent again; anti-entropy brings peers up to date.
//   - A batch split into several transactions is atomic per part only:
//     harmless for Merge (joins are idempotent) and for Commit (the cursor
//     is in the last part, so the system replays the rest).
package store
