package mapping

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Adapter is an adapters.Adapter that speaks collection space over an
// adapter that speaks its system's: it renames tables and columns, maps and
// converts values, computes expression fields, keys records by the ID map,
// translates references, and guards against records that never settle. The
// engine above it sees only collections; the adapter below it only its
// system's tables. Tables the Map does not name pass through unchanged.
//
// The ID map: a record first captured in this system is known by a
// collection key minted from its local key, "<id_map>:<local key>", which
// needs no bookkeeping (it is derived again from the key). A record first
// seen elsewhere is inserted with a Write.NewKey: the system generates its
// local key and the inner adapter records the pair in the same transaction
// (adapters.IDMapper), so that the map never disagrees with the rows. The
// wrapper keeps a copy of the map in memory, loaded when Tables first finds
// the table and updated from Applied.Generated.
type Adapter struct {
	inner adapters.Adapter
	m     *Map
	log   *slog.Logger

	mu     sync.Mutex
	tables map[string]*tableState // by system table
	byColl map[string]*tableState // by collection
	loaded bool                   // Tables has read the system's tables
	warned map[string]bool        // configured tables the system lacks, logged once

	// live reports whether the merged state holds a record (nil: assume
	// it does); see SetLive.
	live func(collection string, key crdt.Key) (bool, error)

	guard guard
	loops atomic.Int64
	lossy atomic.Int64
}

// tableState is one mapped table as the system and the engine see it.
type tableState struct {
	tm     *TableMap
	system adapters.Table
	coll   adapters.Table
	ids    *idMap // nil unless the table is keyed by the ID map
}

// idMap is one table's ID map in memory.
type idMap struct {
	prefix  string
	kinds   []crdt.Kind // kinds of the local key
	field   string      // the collection key's field
	column  string      // the system's generated key column
	toColl  map[crdt.Key]crdt.Key
	toLocal map[crdt.Key]crdt.Key
}

// Wrap returns a on m: the adapter the engine uses when the node's config
// has a mapping. log receives warnings (a configured table the system
// lacks); nil discards them.
func Wrap(a adapters.Adapter, m *Map, log *slog.Logger) *Adapter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Adapter{inner: a, m: m, log: log, tables: map[string]*tableState{}, byColl: map[string]*tableState{},
		warned: map[string]bool{}, guard: guard{last: map[crdt.ID]guardEntry{}}}
}

// SetLive gives the wrapper a look at the merged state: whether it holds a
// record (live, not deleted). A reference to a record this system does not
// hold is deferred while the record is live (it has not been applied here
// yet) and written as null once it is not (it was deleted, or never
// existed): the reference dangles, as a foreign key's ON DELETE SET NULL
// would leave it. Without it, such a reference is always deferred. Call it
// before the first Apply.
func (w *Adapter) SetLive(live func(collection string, key crdt.Key) (bool, error)) { w.live = live }

// Unwrap returns the system's own adapter.
func (w *Adapter) Unwrap() adapters.Adapter { return w.inner }

// Stats counts what the mapping's guard did.
type Stats struct {
	// Loops counts writes refused because their record would never settle:
	// the mapping changes it on every round trip, or the system did not
	// keep what was written to it several times in a row.
	Loops int64
	// Lossy counts writes whose values the mapping does not carry back
	// exactly (normalised once, then settled).
	Lossy int64
}

// Stats returns the guard's counts since the adapter was made.
func (w *Adapter) Stats() Stats { return Stats{Loops: w.loops.Load(), Lossy: w.lossy.Load()} }

