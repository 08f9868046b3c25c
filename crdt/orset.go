package crdt

import "slices"

// Dot identifies one add to an OR-set: the replica that made it and that
// replica's counter for the field. A replica issues counters 1, 2, 3, ... for
// each field, so a replica's dots are contiguous and compact into a version
// vector.
type Dot struct {
	Replica ReplicaID
	Counter uint64
}

func cmpDot(a, b Dot) int {
	switch {
	case a.Replica < b.Replica:
		return -1
	case a.Replica > b.Replica:
		return 1
	}
	return cmpUint(a.Counter, b.Counter)
}

// CausalContext is the set of dots a state has seen (Almeida et al. 2018),
// kept compact: VV holds, per replica, the highest counter n such that dots
// 1..n are all in the set; Cloud holds the other dots. Both are sorted by
// replica (and counter), VV has no zero counters and no Cloud dot is covered
// by VV or next to its end.
type CausalContext struct {
	VV    []Dot
	Cloud []Dot
}

// Contains reports whether d is in the context.
func (c *CausalContext) Contains(d Dot) bool {
	if i, ok := slices.BinarySearchFunc(c.VV, d.Replica, func(e Dot, r ReplicaID) int { return cmpUint(uint64(e.Replica), uint64(r)) }); ok && d.Counter <= c.VV[i].Counter {
		return true
	}
	_, ok := slices.BinarySearchFunc(c.Cloud, d, cmpDot)
	return ok
}

// Max returns the highest counter of replica r in the context.
func (c *CausalContext) Max(r ReplicaID) uint64 {
	var m uint64
	if i, ok := slices.BinarySearchFunc(c.VV, r, func(e Dot, r ReplicaID) int { return cmpUint(uint64(e.Replica), uint64(r)) }); ok {
		m = c.VV[i].Counter
	}
	for _, d := range c.Cloud {
		if d.Replica == r && d.Counter > m {
			m = d.Counter
		}
	}
	return m
}

// IsEmpty reports whether the context holds no dot.
func (c *CausalContext) IsEmpty() bool { return len(c.VV) == 0 && len(c.Cloud) == 0 }

func (c CausalContext) join(o CausalContext) CausalContext {
	if o.IsEmpty() {
		return c
	}
	if c.IsEmpty() {
		return o
	}
	// Usually one side has seen everything the other has: no allocation.
	if c.covers(&o) && c.compact() {
		return c
	}
	if o.covers(&c) && o.compact() {
		return o
	}
	vv := make([]Dot, 0, max(len(c.VV), len(o.VV)))
	i, j := 0, 0
	for i < len(c.VV) || j < len(o.VV) {
		switch {
		case j >= len(o.VV) || (i < len(c.VV) && c.VV[i].Replica < o.VV[j].Replica):
			vv = append(vv, c.VV[i])
			i++
		case i >= len(c.VV) || o.VV[j].Replica < c.VV[i].Replica:
			vv = append(vv, o.VV[j])
			j++
		default:
			vv = append(vv, Dot{c.VV[i].Replica, max(c.VV[i].Counter, o.VV[j].Counter)})
			i++
			j++
		}
	}
	return compactContext(vv, unionDots(c.Cloud, o.Cloud))
}

// covers reports whether every dot of o is in c, judging o's version
// vector by c's alone (exact when c is compact).
func (c *CausalContext) covers(o *CausalContext) bool {
	k := 0
	for _, d := range o.VV {
		for k < len(c.VV) && c.VV[k].Replica < d.Replica {
			k++
		}
		if k == len(c.VV) || c.VV[k].Replica != d.Replica || c.VV[k].Counter < d.Counter {
			return false
		}
	}
	for _, d := range o.Cloud {
		if !c.Contains(d) {
			return false
		}
	}
	return true
}

