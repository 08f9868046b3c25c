package sidecar

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// verifyBenchRows is the table size of the verification benchmarks:
// LATTICE_VERIFY_ROWS, default 1,000,000.
func verifyBenchRows(b *testing.B) int {
	if s := os.Getenv("LATTICE_VERIFY_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// benchVerify measures one verification pass (report only, at full speed)
// over a system whose rows all equal the merged state, and over the same
// system with 1,000 rows changed behind capture's back (drift, confirmed
// and listed, not repaired; one row in each range of 1,000), each reading
// every row. With an adapter that hashes ranges (adapters.RangeHasher), the
// pass that reads every row forgets what earlier passes learnt, and
// no-difference-hashed measures the pass that follows one that found every
// range equal: it reads no row, and reports its ratio (rows/s over those of
// the pass that reads every row, measured in the same run). drift makes
// the drifted rows.
func benchVerify(b *testing.B, a *Agent, rows int, drift func()) {
	ctx := context.Background()
	waitFor(b, 10*time.Minute, "the snapshot stored", func() bool { return a.Ready() && a.store.Digest().Count == uint64(rows) })
	forget := func() {
		a.ver.mu.Lock()
		clear(a.ver.memo)
		a.ver.mu.Unlock()
	}
	run := func(b *testing.B, wantDrift int, wantRead int64, before func()) float64 {
		b.ReportAllocs()
		var took time.Duration
		for b.Loop() {
			if before != nil {
				b.StopTimer()
				before()
				b.StartTimer()
			}
			start := time.Now()
			rep, err := a.Verify(ctx, RepairReport, false)
			took += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if rep.Rows != wantRead || rep.Rows+rep.RowsUnchanged != int64(rows) || rep.DriftRecords != wantDrift {
				b.Fatalf("pass read %d rows, found %d unchanged and %d drift records; want %d read of %d and %d drift records",
					rep.Rows, rep.RowsUnchanged, rep.DriftRecords, wantRead, rows, wantDrift)
			}
		}
		sec := took.Seconds() / float64(b.N)
		b.ReportMetric(sec, "seconds")
		b.ReportMetric(float64(rows)/sec, "rows/s")
		return sec
	}
	var full float64
	b.Run("no-difference", func(b *testing.B) { full = run(b, 0, int64(rows), forget) })
	if _, ok := a.adp.(adapters.RangeHasher); ok {
		b.Run("no-difference-hashed", func(b *testing.B) {
			forget()
			if _, err := a.Verify(ctx, RepairReport, false); err != nil {
				b.Fatal(err)
			}
			sec := run(b, 0, 0, nil)
			b.ReportMetric(full/sec, "ratio")
		})
	}
	drift()
	b.Run("1000-drifted", func(b *testing.B) { run(b, 1000, int64(rows), nil) })
}

func BenchmarkVerifySQLite(b *testing.B) {
	rows := verifyBenchRows(b)
	dir := b.TempDir()
	path := filepath.Join(dir, "sys.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT, phone TEXT);
		WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ` + strconv.Itoa(rows) + `)
		INSERT INTO customers SELECT i, 'customer ' || i, 'active', '+1 555 ' || i FROM s`); err != nil {
		b.Fatal(err)
	}
	a, err := Start(context.Background(), Config{
		Node: "bench", Data: filepath.Join(dir, "store"), Bind: "127.0.0.1:0", API: APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterSQLite, DSN: path, PollInterval: 10 * time.Millisecond},
		Verify:  VerifyConfig{Disabled: true},
	}, Options{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	benchVerify(b, a, rows, func() {
		if _, err := db.Exec(`BEGIN; INSERT OR REPLACE INTO _lattice_apply(x) VALUES(1);
			UPDATE customers SET status = 'drifted' WHERE id % (` + strconv.Itoa(rows) + ` / 1000) = 0;
			DELETE FROM _lattice_apply; COMMIT`); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkIntegrationPostgresVerify(b *testing.B) {
	srv := pgtest.Start(b, pgtest.Options{})
	rows := verifyBenchRows(b)
	ctx := context.Background()
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, status text, phone text);
		INSERT INTO customers SELECT i, 'customer ' || i, 'active', '+1 555 ' || i FROM generate_series(1, `+strconv.Itoa(rows)+`) i`); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	const origin = "lattice_bench_verify"
	a, err := Start(ctx, Config{
		Node: "bench", Data: filepath.Join(dir, "store"), Bind: "127.0.0.1:0", API: APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Origin: origin},
		Verify:  VerifyConfig{Disabled: true, Settle: 100 * time.Millisecond},
	}, Options{Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	benchVerify(b, a, rows, func() {
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(ctx)
		for _, q := range []string{
			`SELECT pg_replication_origin_session_setup('` + origin + `')`,
			`UPDATE customers SET status = 'drifted' WHERE id % (` + strconv.Itoa(rows) + ` / 1000) = 0`,
			`SELECT pg_replication_origin_session_reset()`,
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
}
