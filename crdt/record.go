package crdt

import (
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
)

// Record is the state of one record: the stamp of its last delete, the
// highest stamp of any write to it, the stamp of the last delete a re-insert
// saw, and its fields sorted by name.
//
// The record exists while Written is after Deleted, so a delete and a
// concurrent update are decided by stamp. What an existing record shows
// depends on how it came back:
//
//   - An update that did not see the delete and is newer than it cancels
//     the delete: the record shows all its fields, as before the delete, with
//     the update applied. (Showing only the fields written after the delete
//     would hand systems partial rows their constraints reject.)
//   - A write that saw the record deleted is a re-insert: it sets Reset to
//     the delete it saw, and fields written before Reset stay hidden for
//     good, so a re-inserted record starts clean.
//
// Deleted, Written and Reset only grow, and fields at or before Reset are
// dropped, so the join stays a lattice join. A deleted record keeps its
// fields (they may come back) until a re-insert resets them.
//
// Records are immutable values: Join and the operations return new records
// that may share parts with their inputs. Never modify a Record, its Fields
// or their slices once built. A nil *Record is the empty record.
type Record struct {
	Deleted Stamp
	Written Stamp
	Reset   Stamp
	Fields  []Field
}

// Field is the state of one field: a register (all policies but ORSet and
// Counter), an OR-set or a counter. Every part is kept if a schema change
// turned one policy into another; the field's policy chooses which one is
// visible.
//
// Reg holds the writes that can still become visible (the Pareto frontier,
// see the package documentation) newest first; in a joined state the last
// one is the visible write. Ctr holds one entry per replica that changed a
// Counter field, sorted by replica.
type Field struct {
	Name string
	Reg  []Write
	Set  *ORSetState
	Ctr  []CounterEntry
}

// isEmpty reports whether f holds nothing.
func (f *Field) isEmpty() bool { return len(f.Reg) == 0 && f.Set == nil && len(f.Ctr) == 0 }

// Row is a record's field values by name. A missing field and a null field
// mean the same.
type Row map[string]Value

// Origin is who and when of a local change: the stamp for every write it
// makes and the source (node name) that Prefer policies rank.
type Origin struct {
	Stamp  Stamp
	Source string
	// Late says the stamp may be older than writes the record already
	// holds: the change was made before them without seeing them (a change
	// captured from a system and stamped with the time the system committed
	// it, which may be captured after newer writes arrived from elsewhere).
	// Its writes then lose to the newer ones, and it re-inserts a deleted
	// record only if it is newer than the delete. Without Late the stamp
	// must be newer than every stamp of the record (ErrStaleStamp).
	Late bool
}

// Exists reports whether the record is live: some write is newer than the
// last delete.
func (r *Record) Exists() bool { return r != nil && r.Deleted.Less(r.Written) }

// IsEmpty reports whether r holds no information at all.
func (r *Record) IsEmpty() bool {
	return r == nil || (r.Deleted.IsZero() && r.Written.IsZero() && r.Reset.IsZero() && len(r.Fields) == 0)
}