// Tables returns the system's tables in collection space, sorted by
// collection name.
func (w *Adapter) Tables(ctx context.Context) ([]adapters.Table, error) {
	sys, err := w.inner.Tables(ctx)
	if err != nil {
		return nil, err
	}
	tables := map[string]*tableState{}
	byColl := map[string]*tableState{}
	out := make([]adapters.Table, 0, len(sys))
	for _, t := range sys {
		st := &tableState{system: t, coll: t, tm: w.m.Table(t.Name)}
		if st.tm != nil {
			if st.coll, err = st.tm.Describe(t); err != nil {
				return nil, err
			}
			if err := w.keyIDs(ctx, st); err != nil {
				return nil, err
			}
		}
		if prev, dup := byColl[st.coll.Name]; dup {
			return nil, errors.WithHint(errors.Newf("mapping: tables %s and %s both map to collection %s", prev.system.Name, t.Name, st.coll.Name),
				"map one of them to another collection, or list only one under adapter.tables")
		}
		tables[t.Name], byColl[st.coll.Name] = st, st
		out = append(out, st.coll)
	}
	for _, name := range w.m.Tables() {
		if _, ok := tables[name]; !ok && !w.warned[name] {
			w.warned[name] = true
			w.log.Warn("the mapping names a table the system does not have (yet); it is mapped once it exists", "table", name)
		}
	}
	slices.SortFunc(out, func(a, b adapters.Table) int { return strings.Compare(a.Name, b.Name) })
	w.mu.Lock()
	w.tables, w.byColl, w.loaded = tables, byColl, true
	w.mu.Unlock()
	return out, nil
}

// load reads the system's tables if Tables has not: the engine may
// snapshot, capture or apply first, and the adapter must know what it maps.
func (w *Adapter) load(ctx context.Context) error {
	w.mu.Lock()
	loaded := w.loaded
	w.mu.Unlock()
	if loaded {
		return nil
	}
	_, err := w.Tables(ctx)
	return err
}

// keyIDs sets up the ID map of a table keyed by one: its collection key is
// a single string field, and its pairs are loaded from the system (kept
// from a previous Tables when the table is unchanged).
func (w *Adapter) keyIDs(ctx context.Context, st *tableState) error {
	prefix := st.tm.IDMap()
	if prefix == "" {
		return nil
	}
	name := st.system.Name
	if len(st.system.Key) != 1 {
		return errors.WithHintf(errors.Newf("mapping.tables.%s.key.id_map: the table's primary key has %d columns; an ID map needs one", name, len(st.system.Key)),
			"key the collection by a natural key instead")
	}
	col := st.system.Column(st.system.Key[0])
	if col == nil || !col.Generated {
		return errors.WithHintf(errors.Newf("mapping.tables.%s.key.id_map: key column %s is not generated by the system", name, st.system.Key[0]),
			"give it a default (a serial, an identity, a UUID default; INTEGER PRIMARY KEY in SQLite) so that inserts of records from other systems get a local key")
	}
	idm, ok := w.inner.(adapters.IDMapper)
	if !ok {
		return errors.Newf("mapping.tables.%s.key.id_map: this adapter keeps no ID map", name)
	}
	field, _ := st.tm.Field(col.Name)
	st.coll.Key = []string{field}
	for i := range st.coll.Columns {
		if st.coll.Columns[i].Name == field {
			st.coll.Columns[i].Kind, st.coll.Columns[i].Type = crdt.KindString, "id_map key"
		}
	}
	w.mu.Lock()
	prev := w.tables[name]
	w.mu.Unlock()
	if prev != nil && prev.ids != nil && prev.ids.prefix == prefix && prev.ids.column == col.Name {
		st.ids = prev.ids
		return nil
	}
	pairs, err := idm.IDMap(ctx, name)
	if err != nil {
		return errors.Wrapf(err, "mapping: read the ID map of %s", name)
	}
	ids := &idMap{prefix: prefix, kinds: st.system.KeyKinds(), field: field, column: col.Name,
		toColl: make(map[crdt.Key]crdt.Key, len(pairs)), toLocal: make(map[crdt.Key]crdt.Key, len(pairs))}
	for l, c := range pairs {
		ids.toColl[l], ids.toLocal[c] = c, l
	}
	st.ids = ids
	return nil
}

