package crdttest

import (
	"slices"

	"github.com/lattice-crdt/lattice/crdt"
)

// The oracle computes what a record must look like from the raw history of
// operations, without Join: each operation is kept as what it did (register
// writes, set adds and removes with the adds they observed, a delete), and
// the visible state of a record for a set of known operations follows the
// rules of DESIGN.md directly:
//
//   - D is the highest delete stamp among the known deletes;
//   - R is the highest reset among the known operations, where an
//     operation's reset is the delete its replica knew of when it wrote to
//     the record while the record did not exist there (a re-insert);
//   - the record exists iff some known write (any other operation) has a
//     stamp after D;
//   - a register shows the best known write after R under its policy
//     (lww: highest stamp; prefer: source rank, then stamp; max/min: value,
//     then stamp, null never winning), so an update that wins over a
//     concurrent delete brings back the fields from before the delete, and
//     a re-insert starts clean;
//   - a set holds an element iff some known add of it after R was observed
//     by no known operation on that element (add-wins: a remove, or a
//     re-add, removes only the adds it observed);
//   - a counter shows the sum of the increments counted by the rule in
//     counter.go.

// Op is one operation in the history, as the oracle sees it.
type Op struct {
	ID      int
	Replica int
	Stamp   crdt.Stamp
	Source  string
	Record  crdt.ID
	Delete  bool
	// Reset is the delete the writer knew of when the record did not exist
	// for it (a re-insert); zero otherwise.
	Reset  crdt.Stamp
	Writes []RegWrite
	Sets   []SetEvent
	Incs   []CounterInc
}

// RegWrite is a register write of one field.
type RegWrite struct {
	Field string
	Value crdt.Value
}

// SetEvent is an add or remove of one element of an OR-set field. Observed
// lists the IDs of the operations whose adds of the element were live where
// the event happened: a remove removes them, a re-add supersedes them.
type SetEvent struct {
	Field    string
	Elem     crdt.Value
	Add      bool
	Observed []int
}

// oracleView is the visible state of a record for a set of known operations.
type oracleView struct {
	exists bool
	del    crdt.Stamp            // the highest known delete
	regs   map[string]crdt.Write // best write per register field
	sets   map[string]map[string]*liveElem
	ctrs   map[string]crdt.Value // counter totals
	reset  crdt.Stamp            // the highest known reset
	// ctrLast holds, per counter field and replica, the stamp of its
	// latest known increment.
	ctrLast map[string]map[crdt.ReplicaID]crdt.Stamp
}

// liveElem is an element present in a set and the adds keeping it there.
type liveElem struct {
	value crdt.Value
	adds  []int
}

func elemKey(v crdt.Value) string { return string(v.AppendCanonical(nil)) }

// Beats reports whether register write a wins over write b under policy p.
// It is the policy table of DESIGN.md written out on its own, not crdt's
// order, so that tests can check crdt against it: prefer ranks sources
// (unlisted last), max and min compare values (null never wins), and every
// policy falls back to the stamp.
func Beats(p *crdt.Policy, a, b crdt.Write) bool {
	switch p.Kind {
	case crdt.Prefer:
		rank := func(s string) int {
			if i := slices.Index(p.Prefer, s); i >= 0 {
				return len(p.Prefer) - i
			}
			return 0
		}
		if ra, rb := rank(a.Source), rank(b.Source); ra != rb {
			return ra > rb
		}
	case crdt.Max, crdt.Min:
		an, bn := a.Value.IsNull(), b.Value.IsNull()
		switch {
		case an && !bn:
			return false
		case bn && !an:
			return true
		}
		if c := crdt.Compare(a.Value, b.Value); c != 0 {
			return (c > 0) == (p.Kind == crdt.Max)
		}
	}
	return b.Stamp.Less(a.Stamp)
}

