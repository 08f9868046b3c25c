package adaptertest

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// edgeValues returns the values the suite writes into a column of kind k,
// edge cases first. They are all distinct and non-null, and each is a value
// every supported system keeps exactly: times in UTC and whole multiples of
// the precision, JSON without exponents or trailing zeros (which a system
// may normalize), strings without NUL (which PostgreSQL text cannot hold).
func edgeValues(k crdt.Kind, f Features) []crdt.Value {
	switch k {
	case crdt.KindInt:
		return []crdt.Value{crdt.Int(0), crdt.Int(-1), crdt.Int(1), crdt.Int(f.minInt()), crdt.Int(f.maxInt()), crdt.Int(42)}
	case crdt.KindFloat:
		vs := []crdt.Value{
			crdt.Float(0), crdt.Float(1.5), crdt.Float(-2.25), crdt.Float(0.1), crdt.Float(1.0 / 3),
			crdt.Float(math.MaxFloat64), crdt.Float(-math.MaxFloat64), crdt.Float(math.SmallestNonzeroFloat64),
			crdt.Float(-1e-300), crdt.Float(123456789.123456789),
		}
		if !f.NoInf {
			vs = append(vs, crdt.Float(math.Inf(1)), crdt.Float(math.Inf(-1)))
		}
		if f.NaN {
			vs = append(vs, crdt.Float(math.NaN()))
		}
		return vs
	case crdt.KindString:
		return []crdt.Value{
			crdt.String(""), crdt.String("a"),
			crdt.String("héllo wörld ✓ 日本語 🎉 ﷽"),
			crdt.String(`quotes ' '' " \ \\ ` + "`"),
			crdt.String("comma,separated;semi (paren) [bracket] {brace}"),
			crdt.String("line\nbreak\ttab\rreturn"),
			crdt.String("NULL"), crdt.String("null"), crdt.String("X'00'"), crdt.String("  padded  "),
			crdt.String(strings.Repeat("long ", 2000)),
		}
	case crdt.KindBool:
		return []crdt.Value{crdt.Bool(true), crdt.Bool(false)}
	case crdt.KindBytes:
		big := make([]byte, 4096)
		for i := range big {
			big[i] = byte(i*7 + i/256)
		}
		return []crdt.Value{
			crdt.Bytes([]byte{}), crdt.Bytes([]byte{0}), crdt.Bytes([]byte{0x00, 0xff, '\'', ',', 0x80, 0x00}),
			crdt.Bytes([]byte("text-like")), crdt.Bytes(big),
		}
	case crdt.KindTime:
		vs := []crdt.Value{
			crdt.Time(time.Unix(0, 0)),
			crdt.Time(time.Date(2024, 2, 29, 23, 59, 59, 123456000, time.UTC)),
			crdt.Time(time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)),
			crdt.Time(time.Date(1900, 1, 1, 0, 0, 0, 1000, time.UTC)),
			crdt.Time(time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)),
			crdt.Time(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)),
			crdt.Time(time.Date(2024, 6, 30, 12, 0, 0, 0, time.FixedZone("UTC+2", 2*3600))),
		}
		if f.TimePrecision == 0 || f.TimePrecision == time.Nanosecond {
			vs = append(vs, crdt.Time(time.Date(2024, 1, 1, 0, 0, 0, 123456789, time.UTC)))
		}
		if f.TimePrecision > time.Microsecond {
			// Coarser than the values above: they stay distinct.
			for i, v := range vs {
				vs[i] = crdt.Time(v.AsTime().Truncate(f.TimePrecision))
			}
		}
		return vs
	case crdt.KindJSON:
		vs := []crdt.Value{
			crdt.MustJSON(`{}`), crdt.MustJSON(`[]`),
			crdt.MustJSON(`{"a":{"b":[1,2.5,"x",null,true,false,{"c":[]}]},"é":"ü ✓","k":"v"}`),
			crdt.MustJSON(`"just a string"`), crdt.MustJSON(`0`), crdt.MustJSON(`-17`),
			crdt.MustJSON(`null`), crdt.MustJSON(`[[1,[2,[3]]],{"z":1,"a":2}]`),
			crdt.MustJSON(strconv.FormatInt(f.maxInt(), 10)), crdt.MustJSON(`{"quote":"it's \"quoted\"","nl":"a\nb"}`),
		}
		if f.NoJSONNull {
			vs = slices.DeleteFunc(vs, func(v crdt.Value) bool { return v.String() == "null" })
		}
		if f.IntLimit == 0 {
			// Beyond int64 too: a JSON number is not an int64.
			vs = append(vs, crdt.MustJSON(`12345678901234567890`))
		}
		return vs
	case crdt.KindList:
		return []crdt.Value{
			mustList(), mustList("a"), mustList("b", "a", "a"),
			mustList("with,comma", `quote"d`, "{braces}", "NULL", "", "ünï ✓"),
		}
	}
	return nil
}

// minInt and maxInt are the least and greatest ints the system keeps
// exactly.
func (f Features) minInt() int64 {
	if f.IntLimit != 0 {
		return -f.IntLimit
	}
	return math.MinInt64
}

func (f Features) maxInt() int64 {
	if f.IntLimit != 0 {
		return f.IntLimit
	}
	return math.MaxInt64
}

// mustList is a list of strings.
func mustList(elems ...string) crdt.Value {
	vs := make([]crdt.Value, len(elems))
	for i, e := range elems {
		vs[i] = crdt.String(e)
	}
	return mustListOf(vs...)
}

func mustListOf(vs ...crdt.Value) crdt.Value {
	l, err := crdt.List(vs...)
	if err != nil {
		panic(err)
	}
	return l
}

// rng is a small deterministic generator (splitmix64) for the suite's
// random workloads, seeded and printed by the test that uses it.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// pick returns a random edge value of kind k, or null one time in five.
// Empty lists are left out: Lattice holds an empty list register as null.
func (r *rng) pick(k crdt.Kind, f Features) crdt.Value {
	if r.intn(5) == 0 {
		return crdt.Null()
	}
	vs := edgeValues(k, f)
	if k == crdt.KindList {
		vs = vs[1:]
	}
	return vs[r.intn(len(vs))]
}
