package crdttest

import (
	"maps"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Local operations. Each one is worked out twice: by the crdt package (Diff,
// SetOps, Delete, then Join) and, as an intent, from the oracle's view of
// what the replica knows. The delta must carry exactly the intent, and the
// replica's record must match the oracle before and after.

// Write has replica i observe row for a record, as an adapter would after a
// change in its system (nil: the system deleted the record), and merges the
// delta that Diff makes of it. It returns that delta: nil when the row
// changes nothing.
func (s *Sim) Write(i int, coll string, key crdt.Key, row crdt.Row) (*crdt.Record, error) {
	return s.local(i, coll, key, func(c *crdt.Collection, v *oracleView, o crdt.Origin) *Op {
		if row == nil {
			return deleteIntent(v)
		}
		return diffIntent(c, v, row, o)
	}, func(c *crdt.Collection, merged *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.Diff(c, merged, row, o)
	}, "write "+FormatRow(row))
}

// SetOps adds and removes elements of an OR-set field at replica i.
func (s *Sim) SetOps(i int, coll string, key crdt.Key, field string, add, remove []crdt.Value) (*crdt.Record, error) {
	return s.local(i, coll, key, func(_ *crdt.Collection, v *oracleView, _ crdt.Origin) *Op {
		return setOpsIntent(v, field, add, remove)
	}, func(c *crdt.Collection, merged *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.SetOps(c, merged, field, add, remove, o)
	}, "setops "+field)
}

// Delete deletes a record at replica i.
func (s *Sim) Delete(i int, coll string, key crdt.Key) (*crdt.Record, error) {
	return s.local(i, coll, key, func(_ *crdt.Collection, v *oracleView, _ crdt.Origin) *Op {
		return deleteIntent(v)
	}, func(_ *crdt.Collection, merged *crdt.Record, o crdt.Origin) (*crdt.Record, error) {
		return crdt.Delete(merged, o)
	}, "delete")
}

// Record returns replica i's state of a record.
func (s *Sim) Record(i int, coll string, key crdt.Key) *crdt.Record {
	return s.reps[i].state[crdt.MakeID(coll, key)]
}

// View returns what replica i shows of a record (nil if it does not exist).
func (s *Sim) View(i int, coll string, key crdt.Key) (crdt.Row, error) {
	c, err := s.cfg.Schema.Collection(coll)
	if err != nil {
		return nil, err
	}
	return s.reps[i].state[crdt.MakeID(coll, key)].View(c), nil
}

// Oracle returns what every replica must show of a record once it knows
// every operation.
func (s *Sim) Oracle(coll string, key crdt.Key) (crdt.Row, error) {
	c, err := s.cfg.Schema.Collection(coll)
	if err != nil {
		return nil, err
	}
	return view(c, s.byRec[crdt.MakeID(coll, key)], func(int) bool { return true }).row(c), nil
}

// History returns the operations so far.
func (s *Sim) History() []*Op { return s.ops }

func (s *Sim) local(i int, coll string, key crdt.Key,
	intent func(*crdt.Collection, *oracleView, crdt.Origin) *Op,
	apply func(*crdt.Collection, *crdt.Record, crdt.Origin) (*crdt.Record, error),
	what string,
) (*crdt.Record, error) {
	if i < 0 || i >= len(s.reps) {
		return nil, errors.Newf("no replica %d", i)
	}
	r := s.reps[i]
	c, err := s.cfg.Schema.Collection(coll)
	if err != nil {
		return nil, err
	}
	id := crdt.MakeID(coll, key)
	if err := s.checkRecord(r, id); err != nil {
		return nil, errors.Wrapf(err, "before %s at %s", what, r.name)
	}
	v := view(c, s.byRec[id], func(op int) bool { return r.known[op] })
	o := crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: r.id}, Source: r.name}
	want := intent(c, v, o)
	before := r.state[id]
	d, err := apply(c, before, o)
	if err != nil {
		return nil, errors.Wrapf(err, "%s of %s at %s", what, id, r.name)
	}
	if want == nil {
		if d != nil {
			return nil, errors.Newf("%s of %s at %s: delta %s, but nothing changes\n state %s%s", what, id, r.name, d, before, s.history(id))
		}
		s.res.Noops++
		s.tracef("%s: %s of %s changes nothing", r.name, what, id)
		return nil, nil
	}
	want.ID, want.Replica, want.Stamp, want.Source, want.Record = len(s.ops), i, o.Stamp, o.Source, id
	if err := matchIntent(c, d, want); err != nil {
		return nil, errors.Wrapf(err, "%s of %s at %s\n state %s%s", what, id, r.name, before, s.history(id))
	}
	s.ops = append(s.ops, want)
	s.byRec[id] = append(s.byRec[id], want)
	s.res.Ops++
	r.state[id] = crdt.Join(c, before, d)
	r.known[want.ID] = true
	r.persist()
	if r.outbox == nil {
		r.outbox = &crdt.Delta{}
	}
	r.outbox.Add(coll, key, d)
	r.outOps = append(r.outOps, want.ID)
	s.tracef("%s", s.FormatOp(want))
	if err := s.checkRecord(r, id); err != nil {
		return nil, errors.Wrapf(err, "after %s", s.FormatOp(want))
	}
	return d, nil
}

