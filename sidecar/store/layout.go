package store

import (
	"encoding/binary"
	"strconv"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Key prefixes of the persisted layout (see doc.go).
const (
	prefixMeta   = 'm'
	prefixRecord = 'r'
	prefixQueue  = 'q'
	prefixParked = 'x'
	prefixCursor = 'c'
)

// Meta keys.
var (
	keyFormat  = []byte("mformat")
	keyReplica = []byte("mreplica")
	keyHLC     = []byte("mhlc")
	keySeq     = []byte("mseq")
	keyQSeq    = []byte("mqseq")
)

// formatVersion is the layout version this code writes and reads. Open
// refuses a store with a higher one.
const formatVersion = 1

// recordValueVersion starts every record value.
const recordValueVersion = 1

// parkedValueVersion starts every parked entry.
const parkedValueVersion = 1

// maxCursorName bounds adapter cursor names.
const maxCursorName = 256

func recordKey(id crdt.ID) []byte {
	k := make([]byte, 0, 1+len(id))
	k = append(k, prefixRecord)
	return append(k, id...)
}

func appendRecordKey(b []byte, id crdt.ID) []byte {
	b = append(b, prefixRecord)
	return append(b, id...)
}

func queueKey(seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixQueue
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func appendQueueKey(b []byte, seq uint64) []byte {
	b = append(b, prefixQueue)
	return binary.BigEndian.AppendUint64(b, seq)
}

func parkedKey(id crdt.ID) []byte {
	k := make([]byte, 0, 1+len(id))
	k = append(k, prefixParked)
	return append(k, id...)
}

func cursorKey(name string) []byte {
	k := make([]byte, 0, 1+len(name))
	k = append(k, prefixCursor)
	return append(k, name...)
}

// ErrCorrupt marks errors for data on disk that this package did not write
// the way it reads it: a truncated value, an unknown version byte, a record
// that does not decode. The message names the key.
var ErrCorrupt = errors.New("store: corrupt data")

// IsCorrupt reports whether err is an ErrCorrupt error.
func IsCorrupt(err error) bool { return errors.Is(err, ErrCorrupt) }

func corruptf(key []byte, format string, args ...any) error {
	return corrupt(key, errors.Newf(format, args...))
}

func corrupt(key []byte, err error) error {
	return errors.Mark(errors.WithHint(errors.Wrapf(err, "store key %s", keyName(key)),
		"keep the data directory as it is: it may hold writes that no other replica has; "+
			"stop the agent and copy the directory before any repair"), ErrCorrupt)
}

// keyName renders a store key for error messages.
func keyName(k []byte) string {
	if len(k) == 0 {
		return "(empty)"
	}
	switch k[0] {
	case prefixMeta:
		return "meta/" + strconv.Quote(string(k[1:]))
	case prefixRecord:
		return "record/" + crdt.ID(k[1:]).String()
	case prefixParked:
		return "parked/" + crdt.ID(k[1:]).String()
	case prefixQueue:
		if len(k) == 9 {
			return "queue/" + strconv.FormatUint(binary.BigEndian.Uint64(k[1:]), 10)
		}
	case prefixCursor:
		return "cursor/" + strconv.Quote(string(k[1:]))
	case prefixConflict:
		if len(k) == 9 {
			return "conflict/" + strconv.FormatUint(binary.BigEndian.Uint64(k[1:]), 10)
		}
	case prefixConflictIndex:
		return "conflict-index/" + strconv.Quote(string(k[1:]))
	}
	return strconv.Quote(string(k))
}

// recordHeader is what a record value holds before the record's encoding.
type recordHeader struct {
	// hash is crdt.HashRecord of the record under its ID: the persisted
	// hash index that rebuilds the range tree at Open.
	hash crdt.Hash
	// queued is the seq of the queue chunk that holds the record's pending
	// entry, or 0 when the record is not on the queue. It is the
	// authoritative queue state of the record: a chunk may still list a
	// record that has moved on.
	queued uint64
}

// recordHeaderLen is the size of a record value's header: version, hash and
// queued seq (fixed width, so that the writer can set it in place).
const recordHeaderLen = 1 + len(crdt.Hash{}) + 8

// appendRecordValue appends a record value: header and the record's
// encoding.
func appendRecordValue(b []byte, h recordHeader, encoded []byte) []byte {
	b = append(b, recordValueVersion)
	b = append(b, h.hash[:]...)
	b = binary.BigEndian.AppendUint64(b, h.queued)
	return append(b, encoded...)
}

// setQueued changes the queued seq of a record value in place.
func setQueued(val []byte, seq uint64) {
	binary.BigEndian.PutUint64(val[1+len(crdt.Hash{}):], seq)
}

// parseRecordValue splits a record value into its header and the record's
// encoding (which aliases val).
func parseRecordValue(key, val []byte) (recordHeader, []byte, error) {
	var h recordHeader
	if len(val) < recordHeaderLen+1 {
		return h, nil, corruptf(key, "record value of %d bytes is truncated", len(val))
	}
	if val[0] != recordValueVersion {
		return h, nil, corruptf(key, "record value version %d, want %d", val[0], recordValueVersion)
	}
	copy(h.hash[:], val[1:])
	h.queued = binary.BigEndian.Uint64(val[1+len(h.hash):])
	return h, val[recordHeaderLen:], nil
}

// decodeRecordValue parses and decodes a record value.
func decodeRecordValue(key, val []byte, lim crdt.Limits) (recordHeader, *crdt.Record, error) {
	h, enc, err := parseRecordValue(key, val)
	if err != nil {
		return h, nil, err
	}
	r, err := crdt.DecodeRecord(enc, lim)
	if err != nil {
		return h, nil, corrupt(key, err)
	}
	return h, r, nil
}

// queueChunkVersion starts every queue chunk.
const queueChunkVersion = 1

// maxChunkIDs bounds the records of one queue chunk.
const maxChunkIDs = 128

// appendChunk encodes a queue chunk: the IDs of the records queued in it.
func appendChunk(b []byte, ids []crdt.ID) []byte {
	b = append(b, queueChunkVersion)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendUvarint(b, uint64(len(id)))
		b = append(b, id...)
	}
	return b
}

// parseChunk decodes a queue chunk.
func parseChunk(key, val []byte) ([]crdt.ID, error) {
	if len(val) < 1 || val[0] != queueChunkVersion {
		return nil, corruptf(key, "queue chunk without version %d", queueChunkVersion)
	}
	val = val[1:]
	n, k := binary.Uvarint(val)
	if k <= 0 || n > maxChunkIDs {
		return nil, corruptf(key, "queue chunk with a bad count")
	}
	val = val[k:]
	ids := make([]crdt.ID, 0, n)
	for range n {
		l, k := binary.Uvarint(val)
		if k <= 0 || l > uint64(len(val)-k) {
			return nil, corruptf(key, "queue chunk truncated after %d ids", len(ids))
		}
		id := crdt.ID(val[k : k+int(l)])
		if err := validID(id); err != nil {
			return nil, corrupt(key, err)
		}
		ids = append(ids, id)
		val = val[k+int(l):]
	}
	if len(val) != 0 {
		return nil, corruptf(key, "%d bytes after the queue chunk", len(val))
	}
	return ids, nil
}

// parkedValue is what a parked entry holds.
type parkedValue struct {
	seq    uint64 // the queue entry that was parked
	at     int64  // when, physical ns
	reason string
}

func appendParkedValue(b []byte, p parkedValue) []byte {
	b = append(b, parkedValueVersion)
	b = binary.AppendUvarint(b, p.seq)
	b = binary.AppendVarint(b, p.at)
	return append(b, p.reason...)
}

func parseParkedValue(key, val []byte) (parkedValue, error) {
	var p parkedValue
	if len(val) < 1 || val[0] != parkedValueVersion {
		return p, corruptf(key, "parked entry without version %d", parkedValueVersion)
	}
	val = val[1:]
	seq, n := binary.Uvarint(val)
	if n <= 0 {
		return p, corruptf(key, "parked entry has a bad seq")
	}
	val = val[n:]
	at, n := binary.Varint(val)
	if n <= 0 {
		return p, corruptf(key, "parked entry has a bad time")
	}
	p.seq, p.at, p.reason = seq, at, string(val[n:])
	return p, nil
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func parseUint(key, val []byte) (uint64, error) {
	if len(val) != 8 {
		return 0, corruptf(key, "value of %d bytes, want 8", len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

func encodeTimestamp(ts crdt.Timestamp) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(ts.Wall))
	return binary.BigEndian.AppendUint32(b, ts.Logical)
}

func parseTimestamp(key, val []byte) (crdt.Timestamp, error) {
	if len(val) != 12 {
		return crdt.Timestamp{}, corruptf(key, "timestamp of %d bytes, want 12", len(val))
	}
	return crdt.Timestamp{Wall: int64(binary.BigEndian.Uint64(val)), Logical: binary.BigEndian.Uint32(val[8:])}, nil
}

// idFromKey returns the ID of a record or parked key, checking its form.
func idFromKey(key []byte) (crdt.ID, error) {
	id := crdt.ID(key[1:])
	if _, _, err := id.Split(); err != nil {
		return "", corrupt(key, err)
	}
	return id, nil
}

// validID checks an ID handed in by a caller.
func validID(id crdt.ID) error {
	_, _, err := id.Split()
	return err
}
