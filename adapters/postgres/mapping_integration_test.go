package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationNaturalKeyIdentityIndex: with replica_identity keep and
// REPLICA IDENTITY USING INDEX of the natural key's unique index, the old
// key tuples carry the natural key, so a change of it is the delete of the
// old key and the insert of the new one, and a delete names the natural
// key. Local columns stay out.
func TestIntegrationNaturalKeyIdentityIndex(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	if err := srv.Exec(context.Background(), name, `
		CREATE TABLE people (id bigserial PRIMARY KEY, email text NOT NULL, name text, rank int NOT NULL DEFAULT 0);
		CREATE UNIQUE INDEX people_email ON people (email);
		ALTER TABLE people REPLICA IDENTITY USING INDEX people_email`); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dsn, name)
	cfg.ReplicaIdentity = IdentityKeep
	cfg.Keys = map[string][]string{"people": {"email"}}
	cfg.Local = map[string]map[string]crdt.Value{"people": {"rank": crdt.Int(5)}}
	a := open(t, cfg)
	ctx := ctxT(t)
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{a: a}
	capture(t, a, cursor, rec.sink)
	conn := connect(t, dsn)
	exec(t, conn, `INSERT INTO people (email, name, rank) VALUES ('ann@x', 'Ann', 1)`)
	exec(t, conn, `UPDATE people SET email = 'anne@x' WHERE email = 'ann@x'`)
	exec(t, conn, `DELETE FROM people WHERE email = 'anne@x'`)
	waitFor(t, 30*time.Second, "four changes", func() bool { return len(rec.changes()) >= 4 })
	got := rec.changes()
	want := []struct {
		key string
		row bool
	}{{"ann@x", true}, {"ann@x", false}, {"anne@x", true}, {"anne@x", false}}
	if len(got) != len(want) {
		t.Fatalf("captured %d changes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		c := got[i]
		if c.Key != crdt.StringKey(w.key) || (c.Row != nil) != w.row {
			t.Errorf("change %d: %s row %v, want %s (row: %v)", i, c.Key, c.Row, w.key, w.row)
		}
		for _, r := range []crdt.Row{c.Row, c.Old} {
			for _, local := range []string{"id", "rank"} {
				if _, ok := r[local]; ok {
					t.Errorf("change %d carries local column %s: %v", i, local, r)
				}
			}
		}
	}

	// Apply inserts by the natural key with the local column's value.
	row := crdt.Row{"email": crdt.String("bob@x"), "name": crdt.String("Bob")}
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "people", Key: crdt.StringKey("bob@x"), Row: row}}, nil); err != nil {
		t.Fatalf("apply: %+v", err)
	}
	var rank int
	var id int64
	if err := conn.QueryRow(ctx, `SELECT id, rank FROM people WHERE email = 'bob@x'`).Scan(&id, &rank); err != nil {
		t.Fatal(err)
	}
	if rank != 5 || id == 0 {
		t.Errorf("applied insert: id %d rank %d, want a generated id and rank 5", id, rank)
	}
}