func deleteIntent(v *oracleView) *Op {
	if !v.exists {
		return nil
	}
	return &Op{Delete: true}
}

// diffIntent is what observing row must do, from the Diff contract: a
// register field is written when its value differs from the visible one and
// the write would become visible under the policy; an OR-set field adds the
// missing elements and removes the extra ones; a row for a record that does
// not exist (re)creates it even if it writes nothing.
func diffIntent(c *crdt.Collection, v *oracleView, row crdt.Row, o crdt.Origin) *Op {
	op := &Op{}
	for _, f := range slices.Sorted(maps.Keys(row)) {
		if slices.Contains(c.Key, f) {
			continue
		}
		val := row[f]
		if c.Policy(f).Kind == crdt.ORSet {
			want, _ := crdt.SetOf(val.AsList()...)
			have := v.elems(f)
			for _, e := range want.AsList() {
				if !slices.ContainsFunc(have, func(h crdt.Value) bool { return crdt.Equal(h, e) }) {
					op.Sets = append(op.Sets, SetEvent{Field: f, Elem: e, Add: true})
				}
			}
			for _, h := range have {
				if !slices.ContainsFunc(want.AsList(), func(e crdt.Value) bool { return crdt.Equal(h, e) }) {
					op.Sets = append(op.Sets, SetEvent{Field: f, Elem: h, Observed: v.live(f, h)})
				}
			}
			continue
		}
		if val.Kind() == crdt.KindList && len(val.AsList()) == 0 {
			val = crdt.Null()
		}
		if c.Policy(f).Kind == crdt.Counter {
			was := v.ctrs[f] // null when the record does not exist
			inc, ok := counterInc(was, val)
			if !ok {
				continue
			}
			// The writer starts from zero unless it knows an increment of
			// its own after every reset it knows, this write's included.
			floor := v.reset
			if !v.exists && floor.Less(v.del) {
				floor = v.del
			}
			last, own := v.ctrLast[f][o.Stamp.Replica]
			op.Incs = append(op.Incs, CounterInc{Field: f, Inc: inc, Restart: !own || !floor.Less(last)})
			continue
		}
		nw := crdt.Write{Value: val, Stamp: o.Stamp}
		if c.Policy(f).Kind == crdt.Prefer {
			nw.Source = o.Source
		}
		vis, ok := v.visible(f)
		switch {
		case !ok && val.IsNull():
			continue
		case ok && (crdt.Equal(vis.Value, val) || !Beats(c.Policy(f), nw, vis)):
			continue
		}
		op.Writes = append(op.Writes, RegWrite{Field: f, Value: val})
	}
	if len(op.Writes) == 0 && len(op.Sets) == 0 && len(op.Incs) == 0 && v.exists {
		return nil
	}
	if !v.exists {
		op.Reset = v.del
	}
	return op
}

