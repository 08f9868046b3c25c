package store

import (
	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/rangetree"
)

// arena hands out byte slices from large chunks. Badger keeps references to
// keys, values and entries until a transaction commits; the writer resets
// its arenas only once every transaction of a call has committed.
type arena struct {
	chunks [][]byte
	chunk  int // chunk being filled
}

const arenaChunk = 1 << 20

func (a *arena) reset() {
	for i := range a.chunks {
		a.chunks[i] = a.chunks[i][:0]
	}
	a.chunk = 0
}

// alloc returns a slice of length 0 and capacity n that stays untouched
// until the next reset.
func (a *arena) alloc(n int) []byte {
	for a.chunk < len(a.chunks) {
		c := a.chunks[a.chunk]
		if cap(c)-len(c) >= n {
			a.chunks[a.chunk] = c[:len(c)+n]
			return c[len(c) : len(c) : len(c)+n]
		}
		a.chunk++
	}
	c := make([]byte, n, max(n, arenaChunk))
	a.chunks = append(a.chunks, c)
	a.chunk = len(a.chunks) - 1
	return c[:0:n]
}

// entries hands out Badger entries from slabs, like arena.
type entries struct {
	slabs [][]badger.Entry
	slab  int
}

const slabSize = 1024

func (e *entries) reset() {
	for i := range e.slabs {
		e.slabs[i] = e.slabs[i][:0]
	}
	e.slab = 0
}

func (e *entries) get(key, value []byte) *badger.Entry {
	for e.slab < len(e.slabs) {
		s := e.slabs[e.slab]
		if len(s) < cap(s) {
			s = append(s, badger.Entry{Key: key, Value: value})
			e.slabs[e.slab] = s
			return &s[len(s)-1]
		}
		e.slab++
	}
	s := make([]badger.Entry, 1, slabSize)
	s[0] = badger.Entry{Key: key, Value: value}
	e.slabs = append(e.slabs, s)
	e.slab = len(e.slabs) - 1
	return &s[0]
}

// scratch is the writer's reusable memory, owned by the writer (Store.wmu).
type scratch struct {
	arena   arena
	entries entries
	enc     []byte // the engine's encodings (engine.Params.Scratch)
	workers []*worker
	groups  []group
	order   []int32
	undo    []treeUndo
	tree    []treeOp
}

func (sc *scratch) reset() {
	sc.arena.reset()
	sc.entries.reset()
	for _, w := range sc.workers {
		w.arena.reset()
	}
}

// treeOp is a range-tree update made visible after its part commits.
type treeOp struct {
	id   crdt.ID
	hash crdt.Hash
}

// batch is one writer call: a sequence of Badger transactions (parts),
// normally one, each committed when the next record would not fit. A record,
// its queue chunk and the queue chunks it leaves always share a part, so
// every part leaves the store consistent on its own. In-memory state (range
// tree, queue counts) follows each part after it commits. Only the writer
// holding Store.wmu uses it.
type batch struct {
	s     *Store
	rtxn  *badger.Txn // snapshot for reads (see reader)
	txn   *badger.Txn
	size  int64
	count int64
	// stamped is set when the part holds stamps, whose upper bound
	// (Clock.Last) must then be persisted with it.
	stamped bool

	qseq    uint64         // last queue chunk seq issued, committed or not
	qseqSet bool           // qseq changed in this part
	chunk   []crdt.ID      // records of the open chunk (seq qseq)
	live    map[uint64]int // change of the live count of chunks in this part
	pending int64          // change of the queue length in this part

	tree    []treeOp
	unpark  []crdt.ID
	park    []crdt.ID
	effects uint64
	acked   uint64
	parts   int
	// conflicts are the part's changes to the conflict log's index.
	conflicts conflictChanges
}

// Room kept for the meta entries and the open queue chunk of a part.
const (
	metaReserveBytes = 512
	metaReserveCount = 8
)

func (s *Store) newBatch() *batch {
	s.scratch.reset()
	return &batch{
		s:    s,
		txn:  s.db.NewTransaction(true),
		qseq: s.qseq,
		live: map[uint64]int{},
		tree: s.scratch.tree[:0],
	}
}

