package gossip

import (
	"encoding/binary"
	"math"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// The range codec is the compact binary form of the entries that
// anti-entropy exchanges. It is carried as one msgpack bin value inside a
// sync message, because entries dominate the bytes of a session and msgpack
// would spend more on headers than on content. IDs are front-coded against
// the previous ID (adjacent range bounds and items share long prefixes) and
// hashes are truncated to 8 bytes (a false match needs a 2^-64 accident on
// one range; the next change to the range is found anyway).
//
//	entry  := flags:byte lo:id [hi:id] payload
//	flags  := kind (1 fingerprint, 2 items) | 0x80 if hi is unbounded
//	lo     := front-coded against the previous entry's hi ("" at first)
//	hi     := front-coded against lo
//	fp     := hash:8 count:uvarint
//	items  := n:uvarint (id:front-coded against the previous item, lo at first, hash:8)*n
//	id     := shared:uvarint suffixLen:uvarint suffix
//	wants  := n:uvarint (id:front-coded against the previous want, hint:uvarint)*n

type rangeKind uint8

const (
	kindFP    rangeKind = 1
	kindItems rangeKind = 2

	flagUnbounded = 0x80
	kindMask      = 0x03

	shortHashLen = 8
	// maxIDBytes bounds a record ID: a collection name, a zero byte, a key.
	maxIDBytes = 128 + 1 + crdt.MaxKeyBytes
)

type shortHash [shortHashLen]byte

func short(h crdt.Hash) shortHash {
	var s shortHash
	copy(s[:], h[:shortHashLen])
	return s
}

// shortFP is a fingerprint as it crosses the wire.
type shortFP struct {
	Hash  shortHash
	Count uint64
}

func shortFingerprint(fp crdt.Fingerprint) shortFP {
	return shortFP{Hash: short(fp.Hash), Count: fp.Count}
}

type item struct {
	ID   crdt.ID
	Hash shortHash
}

// rangeEntry is one range of IDs [Lo, Hi) with either the sender's
// fingerprint of it or the sender's complete list of items in it.
type rangeEntry struct {
	Lo, Hi crdt.ID // Hi == "" is unbounded
	Kind   rangeKind
	FP     shortFP
	Items  []item
}

func commonPrefix(a, b crdt.ID) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func appendID(b []byte, prev, id crdt.ID) []byte {
	s := commonPrefix(prev, id)
	b = binary.AppendUvarint(b, uint64(s))
	b = binary.AppendUvarint(b, uint64(len(id)-s))
	return append(b, id[s:]...)
}

// rangeWriter appends entries, tracking the front-coding context.
type rangeWriter struct {
	b      []byte
	prevHi crdt.ID
	n      int
}

func (w *rangeWriter) add(e *rangeEntry) {
	flags := byte(e.Kind)
	if e.Hi == "" {
		flags |= flagUnbounded
	}
	w.b = append(w.b, flags)
	w.b = appendID(w.b, w.prevHi, e.Lo)
	if e.Hi != "" {
		w.b = appendID(w.b, e.Lo, e.Hi)
	}
	switch e.Kind {
	case kindFP:
		w.b = append(w.b, e.FP.Hash[:]...)
		w.b = binary.AppendUvarint(w.b, e.FP.Count)
	case kindItems:
		w.b = binary.AppendUvarint(w.b, uint64(len(e.Items)))
		prev := e.Lo
		for _, it := range e.Items {
			w.b = appendID(w.b, prev, it.ID)
			w.b = append(w.b, it.Hash[:]...)
			prev = it.ID
		}
	}
	w.prevHi = e.Hi
	w.n++
}

func (w *rangeWriter) len() int { return len(w.b) }

type byteReader struct {
	b []byte
}

func (r *byteReader) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, decodeErrf("bad varint")
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *byteReader) id(prev crdt.ID) (crdt.ID, error) {
	s, err := r.uvarint()
	if err != nil {
		return "", err
	}
	l, err := r.uvarint()
	if err != nil {
		return "", err
	}
	if s > uint64(len(prev)) || l > maxIDBytes || s+l > maxIDBytes || l > uint64(len(r.b)) {
		return "", decodeErrf("bad id (shared %d, suffix %d)", s, l)
	}
	id := crdt.ID(string(prev[:s]) + string(r.b[:l]))
	r.b = r.b[l:]
	return id, nil
}

