package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// TestIntegrationPostgresCatalogWhileRunning: two PostgreSQL databases with
// an agent beside each, no adapter.tables (every table of the schema is
// synced). A table created in both while the agents run, and a column added
// to it on one side and then on the other, flow both ways with no restart
// and no manual step. The databases' tables are compared with SQL.
func TestIntegrationPostgresCatalogWhileRunning(t *testing.T) {
	bin := pgtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srvs := startPostgresServers(t, ctx, bin, 2)
	c := newCluster(t, "  base:\n    key: [id]")
	var nodes []*pgNode
	for i, s := range srvs {
		dsn, err := s.CreateDB(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "app", `CREATE TABLE base (id int PRIMARY KEY, v text)`); err != nil {
			t.Fatal(err)
		}
		a := c.add(string(rune('a'+i)), fmt.Sprintf("  kind: postgres\n  dsn: %s\n  catalog_interval: 300ms", dsn))
		n := &pgNode{agent: a, srv: s, dsn: dsn, read: &pgConn{dsn: dsn}}
		t.Cleanup(n.read.close)
		nodes = append(nodes, n)
	}
	c.startAll(90 * time.Second)
	a, b := nodes[0], nodes[1]

	exec := func(n *pgNode, sql string) {
		t.Helper()
		if _, err := n.read.exec(ctx, sql); err != nil {
			t.Fatalf("%s: %s: %v", n.name, sql, err)
		}
	}
	// table returns the rows of extra as text, in key order.
	table := func(n *pgNode) (string, error) {
		conn, err := n.read.get(ctx)
		if err != nil {
			return "", err
		}
		var s string
		err = conn.QueryRow(ctx, `SELECT COALESCE(string_agg(to_jsonb(e)::text, E'\n' ORDER BY id), '') FROM extra e`).Scan(&s)
		if err != nil {
			n.read.close()
		}
		return s, err
	}
	same := func(want ...string) func() (bool, string) {
		return func() (bool, string) {
			ta, err := table(a)
			if err != nil {
				return false, err.Error()
			}
			tb, err := table(b)
			if err != nil {
				return false, err.Error()
			}
			if ta != tb {
				return false, fmt.Sprintf("a holds\n%s\nb holds\n%s", ta, tb)
			}
			for _, w := range want {
				if !strings.Contains(ta, w) {
					return false, fmt.Sprintf("both hold\n%s\nwithout %s", ta, w)
				}
			}
			return true, ""
		}
	}
	// captured reports whether n's agent streams changes of extra: its
	// publication covers the table (the adapter adds it when its catalog
	// refresh finds it).
	captured := func(n *pgNode) func() (bool, string) {
		return func() (bool, string) {
			conn, err := n.read.get(ctx)
			if err != nil {
				return false, err.Error()
			}
			var ok bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication_tables
				WHERE pubname = $1 AND tablename = 'extra')`, "lattice_"+n.name).Scan(&ok); err != nil {
				n.read.close()
				return false, err.Error()
			}
			return ok, "extra is not in " + n.name + "'s publication"
		}
	}

	exec(a, `CREATE TABLE extra (id int PRIMARY KEY, name text)`)
	exec(b, `CREATE TABLE extra (id int PRIMARY KEY, name text)`)
	waitFor(t, 30*time.Second, "a captures the new table", captured(a))
	waitFor(t, 30*time.Second, "b captures the new table", captured(b))

	exec(a, `INSERT INTO extra VALUES (1, 'one')`)
	waitFor(t, 30*time.Second, "a's row of the new table in b", same(`"id": 1, "name": "one"`))
	exec(b, `INSERT INTO extra VALUES (2, 'two')`)
	waitFor(t, 30*time.Second, "b's row of the new table in a", same(`"id": 2, "name": "two"`))

	// A column added on a, with a value; then on b, where it arrives.
	exec(a, `ALTER TABLE extra ADD COLUMN email text`)
	exec(a, `UPDATE extra SET email = 'one@example.com' WHERE id = 1`)
	exec(b, `ALTER TABLE extra ADD COLUMN email text`)
	waitFor(t, 30*time.Second, "the new column's value in b", same(`"id": 1, "name": "one", "email": "one@example.com"`))
	// And the other way, on a row and a column both created while running.
	exec(b, `UPDATE extra SET email = 'two@example.com' WHERE id = 2`)
	exec(b, `INSERT INTO extra VALUES (3, 'three', 'three@example.com')`)
	waitFor(t, 30*time.Second, "b's values of the new column in a",
		same(`"id": 2, "name": "two", "email": "two@example.com"`, `"id": 3, "name": "three", "email": "three@example.com"`))
	waitFor(t, 30*time.Second, "the cluster settled", c.clusterSettled)
	c.checkLogs()
}

// TestIntegrationPostgresRowsBeforePublication: rows written into a table in
// the same transaction that creates it, before the adapter adds the table to
// its publication, are not in the replication stream. When the catalog
// gains the table the agent reads its rows as captured changes, so they
// reach the other database without being changed again. The databases'
// tables are compared with SQL.
func TestIntegrationPostgresRowsBeforePublication(t *testing.T) {
	bin := pgtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srvs := startPostgresServers(t, ctx, bin, 2)
	c := newCluster(t, "  base:\n    key: [id]")
	var nodes []*pgNode
	for i, s := range srvs {
		dsn, err := s.CreateDB(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "app", `CREATE TABLE base (id int PRIMARY KEY, v text)`); err != nil {
			t.Fatal(err)
		}
		a := c.add(string(rune('a'+i)), fmt.Sprintf("  kind: postgres\n  dsn: %s\n  catalog_interval: 300ms", dsn))
		n := &pgNode{agent: a, srv: s, dsn: dsn, read: &pgConn{dsn: dsn}}
		t.Cleanup(n.read.close)
		nodes = append(nodes, n)
	}
	c.startAll(90 * time.Second)
	a, b := nodes[0], nodes[1]
	exec := func(n *pgNode, sql string) {
		t.Helper()
		if _, err := n.read.exec(ctx, sql); err != nil {
			t.Fatalf("%s: %s: %v", n.name, sql, err)
		}
	}
	table := func(n *pgNode) (string, error) {
		conn, err := n.read.get(ctx)
		if err != nil {
			return "", err
		}
		var s string
		err = conn.QueryRow(ctx, `SELECT COALESCE(string_agg(to_jsonb(e)::text, E'\n' ORDER BY id), '') FROM extra e`).Scan(&s)
		if err != nil {
			n.read.close()
		}
		return s, err
	}
	// One transaction creates the table and writes a row into it: the row is
	// committed before any catalog refresh can see the table.
	exec(a, `BEGIN; CREATE TABLE extra (id int PRIMARY KEY, name text); INSERT INTO extra VALUES (1, 'written with the table on a'); COMMIT`)
	exec(b, `BEGIN; CREATE TABLE extra (id int PRIMARY KEY, name text); INSERT INTO extra VALUES (2, 'written with the table on b'); COMMIT`)
	want := `{"id": 1, "name": "written with the table on a"}` + "\n" + `{"id": 2, "name": "written with the table on b"}`
	waitFor(t, 60*time.Second, "the rows written before the publication covered the table, in both databases", func() (bool, string) {
		ta, err := table(a)
		if err != nil {
			return false, err.Error()
		}
		tb, err := table(b)
		if err != nil {
			return false, err.Error()
		}
		if ta != want || tb != want {
			return false, fmt.Sprintf("a holds\n%s\nb holds\n%s\nwant\n%s", ta, tb, want)
		}
		return true, ""
	})
	waitFor(t, 30*time.Second, "the cluster settled", c.clusterSettled)
	c.checkLogs()
}