// collKey returns the collection key of a local key: the pair recorded by
// an insert, or the key minted from the local key.
func (ids *idMap) collKey(local crdt.Key) crdt.Key {
	if c, ok := ids.toColl[local]; ok {
		return c
	}
	return crdt.StringKey(ids.prefix + ":" + local.String())
}

// localKey returns the local key of a collection key, and whether the
// system holds (or held) the record: a key minted here parses back, one
// minted elsewhere is looked up in the pairs.
func (ids *idMap) localKey(coll crdt.Key) (crdt.Key, bool) {
	if l, ok := ids.toLocal[coll]; ok {
		return l, true
	}
	vals, err := coll.Values()
	if err != nil || len(vals) != 1 || vals[0].Kind() != crdt.KindString {
		return "", false
	}
	rest, ok := strings.CutPrefix(vals[0].AsString(), ids.prefix+":")
	if !ok {
		return "", false
	}
	l, err := crdt.ParseKeyText(rest, ids.kinds)
	if err != nil {
		return "", false
	}
	if _, taken := ids.toColl[l]; taken {
		// The local key stands for a record from elsewhere.
		return "", false
	}
	return l, true
}

// state returns the mapped state of a system table, or nil when it passes
// through.
func (w *Adapter) state(table string) *tableState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.tables[table]; st != nil && st.tm != nil {
		return st
	}
	return nil
}

// collState returns the mapped state of a collection, or nil when it
// passes through.
func (w *Adapter) collState(coll string) *tableState {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.byColl[coll]; st != nil && st.tm != nil {
		return st
	}
	return nil
}

// systemName returns the system table of a collection.
func (w *Adapter) systemName(coll string) string {
	if st := w.collState(coll); st != nil {
		return st.system.Name
	}
	return coll
}

// fromSystem translates a captured or read change to collection space.
func (w *Adapter) fromSystem(c adapters.Change) (adapters.Change, error) {
	st := w.state(c.Collection)
	if st == nil {
		return c, nil
	}
	out := c
	out.Collection = st.coll.Name
	if st.ids != nil {
		w.mu.Lock()
		out.Key = st.ids.collKey(c.Key)
		w.mu.Unlock()
	}
	var err error
	if out.Row, err = w.rowFromSystem(st, c.Row, out.Key); err != nil {
		return c, err
	}
	if out.Old, err = w.rowFromSystem(st, c.Old, out.Key); err != nil {
		return c, err
	}
	return out, nil
}

// rowFromSystem maps one row to collection space: its values, its key (the
// collection key under the ID map) and its references.
func (w *Adapter) rowFromSystem(st *tableState, row crdt.Row, key crdt.Key) (crdt.Row, error) {
	if row == nil {
		return nil, nil
	}
	out, err := st.tm.ToCollection(row)
	if err != nil {
		return nil, adapters.BadRow(st.coll.Name, key, err)
	}
	if st.ids != nil {
		vals, err := key.Values()
		if err != nil {
			return nil, adapters.BadRow(st.coll.Name, key, err)
		}
		out[st.ids.field] = vals[0]
	}
	refs, err := w.mappedRefs(st, out)
	if err != nil {
		return nil, adapters.BadRow(st.coll.Name, key, err)
	}
	for _, r := range refs {
		w.mu.Lock()
		ck := r.ids.collKey(r.key)
		w.mu.Unlock()
		cv, _ := ck.Values()
		out[r.field] = cv[0]
	}
	return out, nil
}

// mappedRef is a reference of a row to a record of a collection keyed by an
// ID map: the value of field, as a key.
type mappedRef struct {
	field string
	coll  string
	key   crdt.Key
	ids   *idMap
}