func (r *Record) field(name string) *Field {
	if r == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(r.Fields, name, func(f Field, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return nil
	}
	return &r.Fields[i]
}

// MaxStamp returns the highest stamp anywhere in r: the timestamp a receiver
// must forward its clock to (Clock.Update) before merging r. It costs no
// walk: Written covers every write in a record, because operations set it
// to their stamp, Join takes the larger, and the decoder raises it to the
// highest write it reads (a peer cannot be trusted with it).
func (r *Record) MaxStamp() Stamp {
	if r == nil {
		return Stamp{}
	}
	return maxStamp(maxStamp(r.Deleted, r.Written), r.Reset)
}

// maxWriteStamp returns the highest stamp of a write or live add in r's
// fields, which Written must cover.
func (r *Record) maxWriteStamp() Stamp {
	var m Stamp
	for i := range r.Fields {
		f := &r.Fields[i]
		for _, w := range f.Reg {
			m = maxStamp(m, w.Stamp)
		}
		if f.Set != nil {
			for _, e := range f.Set.Elems {
				for _, en := range e.Entries {
					m = maxStamp(m, en.Stamp)
				}
			}
		}
		for _, e := range f.Ctr {
			m = maxStamp(m, e.Stamp)
		}
	}
	return m
}

// Join returns the least upper bound of a and b under the rules of c. It is
// commutative, associative and idempotent, a ⊑ Join(a, b), and its result is
// normalized (dominated and deleted writes dropped) even when an input was
// not, so that equal states have equal encodings.
func Join(c *Collection, a, b *Record) *Record {
	switch {
	case a.IsEmpty() && b.IsEmpty():
		return nil
	case b.IsEmpty():
		return normalize(c, a)
	case a.IsEmpty():
		return normalize(c, b)
	}
	deleted, written, reset := maxStamp(a.Deleted, b.Deleted), maxStamp(a.Written, b.Written), maxStamp(a.Reset, b.Reset)
	// A join whose result is one of its inputs (a duplicate delivery, a
	// delta already merged) allocates nothing and returns that input. Fields
	// are copied only once the result departs from both inputs: sameA
	// (sameB) holds while the result's fields are a prefix of a's (b's).
	var fields []Field
	n := 0
	sameA, sameB := true, true
	i, j := 0, 0
	for i < len(a.Fields) || j < len(b.Fields) {
		var f Field
		switch {
		case j >= len(b.Fields) || (i < len(a.Fields) && a.Fields[i].Name < b.Fields[j].Name):
			f = pruneField(c, &a.Fields[i], reset)
			i++
		case i >= len(a.Fields) || b.Fields[j].Name < a.Fields[i].Name:
			f = pruneField(c, &b.Fields[j], reset)
			j++
		default:
			fa, fb := &a.Fields[i], &b.Fields[j]
			p := c.Policy(fa.Name)
			f = Field{
				Name: fa.Name,
				Reg:  joinRegister(p, fa.Reg, fb.Reg, reset),
				Set:  joinORSet(fa.Set, fb.Set, reset),
				Ctr:  joinCounter(fa.Ctr, fb.Ctr, reset),
			}
			i++
			j++
		}
		if f.isEmpty() {
			continue
		}
		nowA := sameA && n < len(a.Fields) && sameField(&f, &a.Fields[n])
		nowB := sameB && n < len(b.Fields) && sameField(&f, &b.Fields[n])
		if fields == nil && !nowA && !nowB {
			fields = make([]Field, 0, max(len(a.Fields), len(b.Fields)))
			if sameA {
				fields = append(fields, a.Fields[:n]...)
			} else if sameB {
				fields = append(fields, b.Fields[:n]...)
			}
		}
		sameA, sameB = nowA, nowB
		if fields != nil {
			fields = append(fields, f)
		}
		n++
	}
	switch {
	case sameA && n == len(a.Fields) && deleted == a.Deleted && written == a.Written && reset == a.Reset:
		return a
	case sameB && n == len(b.Fields) && deleted == b.Deleted && written == b.Written && reset == b.Reset:
		return b
	case fields == nil && n > 0:
		if sameA {
			fields = a.Fields[:n:n]
		} else {
			fields = b.Fields[:n:n]
		}
	}
	return &Record{Deleted: deleted, Written: written, Reset: reset, Fields: fields}
}

// sameField reports whether f is g itself: same name, same register slice,
// same OR-set.
func sameField(f, g *Field) bool {
	return f.Name == g.Name && sameSlice(f.Reg, g.Reg) && f.Set == g.Set && sameSlice(f.Ctr, g.Ctr)
}

// normalize returns r itself when it is already in normal form, which is the
// common case, and a normalized copy otherwise.
func normalize(c *Collection, r *Record) *Record {
	normal := true
	for i := range r.Fields {
		if !fieldNormal(c.Policy(r.Fields[i].Name), &r.Fields[i], r.Reset) {
			normal = false
			break
		}
	}
	if normal {
		return r
	}
	out := &Record{Deleted: r.Deleted, Written: r.Written, Reset: r.Reset}
	for i := range r.Fields {
		if f := pruneField(c, &r.Fields[i], r.Reset); !f.isEmpty() {
			out.Fields = append(out.Fields, f)
		}
	}
	return out
}

func pruneField(c *Collection, f *Field, reset Stamp) Field {
	p := c.Policy(f.Name)
	if fieldNormal(p, f, reset) {
		return *f
	}
	return Field{
		Name: f.Name,
		Reg:  joinRegister(p, f.Reg, nil, reset),
		Set:  joinORSet(f.Set, nil, reset),
		Ctr:  joinCounter(f.Ctr, nil, reset),
	}
}

// fieldNormal reports whether joinRegister and joinORSet would return f's
// parts unchanged.
func fieldNormal(p *Policy, f *Field, reset Stamp) bool {
	if len(f.Reg) == 0 && f.Set.isEmpty() && len(f.Ctr) == 0 {
		return false
	}
	if !counterNormal(f.Ctr, reset) {
		return false
	}
	for i := range f.Reg {
		if f.Reg[i].Stamp.Compare(reset) <= 0 {
			return false
		}
		if i > 0 && (!p.before(&f.Reg[i-1], &f.Reg[i]) || p.cmpWrites(&f.Reg[i-1], &f.Reg[i]) >= 0) {
			return false
		}
	}
	if f.Set != nil {
		if f.Set.isEmpty() {
			return false
		}
		for _, e := range f.Set.Elems {
			if len(e.Entries) == 0 {
				return false
			}
			for _, en := range e.Entries {
				if en.Stamp.Compare(reset) <= 0 {
					return false
				}
			}
		}
	}
	return true
}

// Merge joins d into r and reports whether the state changed.
func Merge(c *Collection, r, d *Record) (*Record, bool) {
	out := Join(c, r, d)
	if out == r {
		return out, false
	}
	return out, !EqualRecords(r, out)
}

// EqualRecords reports whether a and b are the same state.
func EqualRecords(a, b *Record) bool {
	if a == b {
		return true
	}
	if a.IsEmpty() || b.IsEmpty() {
		return a.IsEmpty() == b.IsEmpty()
	}
	if a.Deleted != b.Deleted || a.Written != b.Written || a.Reset != b.Reset || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		fa, fb := &a.Fields[i], &b.Fields[i]
		if fa.Name != fb.Name || !slices.EqualFunc(fa.Reg, fb.Reg, equalWrite) || !equalORSet(fa.Set, fb.Set) ||
			!slices.EqualFunc(fa.Ctr, fb.Ctr, equalCounterEntry) {
			return false
		}
	}
	return true
}

