package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// TestIntegrationPostgresTriggerParksOneRow: a user's trigger in one
// database raises an error for one row of a batch. That row is parked on
// that node; the rest of the batch and later changes reach its table.
func TestIntegrationPostgresTriggerParksOneRow(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const schema = `CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL)`
	c := newCluster(t, "  items:\n    key: [id]")
	dsns := map[string]string{}
	for _, db := range []string{"src", "dst"} {
		dsn, err := srv.CreateDB(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Exec(ctx, db, schema); err != nil {
			t.Fatal(err)
		}
		dsns[db] = dsn
		c.add(db, fmt.Sprintf("  kind: postgres\n  dsn: %s\n  tables: [items]", dsn))
	}
	if err := srv.Exec(ctx, "dst", `
		CREATE FUNCTION user_check() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'bad' THEN RAISE EXCEPTION 'the name bad is not allowed here'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER user_check BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION user_check()`); err != nil {
		t.Fatal(err)
	}
	c.startAll(90 * time.Second)
	src, dst := c.agents[0], c.agents[1]

	conns := map[string]*pgx.Conn{}
	for db, dsn := range dsns {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		conns[db] = conn
	}
	table := func(db string) string {
		rows, err := conns[db].Query(ctx, `SELECT id || '=' || name FROM items ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(got, " ")
	}
	tables := func(wantSrc, wantDst string) func() (bool, string) {
		return func() (bool, string) {
			s, d := table("src"), table("dst")
			return s == wantSrc && d == wantDst, fmt.Sprintf("src holds %q, dst %q", s, d)
		}
	}
	// One transaction, so that the three rows travel and apply together.
	if _, err := conns["src"].Exec(ctx, `INSERT INTO items VALUES (1, 'ok1'), (2, 'bad'), (3, 'ok2')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the good rows in dst", tables("1=ok1 2=bad 3=ok2", "1=ok1 3=ok2"))
	waitFor(t, 10*time.Second, "the bad row parked in dst", func() (bool, string) {
		st, err := dst.status()
		if err != nil {
			return false, err.Error()
		}
		if len(st.Parked) != 1 || st.Parked[0].Key != "2" || !strings.Contains(st.Parked[0].Reason, "the name bad is not allowed here") ||
			st.Pending != 0 {
			return false, fmt.Sprintf("parked %+v, pending %d", st.Parked, st.Pending)
		}
		return true, ""
	})

	// Later changes flow, in the same batch as a change to the parked row
	// that the trigger still refuses, and alone.
	if _, err := conns["src"].Exec(ctx, `UPDATE items SET name = name || '+' WHERE id IN (2, 3); INSERT INTO items VALUES (4, 'later')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "later changes in dst", tables("1=ok1 2=bad+ 3=ok2+ 4=later", "1=ok1 2=bad+ 3=ok2+ 4=later"))
	if _, err := conns["src"].Exec(ctx, `UPDATE items SET name = 'bad' WHERE id = 4; INSERT INTO items VALUES (5, 'last')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the last change in dst", tables("1=ok1 2=bad+ 3=ok2+ 4=bad 5=last", "1=ok1 2=bad+ 3=ok2+ 4=later 5=last"))
	if st, err := src.status(); err != nil || len(st.Parked) != 0 {
		t.Fatalf("src parked %+v (%v)", st.Parked, err)
	}
	c.checkLogs(regexp.MustCompile(`a record cannot be written into the system`))
}