// mappedRefs returns the non-null references of a row (in either space:
// the value is the same key's) to collections keyed by ID maps.
func (w *Adapter) mappedRefs(st *tableState, row crdt.Row) ([]mappedRef, error) {
	var out []mappedRef
	for col, ref := range st.tm.References() {
		f, _ := st.tm.Field(col)
		v, ok := row[f]
		if !ok || v.IsNull() {
			continue
		}
		rs := w.collState(ref)
		if rs == nil || rs.ids == nil {
			continue
		}
		k, err := crdt.MakeKey(v)
		if err != nil {
			return nil, errors.Wrapf(err, "reference %s", col)
		}
		out = append(out, mappedRef{field: f, coll: ref, key: k, ids: rs.ids})
	}
	return out, nil
}

// sink translates the batches a capture, a snapshot or a table read sends.
func (w *Adapter) sink(next adapters.Sink) adapters.Sink {
	return func(ctx context.Context, b adapters.Batch) error {
		out := adapters.Batch{Cursor: b.Cursor, Changes: make([]adapters.Change, 0, len(b.Changes))}
		for _, c := range b.Changes {
			mc, err := w.fromSystem(c)
			if err != nil {
				// A row the mapping cannot read is skipped, loudly: it is
				// the system's row, and the next change to it is taken
				// again; verification reports it meanwhile.
				w.log.Warn("captured row skipped: the mapping cannot read it", "table", c.Collection, "key", c.Key, "err", err)
				continue
			}
			out.Changes = append(out.Changes, mc)
		}
		return next(ctx, out)
	}
}

// Snapshot reads every row in collection space.
func (w *Adapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	if err := w.load(ctx); err != nil {
		return nil, err
	}
	return w.inner.Snapshot(ctx, w.sink(sink))
}

// Capture streams the system's changes in collection space.
func (w *Adapter) Capture(ctx context.Context, cursor []byte, sink adapters.Sink) error {
	if err := w.load(ctx); err != nil {
		return err
	}
	return w.inner.Capture(ctx, cursor, w.sink(sink))
}

// Ack passes through.
func (w *Adapter) Ack(ctx context.Context, cursor []byte) error { return w.inner.Ack(ctx, cursor) }

// Head passes through.
func (w *Adapter) Head(ctx context.Context) ([]byte, error) { return w.inner.Head(ctx) }

// Close closes the system's adapter.
func (w *Adapter) Close() error { return w.inner.Close() }

// planned is one collection write as the system's adapter receives it.
type planned struct {
	index int // in the engine's batch
	write adapters.Write
	st    *tableState
}

// Apply writes merged rows into the system's tables. Writes of tables that
// others reference go first, in a transaction of their own, so that the
// keys a system generates for new records are known when the rows that
// reference them are written. A write whose reference names a record this
// system does not hold yet is deferred (the engine retries it). A record
// whose merged row the mapping would never settle is refused as a bad row.
func (w *Adapter) Apply(ctx context.Context, writes []adapters.Write, since []byte) (adapters.Applied, error) {
	if err := w.load(ctx); err != nil {
		return adapters.Applied{}, err
	}
	var res adapters.Applied
	var parents, children []adapters.Write
	var pIdx, cIdx []int
	referenced := w.referenced()
	for i, wr := range writes {
		if referenced[wr.Collection] {
			parents, pIdx = append(parents, wr), append(pIdx, i)
		} else {
			children, cIdx = append(children, wr), append(cIdx, i)
		}
	}
	for _, phase := range []struct {
		writes []adapters.Write
		idx    []int
	}{{parents, pIdx}, {children, cIdx}} {
		if len(phase.writes) == 0 {
			continue
		}
		r, err := w.applyPhase(ctx, phase.writes, since)
		if err != nil {
			return adapters.Applied{}, err
		}
		if r.Position != nil {
			res.Position = r.Position
		}
		for _, d := range r.Deferred {
			res.Deferred = append(res.Deferred, phase.idx[d])
		}
		for i, k := range r.Generated {
			if res.Generated == nil {
				res.Generated = map[int]crdt.Key{}
			}
			res.Generated[phase.idx[i]] = k
		}
	}
	slices.Sort(res.Deferred)
	return res, nil
}