// compact reports whether c is in the form compactContext produces, so that
// it can stand for a join result as it is.
func (c *CausalContext) compact() bool {
	for i, d := range c.VV {
		if d.Counter == 0 || (i > 0 && c.VV[i-1].Replica >= d.Replica) {
			return false
		}
	}
	for i, d := range c.Cloud {
		if i > 0 && cmpDot(c.Cloud[i-1], d) >= 0 {
			return false
		}
		k, ok := slices.BinarySearchFunc(c.VV, d.Replica, func(e Dot, r ReplicaID) int { return cmpUint(uint64(e.Replica), uint64(r)) })
		var top uint64
		if ok {
			top = c.VV[k].Counter
		}
		if d.Counter <= top+1 {
			return false
		}
	}
	return true
}

func unionDots(a, b []Dot) []Dot {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]Dot, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b):
			out = append(out, a[i])
			i++
		case i >= len(a):
			out = append(out, b[j])
			j++
		default:
			switch c := cmpDot(a[i], b[j]); {
			case c < 0:
				out = append(out, a[i])
				i++
			case c > 0:
				out = append(out, b[j])
				j++
			default:
				out = append(out, a[i])
				i++
				j++
			}
		}
	}
	return out
}

// compactContext folds cloud dots that extend or are covered by the version
// vector into it. vv and cloud must be sorted; vv may be modified in place.
func compactContext(vv, cloud []Dot) CausalContext {
	if len(cloud) == 0 {
		return CausalContext{VV: vv}
	}
	outVV := make([]Dot, 0, len(vv)+1)
	var outCloud []Dot
	i, k := 0, 0
	for k < len(cloud) {
		r := cloud[k].Replica
		for i < len(vv) && vv[i].Replica < r {
			outVV = append(outVV, vv[i])
			i++
		}
		var cur uint64
		if i < len(vv) && vv[i].Replica == r {
			cur = vv[i].Counter
			i++
		}
		for ; k < len(cloud) && cloud[k].Replica == r; k++ {
			switch n := cloud[k].Counter; {
			case n <= cur:
			case n == cur+1:
				cur = n
			default:
				outCloud = append(outCloud, cloud[k])
			}
		}
		if cur > 0 {
			outVV = append(outVV, Dot{r, cur})
		}
	}
	outVV = append(outVV, vv[i:]...)
	if len(outVV) == 0 {
		outVV = nil
	}
	return CausalContext{VV: outVV, Cloud: outCloud}
}

// contextOf builds a compact context from dots in any order.
func contextOf(dots []Dot) CausalContext {
	dots = slices.Clone(dots)
	slices.SortFunc(dots, cmpDot)
	dots = slices.Compact(dots)
	return compactContext(nil, dots)
}

// Entry is one live add of an element: its dot (the replica of Stamp and
// Counter) and the stamp of the write that made it, which the record's delete
// rule compares against.
type Entry struct {
	Counter uint64
	Stamp   Stamp
}

// Dot returns the entry's dot.
func (e Entry) Dot() Dot { return Dot{Replica: e.Stamp.Replica, Counter: e.Counter} }

func cmpEntry(a, b Entry) int { return cmpDot(a.Dot(), b.Dot()) }

// Elem is one element of an OR-set with its live adds, sorted by dot.
type Elem struct {
	Value   Value
	Entries []Entry
}

// ORSetState is an add-wins observed-remove set of scalars in the δ-CRDT form
// of Almeida et al. (2018), after Bieniusa et al. (2012): each element keeps
// the dots of the adds no replica has removed, and the causal context keeps
// every dot the state has seen. An element is present while it has a dot; a
// remove deletes only the dots it observed, so a concurrent add wins.
// Elements are sorted by Compare.
type ORSetState struct {
	Elems []Elem
	Ctx   CausalContext
}

func (s *ORSetState) isEmpty() bool { return s == nil || (len(s.Elems) == 0 && s.Ctx.IsEmpty()) }

// find returns the element holding v, or nil.
func (s *ORSetState) find(v Value) *Elem {
	if s == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(s.Elems, v, func(e Elem, v Value) int { return Compare(e.Value, v) })
	if !ok {
		return nil
	}
	return &s.Elems[i]
}

