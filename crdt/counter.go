package crdt

import (
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
)

// CounterEntry is one replica's part of a Counter field: the sums of the
// increments (P) and of the decrements (N) that replica ever made to the
// field, and the stamp of its last change. Only the replica named by
// Stamp.Replica writes its entry, and each change it makes carries its whole
// new sums, stamped after its previous change, so an entry with a higher
// stamp holds sums at least as large: joining entries by the higher stamp
// is the PN-counter's per-replica max, and it stays a join when a re-insert
// resets the field (see the package documentation).
//
// P and N are never negative; each is an Int or the exact decimal text of a
// String (digits, optionally a point and more digits: "12", "0.50"). The
// field's value is the sum of every P minus every N.
type CounterEntry struct {
	Stamp Stamp
	P, N  Value
}

// ErrOverflow marks a counter change whose sums would leave the int64 range
// of an integer counter; such an error is also an ErrPolicy error (the
// change does not fit the field). Sums are never wrapped.
var ErrOverflow = errors.New("crdt: counter out of the int64 range")

// IsOverflow reports whether err is an ErrOverflow error.
func IsOverflow(err error) bool { return errors.Is(err, ErrOverflow) }

// maxDecimalDigits bounds the digits of a decimal that counters parse, and
// maxDecimalExp the exponent of one written with an exponent (as SQLite
// prints large reals), so that no input makes arithmetic allocate without
// bound. PostgreSQL's numeric holds up to 131072 digits before the point and
// 16383 after.
const (
	maxDecimalDigits = 1 << 18
	maxDecimalExp    = 1 << 15
)

// decimal is an exact number: coef × 10^-scale, scale >= 0. isInt says it
// came from Int values only and is kept as an Int.
type decimal struct {
	coef  *big.Int
	scale int32
	isInt bool
}

var bigTen = big.NewInt(10)

// ParseDecimal reads the exact decimal text s: an optional sign, digits, an
// optional point followed by digits, and an optional exponent ("1.5e+20",
// as SQLite prints large reals). It returns the value in canonical form,
// which keeps the digits after the point that s gives ("1.50" stays
// "1.50"); ok is false for anything else (NaN, Infinity, "1.", "").
func ParseDecimal(s string) (canonical string, ok bool) {
	d, err := parseDecimal(s)
	if err != nil {
		return "", false
	}
	return d.text(), true
}

func parseDecimal(s string) (decimal, error) {
	bad := func() (decimal, error) {
		return decimal{}, errors.Newf("%q is not an exact decimal", clipString(s))
	}
	if len(s) == 0 || len(s) > maxDecimalDigits {
		return bad()
	}
	mant, exp := s, int64(0)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.ParseInt(s[i+1:], 10, 32)
		if err != nil || e > maxDecimalExp || e < -maxDecimalExp {
			return bad()
		}
		mant, exp = s[:i], e
	}
	neg := false
	switch {
	case strings.HasPrefix(mant, "-"):
		neg, mant = true, mant[1:]
	case strings.HasPrefix(mant, "+"):
		mant = mant[1:]
	}
	intPart, frac, hasPoint := strings.Cut(mant, ".")
	if intPart == "" || (hasPoint && frac == "") || !allDigits(intPart) || !allDigits(frac) {
		return bad()
	}
	coef, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return bad()
	}
	scale := int64(len(frac)) - exp
	if scale < 0 {
		coef.Mul(coef, new(big.Int).Exp(bigTen, big.NewInt(-scale), nil))
		scale = 0
	}
	if scale > math.MaxInt32 {
		return bad()
	}
	if neg {
		coef.Neg(coef)
	}
	return decimal{coef: coef, scale: int32(scale)}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// counterNumber reads a counter field's value: an Int, the exact decimal
// text of a String, or null (zero).
func counterNumber(field string, v Value) (decimal, error) {
	switch v.kind {
	case KindNull:
		return decimal{coef: new(big.Int), isInt: true}, nil
	case KindInt:
		return decimal{coef: big.NewInt(int64(v.num)), isInt: true}, nil
	case KindString:
		d, err := parseDecimal(v.str)
		if err != nil {
			return decimal{}, errors.Mark(errors.WithHint(errors.Wrapf(err, "counter field %s", field),
				"a counter holds integers or exact decimals (numeric); store the value as one"), ErrPolicy)
		}
		return d, nil
	}
	return decimal{}, errors.Mark(errors.WithHint(
		errors.Newf("counter field %s: want an integer or an exact decimal, got %s", field, v.kind),
		"a counter holds integers or exact decimals (numeric): floats would lose increments"), ErrPolicy)
}

// rescale returns d's coefficient at scale s >= d.scale.
func (d decimal) at(s int32) *big.Int {
	if s == d.scale {
		return d.coef
	}
	m := new(big.Int).Exp(bigTen, big.NewInt(int64(s-d.scale)), nil)
	return m.Mul(m, d.coef)
}

