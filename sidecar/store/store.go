package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/rangetree"
)

// ErrClosed is returned by every method of a closed Store.
var ErrClosed = errors.New("store: closed")

// ErrLocked marks the error Open returns when another process holds the
// data directory.
var ErrLocked = errors.New("store: data directory in use")

// ErrNewerFormat marks the error Open returns for a store written by a
// newer version of this package.
var ErrNewerFormat = errors.New("store: newer format")

// Store is a replica's durable state. All methods are safe for concurrent
// use. Writes (Merge, Local and the queue operations) are serialised by one
// writer lock; reads run concurrently with them on Badger snapshots.
type Store struct {
	db      *badger.DB
	opts    Options
	log     *slog.Logger
	schema  *crdt.Schema
	clock   *crdt.Clock
	replica crdt.ReplicaID
	dir     string
	dirInfo os.FileInfo // the data directory as opened (nil in memory)

	batchBytes int64 // split write batches at this size
	batchCount int64 // and at this many entries

	// life guards closed and the use of db by readers.
	life   sync.RWMutex
	closed bool

	// wmu serialises writers. The fields below it are owned by the writer.
	wmu       sync.Mutex
	qseq      uint64         // last queue chunk seq issued
	chunkLive map[uint64]int // records queued in each live queue chunk
	parked    map[crdt.ID]struct{}
	scratch   scratch
	// treeSound says the range tree holds exactly the stored records, so a
	// record it lacks need not be read. A failed commit clears it: the
	// transaction may have landed without the tree following.
	treeSound atomic.Bool

	seq        atomic.Uint64 // local sequence number
	pendingLen atomic.Int64
	parkedLen  atomic.Int64

	// treeMu guards tree, which the writer updates after each commit.
	treeMu sync.RWMutex
	tree   rangetree.Tree

	colMu sync.RWMutex
	cols  map[string]*crdt.Collection

	gcCancel context.CancelFunc
	gcDone   sync.WaitGroup

	stats counters

	conflicts conflictLog // guarded by wmu
}

// maxCachedCollections bounds the cache of unlisted collections, which peers
// choose the names of.
const maxCachedCollections = 1024

// Open opens (creating if needed) the store in dir under schema, which may be
// nil for an all-LWW schema. With opts.InMemory, dir is ignored. A second
// Open of the same directory, by this process or another, fails with an
// ErrLocked error until the first Store is closed.
func Open(dir string, schema *crdt.Schema, opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if !opts.InMemory && dir == "" {
		return nil, errors.WithHint(errors.New("open store: no data directory"),
			"set the data directory (data: in the config, --data on the command line)")
	}
	if opts.InMemory {
		dir = ""
	}
	db, err := badger.Open(opts.badger(dir))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, errors.Mark(errors.WithHint(errors.Wrapf(err, "open store %s", dir),
				"another lattice process is using this data directory: stop it, or give each process its own data directory"),
				ErrLocked)
		}
		return nil, errors.Wrapf(err, "open store %s", dir)
	}
	s := &Store{
		db:        db,
		opts:      opts,
		log:       opts.Logger,
		schema:    schema,
		clock:     crdt.NewClock(opts.Physical, opts.MaxClockOffset),
		dir:       dir,
		parked:    map[crdt.ID]struct{}{},
		chunkLive: map[uint64]int{},
		cols:      map[string]*crdt.Collection{},
	}
	if !opts.InMemory {
		if s.dirInfo, err = os.Stat(dir); err != nil {
			_ = db.Close()
			return nil, errors.Wrapf(err, "open store %s", dir)
		}
	}
	s.batchBytes = opts.batchBytes()
	s.batchCount = db.MaxBatchCount() * 9 / 10
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, errors.Wrapf(err, "open store %s", dir)
	}
	if !opts.InMemory && opts.GCInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.gcCancel = cancel
		s.gcDone.Add(1)
		go s.gcLoop(ctx)
	}
	s.log.Info("store opened", "dir", dir, "replica", s.replica, "records", s.tree.Len(),
		"pending", s.pendingLen.Load(), "parked", s.parkedLen.Load(), "seq", s.seq.Load())
	return s, nil
}