// emptySet stands in for a nil OR-set in joins; it is never modified.
var emptySet ORSetState

// joinORSet joins two OR-sets (either may be nil) and drops the adds a delete
// at deleted hides. Dropping an add keeps its dot in the context, so the join
// stays a lattice join: the filter removes the same dots whichever order
// states arrive in. When the result equals an input, that input is returned.
func joinORSet(a, b *ORSetState, deleted Stamp) *ORSetState {
	if a.isEmpty() && b.isEmpty() {
		return nil
	}
	if a == nil {
		a = &emptySet
	}
	if b == nil {
		b = &emptySet
	}
	ctx := a.Ctx.join(b.Ctx)
	sameA := sameContext(ctx, a.Ctx) && a != &emptySet
	sameB := sameContext(ctx, b.Ctx) && b != &emptySet
	// As in joinRegister, elements are copied only once the result departs
	// from both inputs; sameA (sameB) holds while the result's elements are
	// a prefix of a's (b's).
	var elems []Elem
	n := 0
	i, j := 0, 0
	for i < len(a.Elems) || j < len(b.Elems) {
		var el Elem
		inA, inB := -1, -1
		switch {
		case j >= len(b.Elems) || (i < len(a.Elems) && Compare(a.Elems[i].Value, b.Elems[j].Value) < 0):
			el.Value = a.Elems[i].Value
			el.Entries = joinEntries(a.Elems[i].Entries, nil, &b.Ctx, &a.Ctx, deleted)
			if sameEntries(el.Entries, a.Elems[i].Entries) {
				inA = i
			}
			i++
		case i >= len(a.Elems) || Compare(b.Elems[j].Value, a.Elems[i].Value) < 0:
			el.Value = b.Elems[j].Value
			el.Entries = joinEntries(nil, b.Elems[j].Entries, &b.Ctx, &a.Ctx, deleted)
			if sameEntries(el.Entries, b.Elems[j].Entries) {
				inB = j
			}
			j++
		default:
			el.Value = a.Elems[i].Value
			el.Entries = joinEntries(a.Elems[i].Entries, b.Elems[j].Entries, &b.Ctx, &a.Ctx, deleted)
			if sameEntries(el.Entries, a.Elems[i].Entries) {
				inA = i
			}
			if sameEntries(el.Entries, b.Elems[j].Entries) {
				el.Value = b.Elems[j].Value
				inB = j
			}
			i++
			j++
		}
		if len(el.Entries) == 0 {
			continue
		}
		nowA, nowB := sameA && inA == n, sameB && inB == n
		if elems == nil && !nowA && !nowB {
			elems = make([]Elem, 0, max(len(a.Elems), len(b.Elems)))
			if sameA {
				elems = append(elems, a.Elems[:n]...)
			} else if sameB {
				elems = append(elems, b.Elems[:n]...)
			}
		}
		sameA, sameB = nowA, nowB
		if elems != nil {
			elems = append(elems, el)
		}
		n++
	}
	switch {
	case sameA && n == len(a.Elems):
		return a
	case sameB && n == len(b.Elems):
		return b
	case elems == nil && n > 0:
		// The elements are a prefix of one side, the context is new.
		if sameA {
			elems = a.Elems[:n:n]
		} else {
			elems = b.Elems[:n:n]
		}
	}
	out := &ORSetState{Elems: elems, Ctx: ctx}
	if out.isEmpty() {
		return nil
	}
	return out
}

func sameContext(x, y CausalContext) bool {
	return sameSlice(x.VV, y.VV) && sameSlice(x.Cloud, y.Cloud)
}

func sameEntries(x, y []Entry) bool { return sameSlice(x, y) }

// sameSlice reports whether x and y are the same slice: same length, same
// backing array.
func sameSlice[T any](x, y []T) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

