package crdt_test

import (
	"math"
	"math/big"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

var counterColl = crdt.MustCollection("accounts", []string{"id"}, map[string]crdt.Policy{
	"balance": {Kind: crdt.Counter},
})

func ctrOrigin(wall int64, replica crdt.ReplicaID) crdt.Origin {
	return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: replica}}
}

// TestCounterIncrementsSum is the counter's promise: replicas that each
// capture changes of a balance from old to new, concurrently and in any
// order of delivery (with duplicates), end with a balance equal to the
// initial value plus every replica's every change, exactly, for integers
// and for decimals.
func TestCounterIncrementsSum(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		decimals := rapid.Bool().Draw(t, "decimals")
		n := rapid.IntRange(2, 4).Draw(t, "replicas")
		states := make([]*crdt.Record, n)
		var deltas []*crdt.Record
		want := new(big.Rat)
		wall := int64(0)
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			i := rapid.IntRange(0, n-1).Draw(t, "replica")
			if rapid.IntRange(0, 3).Draw(t, "receive") == 0 && len(deltas) > 0 {
				states[i] = crdt.Join(counterColl, states[i], deltas[rapid.IntRange(0, len(deltas)-1).Draw(t, "delta")])
				continue
			}
			// The system held the merged total (or, before any write,
			// nothing) and moved it by inc.
			old := states[i].View(counterColl)
			was := old["balance"]
			var inc, next crdt.Value
			if decimals {
				cents := rapid.Int64Range(-100000, 100000).Draw(t, "cents")
				inc = crdt.String(new(big.Rat).SetFrac64(cents, 100).FloatString(2))
				next = crdt.String(new(big.Rat).Add(ratOf(was), ratOf(inc)).FloatString(2))
			} else {
				d := rapid.Int64Range(-5000, 5000).Draw(t, "inc")
				inc, next = crdt.Int(d), crdt.Int(was.AsInt()+d)
			}
			wall++
			var base crdt.Row
			if old != nil {
				base = crdt.Row{"balance": was}
			}
			d, err := crdt.DiffFrom(counterColl, states[i], base, crdt.Row{"balance": next}, ctrOrigin(wall, crdt.ReplicaID(i+1)))
			if err != nil {
				t.Fatal(err)
			}
			want.Add(want, ratOf(inc))
			if d != nil {
				deltas = append(deltas, d)
				states[i] = crdt.Join(counterColl, states[i], d)
			}
		}
		// Deliver everything, in a drawn order, some twice.
		perm := rapid.Permutation(deltas).Draw(t, "order")
		var all *crdt.Record
		for _, d := range perm {
			all = crdt.Join(counterColl, all, d)
			if rapid.Bool().Draw(t, "dup") {
				all = crdt.Join(counterColl, all, d)
			}
		}
		for _, s := range states {
			all = crdt.Join(counterColl, all, s)
		}
		got := all.View(counterColl)["balance"]
		if len(deltas) == 0 {
			return
		}
		if r := ratOf(got); r == nil || r.Cmp(want) != 0 {
			t.Fatalf("balance = %v, want %s\n state %s", got, want.FloatString(2), all)
		}
		if decimals && got.Kind() != crdt.KindString || !decimals && got.Kind() != crdt.KindInt {
			t.Fatalf("balance %v is a %s", got, got.Kind())
		}
	})
}

