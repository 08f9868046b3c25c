package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/crdt"
)

// slotFlush reads the slot's confirmed_flush_lsn.
func slotFlush(t testing.TB, conn *pgx.Conn, slot string) lsn {
	t.Helper()
	var s *string
	if err := conn.QueryRow(context.Background(), `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s); err != nil {
		t.Fatalf("read slot %s: %v", slot, err)
	}
	if s == nil {
		return 0
	}
	l, err := pglogrepl.ParseLSN(*s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn(l)
}

func currentLSN(t testing.TB, conn *pgx.Conn) lsn {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, err := pglogrepl.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return lsn(l)
}

// eventsOf returns the seq column of the inserts into table events among
// changes, in order.
func eventsOf(changes []adapters.Change) []int64 {
	var out []int64
	for _, c := range changes {
		if c.Collection == "events" && c.Row != nil {
			out = append(out, c.Row["seq"].AsInt())
		}
	}
	return out
}

// TestIntegrationSnapshotUnderWrites: users write continuously while the
// snapshot is read; snapshot plus stream equals the final table, and every
// transaction (each logs one event row) is in exactly one of the two.
func TestIntegrationSnapshotUnderWrites(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text)`)
	exec(t, app, `CREATE TABLE events (seq bigint PRIMARY KEY)`)
	exec(t, app, `INSERT INTO items SELECT g, 0, 'seed ' || g FROM generate_series(1, 4000) g`)
	cfg := testConfig(t, dsn, name)
	cfg.BatchSize = 300
	a := open(t, cfg)
	ctx := ctxT(t)

	// The writer: one event per transaction, plus an update, an insert or
	// a delete of items.
	var committed atomic.Int64
	stopWriter := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			writerDone <- err
			return
		}
		defer conn.Close(context.Background())
		r := rand.New(rand.NewPCG(1, 2))
		for seq := int64(1); ; seq++ {
			select {
			case <-stopWriter:
				writerDone <- nil
				return
			default:
			}
			id := 1 + r.IntN(5000)
			var stmt string
			switch r.IntN(4) {
			case 0:
				stmt = fmt.Sprintf(`INSERT INTO items VALUES (%d, 1, 'new') ON CONFLICT (id) DO UPDATE SET v = items.v + 1`, id)
			case 1:
				stmt = fmt.Sprintf(`DELETE FROM items WHERE id = %d`, id)
			default:
				stmt = fmt.Sprintf(`UPDATE items SET v = v + 1, note = 'txn %d' WHERE id = %d`, seq, id)
			}
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO events VALUES ($1)`, seq)
				return err
			})
			if err != nil {
				writerDone <- err
				return
			}
			committed.Store(seq)
			time.Sleep(500 * time.Microsecond) // pace the load: capture under -race is slower than the writer
		}
	}()
	waitFor(t, 10*time.Second, "writer to start", func() bool { return committed.Load() > 10 })

	// round takes a snapshot while users write, captures from its cursor
	// until the events committed by then arrive, and checks that each
	// transaction is in the snapshot or in the stream, exactly once. The
	// last round stops the writer first. Several rounds, because what could
	// go wrong happens at one WAL position: the slot's consistent point.
	round := func(final bool) (snap, rec *recorder) {
		t.Helper()
		snap = &recorder{}
		first := true
		cursor, err := a.Snapshot(ctx, func(ctx context.Context, b adapters.Batch) error {
			if first {
				// Make sure users commit while the snapshot is being read.
				first = false
				at := committed.Load()
				waitFor(t, 10*time.Second, "writes during the snapshot", func() bool { return committed.Load() >= at+30 })
			}
			if b.Cursor != nil {
				return errors.New("snapshot batch with a cursor")
			}
			return snap.sink(ctx, b)
		})
		if err != nil {
			t.Fatalf("snapshot: %+v", err)
		}
		rec = &recorder{a: a, ack: true}
		r := capture(t, a, cursor, rec.sink)
		at := committed.Load()
		waitFor(t, 10*time.Second, "writes after the snapshot", func() bool { return committed.Load() >= at+50 })
		if final {
			close(stopWriter)
			if err := <-writerDone; err != nil {
				t.Fatalf("writer: %v", err)
			}
		}
		last := committed.Load()
		waitFor(t, 30*time.Second, "capture to catch up", func() bool {
			return slices.Contains(eventsOf(rec.changes()), last)
		})
		if err := r.stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("capture: %+v", err)
		}
		seen := map[int64]int{}
		snapEvents := eventsOf(snap.changes())
		for _, s := range snapEvents {
			seen[s]++
		}
		streamEvents := eventsOf(rec.changes())
		for _, s := range streamEvents {
			seen[s]++
		}
		for s := int64(1); s <= last; s++ {
			if seen[s] != 1 {
				t.Fatalf("event %d seen %d times (snapshot %d events, stream %d)", s, seen[s], len(snapEvents), len(streamEvents))
			}
		}
		if len(snapEvents) == 0 || len(streamEvents) == 0 {
			t.Fatalf("no overlap: snapshot holds %d events, stream %d", len(snapEvents), len(streamEvents))
		}
		t.Logf("snapshot: %d rows, events up to %d; stream: %d changes in %d batches, %d events",
			len(snap.changes()), slices.Max(snapEvents), len(rec.changes()), len(rec.batches()), len(streamEvents))
		return snap, rec
	}
	for range 3 {
		round(false)
	}
	snap, rec := round(true)

	// Snapshot folded with the stream is the table.
	state := map[crdt.Key]crdt.Row{}
	for _, c := range append(snap.changes(), rec.changes()...) {
		if c.Collection != "items" {
			continue
		}
		if c.Row == nil {
			delete(state, c.Key)
		} else {
			state[c.Key] = c.Row
		}
	}
	rows, err := app.Query(ctx, `SELECT id, v, note FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id, v int32
		var note *string
		if err := rows.Scan(&id, &v, &note); err != nil {
			t.Fatal(err)
		}
		n++
		got := state[crdt.IntKey(int64(id))]
		want := crdt.Row{"id": crdt.Int(int64(id)), "v": crdt.Int(int64(v)), "note": crdt.Null()}
		if note != nil {
			want["note"] = crdt.String(*note)
		}
		if len(got) != len(want) || !crdt.Equal(got["v"], want["v"]) || !crdt.Equal(got["note"], want["note"]) {
			t.Fatalf("item %d: snapshot+stream %v, table %v", id, got, want)
		}
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if n != len(state) {
		t.Fatalf("table has %d items, snapshot+stream %d", n, len(state))
	}
}

