package sidecar

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// Drift in PostgreSQL: a session using the sidecar's own replication
// origin writes behind capture's back (capture skips what that origin
// tags, as it skips the sidecar's applies). A report pass finds each record
// with its fields; the periodic pass repairs them within one interval; the
// PostgreSQL table then equals the SQLite table, read with SQL.
func TestIntegrationPostgresVerifyRepairsDrift(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, status text, phone text, tags text[], updated_at text)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	pgTable := func() string {
		t.Helper()
		rows, err := conn.Query(ctx, `SELECT id, name, COALESCE(status, ''), COALESCE(updated_at, '') FROM customers ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id int
			var name, status, at string
			if err := rows.Scan(&id, &name, &status, &at); err != nil {
				t.Fatal(err)
			}
			out = append(out, strconv.Itoa(id)+"="+name+"|"+status+"|"+at)
		}
		return strings.Join(out, " ")
	}

	dir := t.TempDir()
	a := dated(t, dir, "a", nil, "")
	a.start(t)
	const origin = "lattice_verify_b"
	b := &sqliteNode{cfg: Config{
		Node:    "b",
		Data:    filepath.Join(dir, "b-store"),
		Bind:    "127.0.0.1:0",
		Join:    []string{a.a.Node().Addr()},
		API:     APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Origin: origin},
		Verify:  VerifyConfig{Disabled: true},
		Collections: map[string]CollectionConfig{
			"customers": {Fields: map[string]FieldConfig{"tags": {Policy: "orset"}}},
		},
	}}
	b.start(t)
	// PostgreSQL's users write: b never applies, so its apply session does
	// not hold the origin yet.
	if _, err := conn.Exec(ctx, `INSERT INTO customers (id, name, status, updated_at) VALUES (1, 'Acme', 'v1', ''), (2, 'Beta', 'v1', ''), (3, 'Gamma', 'v1', '')`); err != nil {
		t.Fatal(err)
	}
	const clean = "1=Acme|v1| 2=Beta|v1| 3=Gamma|v1|"
	waitFor(t, 15*time.Second, "rows at a", func() bool { return a.customers(t) == clean && a.a.Store().PendingLen() == 0 })

	bypass, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`SELECT pg_replication_origin_session_setup('` + origin + `')`,
		`BEGIN`,
		`UPDATE customers SET status = 'drifted' WHERE id = 1`,
		`DELETE FROM customers WHERE id = 2`,
		`INSERT INTO customers (id, name, status) VALUES (99, 'Stray', 'x')`,
		`COMMIT`,
		`SELECT pg_replication_origin_session_reset()`,
	} {
		if _, err := bypass.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	bypass.Close(ctx)
	if got := pgTable(); got != "1=Acme|drifted| 3=Gamma|v1| 99=Stray|x|" {
		t.Fatalf("PostgreSQL holds %s after the bypassing writes", got)
	}

	rep, err := b.a.Verify(ctx, RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `1:differs status="drifted"/"v1"; 2:missing_in_system name=null/"Beta" status=null/"v1" updated_at=null/""; 99:not_in_merged_state name="Stray"/null status="x"/null`
	if got := driftKinds(rep); got != want {
		t.Fatalf("drift %s\nwant %s", got, want)
	}
	// The periodic pass (repair apply) repairs it within one interval.
	if err := b.a.Close(); err != nil {
		t.Fatal(err)
	}
	b.cfg.Verify = VerifyConfig{Interval: 300 * time.Millisecond}
	b.start(t)
	start := time.Now()
	waitFor(t, 15*time.Second, "PostgreSQL repaired", func() bool { return pgTable() == clean })
	t.Logf("repaired %s after the restart", time.Since(start).Round(time.Millisecond))
	waitFor(t, 15*time.Second, "a pass with no drift", func() bool {
		r := b.a.LastVerify()
		return r != nil && r.DriftRecords == 0
	})
	rb, ra := b.a.LastVerify(), mustVerify(t, a.a)
	if rb.SystemDigest != ra.SystemDigest || a.customers(t) != pgTable() {
		t.Fatalf("system digests %s (PostgreSQL) and %s (SQLite); tables %s and %s", rb.SystemDigest, ra.SystemDigest, pgTable(), a.customers(t))
	}
}

func mustVerify(t *testing.T, a *Agent) *VerifyReport {
	t.Helper()
	r, err := a.Verify(context.Background(), RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A PostgreSQL slot dropped (or invalidated) while its sidecar was down:
// capture cannot resume, so the sidecar takes a new snapshot, and with
// initial_sync cluster the database's stale rows take the merged state
// instead of overwriting newer values written elsewhere meanwhile.
func TestIntegrationPostgresDroppedSlotTakesClusterState(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, status text, phone text, tags text[], updated_at text)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	status := func(id int) string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT COALESCE((SELECT status FROM customers WHERE id = $1), '<none>')`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	dir := t.TempDir()
	a := dated(t, dir, "a", nil, "")
	a.start(t)
	const slot = "lattice_join_b"
	b := &sqliteNode{cfg: Config{
		Node: "b", Data: filepath.Join(dir, "b-store"), Bind: "127.0.0.1:0", Join: []string{a.a.Node().Addr()},
		API:     APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Slot: slot},
		Verify:  VerifyConfig{Disabled: true},
		Collections: map[string]CollectionConfig{
			"customers": {Fields: map[string]FieldConfig{"tags": {Policy: "orset"}}},
		},
	}}
	b.start(t)
	if _, err := conn.Exec(ctx, `INSERT INTO customers (id, name, status) VALUES (1, 'Acme', 'v1'), (2, 'Beta', 'v1')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "rows at a", func() bool { return a.customers(t) == "1=Acme|v1| 2=Beta|v1|" })

	if err := b.a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
		t.Fatal(err)
	}
	a.exec(t, `UPDATE customers SET status = 'v2' WHERE id = 1`)
	a.exec(t, `DELETE FROM customers WHERE id = 2`)
	waitFor(t, 10*time.Second, "a's changes stored", func() bool { return storeRow(t, a.a, 1) == "Acme|v2||" })

	b.start(t)
	waitFor(t, 30*time.Second, "PostgreSQL takes the merged state", func() bool {
		return status(1) == "v2" && status(2) == "<none>" && b.a.Store().PendingLen() == 0
	})
	settled(t, a, b)
	if got := a.customers(t); got != "1=Acme|v2|" {
		t.Fatalf("a holds %s: the stale PostgreSQL rows came back", got)
	}
}
