package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
)

const benchRows = 1000 // rows per user transaction or Apply batch

const benchTable = `(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL, at TIMESTAMP, tags TEXT[])`

// benchDB creates a database with a synced table and an identical table the
// adapter leaves alone, the baseline. It lives on tmpfs (/dev/shm) where
// there is one, so that fsync, which dominates a commit on disk and varies
// wildly on a shared machine, is free: the figures are the adapter's own
// cost. Set LATTICE_BENCH_DIR to measure on another file system.
func benchDB(b *testing.B) (string, *sql.DB) {
	b.Helper()
	dir := os.Getenv("LATTICE_BENCH_DIR")
	if dir == "" {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			dir = "/dev/shm"
		}
	}
	if dir == "" {
		dir = b.TempDir()
	} else {
		d, err := os.MkdirTemp(dir, "lattice-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	path := filepath.Join(dir, "bench.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	for _, q := range []string{`CREATE TABLE items` + benchTable, `CREATE TABLE plain` + benchTable} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	return path, db
}

func benchOpen(b *testing.B, path string, poll ...time.Duration) *sqlite.Adapter {
	cfg := sqlite.DefaultConfig()
	cfg.Path = path
	cfg.Tables = []string{"items"}
	if len(poll) > 0 {
		cfg.PollInterval = poll[0]
	}
	a, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return a
}

// userTxn runs the statement q once for each row i from first to
// first+n-1, in one transaction, as an application would, and returns how
// long it took. args appends row i's arguments to buf.
func userTxn(b *testing.B, db *sql.DB, q string, first, n int, args func(buf []any, i int) []any) time.Duration {
	start := time.Now()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	st, err := tx.Prepare(q)
	if err != nil {
		b.Fatal(err)
	}
	var buf []any
	for i := first; i < first+n; i++ {
		buf = args(buf[:0], i)
		if _, err := st.Exec(buf...); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// userInsert writes n rows in one transaction, as an application would.
func userInsert(b *testing.B, db *sql.DB, table string, first, n int) time.Duration {
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	return userTxn(b, db, `INSERT INTO `+table+`(id, name, qty, price, at, tags) VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET qty = excluded.qty`,
		first, n, func(buf []any, i int) []any {
			return append(buf, i, "item "+strconv.Itoa(i), i%100, float64(i)/4, at.Add(time.Duration(i)*time.Second), `["a","b"]`)
		})
}

// benchCapture snapshots a and runs Capture from the snapshot's cursor
// until the benchmark ends, failing it if check (when not nil) refuses a
// change. It returns a function that waits until n changes in all have
// reached the sink.
func benchCapture(b *testing.B, a *sqlite.Adapter, check func(adapters.Change) error) (wait func(n int)) {
	cur, err := a.Snapshot(context.Background(), func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	var captured atomic.Int64
	progress := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Capture(ctx, cur, func(_ context.Context, bt adapters.Batch) error {
			if check != nil {
				for _, c := range bt.Changes {
					if err := check(c); err != nil {
						return err
					}
				}
			}
			captured.Add(int64(len(bt.Changes)))
			select {
			case progress <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	b.Cleanup(func() { cancel(); <-done })
	return func(n int) {
		for captured.Load() < int64(n) {
			select {
			case <-progress:
			case err := <-done:
				done <- err // for the cleanup
				b.Fatalf("capture: %v", err)
			case <-time.After(time.Minute):
				b.Fatalf("captured %d of %d rows", captured.Load(), n)
			}
		}
	}
}

// BenchmarkSQLiteCapture measures capture end to end: an application
// commits a transaction of benchRows rows, and the time until all of them
// reached the sink. rows/s is captured rows per second of that;
// insert-ratio is the application's insert time into an untracked table
// over the same insert into the captured one (1 = triggers cost nothing).
func BenchmarkSQLiteCapture(b *testing.B) {
	path, db := benchDB(b)
	wait := benchCapture(b, benchOpen(b, path), nil)

	var capture, inserted, plain time.Duration
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		plain += userInsert(b, db, "plain", next, benchRows)
		start := time.Now()
		inserted += userInsert(b, db, "items", next, benchRows)
		next += benchRows
		wait(next)
		capture += time.Since(start)
	}
	b.ReportMetric(float64(next)/capture.Seconds(), "rows/s")
	b.ReportMetric(plain.Seconds()/inserted.Seconds(), "insert-ratio")
}

// userUpdate updates every row of table in one transaction, one statement
// per row, as an application would.
func userUpdate(b *testing.B, db *sql.DB, table string, n, round int) time.Duration {
	return userTxn(b, db, `UPDATE `+table+` SET qty = ?, name = ? WHERE id = ?`, 0, n, func(buf []any, i int) []any {
		return append(buf, round, "item "+strconv.Itoa(i)+" round "+strconv.Itoa(round), i)
	})
}

// BenchmarkSQLiteCaptureUpdate is BenchmarkSQLiteCapture for updates, which
// log the old row beside the new one: rows/s captured, and update-ratio,
// the application's update time of an untracked table over the same
// updates of the captured one.
func BenchmarkSQLiteCaptureUpdate(b *testing.B) {
	path, db := benchDB(b)
	userInsert(b, db, "items", 0, benchRows)
	userInsert(b, db, "plain", 0, benchRows)
	wait := benchCapture(b, benchOpen(b, path), func(c adapters.Change) error {
		if c.Old == nil {
			return errors.New("update captured without its old row")
		}
		return nil
	})

	var capture, updated, plain time.Duration
	want := 0
	round := 0
	b.ReportAllocs()
	for b.Loop() {
		round++
		plain += userUpdate(b, db, "plain", benchRows, round)
		start := time.Now()
		updated += userUpdate(b, db, "items", benchRows, round)
		want += benchRows
		wait(want)
		capture += time.Since(start)
	}
	b.ReportMetric(float64(want)/capture.Seconds(), "rows/s")
	b.ReportMetric(plain.Seconds()/updated.Seconds(), "update-ratio")
}

// BenchmarkSQLiteApply measures Apply of batches of benchRows merged rows
// (new rows and updates), rows/s, against the same upserts made with plain
// database/sql into an untracked table: ratio is Apply's rate over that.
func BenchmarkSQLiteApply(b *testing.B) {
	path, db := benchDB(b)
	a := benchOpen(b, path)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	tags, _ := crdt.List(crdt.String("a"), crdt.String("b"))
	batch := func(round int) []adapters.Write {
		ws := make([]adapters.Write, benchRows)
		for i := range ws {
			id := int64(round*benchRows/2 + i) // half updates, half new rows
			ws[i] = adapters.Write{Collection: "items", Key: crdt.IntKey(id), Row: crdt.Row{
				"id": crdt.Int(id), "name": crdt.String("item " + strconv.FormatInt(id, 10)), "qty": crdt.Int(int64(round)),
				"price": crdt.Float(float64(id) / 4), "at": crdt.Time(at.Add(time.Duration(id) * time.Second)), "tags": tags,
			}}
		}
		return ws
	}
	var apply, raw time.Duration
	rows := 0
	round := 0
	b.ReportAllocs()
	for b.Loop() {
		ws := batch(round)
		start := time.Now()
		if _, err := a.Apply(context.Background(), ws, nil); err != nil {
			b.Fatal(err)
		}
		apply += time.Since(start)
		raw += userInsert(b, db, "plain", round*benchRows/2, benchRows)
		rows += len(ws)
		round++
	}
	b.ReportMetric(float64(rows)/apply.Seconds(), "rows/s")
	b.ReportMetric(raw.Seconds()/apply.Seconds(), "ratio")
}

// BenchmarkSQLiteCaptureLatency measures how long a one-row user
// transaction takes to reach the sink (p50-ms, p99-ms), the SQLite share of
// end-to-end propagation, for two poll intervals. Each write follows the
// previous capture at once, so it just missed a poll: the figures are the
// worst phase, about the interval plus the work; writes arriving at random
// wait half the interval on average.
func BenchmarkSQLiteCaptureLatency(b *testing.B) {
	for _, poll := range []time.Duration{time.Millisecond, sqlite.DefaultConfig().PollInterval} {
		b.Run("poll="+poll.String(), func(b *testing.B) { benchLatency(b, poll) })
	}
}

func benchLatency(b *testing.B, poll time.Duration) {
	path, db := benchDB(b)
	a := benchOpen(b, path, poll)
	cur, err := a.Snapshot(context.Background(), func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	arrived := make(chan int64, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Capture(ctx, cur, func(ctx context.Context, bt adapters.Batch) error {
			for _, c := range bt.Changes {
				select {
				case arrived <- c.Row["id"].AsInt():
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	var lat []time.Duration
	id := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		id++
		start := time.Now()
		if _, err := db.Exec(`INSERT INTO items(id, name) VALUES(?, 'x')`, id); err != nil {
			b.Fatal(err)
		}
		for got := int64(0); got != id; {
			select {
			case got = <-arrived:
			case <-time.After(time.Minute):
				b.Fatalf("row %d not captured", id)
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
}

// BenchmarkSQLiteApplyBehindCapture measures Apply while the change log
// holds a backlog capture has not taken (benchRows user rows of other keys
// after since), against Apply with no backlog in the same run: the cost of
// the check that defers records with uncaptured changes. rows/s is with the
// backlog; ratio is the rate with it over the rate without.
func BenchmarkSQLiteApplyBehindCapture(b *testing.B) {
	path, db := benchDB(b)
	a := benchOpen(b, path)
	since, err := a.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	// A backlog of user rows in the same table, keys above the applied ones.
	userInsert(b, db, "items", 1<<30, benchRows)
	head, err := a.Head(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	batch := func(round int) []adapters.Write {
		ws := make([]adapters.Write, benchRows)
		for i := range ws {
			id := int64(round*benchRows + i)
			ws[i] = adapters.Write{Collection: "items", Key: crdt.IntKey(id), Row: crdt.Row{
				"id": crdt.Int(id), "name": crdt.String("item " + strconv.FormatInt(id, 10)), "qty": crdt.Int(int64(round)),
			}}
		}
		return ws
	}
	var behind, clear time.Duration
	rows, round := 0, 0
	for b.Loop() {
		for _, s := range [][]byte{since, head} {
			ws := batch(round)
			round++
			start := time.Now()
			res, err := a.Apply(context.Background(), ws, s)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Deferred) > 0 {
				b.Fatalf("%d writes deferred", len(res.Deferred))
			}
			if bytes.Equal(s, since) {
				behind += time.Since(start)
				rows += len(ws)
			} else {
				clear += time.Since(start)
			}
		}
	}
	b.ReportMetric(float64(rows)/behind.Seconds(), "rows/s")
	b.ReportMetric(clear.Seconds()/behind.Seconds(), "ratio")
}
