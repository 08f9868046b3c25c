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

// Verification compares cheaply first where the system hashes key ranges
// (PostgreSQL): a pass over unchanged data reads no row, and a pass after
// a change reads only the ranges it touched. A user's captured write is
// not drift; writes that bypass capture (a session using the sidecar's
// replication origin) are found by the very next pass, in every kind, and
// repaired; ranges emptied by deletes join their neighbours, so the memo
// stays one entry per range.
func TestIntegrationPostgresVerifyReadsOnlyChangedRanges(t *testing.T) {
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
	const origin = "lattice_verify_hash"
	n := &sqliteNode{cfg: Config{
		Node:    "pg",
		Data:    filepath.Join(t.TempDir(), "store"),
		Bind:    "127.0.0.1:0",
		API:     APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Origin: origin},
		Verify:  VerifyConfig{Disabled: true, RangeRows: 10, Settle: 100 * time.Millisecond},
	}}
	n.start(t)
	userExec := func(q string) {
		t.Helper()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	bypass := func(stmts ...string) {
		t.Helper()
		c, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for _, q := range append(append([]string{`SELECT pg_replication_origin_session_setup('` + origin + `')`, `BEGIN`}, stmts...),
			`COMMIT`, `SELECT pg_replication_origin_session_reset()`) {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	status := func(id int) string {
		var s string
		if err := conn.QueryRow(ctx, `SELECT COALESCE((SELECT COALESCE(status, '') FROM customers WHERE id = $1), '<none>')`, id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// pass runs one pass and checks the rows it read, the rows it found
	// unchanged without reading them, and its drift.
	pass := func(repair string, rows, unchanged int64, drift string) *VerifyReport {
		t.Helper()
		rep, err := n.a.Verify(ctx, repair, false)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Rows != rows || rep.RowsUnchanged != unchanged || driftKinds(rep) != drift {
			t.Fatalf("pass read %d rows and found %d unchanged (%d of %d ranges), drift %q\nwant %d read, %d unchanged, drift %q",
				rep.Rows, rep.RowsUnchanged, rep.RangesUnchanged, rep.Ranges, driftKinds(rep), rows, unchanged, drift)
		}
		return rep
	}

	userExec(`INSERT INTO customers (id, name, status) SELECT i, 'customer ' || i, 'v1' FROM generate_series(1, 95) i`)
	waitFor(t, 15*time.Second, "the rows captured", func() bool { return n.a.Store().Digest().Count == 95 })

	first := pass(RepairReport, 95, 0, "")
	if first.Ranges != 10 {
		t.Fatalf("the first pass compared %d ranges, want 10 of 10 rows or fewer", first.Ranges)
	}
	second := pass(RepairReport, 0, 95, "")
	if second.RangesUnchanged != 10 || second.SystemDigest != first.SystemDigest || second.SystemRows != 95 {
		t.Fatalf("second pass: %d ranges unchanged, system digest %s of %d rows; want 10 and the first pass's %s",
			second.RangesUnchanged, second.SystemDigest, second.SystemRows, first.SystemDigest)
	}

	// A user's write: captured, so its range is read again and equal.
	userExec(`UPDATE customers SET status = 'v2' WHERE id = 47`)
	waitFor(t, 15*time.Second, "the update captured", func() bool { return storeRow(t, n.a, 47) == "customer 47|v2||" })
	pass(RepairReport, 10, 85, "")
	pass(RepairReport, 0, 95, "")

	// Ranges emptied by the users' deletes join the range after them.
	userExec(`DELETE FROM customers WHERE id <= 30`)
	waitFor(t, 15*time.Second, "the deletes captured", func() bool { return storeRow(t, n.a, 30) == "<none>" })
	pass(RepairReport, 0, 65, "")
	if got := len(n.a.ver.memo["customers"].ranges); got != 7 {
		t.Fatalf("the memo holds %d ranges, want 7: the three emptied ranges joined the next", got)
	}
	clean := pass(RepairReport, 0, 65, "")

	// Writes behind capture's back, in three ranges (one of them joined),
	// found by the next pass, which reads only those ranges. (The writes
	// come before any apply: until the sidecar applies, its session does
	// not hold the replication origin.)
	bypass(`UPDATE customers SET status = 'drifted' WHERE id = 31`,
		`DELETE FROM customers WHERE id = 55`,
		`INSERT INTO customers (id, name, status) VALUES (1000, 'Stray', 'x')`)
	const drift = `31:differs status="drifted"/"v1"; 55:missing_in_system name=null/"customer 55" status=null/"v1"; 1000:not_in_merged_state name="Stray"/null status="x"/null`
	pass(RepairReport, 10+9+6, 40, drift)
	// A range with drift is never taken as unchanged: the next pass reads
	// it again.
	pass(RepairApply, 10+9+6, 40, drift)
	waitFor(t, 15*time.Second, "PostgreSQL repaired", func() bool {
		return status(31) == "v1" && status(55) == "v1" && status(1000) == "<none>" && n.a.Store().PendingLen() == 0
	})
	pass(RepairReport, 10+10+5, 40, "")
	if rep := pass(RepairReport, 0, 65, ""); rep.SystemDigest != clean.SystemDigest {
		t.Fatalf("system digest %s after the repair, want %s", rep.SystemDigest, clean.SystemDigest)
	}
}