// referenced returns the collections that mapped tables reference.
func (w *Adapter) referenced() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]bool{}
	for _, st := range w.tables {
		if st.tm == nil {
			continue
		}
		for _, ref := range st.tm.References() {
			out[ref] = true
		}
	}
	return out
}

// applyPhase translates writes to the system's tables and applies them in
// one call to the system's adapter.
func (w *Adapter) applyPhase(ctx context.Context, writes []adapters.Write, since []byte) (adapters.Applied, error) {
	var res adapters.Applied
	plan := make([]planned, 0, len(writes))
	for i, wr := range writes {
		st := w.collState(wr.Collection)
		if st == nil {
			if ms := w.state(wr.Collection); ms != nil {
				// The system's name of a table that holds another
				// collection: no collection of this adapter.
				return adapters.Applied{}, adapters.BadRow(wr.Collection, wr.Key,
					errors.Newf("no collection %s: table %s holds collection %s", wr.Collection, wr.Collection, ms.coll.Name))
			}
			plan = append(plan, planned{index: i, write: wr})
			continue
		}
		sw, what, err := w.toSystem(st, wr)
		if err != nil {
			return adapters.Applied{}, err
		}
		switch what {
		case skipWrite:
			continue
		case deferWrite:
			res.Deferred = append(res.Deferred, i)
			continue
		}
		plan = append(plan, planned{index: i, write: sw, st: st})
	}
	if len(plan) == 0 {
		return res, nil
	}
	sys := make([]adapters.Write, len(plan))
	for i, p := range plan {
		sys[i] = p.write
	}
	r, err := w.inner.Apply(ctx, sys, since)
	if err != nil {
		return adapters.Applied{}, w.rowErrorToCollection(err, plan)
	}
	res.Position = r.Position
	for _, d := range r.Deferred {
		res.Deferred = append(res.Deferred, plan[d].index)
	}
	slices.Sort(res.Deferred)
	for i, p := range plan {
		switch {
		case p.st == nil || slices.Contains(r.Deferred, i):
		case p.write.Row != nil:
			w.guard.written(writes[p.index])
		case p.st.ids != nil:
			// The adapter dropped the record's pair with its row: should
			// the record come back, it is inserted afresh.
			w.mu.Lock()
			if c, ok := p.st.ids.toColl[p.write.Key]; ok {
				delete(p.st.ids.toColl, p.write.Key)
				delete(p.st.ids.toLocal, c)
			}
			w.mu.Unlock()
		}
	}
	for i, local := range r.Generated {
		p := plan[i]
		if p.st == nil || p.st.ids == nil || p.write.NewKey == "" {
			continue
		}
		w.mu.Lock()
		p.st.ids.toColl[local], p.st.ids.toLocal[p.write.NewKey] = p.write.NewKey, local
		w.mu.Unlock()
		if res.Generated == nil {
			res.Generated = map[int]crdt.Key{}
		}
		res.Generated[p.index] = local
	}
	return res, nil
}

// What toSystem decided about a write.
const (
	writeIt = iota
	skipWrite
	deferWrite
)

