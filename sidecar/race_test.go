package sidecar

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	_ "modernc.org/sqlite"
)

// sqliteNode is an agent beside its own SQLite database.
type sqliteNode struct {
	a     *Agent
	db    *sql.DB
	cfg   Config
	path  string
	knobs testingKnobs
}

func startSQLiteNode(t *testing.T, dir, name string, join []string, poll time.Duration, mods ...func(*Config)) *sqliteNode {
	t.Helper()
	n := newSQLiteNode(t, dir, name, join, poll, mods...)
	n.start(t)
	return n
}

// newSQLiteNode prepares a node and its database without starting it, so
// that a test can set knobs first.
func newSQLiteNode(t *testing.T, dir, name string, join []string, poll time.Duration, mods ...func(*Config)) *sqliteNode {
	t.Helper()
	n := &sqliteNode{path: filepath.Join(dir, name+".db")}
	db, err := sql.Open("sqlite", "file:"+n.path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT, phone TEXT, tags JSON)`); err != nil {
		t.Fatal(err)
	}
	n.db = db
	n.cfg = Config{
		Node:    name,
		Data:    filepath.Join(dir, name+"-store"),
		Bind:    "127.0.0.1:0",
		Join:    join,
		API:     APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterSQLite, DSN: n.path, PollInterval: poll},
		Collections: map[string]CollectionConfig{
			"customers": {Fields: map[string]FieldConfig{"tags": {Policy: "orset"}}},
		},
	}
	for _, mod := range mods {
		mod(&n.cfg)
	}
	return n
}

func (n *sqliteNode) start(t *testing.T) {
	t.Helper()
	a, err := Start(context.Background(), n.cfg, Options{Logger: testLogger(t), knobs: n.knobs})
	if err != nil {
		t.Fatal(err)
	}
	n.a = a
	t.Cleanup(func() { _ = a.Close() })
	waitFor(t, 10*time.Second, n.cfg.Node+" ready", a.Ready)
}

func (n *sqliteNode) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := n.db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func (n *sqliteNode) row(t *testing.T, id int) string {
	t.Helper()
	var s string
	err := n.db.QueryRow(`SELECT name || '|' || COALESCE(status,'') || '|' || COALESCE(phone,'') || '|' || COALESCE(tags,'') FROM customers WHERE id = ?`, id).Scan(&s)
	if err == sql.ErrNoRows {
		return "<none>"
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// converged waits until both databases hold want for the row and the
// replicas agree with nothing left to apply.
func converged(t *testing.T, id int, want string, nodes ...*sqliteNode) {
	t.Helper()
	waitFor(t, 15*time.Second, "row "+want+" everywhere", func() bool {
		for _, n := range nodes {
			if n.row(t, id) != want || n.a.Store().PendingLen() > 0 || n.a.Digest() != nodes[0].a.Digest() {
				return false
			}
		}
		return true
	})
}

// A user's change that capture has not taken yet, to a record a remote
// change reaches: the apply must leave the user's row alone (writing the
// merged state over it would show the user an older row, and their next
// statement could act on it), and apply once capture has merged both
// changes, which touched different columns: both survive, in the merged
// state and in both systems.
func TestCaptureRacesApply(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	// b captures once at start and then not for a minute: its user's
	// change waits in the change log while a's change reaches b.
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Minute)

	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Prospect', '100', '["eu","trial"]')`)
	converged(t, 1, `Acme|Prospect|100|["eu","trial"]`, a, b)

	// b's user changes the phone and the tags; capture does not see it yet.
	b.exec(t, `UPDATE customers SET phone = '200', tags = '["eu","vip"]' WHERE id = 1`)
	// a's user changes the status and adds a tag; it reaches b's store, and
	// b's applier tries to write it.
	a.exec(t, `UPDATE customers SET status = 'Active', tags = '["eu","priority","trial"]' WHERE id = 1`)
	waitFor(t, 10*time.Second, "a's change at b, and b's apply tried", func() bool {
		return b.storeRow(t, 1) == `Acme|Active|100|["eu","priority","trial"]` &&
			(b.a.Store().PendingLen() == 0 || testutil.ToFloat64(b.a.m.applyDeferred) > 0)
	})
	if got, want := b.row(t, 1), `Acme|Prospect|200|["eu","vip"]`; got != want {
		t.Fatalf("b's database holds %q, want its user's uncaptured row %q left alone", got, want)
	}

	// b restarts with fast capture and finds its user's change in the log.
	if err := b.a.Close(); err != nil {
		t.Fatal(err)
	}
	b.cfg.Adapter.PollInterval = time.Millisecond
	b.start(t)

	want := `Acme|Active|200|["eu","priority","vip"]`
	converged(t, 1, want, a, b)
}