// load reads the meta keys (creating them in a new store), restores the
// clock and rebuilds the range tree and the queue counters.
func (s *Store) load() error {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	format, ok, err := getUint(txn, keyFormat)
	if err != nil {
		return err
	}
	if !ok {
		return s.create(txn)
	}
	if format > formatVersion {
		return errors.Mark(errors.WithHint(
			errors.Newf("store format %d is newer than this version of lattice understands (%d)", format, formatVersion),
			"run the version of lattice that wrote this data directory, or a newer one"), ErrNewerFormat)
	}
	if format == 0 {
		return corruptf(keyFormat, "format version 0")
	}
	rid, ok, err := getUint(txn, keyReplica)
	if err != nil {
		return err
	}
	if !ok || rid == 0 {
		return corruptf(keyReplica, "missing or zero replica id")
	}
	s.replica = crdt.ReplicaID(rid)
	if v, ok, err := getValue(txn, keyHLC); err != nil {
		return err
	} else if ok {
		ts, err := parseTimestamp(keyHLC, v)
		if err != nil {
			return err
		}
		s.clock.Forward(ts)
	}
	seq, _, err := getUint(txn, keySeq)
	if err != nil {
		return err
	}
	s.seq.Store(seq)
	if s.qseq, _, err = getUint(txn, keyQSeq); err != nil {
		return err
	}
	if err := s.loadConflicts(txn); err != nil {
		return err
	}
	return s.rebuild(txn)
}

// create initialises an empty store: format version and a fresh replica ID.
func (s *Store) create(rtxn *badger.Txn) error {
	it := rtxn.NewIterator(badger.IteratorOptions{})
	it.Rewind()
	nonEmpty := it.Valid()
	var first []byte
	if nonEmpty {
		first = it.Item().KeyCopy(nil)
	}
	it.Close()
	if nonEmpty {
		return corruptf(first, "store holds data but no format version (meta key %q)", keyFormat)
	}
	id, err := crdt.NewReplicaID(rand.Reader)
	if err != nil {
		return errors.Wrap(err, "create replica id")
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(keyFormat, encodeUint(formatVersion)); err != nil {
			return err
		}
		return txn.Set(keyReplica, encodeUint(uint64(id)))
	})
	if err != nil {
		return errors.Wrap(err, "initialise store")
	}
	s.replica = id
	s.treeSound.Store(true)
	return nil
}

// inTree reports whether the range tree holds id.
func (s *Store) inTree(id crdt.ID) bool {
	s.treeMu.RLock()
	defer s.treeMu.RUnlock()
	_, ok := s.tree.Get(id)
	return ok
}

// rebuild fills the range tree and the queue counts from the record
// headers, checks that the queue chunks they name exist, and loads the
// parked set.
func (s *Store) rebuild(txn *badger.Txn) error {
	var ids []crdt.ID
	var hashes []crdt.Hash
	var pool idPool
	var pending int64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()
		if _, err := idFromKey(key); err != nil {
			it.Close()
			return err
		}
		var h recordHeader
		err := item.Value(func(v []byte) error {
			var err error
			h, _, err = parseRecordValue(key, v)
			return err
		})
		if err != nil {
			it.Close()
			return errors.Wrapf(err, "read %s", keyName(key))
		}
		if h.queued > s.qseq {
			it.Close()
			return corruptf(key, "queued in chunk %d, above the last issued %d", h.queued, s.qseq)
		}
		if h.queued != 0 {
			s.chunkLive[h.queued]++
			pending++
		}
		ids = append(ids, pool.intern(key[1:]))
		hashes = append(hashes, h.hash)
	}
	it.Close()
	tree := buildTree(ids, hashes)

	chunks := 0
	it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixQueue}})
	for it.Rewind(); it.Valid(); it.Next() {
		seq, err := parseQueueKey(it.Item().Key())
		if err != nil {
			it.Close()
			return err
		}
		if s.chunkLive[seq] > 0 {
			chunks++
		}
	}
	it.Close()
	if chunks != len(s.chunkLive) {
		for seq := range s.chunkLive {
			if _, err := txn.Get(queueKey(seq)); err != nil {
				return corruptf(queueKey(seq), "queue chunk missing (%d records are queued in it): %v", s.chunkLive[seq], err)
			}
		}
	}

	it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixParked}})
	for it.Rewind(); it.Valid(); it.Next() {
		id, err := idFromKey(it.Item().Key())
		if err != nil {
			it.Close()
			return err
		}
		s.parked[crdt.ID(strings.Clone(string(id)))] = struct{}{}
	}
	it.Close()

	s.treeMu.Lock()
	s.tree = tree
	s.treeMu.Unlock()
	s.treeSound.Store(true)
	s.pendingLen.Store(pending)
	s.parkedLen.Store(int64(len(s.parked)))
	return nil
}

// buildTree builds the range tree from sorted IDs. Inserted in order, a
// B+tree whose nodes split in half ends up with half-full leaves; inserting
// every other ID first and the rest after fills the leaves, which halves the
// tree's memory (about 37 instead of 77 bytes per record, IDs aside).
func buildTree(ids []crdt.ID, hashes []crdt.Hash) rangetree.Tree {
	var tree rangetree.Tree
	for start := range 2 {
		for i := start; i < len(ids); i += 2 {
			tree.Set(ids[i], hashes[i])
		}
	}
	return tree
}