func setOpsIntent(v *oracleView, field string, add, remove []crdt.Value) *Op {
	op := &Op{}
	adds, _ := crdt.SetOf(add...)
	for _, e := range adds.AsList() {
		op.Sets = append(op.Sets, SetEvent{Field: field, Elem: e, Add: true, Observed: v.live(field, e)})
	}
	rems, _ := crdt.SetOf(remove...)
	for _, e := range rems.AsList() {
		if slices.ContainsFunc(adds.AsList(), func(a crdt.Value) bool { return crdt.Equal(a, e) }) {
			continue
		}
		if live := v.live(field, e); len(live) > 0 {
			op.Sets = append(op.Sets, SetEvent{Field: field, Elem: e, Observed: live})
		}
	}
	if len(op.Sets) == 0 {
		return nil
	}
	if !v.exists {
		op.Reset = v.del
	}
	return op
}

// matchIntent checks that a delta carries exactly what the operation means:
// its stamps, its register writes and its set adds (removes leave only dots
// in the causal context; their effect is checked against the oracle).
func matchIntent(c *crdt.Collection, d *crdt.Record, want *Op) error {
	if d == nil {
		return errors.Newf("no delta, want %s", want)
	}
	if want.Delete {
		if d.Deleted != want.Stamp || !d.Written.IsZero() || len(d.Fields) != 0 {
			return errors.Newf("delete delta %s, want a delete at %s", d, want.Stamp)
		}
		return nil
	}
	if d.Written != want.Stamp || !d.Deleted.IsZero() {
		return errors.Newf("delta %s, want written at %s", d, want.Stamp)
	}
	if d.Reset != want.Reset {
		return errors.Newf("delta %s resets at %s, want %s", d, d.Reset, want.Reset)
	}
	fields := map[string]bool{}
	for _, w := range want.Writes {
		fields[w.Field] = true
	}
	for _, e := range want.Sets {
		fields[e.Field] = true
	}
	for _, e := range want.Incs {
		fields[e.Field] = true
	}
	if len(d.Fields) != len(fields) {
		return errors.Newf("delta %s writes %d fields, want %s", d, len(d.Fields), want)
	}
	for _, f := range d.Fields {
		if !fields[f.Name] {
			return errors.Newf("delta %s writes field %s, want %s", d, f.Name, want)
		}
		if c.Policy(f.Name).Kind == crdt.Counter {
			// The sums are the replica's own; what they add up to is
			// checked against the oracle's total.
			if len(f.Reg) != 0 || f.Set != nil || len(f.Ctr) != 1 || f.Ctr[0].Stamp != want.Stamp {
				return errors.Newf("delta %s: counter field %s, want one entry at %s", d, f.Name, want.Stamp)
			}
			continue
		}
		if c.Policy(f.Name).Kind == crdt.ORSet {
			if len(f.Reg) != 0 || f.Set == nil {
				return errors.Newf("delta %s: set field %s is not a set", d, f.Name)
			}
			var adds []crdt.Value
			for _, e := range want.Sets {
				if e.Field == f.Name && e.Add {
					adds = append(adds, e.Elem)
				}
			}
			if len(adds) != len(f.Set.Elems) {
				return errors.Newf("delta %s adds %d elements to %s, want %v", d, len(f.Set.Elems), f.Name, adds)
			}
			for j, el := range f.Set.Elems {
				if !crdt.Equal(el.Value, adds[j]) || len(el.Entries) != 1 || el.Entries[0].Stamp != want.Stamp {
					return errors.Newf("delta %s: element %d of %s, want %v added at %s", d, j, f.Name, adds[j], want.Stamp)
				}
			}
			continue
		}
		var w *RegWrite
		for j := range want.Writes {
			if want.Writes[j].Field == f.Name {
				w = &want.Writes[j]
			}
		}
		src := ""
		if c.Policy(f.Name).Kind == crdt.Prefer {
			src = want.Source
		}
		if w == nil || f.Set != nil || len(f.Reg) != 1 || f.Reg[0].Stamp != want.Stamp ||
			!crdt.Equal(f.Reg[0].Value, w.Value) || f.Reg[0].Source != src {
			return errors.Newf("delta %s: field %s, want %s", d, f.Name, want)
		}
	}
	return nil
}

