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

// joinORSet joins two OR-sets (either may be nil) and drops the adds a delete
// at deleted hides. Dropping an add keeps its dot in the context, so the join
// stays a lattice join: the filter removes the same dots whichever order
// states arrive in.
func joinORSet(a, b *ORSetState, deleted Stamp) *ORSetState {
	if a.isEmpty() && b.isEmpty() {
		return nil
	}
	if a == nil {
		a = &ORSetState{}
	}
	if b == nil {
		b = &ORSetState{}
	}
	out := &ORSetState{Ctx: a.Ctx.join(b.Ctx)}
	i, j := 0, 0
	for i < len(a.Elems) || j < len(b.Elems) {
		var entries []Entry
		var v Value
		switch {
		case j >= len(b.Elems) || (i < len(a.Elems) && Compare(a.Elems[i].Value, b.Elems[j].Value) < 0):
			v = a.Elems[i].Value
			entries = joinEntries(a.Elems[i].Entries, nil, &b.Ctx, &a.Ctx, deleted)
			i++
		case i >= len(a.Elems) || Compare(b.Elems[j].Value, a.Elems[i].Value) < 0:
			v = b.Elems[j].Value
			entries = joinEntries(nil, b.Elems[j].Entries, &b.Ctx, &a.Ctx, deleted)
			j++
		default:
			v = a.Elems[i].Value
			entries = joinEntries(a.Elems[i].Entries, b.Elems[j].Entries, &b.Ctx, &a.Ctx, deleted)
			i++
			j++
		}
		if len(entries) > 0 {
			out.Elems = append(out.Elems, Elem{Value: v, Entries: entries})
		}
	}
	if out.isEmpty() {
		return nil
	}
	return out
}

// joinEntries keeps a dot that both sides hold, or that one side holds and
// the other has not seen (Almeida et al., Fig. 3, AWORSet join).
func joinEntries(ea, eb []Entry, ctxB, ctxA *CausalContext, deleted Stamp) []Entry {
	var out []Entry
	keep := func(e Entry) {
		if e.Stamp.Compare(deleted) > 0 {
			out = append(out, e)
		}
	}
	i, j := 0, 0
	for i < len(ea) || j < len(eb) {
		switch {
		case j >= len(eb) || (i < len(ea) && cmpEntry(ea[i], eb[j]) < 0):
			if !ctxB.Contains(ea[i].Dot()) {
				keep(ea[i])
			}
			i++
		case i >= len(ea) || cmpEntry(eb[j], ea[i]) < 0:
			if !ctxA.Contains(eb[j].Dot()) {
				keep(eb[j])
			}
			j++
		default:
			e := ea[i]
			if e.Stamp.Less(eb[j].Stamp) {
				e = eb[j]
			}
			keep(e)
			i++
			j++
		}
	}
	return out
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
// dots, which the new add supersedes.
func (s *ORSetState) addDelta(vs []Value, o Stamp) *ORSetState {
	if len(vs) == 0 {
		return nil
	}
	vs = slices.Clone(vs)
	slices.SortFunc(vs, Compare)
	vs = slices.CompactFunc(vs, Equal)
	next := uint64(0)
	if s != nil {
		next = s.Ctx.Max(o.Replica)
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
	return d
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
