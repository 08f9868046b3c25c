package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// logWriter routes the sidecars' logs to t.Log until the test ends: a
// memberlist timer may still fire while a node shuts down, and t.Log after
// the end would panic.
type logWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(tb testing.TB) *slog.Logger {
	w := &logWriter{tb: tb}
	tb.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startServers starts n throwaway PostgreSQL servers at once and creates a
// database in each; they stop when tb ends.
func startServers(tb testing.TB, bin pgtest.Binaries, n int) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srvs := make([]*pgtest.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { srvs[i], errs[i] = pgtest.New(ctx, bin, pgtest.Options{}) })
	}
	wg.Wait()
	for _, s := range srvs {
		if s != nil {
			tb.Cleanup(func() {
				if err := s.Close(); err != nil {
					tb.Errorf("close postgresql: %v", err)
				}
			})
		}
	}
	var dsns []string
	for i, s := range srvs {
		if errs[i] != nil {
			tb.Fatalf("start postgresql: %v", errs[i])
		}
		dsn, err := s.CreateDB(ctx, fmt.Sprintf("db%d", i+1))
		if err != nil {
			tb.Fatal(err)
		}
		dsns = append(dsns, dsn)
	}
	return dsns
}

// oneServer starts a throwaway server with the named databases and
// returns their DSNs; it stops when t ends.
func oneServer(t *testing.T, names ...string) []string {
	t.Helper()
	srv := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dsns []string
	for _, name := range names {
		dsn, err := srv.CreateDB(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		dsns = append(dsns, dsn)
	}
	return dsns
}

// TestIntegrationPostgresScenarios runs the PostgreSQL scenarios small, on
// three databases of one server, so that `make test-integration` keeps
// them working; BenchmarkPostgresPropagation runs them in earnest on three
// servers.
func TestIntegrationPostgresScenarios(t *testing.T) {
	dsns := oneServer(t, "crm", "erp", "web")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pc, err := StartPostgresCluster(ctx, dsns, ClusterOptions{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	defer pc.Close() // Close may run twice
	l, err := PostgresEndToEnd(ctx, pc, EndToEndOptions{Samples: 10, From: 0, To: 2})
	if err != nil {
		t.Fatalf("end-to-end: %+v", err)
	}
	if l.Samples != 10 || l.P50ms <= 0 || l.P99ms < l.P50ms {
		t.Errorf("implausible latencies %+v", l)
	}
	// Two runs: the second must insert new keys and count only those.
	for run := range 2 {
		r, err := PostgresThroughput(ctx, pc, ThroughputOptions{Duration: 300 * time.Millisecond, Batch: 20})
		if err != nil {
			t.Fatalf("throughput run %d: %+v", run, err)
		}
		if r.Rows == 0 || r.RowsPerSecond <= 0 || r.Fields != 2*r.Rows {
			t.Errorf("implausible throughput %+v", r)
		}
		t.Logf("throughput run %d: %+v", run, r)
	}
	// Every database holds the same rows: 1 from end-to-end, the rest from
	// the writers.
	var tables [][]string
	for i := range pc.Nodes {
		rows, err := pc.conns[i].Query(ctx, `SELECT id || '=' || v || '/' || n FROM `+PostgresTable+` ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, got)
	}
	for i := 1; i < len(tables); i++ {
		if !slices.Equal(tables[i], tables[0]) {
			t.Errorf("%s holds %d rows, %s %d, and they differ", pc.Nodes[i].Name, len(tables[i]), pc.Nodes[0].Name, len(tables[0]))
		}
	}
	t.Logf("end-to-end %+v", l)

	// Close drops what the cluster installed.
	pc.Close()
	for i, name := range []string{"crm", "erp", "web"} {
		var slots, pubs, origins, tabs int
		conn, err := pgx.Connect(ctx, dsns[i])
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		q := func(sql string, dst *int) {
			if err := conn.QueryRow(ctx, sql).Scan(dst); err != nil {
				t.Fatal(err)
			}
		}
		q(`SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'lattice_bench_%'`, &slots)
		q(`SELECT count(*) FROM pg_publication WHERE pubname LIKE 'lattice_bench_%'`, &pubs)
		q(`SELECT count(*) FROM pg_replication_origin WHERE roname LIKE 'lattice_bench_%'`, &origins)
		q(`SELECT count(*) FROM pg_tables WHERE tablename = '`+PostgresTable+`'`, &tabs)
		if slots+pubs+origins+tabs != 0 {
			t.Errorf("%s keeps %d slots, %d publications, %d origins, %d tables after Close", name, slots, pubs, origins, tabs)
		}
	}
}

// BenchmarkPostgresPropagation: three PostgreSQL servers, three sidecars
// with the postgres adapter. p50-ms and p99-ms: a row committed in database
// A until it is visible in database B, 300 samples per iteration, the
// percentiles over all of them. rows/s and fields/s: writers in all three
// databases insert rows as fast as they can for 3 s; rows (two fields each)
// converged in every database per second, from the first write to
// convergence, the median over iterations.
func BenchmarkPostgresPropagation(b *testing.B) {
	dsns := startServers(b, pgtest.RequireBinaries(b), 3)
	ctx := context.Background()
	pc, err := StartPostgresCluster(ctx, dsns, ClusterOptions{Logger: testLogger(b)})
	if err != nil {
		b.Fatalf("%+v", err)
	}
	defer pc.Close()
	b.ReportAllocs()
	var all []time.Duration
	var rows, fields []float64
	for b.Loop() {
		l, err := PostgresEndToEnd(ctx, pc, EndToEndOptions{Samples: 300, From: 0, To: 1})
		if err != nil {
			b.Fatalf("%+v", err)
		}
		for _, ms := range l.Raw {
			all = append(all, time.Duration(ms*1e6))
		}
		r, err := PostgresThroughput(ctx, pc, ThroughputOptions{Duration: 3 * time.Second})
		if err != nil {
			b.Fatalf("%+v", err)
		}
		rows = append(rows, r.RowsPerSecond)
		fields = append(fields, r.FieldsPerSec)
		b.Logf("end-to-end p50 %.2f ms, p99 %.2f ms; throughput %d rows written in %.1f s, in every database after %.1f s",
			l.P50ms, l.P99ms, r.Rows, r.WriteSeconds, r.TotalSeconds)
	}
	l := Summarise(all)
	b.ReportMetric(l.P50ms, "p50-ms")
	b.ReportMetric(l.P99ms, "p99-ms")
	b.ReportMetric(float64(l.Samples), "samples")
	b.ReportMetric(median(rows), "rows/s")
	b.ReportMetric(median(fields), "fields/s")
}

// TestIntegrationRunPostgres runs Run small with PostgreSQL databases, as
// `lattice bench --postgres` does: four scenarios, each with its own
// figures.
func TestIntegrationRunPostgres(t *testing.T) {
	dsns := oneServer(t, "db1", "db2")
	r, err := Run(context.Background(), RunOptions{
		Nodes: 2, Samples: 4, Duration: 200 * time.Millisecond, SQLite: true, Postgres: dsns,
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatalf("%+v", err)
	}
	var titles []string
	for _, s := range r.Scenarios {
		titles = append(titles, s.Title())
	}
	want := []string{"end-to-end (sqlite)", "throughput (sqlite)", "end-to-end (postgres)", "throughput (postgres)"}
	if !slices.Equal(titles, want) {
		t.Fatalf("scenarios %q, want %q", titles, want)
	}
	sl, pl := r.Scenarios[0].Latency, r.Scenarios[2].Latency
	st, pt := r.Scenarios[1].Throughput, r.Scenarios[3].Throughput
	if sl == nil || pl == nil || st == nil || pt == nil || sl == pl || st == pt {
		t.Fatalf("scenarios share or lack results: %+v", r.Scenarios)
	}
	if pl.Samples != 4 || pt.Rows == 0 || pt.RowsPerSecond <= 0 {
		t.Errorf("postgres results %+v, %+v", *pl, *pt)
	}
}

// TestIntegrationRunChecksPostgres: a database without wal_level=logical,
// or one that does not answer, fails Run at once, with a hint, before any
// scenario runs.
func TestIntegrationRunChecksPostgres(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	ctx := context.Background()
	var progress strings.Builder
	for _, tt := range []struct {
		name string
		dsns []string
		want string
	}{
		{"wal_level", []string{srv.DSN("postgres"), srv.DSN("postgres")}, "wal_level is replica"},
		{"unreachable", []string{"postgres://nobody@127.0.0.1:1/none?connect_timeout=5", srv.DSN("postgres")}, "connect to postgres database 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(ctx, RunOptions{SQLite: true, Postgres: tt.dsns, Progress: &progress})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want an error about %q", err, tt.want)
			}
			if len(errors.GetAllHints(err)) == 0 {
				t.Errorf("no hint in %+v", err)
			}
		})
	}
	if progress.Len() > 0 {
		t.Errorf("scenarios ran before the check: %s", progress.String())
	}
}