// idPool makes ID strings that share large allocations, saving the
// per-string allocation (and the garbage collector's work) of a million
// small strings at Open. Bytes appended to a chunk are never written again,
// so the strings made over them stay immutable.
type idPool struct {
	buf []byte
}

const idPoolChunk = 256 << 10

func (p *idPool) intern(b []byte) crdt.ID {
	if len(b) > idPoolChunk/16 {
		return crdt.ID(b)
	}
	if cap(p.buf)-len(p.buf) < len(b) {
		p.buf = make([]byte, 0, idPoolChunk)
	}
	start := len(p.buf)
	p.buf = append(p.buf, b...)
	return crdt.ID(unsafe.String(&p.buf[start], len(b)))
}

func parseQueueKey(key []byte) (uint64, error) {
	if len(key) != 9 || key[0] != prefixQueue {
		return 0, corruptf(key, "queue key of %d bytes, want 9", len(key))
	}
	seq := binary.BigEndian.Uint64(key[1:])
	if seq == 0 {
		return 0, corruptf(key, "queue seq 0")
	}
	return seq, nil
}

func getValue(txn *badger.Txn, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errors.Wrapf(err, "read %s", keyName(key))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, errors.Wrapf(err, "read %s", keyName(key))
	}
	return v, true, nil
}

func getUint(txn *badger.Txn, key []byte) (uint64, bool, error) {
	v, ok, err := getValue(txn, key)
	if err != nil || !ok {
		return 0, ok, err
	}
	u, err := parseUint(key, v)
	return u, err == nil, err
}

// Close stops the value-log GC, waits for it and closes Badger. Calls after
// the first return nil.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.life.Lock()
	if s.closed {
		s.life.Unlock()
		return nil
	}
	s.closed = true
	s.life.Unlock()
	if s.gcCancel != nil {
		s.gcCancel()
		s.gcDone.Wait()
	}
	if err := s.db.Close(); err != nil {
		return errors.Wrapf(err, "close store %s", s.dir)
	}
	s.log.Info("store closed", "dir", s.dir)
	return nil
}

// ReplicaID returns the replica's ID, created with the store and never
// reused.
func (s *Store) ReplicaID() crdt.ReplicaID { return s.replica }

// Clock returns the replica's hybrid logical clock. Its upper bound is
// persisted with every write that stores a stamp and restored by Open, so
// Now stays monotonic across restarts.
func (s *Store) Clock() *crdt.Clock { return s.clock }

// Schema returns the schema the store was opened with.
func (s *Store) Schema() *crdt.Schema { return s.schema }

// Seq returns the local sequence number: the number of Local transactions
// that changed state, over the life of the store.
func (s *Store) Seq() uint64 { return s.seq.Load() }

// collection returns the rules of a collection, caching the all-LWW
// collections that a non-strict schema makes up for unlisted names.
func (s *Store) collection(name string) (*crdt.Collection, error) {
	s.colMu.RLock()
	c, ok := s.cols[name]
	s.colMu.RUnlock()
	if ok {
		return c, nil
	}
	c, err := s.schema.Collection(name)
	if err != nil {
		return nil, err
	}
	s.colMu.Lock()
	if len(s.cols) < maxCachedCollections {
		s.cols[strings.Clone(name)] = c
	}
	s.colMu.Unlock()
	return c, nil
}

// read runs fn on a read-only Badger snapshot, unless the store is closed.
func (s *Store) read(fn func(txn *badger.Txn) error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	return fn(txn)
}

// getRecord reads one record from txn. The returned record is nil when
// absent.
func (s *Store) getRecord(txn *badger.Txn, key []byte) (recordHeader, *crdt.Record, bool, error) {
	return s.getRecordIf(txn, key, nil)
}

// getRecordIf is getRecord that decodes the record only when keep, if not
// nil, accepts its header; otherwise the record returned is nil.
func (s *Store) getRecordIf(txn *badger.Txn, key []byte, keep func(recordHeader) bool) (recordHeader, *crdt.Record, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return recordHeader{}, nil, false, nil
	}
	if err != nil {
		return recordHeader{}, nil, false, errors.Wrapf(err, "read %s", keyName(key))
	}
	var h recordHeader
	var r *crdt.Record
	err = item.Value(func(v []byte) error {
		var enc []byte
		var err error
		if h, enc, err = parseRecordValue(key, v); err != nil || (keep != nil && !keep(h)) {
			return err
		}
		if r, err = crdt.DecodeRecord(enc, s.opts.Limits); err != nil {
			return corrupt(key, err)
		}
		return nil
	})
	if err != nil {
		if IsCorrupt(err) {
			return h, nil, false, err
		}
		return h, nil, false, errors.Wrapf(err, "read %s", keyName(key))
	}
	return h, r, true, nil
}

