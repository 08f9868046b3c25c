package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

// The conflict log. Merge records every conflict crdt.Conflicts reports
// (a choice between writes to one field whose loser its winner's writer had
// not seen) in the same transaction as the merged record, under its own key
// prefixes:
//
//	'k' + seq (8 bytes, big endian)  -> the entry (JSON, see conflictValue)
//	'K' + decision hash (16 bytes)   -> seq
//
// Entries are numbered in the order this node logged them; the number is
// the conflict's ID on this node. The decision hash (collection, key,
// field, winner stamp, loser stamp) makes each decision logged once per
// node: the same delta arriving again, or the losing write arriving from a
// second peer, finds it and writes nothing. The log keeps at most
// Options.ConflictKeep entries and none older than Options.ConflictMaxAge:
// each transaction that logs entries drops the oldest ones beyond either
// bound before it commits (one pass over the oldest entries per
// transaction, not one per entry), so every commit leaves at most
// ConflictKeep; readers skip entries past the age bound that are still
// stored. A decision whose entry was dropped would be
// logged again if its losing write arrived again.
const (
	prefixConflict      = 'k'
	prefixConflictIndex = 'K'
)

// conflictValueVersion starts every conflict entry this release writes;
// entries starting with conflictValueJSON (earlier releases) stay readable.
const (
	conflictValueVersion = 2
	conflictValueJSON    = 1
)

// maxPrunePerWrite bounds the entries one new entry drops by age, so that a
// merge after a long quiet period does not write an unbounded transaction;
// the count bound is always kept.
const maxPrunePerWrite = 64

// Conflict is one logged conflict.
type Conflict struct {
	// ID numbers the conflicts this node logged, from 1.
	ID uint64
	// At is when this node logged it, in Unix nanoseconds.
	At         int64
	Collection string
	Key        crdt.Key
	// Field is the field, or "" for an update against a delete.
	Field string
	// Rule decided it: lww, prefer, max, min or delete.
	Rule          string
	Winner, Loser crdt.ConflictWrite
	// Resolved is set once a user re-asserted a value for the field
	// (Resolve), on this node.
	Resolved *Resolution
}

// Resolution records a manual override of a conflict.
type Resolution struct {
	// By is the node that resolved it.
	By string
	// At is when, in Unix nanoseconds.
	At int64
	// Stamp is the stamp of the write that re-asserted the value.
	Stamp crdt.Stamp
	// Value is the value re-asserted.
	Value crdt.Value
}

// conflictLog is the writer's view of the log (guarded by Store.wmu).
type conflictLog struct {
	first, next uint64 // live entries are [first, next)
	at          int64  // when the last entry was logged
	// firstAt is when entry first was logged, zero when not known: while
	// it is within the age bound, logging reads no old entry.
	firstAt int64
	// seen holds the decision hashes of the stored entries (the 'K'
	// keys), loaded at Open and kept in step after each commit, so that
	// logging a conflict reads nothing to find out whether it is new.
	seen map[decision]struct{}
}

// decision is a decision hash (see decisionHash).
type decision [16]byte

// conflictChanges are the changes of a batch part to conflictLog.seen,
// applied once the part commits: a part that fails leaves seen as stored.
type conflictChanges struct {
	added   map[decision]struct{}
	dropped []decision
	// logged is set when the part logged an entry: it prunes before it
	// commits.
	logged bool
}

// has reports whether the decision is stored or written by the batch.
func (l *conflictLog) has(b *batch, d decision) bool {
	if _, ok := l.seen[d]; ok {
		return true
	}
	_, ok := b.conflicts.added[d]
	return ok
}

// commit applies a committed part's changes to seen.
func (l *conflictLog) commit(c *conflictChanges) {
	if l.seen == nil {
		l.seen = map[decision]struct{}{}
	}
	// Added first: a part may drop entries it added itself.
	for d := range c.added {
		l.seen[d] = struct{}{}
	}
	for _, d := range c.dropped {
		delete(l.seen, d)
	}
	clear(c.added)
	c.dropped = c.dropped[:0]
	c.logged = false
}

// reset forgets a failed part's changes.
func (c *conflictChanges) reset() {
	clear(c.added)
	c.dropped = c.dropped[:0]
	c.logged = false
}

func conflictKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixConflict
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func conflictIndexKey(h []byte) []byte {
	return append([]byte{prefixConflictIndex}, h...)
}

// decisionHash identifies a decision: the same pair of writes to the same
// field of the same record.
func decisionHash(collection string, key crdt.Key, c *crdt.Conflict) decision {
	h := sha256.New()
	var b []byte
	for _, s := range []string{collection, string(key), c.Field, c.Rule} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, st := range []crdt.Stamp{c.Winner.Stamp, c.Loser.Stamp} {
		b = binary.BigEndian.AppendUint64(b, uint64(st.TS.Wall))
		b = binary.BigEndian.AppendUint32(b, st.TS.Logical)
		b = binary.BigEndian.AppendUint64(b, uint64(st.Replica))
	}
	h.Write(b)
	var sum [sha256.Size]byte
	return decision(h.Sum(sum[:0])[:16])
}

// conflictValue is the stored form of a Conflict. Writes travel as a
// one-field crdt record, so that values keep their exact kind.
type conflictValue struct {
	Collection string         `json:"c"`
	Key        []byte         `json:"k"`
	Field      string         `json:"f,omitempty"`
	Rule       string         `json:"r"`
	At         int64          `json:"at"`
	Winner     conflictWrite  `json:"w"`
	Loser      conflictWrite  `json:"l"`
	Hash       []byte         `json:"h"`
	Resolved   *resolvedValue `json:"res,omitempty"`
}

type conflictWrite struct {
	Write  []byte `json:"w"` // crdt record with one write
	Delete bool   `json:"d,omitempty"`
}

type resolvedValue struct {
	By    string `json:"by"`
	At    int64  `json:"at"`
	Write []byte `json:"w"`
}

func encodeWrite(w crdt.Write) []byte {
	return crdt.AppendRecord(nil, &crdt.Record{Written: w.Stamp, Fields: []crdt.Field{{Name: "w", Reg: []crdt.Write{w}}}})
}

func decodeWrite(key, b []byte) (crdt.Write, error) {
	r, err := crdt.DecodeRecord(b, crdt.DefaultLimits())
	if err != nil {
		return crdt.Write{}, corrupt(key, err)
	}
	if len(r.Fields) != 1 || len(r.Fields[0].Reg) != 1 {
		return crdt.Write{}, corruptf(key, "conflict write of %d fields", len(r.Fields))
	}
	return r.Fields[0].Reg[0], nil
}

func (cw conflictWrite) side(key []byte) (crdt.ConflictWrite, error) {
	w, err := decodeWrite(key, cw.Write)
	if err != nil {
		return crdt.ConflictWrite{}, err
	}
	return crdt.ConflictWrite{Stamp: w.Stamp, Value: w.Value, Source: w.Source, Delete: cw.Delete}, nil
}

func sideValue(c crdt.ConflictWrite) conflictWrite {
	return conflictWrite{Write: encodeWrite(crdt.Write{Stamp: c.Stamp, Value: c.Value, Source: c.Source}), Delete: c.Delete}
}

// encodeConflict writes the binary form (version 2): uvarint-length-prefixed
// collection, key, field and rule, varint At, each side as a
// length-prefixed write and a delete byte, the 16-byte hash, and a
// resolution byte followed, when 1, by its node, varint time and write.
func encodeConflict(v *conflictValue) []byte {
	n := 1 + 4*binary.MaxVarintLen64 + len(v.Collection) + len(v.Key) + len(v.Field) + len(v.Rule) +
		3*binary.MaxVarintLen64 + len(v.Winner.Write) + len(v.Loser.Write) + 2 + len(v.Hash) + 1
	if v.Resolved != nil {
		n += 3*binary.MaxVarintLen64 + len(v.Resolved.By) + len(v.Resolved.Write)
	}
	b := make([]byte, 0, n)
	b = append(b, conflictValueVersion)
	for _, f := range [][]byte{[]byte(v.Collection), v.Key, []byte(v.Field), []byte(v.Rule)} {
		b = appendBytes(b, f)
	}
	b = binary.AppendVarint(b, v.At)
	for _, w := range []conflictWrite{v.Winner, v.Loser} {
		b = appendBytes(b, w.Write)
		b = append(b, boolByte(w.Delete))
	}
	b = appendBytes(b, v.Hash)
	if v.Resolved == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = appendBytes(b, []byte(v.Resolved.By))
	b = binary.AppendVarint(b, v.Resolved.At)
	return appendBytes(b, v.Resolved.Write)
}

