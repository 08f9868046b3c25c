package sidecar

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// sqliteNode is an agent beside its own SQLite database.
type sqliteNode struct {
	a    *Agent
	db   *sql.DB
	cfg  Config
	path string
}

func startSQLiteNode(t *testing.T, dir, name string, join []string, poll time.Duration, mods ...func(*Config)) *sqliteNode {
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
	n.start(t)
	return n
}

func (n *sqliteNode) start(t *testing.T) {
	t.Helper()
	a, err := Start(context.Background(), n.cfg, Options{Logger: testLogger(t)})
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

// A user's change that an apply overwrote in the system before capture saw
// it, and that changed a different column than the applied remote change:
// both changes must survive, in the merged state and in both systems.
func TestCaptureRacesApply(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	// b captures once at start and then not for a minute: its user's
	// change waits in the change log while a's change is applied over it.
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Minute)

	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Prospect', '100', '["eu","trial"]')`)
	converged(t, 1, `Acme|Prospect|100|["eu","trial"]`, a, b)

	// b's user changes the phone and the tags; capture does not see it yet.
	b.exec(t, `UPDATE customers SET phone = '200', tags = '["eu","vip"]' WHERE id = 1`)
	// a's user changes the status and adds a tag; it reaches b and is
	// applied over b's row, which still carries the old status and tags.
	a.exec(t, `UPDATE customers SET status = 'Active', tags = '["eu","priority","trial"]' WHERE id = 1`)
	waitFor(t, 10*time.Second, "a's change applied at b", func() bool {
		return b.row(t, 1) == `Acme|Active|100|["eu","priority","trial"]`
	})

	// b restarts with fast capture and finds its user's change in the log.
	if err := b.a.Close(); err != nil {
		t.Fatal(err)
	}
	b.cfg.Adapter.PollInterval = time.Millisecond
	b.start(t)

	want := `Acme|Active|200|["eu","priority","vip"]`
	converged(t, 1, want, a, b)
}
