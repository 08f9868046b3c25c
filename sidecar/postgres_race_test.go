package sidecar

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// A delete made in SQLite right after an update in PostgreSQL wins, though
// the PostgreSQL sidecar captures the update only after the delete arrived:
// the update is stamped with PostgreSQL's commit timestamp. Until capture
// takes the update, the delete is not applied over it.
func TestIntegrationPostgresDeleteAfterUpdateNotUndone(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, status text, phone text, tags text[]);
		ALTER TABLE customers REPLICA IDENTITY FULL`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	pgRow := func(id int) string {
		t.Helper()
		var s string
		err := conn.QueryRow(ctx, `SELECT name || '|' || COALESCE(status,'') || '|' || COALESCE(phone,'') || '|' FROM customers WHERE id = $1`, id).Scan(&s)
		if err == pgx.ErrNoRows {
			return "<none>"
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := &sqliteNode{cfg: Config{
		Node:    "b",
		Data:    filepath.Join(dir, "b-store"),
		Bind:    "127.0.0.1:0",
		Join:    []string{a.a.Node().Addr()},
		API:     APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres")},
		Collections: map[string]CollectionConfig{
			"customers": {Fields: map[string]FieldConfig{"tags": {Policy: "orset"}}},
		},
	}}
	hb := holdCapture(t, b)
	b.start(t)

	a.exec(t, `INSERT INTO customers VALUES (4, 'Umbrella', 'Active', '400', NULL)`)
	waitFor(t, 15*time.Second, "the row in both databases", func() bool {
		return pgRow(4) == `Umbrella|Active|400|` && b.a.Store().PendingLen() == 0
	})

	hb.arm(t)
	if _, err := conn.Exec(ctx, `UPDATE customers SET status = 'Churned' WHERE id = 4`); err != nil {
		t.Fatal(err)
	}
	after(t, hb.wait(t))
	a.exec(t, `DELETE FROM customers WHERE id = 4`)
	waitFor(t, 15*time.Second, "a's delete merged at b", func() bool { return storeRow(t, b.a, 4) == "<none>" })
	waitFor(t, 15*time.Second, "b's apply of the delete deferred", func() bool { return metricValue(t, b.a, "lattice_apply_deferred_total") > 0 })
	if got := pgRow(4); got != `Umbrella|Churned|400|` {
		t.Fatalf("b's database holds %q before capture took the user's update, want the update (the delete deferred)", got)
	}
	hb.unblock()

	hb.stored(t, b)
	settled(t, a, b)
	for _, got := range []string{a.row(t, 4), a.storeRow(t, 4), pgRow(4), storeRow(t, b.a, 4)} {
		if got != "<none>" {
			t.Fatalf("a: database %q store %q; b: database %q store %q; want the row deleted everywhere: the delete was made after the update",
				a.row(t, 4), a.storeRow(t, 4), pgRow(4), storeRow(t, b.a, 4))
		}
	}
}