func equalWrite(a, b Write) bool {
	return a.Stamp == b.Stamp && a.Source == b.Source && a.Prev == b.Prev && Equal(a.Value, b.Value)
}

func equalORSet(a, b *ORSetState) bool {
	if a.isEmpty() || b.isEmpty() {
		return a.isEmpty() == b.isEmpty()
	}
	return slices.Equal(a.Ctx.VV, b.Ctx.VV) && slices.Equal(a.Ctx.Cloud, b.Ctx.Cloud) &&
		slices.EqualFunc(a.Elems, b.Elems, func(x, y Elem) bool {
			return Equal(x.Value, y.Value) && slices.Equal(x.Entries, y.Entries)
		})
}

// View returns the visible fields of r (nil if r does not exist). Null
// register values and empty sets are left out; OR-set fields are lists of
// their elements in canonical order.
func (r *Record) View(c *Collection) Row {
	if !r.Exists() {
		return nil
	}
	row := make(Row, len(r.Fields))
	for i := range r.Fields {
		if v := r.Fields[i].visible(c.Policy(r.Fields[i].Name)); !v.IsNull() {
			row[r.Fields[i].Name] = v
		}
	}
	return row
}

func (f *Field) visible(p *Policy) Value {
	if p.Kind == Counter {
		return counterTotal(f.Ctr)
	}
	if p.Kind == ORSet {
		if f.Set == nil || len(f.Set.Elems) == 0 {
			return Null()
		}
		return Value{kind: KindList, list: f.Set.values()}
	}
	if w := registerVisible(f.Reg); w != nil {
		return w.Value
	}
	return Null()
}

