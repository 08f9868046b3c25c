package postgres

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/crdt"
)

const benchDDL = `CREATE TABLE bench (id bigint PRIMARY KEY, name text, status text, amount numeric(12,2),
	at timestamptz, tags text[], doc jsonb)`

// benchSetup starts a server with the bench table and an open adapter.
func benchSetup(b *testing.B) (*Adapter, *pgx.Conn) {
	b.Helper()
	srv := pgtest.StartForBenchmark(b, pgtest.Options{})
	dsn, err := srv.CreateDB(context.Background(), "bench")
	if err != nil {
		b.Fatal(err)
	}
	app := connect(b, dsn)
	exec(b, app, benchDDL)
	cfg := DefaultConfig()
	cfg.DSN = dsn
	cfg.Node = "bench"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	return a, app
}

// insertRows inserts rows [from, from+n) in transactions of txnRows rows.
func insertRows(b *testing.B, app *pgx.Conn, from, n, txnRows int) {
	b.Helper()
	for i := from; i < from+n; i += txnRows {
		exec(b, app, fmt.Sprintf(`INSERT INTO bench SELECT g, 'name ' || g, 'active', g * 1.25, now(), '{a,b}', '{"k": 1}'
			FROM generate_series(%d, %d) g`, i, min(i+txnRows, from+n)-1))
	}
}