func appendBytes(b, f []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// conflictReader reads the binary form; the first failure sticks.
type conflictReader struct {
	b   []byte
	bad bool
}

func (r *conflictReader) bytes() []byte {
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		r.bad, r.b = true, nil
		return nil
	}
	f := r.b[k : k+int(n)]
	r.b = r.b[k+int(n):]
	return f
}

func (r *conflictReader) varint() int64 {
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *conflictReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// decodeConflict reads an entry of either version: 1 (JSON, written by
// earlier releases) or 2 (binary).
func decodeConflict(key, b []byte) (*conflictValue, error) {
	if len(b) == 0 {
		return nil, corruptf(key, "empty conflict entry")
	}
	v := &conflictValue{}
	switch b[0] {
	case conflictValueJSON:
		if err := json.Unmarshal(b[1:], v); err != nil {
			return nil, corrupt(key, err)
		}
		return v, nil
	case conflictValueVersion:
	default:
		return nil, corruptf(key, "conflict entry of version %d, want %d", b[0], conflictValueVersion)
	}
	b = bytes.Clone(b[1:])
	r := &conflictReader{b: b}
	v.Collection, v.Key, v.Field, v.Rule = string(r.bytes()), r.bytes(), string(r.bytes()), string(r.bytes())
	v.At = r.varint()
	for _, w := range []*conflictWrite{&v.Winner, &v.Loser} {
		w.Write = r.bytes()
		w.Delete = r.byte() == 1
	}
	v.Hash = r.bytes()
	if r.byte() == 1 {
		v.Resolved = &resolvedValue{By: string(r.bytes()), At: r.varint(), Write: r.bytes()}
	}
	if r.bad || len(r.b) != 0 {
		return nil, corruptf(key, "conflict entry truncated or overlong")
	}
	return v, nil
}

func (v *conflictValue) conflict(key []byte) (Conflict, error) {
	c := Conflict{ID: binary.BigEndian.Uint64(key[1:]), At: v.At, Collection: v.Collection, Key: crdt.Key(v.Key), Field: v.Field, Rule: v.Rule}
	var err error
	if c.Winner, err = v.Winner.side(key); err != nil {
		return c, err
	}
	if c.Loser, err = v.Loser.side(key); err != nil {
		return c, err
	}
	if v.Resolved != nil {
		w, err := decodeWrite(key, v.Resolved.Write)
		if err != nil {
			return c, err
		}
		c.Resolved = &Resolution{By: v.Resolved.By, At: v.Resolved.At, Stamp: w.Stamp, Value: w.Value}
	}
	return c, nil
}

// loadConflicts finds the live entries at Open.
func (s *Store) loadConflicts(txn *badger.Txn) error {
	s.conflicts.seen = map[decision]struct{}{}
	kit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflictIndex}})
	defer kit.Close()
	for kit.Rewind(); kit.Valid(); kit.Next() {
		k := kit.Item().Key()
		if len(k) != 1+len(decision{}) {
			return corruptf(k, "conflict index key of %d bytes", len(k))
		}
		s.conflicts.seen[decision(k[1:])] = struct{}{}
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflict}})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return nil
	}
	k := it.Item().Key()
	if len(k) != 9 {
		return corruptf(k, "conflict key of %d bytes", len(k))
	}
	s.conflicts.first = binary.BigEndian.Uint64(k[1:])
	rit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflict}, Reverse: true})
	defer rit.Close()
	rit.Seek(append([]byte{prefixConflict}, bytes.Repeat([]byte{0xff}, 8)...))
	if rit.Valid() {
		s.conflicts.next = binary.BigEndian.Uint64(rit.Item().Key()[1:]) + 1
	}
	return nil
}

