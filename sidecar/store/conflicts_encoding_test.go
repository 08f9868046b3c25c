package store

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// TestConflictEncoding round-trips entries in the binary form, reads the
// JSON form of earlier releases, and refuses truncated entries.
func TestConflictEncoding(t *testing.T) {
	st := crdt.Stamp{TS: crdt.Timestamp{Wall: 1_700_000_000_000_000_000, Logical: 3}, Replica: 7}
	w := encodeWrite(crdt.Write{Stamp: st, Value: crdt.Int(42), Source: "pg"})
	base := conflictValue{Collection: "accounts", Key: []byte("k\x001"), Field: "balance", Rule: "lww", At: 12345,
		Winner: conflictWrite{Write: w}, Loser: conflictWrite{Write: w, Delete: true}, Hash: make([]byte, 16)}
	resolved := base
	resolved.Field = ""
	resolved.Resolved = &resolvedValue{By: "node-a", At: -5, Write: w}
	key := conflictKey(1)
	for _, v := range []conflictValue{base, resolved} {
		enc := encodeConflict(&v)
		got, err := decodeConflict(key, enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, v) {
			t.Fatalf("binary round trip: got %+v, want %+v", *got, v)
		}
		js, err := json.Marshal(&v)
		if err != nil {
			t.Fatal(err)
		}
		got, err = decodeConflict(key, append([]byte{conflictValueJSON}, js...))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, v) {
			t.Fatalf("JSON entry: got %+v, want %+v", *got, v)
		}
		for n := 1; n < len(enc); n++ {
			if _, err := decodeConflict(key, enc[:n]); err == nil {
				t.Fatalf("entry truncated to %d of %d bytes decoded", n, len(enc))
			}
		}
		if _, err := decodeConflict(key, append(enc, 0)); err == nil {
			t.Fatal("entry with a trailing byte decoded")
		}
	}
	if _, err := decodeConflict(key, []byte{9}); err == nil {
		t.Fatal("entry of an unknown version decoded")
	}
}