func addDecimal(a, b decimal) decimal {
	s := max(a.scale, b.scale)
	return decimal{coef: new(big.Int).Add(a.at(s), b.at(s)), scale: s, isInt: a.isInt && b.isInt}
}

func subDecimal(a, b decimal) decimal {
	s := max(a.scale, b.scale)
	return decimal{coef: new(big.Int).Sub(a.at(s), b.at(s)), scale: s, isInt: a.isInt && b.isInt}
}

func (d decimal) neg() decimal {
	return decimal{coef: new(big.Int).Neg(d.coef), scale: d.scale, isInt: d.isInt}
}

// text is the canonical decimal text of d: no leading zeros, a point only
// when scale > 0, no sign on zero.
func (d decimal) text() string {
	s := new(big.Int).Abs(d.coef).String()
	if d.scale > 0 {
		if pad := int(d.scale) + 1 - len(s); pad > 0 {
			s = strings.Repeat("0", pad) + s
		}
		s = s[:len(s)-int(d.scale)] + "." + s[len(s)-int(d.scale):]
	}
	if d.coef.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// value returns d as an Int when it is one and fits, else as decimal text.
func (d decimal) value() Value {
	if d.isInt && d.coef.IsInt64() {
		return Int(d.coef.Int64())
	}
	return String(d.text())
}

// sumValue is the value of a non-negative sum, for an entry: an Int sum out
// of range is an ErrOverflow error.
func (d decimal) sumValue(field string) (Value, error) {
	if d.isInt && !d.coef.IsInt64() {
		return Value{}, errors.Mark(errors.Mark(errors.WithHint(
			errors.Newf("counter field %s: the sum of its changes leaves the int64 range", field),
			"use an exact decimal column (numeric) for values this large"), ErrOverflow), ErrPolicy)
	}
	return d.value(), nil
}

// SameNumber reports whether a and b are the same number as counter values
// (Ints, exact decimal text, null for zero), whatever the digits after the
// point: "12.5" and "12.50" are. Anything else is compared with Equal.
func SameNumber(a, b Value) bool {
	if Equal(a, b) {
		return true
	}
	x, errA := counterNumber("", a)
	y, errB := counterNumber("", b)
	if errA != nil || errB != nil {
		return false
	}
	return subDecimal(x, y).coef.Sign() == 0
}

// validSum reports whether v can be a P or N of an entry: a non-negative
// Int, or the canonical text of a non-negative decimal.
func validSum(v Value) bool {
	switch v.kind {
	case KindInt:
		return int64(v.num) >= 0
	case KindString:
		c, ok := ParseDecimal(v.str)
		return ok && c == v.str && !strings.HasPrefix(c, "-")
	}
	return false
}

// counterEntry returns the entry of replica in es, or nil.
func counterEntry(es []CounterEntry, replica ReplicaID) *CounterEntry {
	i, ok := slices.BinarySearchFunc(es, replica, func(e CounterEntry, r ReplicaID) int { return cmpUint(uint64(e.Stamp.Replica), uint64(r)) })
	if !ok {
		return nil
	}
	return &es[i]
}

// cmpCounterEntry orders two entries of one replica: by stamp, then (for
// malformed input, two entries under one stamp) by their sums.
func cmpCounterEntry(a, b *CounterEntry) int {
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c
	}
	if c := Compare(a.P, b.P); c != 0 {
		return c
	}
	return Compare(a.N, b.N)
}

func equalCounterEntry(a, b CounterEntry) bool {
	return a.Stamp == b.Stamp && Equal(a.P, b.P) && Equal(a.N, b.N)
}

// joinCounter joins two counters, entries sorted by replica: per replica the
// entry with the higher stamp, and none at or before reset (a re-insert
// that saw the delete at reset starts the counter from zero). Like
// joinRegister it returns an input unchanged, allocating nothing, when the
// result equals it.
func joinCounter(a, b []CounterEntry, reset Stamp) []CounterEntry {
	if len(a)+len(b) == 0 {
		return nil
	}
	var out []CounterEntry
	n := 0
	sameA, sameB := true, true
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var e *CounterEntry
		inA, inB := -1, -1
		switch {
		case j >= len(b) || (i < len(a) && a[i].Stamp.Replica < b[j].Stamp.Replica):
			e, inA = &a[i], i
			i++
		case i >= len(a) || b[j].Stamp.Replica < a[i].Stamp.Replica:
			e, inB = &b[j], j
			j++
		default:
			switch c := cmpCounterEntry(&a[i], &b[j]); {
			case c > 0:
				e, inA = &a[i], i
			case c < 0:
				e, inB = &b[j], j
			default:
				e, inA, inB = &a[i], i, j
			}
			i++
			j++
		}
		if e.Stamp.Compare(reset) <= 0 {
			continue
		}
		nowA, nowB := sameA && inA == n, sameB && inB == n
		if out == nil && !nowA && !nowB {
			out = make([]CounterEntry, 0, max(len(a), len(b)))
			if sameA {
				out = append(out, a[:n]...)
			} else {
				out = append(out, b[:n]...)
			}
		}
		sameA, sameB = nowA, nowB
		if out != nil {
			out = append(out, *e)
		}
		n++
	}
	switch {
	case n == 0:
		return nil
	case out != nil:
		return out
	case sameA:
		return a[:n:n]
	}
	return b[:n:n]
}