// engine simulates the sidecar's side of the contract: a batch is durable
// only when it commits (every ackEvery batches), Ack follows the commit, and
// a crash loses what was not durable. It records an error if a change at or
// before the durable cursor is delivered again.
type engine struct {
	mu          sync.Mutex
	ackEvery    int
	durable     map[int64]bool // event seqs
	pending     []int64
	cursor      []byte
	batches     int
	delivered   int
	seen        map[int64]bool
	redelivered int // events delivered again because they were not durable
	progress    *atomic.Int64
	errs        []string
}

func (e *engine) sink(a *Adapter) adapters.Sink {
	return func(ctx context.Context, b adapters.Batch) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, s := range eventsOf(b.Changes) {
			if e.durable[s] {
				e.errs = append(e.errs, fmt.Sprintf("event %d delivered again after it was durable (cursor %x)", s, e.cursor))
			}
			e.pending = append(e.pending, s)
			e.delivered++
			e.progress.Store(int64(len(e.durable) + len(e.pending)))
			if e.seen[s] {
				e.redelivered++
			}
			e.seen[s] = true
		}
		e.batches++
		if e.batches%e.ackEvery == 0 {
			for _, s := range e.pending {
				e.durable[s] = true
			}
			e.pending = nil
			e.cursor = b.Cursor
			return a.Ack(ctx, b.Cursor)
		}
		return nil
	}
}