// joinEntries keeps a dot that both sides hold, or that one side holds and
// the other has not seen (Almeida et al., Fig. 3, AWORSet join). When the
// result equals an input, that input is returned.
func joinEntries(ea, eb []Entry, ctxB, ctxA *CausalContext, deleted Stamp) []Entry {
	var out []Entry
	n := 0
	sameA, sameB := true, true
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		var e Entry
		inA, inB := -1, -1
		switch {
		case j >= len(eb) || (i < len(ea) && cmpEntry(ea[i], eb[j]) < 0):
			e = ea[i]
			i++
			if ctxB.Contains(e.Dot()) {
				continue
			}
			inA = i - 1
		case i >= len(ea) || cmpEntry(eb[j], ea[i]) < 0:
			e = eb[j]
			j++
			if ctxA.Contains(e.Dot()) {
				continue
			}
			inB = j - 1
		default:
			e = ea[i]
			if e.Stamp.Less(eb[j].Stamp) {
				e = eb[j]
			}
			if e == ea[i] {
				inA = i
			}
			if e == eb[j] {
				inB = j
			}
			i++
			j++
		}
		if e.Stamp.Compare(deleted) <= 0 {
			continue
		}
		nowA, nowB := sameA && inA == n, sameB && inB == n
		if out == nil && !nowA && !nowB {
			out = make([]Entry, 0, len(ea)+len(eb))
			if sameA {
				out = append(out, ea[:n]...)
			} else if sameB {
				out = append(out, eb[:n]...)
			}
		}
		sameA, sameB = nowA, nowB
		if out != nil {
			out = append(out, e)
		}
		n++
	}
	switch {
	case out != nil || n == 0:
		return out
	case sameA:
		return ea[:n:n]
	}
	return eb[:n:n]
}

// values returns the elements present, in order.
func (s *ORSetState) values() []Value {
	if s == nil {
		return nil
	}
	out := make([]Value, 0, len(s.Elems))
	for _, e := range s.Elems {
		out = append(out, e.Value)
	}
	return out
}

// latest returns the highest stamp among the live adds.
func (s *ORSetState) latest() Stamp {
	var m Stamp
	if s == nil {
		return m
	}
	for _, e := range s.Elems {
		for _, en := range e.Entries {
			m = maxStamp(m, en.Stamp)
		}
	}
	return m
}

// addDelta returns the delta that adds each of vs with a fresh dot of the
// origin's replica. The delta's context also holds the element's current
// dots, which the new add supersedes. When the replica's counter would pass
// MaxCounter it returns an ErrTooLarge error: a counter that wrapped would
// reissue dots that every replica has already seen, and the adds would be
// invisible for good.
func (s *ORSetState) addDelta(vs []Value, o Stamp) (*ORSetState, error) {
	if len(vs) == 0 {
		return nil, nil
	}
	vs = slices.Clone(vs)
	slices.SortFunc(vs, Compare)
	vs = slices.CompactFunc(vs, Equal)
	next := uint64(0)
	if s != nil {
		next = s.Ctx.Max(o.Replica)
	}
	if next > MaxCounter || uint64(len(vs)) > MaxCounter-next {
		return nil, counterTooLarge(max(next, MaxCounter+1))
	}
	d := &ORSetState{Elems: make([]Elem, 0, len(vs))}
	var dots []Dot
	for _, v := range vs {
		next++
		e := Entry{Counter: next, Stamp: o}
		d.Elems = append(d.Elems, Elem{Value: v, Entries: []Entry{e}})
		dots = append(dots, e.Dot())
		if old := s.find(v); old != nil {
			for _, oe := range old.Entries {
				dots = append(dots, oe.Dot())
			}
		}
	}
	d.Ctx = contextOf(dots)
	return d, nil
}

// removeDelta returns the delta that removes each of vs: a context holding
// the dots of the adds observed here, and no elements.
func (s *ORSetState) removeDelta(vs []Value) *ORSetState {
	var dots []Dot
	for _, v := range vs {
		if old := s.find(v); old != nil {
			for _, oe := range old.Entries {
				dots = append(dots, oe.Dot())
			}
		}
	}
	if len(dots) == 0 {
		return nil
	}
	return &ORSetState{Ctx: contextOf(dots)}
}