// reader returns the batch's read snapshot, opened at its first read: the
// queue operations read a record before they write it, so that is before any
// part commits. Merge and Local read on snapshots of their own.
func (b *batch) reader() *badger.Txn {
	if b.rtxn == nil {
		b.rtxn = b.s.db.NewTransaction(false)
	}
	return b.rtxn
}

// discard drops an unfinished batch. Parts committed before stay. Badger's
// Discard does nothing on a transaction already committed or discarded, and
// releases one whose commit failed before it started.
func (b *batch) discard() {
	if b.rtxn != nil {
		b.rtxn.Discard()
	}
	b.txn.Discard()
	clear(b.tree)
	b.s.scratch.tree = b.tree[:0]
}

// room makes room for count entries of size bytes (a record and its queue
// changes), committing the current part first if they would not fit. It
// fails only when they do not fit in an empty part.
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
	if err := b.commitPart(nil); err != nil {
		return err
	}
	b.s.stats.splits.Add(1)
	b.txn = b.s.db.NewTransaction(true)
	return nil
}

// recordRoom is the room a record value needs with its queue changes.
func recordRoom(key, value []byte) (int, int64) {
	return 3, entrySize(key, value) + 2*entrySize(key, nil)
}

// entrySize estimates an entry's share of Badger's transaction limit.
func entrySize(key, value []byte) int64 { return int64(len(key)+len(value)) + 16 }

