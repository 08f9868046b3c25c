// Package crdt is the pure core of Lattice: hybrid logical clocks, typed
// values and keys, field-level CRDTs, records, deltas, schemas and the wire
// codec. It does no I/O, starts no goroutines, never reads the system clock
// and uses no global randomness: time and randomness are passed in.
//
// # Time
//
// Timestamp is a hybrid logical clock reading (Kulkarni, Demirbas et al.,
// "Logical Physical Clocks", 2014): wall nanoseconds plus a logical counter.
// Clock takes its physical source as a constructor argument. Now is strictly
// monotonic; Update applies the paper's receive rule. A remote timestamp more
// than the maximum offset (DefaultMaxOffset, 500 ms) ahead of the physical
// clock is rejected with an error for which IsClockOffsetError holds, and the
// clock is left alone: adopting it would drag every later local write into
// the future and let one bad clock win every conflict. The same rule delays,
// but does not lose, the writes of a replica whose own physical clock jumped
// ahead: peers refuse them until their clocks catch up, and anti-entropy
// delivers them then.
//
// Hazard, restarts: the clock lives in memory. Whoever persists state must
// also persist an upper bound of the timestamps in it (Clock.Last) in the
// same transaction, and call Clock.Forward with it on start, or a clock that
// jumped back while the process was down would issue stamps older than ones
// already written.
//
// A Stamp is a timestamp and a ReplicaID, totally ordered. Equal stamps mean
// the same write, which is why replica IDs are random 64-bit numbers, never
// reused. Hazard, replica ID reuse: a replica that lost its data must take a
// new ID. Under its old ID it would issue OR-set dots (see below) that its
// peers have already seen and removed, and its new adds would vanish.
//
// # Values and keys
//
// Value is a typed scalar (null, bool, int64, float64, string, bytes, time,
// JSON document) or a list of scalars, with one canonical form: floats
// without -0 and with a single NaN, times as UTC seconds and nanoseconds,
// JSON compact with sorted keys. Equal values have equal canonical encodings
// on every replica, so hashing and comparison agree everywhere. Compare is a
// total order: by kind, then by value.
//
// Key is a tuple of scalars in an order-preserving encoding: Keys compare as
// strings the way their tuples compare, so records sort by key in the store.
// ID prefixes a key with its collection and is the key space that
// anti-entropy ranges and fingerprints cover.
//
// # Fields
//
// Each field has a Policy chosen per collection in the Schema; unlisted fields
// are LWW.
//
//   - LWW: the write with the highest stamp wins.
//   - Prefer: the write from the most trusted source wins (Policy.Prefer,
//     most trusted first; unlisted sources last), then the highest stamp. A
//     null from a trusted source wins too: that source cleared the field.
//   - Max, Min: the largest (smallest) value wins; null never wins.
//   - Counter: a PN-counter (Shapiro et al., "A comprehensive study of
//     Convergent and Commutative Replicated Data Types", 2011) in delta
//     form: one entry per replica holding the sums of that replica's
//     increments (P) and decrements (N). Only the owning replica changes its
//     entry, always to larger sums under a later stamp, so entries join by
//     the higher stamp, which is the per-replica max of both sums. The
//     value is the sum of every P minus every N. Sums are integers (int64,
//     and a change that would leave the range fails with ErrOverflow
//     instead of wrapping) or exact decimals kept as decimal text, never
//     floats.
//   - ORSet: an add-wins observed-remove set of scalars, in the δ-CRDT form
//     of Almeida, Shoker and Baquero, "Delta State Replicated Data Types"
//     (2018), after Bieniusa et al., "An optimized conflict-free replicated
//     set" (2012). Each live add is a dot (replica, counter); a causal
//     context of every dot seen, kept as a version vector plus a dot cloud,
//     tells a removed dot from one not yet seen. A remove deletes only the
//     dots it observed, so a concurrent add wins; an add of an element
//     already present replaces the dots it observed with a fresh one.
//
// All register policies (LWW, Prefer, Max, Min) share one representation: the
// Pareto frontier of their writes. A write is dropped once another write has
// a stamp at least as high and is better under the policy, because any delete
// that hides the better write also hides the worse one. Keeping the frontier,
// rather than one value, is what makes "a write after a delete starts clean"
// converge for Prefer, Max and Min: a Max field that holds 10@t1 and receives
// 5@t5 keeps both, so a delete at t3 reveals 5 wherever it arrives first. For
// LWW the frontier is always the single newest write; for the others it stays
// small, growing only with writes that are newer but worse.
//
// # Records and deletes
//
// A Record keeps the stamp of its last delete (Deleted), the highest stamp
// written (Written), the stamp of the last delete a re-insert saw (Reset),
// and its fields. The record exists while Written is after Deleted, so a
// delete and a concurrent update are decided by stamp. Which fields an
// existing record shows depends on causality, which is why Reset exists:
//
//   - an update made without seeing the delete, and newer than it, cancels
//     the delete: the record comes back whole, the update applied. Showing
//     only the fields written after the delete (the rule this package first
//     had) hands systems partial rows that their NOT NULL constraints
//     reject, so the record ends parked everywhere instead of restored;
//   - a write made while the record was deleted for the writer is a
//     re-insert: it carries that delete as Reset, and every field written at
//     or before Reset is hidden, and dropped, for good. A re-inserted record
//     starts clean, and does so even on a replica that receives the
//     re-insert before the delete.
//
// Deleted, Written and Reset are max registers and fields are filtered by
// Reset, so the join is still a lattice join (the Pareto-frontier and OR-set
// filters commute with a growing Reset exactly as they would with a growing
// delete stamp). The price: a deleted record keeps its fields, since a late
// update may bring them back, until a re-insert resets them. Deleted records
// stay as tombstones (their stamps and OR-set contexts), which is what lets
// a late delta be recognised as old.
//
// Every operation but a delete is a write for this rule, OR-set removes
// included: a remove stamped after a concurrent delete brings the record
// back.
//
// Records are immutable. Join is the only way states combine; it is
// commutative, associative and idempotent, so deltas may be lost, duplicated
// or reordered and replicas still converge once every delta (or a full state
// exchange) has arrived. Join normalizes its result, so equal states have
// equal encodings and equal hashes. Results share structure with inputs: a
// join whose result equals an input returns that input and allocates
// nothing (the common case of a duplicate delivery), and a merge copies only
// the fields it changes.
//
// # Operations
//
// Operations read the merged state and return a delta: Diff (a row observed
// in a system), SetOps (OR-set adds and removes), Delete. Applying an
// operation is joining its delta. Diff yields nothing for a row equal to the
// merged view; this is what makes Lattice loop-free, because a merged state
// written into a system and read back produces no new delta. Every operation
// checks that its origin stamp carries a replica ID and is newer than the
// record; the latter holds when the caller forwarded its clock past every
// stamp it merged.
//
// Under Counter, an observed value is not a write of that value: Diff and
// DiffFrom turn a change from old to new (the old row's value, or without
// one the merged total) into an increment of new - old, owned by the writing
// replica. An absolute assignment in one system is thus the increment that
// takes that system's value to the new one: two systems that both set a
// balance from 100 to 150 concurrently leave it at 200, and a system that
// sets it to 0 subtracts what it saw, not what others added meanwhile. A
// null counts as zero. A write of an unchanged value to a counter that shows
// none writes a zero increment, so that the field shows it.
//
// A delete hides a counter like any field, and a write that cancels the
// delete (concurrent with it and newer) brings it back with every increment.
// A re-insert (a write that saw the delete) resets the record: entries at or
// before the delete are dropped and the writer starts its sums from zero, so
// the re-inserted row's value is the counter's value. Hazard, concurrent
// re-insert: a replica that keeps incrementing without having seen a delete
// and re-insert carries its whole sums, also what it added before the
// delete, into the re-inserted record: a replica's sums cannot tell the
// increments before a delete from those after.
//
// Hazard, stale rows: a system may report a change to one column while it
// still holds an older value of another, one that was merged but not yet
// written into it. Diffing that row against the merged record would write
// the stale value back as new and undo the newer write. DiffFrom takes the
// row as it was before the change and diffs only what the change touched,
// and for OR-sets takes the change's adds and removes rather than the
// difference to the merged set. Use it whenever the system reports the old
// row.
//
// Hazard, concurrent inserts: a row a user inserted has no old row, but its
// user saw no element of its sets either. Diffed against the merged record,
// an insert made while another system's insert of the same key was in
// flight would remove that system's elements if they had arrived first, and
// keep them otherwise. DiffInsert diffs an inserted row so that its sets only
// add (TestDiffInsertKeepsConcurrentElements).
//
// # Conflicts
//
// A merge that chooses between two writes to one register field, where the
// winner's writer had not seen the loser, is a conflict (Conflicts); an
// overwrite of a value the writer had read is not. Registers keep no causal
// context, so each write carries Prev: the newest stamp of the field its
// writer knew (its newest write of the field, or the record's delete if
// newer; for a captured change whose system held an older value than the
// visible one, what the visible write's own writer knew). A writer that had
// merged write x knows x or a write at least as new that dominates it, or a
// delete after it, so x.Stamp > w.Prev proves that w's writer had not seen
// x: the rule reports no causal overwrite, which the property tests check
// for every operation of random histories. It may miss a concurrent write
// older than another the winner's writer saw. A write without Prev (zero,
// from a replica older than Prev) counts as having seen nothing. An update
// that cancels a concurrent delete (not a re-insert: Reset < Deleted) is a
// conflict too; a delete that wins is not reported, since a delete does not
// say what its writer saw. Counter and OR-set fields keep every concurrent
// write and have none. LostWrite reports a captured change that lost to a
// write that had not seen it.
//
// # Schema
//
// A Collection lists key columns and field policies. Its fingerprint hashes
// the policies (LWW entries excluded, being the default); replicas compare
// fingerprints and refuse to merge a collection whose rules differ, because
// two replicas merging under different rules would diverge silently. Key
// columns are not part of it: replicas that disagree on them do not merge
// differently, they name different records, which configuration review must
// catch.
//
// # Wire format
//
// Deltas and records travel as msgpack arrays that only ever grow at the end
// (see codec.go): an older decoder skips the trailing elements it does not
// know, so rolling upgrades work without negotiation. Counter entries are a
// field's fourth element and a write's Prev its fourth, each written only
// when present, so records without them keep their encodings and hashes. Every decoder bounds
// every length by Limits and by the bytes left, checks nesting depth before
// decoding (CheckMsgpack), returns ErrDecode errors and never panics. Golden
// encodings in testdata/wire fail the tests if the format changes by
// accident.
//
// # Limits
//
// One Limits value bounds fields per record, elements per set, bytes per
// value and bytes per record (limits.go). EncodeRecord refuses a record over
// any of them and the decoder refuses the same input with the same named
// limit (*LimitError, ErrTooLarge), so a record one replica stores every
// replica can read (TestLimitsEncoderAndDecoderAgree,
// TestLargestRecordDecodes, FuzzDecodeRecordLimits). Dot counters are bounded
// by MaxCounter: a decoder refuses a larger one, and an add that would pass
// it fails instead of wrapping to a dot every replica has already seen
// (TestDecoderBoundsCounters, TestAddAtCounterBound).
//
// # Proof
//
// The laws are tested, not assumed: property tests (pgregory.net/rapid) over
// concurrent histories of replicas with skewed clocks check commutativity,
// associativity, idempotence and inflation of Join for every policy, for
// records and for deltas, that every operation's effect is the join of its
// delta, that Diff reproduces the observed row and is echo-free, and the
// clock rules; package crdttest simulates replicas over a faulty network
// against an oracle computed without Join; fuzz targets cover every decoder
// and the laws.
package crdt