// logConflicts writes the conflicts a merge of one record decided into the
// batch, skipping decisions already logged, and returns those it logged.
func (s *Store) logConflicts(b *batch, collection string, key crdt.Key, cs []crdt.Conflict) ([]Conflict, error) {
	var out []Conflict
	for i := range cs {
		c := &cs[i]
		seq, err := s.logConflict(b, collection, key, c)
		if err != nil {
			return out, err
		}
		if seq != 0 {
			out = append(out, Conflict{ID: seq, At: s.conflicts.at, Collection: collection, Key: key,
				Field: c.Field, Rule: c.Rule, Winner: c.Winner, Loser: c.Loser})
		}
	}
	return out, nil
}

// logConflict writes one conflict into the batch unless its decision is
// logged already, drops what the bounds no longer allow, and returns its ID
// (zero when it was logged before).
func (s *Store) logConflict(b *batch, collection string, key crdt.Key, c *crdt.Conflict) (uint64, error) {
	h := decisionHash(collection, key, c)
	if s.conflicts.has(b, h) {
		return 0, nil
	}
	ik := conflictIndexKey(h[:])
	if s.conflicts.next == 0 {
		s.conflicts.next, s.conflicts.first = 1, 1
	}
	seq := s.conflicts.next
	now := s.opts.Physical()
	s.conflicts.at = now
	v := &conflictValue{Collection: collection, Key: []byte(key), Field: c.Field, Rule: c.Rule, At: now,
		Winner: sideValue(c.Winner), Loser: sideValue(c.Loser), Hash: h[:]}
	enc := encodeConflict(v)
	ck := conflictKey(seq)
	// The entry, its index, and the deletes of the oldest entry it may
	// drop. An entry too large for any transaction (only with a tiny
	// Options.MaxBatchBytes) is not logged: the merge matters more.
	count, size := 4, entrySize(ck, enc)+entrySize(ik, ck)+entrySize(ck, nil)+entrySize(ik, nil)
	if size+metaReserveBytes > b.s.batchBytes {
		s.log.Warn("a conflict entry is too large for a transaction; not logged", "bytes", size, "collection", collection, "field", c.Field)
		return 0, nil
	}
	if err := b.room(count, size); err != nil {
		return 0, errors.Wrap(err, "log a conflict")
	}
	if err := b.set(ck, enc); err != nil {
		return 0, err
	}
	if err := b.set(ik, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, err
	}
	if b.conflicts.added == nil {
		b.conflicts.added = map[decision]struct{}{}
	}
	b.conflicts.added[h] = struct{}{}
	if s.conflicts.first == seq {
		s.conflicts.firstAt = now
	}
	s.conflicts.next++
	b.conflicts.logged = true
	return seq, nil
}

// pruneConflicts drops the oldest entries beyond the count bound, and up to
// maxPrunePerWrite more older than the age bound. It runs once per part
// that logged a conflict, just before the part commits, walking the oldest
// entries with one iterator.
func (s *Store) pruneConflicts(b *batch, now int64) error {
	keep := uint64(s.opts.ConflictKeep)
	l := &s.conflicts
	if l.first >= l.next {
		return nil
	}
	aging := s.opts.ConflictMaxAge > 0 && (l.firstAt == 0 || now-l.firstAt > int64(s.opts.ConflictMaxAge))
	if l.next-l.first <= keep && !aging {
		return nil
	}
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflict}})
	defer it.Close()
	aged := 0
	for it.Seek(conflictKey(l.first)); it.Valid(); it.Next() {
		item := it.Item()
		k := item.KeyCopy(nil)
		if len(k) != 9 {
			return corruptf(k, "conflict key of %d bytes", len(k))
		}
		seq := binary.BigEndian.Uint64(k[1:])
		if seq >= l.next {
			break
		}
		l.first = seq // skips gaps: parts that did not commit
		over := l.next-seq > keep
		if !over && (s.opts.ConflictMaxAge <= 0 || aged >= maxPrunePerWrite) {
			return nil
		}
		raw, err := item.ValueCopy(nil)
		if err != nil {
			return errors.Wrapf(err, "read %s", keyName(k))
		}
		v, err := decodeConflict(k, raw)
		if err != nil {
			return err
		}
		if !over {
			if now-v.At <= int64(s.opts.ConflictMaxAge) {
				l.firstAt = v.At
				return nil
			}
			aged++
		}
		if err := b.del(k); err != nil {
			return err
		}
		if err := b.del(conflictIndexKey(v.Hash)); err != nil {
			return err
		}
		if len(v.Hash) == len(decision{}) {
			b.conflicts.dropped = append(b.conflicts.dropped, decision(v.Hash))
		}
		l.first = seq + 1
		l.firstAt = 0
	}
	return nil
}

