package crdttest

import (
	"math/big"
	"strings"

	"github.com/lattice-crdt/lattice/crdt"
)

// Counters, as the oracle sees them, are worked out from increments, not
// from crdt's per-replica sums: an observed row's counter field is an
// increment of (observed value - visible total) by the observing replica,
// and the visible total is the sum, over replicas, of each replica's
// increments since it last started from zero, counted while its latest
// known increment is after the record's reset. A replica starts from zero
// when it knows of no own increment after the reset it knows (its first
// increment, or a re-insert after a delete).
//
// Numbers are exact: integers stay integers (the total is an Int while
// every increment counted is one), decimals keep the most digits after the
// point of any increment counted.

// CounterInc is an increment of a counter field by one operation.
type CounterInc struct {
	Field string
	// Inc is the increment: an Int, or exact decimal text.
	Inc crdt.Value
	// Restart says the replica started the field from zero.
	Restart bool
}

// number is an exact decimal with the digits it carries after the point.
type number struct {
	r     *big.Rat
	scale int
	isInt bool
}

// numberOf reads an Int, exact decimal text or null (zero); ok is false for
// anything else.
func numberOf(v crdt.Value) (number, bool) {
	switch v.Kind() {
	case crdt.KindNull:
		return number{r: new(big.Rat), isInt: true}, true
	case crdt.KindInt:
		return number{r: new(big.Rat).SetInt64(v.AsInt()), isInt: true}, true
	case crdt.KindString:
		s := v.AsString()
		mant, _, _ := strings.Cut(strings.ToLower(s), "e")
		if strings.Contains(strings.ToLower(s), "e") || strings.HasSuffix(mant, ".") || strings.HasPrefix(strings.TrimLeft(mant, "+-"), ".") {
			return number{}, false
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok {
			return number{}, false
		}
		_, frac, _ := strings.Cut(s, ".")
		return number{r: r, scale: len(frac)}, true
	}
	return number{}, false
}

func (n number) add(m number) number {
	return number{r: new(big.Rat).Add(n.r, m.r), scale: max(n.scale, m.scale), isInt: n.isInt && m.isInt}
}

func (n number) value() crdt.Value {
	if n.isInt && n.r.IsInt() && n.r.Num().IsInt64() {
		return crdt.Int(n.r.Num().Int64())
	}
	s := n.r.FloatString(n.scale)
	if strings.HasPrefix(s, "-") && strings.Trim(s, "-0.") == "" {
		s = s[1:]
	}
	return crdt.String(s)
}

// counterInc is the increment that observing v makes to counter field f
// whose visible total is was (null when it shows nothing); ok is false when
// it makes none (no change to a field that shows a value, or null to one
// that shows none). A null observed value counts as zero.
func counterInc(was, v crdt.Value) (crdt.Value, bool) {
	a, okA := numberOf(was)
	b, okB := numberOf(v)
	if !okA || !okB {
		return crdt.Value{}, false
	}
	if was.IsNull() {
		a.isInt = b.isInt
	}
	if v.IsNull() {
		b.isInt = a.isInt
	}
	inc := b.add(number{r: new(big.Rat).Neg(a.r), scale: a.scale, isInt: a.isInt})
	if inc.r.Sign() == 0 && (!was.IsNull() || v.IsNull()) {
		return crdt.Value{}, false
	}
	if inc.isInt {
		return crdt.Int(inc.r.Num().Int64()), true
	}
	return inc.value(), true
}

// counterTotals computes the visible counter fields of a record after reset
// R, by the rule above, from the record's operations in history order and
// the ones known. A replica's latest known increment carries every earlier
// one of its own, known or not: crdt sends its whole sums.
func counterTotals(ops []*Op, known func(id int) bool, reset crdt.Stamp) map[string]crdt.Value {
	type key struct {
		field   string
		replica int
	}
	last := map[key]int{} // index in ops of the latest known increment
	var order []key
	for i, op := range ops {
		if op.Delete || !known(op.ID) {
			continue
		}
		for _, inc := range op.Incs {
			k := key{inc.Field, op.Replica}
			if _, seen := last[k]; !seen {
				order = append(order, k)
			}
			last[k] = i
		}
	}
	totals := map[string]number{}
	for _, k := range order {
		end := last[k]
		if !reset.Less(ops[end].Stamp) {
			continue
		}
		sum := number{r: new(big.Rat), isInt: true}
		for _, op := range ops[:end+1] {
			if op.Replica != k.replica || op.Delete {
				continue
			}
			for _, inc := range op.Incs {
				if inc.Field != k.field {
					continue
				}
				if inc.Restart {
					sum = number{r: new(big.Rat), isInt: true}
				}
				n, _ := numberOf(inc.Inc)
				sum = sum.add(n)
			}
		}
		if t, ok := totals[k.field]; ok {
			totals[k.field] = t.add(sum)
		} else {
			totals[k.field] = sum
		}
	}
	out := map[string]crdt.Value{}
	for f, t := range totals {
		out[f] = t.value()
	}
	return out
}
