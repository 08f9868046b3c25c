package sidecar

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
)

// faultyAdapter is the real SQLite adapter with faults injected in front of
// it: Apply can fail as if the system were down, or reject a row, and
// Capture can report that the stored cursor is no longer valid.
type faultyAdapter struct {
	adapters.Adapter
	mu          sync.Mutex
	downFor     int           // Apply calls still to fail as "system down"
	reject      string        // a value of "name" that the system rejects
	resetLog    chan struct{} // closing it resets the change log under a running Capture
	applyCalls  int
	downFailed  int
	snapshotted int
}

func (f *faultyAdapter) Apply(ctx context.Context, ws []adapters.Write, since []byte) (adapters.Applied, error) {
	f.mu.Lock()
	f.applyCalls++
	if f.downFor > 0 {
		f.downFor--
		f.downFailed++
		f.mu.Unlock()
		return adapters.Applied{}, errors.Mark(errors.New("connection refused: the system is down"), adapters.ErrUnavailable)
	}
	reject := f.reject
	f.mu.Unlock()
	for _, w := range ws {
		if w.Row != nil && reject != "" && w.Row["name"].AsString() == reject {
			return adapters.Applied{}, adapters.BadRow(w.Collection, w.Key, errors.Newf("name %q violates a check constraint", reject))
		}
	}
	return f.Adapter.Apply(ctx, ws, since)
}

// Capture runs the real capture until the test resets the change log, then
// fails as an adapter does whose cursor no longer names a position.
func (f *faultyAdapter) Capture(ctx context.Context, cursor []byte, sink adapters.Sink) error {
	f.mu.Lock()
	reset := f.resetLog
	f.mu.Unlock()
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Adapter.Capture(inner, cursor, sink) }()
	select {
	case err := <-done:
		return err
	case <-reset:
		f.mu.Lock()
		f.resetLog = nil
		f.mu.Unlock()
		cancel()
		<-done
		return errors.Mark(errors.New("the change log was reset"), adapters.ErrCursor)
	}
}

func (f *faultyAdapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	f.mu.Lock()
	f.snapshotted++
	f.mu.Unlock()
	return f.Adapter.Snapshot(ctx, sink)
}

func (f *faultyAdapter) set(fn func(*faultyAdapter)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultyAdapter) get(fn func(*faultyAdapter) int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(f)
}

// startFaulty starts an agent beside a SQLite database whose adapter has
// faults injected, and an API-only peer to write from.
func startFaulty(t *testing.T) (*faultyAdapter, *Agent, *Agent, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "sys.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg := sqlite.DefaultConfig()
	cfg.Path, cfg.PollInterval = path, time.Millisecond
	real, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyAdapter{Adapter: real, resetLog: make(chan struct{})}
	sys, err := Start(context.Background(), Config{
		Node: "sys", Data: filepath.Join(dir, "sys"), Bind: "127.0.0.1:0", API: APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterSQLite, DSN: path},
		Apply:   ApplyConfig{MaxBackoff: 50 * time.Millisecond},
	}, Options{Logger: testLogger(t), Adapter: f})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	api := startAgent(t, func(c *Config) {
		c.Node = "api"
		c.Join = []string{sys.Node().Addr()}
		c.Collections = map[string]CollectionConfig{"customers": {Key: []string{"id"}, KeyTypes: []string{"int"}}}
	})
	waitFor(t, 10*time.Second, "sys ready and joined", func() bool { return sys.Ready() && len(sys.Node().Members()) == 1 })
	return f, sys, api, db
}

