package engine

import "github.com/lattice-crdt/lattice/crdt"

// SameView reports whether records a and b look the same to a system: both
// absent, or both present with equal visible fields. It is View(a) ==
// View(b) without building the rows.
func SameView(c *crdt.Collection, a, b *crdt.Record) bool {
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

// QueueMerged is the queue decision for a merge of remote changes: the record
// goes to the apply queue when the merge changed what its system shows (a
// field's visible value, or whether the record exists), and only then, so a
// merge that changes stamps alone writes nothing into the system.
func QueueMerged(c *crdt.Collection, old, merged *crdt.Record) bool {
	return !SameView(c, old, merged)
}

// QueueUnseen is the queue decision after a snapshot: a record the store
// holds that the snapshot did not read from the system (learned from peers
// before it) goes to the apply queue when its collection lives in this
// system and the record exists; a tombstone has nothing to write.
func (ti *Catalog) QueueUnseen(f crdt.Fragment) bool {
	ci, err := ti.Lookup(f.Collection)
	return err == nil && ci.Synced && f.Record.Exists()
}
