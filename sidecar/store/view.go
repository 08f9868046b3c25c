package store

import (
	"slices"

	"github.com/lattice-crdt/lattice/crdt"
)

// sameView reports whether records a and b look the same to a system: both
// absent, or both present with equal visible fields. It is View(a) ==
// View(b) without building the rows.
func sameView(c *crdt.Collection, a, b *crdt.Record) bool {
	ea, eb := a.Exists(), b.Exists()
	if ea != eb {
		return false
	}
	if !ea {
		return true
	}
	i, j := 0, 0
	for i < len(a.Fields) || j < len(b.Fields) {
		var name string
		switch {
		case j >= len(b.Fields) || (i < len(a.Fields) && a.Fields[i].Name < b.Fields[j].Name):
			name = a.Fields[i].Name
			i++
		case i >= len(a.Fields) || b.Fields[j].Name < a.Fields[i].Name:
			name = b.Fields[j].Name
			j++
		default:
			name = a.Fields[i].Name
			i++
			j++
		}
		va, _, _ := a.Get(c, name)
		vb, _, _ := b.Get(c, name)
		if !crdt.Equal(va, vb) {
			return false
		}
	}
	return true
}

// systemValue is how a value observed in a system compares with a merged
// one: OR-set lists in set order, empty lists as null for registers.
func systemValue(p *crdt.Policy, v crdt.Value) crdt.Value {
	if v.Kind() != crdt.KindList {
		return v
	}
	l := v.AsList()
	if len(l) == 0 {
		return crdt.Null()
	}
	if p.Kind == crdt.ORSet {
		set, err := crdt.SetOf(l...)
		if err != nil {
			return v
		}
		return set
	}
	return v
}

// matchesSystem reports whether the merged record r is what the system holds
// after the captured change ch: the merged view equals the captured row on
// every field the row names, and, for a full row, r has no visible field the
// row lacks. Key columns are not compared.
func matchesSystem(c *crdt.Collection, r *crdt.Record, ch *Change) bool {
	if ch.Delete {
		return !r.Exists()
	}
	if !r.Exists() {
		return false
	}
	for name, v := range ch.Row {
		if slices.Contains(c.Key, name) {
			continue
		}
		have, _, _ := r.Get(c, name)
		p := c.Policy(name)
		if p.Kind == crdt.Counter {
			// A system may print a decimal with fewer digits than the
			// total carries ("12.5" for "12.50"): the same number.
			if !crdt.SameNumber(v, have) {
				return false
			}
			continue
		}
		if !crdt.Equal(systemValue(p, v), have) {
			return false
		}
	}
	if ch.Full {
		for i := range r.Fields {
			name := r.Fields[i].Name
			if _, inRow := ch.Row[name]; inRow || slices.Contains(c.Key, name) {
				continue
			}
			if _, _, ok := r.Get(c, name); ok {
				return false
			}
		}
	}
	return true
}
