package sidecar

import (
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"
)

const customersDDL = `CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT, phone TEXT, tags JSON)`

// reopenDB points the test's own connection at the file now at the path:
// the old pool still reads the old file.
func (n *sqliteNode) reopenDB(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+n.path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n.db = db
}

// captureError returns the capture loop's last error ("" if none).
func (n *sqliteNode) captureError() string {
	if s := n.a.captureSt.Load(); s != nil {
		return s.Error
	}
	return ""
}

const customersRows = `SELECT id || '|' || name || '|' || coalesce(status, '') FROM customers ORDER BY id`

// A database file replaced while the agent runs (a restored copy moved over
// it) is noticed: the agent captures the new file's rows and writes into it
// what the cluster holds, as it would after a restart.
func TestDatabaseFileReplaced(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Active', NULL, NULL)`)
	tablesEqual(t, customersRows, "1|Acme|Active", a, b)

	// The replacement: another file, not in WAL mode, moved over b's.
	next := b.path + ".next"
	db, err := sql.Open("sqlite", "file:"+next)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{customersDDL, `INSERT INTO customers VALUES (2, 'Globex', 'Prospect', NULL, NULL)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	b.db.Close()
	if err := os.Rename(next, b.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b's capture reports the replaced file", func() bool {
		return strings.Contains(b.captureError(), "was replaced by another file")
	})
	b.reopenDB(t)

	tablesEqual(t, customersRows, "1|Acme|Active\n2|Globex|Prospect", a, b)
	a.exec(t, `UPDATE customers SET status = 'Churned' WHERE id = 2`)
	tablesEqual(t, customersRows, "1|Acme|Active\n2|Globex|Churned", a, b)
}

// A database file deleted while the agent runs is reported by capture, and
// nothing is written into the deleted file; once the database is created
// again, it receives what the cluster holds, changes made meanwhile
// included.
func TestDatabaseFileDeleted(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Active', NULL, NULL)`)
	tablesEqual(t, customersRows, "1|Acme|Active", a, b)

	b.db.Close()
	if err := os.Remove(b.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b's capture reports the deleted file", func() bool {
		return strings.Contains(b.captureError(), "was deleted while the agent ran")
	})
	a.exec(t, `INSERT INTO customers VALUES (2, 'Globex', 'Prospect', NULL, NULL)`)
	waitFor(t, 10*time.Second, "b's store holds the new row", func() bool { return b.a.Digest() == a.a.Digest() })
	if _, err := os.Stat(b.path); !os.IsNotExist(err) {
		t.Fatalf("stat %s = %v; want the deleted file not created again", b.path, err)
	}

	b.reopenDB(t)
	b.exec(t, customersDDL)
	tablesEqual(t, customersRows, "1|Acme|Active\n2|Globex|Prospect", a, b)
	b.exec(t, `UPDATE customers SET status = 'Churned' WHERE id = 1`)
	tablesEqual(t, customersRows, "1|Acme|Churned\n2|Globex|Prospect", a, b)
}
