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

// replyTime reads when the server last heard a status update from the
// slot's stream.
func replyTime(t testing.TB, conn *pgx.Conn, slot string) time.Time {
	t.Helper()
	var at *time.Time
	err := conn.QueryRow(context.Background(), `
		SELECT r.reply_time FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
		WHERE s.slot_name = $1`, slot).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) || at == nil {
		return time.Time{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return *at
}

// TestIntegrationFlushPosition: the slot's confirmed position follows Ack,
// never passes a delivered batch that is not acknowledged, and keeps
// advancing while the synced tables are idle or only see Apply's writes, so
// that the slot does not hold back WAL.
func TestIntegrationFlushPosition(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	exec(t, app, `CREATE TABLE noise (id serial PRIMARY KEY, v text)`)
	cfg := testConfig(t, dsn, name)
	cfg.Tables = []string{"t"}
	cfg.StatusInterval = 50 * time.Millisecond
	a := open(t, cfg)
	slot := a.cfg.Slot
	ctx := ctxT(t)
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	rec := &recorder{a: a} // acks by hand
	capture(t, a, cursor, rec.sink)

	// A delivered batch that is not acknowledged holds the position, even
	// while other tables generate WAL and status updates go out.
	exec(t, app, `INSERT INTO t VALUES (1, 'one')`)
	waitFor(t, 10*time.Second, "the insert", func() bool { return len(rec.batches()) == 1 })
	unacked, _ := decodeCursor(rec.lastCursor())
	exec(t, app, `INSERT INTO noise (v) SELECT 'x' FROM generate_series(1, 100)`)
	since := time.Now()
	waitFor(t, 10*time.Second, "two status updates", func() bool { return replyTime(t, app, slot).After(since.Add(2 * cfg.StatusInterval)) })
	if got := slotFlush(t, app, slot); got >= unacked {
		t.Fatalf("confirmed flush %s passed the unacknowledged batch at %s", got, unacked)
	}

	// Ack moves it.
	if err := a.Ack(ctx, rec.lastCursor()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "flush at the acked cursor", func() bool { return slotFlush(t, app, slot) >= unacked })

	// Idle: WAL from other tables only. The position follows the server's.
	for range 3 {
		exec(t, app, `INSERT INTO noise (v) SELECT 'x' FROM generate_series(1, 100)`)
	}
	target := currentLSN(t, app)
	waitFor(t, 10*time.Second, "flush to follow idle WAL", func() bool { return slotFlush(t, app, slot) >= target })

	// Only Apply's own writes: dropped by capture, and the position still
	// moves past them.
	for i := range 3 {
		w := adapters.Write{Collection: "t", Key: crdt.IntKey(int64(10 + i)), Row: crdt.Row{"id": crdt.Int(int64(10 + i)), "v": crdt.String("applied")}}
		if _, err := a.Apply(ctx, []adapters.Write{w}, nil); err != nil {
			t.Fatal(err)
		}
	}
	target = currentLSN(t, app)
	waitFor(t, 10*time.Second, "flush to pass Apply's writes", func() bool { return slotFlush(t, app, slot) >= target })
	if n := len(rec.changes()); n != 1 {
		t.Fatalf("captured %d changes, want only the user's insert", n)
	}
}

// TestIntegrationSchemaChange: a new column is captured from its first
// change and appears in Tables; a dropped one is no longer captured; a new
// column of an unsupported type stops capture with a clear error.
func TestIntegrationSchemaChange(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, a text)`)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	rec := &recorder{a: a, ack: true}
	r := capture(t, a, cursor, rec.sink)
	exec(t, app, `INSERT INTO t VALUES (1, 'before')`)
	exec(t, app, `ALTER TABLE t ADD COLUMN b bigint[]`)
	exec(t, app, `INSERT INTO t VALUES (2, 'after', '{5,6}')`)
	exec(t, app, `UPDATE t SET a = 'touched' WHERE id = 1`)
	waitFor(t, 10*time.Second, "3 changes", func() bool { return len(rec.changes()) >= 3 })
	got := rec.changes()
	want := []crdt.Row{
		{"id": crdt.Int(1), "a": crdt.String("before")},
		{"id": crdt.Int(2), "a": crdt.String("after"), "b": mustList(t, crdt.Int(5), crdt.Int(6))},
		{"id": crdt.Int(1), "a": crdt.String("touched"), "b": crdt.Null()},
	}
	for i, w := range want {
		if !sameRow(got[i].Row, w) {
			t.Fatalf("change %d: %v, want %v", i, got[i].Row, w)
		}
	}
	tables, err := a.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := tables[0].Column("b"); c == nil || c.Kind != crdt.KindList || c.Elem != crdt.KindInt {
		t.Fatalf("Tables after ADD COLUMN: %+v", tables[0])
	}
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "t", Key: crdt.IntKey(3), Row: crdt.Row{
		"id": crdt.Int(3), "a": crdt.String("applied"), "b": mustList(t, crdt.Int(7)),
	}}}, nil); err != nil {
		t.Fatalf("apply with the new column: %+v", err)
	}

	exec(t, app, `ALTER TABLE t DROP COLUMN a`)
	exec(t, app, `UPDATE t SET b = '{8}' WHERE id = 3`)
	waitFor(t, 10*time.Second, "the update", func() bool { return len(rec.changes()) >= 4 })
	if row := rec.changes()[3].Row; !sameRow(row, crdt.Row{"id": crdt.Int(3), "b": mustList(t, crdt.Int(8))}) {
		t.Fatalf("after DROP COLUMN: %v", row)
	}
	// Apply still knows the dropped column until it finds out.
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "t", Key: crdt.IntKey(5), Row: crdt.Row{
		"id": crdt.Int(5), "b": mustList(t, crdt.Int(9)),
	}}}, nil); err != nil {
		t.Fatalf("apply after DROP COLUMN: %+v", err)
	}

	exec(t, app, `ALTER TABLE t ADD COLUMN p point`)
	exec(t, app, `INSERT INTO t VALUES (4, '{}', '(1,2)')`)
	err = r.wait(t, 10*time.Second)
	checkErr(t, err, ErrUnsupportedType, "supported:", "table t column p", "point")
}

// TestIntegrationTruncate: a truncate cannot be turned into deletes, so
// capture stops with a clear error rather than diverge.
func TestIntegrationTruncate(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY)`)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	r := capture(t, a, cursor, (&recorder{}).sink)
	exec(t, app, `INSERT INTO t VALUES (1)`)
	exec(t, app, `TRUNCATE t`)
	checkErr(t, r.wait(t, 10*time.Second), ErrTruncate, "DELETE rather than TRUNCATE", "table(s) t truncated")
}