// counterNormal reports whether joinCounter would return es unchanged.
func counterNormal(es []CounterEntry, reset Stamp) bool {
	for i := range es {
		if es[i].Stamp.Compare(reset) <= 0 || (i > 0 && es[i-1].Stamp.Replica >= es[i].Stamp.Replica) {
			return false
		}
	}
	return true
}

// counterTotal returns the value of a counter: the sum of every P minus
// every N, an Int when every part is an Int and the total fits, else its
// decimal text (with as many digits after the point as the most precise
// part). A total of Ints that leaves the int64 range is shown as decimal
// text, which an integer column refuses: the apply fails loudly instead of
// writing a wrapped value. An empty counter is null.
func counterTotal(es []CounterEntry) Value {
	if len(es) == 0 {
		return Null()
	}
	var sum int64
	ints := true
	for i := range es {
		p, n := &es[i].P, &es[i].N
		if p.kind != KindInt || n.kind != KindInt {
			ints = false
			break
		}
		var ok bool
		if sum, ok = addInt64(sum, int64(p.num)); !ok {
			ints = false
			break
		}
		if sum, ok = addInt64(sum, -int64(n.num)); !ok {
			ints = false
			break
		}
	}
	if ints {
		return Int(sum)
	}
	total := decimal{coef: new(big.Int), isInt: true}
	for i := range es {
		// Entries were checked when decoded or built: parse errors
		// cannot happen, and a part that failed would count as zero.
		p, _ := counterNumber("", es[i].P)
		n, _ := counterNumber("", es[i].N)
		if p.coef == nil || n.coef == nil {
			continue
		}
		total = subDecimal(addDecimal(total, p), n)
	}
	return total.value()
}

// addInt64 adds without wrapping; ok is false on overflow. N is never
// negative, so -n cannot overflow.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}

// counterWrite returns replica's new entry after a change that moves the
// field by inc, starting from its entry own (nil: no entry, or one a
// re-insert resets). A zero inc keeps the sums and only restamps them,
// which makes the field visible with the value it has.
func counterWrite(field string, own *CounterEntry, inc decimal, o Stamp) (CounterEntry, error) {
	zero := Int(0)
	p, n := zero, zero
	if own != nil {
		p, n = own.P, own.N
	}
	pd, err := counterNumber(field, p)
	if err != nil {
		return CounterEntry{}, err
	}
	nd, err := counterNumber(field, n)
	if err != nil {
		return CounterEntry{}, err
	}
	if inc.coef.Sign() >= 0 {
		pd = addDecimal(pd, inc)
		nd.isInt = nd.isInt && inc.isInt
	} else {
		nd = addDecimal(nd, inc.neg())
		pd.isInt = pd.isInt && inc.isInt
	}
	if !pd.isInt || !nd.isInt {
		// A decimal change makes both sums decimal text, at the scale of
		// the change, so that the total keeps the column's digits.
		s := max(pd.scale, nd.scale, inc.scale)
		pd = decimal{coef: pd.at(s), scale: s}
		nd = decimal{coef: nd.at(s), scale: s}
	}
	e := CounterEntry{Stamp: o}
	if e.P, err = pd.sumValue(field); err != nil {
		return CounterEntry{}, err
	}
	if e.N, err = nd.sumValue(field); err != nil {
		return CounterEntry{}, err
	}
	return e, nil
}

// counterDiff returns the entry a change of a counter field from was to v
// makes, or ok false when it makes none: the increment v - was, owned by
// the writer. visible says the field shows a value now; a zero increment
// to a field without one still writes, so that the field shows v.
func counterDiff(field string, own *CounterEntry, was, v Value, visible bool, o Stamp) (e CounterEntry, ok bool, err error) {
	nv, err := counterNumber(field, v)
	if err != nil {
		return e, false, err
	}
	ow, err := counterNumber(field, was)
	if err != nil {
		return e, false, err
	}
	if was.IsNull() {
		ow.isInt = nv.isInt
	}
	if v.IsNull() {
		nv.isInt = ow.isInt
	}
	inc := subDecimal(nv, ow)
	if inc.coef.Sign() == 0 && (visible || v.IsNull()) {
		return e, false, nil
	}
	e, err = counterWrite(field, own, inc, o)
	return e, err == nil, err
}
