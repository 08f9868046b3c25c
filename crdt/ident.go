package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
)

// ID is a record's position in a replica's key space: the collection name, a
// zero byte, and the record's Key. IDs sort by collection, then by key, and
// are what anti-entropy ranges are made of. Collection names contain no zero
// byte (ValidateName), so the split is unambiguous.
type ID string

// MakeID returns the ID of a record.
func MakeID(collection string, key Key) ID {
	return ID(collection + "\x00" + string(key))
}

// Split returns the collection and key of an ID.
func (id ID) Split() (collection string, key Key, err error) {
	i := strings.IndexByte(string(id), 0)
	if i <= 0 || i == len(id)-1 {
		return "", "", errors.Mark(errors.Newf("malformed record id %q", string(id)), ErrInvalidKey)
	}
	return string(id[:i]), Key(id[i+1:]), nil
}

func (id ID) String() string {
	c, k, err := id.Split()
	if err != nil {
		return "invalid-id:" + hexString(string(id))
	}
	return c + "/" + k.String()
}

// Hash is a 128-bit digest of one record's state (with its ID).
type Hash [16]byte

// HashRecord returns the hash of a record's state under its ID, given the
// record's encoding (AppendRecord). Equal states under the same ID hash
// equally on every replica.
func HashRecord(id ID, encoded []byte) Hash {
	bp := hashBufs.Get().(*[]byte)
	b := binary.AppendUvarint((*bp)[:0], uint64(len(id)))
	b = append(b, id...)
	b = append(b, encoded...)
	sum := sha256.Sum256(b)
	if cap(b) <= 1<<20 {
		*bp = b
		hashBufs.Put(bp)
	}
	var out Hash
	copy(out[:], sum[:])
	return out
}

// hashBufs holds buffers for HashRecord: hashing one contiguous buffer with
// sha256.Sum256 allocates nothing, where a streaming hash allocates three
// times per record, on every merge.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Xor returns h XOR o.
func (h Hash) Xor(o Hash) Hash {
	for i := range h {
		h[i] ^= o[i]
	}
	return h
}

// IsZero reports whether h is all zeros.
func (h Hash) IsZero() bool { return h == Hash{} }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Fingerprint summarises a set of records: the XOR of their hashes and their
// number. The fingerprint of a union of disjoint sets is the XOR of hashes
// and sum of counts, so fingerprints of ranges combine, and a set's
// fingerprint does not depend on the order its records were merged in.
type Fingerprint struct {
	Hash  Hash
	Count uint64
}

// Add returns f with a record of hash h added.
func (f Fingerprint) Add(h Hash) Fingerprint {
	return Fingerprint{Hash: f.Hash.Xor(h), Count: f.Count + 1}
}

// Combine returns the fingerprint of the union of two disjoint sets.
func (f Fingerprint) Combine(o Fingerprint) Fingerprint {
	return Fingerprint{Hash: f.Hash.Xor(o.Hash), Count: f.Count + o.Count}
}

func (f Fingerprint) String() string { return f.Hash.String() + "/" + itoa(f.Count) }

func itoa(u uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
		if u == 0 {
			return string(b[i:])
		}
	}
}
