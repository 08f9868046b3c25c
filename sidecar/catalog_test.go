package sidecar

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
)

// noPeriodicCatalog leaves catalog changes to the adapter's notice and to
// captured changes: the periodic look would hide a missing one.
func noPeriodicCatalog(c *Config) { c.Adapter.CatalogInterval = time.Hour }

// table returns the rows of a query as lines, or "<error: ...>".
func (n *sqliteNode) table(q string) string {
	rows, err := n.db.Query(q)
	if err != nil {
		return "<error: " + err.Error() + ">"
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "<error: " + err.Error() + ">"
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return "<error: " + err.Error() + ">"
	}
	return strings.Join(out, "\n")
}

// tablesEqual waits until every node's query returns want, with nothing
// left to apply and equal digests.
func tablesEqual(t *testing.T, q, want string, nodes ...*sqliteNode) {
	t.Helper()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok := true
		for _, n := range nodes {
			got := n.table(q)
			if got != want || n.a.Store().PendingLen() > 0 || n.a.Digest() != nodes[0].a.Digest() {
				ok = false
				last = n.cfg.Node + ": " + got
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tables differ: %q\ngot  %s\nwant %s", q, last, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A table created while the agents run, keyed by a column not named id:
// created in a and b, a row inserted in a reaches b's table; c creates the
// table later and receives the row then.
func TestTableCreatedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond, noPeriodicCatalog)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond, noPeriodicCatalog)
	c := startSQLiteNode(t, dir, "c", []string{a.a.Node().Addr()}, time.Millisecond, noPeriodicCatalog)
	const ddl = `CREATE TABLE extra (code TEXT PRIMARY KEY, qty INTEGER NOT NULL)`
	a.exec(t, ddl)
	b.exec(t, ddl)
	a.exec(t, `INSERT INTO extra VALUES ('x1', 5)`)
	const q = `SELECT code || '|' || qty FROM extra ORDER BY code`
	tablesEqual(t, q, "x1|5", a, b)
	waitFor(t, 10*time.Second, "c's store holds the row", func() bool { return c.a.Digest() == a.a.Digest() })

	b.exec(t, `INSERT INTO extra VALUES ('x2', 7)`)
	c.exec(t, ddl)
	tablesEqual(t, q, "x1|5\nx2|7", a, b, c)
	c.exec(t, `UPDATE extra SET qty = 6 WHERE code = 'x1'`)
	tablesEqual(t, q, "x1|6\nx2|7", a, b, c)
}

// A column added on one side with a value set in the same transaction (so
// the old triggers log the row without it) reaches the merged state; the
// other side parks the record until it adds the column too, and then
// receives the value without a manual step.
func TestColumnAddedWhileRunning(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond, noPeriodicCatalog)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond, noPeriodicCatalog)
	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Prospect', '100', NULL)`)
	converged(t, 1, "Acme|Prospect|100|", a, b)

	tx, err := a.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE customers ADD COLUMN email TEXT`,
		`UPDATE customers SET email = 'ops@acme.test' WHERE id = 1`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b parks the record it cannot write", func() bool {
		p, err := b.a.Store().Parked(0)
		return err == nil && len(p) == 1 && b.a.Digest() == a.a.Digest()
	})

	b.exec(t, `ALTER TABLE customers ADD COLUMN email TEXT`)
	const q = `SELECT id || '|' || name || '|' || coalesce(status, '') || '|' || coalesce(email, '<null>') FROM customers ORDER BY id`
	tablesEqual(t, q, "1|Acme|Prospect|ops@acme.test", a, b)
	if p, err := b.a.Store().Parked(0); err != nil || len(p) != 0 {
		t.Fatalf("parked after the column was added = %v, %v; want none", p, err)
	}
}

// silentAdapter hides the adapter's CatalogNotifier: only the periodic look
// finds what changed.
type silentAdapter struct{ adapters.Adapter }

// An adapter that does not report catalog changes (the periodic look,
// adapter.catalog_interval, finds them): a table created on b after a's
// row reached b's store receives the row.
func TestCatalogPeriodicRefresh(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond, noPeriodicCatalog)
	b := &sqliteNode{path: filepath.Join(dir, "b.db")}
	b.reopenDB(t)
	b.exec(t, customersDDL)
	scfg := sqlite.DefaultConfig()
	scfg.Path, scfg.PollInterval = b.path, time.Millisecond
	real, err := sqlite.Open(context.Background(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	b.cfg = a.cfg
	b.cfg.Node, b.cfg.Data, b.cfg.Join = "b", filepath.Join(dir, "b-store"), []string{a.a.Node().Addr()}
	b.cfg.Adapter.DSN, b.cfg.Adapter.CatalogInterval = b.path, 20*time.Millisecond
	if b.a, err = Start(context.Background(), b.cfg, Options{Logger: testLogger(t), Adapter: silentAdapter{real}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.a.Close() })
	waitFor(t, 10*time.Second, "b ready", b.a.Ready)

	const ddl = `CREATE TABLE extra (code TEXT PRIMARY KEY, qty INTEGER NOT NULL)`
	a.exec(t, ddl)
	a.exec(t, `INSERT INTO extra VALUES ('x1', 5)`)
	waitFor(t, 10*time.Second, "b's store holds the row", func() bool { return b.a.Digest() == a.a.Digest() })
	b.exec(t, ddl)
	tablesEqual(t, `SELECT code || '|' || qty FROM extra ORDER BY code`, "x1|5", a, b)
}