// toSystem translates one write to the system's table. It returns
// skipWrite for the delete of a record the system never held and
// deferWrite for a row that references a record the system does not hold
// yet.
func (w *Adapter) toSystem(st *tableState, wr adapters.Write) (adapters.Write, int, error) {
	out := adapters.Write{Collection: st.system.Name, Key: wr.Key}
	if st.ids != nil {
		w.mu.Lock()
		local, known := st.ids.localKey(wr.Key)
		w.mu.Unlock()
		switch {
		case known:
			out.Key = local
		case wr.Row == nil:
			return out, skipWrite, nil
		default:
			out.Key, out.NewKey = "", wr.Key
		}
	}
	if wr.Row == nil {
		return out, writeIt, nil
	}
	row := maps.Clone(wr.Row)
	if st.ids != nil {
		delete(row, st.ids.field)
	}
	refs, err := w.mappedRefs(st, row)
	if err != nil {
		return out, writeIt, adapters.BadRow(wr.Collection, wr.Key, err)
	}
	for _, r := range refs {
		w.mu.Lock()
		lk, known := r.ids.localKey(r.key)
		w.mu.Unlock()
		if known {
			lv, _ := lk.Values()
			row[r.field] = lv[0]
			continue
		}
		live := true
		if w.live != nil {
			if live, err = w.live(r.coll, r.key); err != nil {
				return out, writeIt, err
			}
		}
		if live {
			return out, deferWrite, nil
		}
		row[r.field] = crdt.Null()
	}
	if err := w.guard.check(w, st, wr); err != nil {
		return out, writeIt, adapters.BadRow(wr.Collection, wr.Key, err)
	}
	sr, err := st.tm.ToSystem(row)
	if err != nil {
		return out, writeIt, adapters.BadRow(wr.Collection, wr.Key, err)
	}
	if st.ids != nil {
		if out.NewKey != "" {
			delete(sr, st.ids.column)
		} else {
			lv, _ := out.Key.Values()
			sr[st.ids.column] = lv[0]
		}
	}
	out.Row = sr
	return out, writeIt, nil
}

// rowErrorToCollection names a bad row of the system's batch by its
// collection and collection key. An error whose row it cannot tell apart
// (two inserts of new records) is returned without a row, so that the
// engine applies the batch one write at a time.
func (w *Adapter) rowErrorToCollection(err error, plan []planned) error {
	re, ok := adapters.RowErrorOf(err)
	if !ok {
		return err
	}
	var match []planned
	for _, p := range plan {
		if p.write.Collection == re.Collection && (p.write.Key == re.Key || (len(plan) == 1)) {
			match = append(match, p)
		}
	}
	// Writes of one record (the same key, or the same NewKey) name it
	// alike; writes of several it cannot tell apart.
	if len(match) == 0 || slices.ContainsFunc(match[1:], func(p planned) bool {
		return p.write.Key != match[0].write.Key || p.write.NewKey != match[0].write.NewKey
	}) {
		return errors.Newf("%s", err.Error())
	}
	orig := match[0]
	coll, key := orig.write.Collection, orig.write.Key
	if orig.st != nil {
		coll = orig.st.coll.Name
		if orig.write.NewKey != "" {
			key = orig.write.NewKey
		} else if orig.st.ids != nil {
			w.mu.Lock()
			key = orig.st.ids.collKey(orig.write.Key)
			w.mu.Unlock()
		}
	}
	if errors.Is(err, adapters.ErrBadRow) {
		return adapters.BadRow(coll, key, re.Err)
	}
	return errors.Mark(&adapters.RowError{Collection: coll, Key: key, Err: re.Err}, adapters.ErrUnavailable)
}

// RoundTrip returns the collection row that the system holds once row is
// written into it and read back: row itself when the mapping carries every
// value exactly. Verification compares the system with the merged state
// through it, so that a value the mapping normalises is not drift.
func (w *Adapter) RoundTrip(collection string, row crdt.Row) (crdt.Row, error) {
	st := w.collState(collection)
	if st == nil || row == nil {
		return row, nil
	}
	out, err := roundTrip(st, row)
	if err != nil {
		return nil, err
	}
	// A reference to a record this system does not hold is written as
	// null (see SetLive).
	refs, err := w.mappedRefs(st, out)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		w.mu.Lock()
		_, known := r.ids.localKey(r.key)
		w.mu.Unlock()
		if !known {
			out[r.field] = crdt.Null()
		}
	}
	return out, nil
}

// roundTrip maps a collection row to the system's columns and back,
// keeping the fields the mapping does not carry (key, references) as they
// are.
func roundTrip(st *tableState, row crdt.Row) (crdt.Row, error) {
	sr, err := st.tm.ToSystem(maps.Clone(row))
	if err != nil {
		return nil, err
	}
	back, err := st.tm.ToCollection(sr)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(row)
	for f, v := range back {
		if _, ok := row[f]; ok {
			out[f] = v
		}
	}
	return out, nil
}

