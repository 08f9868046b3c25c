package store

import (
	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// scratch holds the writer's reusable memory: Badger keeps references to
// keys, values and entries until a transaction commits, after which all of
// it can be reused. Owned by the writer (Store.wmu).
type scratch struct {
	chunks  [][]byte
	chunk   int // chunk being filled
	entries [][]badger.Entry
	slab    int // entry slab being filled
	enc     []byte
	key     []byte  // queue keys for reads
	rkey    []byte  // record keys for reads
	changed []int32 // fragments of one record that changed it
}

const (
	chunkSize = 1 << 20
	slabSize  = 1024
)

func (sc *scratch) reset() {
	for i := range sc.chunks {
		sc.chunks[i] = sc.chunks[i][:0]
	}
	for i := range sc.entries {
		sc.entries[i] = sc.entries[i][:0]
	}
	sc.chunk, sc.slab = 0, 0
}

// alloc returns n bytes of zero length and capacity n that stay untouched
// until the next reset.
func (sc *scratch) alloc(n int) []byte {
	for sc.chunk < len(sc.chunks) {
		c := sc.chunks[sc.chunk]
		if cap(c)-len(c) >= n {
			sc.chunks[sc.chunk] = c[:len(c)+n]
			return c[len(c) : len(c) : len(c)+n]
		}
		sc.chunk++
	}
	c := make([]byte, n, max(n, chunkSize))
	sc.chunks = append(sc.chunks, c)
	return c[:0:n]
}

func (sc *scratch) entry(key, value []byte) *badger.Entry {
	for sc.slab < len(sc.entries) {
		s := sc.entries[sc.slab]
		if len(s) < cap(s) {
			s = append(s, badger.Entry{Key: key, Value: value})
			sc.entries[sc.slab] = s
			return &s[len(s)-1]
		}
		sc.slab++
	}
	s := make([]badger.Entry, 1, slabSize)
	s[0] = badger.Entry{Key: key, Value: value}
	sc.entries = append(sc.entries, s)
	return &s[0]
}

// treeOp is a range-tree update made visible after its part commits.
type treeOp struct {
	id   crdt.ID
	hash crdt.Hash
}

// batch is one writer operation: a sequence of Badger transactions (parts),
// normally one, each committed when the next record would not fit. A record
// and its queue entries always go in the same part, so every part leaves the
// store consistent on its own. In-memory state (range tree, counters) follows
// each part after it commits. Only the writer holding Store.wmu uses it.
type batch struct {
	s     *Store
	rtxn  *badger.Txn // snapshot for reads, taken before any part commits
	txn   *badger.Txn
	size  int64
	count int64
	// stamped is set when the part holds stamps, whose upper bound
	// (Clock.Last) must then be persisted with it.
	stamped bool

	qseq     uint64 // last queue seq issued, committed or not
	qseqSet  bool
	pending  int64 // change of the queue length in this part
	minLive  bool  // the part deleted queue entries: recompute minLive
	tree     []treeOp
	unpark   []crdt.ID
	park     []crdt.ID
	effects  uint64
	acked    uint64
	parts    int
	finished bool
}

// reserve for the meta entries a commit adds.
const (
	metaReserveBytes = 256
	metaReserveCount = 8
)

func (s *Store) newBatch() *batch {
	s.scratch.reset()
	return &batch{
		s:    s,
		rtxn: s.db.NewTransaction(false),
		txn:  s.db.NewTransaction(true),
		qseq: s.qseq,
		tree: make([]treeOp, 0, 64),
	}
}

// discard drops an unfinished batch. Parts committed before stay.
func (b *batch) discard() {
	b.rtxn.Discard()
	if !b.finished {
		b.txn.Discard()
	}
}

// room makes room for a record's entries, committing the current part if
// they would not fit in it. It fails only when they do not fit in an empty
// part.
func (b *batch) room(count int, size int64) error {
	count += metaReserveCount
	size += metaReserveBytes
	if b.count+int64(count) <= b.s.batchCount && b.size+size <= b.s.batchBytes {
		return nil
	}
	if int64(count) > b.s.batchCount || size > b.s.batchBytes {
		return errors.Newf("record of %d bytes in %d entries exceeds the transaction limit of %d bytes",
			size, count, b.s.batchBytes)
	}
	if b.count == 0 {
		return nil
	}
	if err := b.commitPart(nil); err != nil {
		return err
	}
	b.s.stats.splits.Add(1)
	b.txn = b.s.db.NewTransaction(true)
	return nil
}

// entrySize estimates an entry's share of Badger's transaction limit.
func entrySize(key, value []byte) int64 { return int64(len(key)+len(value)) + 16 }

func (b *batch) set(key, value []byte) error {
	b.size += entrySize(key, value)
	b.count++
	if err := b.txn.SetEntry(b.s.scratch.entry(key, value)); err != nil {
		return errors.Wrapf(err, "write %s", keyName(key))
	}
	return nil
}

func (b *batch) del(key []byte) error {
	b.size += entrySize(key, nil)
	b.count++
	if err := b.txn.Delete(key); err != nil {
		return errors.Wrapf(err, "delete %s", keyName(key))
	}
	return nil
}

// putRecord writes a record value and, if its hash changed, queues the
// range-tree update.
func (b *batch) putRecord(id crdt.ID, h recordHeader, encoded []byte, hashChanged bool) error {
	sc := &b.s.scratch
	key := appendRecordKey(sc.alloc(1+len(id)), id)
	val := appendRecordValue(sc.alloc(1+len(h.hash)+10+len(encoded)), h, encoded)
	if err := b.set(key, val); err != nil {
		return err
	}
	if hashChanged {
		b.tree = append(b.tree, treeOp{id: id, hash: h.hash})
	}
	return nil
}

// isLive reports whether queue entry seq exists.
func (b *batch) isLive(seq uint64) (bool, error) {
	if seq == 0 || seq < b.s.minLive || seq > b.s.qseq {
		return false, nil
	}
	key := appendQueueKey(b.s.scratch.key[:0], seq)
	b.s.scratch.key = key
	_, err := b.rtxn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, errors.Wrapf(err, "read %s", keyName(key))
	}
	return true, nil
}

