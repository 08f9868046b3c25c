package store

import (
	"bytes"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// The decoders of the persisted layout never panic on any input, and what
// they accept encodes back to the same bytes.

func FuzzRecordValue(f *testing.F) {
	r := benchRecord(7, crdt.Stamp{TS: crdt.Timestamp{Wall: 1e18}, Replica: 3}, 1)
	enc := crdt.AppendRecord(nil, r)
	id := crdt.MakeID("people", crdt.IntKey(7))
	f.Add(appendRecordValue(nil, recordHeader{hash: crdt.HashRecord(id, enc), queued: 42}, enc))
	f.Add(appendRecordValue(nil, recordHeader{}, crdt.AppendRecord(nil, nil)))
	f.Add([]byte{recordValueVersion})
	f.Add([]byte{})
	lim := crdt.DefaultLimits()
	key := recordKey(id)
	f.Fuzz(func(t *testing.T, val []byte) {
		h, body, err := parseRecordValue(key, val)
		if err != nil {
			if !IsCorrupt(err) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if got := appendRecordValue(nil, h, body); !bytes.Equal(got, val) {
			t.Fatalf("re-encoded %x, want %x", got, val)
		}
		_, r, err := decodeRecordValue(key, val, lim)
		if err != nil {
			if !IsCorrupt(err) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		_ = r.MaxStamp()
	})
}

func FuzzQueueChunk(f *testing.F) {
	f.Add(appendChunk(nil, []crdt.ID{crdt.MakeID("a", crdt.IntKey(1)), crdt.MakeID("people", crdt.StringKey("x"))}))
	f.Add(appendChunk(nil, nil))
	f.Add([]byte{queueChunkVersion, 200})
	f.Fuzz(func(t *testing.T, val []byte) {
		ids, err := parseChunk(queueKey(1), val)
		if err != nil {
			if !IsCorrupt(err) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		if got := appendChunk(nil, ids); !bytes.Equal(got, val) {
			// Uvarints have one canonical form only when minimal; accept a
			// non-minimal input that decodes to the same IDs.
			again, err := parseChunk(queueKey(1), got)
			if err != nil || len(again) != len(ids) {
				t.Fatalf("round trip of %x failed: %v", val, err)
			}
		}
	})
}

func FuzzParkedValue(f *testing.F) {
	f.Add(appendParkedValue(nil, parkedValue{seq: 9, at: 1e18, reason: "bad type"}))
	f.Add([]byte{parkedValueVersion})
	f.Fuzz(func(t *testing.T, val []byte) {
		p, err := parseParkedValue(parkedKey("people\x00\x03"), val)
		if err != nil {
			if !IsCorrupt(err) {
				t.Fatalf("error not marked corrupt: %v", err)
			}
			return
		}
		again, err := parseParkedValue(nil, appendParkedValue(nil, p))
		if err != nil || again != p {
			t.Fatalf("round trip %+v -> %+v, %v", p, again, err)
		}
	})
}

func FuzzMeta(f *testing.F) {
	f.Add(encodeTimestamp(crdt.Timestamp{Wall: 1e18, Logical: 3}))
	f.Add(encodeUint(77))
	f.Add(queueKey(5))
	f.Fuzz(func(t *testing.T, val []byte) {
		if ts, err := parseTimestamp(keyHLC, val); err == nil {
			if !bytes.Equal(encodeTimestamp(ts), val) {
				t.Fatalf("timestamp round trip of %x", val)
			}
		} else if !IsCorrupt(err) {
			t.Fatal(err)
		}
		if u, err := parseUint(keySeq, val); err == nil {
			if !bytes.Equal(encodeUint(u), val) {
				t.Fatalf("uint round trip of %x", val)
			}
		} else if !IsCorrupt(err) {
			t.Fatal(err)
		}
		if seq, err := parseQueueKey(val); err == nil {
			if !bytes.Equal(queueKey(seq), val) {
				t.Fatalf("queue key round trip of %x", val)
			}
		} else if !IsCorrupt(err) {
			t.Fatal(err)
		}
		_ = keyName(val)
	})
}
