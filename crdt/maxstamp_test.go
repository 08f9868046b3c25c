package crdt

import (
	"testing"

	"pgregory.net/rapid"
)

// MaxStamp reads Written instead of walking the record; that is right only
// while Written covers every write and live add, whatever operations and
// joins built the state. This checks the invariant on random histories of
// two replicas.
func TestWrittenCoversEveryWrite(t *testing.T) {
	c := MustCollection("c", []string{"id"}, map[string]Policy{
		"s": {Kind: ORSet}, "m": {Kind: Max}, "p": {Kind: Prefer, Prefer: []string{"a"}},
	})
	rapid.Check(t, func(t *rapid.T) {
		states := [2]*Record{}
		wall := int64(0)
		for range rapid.IntRange(1, 40).Draw(t, "ops") {
			i := rapid.IntRange(0, 1).Draw(t, "replica")
			wall += rapid.Int64Range(1, 3).Draw(t, "tick")
			o := Origin{Stamp: Stamp{TS: Timestamp{Wall: wall}, Replica: ReplicaID(i + 1)}, Source: "a"}
			var d *Record
			var err error
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0:
				d, err = Diff(c, states[i], Row{"x": Int(wall), "m": Int(rapid.Int64Range(0, 9).Draw(t, "m")), "p": Int(wall)}, o)
			case 1:
				d, err = SetOps(c, states[i], "s", []Value{Int(rapid.Int64Range(0, 3).Draw(t, "e"))}, nil, o)
			case 2:
				d, err = SetOps(c, states[i], "s", nil, []Value{Int(rapid.Int64Range(0, 3).Draw(t, "e"))}, o)
			default:
				d, err = Delete(states[i], o)
			}
			if err != nil {
				t.Fatal(err)
			}
			states[i] = Join(c, states[i], d)
			if rapid.Bool().Draw(t, "sync") {
				states[1-i] = Join(c, states[1-i], states[i])
			}
			for _, r := range states {
				if r == nil {
					continue
				}
				if w := r.maxWriteStamp(); r.Written.Less(w) {
					t.Fatalf("Written %s below a write at %s in %s", r.Written, w, r)
				}
			}
		}
	})
}