// enqueue puts id on the queue under a new seq, removing its earlier entry
// (seq old, if still live) and any parked entry, and returns the new seq.
// The caller writes the record with the returned seq in its header.
func (b *batch) enqueue(id crdt.ID, old uint64) (uint64, error) {
	live, err := b.isLive(old)
	if err != nil {
		return 0, err
	}
	sc := &b.s.scratch
	if live {
		if err := b.del(appendQueueKey(sc.alloc(9), old)); err != nil {
			return 0, err
		}
		b.pending--
		b.minLive = true
	}
	if _, ok := b.s.parked[id]; ok {
		if err := b.del(append(append(sc.alloc(1+len(id)), prefixParked), id...)); err != nil {
			return 0, err
		}
		b.unpark = append(b.unpark, id)
	}
	b.qseq++
	b.qseqSet = true
	if err := b.set(appendQueueKey(sc.alloc(9), b.qseq), append(sc.alloc(len(id)), id...)); err != nil {
		return 0, err
	}
	b.pending++
	b.effects++
	return b.qseq, nil
}

// commitPart commits the current part with the meta entries it needs (and
// those of extra, for the last part) and then applies its in-memory effects.
func (b *batch) commitPart(extra func() error) error {
	s := b.s
	if b.stamped {
		if err := b.set(keyHLC, encodeTimestamp(s.clock.Last())); err != nil {
			return err
		}
	}
	if b.qseqSet {
		if err := b.set(keyQSeq, encodeUint(b.qseq)); err != nil {
			return err
		}
	}
	if extra != nil {
		if err := extra(); err != nil {
			return err
		}
	}
	if b.count == 0 {
		b.txn.Discard()
		return nil
	}
	if err := b.txn.Commit(); err != nil {
		return errors.Wrap(err, "commit store transaction")
	}
	b.parts++
	s.stats.commits.Add(1)
	s.stats.bytes.Add(uint64(b.size))
	s.stats.effects.Add(b.effects)
	s.stats.acked.Add(b.acked)

	s.qseq = b.qseq
	s.pendingLen.Add(b.pending)
	for _, id := range b.unpark {
		delete(s.parked, id)
	}
	for _, id := range b.park {
		s.parked[id] = struct{}{}
	}
	s.parkedLen.Store(int64(len(s.parked)))
	if s.pendingLen.Load() == 0 {
		s.minLive = s.qseq + 1
	} else if b.minLive {
		if err := s.refreshMinLive(); err != nil {
			return err
		}
	}
	if len(b.tree) > 0 {
		s.treeMu.Lock()
		for _, op := range b.tree {
			s.tree.Set(op.id, op.hash)
		}
		s.treeMu.Unlock()
	}

	s.scratch.reset()
	b.tree = b.tree[:0]
	b.unpark, b.park = nil, nil
	b.size, b.count, b.pending, b.effects, b.acked = 0, 0, 0, 0, 0
	b.stamped, b.qseqSet, b.minLive = false, false, false
	return nil
}

// finish commits the last part.
func (b *batch) finish(extra func() error) error {
	b.finished = true
	return b.commitPart(extra)
}

// refreshMinLive sets minLive to the first live queue seq.
func (s *Store) refreshMinLive() error {
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixQueue}})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		s.minLive = s.qseq + 1
		return nil
	}
	seq, err := parseQueueKey(it.Item().Key())
	if err != nil {
		return err
	}
	s.minLive = seq
	return nil
}