// BenchmarkPostgresCapture measures capture throughput: rows/s from the
// slot to the sink, for transactions of 100 rows already committed, and as
// a ratio to reading the same rows with a plain SELECT in the same run.
func BenchmarkPostgresCapture(b *testing.B) {
	a, app := benchSetup(b)
	ctx := context.Background()
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	const rowsPerOp = 20000
	var got atomic.Int64
	var batches atomic.Int64
	sink := func(ctx context.Context, bt adapters.Batch) error {
		got.Add(int64(len(bt.Changes)))
		batches.Add(1)
		return a.Ack(ctx, bt.Cursor)
	}
	var captureTime, selectTime time.Duration
	next := 1
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		insertRows(b, app, next, rowsPerOp, 100)
		from := next
		next += rowsPerOp
		got.Store(0)
		b.StartTimer()

		start := time.Now()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Capture(cctx, cursor, sink) }()
		for got.Load() < rowsPerOp {
			select {
			case err := <-done:
				b.Fatalf("capture ended: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
		captureTime += time.Since(start)
		cancel()
		<-done

		b.StopTimer()
		cursor = encodeCursor(lsn(a.acked.Load()))
		start = time.Now()
		rr := app.PgConn().ExecParams(ctx, fmt.Sprintf(`SELECT id, name, status, amount, at, tags, doc FROM bench WHERE id >= %d AND id < %d`, from, next), nil, nil, nil, nil)
		n := 0
		for rr.NextRow() {
			n++
		}
		if _, err := rr.Close(); err != nil || n != rowsPerOp {
			b.Fatalf("select: %d rows, %v", n, err)
		}
		selectTime += time.Since(start)
		b.StartTimer()
	}
	rows := float64(rowsPerOp * b.N)
	b.ReportMetric(rows/captureTime.Seconds(), "rows/s")
	b.ReportMetric(selectTime.Seconds()/captureTime.Seconds(), "ratio-to-select")
	b.ReportMetric(rows/float64(batches.Load()), "rows/batch")
}

// BenchmarkPostgresCaptureLatency measures the delay from a user's commit to
// the sink receiving it, one single-row transaction at a time.
func BenchmarkPostgresCaptureLatency(b *testing.B) {
	a, app := benchSetup(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	arrived := make(chan time.Time, 1)
	done := make(chan error, 1)
	go func() {
		done <- a.Capture(ctx, cursor, func(ctx context.Context, bt adapters.Batch) error {
			arrived <- time.Now()
			return a.Ack(ctx, bt.Cursor)
		})
	}()
	var lat []time.Duration
	id := 0
	b.ReportAllocs()
	for b.Loop() {
		id++
		start := time.Now()
		exec(b, app, `INSERT INTO bench (id, name) VALUES ($1, 'x')`, id)
		select {
		case at := <-arrived:
			lat = append(lat, at.Sub(start))
		case err := <-done:
			b.Fatalf("capture ended: %v", err)
		case <-time.After(10 * time.Second):
			b.Fatal("no capture within 10s")
		}
	}
	cancel()
	<-done
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPostgresApply measures Apply: rows/s for batches of 500 upserts
// of whole rows, and as a ratio to the same rows written by plain pgx
// upserts (native parameters, no origin, no change check) in the same run.
func BenchmarkPostgresApply(b *testing.B) {
	a, app := benchSetup(b)
	ctx := context.Background()
	const batch = 500
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	tags, _ := crdt.List(crdt.String("a"), crdt.String("b"))
	var applyTime, baseTime time.Duration
	round := 0
	b.ReportAllocs()
	for b.Loop() {
		round++
		writes := make([]adapters.Write, batch)
		for i := range writes {
			id := int64(i + 1)
			writes[i] = adapters.Write{Collection: "bench", Key: crdt.IntKey(id), Row: crdt.Row{
				"id": crdt.Int(id), "name": crdt.String(fmt.Sprintf("name %d %d", id, round)), "status": crdt.String("active"),
				"amount": crdt.String(fmt.Sprintf("%d.25", round)), "at": crdt.Time(at.Add(time.Duration(round) * time.Second)),
				"tags": tags, "doc": crdt.MustJSON(`{"k":1}`),
			}}
		}
		start := time.Now()
		if _, err := a.Apply(ctx, writes, nil); err != nil {
			b.Fatal(err)
		}
		applyTime += time.Since(start)

		b.StopTimer()
		start = time.Now()
		err := pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
			bt := &pgx.Batch{}
			for i := range batch {
				id := int64(i + 1000001)
				bt.Queue(`INSERT INTO bench (id, name, status, amount, at, tags, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)
					ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status, amount = EXCLUDED.amount,
					at = EXCLUDED.at, tags = EXCLUDED.tags, doc = EXCLUDED.doc`,
					id, fmt.Sprintf("name %d %d", id, round), "active", fmt.Sprintf("%d.25", round),
					at.Add(time.Duration(round)*time.Second), []string{"a", "b"}, `{"k":1}`)
			}
			return tx.SendBatch(ctx, bt).Close()
		})
		baseTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(batch*b.N)/applyTime.Seconds(), "rows/s")
	b.ReportMetric(baseTime.Seconds()/applyTime.Seconds(), "ratio-to-plain")
}

// BenchmarkApplyDeferCheck measures what Apply's check for users' changes
// capture has not taken costs (the marker, and the wait for the stream to
// decode it): the median latency of an Apply of batch rows with the check
// (capture streaming, since given) and without (another adapter on the same
// database, no stream, no since), alternately in the same run, and their
// ratio.
func BenchmarkApplyDeferCheck(b *testing.B) {
	checked, _ := benchSetup(b)
	ctx := context.Background()
	cursor, err := checked.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	rec := &recorder{a: checked, ack: true}
	capture(b, checked, cursor, rec.sink)
	cfg := DefaultConfig()
	cfg.DSN = checked.cfg.DSN
	cfg.Node = "plain"
	plain, err := Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = plain.Close() })
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("rows=%d", batch), func(b *testing.B) {
			var withCheck, without []time.Duration
			round := 0
			writes := func(base int64) []adapters.Write {
				round++
				ws := make([]adapters.Write, batch)
				for i := range ws {
					id := base + int64(i)
					ws[i] = adapters.Write{Collection: "bench", Key: crdt.IntKey(id), Row: crdt.Row{
						"id": crdt.Int(id), "name": crdt.String(fmt.Sprintf("name %d %d", id, round)),
					}}
				}
				return ws
			}
			for b.Loop() {
				start := time.Now()
				res, err := checked.Apply(ctx, writes(1), cursor)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Deferred) > 0 {
					b.Fatalf("deferred %v: no user wrote", res.Deferred)
				}
				withCheck = append(withCheck, time.Since(start))
				start = time.Now()
				if _, err := plain.Apply(ctx, writes(1_000_001), nil); err != nil {
					b.Fatal(err)
				}
				without = append(without, time.Since(start))
			}
			med := func(d []time.Duration) time.Duration {
				slices.Sort(d)
				return d[len(d)/2]
			}
			b.ReportMetric(float64(med(withCheck).Microseconds())/1000, "ms-checked-p50")
			b.ReportMetric(float64(med(without).Microseconds())/1000, "ms-unchecked-p50")
			b.ReportMetric(float64(med(withCheck))/float64(med(without)), "ratio-p50")
		})
	}
}