// FieldMeta describes where a field's visible value came from.
type FieldMeta struct {
	Policy Policy
	// Stamp is the stamp of the visible write; for OR-sets, the newest add.
	Stamp Stamp
	// Source is the node that made the visible write (Prefer fields only).
	Source string
	// Shadowed counts writes kept because a later delete could still reveal
	// them (Prefer, Max and Min only).
	Shadowed int
}

// Get returns a field's visible value and its metadata; ok is false when the
// record does not exist or the field has no visible value.
func (r *Record) Get(c *Collection, name string) (v Value, meta FieldMeta, ok bool) {
	p := c.Policy(name)
	meta.Policy = *p
	f := r.field(name)
	if !r.Exists() || f == nil {
		return Null(), meta, false
	}
	v = f.visible(p)
	if v.IsNull() {
		return v, meta, false
	}
	switch p.Kind {
	case ORSet:
		meta.Stamp = f.Set.latest()
	case Counter:
		for _, e := range f.Ctr {
			meta.Stamp = maxStamp(meta.Stamp, e.Stamp)
		}
	default:
		w := registerVisible(f.Reg)
		meta.Stamp, meta.Source, meta.Shadowed = w.Stamp, w.Source, len(f.Reg)-1
	}
	return v, meta, true
}

// ErrStaleStamp marks an operation whose origin stamp is not newer than the
// record it changes: the caller's clock was not forwarded past a merged
// remote stamp (see Record.MaxStamp).
var ErrStaleStamp = errors.New("crdt: origin stamp not newer than the record")

// ErrPolicy marks an operation that does not fit a field's policy, such as a
// set operation on an LWW field or a scalar for an OR-set field.
var ErrPolicy = errors.New("crdt: operation does not fit the field policy")

func checkOrigin(merged *Record, o Origin) error {
	if o.Stamp.IsZero() {
		return errors.AssertionFailedf("zero origin stamp")
	}
	if o.Stamp.Replica == 0 {
		// The codec rejects such stamps: a state holding one could not be
		// sent or stored.
		return errors.AssertionFailedf("origin stamp %s has no replica id", o.Stamp)
	}
	if m := maxStamp(merged.safeDeleted(), merged.safeWritten()); !o.Late && o.Stamp.Compare(m) <= 0 {
		return errors.Mark(errors.AssertionFailedf("origin stamp %s is not after record stamp %s", o.Stamp, m), ErrStaleStamp)
	}
	return nil
}

func (r *Record) safeDeleted() Stamp {
	if r == nil {
		return Stamp{}
	}
	return r.Deleted
}

func (r *Record) safeWritten() Stamp {
	if r == nil {
		return Stamp{}
	}
	return r.Written
}

// Delete returns the delta that deletes the record, or nil if it does not
// exist.
func Delete(merged *Record, o Origin) (*Record, error) {
	if !merged.Exists() {
		return nil, nil
	}
	if err := checkOrigin(merged, o); err != nil {
		return nil, err
	}
	return &Record{Deleted: o.Stamp}, nil
}

// Diff returns the smallest delta that brings the merged record to what a
// system observed, or nil if the observation changes nothing. This is what
// keeps sync loop-free: a row equal to the merged view yields no delta.
//
// A nil row means the system deleted the record. Otherwise row holds the
// observed fields; fields it does not mention are left as they are (pass
// explicit nulls for a full row). Key columns of c are skipped: they are the
// record's key. A register field yields a write only if the write would
// become visible under its policy: a Max field observed below its maximum, or
// a Prefer field observed from a source that ranks below the visible write,
// yields nothing, and the system is brought back to the merged value by the
// apply path. An OR-set field must be a list (or null, the empty set); it
// yields adds and removes for the elements that differ.
func Diff(c *Collection, merged *Record, row Row, o Origin) (*Record, error) {
	return diff(c, merged, nil, row, o, false)
}

