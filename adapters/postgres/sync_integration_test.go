package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationApplyDefersUncapturedChanges: Apply leaves alone, and
// defers, a write to a record that a user changed after since, whether the
// user's transaction committed before the Apply began or held the row while
// the Apply waited for it; it writes the other records of its batch; once
// since includes the change, it writes. Without a capture stream, an Apply
// given since fails as unavailable rather than write unchecked.
func TestIntegrationApplyDefersUncapturedChanges(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	mon := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	exec(t, app, `INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')`)
	cfg := testConfig(t, dsn, name)
	cfg.SyncWait = 300 * time.Millisecond
	a := open(t, cfg)
	ctx := ctxT(t)
	since, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	rec := &recorder{a: a} // acks by hand
	r := capture(t, a, since, rec.sink)
	w := func(id int64, v string) adapters.Write {
		return adapters.Write{Collection: "t", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "v": crdt.String(v)}}
	}
	value := func(id int) string {
		t.Helper()
		var v *string
		if err := app.QueryRow(ctx, `SELECT v FROM t WHERE id = $1`, id).Scan(&v); err != nil {
			return "<" + err.Error() + ">"
		}
		return *v
	}
	apply := func(since []byte, writes ...adapters.Write) adapters.Applied {
		t.Helper()
		res, err := a.Apply(ctx, writes, since)
		if err != nil {
			t.Fatalf("apply: %+v", err)
		}
		return res
	}

	// A user's update committed just before the Apply: its write is
	// deferred, the other is written.
	exec(t, app, `UPDATE t SET v = 'user' WHERE id = 1`)
	res := apply(since, w(1, "merged"), w(2, "merged"))
	if !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("deferred %v, want [0]", res.Deferred)
	}
	if got, got2 := value(1), value(2); got != "user" || got2 != "merged" {
		t.Fatalf("rows 1, 2 = %q, %q; want the user's and the merged", got, got2)
	}

	// A user's transaction holding row 2 when the Apply writes it: the
	// Apply waits for it, and defers once it commits.
	waitFor(t, 10*time.Second, "the user's update delivered", func() bool { return len(rec.changes()) == 1 })
	since = rec.lastCursor()
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE t SET v = 'held' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	done := make(chan adapters.Applied, 1)
	go func() {
		res, err := a.Apply(ctx, []adapters.Write{w(2, "merged again"), w(3, "merged")}, since)
		if err != nil {
			t.Errorf("apply: %+v", err)
		}
		done <- res
	}()
	waitFor(t, 10*time.Second, "the Apply waiting for the user's lock", func() bool {
		var n int
		if err := mon.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res = <-done
	if !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("deferred %v, want [0]", res.Deferred)
	}
	if got, got3 := value(2), value(3); got != "held" || got3 != "merged" {
		t.Fatalf("rows 2, 3 = %q, %q; want the user's and the merged", got, got3)
	}

	// A user's delete: the Apply does not bring the row back.
	exec(t, app, `DELETE FROM t WHERE id = 3`)
	res = apply(since, w(3, "merged again"))
	if !slices.Equal(res.Deferred, []int{0}) || value(3) != "<no rows in result set>" {
		t.Fatalf("deferred %v, row 3 %q; want [0] and no row", res.Deferred, value(3))
	}

	// Once since includes the changes, the writes go.
	waitFor(t, 10*time.Second, "the user's changes delivered", func() bool { return len(rec.changes()) == 3 })
	since = rec.lastCursor()
	res = apply(since, w(1, "final"), w(2, "final"), w(3, "final"))
	if len(res.Deferred) > 0 {
		t.Fatalf("deferred %v after capture took every change", res.Deferred)
	}
	for id := 1; id <= 3; id++ {
		if got := value(id); got != "final" {
			t.Fatalf("row %d = %q, want final", id, got)
		}
	}
	if n := len(rec.changes()); n != 3 {
		t.Fatalf("captured %d changes, want the users' 3 (Apply's are dropped)", n)
	}

	// Without a stream: unavailable with since, after waiting for one
	// without holding the row; unchecked without since.
	if err := r.stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("capture: %+v", err)
	}
	failed := make(chan error, 1)
	go func() {
		_, err := a.Apply(ctx, []adapters.Write{w(1, "no stream")}, since)
		failed <- err
	}()
	userWrites(t, app, 1, "user, while the apply waits")
	if err := <-failed; !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("apply without a stream = %+v, want unavailable", err)
	}
	if got := value(1); got != "user, while the apply waits" {
		t.Fatalf("row 1 = %q after an apply that failed", got)
	}
	apply(nil, w(1, "unchecked"))
	if value(1) != "unchecked" {
		t.Fatalf("row 1 = %q, want the write of an Apply without since", value(1))
	}
}

// userWrites updates row id of t as a user whose statements give up after
// 500 ms: it fails the test if an Apply holds the row meanwhile.
func userWrites(t *testing.T, app *pgx.Conn, id int, v string) {
	t.Helper()
	tx, err := app.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(context.Background(), `SET LOCAL lock_timeout = '500ms'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `UPDATE t SET v = $1 WHERE id = $2`, v, id); err != nil {
		t.Fatalf("a user's update of row %d while an apply waits for capture: %v (the apply holds the row)", id, err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A stream that falls behind (its sink blocked) defers an Apply's writes
// once; the next Apply waits for it to catch up holding no row, and then
// goes on.
func TestIntegrationApplyWaitsForStalledStreamWithoutLocks(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	exec(t, app, `INSERT INTO t VALUES (1, 'one'), (2, 'two')`)
	cfg := testConfig(t, dsn, name)
	cfg.SyncWait = 200 * time.Millisecond
	a := open(t, cfg)
	ctx := ctxT(t)
	since, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	gate, blocked := make(chan struct{}), make(chan struct{}, 1)
	rec := &recorder{a: a}
	capture(t, a, since, func(ctx context.Context, b adapters.Batch) error {
		select {
		case blocked <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		return rec.sink(ctx, b)
	})
	w := func(id int64, v string) adapters.Write {
		return adapters.Write{Collection: "t", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "v": crdt.String(v)}}
	}

	// The stream delivers a user's change and its sink blocks.
	exec(t, app, `UPDATE t SET v = 'user' WHERE id = 2`)
	<-blocked
	res, err := a.Apply(ctx, []adapters.Write{w(1, "merged")}, since)
	if err != nil || !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("apply beside a stalled stream = %v, %+v; want [0] deferred", res.Deferred, err)
	}

	// The next Apply waits for the stream without holding row 1: a user
	// writes it meanwhile, and the Apply, once the stream goes on, finds
	// that change and defers the write again, while row 3's is written.
	done := make(chan adapters.Applied, 1)
	go func() {
		res, err := a.Apply(ctx, []adapters.Write{w(1, "merged"), w(3, "merged")}, since)
		if err != nil {
			t.Errorf("apply: %+v", err)
		}
		done <- res
	}()
	userWrites(t, app, 1, "user")
	close(gate)
	res = <-done
	if !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("deferred %v, want [0] (row 1's user change)", res.Deferred)
	}
	var v1, v3 string
	if err := app.QueryRow(ctx, `SELECT (SELECT v FROM t WHERE id = 1), (SELECT v FROM t WHERE id = 3)`).Scan(&v1, &v3); err != nil {
		t.Fatal(err)
	}
	if v1 != "user" || v3 != "merged" {
		t.Fatalf("rows 1, 3 = %q, %q; want the user's and the merged", v1, v3)
	}
}
