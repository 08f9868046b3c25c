package store

import "github.com/lattice-crdt/lattice/crdt"

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
