package crdt

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// These tests check the register representation directly on arbitrary sets
// of writes, not only the ones operations produce: any set of writes is a
// register state, so the laws must hold for all of them.

var registerPolicies = []Policy{
	{Kind: LWW},
	{Kind: Prefer, Prefer: []string{"b", "a"}},
	{Kind: Max},
	{Kind: Min},
}

func genStamp() *rapid.Generator[Stamp] {
	return rapid.Custom(func(t *rapid.T) Stamp {
		return Stamp{TS: Timestamp{Wall: rapid.Int64Range(1, 6).Draw(t, "wall")}, Replica: ReplicaID(rapid.IntRange(1, 2).Draw(t, "replica"))}
	})
}

// genWrites draws distinct-stamped writes: equal stamps mean the same write.
func genWrites(t *rapid.T, label string) []Write {
	n := rapid.IntRange(0, 6).Draw(t, label+" n")
	seen := map[Stamp]bool{}
	var ws []Write
	for range n {
		s := genStamp().Draw(t, label+" stamp")
		if seen[s] {
			continue
		}
		seen[s] = true
		v := Int(int64(rapid.IntRange(0, 3).Draw(t, label+" value")))
		if rapid.IntRange(0, 5).Draw(t, label+" null") == 0 {
			v = Null()
		}
		ws = append(ws, Write{Stamp: s, Value: v, Source: rapid.SampledFrom([]string{"a", "b", "c"}).Draw(t, label+" source")})
	}
	return ws
}

// reg is a register state: its writes and the delete stamp they are
// filtered by.
type reg struct {
	ws  []Write
	del Stamp
}

func normalizeReg(p *Policy, ws []Write, del Stamp) reg {
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b Write) int {
		if p.before(&a, &b) {
			return -1
		}
		if p.before(&b, &a) {
			return 1
		}
		return 0
	})
	return reg{joinRegister(p, ws, nil, del), del}
}

func joinReg(p *Policy, a, b reg) reg {
	d := maxStamp(a.del, b.del)
	return reg{joinRegister(p, a.ws, b.ws, d), d}
}

func equalReg(a, b reg) bool { return a.del == b.del && slices.EqualFunc(a.ws, b.ws, equalWrite) }

// best is the oracle: the greatest write under the policy among writes after
// the delete, found by brute force.
func best(p *Policy, ws []Write, del Stamp) *Write {
	var b *Write
	for i := range ws {
		if ws[i].Stamp.Compare(del) <= 0 {
			continue
		}
		if b == nil || p.cmpWrites(&ws[i], b) > 0 {
			b = &ws[i]
		}
	}
	return b
}

func TestRegisterLaws(t *testing.T) {
	for _, pol := range registerPolicies {
		p := pol
		t.Run(p.String(), func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				raw := [3][]Write{genWrites(t, "a"), genWrites(t, "b"), genWrites(t, "c")}
				var st [3]reg
				for i := range st {
					var del Stamp
					if rapid.Bool().Draw(t, "deleted") {
						del = genStamp().Draw(t, "del")
					}
					st[i] = normalizeReg(&p, raw[i], del)
				}
				a, b, c := st[0], st[1], st[2]
				ab := joinReg(&p, a, b)
				if !equalReg(ab, joinReg(&p, b, a)) {
					t.Fatalf("not commutative: %v vs %v", ab, joinReg(&p, b, a))
				}
				if !equalReg(joinReg(&p, ab, c), joinReg(&p, a, joinReg(&p, b, c))) {
					t.Fatal("not associative")
				}
				if !equalReg(joinReg(&p, a, a), a) {
					t.Fatal("not idempotent")
				}
				// The frontier keeps what any later delete may reveal: after
				// joining, and under every delete stamp, the visible write is
				// the best of all writes ever made that the delete does not
				// hide.
				all := slices.Concat(raw[0], raw[1], raw[2])
				abc := joinReg(&p, ab, c)
				for _, del := range []Stamp{abc.del, genStamp().Draw(t, "later delete")} {
					del = maxStamp(del, abc.del)
					hidden := normalizeReg(&p, abc.ws, del)
					got, want := registerVisible(hidden.ws), best(&p, all, del)
					if (got == nil) != (want == nil) || (got != nil && !equalWrite(*got, *want)) {
						t.Fatalf("delete at %s: visible %v, want %v (frontier %v, all %v)", del, got, want, abc.ws, all)
					}
				}
				// The frontier is minimal: every kept write is visible under
				// some delete stamp (the one just before it).
				for i := range abc.ws {
					if i+1 < len(abc.ws) && abc.ws[i+1].Stamp.Compare(abc.ws[i].Stamp) >= 0 {
						t.Fatalf("frontier not in stamp order: %v", abc.ws)
					}
				}
				for i := range len(abc.ws) - 1 {
					// Hiding every write older than abc.ws[i] leaves it
					// visible.
					del := abc.ws[i+1].Stamp
					if v := registerVisible(normalizeReg(&p, abc.ws, del).ws); v == nil || !equalWrite(*v, abc.ws[i]) {
						t.Fatalf("write %v kept but never visible (frontier %v)", abc.ws[i], abc.ws)
					}
				}
			})
		})
	}
}