// fieldsOf returns the fields random operations write in a collection: the
// listed ones and one unlisted (LWW) field, or a and b for a collection the
// schema does not list.
func fieldsOf(c *crdt.Collection) []string {
	if len(c.Fields) == 0 {
		return []string{"a", "b"}
	}
	return append(slices.Sorted(maps.Keys(c.Fields)), "u")
}

// randomOp performs a random operation at a random replica: mostly rows
// observed with a few fields changed, also fresh rows (inserts), unchanged
// rows (echoes, which must change nothing), deleted rows, set operations and
// deletes.
func (s *Sim) randomOp() error {
	i := s.rng.IntN(len(s.reps))
	coll := s.cfg.Collections[s.rng.IntN(len(s.cfg.Collections))]
	key := crdt.IntKey(int64(s.rng.IntN(s.cfg.Keys)))
	c, err := s.cfg.Schema.Collection(coll)
	if err != nil {
		return err
	}
	var setFields []string
	for _, f := range fieldsOf(c) {
		if c.Policy(f).Kind == crdt.ORSet {
			setFields = append(setFields, f)
		}
	}
	switch n := s.rng.IntN(20); {
	case n < 2:
		_, err = s.Delete(i, coll, key)
	case n < 6 && len(setFields) > 0:
		f := setFields[s.rng.IntN(len(setFields))]
		_, err = s.SetOps(i, coll, key, f, s.elems(3), s.elems(3))
	default:
		_, err = s.Write(i, coll, key, s.randomRow(i, c, key))
	}
	return err
}

func (s *Sim) randomRow(i int, c *crdt.Collection, key crdt.Key) crdt.Row {
	current := s.reps[i].state[crdt.MakeID(c.Name, key)].View(c)
	switch s.rng.IntN(10) {
	case 0:
		return nil // the system deleted the record
	case 1:
		return current // unchanged (nil when deleted: a delete again)
	case 2:
		current = nil // a fresh row
	}
	row := crdt.Row{}
	for f, v := range current {
		row[f] = v
	}
	if s.rng.IntN(4) == 0 {
		row["id"] = crdt.Int(int64(s.rng.IntN(9))) // key columns are skipped
	}
	for _, f := range fieldsOf(c) {
		if s.rng.IntN(3) != 0 {
			continue
		}
		if c.Policy(f).Kind == crdt.ORSet {
			if s.rng.IntN(6) == 0 {
				row[f] = crdt.Null()
				continue
			}
			l, _ := crdt.List(s.elems(4)...)
			row[f] = l
			continue
		}
		if c.Policy(f).Kind == crdt.Counter {
			row[f] = s.number()
			continue
		}
		row[f] = s.scalar()
	}
	return row
}

// scalar draws a register value from a small domain, so that writes
// collide: mostly small ints, some strings, floats and nulls.
func (s *Sim) scalar() crdt.Value {
	switch s.rng.IntN(10) {
	case 0:
		return crdt.Null()
	case 1:
		return crdt.String([]string{"a", "b"}[s.rng.IntN(2)])
	case 2:
		return crdt.Float(float64(s.rng.IntN(5)-2) / 2)
	case 3:
		l, _ := crdt.List()
		return l // an empty list is null for a register
	}
	return crdt.Int(int64(s.rng.IntN(5)))
}

// number draws a counter value: mostly small ints, some exact decimals
// (with one or two digits after the point), some nulls.
func (s *Sim) number() crdt.Value {
	switch s.rng.IntN(10) {
	case 0:
		return crdt.Null()
	case 1:
		return crdt.String([]string{"0.5", "-1.25", "2.50", "0.00"}[s.rng.IntN(4)])
	}
	return crdt.Int(int64(s.rng.IntN(9) - 4))
}

// elems draws up to n set elements from a small universe.
func (s *Sim) elems(n int) []crdt.Value {
	out := make([]crdt.Value, s.rng.IntN(n+1))
	for j := range out {
		if s.rng.IntN(5) == 0 {
			out[j] = crdt.String("x")
		} else {
			out[j] = crdt.Int(int64(s.rng.IntN(4)))
		}
	}
	return out
}