func (e *engine) setAckEvery(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ackEvery = n
}

// crash drops what was not durable and returns the cursor to resume from.
func (e *engine) crash() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pending = nil
	return e.cursor
}

// TestIntegrationRestarts: PostgreSQL is restarted (cleanly, then killed)
// and the adapter is closed without acknowledging, all while users write;
// capture resumes each time from the last durable cursor, and at the end
// every committed transaction was captured, none delivered again after it
// was durable.
func TestIntegrationRestarts(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn, err := srv.CreateDB(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE events (seq bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())`)
	app.Close(context.Background())
	cfg := testConfig(t, dsn, "restarts")
	cfg.BatchWait = 0 // one transaction per batch: many cursors to resume from
	ctx := ctxT(t)

	// Users insert events one per transaction and retry through outages,
	// at most 200 ahead of capture.
	var committed atomic.Int64
	var backlog atomic.Int64 // events delivered, for the writer's pace
	stopWriter := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for seq := int64(1); ; {
			select {
			case <-stopWriter:
				return
			default:
			}
			if committed.Load() > int64(backlog.Load())+200 {
				time.Sleep(time.Millisecond) // let capture catch up: keeps the test small
				continue
			}
			if conn == nil || conn.IsClosed() {
				c, err := pgx.Connect(ctx, dsn)
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the server is down: poll
					continue
				}
				conn = c
			}
			if _, err := conn.Exec(ctx, `INSERT INTO events (seq) VALUES ($1) ON CONFLICT DO NOTHING`, seq); err != nil {
				continue // maybe committed: the retry is idempotent
			}
			committed.Store(seq)
			seq++
		}
	}()

	e := &engine{ackEvery: 1, durable: map[int64]bool{}, seen: map[int64]bool{}, progress: &backlog}
	a := open(t, cfg)
	cursor, err := a.Snapshot(ctx, func(_ context.Context, b adapters.Batch) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, s := range eventsOf(b.Changes) {
			e.durable[s] = true
		}
		backlog.Store(int64(len(e.durable)))
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	e.cursor = cursor

	// progress waits until capture has delivered n more events.
	delivered := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.delivered
	}
	progress := func(n int) {
		t.Helper()
		target := delivered() + n
		waitFor(t, 20*time.Second, fmt.Sprintf("%d events delivered", target), func() bool { return delivered() >= target })
	}
	resume := func() (*Adapter, *runner) {
		t.Helper()
		var b *Adapter
		waitFor(t, 20*time.Second, "adapter to open", func() bool {
			oc, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var err error
			b, err = Open(oc, cfg)
			return err == nil
		})
		t.Cleanup(func() { _ = b.Close() })
		return b, capture(t, b, e.crash(), e.sink(b))
	}
	r := capture(t, a, cursor, e.sink(a))

	// 1. A clean restart of PostgreSQL mid-stream. (A clean shutdown waits
	// for the stream's client to confirm everything sent, which the engine
	// does by acking each batch.)
	progress(100)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t, 20*time.Second); err == nil {
		t.Fatal("capture returned nil when the server went away")
	} else {
		t.Logf("capture ended with the restart: %v", err)
	}
	a.Close()
	a, r = resume()

	// 2. The adapter closed without acknowledging what it delivered: the
	// engine stops making batches durable, receives some more, and stops.
	e.setAckEvery(3)
	progress(100)
	e.setAckEvery(1 << 30)
	progress(5)
	if err := r.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("capture: %+v", err)
	}
	a.Close()
	a, r = resume()
	e.setAckEvery(3)

	// 3. PostgreSQL killed with SIGKILL mid-stream: crash recovery.
	progress(100)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.wait(t, 20*time.Second); err == nil {
		t.Fatal("capture returned nil when the server was killed")
	}
	a.Close()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	_, r = resume()
	progress(100)
	close(stopWriter)
	<-writerDone

	// Everything committed arrives; then make it all durable.
	check := connect(t, dsn)
	var maxSeq, count int64
	if err := check.QueryRow(ctx, `SELECT max(seq), count(*) FROM events`).Scan(&maxSeq, &count); err != nil {
		t.Fatal(err)
	}
	if count != maxSeq {
		t.Fatalf("events table holds %d rows up to %d", count, maxSeq)
	}
	waitFor(t, 20*time.Second, "every committed event captured", func() bool {
		select {
		case <-r.done:
			t.Fatalf("capture ended: %+v", r.err)
		default:
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		n := int64(len(e.durable) + len(e.pending))
		return n >= maxSeq
	})
	if err := r.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("capture: %+v", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.pending {
		e.durable[s] = true
	}
	for _, msg := range e.errs {
		t.Error(msg)
	}
	for s := int64(1); s <= maxSeq; s++ {
		if !e.durable[s] {
			t.Fatalf("event %d committed but never captured", s)
		}
	}
	if int64(len(e.durable)) != maxSeq {
		t.Fatalf("captured %d events, %d committed", len(e.durable), maxSeq)
	}
	if e.redelivered == 0 {
		t.Errorf("no event was delivered twice: the restarts did not exercise redelivery of unacknowledged batches")
	}
	t.Logf("%d events, %d batches, %d redelivered after restarts, across two server restarts and an adapter restart",
		maxSeq, e.batches, e.redelivered)
}

// TestIntegrationSnapshotConsistentPoint stages the case where a
// transaction commits exactly at the slot's consistent point: it started
// after the snapshot builder's full-snapshot point and was still running
// when the builder became consistent, so it is outside the snapshot, and
// its commit record is the first WAL record after the consistent point. The
// stream must deliver it.
func TestIntegrationSnapshotConsistentPoint(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE events (seq int PRIMARY KEY)`)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)

	// begin opens a transaction that inserts seq and returns it with its
	// transaction id.
	begin := func(seq int) (pgx.Tx, string) {
		t.Helper()
		tx, err := connect(t, dsn).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO events VALUES ($1)`, seq); err != nil {
			t.Fatal(err)
		}
		var xid string
		if err := tx.QueryRow(ctx, `SELECT transactionid::text FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'transactionid'`).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		return tx, xid
	}
	// awaited waits until the slot's creation waits for transaction xid.
	awaited := func(xid string) {
		t.Helper()
		waitFor(t, 20*time.Second, "slot creation to wait for "+xid, func() bool {
			var n int
			if err := app.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND transactionid::text = $1 AND NOT granted`, xid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		})
	}

	txA, xidA := begin(1)
	snap := &recorder{}
	type result struct {
		cursor []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c, err := a.Snapshot(ctx, snap.sink)
		done <- result{c, err}
	}()
	awaited(xidA) // the builder saw A running
	txB, xidB := begin(2)
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	awaited(xidB) // full-snapshot point passed with B running
	txC, _ := begin(3)
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done // consistent, with C running
	if res.err != nil {
		t.Fatalf("snapshot: %+v", res.err)
	}
	if err := txC.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{a: a, ack: true}
	capture(t, a, res.cursor, rec.sink)
	exec(t, app, `INSERT INTO events VALUES (4)`)
	waitFor(t, 10*time.Second, "the barrier", func() bool { return slices.Contains(eventsOf(rec.changes()), 4) })
	got := map[int64]string{}
	for _, s := range eventsOf(snap.changes()) {
		got[s] += "snapshot "
	}
	for _, s := range eventsOf(rec.changes()) {
		got[s] += "stream "
	}
	t.Logf("cursor %s, events %v", lsn(binary.BigEndian.Uint64(res.cursor)), got)
	for s := int64(1); s <= 4; s++ {
		if got[s] != "snapshot " && got[s] != "stream " {
			t.Errorf("event %d: seen in %q, want exactly once", s, got[s])
		}
	}
}
