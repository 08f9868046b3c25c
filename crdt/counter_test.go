package crdt_test

import (
	"math"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

const victim = crdt.ReplicaID(7)

// A peer's context {victim: MaxUint64} is refused by the decoder, as is a
// live entry with such a counter: accepted, it would make the victim's next
// add wrap to a zero dot, invisible and refused by every peer for good.
func TestDecoderBoundsCounters(t *testing.T) {
	orset := func(elems, vv mp) mp {
		return arr(nilv(), st1, arr(arr(str("s"), arr(), arr(elems, vv, arr()))))
	}
	for _, tc := range []struct {
		name string
		rec  mp
	}{
		{"version vector", orset(arr(), arr(arr(u(uint64(victim)), u(math.MaxUint64))))},
		{"just over", orset(arr(), arr(arr(u(uint64(victim)), u(crdt.MaxCounter+1))))},
		{"entry", orset(arr(arr(str("a"), arr(arr(u(math.MaxUint64), stampMP(10, 0, uint64(victim)))))), arr())},
		{"delta", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.rec == nil {
				_, err = crdt.DecodeDelta(envelope(frag("c", k1, orset(arr(), arr(arr(u(uint64(victim)), u(math.MaxUint64)))))), crdt.DefaultLimits())
			} else {
				_, err = crdt.DecodeRecord(enc(tc.rec), crdt.DefaultLimits())
			}
			if !crdt.IsDecodeError(err) || limitName(err) != crdt.LimitCounter {
				t.Fatalf("decode = %v, want a decode error naming %s", err, crdt.LimitCounter)
			}
		})
	}
	// At the bound it decodes.
	r, err := crdt.DecodeRecord(enc(orset(arr(), arr(arr(u(uint64(victim)), u(crdt.MaxCounter))))), crdt.DefaultLimits())
	if err != nil {
		t.Fatalf("counter at MaxCounter: %v", err)
	}
	if got := r.Fields[0].Set.Ctx.Max(victim); got != crdt.MaxCounter {
		t.Fatalf("context max = %d, want %d", got, uint64(crdt.MaxCounter))
	}
}

// An add whose dot would pass MaxCounter fails with ErrTooLarge instead of
// wrapping; below the bound it takes the next counter.
func TestAddAtCounterBound(t *testing.T) {
	at := func(counter uint64) *crdt.Record {
		return &crdt.Record{
			Written: crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 2},
			Fields: []crdt.Field{{Name: "s", Set: &crdt.ORSetState{
				Ctx: crdt.CausalContext{VV: []crdt.Dot{{Replica: victim, Counter: counter}}},
			}}},
		}
	}
	o := crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: 5}, Replica: victim}}
	one, two := []crdt.Value{crdt.String("a")}, []crdt.Value{crdt.String("a"), crdt.String("b")}
	for _, tc := range []struct {
		name    string
		counter uint64
		adds    []crdt.Value
		ok      bool
	}{
		{"below", crdt.MaxCounter - 1, one, true},
		{"two past", crdt.MaxCounter - 1, two, false},
		{"at", crdt.MaxCounter, one, false},
		{"wrapped peer", math.MaxUint64, one, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := at(tc.counter)
			d, err := crdt.SetOps(limitsColl, r, "s", tc.adds, nil, o)
			if !tc.ok {
				if !crdt.IsTooLarge(err) || limitName(err) != crdt.LimitCounter {
					t.Fatalf("SetOps = %v, %v; want an error naming %s", d, err, crdt.LimitCounter)
				}
				// The diff path (a whole list written) refuses it too.
				if _, err := crdt.Diff(limitsColl, r, crdt.Row{"s": must(crdt.List(tc.adds...))}, o); !crdt.IsTooLarge(err) {
					t.Fatalf("Diff = %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := crdt.Merge(limitsColl, r, d)
			if vs := got.Fields[0].Set.Ctx.Max(victim); vs != crdt.MaxCounter {
				t.Fatalf("context max after the add = %d, want %d", vs, uint64(crdt.MaxCounter))
			}
			if _, err := crdt.DecodeRecord(crdt.AppendRecord(nil, got), crdt.DefaultLimits()); err != nil {
				t.Fatalf("record at the bound does not decode: %v", err)
			}
		})
	}
}