// TestIntegrationToast: a large value stored out of line and left unchanged
// by an update is in the captured row with replica identity full (the
// default), and left out of it with keep.
func TestIntegrationToast(t *testing.T) {
	for _, mode := range []string{IdentityFull, IdentityKeep} {
		t.Run(mode, func(t *testing.T) {
			srv := sharedServer(t)
			name, dsn := newDB(t, srv)
			app := connect(t, dsn)
			exec(t, app, `CREATE TABLE docs (id int PRIMARY KEY, body bytea, n int)`)
			cfg := testConfig(t, dsn, name)
			cfg.ReplicaIdentity = mode
			a := open(t, cfg)
			ctx := ctxT(t)
			cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
			if err != nil {
				t.Fatalf("snapshot: %+v", err)
			}
			rec := &recorder{a: a, ack: true}
			capture(t, a, cursor, rec.sink)
			// 64 KiB of noise: too large to stay in the row, incompressible.
			exec(t, app, `INSERT INTO docs SELECT 1, decode(string_agg(lpad(to_hex((random()*255)::int), 2, '0'), ''), 'hex'), 0
				FROM generate_series(1, 65536)`)
			exec(t, app, `UPDATE docs SET n = 1`)
			waitFor(t, 10*time.Second, "2 changes", func() bool { return len(rec.changes()) >= 2 })
			ins, upd := rec.changes()[0].Row, rec.changes()[1].Row
			if len(ins["body"].AsBytes()) != 65536 {
				t.Fatalf("insert: body of %d bytes", len(ins["body"].AsBytes()))
			}
			if old := rec.changes()[0].Old; old != nil {
				t.Fatalf("insert with an old row %v", old)
			}
			body, inRow := upd["body"]
			old := rec.changes()[1].Old
			switch mode {
			case IdentityFull:
				if !inRow || !crdt.Equal(body, ins["body"]) {
					t.Fatalf("update with replica identity full: body present %v, equal %v", inRow, crdt.Equal(body, ins["body"]))
				}
				// The old row is the whole row before the update.
				if old == nil || !crdt.Equal(old["body"], ins["body"]) || !crdt.Equal(old["n"], crdt.Int(0)) || !crdt.Equal(old["id"], crdt.Int(1)) {
					t.Fatalf("update with replica identity full: old row %d columns, body equal %v, n %v", len(old), crdt.Equal(old["body"], ins["body"]), old["n"])
				}
			case IdentityKeep:
				if inRow {
					t.Fatalf("update with replica identity kept: unchanged body captured as %d bytes, want it left out", len(body.AsBytes()))
				}
				// The primary key identifies the row: no old row.
				if old != nil {
					t.Fatalf("update with replica identity kept: old row %v, want none", old)
				}
			}
			if !crdt.Equal(upd["n"], crdt.Int(1)) {
				t.Fatalf("update: n = %v", upd["n"])
			}
		})
	}
}