// view computes the visible state of a record from the operations on it
// that known accepts.
func view(c *crdt.Collection, ops []*Op, known func(id int) bool) *oracleView {
	var del, reset crdt.Stamp
	for _, op := range ops {
		if !known(op.ID) {
			continue
		}
		if op.Delete && del.Less(op.Stamp) {
			del = op.Stamp
		}
		if reset.Less(op.Reset) {
			reset = op.Reset
		}
	}
	v := &oracleView{del: del, reset: reset, regs: map[string]crdt.Write{}, sets: map[string]map[string]*liveElem{},
		ctrLast: map[string]map[crdt.ReplicaID]crdt.Stamp{}}
	for _, op := range ops {
		if !op.Delete && known(op.ID) && del.Less(op.Stamp) {
			v.exists = true
		}
		if op.Delete || !known(op.ID) {
			continue
		}
		for _, inc := range op.Incs {
			if v.ctrLast[inc.Field] == nil {
				v.ctrLast[inc.Field] = map[crdt.ReplicaID]crdt.Stamp{}
			}
			if last := v.ctrLast[inc.Field][op.Stamp.Replica]; last.Less(op.Stamp) {
				v.ctrLast[inc.Field][op.Stamp.Replica] = op.Stamp
			}
		}
	}
	if !v.exists {
		return v
	}
	v.ctrs = counterTotals(ops, known, reset)
	// killed[field][elem] holds the adds observed by a known event.
	killed := map[string]map[string]map[int]bool{}
	for _, op := range ops {
		if op.Delete || !known(op.ID) {
			continue
		}
		for _, e := range op.Sets {
			for _, o := range e.Observed {
				if killed[e.Field] == nil {
					killed[e.Field] = map[string]map[int]bool{}
				}
				k := elemKey(e.Elem)
				if killed[e.Field][k] == nil {
					killed[e.Field][k] = map[int]bool{}
				}
				killed[e.Field][k][o] = true
			}
		}
	}
	for _, op := range ops {
		if op.Delete || !known(op.ID) || !reset.Less(op.Stamp) {
			continue
		}
		for _, w := range op.Writes {
			nw := crdt.Write{Value: w.Value, Stamp: op.Stamp, Source: op.Source}
			if c.Policy(w.Field).Kind != crdt.Prefer {
				nw.Source = ""
			}
			if cur, ok := v.regs[w.Field]; !ok || Beats(c.Policy(w.Field), nw, cur) {
				v.regs[w.Field] = nw
			}
		}
		for _, e := range op.Sets {
			k := elemKey(e.Elem)
			if !e.Add || killed[e.Field][k][op.ID] {
				continue
			}
			if v.sets[e.Field] == nil {
				v.sets[e.Field] = map[string]*liveElem{}
			}
			le := v.sets[e.Field][k]
			if le == nil {
				le = &liveElem{value: e.Elem}
				v.sets[e.Field][k] = le
			}
			le.adds = append(le.adds, op.ID)
		}
	}
	return v
}

// row returns the view as crdt.Record.View shows it: nil when the record
// does not exist, null registers and empty sets left out, sets as sorted
// lists.
func (v *oracleView) row(c *crdt.Collection) crdt.Row {
	if !v.exists {
		return nil
	}
	row := crdt.Row{}
	for f, w := range v.regs {
		if !c.Policy(f).IsRegister() || w.Value.IsNull() {
			continue
		}
		row[f] = w.Value
	}
	for f, t := range v.ctrs {
		if c.Policy(f).Kind == crdt.Counter {
			row[f] = t
		}
	}
	for f, elems := range v.sets {
		if c.Policy(f).Kind != crdt.ORSet || len(elems) == 0 {
			continue
		}
		vals := make([]crdt.Value, 0, len(elems))
		for _, e := range elems {
			vals = append(vals, e.value)
		}
		s, err := crdt.SetOf(vals...)
		if err != nil {
			panic(err) // elements are scalars by construction
		}
		row[f] = s
	}
	return row
}

// visible returns the visible write of a register field, null ones included.
func (v *oracleView) visible(f string) (crdt.Write, bool) {
	if !v.exists {
		return crdt.Write{}, false
	}
	w, ok := v.regs[f]
	return w, ok
}

// live returns the adds that keep elem in set field f, sorted.
func (v *oracleView) live(f string, elem crdt.Value) []int {
	if le := v.sets[f][elemKey(elem)]; le != nil {
		return slices.Sorted(slices.Values(le.adds))
	}
	return nil
}

// elems returns the elements of set field f, sorted.
func (v *oracleView) elems(f string) []crdt.Value {
	out := make([]crdt.Value, 0, len(v.sets[f]))
	for _, e := range v.sets[f] {
		out = append(out, e.value)
	}
	slices.SortFunc(out, crdt.Compare)
	return out
}
