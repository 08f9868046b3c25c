package crdt

// Conflict is a choice a merge made between two writes to one field (or
// between a delete and an update of one record) where the losing write was
// not seen by the winning write's writer: true concurrency, not an
// overwrite of a value the writer had read.
type Conflict struct {
	// Field is the field, or "" for a delete against an update.
	Field string
	// Rule is what decided: "lww", "prefer", "max", "min" (the field's
	// policy) or "delete" (an update against a concurrent delete: the
	// update wins).
	Rule          string
	Winner, Loser ConflictWrite
}

// ConflictWrite is one side of a Conflict.
type ConflictWrite struct {
	Stamp Stamp
	// Value is the written value; null for a delete.
	Value Value
	// Source is the node that made the write, where the field keeps it
	// (Prefer fields).
	Source string
	// Delete says the side is the record's delete.
	Delete bool
}

// RuleDelete is the Rule of an update against a concurrent delete.
const RuleDelete = "delete"

// Conflicts returns the conflicts that merging delta into before, giving
// after (Join(c, before, delta)), decided. Call it only for a merge that
// changed the state: a delta merged again decides nothing new. The rules:
//
//   - A register field whose visible write changed from b to a conflicts
//     when b.Stamp > a.Prev: a's writer knew no write of the field as new
//     as b, so it cannot have seen b (a writer that merged b knows b, or a
//     write at least as new that dominates it, or a delete after it).
//   - A register field that kept its visible write b against an incoming
//     write d (the delta's visible write) conflicts when d.Stamp > b.Prev
//     by the same rule. Under Prefer, Max and Min this includes a newer
//     write that saw b and lost to it by rank or value: its writer saw b,
//     but b's writer did not see it.
//   - A record that exists after the merge, whose last delete is not the
//     reset of a re-insert (Reset < Deleted: the writes that keep it alive
//     did not see the delete), conflicts as "delete" when the merge brought
//     the delete or brought the record back: the update wins.
//
// The rule never reports a causal overwrite. It may miss a concurrent
// write that is older than another write its winner's writer saw (A and B
// write concurrently, C overwrites B having seen only B: a replica holding
// A logs nothing when C arrives, since C's writer knew a newer write than
// A); such a pair is logged where A and B met. A delete that wins over an
// update is not reported: a delete does not say what its writer saw.
// Counter and OR-set fields keep every concurrent write and never
// conflict.
func Conflicts(c *Collection, before, delta, after *Record) []Conflict {
	if !after.Exists() {
		return nil
	}
	var out []Conflict
	// The update and the delete met here: an update arrived at a record
	// deleted here, or a delete arrived at a record that stays.
	met := !before.IsEmpty() && ((!before.Exists() && before.Deleted == after.Deleted) ||
		(before.Exists() && before.Deleted != after.Deleted))
	if met && !after.Deleted.IsZero() && after.Reset.Less(after.Deleted) {
		out = append(out, Conflict{Rule: RuleDelete,
			Winner: ConflictWrite{Stamp: after.Written},
			Loser:  ConflictWrite{Stamp: after.Deleted, Delete: true}})
	}
	if !before.Exists() {
		return out
	}
	// One pass over the three field lists, all sorted by name.
	bi, ai := 0, 0
	for i := range delta.Fields {
		df := &delta.Fields[i]
		if len(df.Reg) == 0 {
			continue
		}
		for bi < len(before.Fields) && before.Fields[bi].Name < df.Name {
			bi++
		}
		for ai < len(after.Fields) && after.Fields[ai].Name < df.Name {
			ai++
		}
		if bi == len(before.Fields) || ai == len(after.Fields) ||
			before.Fields[bi].Name != df.Name || after.Fields[ai].Name != df.Name {
			continue
		}
		bf, af := &before.Fields[bi], &after.Fields[ai]
		b, a, d := registerVisible(bf.Reg), registerVisible(af.Reg), registerVisible(df.Reg)
		if b == nil || a == nil || d == nil {
			continue
		}
		var win, lose *Write
		switch {
		case a.Stamp != b.Stamp:
			win, lose = a, b
		case d.Stamp != b.Stamp && !hasWrite(bf.Reg, d.Stamp):
			win, lose = b, d
		default:
			continue
		}
		if lose.Stamp.Compare(win.Prev) <= 0 || lose.Stamp.Compare(after.Reset) <= 0 {
			continue
		}
		p := c.Policy(df.Name)
		if !p.IsRegister() {
			continue
		}
		out = append(out, Conflict{Field: df.Name, Rule: p.Kind.String(),
			Winner: ConflictWrite{Stamp: win.Stamp, Value: win.Value, Source: win.Source},
			Loser:  ConflictWrite{Stamp: lose.Stamp, Value: lose.Value, Source: lose.Source}})
	}
	return out
}

// LostWrite returns the conflict of a captured change that set field name
// to v with origin o and lost: merged (the state after the change) shows
// another write of the field, which did not see the change (its Prev is
// below o's stamp). This happens to a change stamped with its commit time
// (Origin.Late) that a newer write from elsewhere overtook before it was
// captured: Diff writes nothing for it, and the system gets the winner.
func LostWrite(c *Collection, merged *Record, name string, v Value, o Origin) (Conflict, bool) {
	p := c.Policy(name)
	f := merged.field(name)
	if !p.IsRegister() || !merged.Exists() || f == nil {
		return Conflict{}, false
	}
	w := registerVisible(f.Reg)
	if v.kind == KindList && len(v.list) == 0 {
		v = Null()
	}
	if w == nil || w.Stamp == o.Stamp || Equal(w.Value, v) || o.Stamp.Compare(w.Prev) <= 0 || o.Stamp.Compare(merged.Reset) <= 0 {
		return Conflict{}, false
	}
	lose := ConflictWrite{Stamp: o.Stamp, Value: v}
	if p.Kind == Prefer {
		lose.Source = o.Source
	}
	return Conflict{Field: name, Rule: p.Kind.String(),
		Winner: ConflictWrite{Stamp: w.Stamp, Value: w.Value, Source: w.Source}, Loser: lose}, true
}

func hasWrite(ws []Write, s Stamp) bool {
	for i := range ws {
		if ws[i].Stamp == s {
			return true
		}
	}
	return false
}