// storeRow renders the merged state of customer id as row renders the
// database's row.
func (n *sqliteNode) storeRow(t *testing.T, id int) string {
	t.Helper()
	return storeRow(t, n.a, id)
}

func storeRow(t *testing.T, a *Agent, id int) string {
	t.Helper()
	r, err := a.Store().Get("customers", crdt.IntKey(int64(id)))
	if err != nil {
		t.Fatal(err)
	}
	view := r.View(mustCollection(t, a, "customers"))
	if view == nil {
		return "<none>"
	}
	str := func(f string) string {
		if v, ok := view[f]; ok {
			return v.Text()
		}
		return ""
	}
	tags := ""
	if v, ok := view["tags"]; ok {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		tags = string(b)
	}
	return strings.Join([]string{str("name"), str("status"), str("phone"), tags}, "|")
}

func mustCollection(t *testing.T, a *Agent, name string) *crdt.Collection {
	t.Helper()
	c, err := a.schema.Collection(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tablesDiffer compares customer id in every database with the other
// databases and with its own store's merged state; it returns "" when all
// agree, or what differs.
func tablesDiffer(t *testing.T, id int, nodes ...*sqliteNode) string {
	t.Helper()
	var diffs []string
	first := nodes[0].row(t, id)
	for _, n := range nodes {
		db, st := n.row(t, id), n.storeRow(t, id)
		if db != first {
			diffs = append(diffs, fmt.Sprintf("%s's database holds %q, %s's holds %q", n.cfg.Node, db, nodes[0].cfg.Node, first))
		}
		if db != st {
			diffs = append(diffs, fmt.Sprintf("%s's database holds %q, its store %q", n.cfg.Node, db, st))
		}
	}
	return strings.Join(diffs, "; ")
}

// settled waits until the stores agree and nothing is left to apply.
func settled(t *testing.T, nodes ...*sqliteNode) {
	t.Helper()
	waitFor(t, 15*time.Second, "stores equal with empty queues", func() bool {
		for _, n := range nodes {
			if n.a.Store().PendingLen() > 0 || n.a.Digest() != nodes[0].a.Digest() {
				return false
			}
		}
		return true
	})
}

// holder holds the next batch a node's capture takes, after it is armed,
// between the capture and store.Local.
type holder struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	batch   adapters.Batch
}

// holdCapture installs a holder in a node not yet started; the test's
// cleanup releases it before the node closes.
func holdCapture(t *testing.T, n *sqliteNode) *holder {
	h := &holder{reached: make(chan struct{}), release: make(chan struct{})}
	n.knobs.beforeLocal = func(b adapters.Batch) {
		if h.armed.CompareAndSwap(true, false) {
			h.batch = b
			close(h.reached)
			<-h.release
		}
	}
	return h
}

// arm makes the holder hold the next batch; the node must be started and
// its cleanup registered, so that the release runs first.
func (h *holder) arm(t *testing.T) {
	t.Cleanup(h.unblock)
	h.armed.Store(true)
}

// wait waits until the holder holds a batch and returns it.
func (h *holder) wait(t *testing.T) adapters.Batch {
	t.Helper()
	select {
	case <-h.reached:
		return h.batch
	case <-time.After(15 * time.Second):
		t.Fatal("no change captured")
		return adapters.Batch{}
	}
}

func (h *holder) unblock() { h.once.Do(func() { close(h.release) }) }

// stored waits until the node has stored the batch the holder held.
func (h *holder) stored(t *testing.T, n *sqliteNode) {
	t.Helper()
	waitFor(t, 15*time.Second, n.cfg.Node+" stores the held batch", func() bool {
		cur, err := n.a.Store().Cursor(n.a.cursorName)
		return err == nil && bytes.Equal(cur, h.batch.Cursor)
	})
}

// after waits until the clock is past a captured change's commit time by
// more than the trigger's millisecond resolution.
func after(t *testing.T, b adapters.Batch) {
	t.Helper()
	committed := b.Changes[0].Committed
	if committed.IsZero() {
		t.Fatal("the captured change carries no commit time")
	}
	waitFor(t, time.Second, "a millisecond after the change", func() bool {
		return time.Now().After(committed.Add(time.Millisecond))
	})
}

// deferred waits until n's applier has deferred a write for a change its
// capture has not taken.
func (n *sqliteNode) deferred(t *testing.T) bool {
	t.Helper()
	return testutil.ToFloat64(n.a.m.applyDeferred) > 0
}

// The same field changed in two systems at once, the demo's first step, with
// the interleaving that made it diverge: b's capture loop has taken its
// user's change and not yet stored it when a's earlier change arrives. The
// apply must not write a's change over b's user's row (it would show an
// older row, and was once acknowledged so that the row stayed wrong): it
// waits for capture. b's change is the later one and wins, so both
// databases end holding it, as both stores do.
func TestCaptureRacesApplyAck(t *testing.T) {
	dir := t.TempDir()
	a := newSQLiteNode(t, dir, "a", nil, time.Millisecond)
	ha := holdCapture(t, a)
	a.start(t)
	b := newSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	hb := holdCapture(t, b)
	b.start(t)

	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Prospect', '100', NULL)`)
	converged(t, 1, `Acme|Prospect|100|`, a, b)

	// a's user changes the status first; a's capture holds it.
	ha.arm(t)
	a.exec(t, `UPDATE customers SET status = 'On Hold' WHERE id = 1`)
	after(t, ha.wait(t))
	// b's user changes it later; b's capture holds it.
	hb.arm(t)
	b.exec(t, `UPDATE customers SET status = 'Active' WHERE id = 1`)
	hb.wait(t)
	// a's change reaches b's store; b's applier leaves b's user's row alone.
	ha.unblock()
	waitFor(t, 15*time.Second, "a's change at b, its apply deferred", func() bool {
		return b.storeRow(t, 1) == `Acme|On Hold|100|` && b.deferred(t)
	})
	if got, want := b.row(t, 1), `Acme|Active|100|`; got != want {
		t.Fatalf("b's database holds %q, want its user's uncaptured row %q", got, want)
	}
	hb.unblock()

	hb.stored(t, b)
	settled(t, a, b)
	if d := tablesDiffer(t, 1, a, b); d != "" {
		t.Fatalf("the stores agree but the databases do not: %s", d)
	}
	if got, want := a.row(t, 1), `Acme|Active|100|`; got != want {
		t.Fatalf("row = %q, want %q (b's change, made last)", got, want)
	}
}

// A delete made right after an update in another system wins, though the
// update is captured after the delete arrived: changes are ordered by the
// time their systems committed them, not by when each sidecar captured
// them. b's capture holds its user's update until a's delete has been
// merged at b; the delete is applied once the update is captured.
func TestDeleteAfterUpdateElsewhereNotUndone(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := newSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	hb := holdCapture(t, b)
	b.start(t)

	a.exec(t, `INSERT INTO customers VALUES (4, 'Umbrella', 'Active', '400', NULL)`)
	converged(t, 4, `Umbrella|Active|400|`, a, b)

	hb.arm(t)
	b.exec(t, `UPDATE customers SET status = 'Churned' WHERE id = 4`)
	after(t, hb.wait(t))
	a.exec(t, `DELETE FROM customers WHERE id = 4`)
	waitFor(t, 15*time.Second, "a's delete merged at b, its apply deferred", func() bool {
		return b.storeRow(t, 4) == "<none>" && b.deferred(t)
	})
	if got, want := b.row(t, 4), `Umbrella|Churned|400|`; got != want {
		t.Fatalf("b's database holds %q, want its user's uncaptured row %q", got, want)
	}
	hb.unblock()

	hb.stored(t, b)
	settled(t, a, b)
	if d := tablesDiffer(t, 4, a, b); d != "" {
		t.Fatalf("the stores agree but the databases do not: %s", d)
	}
	if got := a.row(t, 4); got != "<none>" {
		t.Fatalf("row = %q, want it deleted: the delete was made after the update", got)
	}
}

// gate blocks a knob's caller once, after it is armed, until released.
type gate struct {
	armed   atomic.Bool
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

// newGate makes a gate; the test opens it in a cleanup registered after
// the node's, so that it runs before the node closes.
func newGate() *gate {
	return &gate{reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) pass() {
	if g.armed.CompareAndSwap(true, false) {
		close(g.reached)
		<-g.release
	}
}

func (g *gate) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.reached:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s not reached", what)
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// An apply whose merged row was read from the queue before capture stored
// a user's later change to the record: the row does not include the
// change, so writing it would take the user's value away until the record
// is applied again (and a statement in between would act on the old row).
// The apply defers it, though capture has since stored the change and moved
// on (acknowledging its cursor would let SQLite discard the change's log
// row, so acknowledgements wait for the apply batch); the record is then
// applied with both changes.
func TestApplyOfRowReadBeforeCapturedChange(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := newSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	before, after := newGate(), newGate()
	var acking atomic.Int32
	b.knobs.beforeApply = func([]adapters.Write) { before.pass() }
	b.knobs.afterApply = func(adapters.Applied) { after.pass() }
	b.knobs.acking = func(start bool) {
		if start {
			acking.Add(1)
		} else {
			acking.Add(-1)
		}
	}
	b.start(t)
	t.Cleanup(before.open)
	t.Cleanup(after.open)

	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Prospect', '100', NULL)`)
	converged(t, 1, `Acme|Prospect|100|`, a, b)

	// a's change reaches b; b's applier reads it from the queue and waits.
	before.armed.Store(true)
	after.armed.Store(true)
	a.exec(t, `UPDATE customers SET status = 'On Hold' WHERE id = 1`)
	before.wait(t, "b's apply of a's change")
	// b's user changes the phone, then writes another row (so that the
	// change's log row is not the newest, which Ack keeps); b captures and
	// stores the change, and acknowledges what it captured once it may.
	b.exec(t, `UPDATE customers SET phone = '200' WHERE id = 1`)
	b.exec(t, `INSERT INTO customers VALUES (2, 'Beta', NULL, NULL, NULL)`)
	waitFor(t, 15*time.Second, "b's change stored, and the log acknowledged or waiting to be", func() bool {
		var unacked int
		if err := b.db.QueryRow(`SELECT count(*) FROM _lattice_log WHERE seq > (SELECT v FROM _lattice_meta WHERE k = 'acked')`).Scan(&unacked); err != nil {
			t.Fatal(err)
		}
		return b.storeRow(t, 1) == `Acme|On Hold|200|` && (unacked == 0 || acking.Load() > 0)
	})
	before.open()
	after.wait(t, "the end of b's apply")
	if got, want := b.row(t, 1), `Acme|Prospect|200|`; got != want {
		t.Fatalf("after the apply of a row read before b's change, b's database holds %q, want %q (the user's row, left alone)", got, want)
	}
	after.open()
	converged(t, 1, `Acme|On Hold|200|`, a, b)
}