// differing lists the fields whose values differ between two rows, sorted.
func differing(a, b crdt.Row) []string {
	var out []string
	for f, v := range a {
		if !crdt.Equal(v, b[f]) {
			out = append(out, f)
		}
	}
	for f := range b {
		if _, ok := a[f]; !ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// guard refuses writes of records that would never settle.
//
// A mapping that is not exact (an expression that trims spaces, a
// conversion that rounds) may change a value once on its way into the
// system and back: the value the system holds is then a fixed point, and
// the record settles. One that changes it again on every round trip would
// keep the record moving for as long as it is written: such a write is
// refused at once, naming the fields. And whatever the cause (a trigger in
// the system that rewrites what is written, a mapping that disagrees with
// another system's), a record written repeatedly with the same merged row
// (repairs that the system never keeps) is refused after maxRepeats.
type guard struct {
	mu   sync.Mutex
	last map[crdt.ID]guardEntry
}

type guardEntry struct {
	sum     [sha256.Size]byte
	repeats int
}

// maxRepeats is how many times in a row a record may be written with the
// same merged row before the guard refuses it.
const maxRepeats = 8

// maxGuarded bounds the records the guard remembers; past it, it forgets
// them all (a loop is found again within maxRepeats writes).
const maxGuarded = 1 << 16

// ErrLoop marks a write the guard refused.
var ErrLoop = errors.New("mapping: record does not settle")

func (g *guard) check(w *Adapter, st *tableState, wr adapters.Write) error {
	rt, err := roundTrip(st, wr.Row)
	if err != nil {
		return err
	}
	if fields := differing(wr.Row, rt); len(fields) > 0 {
		rt2, err := roundTrip(st, rt)
		if err != nil {
			return err
		}
		if again := differing(rt, rt2); len(again) > 0 {
			w.loops.Add(1)
			return errors.Mark(errors.WithHint(
				errors.Newf("mapping of %s: fields %s change on every round trip through the system (%s, then %s)",
					st.system.Name, strings.Join(again, ", "), show(rt, again), show(rt2, again)),
				"make the expressions or conversions of these fields exact inverses, or let them normalise once (a second round trip must change nothing)"), ErrLoop)
		}
		w.lossy.Add(1)
	}
	id := crdt.MakeID(wr.Collection, wr.Key)
	g.mu.Lock()
	e := g.last[id]
	g.mu.Unlock()
	if e.repeats >= maxRepeats && e.sum == rowSum(wr.Row) {
		g.forget(id)
		w.loops.Add(1)
		return errors.Mark(errors.WithHint(
			errors.Newf("mapping of %s: the same merged row was written %d times in a row and the system did not keep it", st.system.Name, e.repeats+1),
			"look for a trigger or an application that rewrites these rows after each write, or a mapping that disagrees with another system's"), ErrLoop)
	}
	return nil
}

// written counts a write the system took.
func (g *guard) written(wr adapters.Write) {
	sum, id := rowSum(wr.Row), crdt.MakeID(wr.Collection, wr.Key)
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.last[id]
	if e.sum == sum {
		e.repeats++
	} else {
		e = guardEntry{sum: sum}
	}
	if len(g.last) >= maxGuarded {
		clear(g.last)
	}
	g.last[id] = e
}

func (g *guard) forget(id crdt.ID) {
	g.mu.Lock()
	delete(g.last, id)
	g.mu.Unlock()
}

// rowSum is a digest of a row's fields and values.
func rowSum(row crdt.Row) [sha256.Size]byte {
	var b []byte
	for _, f := range slices.Sorted(maps.Keys(row)) {
		b = append(b, f...)
		b = row[f].AppendCanonical(append(b, 0))
	}
	return sha256.Sum256(b)
}

// show renders the named fields of a row for an error.
func show(row crdt.Row, fields []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + "=" + row[f].String()
	}
	return strings.Join(parts, " ")
}