func names(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT id || '=' || name FROM customers ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// While the system is down, merged changes wait in the queue and are retried
// with backoff; none is dropped.
func TestApplyRetriesWhileSystemDown(t *testing.T) {
	f, sys, api, db := startFaulty(t)
	f.set(func(f *faultyAdapter) { f.downFor = 5 })
	c, _ := NewClient(api.APIAddr(), "", "")
	for i := 1; i <= 3; i++ {
		if _, err := c.Put(context.Background(), "customers", itoa(i), map[string]any{"name": "n" + itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "rows applied after the outage", func() bool {
		return names(t, db) == "1=n1 2=n2 3=n3" && sys.Store().PendingLen() == 0
	})
	if n := f.get(func(f *faultyAdapter) int { return f.downFailed }); n != 5 {
		t.Fatalf("%d failed applies, want 5", n)
	}
	if st := sys.Status(); st.Adapter.Apply.Retries != 0 || st.Adapter.Apply.Error != "" {
		t.Fatalf("apply state after recovery = %+v", st.Adapter.Apply)
	}
}

// A row the system rejects is parked; the rest of its batch is applied, the
// parked row is listed, and a requeue after the fix applies it.
func TestRejectedRowIsParked(t *testing.T) {
	f, sys, api, db := startFaulty(t)
	f.set(func(f *faultyAdapter) { f.reject = "bad" })
	c, _ := NewClient(api.APIAddr(), "", "")
	ctx := context.Background()
	for i, n := range []string{"ok1", "bad", "ok2"} {
		if _, err := c.Put(ctx, "customers", itoa(i+1), map[string]any{"name": n}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "good rows applied, bad one parked", func() bool {
		return names(t, db) == "1=ok1 3=ok2" && sys.Store().PendingLen() == 0 && len(sys.Status().Parked) == 1
	})
	st := sys.Status()
	if p := st.Parked[0]; p.Collection != "customers" || p.Key != "2" || !strings.Contains(p.Reason, "check constraint") {
		t.Fatalf("parked = %+v", p)
	}
	// The operator fixes the system and requeues.
	f.set(func(f *faultyAdapter) { f.reject = "" })
	sc, _ := NewClient(sys.APIAddr(), "", "")
	var out map[string]int
	if err := sc.Do(ctx, "POST", "/v1/parked/requeue", nil, &out); err != nil || out["requeued"] != 1 {
		t.Fatalf("requeue = %v, %v", out, err)
	}
	waitFor(t, 15*time.Second, "parked row applied", func() bool {
		return names(t, db) == "1=ok1 2=bad 3=ok2" && len(sys.Status().Parked) == 0
	})
}

// A cursor the system can no longer continue from makes the agent take a new
// snapshot; rows equal to the merged state yield nothing, new ones flow.
func TestInvalidCursorTakesNewSnapshot(t *testing.T) {
	f, sys, api, db := startFaulty(t)
	if _, err := db.Exec(`INSERT INTO customers VALUES (1, 'before')`); err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(api.APIAddr(), "", "")
	waitFor(t, 10*time.Second, "row reaches the peer", func() bool {
		r, err := c.Get(context.Background(), "customers", "1")
		return err == nil && string(r.Row["name"]) == `"before"`
	})
	before := sys.Store().Stats().LocalChanges
	f.set(func(f *faultyAdapter) { close(f.resetLog) })
	waitFor(t, 10*time.Second, "a new snapshot", func() bool { return f.get(func(f *faultyAdapter) int { return f.snapshotted }) == 2 })
	if _, err := db.Exec(`INSERT INTO customers VALUES (2, 'after')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "new row reaches the peer", func() bool {
		r, err := c.Get(context.Background(), "customers", "2")
		return err == nil && string(r.Row["name"]) == `"after"`
	})
	if got := sys.Store().Stats().LocalChanges - before; got != 1 {
		t.Fatalf("the new snapshot and capture changed %d records, want 1 (the new row only)", got)
	}
	var st Status
	raw, _ := json.Marshal(sys.Status())
	_ = json.Unmarshal(raw, &st)
	if st.Adapter.Capture.State != "capturing" {
		t.Fatalf("capture state = %+v", st.Adapter.Capture)
	}
}

func itoa(i int) string { return crdt.Int(int64(i)).String() }

// failingSnapshot is the real SQLite adapter whose initial snapshot fails
// with an error that names a database host and user, as a driver's does.
type failingSnapshot struct{ adapters.Adapter }

const secretErrText = "dial tcp db.internal.example:5432: password authentication failed for user alice"

func (failingSnapshot) Snapshot(context.Context, adapters.Sink) ([]byte, error) {
	return nil, errors.New(secretErrText)
}

// The unauthenticated endpoints say why the agent is not ready as a class
// of reason, never with the error's text; /v1/status, behind the token,
// has the details.
func TestUnauthenticatedEndpointsHoldNoErrorText(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sys.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	cfg := sqlite.DefaultConfig()
	cfg.Path = path
	real, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	const token = "0123456789abcdef-readyz"
	a, err := Start(context.Background(), Config{
		Node: "sys", Data: filepath.Join(dir, "sys"), Bind: "127.0.0.1:0",
		API:     APIConfig{Addr: "127.0.0.1:0", Token: token},
		Adapter: AdapterConfig{Kind: AdapterSQLite, DSN: path},
		Apply:   ApplyConfig{MaxBackoff: 50 * time.Millisecond},
	}, Options{Logger: testLogger(t), Adapter: failingSnapshot{real}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	waitFor(t, 10*time.Second, "capture failing", func() bool {
		st := a.Status()
		return st.Adapter.Capture != nil && st.Adapter.Capture.State == "retrying"
	})
	res := do(t, a, "GET", "/readyz", "", "")
	if res.code != 503 || !strings.Contains(res.body, `"reason":"capture failing"`) {
		t.Fatalf("/readyz = %d %s", res.code, res.body)
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if res := do(t, a, "GET", path, "", ""); strings.Contains(res.body, "db.internal") || strings.Contains(res.body, "alice") {
			t.Fatalf("%s shows the error text: %s", path, res.body)
		}
	}
	if res := do(t, a, "GET", "/v1/status", token, ""); res.code != 200 || !strings.Contains(res.body, secretErrText) {
		t.Fatalf("/v1/status with the token lacks the error: %d %s", res.code, res.body)
	}
}

// A user's trigger that raises an error SQLite does not class as a
// constraint fails the whole batch without naming a row: the agent applies
// the batch's records one at a time, parks the one that fails, and the rest
// of the batch and later changes reach the database.
func TestUnclassifiedApplyErrorParksOneRow(t *testing.T) {
	_, sys, api, db := startFaulty(t)
	for _, ev := range []string{"INSERT", "UPDATE"} {
		if _, err := db.Exec(`CREATE TRIGGER user_check_` + ev + ` BEFORE ` + ev + ` ON customers
			WHEN NEW.name = 'bad' BEGIN SELECT json('{not json'); END`); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := NewClient(api.APIAddr(), "", "")
	ctx := context.Background()
	for i, n := range []string{"ok1", "bad", "ok2"} {
		if _, err := c.Put(ctx, "customers", itoa(i+1), map[string]any{"name": n}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "good rows applied, bad one parked", func() bool {
		return names(t, db) == "1=ok1 3=ok2" && sys.Store().PendingLen() == 0 && len(sys.Status().Parked) == 1
	})
	if p := sys.Status().Parked[0]; p.Key != "2" || !strings.Contains(p.Reason, "malformed JSON") {
		t.Fatalf("parked = %+v", p)
	}
	// Later changes flow, also to the parked record once it can be held.
	if _, err := c.Put(ctx, "customers", "4", map[string]any{"name": "later"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "customers", "2", map[string]any{"name": "fixed"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "later changes applied", func() bool {
		return names(t, db) == "1=ok1 2=fixed 3=ok2 4=later" && sys.Store().PendingLen() == 0
	})
	if st := sys.Status(); st.Adapter.Apply.Error != "" {
		t.Fatalf("apply state = %+v", st.Adapter.Apply)
	}
}