// DiffInsert is Diff for a row a system's user inserted: no row had its key
// in that system just before, so the user saw no element of an OR-set field,
// and the insert adds the elements it holds that the merged set lacks and
// removes none. Under Diff, an insert made while another system's insert of
// the same key was in flight would remove that system's elements, or not,
// depending on which arrived first. Other fields are as under Diff.
func DiffInsert(c *Collection, merged *Record, row Row, o Origin) (*Record, error) {
	return diff(c, merged, nil, row, o, true)
}

// DiffFrom is Diff for a change a system reports together with the row as
// it was before the change (old). Only fields that differ between old and
// row are the change's intent: a field the change left as it was yields
// nothing even when it differs from the merged record, because the system
// simply had not received the merged value yet, and writing the stale value
// back would undo a newer write from elsewhere. An OR-set field yields the
// adds and removes that turn old into row, not those that turn the merged
// set into row, so concurrent adds and removes made elsewhere survive.
//
// With a nil old (an insert, or a system that does not report the old row),
// or when the merged record does not exist (the row was deleted here while
// the system updated it), DiffFrom is Diff.
func DiffFrom(c *Collection, merged *Record, old, row Row, o Origin) (*Record, error) {
	if old == nil || !merged.Exists() {
		return diff(c, merged, nil, row, o, false)
	}
	return diff(c, merged, old, row, o, false)
}