func (r *byteReader) hash() (shortHash, error) {
	var h shortHash
	if len(r.b) < shortHashLen {
		return h, decodeErrf("truncated hash")
	}
	copy(h[:], r.b)
	r.b = r.b[shortHashLen:]
	return h, nil
}

// decodeRanges decodes at most maxEntries entries and maxItems items in
// total. It checks that every range is non-empty and every item list sorted
// and inside its range.
func decodeRanges(b []byte, maxEntries, maxItems int) ([]rangeEntry, error) {
	r := &byteReader{b: b}
	var out []rangeEntry
	var prevHi crdt.ID
	items := 0
	for len(r.b) > 0 {
		if len(out) >= maxEntries {
			return nil, decodeErrf("more than %d ranges", maxEntries)
		}
		flags := r.b[0]
		r.b = r.b[1:]
		if flags&^(flagUnbounded|kindMask) != 0 {
			return nil, decodeErrf("bad range flags 0x%02x", flags)
		}
		var e rangeEntry
		e.Kind = rangeKind(flags & kindMask)
		var err error
		if e.Lo, err = r.id(prevHi); err != nil {
			return nil, errors.Wrap(err, "range lo")
		}
		if flags&flagUnbounded == 0 {
			if e.Hi, err = r.id(e.Lo); err != nil {
				return nil, errors.Wrap(err, "range hi")
			}
			if e.Hi <= e.Lo {
				return nil, decodeErrf("empty range")
			}
		}
		switch e.Kind {
		case kindFP:
			if e.FP.Hash, err = r.hash(); err != nil {
				return nil, err
			}
			if e.FP.Count, err = r.uvarint(); err != nil {
				return nil, err
			}
		case kindItems:
			n, err := r.uvarint()
			if err != nil {
				return nil, err
			}
			// Each item takes at least 2+8 bytes.
			if n > uint64(len(r.b)/(2+shortHashLen)) || items+int(n) > maxItems {
				return nil, decodeErrf("item list of %d over the limit", n)
			}
			items += int(n)
			if n > 0 {
				e.Items = make([]item, 0, n)
			}
			prev := e.Lo
			for i := range int(n) {
				id, err := r.id(prev)
				if err != nil {
					return nil, errors.Wrap(err, "item")
				}
				if (i == 0 && id < e.Lo) || (i > 0 && id <= prev) || (e.Hi != "" && id >= e.Hi) {
					return nil, decodeErrf("item out of order or out of range")
				}
				h, err := r.hash()
				if err != nil {
					return nil, err
				}
				e.Items = append(e.Items, item{ID: id, Hash: h})
				prev = id
			}
		default:
			return nil, decodeErrf("unknown range kind %d", e.Kind)
		}
		out = append(out, e)
		prevHi = e.Hi
	}
	return out, nil
}

// want asks the peer for a record. Hint is the newest write time (wall
// nanoseconds) of the asker's own copy, 0 if it has none.
type want struct {
	ID   crdt.ID
	Hint int64
}

func appendWants(b []byte, ws []want) []byte {
	if len(ws) == 0 {
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(ws)))
	var prev crdt.ID
	for _, w := range ws {
		b = appendID(b, prev, w.ID)
		b = binary.AppendUvarint(b, uint64(max(w.Hint, 0)))
		prev = w.ID
	}
	return b
}

func decodeWants(b []byte, max int) ([]want, error) {
	if len(b) == 0 {
		return nil, nil
	}
	r := &byteReader{b: b}
	n, err := r.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(max) || n > uint64(len(r.b)/3) {
		return nil, decodeErrf("%d wants over the limit", n)
	}
	out := make([]want, 0, n)
	var prev crdt.ID
	for range int(n) {
		id, err := r.id(prev)
		if err != nil {
			return nil, errors.Wrap(err, "want")
		}
		h, err := r.uvarint()
		if err != nil {
			return nil, errors.Wrap(err, "want hint")
		}
		if h > math.MaxInt64 {
			return nil, decodeErrf("want hint out of range")
		}
		out = append(out, want{ID: id, Hint: int64(h)})
		prev = id
	}
	if len(r.b) != 0 {
		return nil, decodeErrf("%d bytes after the wants", len(r.b))
	}
	return out, nil
}