// TestIntegrationOriginInUse: two adapters applying with the same origin
// name is a configuration mistake, reported as such.
func TestIntegrationOriginInUse(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := ctxT(t)
	w := []adapters.Write{{Collection: "t", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1)}}}
	a := open(t, testConfig(t, dsn, name))
	if _, err := a.Apply(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	b := open(t, testConfig(t, dsn, name))
	_, err := b.Apply(ctx, w, nil)
	checkErr(t, err, ErrOriginInUse, "own node name")
	a.Close()
	// The closed session's server process may still be exiting, holding the
	// origin for a moment: until then Apply reports it in use, nothing else.
	waitFor(t, 10*time.Second, "apply once the other adapter closed", func() bool {
		_, err := b.Apply(ctx, w, nil)
		if err != nil && !errors.Is(err, ErrOriginInUse) {
			t.Fatalf("apply once the other adapter closed: %+v", err)
		}
		return err == nil
	})
}

// TestIntegrationUninstall: Uninstall removes the slot, the publication,
// the origin and the ID map's schema; a new adapter starts afresh.
func TestIntegrationUninstall(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE s (id bigserial PRIMARY KEY)`)
	ctx := ctxT(t)
	a := open(t, testConfig(t, dsn, name))
	if _, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "t", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1)}},
		{Collection: "s", NewKey: crdt.StringKey("c"), Row: crdt.Row{}}}, nil); err != nil {
		t.Fatal(err)
	}
	count := func(sql string) int {
		var n int
		if err := app.QueryRow(ctx, sql, "lattice_"+name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	objects := func() []int {
		return []int{
			count(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1`),
			count(`SELECT count(*) FROM pg_publication WHERE pubname = $1`),
			count(`SELECT count(*) FROM pg_replication_origin WHERE roname = $1`),
			count(`SELECT count(*) FROM pg_namespace WHERE nspname = $1`),
		}
	}
	if got := objects(); !slices.Equal(got, []int{1, 1, 1, 1}) {
		t.Fatalf("installed objects %v, want slot, publication, origin and id map schema", got)
	}
	if err := a.Uninstall(ctx); err != nil {
		t.Fatalf("uninstall: %+v", err)
	}
	if got := objects(); !slices.Equal(got, []int{0, 0, 0, 0}) {
		t.Fatalf("after uninstall %v, want none", got)
	}
	if _, err := a.Apply(ctx, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after uninstall: %v, want ErrClosed", err)
	}
	b := open(t, testConfig(t, dsn, name))
	if _, err := b.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil }); err != nil {
		t.Fatalf("snapshot after uninstall: %+v", err)
	}
}

// TestIntegrationSchemas: tables outside the first schema are named
// schema.table, and an allow-list limits what is synced.
func TestIntegrationSchemas(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE SCHEMA sales; CREATE TABLE public.a (id int PRIMARY KEY); CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric);
		CREATE TABLE sales.ignored (x int)`)
	cfg := testConfig(t, dsn, name)
	cfg.Schemas = []string{"public", "sales"}
	cfg.Tables = []string{"a", "sales.orders"}
	a := open(t, cfg)
	ctx := ctxT(t)
	tables, err := a.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if !slices.Equal(names, []string{"a", "sales.orders"}) {
		t.Fatalf("tables %v", names)
	}
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{a: a, ack: true}
	capture(t, a, cursor, rec.sink)
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "sales.orders", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "total": crdt.String("9.99")}}}, nil); err != nil {
		t.Fatal(err)
	}
	exec(t, app, `UPDATE sales.orders SET total = total * 2`)
	waitFor(t, 10*time.Second, "the update", func() bool { return len(rec.changes()) == 1 })
	if c := rec.changes()[0]; c.Collection != "sales.orders" || !crdt.Equal(c.Row["total"], crdt.String("19.98")) {
		t.Fatalf("captured %s %v", c.Collection, c.Row)
	}
}

// TestIntegrationSlotInUse: capture restarted at once after it stopped
// waits for the old session to let go of the slot; a slot that another
// session keeps streaming from is reported.
func TestIntegrationSlotInUse(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := ctxT(t)
	a := open(t, testConfig(t, dsn, name))
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{a: a, ack: true}
	for i := range 5 {
		r := capture(t, a, cursor, rec.sink)
		exec(t, app, `INSERT INTO t VALUES ($1)`, i)
		waitFor(t, 10*time.Second, "the insert", func() bool { return len(rec.changes()) == i+1 })
		if err := r.stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("restart %d: capture: %+v", i, err)
		}
		cursor = rec.lastCursor()
	}

	// Once a change arrives, this capture holds the slot.
	capture(t, a, cursor, rec.sink)
	exec(t, app, `INSERT INTO t VALUES (100)`)
	waitFor(t, 10*time.Second, "the insert", func() bool { return len(rec.changes()) == 6 })
	b := open(t, testConfig(t, dsn, name))
	b.slotWait = 100 * time.Millisecond
	err = b.Capture(ctx, cursor, rec.sink)
	checkErr(t, err, ErrSlotInUse, "own node name", "in use by process")
}
