package crdt

import "strings"

// Write is one write to a register field (every policy but ORSet).
type Write struct {
	Stamp Stamp
	Value Value
	// Source is the node that made the write; kept only for Prefer fields.
	Source string
	// Prev is the newest stamp of the field its writer knew when it wrote:
	// its newest write of the field, or the record's delete if newer. A
	// write whose stamp is above Prev was certainly not seen by this
	// write's writer, which is how a merge tells a conflict from a causal
	// overwrite (see Conflicts). Zero for writes made before Prev existed
	// and for the first write of a field.
	Prev Stamp
}

// cmpWrites is the policy's total order on writes: the visible write of a
// register is its greatest write. Every policy breaks ties by stamp, then by
// value and source, so the order is total even for malformed input (two
// different writes under one stamp).
func (p *Policy) cmpWrites(a, b *Write) int {
	switch p.Kind {
	case Prefer:
		if c := cmpInt(int64(p.rank(a.Source)), int64(p.rank(b.Source))); c != 0 {
			return c
		}
	case Max:
		if c := Compare(a.Value, b.Value); c != 0 {
			return c
		}
	case Min:
		if c := cmpMin(a.Value, b.Value); c != 0 {
			return c
		}
	}
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c
	}
	if c := Compare(a.Value, b.Value); c != 0 {
		return c
	}
	if c := strings.Compare(a.Source, b.Source); c != 0 {
		return c
	}
	return a.Prev.Compare(b.Prev)
}

// cmpMin orders values so that the smaller one is greater, null least.
func cmpMin(a, b Value) int {
	switch {
	case a.IsNull() && b.IsNull():
		return 0
	case a.IsNull():
		return -1
	case b.IsNull():
		return 1
	}
	return -Compare(a, b)
}

// before reports whether a comes before b in register order: stamps
// descending, then policy order descending.
func (p *Policy) before(a, b *Write) bool {
	if c := a.Stamp.Compare(b.Stamp); c != 0 {
		return c > 0
	}
	return p.cmpWrites(a, b) > 0
}

// joinRegister joins two registers and drops the writes a delete at deleted
// hides.
//
// A register is the set of its writes that can still become visible: write w
// is dropped when another write v has a stamp >= w's and is greater in the
// policy order, because whatever delete hides v also hides w, and while v is
// visible it beats w. What remains is a Pareto frontier, kept with stamps
// descending and policy order ascending; its last write is the visible one.
// For LWW the frontier is the single newest write. Dropping dominated writes
// commutes with union and with the delete filter, so join is a lattice join.
// Both inputs must be in register order.
func joinRegister(p *Policy, a, b []Write, deleted Stamp) []Write {
	if len(a)+len(b) == 0 {
		return nil
	}
	// The result is usually one of the inputs (a delta already merged, a
	// state older than the other): it is returned as is, and a new slice is
	// made only once the result departs from both. sameA (sameB) holds while
	// the kept writes are a prefix of a (b).
	var out []Write
	n := 0
	sameA, sameB := true, true
	var best *Write
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var w *Write
		inA, inB := -1, -1 // where w is, in a and b
		switch {
		case j >= len(b) || (i < len(a) && p.before(&a[i], &b[j])):
			w, inA = &a[i], i
			i++
		case i >= len(a) || p.before(&b[j], &a[i]):
			w, inB = &b[j], j
			j++
		default:
			// Not ordered either way: the same write in both, unless the
			// input is malformed (two writes under one stamp).
			w, inB = &b[j], j
			if equalWrite(a[i], b[j]) {
				inA = i
				i++
			}
			j++
		}
		if w.Stamp.Compare(deleted) <= 0 {
			break
		}
		if best != nil && p.cmpWrites(w, best) <= 0 {
			continue
		}
		nowA, nowB := sameA && inA == n, sameB && inB == n
		if out == nil && !nowA && !nowB {
			out = make([]Write, 0, min(len(a)+len(b), max(n+1, 4)))
			if sameA {
				out = append(out, a[:n]...)
			} else {
				out = append(out, b[:n]...)
			}
		}
		sameA, sameB = nowA, nowB
		if out != nil {
			out = append(out, *w)
			best = &out[len(out)-1]
		} else {
			best = w
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

// registerVisible returns the visible write of a normalized register.
func registerVisible(ws []Write) *Write {
	if len(ws) == 0 {
		return nil
	}
	return &ws[len(ws)-1]
}