func (b *batch) set(key, value []byte) error {
	b.size += entrySize(key, value)
	b.count++
	if err := b.txn.SetEntry(b.s.scratch.entries.get(key, value)); err != nil {
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

// putValue writes a record value (key 'r'+id), queueing the range-tree
// update if the hash changed.
func (b *batch) putValue(id crdt.ID, key, value []byte, hash crdt.Hash, hashChanged bool) error {
	if err := b.set(key, value); err != nil {
		return err
	}
	if hashChanged {
		b.tree = append(b.tree, treeOp{id: id, hash: hash})
	}
	return nil
}

// putRecord builds and writes a record value from its header and encoding
// under key, the record key of id, which must stay unchanged until the batch
// is done.
func (b *batch) putRecord(id crdt.ID, key []byte, h recordHeader, encoded []byte, hashChanged bool) error {
	val := appendRecordValue(b.s.scratch.arena.alloc(recordHeaderLen+len(encoded)), h, encoded)
	return b.putValue(id, key, val, h.hash, hashChanged)
}

// liveCount is the number of records that chunk seq holds, with the changes
// of this part.
func (b *batch) liveCount(seq uint64) int { return b.s.chunkLive[seq] + b.live[seq] }

// leave takes a record out of queue chunk seq (its old queued seq),
// deleting the chunk when it was the last record.
func (b *batch) leave(seq uint64) error {
	if seq == 0 {
		return nil
	}
	if b.liveCount(seq) <= 0 {
		return errors.AssertionFailedf("queue chunk %d has no live record to leave", seq)
	}
	b.live[seq]--
	if b.liveCount(seq) == 0 {
		return b.del(queueKey(seq))
	}
	return nil
}

// enqueue puts id on the queue in the open chunk, taking it out of its old
// chunk (seq old, 0 if none) and out of the parked list, and returns the
// chunk seq to write in the record's header. The caller writes the record.
func (b *batch) enqueue(id crdt.ID, old uint64) (uint64, error) {
	if old != 0 {
		if err := b.leave(old); err != nil {
			return 0, err
		}
	} else {
		b.pending++
	}
	if _, ok := b.s.parked[id]; ok {
		a := &b.s.scratch.arena
		if err := b.del(append(append(a.alloc(1+len(id)), prefixParked), id...)); err != nil {
			return 0, err
		}
		b.unpark = append(b.unpark, id)
	}
	if len(b.chunk) == 0 || len(b.chunk) >= maxChunkIDs {
		if err := b.flushChunk(); err != nil {
			return 0, err
		}
		b.qseq++
		b.qseqSet = true
		b.count++
		b.size += 64
	}
	b.chunk = append(b.chunk, id)
	b.size += int64(len(id)) + 4 // the chunk grows; counted as it does
	b.live[b.qseq]++
	b.effects++
	return b.qseq, nil
}

// unqueue takes a record off the queue (acknowledged or parked).
func (b *batch) unqueue(seq uint64) error {
	if err := b.leave(seq); err != nil {
		return err
	}
	b.pending--
	return nil
}

// flushChunk writes the open queue chunk, whose size enqueue counted.
func (b *batch) flushChunk() error {
	if len(b.chunk) == 0 {
		return nil
	}
	key := appendQueueKey(b.s.scratch.arena.alloc(9), b.qseq)
	val := appendChunk(b.s.scratch.arena.alloc(2+len(b.chunk)*24), b.chunk)
	b.chunk = b.chunk[:0]
	if err := b.txn.SetEntry(b.s.scratch.entries.get(key, val)); err != nil {
		return errors.Wrapf(err, "write %s", keyName(key))
	}
	return nil
}

// commitPart commits the current part with the meta entries it needs (and
// those of extra, for the last part) and then applies its in-memory effects.
func (b *batch) commitPart(extra func() error) error {
	s := b.s
	if err := b.flushChunk(); err != nil {
		return err
	}
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
	if b.conflicts.logged {
		if err := s.pruneConflicts(b, s.conflicts.at); err != nil {
			return err
		}
	}
	if b.count == 0 {
		b.txn.Discard()
		return nil
	}
	if err := b.commit(); err != nil {
		b.conflicts.reset()
		s.treeSound.Store(false)
		s.log.Error("store commit failed; reading every record from now on", "err", err)
		return errors.Wrap(err, "commit store transaction")
	}
	b.parts++
	s.conflicts.commit(&b.conflicts)
	s.stats.commits.Add(1)
	s.stats.bytes.Add(uint64(b.size))
	s.stats.effects.Add(b.effects)
	s.stats.acked.Add(b.acked)

	s.qseq = b.qseq
	s.pendingLen.Add(b.pending)
	for seq, d := range b.live {
		if n := s.chunkLive[seq] + d; n > 0 {
			s.chunkLive[seq] = n
		} else {
			delete(s.chunkLive, seq)
		}
	}
	clear(b.live)
	for _, id := range b.unpark {
		delete(s.parked, id)
	}
	for _, id := range b.park {
		s.parked[id] = struct{}{}
	}
	s.parkedLen.Store(int64(len(s.parked)))
	b.tree = b.tree[:0]
	b.unpark, b.park = nil, nil
	b.size, b.count, b.pending, b.effects, b.acked = 0, 0, 0, 0, 0
	b.stamped, b.qseqSet = false, false
	return nil
}

// treeOverlap is the number of range-tree updates from which a commit runs
// them while Badger writes the transaction.
const treeOverlap = 256

// commit commits the part's transaction and applies its range-tree updates.
// Readers of the tree never see a record before its commit: a small part
// updates the tree after the commit; a large one holds the tree lock from
// before the commit, updates the tree while Badger writes, and puts it back
// if the commit fails.
func (b *batch) commit() error {
	s := b.s
	if len(b.tree) < treeOverlap {
		if err := b.txn.Commit(); err != nil {
			return err
		}
		s.treeMu.Lock()
		for _, op := range b.tree {
			s.tree.Set(op.id, op.hash)
		}
		s.treeMu.Unlock()
		return nil
	}
	done := make(chan error, 1)
	s.treeMu.Lock()
	defer s.treeMu.Unlock()
	b.txn.CommitWith(func(err error) { done <- err })
	undo := applyTree(&s.tree, b.tree, s.scratch.undo[:0])
	s.scratch.undo = undo
	err := <-done
	if err != nil {
		revertTree(&s.tree, undo)
	}
	clear(undo)
	return err
}

// treeUndo restores one range-tree entry.
type treeUndo struct {
	treeOp
	had bool
}

// applyTree applies ops to t and appends to undo what reverts them.
func applyTree(t *rangetree.Tree, ops []treeOp, undo []treeUndo) []treeUndo {
	for _, op := range ops {
		old, had := t.Get(op.id)
		undo = append(undo, treeUndo{treeOp: treeOp{id: op.id, hash: old}, had: had})
		t.Set(op.id, op.hash)
	}
	return undo
}

// revertTree undoes applyTree.
func revertTree(t *rangetree.Tree, undo []treeUndo) {
	for i := len(undo) - 1; i >= 0; i-- {
		if undo[i].had {
			t.Set(undo[i].id, undo[i].hash)
		} else {
			t.Delete(undo[i].id)
		}
	}
}

// finish commits the last part.
func (b *batch) finish(extra func() error) error { return b.commitPart(extra) }
