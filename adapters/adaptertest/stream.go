package adaptertest

import (
	"bytes"
	"context"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// waitTimeout bounds every wait of the suite for something an adapter
// should deliver. It is generous because tests run with -race on a busy
// machine; a passing run never waits for it.
const waitTimeout = 30 * time.Second

// env is one scenario's system and the helpers around it.
type env struct {
	t      *testing.T
	ctx    context.Context
	h      Harness
	f      Features
	sys    System
	tables map[string]*TableSpec
	// barriers counts the barrier rows written, shared by sub-envs.
	barriers *atomic.Int64
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	return newEnvWith(t, h, Tables(h.Features()))
}

// newEnvWith is newEnv on a system holding specs, which include PairsTable
// (the barriers').
func newEnvWith(t *testing.T, h Harness, specs []TableSpec) *env {
	t.Helper()
	f := h.Features()
	e := &env{t: t, ctx: t.Context(), h: h, f: f, tables: map[string]*TableSpec{}, barriers: new(atomic.Int64)}
	for i := range specs {
		e.tables[specs[i].Name] = &specs[i]
	}
	e.sys = h.NewSystem(t, specs)
	return e
}

// with returns a copy of e that reports to t, for subtests.
func (e *env) with(t *testing.T) *env {
	c := *e
	c.t = t
	c.ctx = t.Context()
	return &c
}

// open opens an adapter and closes it when the test ends (if the test did
// not close it first).
func (e *env) open() adapters.Adapter {
	e.t.Helper()
	a, err := e.sys.Open(e.ctx)
	if err != nil {
		e.t.Fatalf("open adapter: %+v", err)
	}
	c := &closer{Adapter: a}
	e.t.Cleanup(func() {
		if err := c.Close(); err != nil {
			e.t.Errorf("close adapter: %v", err)
		}
	})
	return c
}

// closer makes Close idempotent so that scenarios may close an adapter
// early (a restart) and the cleanup closes it only if they did not.
type closer struct {
	adapters.Adapter
	once sync.Once
	err  error
}

func (c *closer) Close() error {
	c.once.Do(func() { c.err = c.Adapter.Close() })
	return c.err
}

func (e *env) exec(ops ...Op) {
	e.t.Helper()
	if err := e.sys.Exec(e.ctx, ops...); err != nil {
		e.t.Fatalf("user write %s: %+v", describeOps(ops), err)
	}
}

func describeOps(ops []Op) string {
	parts := make([]string, len(ops))
	for i, op := range ops {
		parts[i] = op.Kind.String() + " " + op.Table
	}
	if len(parts) > 4 {
		parts = append(parts[:4], "...")
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// barrier makes a user write of a fresh row in PairsTable and returns its
// change. Once capture delivers it, capture has caught up with everything
// committed before it: this is how the suite waits without sleeping.
func (e *env) barrier() adapters.Change {
	e.t.Helper()
	n := e.barriers.Add(1)
	row := e.pairRow(barrierTenant, n, "barrier "+strconv.FormatInt(n, 10))
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: row})
	return e.change(PairsTable, row)
}

const barrierTenant = "~barrier"

func isBarrier(c adapters.Change) bool {
	if c.Collection != PairsTable {
		return false
	}
	vals, err := c.Key.Values()
	if err == nil && len(vals) == 1 && vals[0].Kind() == crdt.KindString {
		// A record ID (Features.RecordIDs) encodes the key.
		b, herr := hex.DecodeString(vals[0].AsString())
		if herr != nil {
			return false
		}
		vals, err = crdt.Key(b).Values()
	}
	return err == nil && len(vals) == 2 && crdt.Equal(vals[0], crdt.String(barrierTenant))
}

// key builds the key of row in table from the columns that name its
// records.
func (e *env) key(table string, row crdt.Row) crdt.Key {
	e.t.Helper()
	spec := e.tables[table]
	vals := make([]crdt.Value, len(spec.RecordKey()))
	for i, k := range spec.RecordKey() {
		vals[i] = row[k]
	}
	k, err := crdt.MakeKey(vals...)
	if err != nil {
		e.t.Fatalf("key of %s row %v: %v", table, row, err)
	}
	return k
}

// full returns row with every synced column of table present, nulls
// explicit, and no other.
func (e *env) full(table string, row crdt.Row) crdt.Row {
	out := crdt.Row{}
	spec := e.tables[table]
	for _, c := range spec.Columns {
		if !spec.IsSynced(c.Name) {
			continue
		}
		if v, ok := row[c.Name]; ok {
			out[c.Name] = v
		} else {
			out[c.Name] = crdt.Null()
		}
	}
	return out
}

// change is the Change a user insert of the whole row should produce: no
// old row.
func (e *env) change(table string, row crdt.Row) adapters.Change {
	return adapters.Change{Collection: table, Key: e.key(table, row), Row: e.full(table, row)}
}

// update is the Change a user update of the row old to row should produce.
func (e *env) update(table string, old, row crdt.Row) adapters.Change {
	c := e.change(table, row)
	c.Old = e.full(table, old)
	return c
}

// deletion is the Change a user delete of the row old should produce.
func (e *env) deletion(table string, old crdt.Row) adapters.Change {
	return adapters.Change{Collection: table, Key: e.key(table, old), Old: e.full(table, old)}
}

// snapshot takes a snapshot, hands each batch to fn (if not nil), checks
// that no batch carries a cursor, and returns the snapshot's cursor.
func (e *env) snapshot(a adapters.Adapter, fn func(adapters.Batch) error) []byte {
	e.t.Helper()
	cursor, err := a.Snapshot(e.ctx, func(_ context.Context, b adapters.Batch) error {
		if len(b.Cursor) != 0 {
			e.t.Errorf("snapshot batch of %d rows carries a cursor (%x): only Snapshot's returned cursor may be stored", len(b.Changes), b.Cursor)
		}
		for _, c := range b.Changes {
			if c.Old != nil {
				e.t.Errorf("snapshot %s carries an old row %s", describe(c), describeRow(c.Old))
			}
		}
		if fn == nil {
			return nil
		}
		return fn(b)
	})
	if err != nil {
		e.t.Fatalf("snapshot: %+v", err)
	}
	if len(cursor) == 0 {
		e.t.Fatalf("snapshot returned an empty cursor")
	}
	return cursor
}

// head returns a.Head, failing the test on an error or an empty cursor.
func (e *env) head(a adapters.Adapter) []byte {
	e.t.Helper()
	h, err := a.Head(e.ctx)
	if err != nil {
		e.t.Fatalf("head: %+v", err)
	}
	if len(h) == 0 {
		e.t.Fatalf("head returned an empty cursor")
	}
	return h
}

// batch is a captured batch with the cursor it follows: the cursor capture
// started from, or the previous batch's.
type batch struct {
	adapters.Batch
	Prev []byte
}

// stream runs Capture in a goroutine and hands its batches to the test.
type stream struct {
	e       *env
	cancel  context.CancelFunc
	done    chan error
	batches chan batch
	stopped bool
	// delivered is the cursor of the last batch Capture delivered.
	delivered *atomic.Pointer[[]byte]
	// barriers holds the barrier changes Capture delivered, by key and
	// whether a row or a delete, for apply to wait on without taking
	// batches from the test.
	barriers *sync.Map
}

// capture starts Capture from cursor. The stream stops when the test ends
// if the test did not stop it.
func (e *env) capture(a adapters.Adapter, cursor []byte) *stream {
	ctx, cancel := context.WithCancel(e.ctx)
	s := &stream{e: e, cancel: cancel, done: make(chan error, 1), batches: make(chan batch, 64), delivered: new(atomic.Pointer[[]byte]),
		barriers: new(sync.Map)}
	prev := slices.Clone(cursor)
	sink := func(ctx context.Context, b adapters.Batch) error {
		// The adapter may reuse its buffers once the sink returns.
		cp := batch{Batch: adapters.Batch{Cursor: slices.Clone(b.Cursor), Changes: make([]adapters.Change, len(b.Changes))}, Prev: prev}
		for i, c := range b.Changes {
			cp.Changes[i] = adapters.Change{Collection: c.Collection, Key: c.Key, Row: maps.Clone(c.Row), Old: maps.Clone(c.Old)}
		}
		select {
		case s.batches <- cp:
			prev = cp.Cursor
			for _, c := range cp.Changes {
				if isBarrier(c) {
					s.barriers.Store(barrierSeen{c.Key, c.Row != nil}, true)
				}
			}
			s.delivered.Store(&cp.Cursor)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	go func() { s.done <- a.Capture(ctx, slices.Clone(cursor), sink) }()
	e.t.Cleanup(s.stop)
	return s
}

// apply applies writes as the engine does: a write the adapter defers
// (the system holds a change to its record that capture has not reported
// and Ack not confirmed) is applied again once capture has delivered every
// change committed so far and it is acknowledged. It returns what the last
// Apply did.
func (s *stream) apply(a adapters.Adapter, writes []adapters.Write) adapters.Applied {
	s.e.t.Helper()
	for attempt := 0; ; attempt++ {
		res, err := a.Apply(s.e.ctx, writes, nil)
		if err != nil {
			s.e.t.Fatalf("apply: %+v", err)
		}
		if len(res.Deferred) == 0 {
			return res
		}
		if attempt == 3 {
			s.e.t.Fatalf("apply deferred writes %v after every change was captured and acknowledged", res.Deferred)
		}
		head := s.e.head(a)
		// Capture delivers nothing after head unless something changes
		// (head may lie past the last change, after transactions capture
		// drops), and where it polls, it finds deletes by a listing: a
		// barrier inserted and deleted marks when it has caught up.
		b := s.e.barrier()
		s.waitBarrier(barrierSeen{b.Key, true})
		s.e.exec(Op{Kind: Delete, Table: PairsTable, Row: b.Row})
		s.waitBarrier(barrierSeen{b.Key, false})
		deadline := time.Now().Add(waitTimeout)
		for {
			if d := s.delivered.Load(); d != nil && bytes.Compare(*d, head) >= 0 {
				if err := a.Ack(s.e.ctx, *d); err != nil {
					s.e.t.Fatalf("ack: %+v", err)
				}
				break
			}
			if time.Now().After(deadline) {
				s.e.t.Fatalf("capture did not deliver up to head %x within %s", head, waitTimeout)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// barrierSeen names a barrier change: its key, and whether it is the
// barrier's row or its delete.
type barrierSeen struct {
	key crdt.Key
	row bool
}

// waitBarrier waits until Capture has delivered the barrier change b,
// without taking batches from the test.
func (s *stream) waitBarrier(b barrierSeen) {
	s.e.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, ok := s.barriers.Load(b); ok {
			return
		}
		if time.Now().After(deadline) {
			s.e.t.Fatalf("capture did not deliver barrier %s (row %v) within %s", b.key, b.row, waitTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// with returns a view of s that reports to e's test, for subtests.
func (s *stream) with(e *env) *stream {
	c := *s
	c.e = e
	return &c
}

// stop cancels Capture and checks that it returned because of it.
func (s *stream) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			s.e.t.Errorf("capture returned %+v, want nil or context.Canceled after cancel", err)
		}
	case <-time.After(waitTimeout):
		s.e.t.Errorf("capture did not return within %s of its context being cancelled", waitTimeout)
	}
}

// next returns the next batch, failing the test if none comes in time or
// Capture ends.
func (s *stream) next() batch {
	s.e.t.Helper()
	select {
	case b := <-s.batches:
		s.check(b)
		return b
	case err := <-s.done:
		s.stopped = true
		s.e.t.Fatalf("capture ended early: %+v", err)
	case <-time.After(waitTimeout):
		s.e.t.Fatalf("no batch captured within %s", waitTimeout)
	}
	return batch{}
}

// until collects batches until one holds the change want (a barrier: its
// collection, key and row), and returns them all.
func (s *stream) until(want adapters.Change) []batch {
	s.e.t.Helper()
	var out []batch
	for {
		b := s.next()
		out = append(out, b)
		for _, c := range b.Changes {
			if c.Collection == want.Collection && c.Key == want.Key && s.e.same(c.Row, want.Row) {
				return out
			}
		}
	}
}

// catchUp writes a barrier and returns the batches captured up to it.
// Where capture polls (Features.Polling), deletes are found by a listing
// that may run after the poll that found the barrier: the barrier is then
// deleted too, and capture has caught up once it reports that delete.
func (s *stream) catchUp() (barrier adapters.Change, batches []batch) {
	s.e.t.Helper()
	b := s.e.barrier()
	batches = s.until(b)
	if s.e.f.Polling {
		s.e.exec(Op{Kind: Delete, Table: PairsTable, Row: b.Row})
		batches = append(batches, s.until(s.e.deletion(PairsTable, b.Row))...)
	}
	return b, batches
}

// sync writes a barrier and returns the changes captured before it, the
// barrier left out, and the batches they came in.
func (s *stream) sync() ([]adapters.Change, []batch) {
	s.e.t.Helper()
	b, batches := s.catchUp()
	var out []adapters.Change
	seen := false
	for _, bt := range batches {
		for _, c := range bt.Changes {
			if isBarrier(c) {
				if c.Key == b.Key && c.Row != nil {
					seen = true
					s.e.checkChange(c, b)
				}
				continue
			}
			// Where capture polls, deletes come after the barrier.
			if seen && !s.e.f.Polling {
				s.e.t.Errorf("change %s captured after the barrier, with nothing written after it", describe(c))
			}
			out = append(out, c)
		}
	}
	return out, batches
}

// check verifies what every batch must satisfy: a cursor after the one it
// follows, and changes that name a known table, carry a key matching their
// key columns and name every column of the table (nulls explicit).
func (s *stream) check(b batch) {
	s.e.t.Helper()
	if len(b.Cursor) == 0 {
		s.e.t.Errorf("batch of %d changes has an empty cursor", len(b.Changes))
	} else if bytes.Compare(b.Cursor, b.Prev) <= 0 {
		s.e.t.Errorf("batch cursor %x is not after the cursor it follows, %x (cursors compare with bytes.Compare in capture order)", b.Cursor, b.Prev)
	}
	if len(b.Changes) == 0 {
		s.e.t.Errorf("capture delivered an empty batch")
	}
	for _, c := range b.Changes {
		s.e.checkShape(c)
	}
}

func (e *env) checkShape(c adapters.Change) {
	e.t.Helper()
	spec, ok := e.tables[c.Collection]
	if !ok {
		e.t.Errorf("change for unknown collection %q", c.Collection)
		return
	}
	if err := c.Key.Validate(); err != nil {
		e.t.Errorf("%s: invalid key: %v", describe(c), err)
		return
	}
	if c.Row != nil {
		for _, col := range spec.Columns {
			if _, ok := c.Row[col.Name]; !ok && spec.IsSynced(col.Name) {
				e.t.Errorf("%s: row does not name column %s (nulls must be explicit)", describe(c), col.Name)
			}
		}
		e.checkRowShape(c, "row", spec, c.Row)
	}
	if c.Old != nil {
		// An old row may leave out columns whose values the system did not
		// send, but its key is the change's.
		e.checkRowShape(c, "old row", spec, c.Old)
	}
}

func (e *env) checkRowShape(c adapters.Change, what string, spec *TableSpec, row crdt.Row) {
	e.t.Helper()
	for name, v := range row {
		col := spec.Column(name)
		if col == nil {
			e.t.Errorf("%s: %s names unknown column %s", describe(c), what, name)
			continue
		}
		if !spec.IsSynced(name) {
			e.t.Errorf("%s: %s names column %s, which is local", describe(c), what, name)
			continue
		}
		if !v.IsNull() && v.Kind() != col.Kind {
			e.t.Errorf("%s: %s column %s holds a %s, want %s", describe(c), what, name, v.Kind(), col.Kind)
		}
	}
	vals := make([]crdt.Value, len(spec.RecordKey()))
	for i, k := range spec.RecordKey() {
		vals[i] = row[k]
		if row[k].IsNull() {
			e.t.Errorf("%s: %s key column %s is null", describe(c), what, k)
			return
		}
	}
	if k, err := crdt.MakeKey(vals...); err != nil || k != c.Key {
		e.t.Errorf("%s: key %s does not match the %s's key columns (%s)", describe(c), c.Key, what, k)
	}
}

func describe(c adapters.Change) string {
	if c.Row == nil {
		return "delete " + c.Collection + "/" + c.Key.String()
	}
	return "upsert " + c.Collection + "/" + c.Key.String()
}

func describeRow(r crdt.Row) string {
	if r == nil {
		return "<deleted>"
	}
	names := slices.Sorted(maps.Keys(r))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		s := r[n].String()
		if len(s) > 60 {
			s = s[:50] + "...(" + strconv.Itoa(len(s)) + " chars)"
		}
		parts = append(parts, n+"="+s)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// same compares rows as rowsEqual does, and where the system has no null
// (Features.ZeroIsNull) takes a zero value ("", 0, false) for null.
func (e *env) same(a, b crdt.Row) bool {
	if e.f.ZeroIsNull {
		a, b = zeroIsNull(a), zeroIsNull(b)
	}
	return rowsEqual(a, b)
}

// zeroIsNull returns row with its zero strings, numbers and booleans null.
func zeroIsNull(row crdt.Row) crdt.Row {
	if row == nil {
		return nil
	}
	out := make(crdt.Row, len(row))
	for n, v := range row {
		switch {
		case v.Kind() == crdt.KindString && v.AsString() == "",
			v.Kind() == crdt.KindInt && v.AsInt() == 0,
			v.Kind() == crdt.KindFloat && v.AsFloat() == 0,
			v.Kind() == crdt.KindBool && !v.AsBool():
			v = crdt.Null()
		}
		out[n] = v
	}
	return out
}

// rowsEqual compares rows treating a missing column as null.
func rowsEqual(a, b crdt.Row) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	for n, v := range a {
		if !crdt.Equal(v, b[n]) {
			return false
		}
	}
	for n, v := range b {
		if _, ok := a[n]; !ok && !v.IsNull() {
			return false
		}
	}
	return true
}

// checkChange compares a captured change with the expected one. The old
// row must be exactly as expected (nil for an insert) when the system
// reports old rows, and whenever the adapter reports one.
func (e *env) checkChange(got, want adapters.Change) {
	e.t.Helper()
	if got.Collection != want.Collection || got.Key != want.Key || !e.same(got.Row, want.Row) {
		e.t.Errorf("captured %s %s\n                want %s %s", describe(got), describeRow(got.Row), describe(want), describeRow(want.Row))
		return
	}
	if (e.f.OldRows || got.Old != nil) && !e.same(got.Old, want.Old) {
		e.t.Errorf("captured %s with old row %s\n                want old row %s", describe(got), describeOld(got.Old), describeOld(want.Old))
	}
}

func describeOld(r crdt.Row) string {
	if r == nil {
		return "<none>"
	}
	return describeRow(r)
}

// checkChanges compares captured changes with the expected sequence.
func (e *env) checkChanges(got, want []adapters.Change) {
	e.t.Helper()
	if e.f.Polling {
		e.checkPolled(got, want)
		return
	}
	n := max(len(got), len(want))
	for i := range n {
		switch {
		case i >= len(got):
			e.t.Errorf("change %d missing: want %s %s", i, describe(want[i]), describeRow(want[i].Row))
		case i >= len(want):
			e.t.Errorf("change %d unexpected: %s %s", i, describe(got[i]), describeRow(got[i].Row))
		default:
			e.checkChange(got[i], want[i])
		}
	}
}

// state is a set of rows by collection and key: what a system holds.
type state map[string]map[crdt.Key]crdt.Row

func (s state) put(c adapters.Change) {
	m := s[c.Collection]
	if m == nil {
		m = map[crdt.Key]crdt.Row{}
		s[c.Collection] = m
	}
	if c.Row == nil {
		delete(m, c.Key)
	} else {
		m[c.Key] = c.Row
	}
}

// putWrite records what a system holds after Apply of w.
func (s state) putWrite(w adapters.Write) {
	s.put(adapters.Change{Collection: w.Collection, Key: w.Key, Row: w.Row})
}

// systemState reads every table of the system through the harness.
func (e *env) systemState() state {
	e.t.Helper()
	st := state{}
	for name := range e.tables {
		rows, err := e.sys.Rows(e.ctx, name)
		if err != nil {
			e.t.Fatalf("read rows of %s: %+v", name, err)
		}
		st[name] = map[crdt.Key]crdt.Row{}
		for _, r := range rows {
			st.put(adapters.Change{Collection: name, Key: e.key(name, r), Row: r})
		}
	}
	return st
}

// checkState compares two states table by table, ignoring barrier rows.
func (e *env) checkState(what string, got, want state, norm func(crdt.Row) crdt.Row) {
	e.t.Helper()
	if norm == nil {
		norm = func(r crdt.Row) crdt.Row { return r }
	}
	names := slices.Sorted(maps.Keys(e.tables))
	bad := 0
	for _, name := range names {
		keys := map[crdt.Key]bool{}
		for k := range got[name] {
			keys[k] = true
		}
		for k := range want[name] {
			keys[k] = true
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			if isBarrier(adapters.Change{Collection: name, Key: k}) {
				continue
			}
			g, w := got[name][k], want[name][k]
			if g != nil {
				g = norm(g)
			}
			if w != nil {
				w = norm(w)
			}
			if !e.same(g, w) {
				bad++
				if bad <= 10 {
					e.t.Errorf("%s: %s/%s is %s, want %s", what, name, k, describeRow(g), describeRow(w))
				}
			}
		}
	}
	if bad > 10 {
		e.t.Errorf("%s: %d rows differ in all", what, bad)
	}
}

// checkPolled compares captured changes with the expected sequence record
// by record, for a capture that polls (Features.Polling): the changes
// captured for a record are changes written to it, in the order written,
// and the last is the last written. A record inserted and deleted may be
// missing altogether.
func (e *env) checkPolled(got, want []adapters.Change) {
	e.t.Helper()
	type record struct {
		coll string
		key  crdt.Key
	}
	var order []record
	gotBy, wantBy := map[record][]adapters.Change{}, map[record][]adapters.Change{}
	for _, c := range want {
		r := record{c.Collection, c.Key}
		if _, ok := wantBy[r]; !ok {
			order = append(order, r)
		}
		wantBy[r] = append(wantBy[r], c)
	}
	for _, c := range got {
		r := record{c.Collection, c.Key}
		if _, ok := wantBy[r]; !ok {
			e.t.Errorf("change unexpected: %s %s", describe(c), describeRow(c.Row))
			continue
		}
		gotBy[r] = append(gotBy[r], c)
	}
	for _, r := range order {
		g, w := gotBy[r], wantBy[r]
		lastW := w[len(w)-1]
		if len(g) == 0 {
			if lastW.Row == nil && w[0].Row != nil && w[0].Old == nil {
				continue // inserted and deleted between two polls
			}
			e.t.Errorf("%s/%s: nothing captured, want at least the last change %s %s", r.coll, r.key, describe(lastW), describeRow(lastW.Row))
			continue
		}
		// Every change but the last is one written before the last, in
		// order; the last is the last written.
		j, prev := 0, 0
		for _, c := range g[:len(g)-1] {
			for j < len(w)-1 && !e.same(c.Row, w[j].Row) {
				j++
			}
			if j == len(w)-1 {
				e.t.Errorf("%s/%s: captured %s %s, which is not a change written to it (after the ones captured before it, and before the last)",
					r.coll, r.key, describe(c), describeRow(c.Row))
				break
			}
			e.checkPolledChange(c, w, j, prev)
			j++
			prev = j
		}
		e.checkPolledChange(g[len(g)-1], w, len(w)-1, prev)
	}
}

// checkPolledChange checks a change captured by polling against w[j], the
// write it reports. A poll sees the record as it is, not each write, so
// the old row it reports is the row it last saw: none, or a row the record
// held before w[j] (a write's own old row, which an Apply may have left, or
// the row of the write before it) and no earlier than the change captured
// before this one. An old
// row from w[j] on would hide the write's own fields from the diff that
// takes the change's intent, and lose them.
func (e *env) checkPolledChange(got adapters.Change, w []adapters.Change, j, prev int) {
	e.t.Helper()
	row := got
	row.Old = nil
	e.checkChange(row, w[j])
	if got.Old == nil {
		return
	}
	// held(i) are the rows the record may have held just before w[i]: the
	// write's own old row (which an Apply between the writes may have
	// left), and the row of the write before it.
	held := func(i int) []crdt.Row {
		out := []crdt.Row{w[i].Old}
		if i > 0 {
			out = append(out, w[i-1].Row)
		}
		return out
	}
	var alts []string
	for i := max(prev, 0); i <= j; i++ {
		for _, h := range held(i) {
			if h != nil && e.same(got.Old, h) {
				return
			}
			alts = append(alts, describeOld(h))
		}
	}
	e.t.Errorf("captured %s with old row %s\n                want none or one of the rows it held before: %s",
		describe(got), describeOld(got.Old), strings.Join(alts, ", "))
}