// gcLoop runs value-log GC every GCInterval until ctx is done.
func (s *Store) gcLoop(ctx context.Context) {
	defer s.gcDone.Done()
	t := time.NewTicker(s.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.runGC(ctx)
		}
	}
}

// runGC rewrites value-log files while some are worth it, at most 16 per
// run, stopping early when ctx is done.
func (s *Store) runGC(ctx context.Context) {
	s.stats.gcRuns.Add(1)
	for range 16 {
		if ctx.Err() != nil {
			return
		}
		err := s.db.RunValueLogGC(s.opts.GCDiscardRatio)
		switch {
		case err == nil:
			s.stats.gcRewrites.Add(1)
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected),
			errors.Is(err, badger.ErrGCInMemoryMode), errors.Is(err, badger.ErrDBClosed):
		default:
			s.log.Warn("value-log gc failed", "dir", s.dir, "err", err)
		}
		return
	}
}

// RunGC runs one round of value-log GC now (normally done every
// GCInterval).
func (s *Store) RunGC() error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.runGC(context.Background())
	return nil
}

// Stats are counters for metrics, cumulative since Open except for the
// gauges (Pending, Parked, Records, Seq, LSMBytes, VLogBytes).
type Stats struct {
	Merges             uint64 // Merge calls
	FragmentsMerged    uint64 // fragments that changed local state
	FragmentsUnchanged uint64 // fragments already known
	FragmentsRejected  uint64 // fragments refused (clock offset, unknown collection, bad key)
	ClockRejections    uint64 // of which for clock offset
	CommitTimesAhead   uint64 // captured commit times too far ahead of the local clock: stamped at capture instead
	LocalTxns          uint64 // Local calls that committed
	LocalChanges       uint64 // changes that changed local state
	LocalFailed        uint64 // changes reported in LocalResult.Failed
	Effects            uint64 // records put on the pending-apply queue
	Acked              uint64 // queue entries acknowledged
	Commits            uint64 // Badger transactions committed by writers
	Splits             uint64 // extra transactions from batches too large for one
	BytesWritten       uint64 // keys and values written by writers
	GCRuns             uint64 // value-log GC rounds
	GCRewrites         uint64 // value-log files rewritten

	Pending   int    // queue length
	Parked    int    // parked entries
	Records   int    // records, tombstones included
	Seq       uint64 // local sequence number
	LSMBytes  int64  // size of the LSM tree on disk
	VLogBytes int64  // size of the value log on disk
}

type counters struct {
	merges, fragsMerged, fragsUnchanged, fragsRejected, clockRejections atomic.Uint64
	commitTimeAhead                                                     atomic.Uint64
	localTxns, localChanges, localFailed, effects, acked                atomic.Uint64
	commits, splits, bytes, gcRuns, gcRewrites                          atomic.Uint64
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := Stats{
		Merges:             s.stats.merges.Load(),
		FragmentsMerged:    s.stats.fragsMerged.Load(),
		FragmentsUnchanged: s.stats.fragsUnchanged.Load(),
		FragmentsRejected:  s.stats.fragsRejected.Load(),
		ClockRejections:    s.stats.clockRejections.Load(),
		CommitTimesAhead:   s.stats.commitTimeAhead.Load(),
		LocalTxns:          s.stats.localTxns.Load(),
		LocalChanges:       s.stats.localChanges.Load(),
		LocalFailed:        s.stats.localFailed.Load(),
		Effects:            s.stats.effects.Load(),
		Acked:              s.stats.acked.Load(),
		Commits:            s.stats.commits.Load(),
		Splits:             s.stats.splits.Load(),
		BytesWritten:       s.stats.bytes.Load(),
		GCRuns:             s.stats.gcRuns.Load(),
		GCRewrites:         s.stats.gcRewrites.Load(),
		Pending:            int(s.pendingLen.Load()),
		Parked:             int(s.parkedLen.Load()),
		Seq:                s.seq.Load(),
	}
	s.treeMu.RLock()
	st.Records = s.tree.Len()
	s.treeMu.RUnlock()
	s.life.RLock()
	if !s.closed {
		st.LSMBytes, st.VLogBytes = s.db.Size()
	}
	s.life.RUnlock()
	return st
}