func diff(c *Collection, merged *Record, old, row Row, o Origin, insert bool) (*Record, error) {
	if row == nil {
		return Delete(merged, o)
	}
	if err := checkOrigin(merged, o); err != nil {
		return nil, err
	}
	exists := merged.Exists()
	names := make([]string, 0, len(row))
	for n := range row {
		if !slices.Contains(c.Key, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	d := &Record{}
	for _, name := range names {
		v := row[name]
		p := c.Policy(name)
		cur := merged.field(name)
		if p.Kind == Counter {
			e, ok, err := diffCounter(merged, cur, old, name, v, o)
			if err != nil {
				return nil, err
			}
			if ok {
				d.Fields = append(d.Fields, Field{Name: name, Ctr: []CounterEntry{e}})
			}
			continue
		}
		if p.Kind == ORSet {
			want, err := setElems(name, v)
			if err != nil {
				return nil, err
			}
			have := liveSet(merged, cur)
			var adds, removes []Value
			if old != nil {
				// The change's intent: what it added to and removed from
				// the set it started from.
				before, err := setElems(name, old[name])
				if err != nil {
					return nil, err
				}
				for _, w := range want {
					if _, was := slices.BinarySearchFunc(before, w, Compare); !was && have.find(w) == nil {
						adds = append(adds, w)
					}
				}
				for _, b := range before {
					if _, is := slices.BinarySearchFunc(want, b, Compare); !is && have.find(b) != nil {
						removes = append(removes, b)
					}
				}
			} else {
				for _, w := range want {
					if have.find(w) == nil {
						adds = append(adds, w)
					}
				}
				if have != nil && !insert {
					for _, e := range have.Elems {
						if _, found := slices.BinarySearchFunc(want, e.Value, Compare); !found {
							removes = append(removes, e.Value)
						}
					}
				}
			}
			set, err := setDelta(have, adds, removes, o.Stamp)
			if err != nil {
				return nil, errors.Wrapf(err, "field %s", name)
			}
			if set != nil {
				d.Fields = append(d.Fields, Field{Name: name, Set: set})
			}
			continue
		}
		if v.kind == KindList && len(v.list) == 0 {
			v = Null()
		}
		if old != nil {
			was := old[name]
			if was.kind == KindList && len(was.list) == 0 {
				was = Null()
			}
			if Equal(was, v) {
				continue // not changed by this change
			}
		}
		w := Write{Stamp: o.Stamp, Value: v, Prev: merged.safeDeleted()}
		if cur != nil && len(cur.Reg) > 0 {
			// What the writer knew of the field: the merged field, or,
			// when the system's old row holds another value than the
			// visible one (it had not received the visible write yet),
			// what that write's own writer knew.
			known := cur.Reg[0].Stamp // newest first
			if vis := registerVisible(cur.Reg); old != nil && exists && !Equal(old[name], vis.Value) {
				known = vis.Prev
			}
			w.Prev = maxStamp(w.Prev, known)
		}
		if p.Kind == Prefer {
			w.Source = o.Source
		}
		var vis *Write
		if cur != nil && exists {
			vis = registerVisible(cur.Reg)
		}
		if vis == nil {
			if v.IsNull() {
				continue
			}
		} else if Equal(vis.Value, v) || p.cmpWrites(&w, vis) <= 0 {
			continue
		}
		d.Fields = append(d.Fields, Field{Name: name, Reg: []Write{w}})
	}
	if len(d.Fields) == 0 && exists {
		return nil, nil
	}
	d.Written = o.Stamp
	d.Reset = reinsert(merged, o)
	if len(d.Fields) == 0 {
		d.Fields = nil
	}
	return d, nil
}

// diffCounter returns the entry that a change of counter field name to v
// makes: the increment from the value the change started from (the old
// row's, or without one the merged total) to v, added to the writer's own
// sums. A field the old row does not hold counts from the merged total.
func diffCounter(merged *Record, cur *Field, old Row, name string, v Value, o Origin) (CounterEntry, bool, error) {
	exists := merged.Exists()
	var own *CounterEntry
	var total Value
	if cur != nil {
		own = counterEntry(cur.Ctr, o.Stamp.Replica)
		if exists {
			total = counterTotal(cur.Ctr)
		}
	}
	if own != nil && own.Stamp.Compare(reinsert(merged, o)) <= 0 {
		own = nil // the write re-inserts the record: the counter starts at zero
	}
	was, inOld := old[name]
	if !inOld {
		was = total
	}
	return counterDiff(name, own, was, v, !total.IsNull(), o.Stamp)
}

// reinsert returns the Reset stamp of a write to merged: the delete it
// sees when the record does not exist (the write re-inserts it, and fields
// from before the delete stay hidden), else zero. A late write older than
// the delete did not see it: it re-inserts nothing.
func reinsert(merged *Record, o Origin) Stamp {
	if merged.Exists() || !merged.safeDeleted().Less(o.Stamp) {
		return Stamp{}
	}
	return merged.safeDeleted()
}

// Floor returns the stamp that a change made by replica to a system row
// that held seen must be stamped after, so that it orders after everything
// its writer saw and never reuses a stamp: the visible write of every field
// whose value seen holds (a register's value, a set's elements in any
// order), the delete when seen is nil and the record does not exist (the
// writer saw no row), the newest stamp of the record when seen is nil and it
// does exist (the system did not say what its writer saw), and every stamp
// replica itself wrote into the record.
func (r *Record) Floor(c *Collection, seen Row, replica ReplicaID) Stamp {
	if r == nil {
		return Stamp{}
	}
	var floor Stamp
	own := func(s Stamp) {
		if s.Replica == replica {
			floor = maxStamp(floor, s)
		}
	}
	own(r.Deleted)
	own(r.Written)
	own(r.Reset)
	if seen == nil {
		floor = maxStamp(floor, r.Deleted)
		if r.Exists() {
			floor = maxStamp(floor, r.MaxStamp())
		}
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		for _, w := range f.Reg {
			own(w.Stamp)
		}
		var ctrLatest Stamp
		for _, e := range f.Ctr {
			own(e.Stamp)
			ctrLatest = maxStamp(ctrLatest, e.Stamp)
		}
		v, ok := seen[f.Name]
		if !ok || slices.Contains(c.Key, f.Name) {
			continue
		}
		p := c.Policy(f.Name)
		if p.Kind == Counter {
			if Equal(counterTotal(f.Ctr), v) {
				floor = maxStamp(floor, ctrLatest)
			}
			continue
		}
		if p.Kind == ORSet {
			want, err := setElems(f.Name, v)
			if err != nil {
				continue
			}
			if slices.EqualFunc(want, f.visible(p).AsList(), Equal) {
				floor = maxStamp(floor, f.Set.latest())
			}
			continue
		}
		if v.kind == KindList && len(v.list) == 0 {
			v = Null()
		}
		if w := registerVisible(f.Reg); w != nil && Equal(w.Value, v) {
			floor = maxStamp(floor, w.Stamp)
		}
	}
	return floor
}

// liveSet returns the OR-set of f as operations must see it: its elements
// only while the record exists, and always its causal context, which holds
// every dot issued for the field (new dots must come after them, also after
// a delete).
func liveSet(r *Record, f *Field) *ORSetState {
	if f == nil || f.Set == nil {
		return nil
	}
	if r.Exists() {
		return f.Set
	}
	return &ORSetState{Ctx: f.Set.Ctx}
}

func setElems(field string, v Value) ([]Value, error) {
	switch v.kind {
	case KindNull:
		return nil, nil
	case KindList:
		s, _ := SetOf(v.list...)
		return s.list, nil
	}
	return nil, errors.Mark(errors.Newf("field %s is an orset: want a list, got %s", field, v.kind), ErrPolicy)
}

func setDelta(have *ORSetState, adds, removes []Value, o Stamp) (*ORSetState, error) {
	a, err := have.addDelta(adds, o)
	if err != nil {
		return nil, err
	}
	r := have.removeDelta(removes)
	switch {
	case a == nil:
		return r, nil
	case r == nil:
		return a, nil
	}
	return joinORSet(a, r, Stamp{}), nil
}

// SetOps returns the delta that adds and removes elements of an OR-set
// field, or nil if it changes nothing. Every add gets a fresh dot, also for
// an element already present, so that it wins over concurrent removes; an
// element both added and removed is added. Removing an absent element does
// nothing.
func SetOps(c *Collection, merged *Record, field string, add, remove []Value, o Origin) (*Record, error) {
	if p := c.Policy(field); p.Kind != ORSet {
		return nil, errors.Mark(errors.WithHint(
			errors.Newf("field %s has policy %s: add and remove need an orset field", field, p),
			"set the field's policy to orset in the collection's config, or write the whole value"), ErrPolicy)
	}
	if slices.Contains(c.Key, field) {
		return nil, errors.Mark(errors.Newf("field %s is a key column", field), ErrPolicy)
	}
	if err := checkOrigin(merged, o); err != nil {
		return nil, err
	}
	for _, v := range slices.Concat(add, remove) {
		if v.kind == KindList {
			return nil, errors.Mark(errors.Newf("field %s: set elements cannot be lists", field), ErrPolicy)
		}
	}
	have := liveSet(merged, merged.field(field))
	remove = slices.DeleteFunc(slices.Clone(remove), func(v Value) bool {
		return slices.ContainsFunc(add, func(a Value) bool { return Equal(a, v) })
	})
	set, err := setDelta(have, add, remove, o.Stamp)
	if err != nil {
		return nil, errors.Wrapf(err, "field %s", field)
	}
	if set == nil {
		return nil, nil
	}
	return &Record{Written: o.Stamp, Reset: reinsert(merged, o), Fields: []Field{{Name: field, Set: set}}}, nil
}

// KeyOf builds a record key from the key columns of a row.
func (c *Collection) KeyOf(row Row) (Key, error) {
	if len(c.Key) == 0 {
		return "", errors.Mark(errors.Newf("collection %s has no key columns", c.Name), ErrInvalidKey)
	}
	vals := make([]Value, len(c.Key))
	for i, k := range c.Key {
		v, ok := row[k]
		if !ok || v.IsNull() {
			return "", errors.Mark(errors.Newf("collection %s: key column %s is missing or null", c.Name, k), ErrInvalidKey)
		}
		vals[i] = v
	}
	k, err := MakeKey(vals...)
	if err != nil {
		return "", errors.Wrapf(err, "collection %s", c.Name)
	}
	return k, nil
}

// KeyRow returns the key columns of a key as a row.
func (c *Collection) KeyRow(k Key) (Row, error) {
	vals, err := k.Values()
	if err != nil {
		return nil, err
	}
	if len(vals) != len(c.Key) {
		return nil, errors.Mark(errors.Newf("collection %s: key has %d elements, want %d (%s)",
			c.Name, len(vals), len(c.Key), strings.Join(c.Key, ", ")), ErrInvalidKey)
	}
	row := make(Row, len(vals))
	for i, v := range vals {
		row[c.Key[i]] = v
	}
	return row, nil
}