// An assignment under counter is the increment that takes the system's
// value to the new one: two systems that both move 100 to 150 concurrently
// add 50 twice.
func TestCounterAssignmentIsIncrement(t *testing.T) {
	base, err := crdt.Diff(counterColl, nil, crdt.Row{"balance": crdt.Int(100)}, ctrOrigin(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	a, err := crdt.DiffFrom(counterColl, base, crdt.Row{"balance": crdt.Int(100)}, crdt.Row{"balance": crdt.Int(150)}, ctrOrigin(2, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := crdt.DiffFrom(counterColl, base, crdt.Row{"balance": crdt.Int(100)}, crdt.Row{"balance": crdt.Int(150)}, ctrOrigin(3, 2))
	if err != nil {
		t.Fatal(err)
	}
	got := crdt.Join(counterColl, crdt.Join(counterColl, base, b), a).View(counterColl)["balance"]
	if !crdt.Equal(got, crdt.Int(200)) {
		t.Fatalf("balance = %v, want 200", got)
	}
}

// A delete hides the counter; a re-insert that saw the delete starts it
// from zero, so the re-inserted row's value is the balance, whatever the
// order in which replicas learn of the delete and the re-insert.
func TestCounterDeleteReinsert(t *testing.T) {
	ins, _ := crdt.Diff(counterColl, nil, crdt.Row{"balance": crdt.Int(70)}, ctrOrigin(1, 1))
	up, _ := crdt.DiffFrom(counterColl, ins, crdt.Row{"balance": crdt.Int(70)}, crdt.Row{"balance": crdt.Int(90)}, ctrOrigin(2, 2))
	s := crdt.Join(counterColl, ins, up)
	del, err := crdt.Delete(s, ctrOrigin(3, 1))
	if err != nil {
		t.Fatal(err)
	}
	s = crdt.Join(counterColl, s, del)
	if s.Exists() {
		t.Fatal("exists after delete")
	}
	re, err := crdt.Diff(counterColl, s, crdt.Row{"balance": crdt.Int(5)}, ctrOrigin(4, 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, order := range [][]*crdt.Record{{ins, up, del, re}, {re, up, ins, del}, {del, re, ins, up}} {
		var r *crdt.Record
		for _, d := range order {
			r = crdt.Join(counterColl, r, d)
		}
		if got := r.View(counterColl)["balance"]; !crdt.Equal(got, crdt.Int(5)) {
			t.Fatalf("balance after re-insert = %v, want 5\n %s", got, r)
		}
	}
}

// Integer sums never wrap: a change that would take a replica's sum past
// the int64 range fails with ErrOverflow; decimals have no such bound.
func TestCounterOverflow(t *testing.T) {
	s, err := crdt.Diff(counterColl, nil, crdt.Row{"balance": crdt.Int(math.MaxInt64)}, ctrOrigin(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	s = crdt.Join(counterColl, nil, s)
	_, err = crdt.DiffFrom(counterColl, s, crdt.Row{"balance": crdt.Int(-1)}, crdt.Row{"balance": crdt.Int(math.MaxInt64)}, ctrOrigin(2, 1))
	if !crdt.IsOverflow(err) {
		t.Fatalf("err = %v, want an overflow", err)
	}
	// Two replicas' sums that each fit but whose total does not show as
	// decimal text, which integer columns refuse, never as a wrapped Int.
	o, _ := crdt.Diff(counterColl, nil, crdt.Row{"balance": crdt.Int(math.MaxInt64)}, ctrOrigin(2, 2))
	got := crdt.Join(counterColl, s, o).View(counterColl)["balance"]
	if !crdt.Equal(got, crdt.String("18446744073709551614")) {
		t.Fatalf("total = %v, want the exact decimal text", got)
	}
	// Floats and text are refused: a float would lose increments.
	for _, v := range []crdt.Value{crdt.Float(1.5), crdt.String("NaN"), crdt.String("abc"), crdt.Bool(true)} {
		if _, err := crdt.Diff(counterColl, nil, crdt.Row{"balance": v}, ctrOrigin(1, 1)); !errors.Is(err, crdt.ErrPolicy) {
			t.Errorf("Diff(%v) = %v, want a policy error", v, err)
		}
	}
}

func TestParseDecimal(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"12", "12", true},
		{"0.50", "0.50", true},
		{"-0.00", "0.00", true},
		{"+007.10", "7.10", true},
		{"-123456789012345678901234567890.123", "-123456789012345678901234567890.123", true},
		{"1.5e+20", "150000000000000000000", true},
		{"2.5e-3", "0.0025", true},
		{"1e-2", "0.01", true},
		{"", "", false},
		{"1.", "", false},
		{".5", "", false},
		{"NaN", "", false},
		{"Infinity", "", false},
		{"1e99999", "", false},
		{"1,5", "", false},
		{"--1", "", false},
	} {
		got, ok := crdt.ParseDecimal(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseDecimal(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzParseDecimal: never panics; the canonical form is a fixed point and
// means the same number.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "-1.50", "1e5", "99999999999999999999.000001", "+.", "1e-32767"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := crdt.ParseDecimal(s)
		if !ok {
			return
		}
		again, ok := crdt.ParseDecimal(c)
		if !ok || again != c {
			t.Fatalf("canonical %q of %q reparses as %q, %v", c, s, again, ok)
		}
		r1, ok1 := new(big.Rat).SetString(s)
		r2, _ := new(big.Rat).SetString(c)
		if ok1 && r1.Cmp(r2) != 0 {
			t.Fatalf("%q and its canonical %q differ", s, c)
		}
	})
}

// The counter policy is part of a collection's fingerprint: replicas that
// disagree on it for a field refuse to merge the collection.
func TestCounterFingerprint(t *testing.T) {
	fp := func(k crdt.PolicyKind) string {
		return crdt.MustCollection("accounts", []string{"id"}, map[string]crdt.Policy{"balance": {Kind: k}}).Fingerprint()
	}
	seen := map[string]crdt.PolicyKind{}
	for _, k := range []crdt.PolicyKind{crdt.LWW, crdt.Max, crdt.Min, crdt.ORSet, crdt.Counter} {
		f := fp(k)
		if other, dup := seen[f]; dup {
			t.Fatalf("%s and %s have the same fingerprint %s", k, other, f)
		}
		seen[f] = k
	}
	if k, err := crdt.ParsePolicyKind("counter"); err != nil || k != crdt.Counter {
		t.Fatalf("ParsePolicyKind(counter) = %v, %v", k, err)
	}
}
