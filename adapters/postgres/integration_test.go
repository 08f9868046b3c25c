package postgres

import (
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

func TestIntegrationSmoke(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE customers (id bigint PRIMARY KEY, name text, status text)`)
	exec(t, app, `INSERT INTO customers VALUES (1, 'ada', 'active'), (2, 'bob', NULL)`)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)

	snap := &recorder{}
	cursor, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	if got := len(snap.changes()); got != 2 {
		t.Fatalf("snapshot rows: got %d, want 2", got)
	}
	rec := &recorder{a: a, ack: true}
	r := capture(t, a, cursor, rec.sink)
	exec(t, app, `INSERT INTO customers VALUES (3, 'cy', 'on hold')`)
	exec(t, app, `UPDATE customers SET status = 'gone' WHERE id = 1`)
	exec(t, app, `DELETE FROM customers WHERE id = 2`)
	waitFor(t, 10*time.Second, "3 changes", func() bool { return len(rec.changes()) >= 3 })
	err = a.Apply(ctx, []adapters.Write{{Collection: "customers", Key: crdt.IntKey(9), Row: crdt.Row{"id": crdt.Int(9), "name": crdt.String("zed")}}})
	if err != nil {
		t.Fatalf("apply: %+v", err)
	}
	exec(t, app, `INSERT INTO customers VALUES (4, 'marker', NULL)`)
	waitFor(t, 10*time.Second, "marker", func() bool { return len(rec.changes()) >= 4 })
	if err := r.stop(); err != nil && err != ctx.Err() {
		t.Logf("capture: %v", err)
	}
	for _, c := range rec.changes() {
		t.Logf("%s %s %v", c.Collection, c.Key, c.Row)
	}
	if got := len(rec.changes()); got != 4 {
		t.Fatalf("got %d changes, want 4", got)
	}
}