// ConflictQuery selects logged conflicts. Zero fields select everything.
type ConflictQuery struct {
	Collection string
	Key        crdt.Key
	Field      string
	// Since and Until bound when the conflict was logged (Unix ns,
	// inclusive; zero: unbounded).
	Since, Until int64
	// After is a cursor: the ID of the last conflict of the previous page.
	After uint64
	// Limit is the page size (default and at most 1000).
	Limit int
}

// MaxConflictPage is the largest page Conflicts returns.
const MaxConflictPage = 1000

// Conflicts lists logged conflicts in the order they were logged, one page
// at a time: next is the cursor of the next page, zero after the last.
func (s *Store) Conflicts(q ConflictQuery) (out []Conflict, next uint64, err error) {
	if q.Limit <= 0 || q.Limit > MaxConflictPage {
		q.Limit = MaxConflictPage
	}
	oldest := int64(0)
	if s.opts.ConflictMaxAge > 0 {
		oldest = s.opts.Physical() - int64(s.opts.ConflictMaxAge)
	}
	err = s.read(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConflict}})
		defer it.Close()
		for it.Seek(conflictKey(q.After + 1)); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) != 9 {
				return corruptf(k, "conflict key of %d bytes", len(k))
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].ID
				return nil
			}
			raw, err := it.Item().ValueCopy(nil)
			if err != nil {
				return errors.Wrapf(err, "read %s", keyName(k))
			}
			v, err := decodeConflict(k, raw)
			if err != nil {
				return err
			}
			if v.At < oldest || (q.Since != 0 && v.At < q.Since) || (q.Until != 0 && v.At > q.Until) ||
				(q.Collection != "" && v.Collection != q.Collection) || (q.Field != "" && v.Field != q.Field) ||
				(q.Key != "" && string(v.Key) != string(q.Key)) {
				continue
			}
			c, err := v.conflict(k)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	return out, next, err
}

// ErrNoConflict marks a conflict ID the log does not hold.
var ErrNoConflict = errors.New("store: no such conflict")

// Conflict returns one logged conflict.
func (s *Store) Conflict(id uint64) (Conflict, error) {
	var c Conflict
	err := s.read(func(txn *badger.Txn) error {
		k := conflictKey(id)
		item, err := txn.Get(k)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return errors.Mark(errors.WithHint(errors.Newf("no conflict %d", id),
				"list the conflicts with lattice conflicts; old ones are dropped (conflicts.keep, conflicts.max_age)"), ErrNoConflict)
		}
		if err != nil {
			return errors.Wrapf(err, "read %s", keyName(k))
		}
		raw, err := item.ValueCopy(nil)
		if err != nil {
			return errors.Wrapf(err, "read %s", keyName(k))
		}
		v, err := decodeConflict(k, raw)
		if err != nil {
			return err
		}
		c, err = v.conflict(k)
		return err
	})
	return c, err
}

// markResolved records in the batch that conflict id was resolved by r.
func (s *Store) markResolved(b *batch, id uint64, r Resolution) error {
	k := conflictKey(id)
	item, err := b.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		// Dropped by the bounds since the caller looked it up: the
		// override itself stands.
		s.log.Warn("a resolved conflict is no longer in the log", "conflict", id)
		return nil
	}
	if err != nil {
		return errors.Wrapf(err, "read %s", keyName(k))
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return errors.Wrapf(err, "read %s", keyName(k))
	}
	v, err := decodeConflict(k, raw)
	if err != nil {
		return err
	}
	v.Resolved = &resolvedValue{By: r.By, At: r.At, Write: encodeWrite(crdt.Write{Stamp: r.Stamp, Value: r.Value})}
	return b.set(k, encodeConflict(v))
}

// conflictAge is the default of Options.ConflictMaxAge.
const conflictAge = 30 * 24 * time.Hour
