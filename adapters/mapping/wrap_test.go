package mapping_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"

	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)

// wrapSQLite opens the SQLite adapter on a new database made by ddl, under
// the mapping cfg, as the sidecar does.
func wrapSQLite(t *testing.T, ddl string, cfg mapping.Config) (*mapping.Adapter, *sql.DB) {
	w, db, _ := wrapSQLiteAt(t, ddl, cfg)
	return w, db
}

// wrapSQLiteAt is wrapSQLite that also returns the database's path.
func wrapSQLiteAt(t *testing.T, ddl string, cfg mapping.Config) (*mapping.Adapter, *sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sys.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	return openWrapped(t, path, cfg), db, path
}

// openWrapped opens the SQLite adapter on the database at path under the
// mapping cfg.
func openWrapped(t *testing.T, path string, cfg mapping.Config) *mapping.Adapter {
	t.Helper()
	m, err := mapping.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	open, _ := adapters.Lookup("sqlite")
	inner, err := open(context.Background(), adapters.Options{DSN: path, Node: "n1", Keys: m.NaturalKeys(), Local: m.Local()})
	if err != nil {
		t.Fatal(err)
	}
	w := mapping.Wrap(inner, m, nil)
	t.Cleanup(func() { w.Close() })
	if _, err := w.Tables(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

// The same merged row written again and again means the system does not
// keep it (here, a trigger rewrites every row Lattice writes): after
// maxRepeats identical writes the guard refuses the record as a bad row
// marked ErrLoop, and other records still go through.
func TestGuardRefusesRepeatedIdenticalWrites(t *testing.T) {
	ctx := context.Background()
	w, db := wrapSQLite(t, `
CREATE TABLE people (id INTEGER PRIMARY KEY, Name TEXT);
CREATE TRIGGER shout AFTER UPDATE OF Name ON people WHEN NEW.Name <> upper(NEW.Name) BEGIN UPDATE people SET Name = upper(NEW.Name) WHERE id = NEW.id; END;`,
		mapping.Config{Tables: map[string]mapping.TableConfig{"people": {
			Collection: "persons",
			Columns:    map[string]mapping.ColumnConfig{"Name": {Field: "name"}},
		}}})
	write := func(id int64, name string) adapters.Write {
		return adapters.Write{Collection: "persons", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "name": crdt.String(name)}}
	}
	const maxRepeats = 8
	for i := 0; i <= maxRepeats; i++ {
		if _, err := w.Apply(ctx, []adapters.Write{write(1, "ann")}, nil); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	var got string
	if err := db.QueryRow(`SELECT Name FROM people WHERE id = 1`).Scan(&got); err != nil || got != "ANN" {
		t.Fatalf("the trigger left %q, %v", got, err)
	}
	_, err := w.Apply(ctx, []adapters.Write{write(2, "bob"), write(1, "ann")}, nil)
	re, ok := adapters.RowErrorOf(err)
	if !errors.Is(err, mapping.ErrLoop) || !errors.Is(err, adapters.ErrBadRow) || !ok || re.Collection != "persons" || re.Key != crdt.IntKey(1) {
		t.Fatalf("write %d: %v, want a bad row for persons/1 marked ErrLoop", maxRepeats+2, err)
	}
	if _, err := w.Apply(ctx, []adapters.Write{write(2, "bob")}, nil); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.Loops != 1 {
		t.Fatalf("stats = %+v, want one loop", st)
	}
	// A different row starts the count again.
	if _, err := w.Apply(ctx, []adapters.Write{write(1, "ANN")}, nil); err != nil {
		t.Fatal(err)
	}
}

// A record first captured here is known by a key minted from its local
// key; one minted elsewhere is inserted with a key the system generates,
// recorded in the ID map, and known by it from then on, across a restart
// of the wrapper (the map is read back from the system).
func TestIDMapKeys(t *testing.T) {
	ctx := context.Background()
	cfg := mapping.Config{Tables: map[string]mapping.TableConfig{"people": {
		Collection: "persons",
		Key:        mapping.KeyConfig{IDMap: "crm"},
		Columns:    map[string]mapping.ColumnConfig{"pid": {Field: "id"}, "Name": {Field: "name"}},
	}}}
	w, db, path := wrapSQLiteAt(t, `CREATE TABLE people (pid INTEGER PRIMARY KEY AUTOINCREMENT, Name TEXT)`, cfg)
	if _, err := db.Exec(`INSERT INTO people (Name) VALUES ('ann')`); err != nil {
		t.Fatal(err)
	}
	var snap []adapters.Change
	cursor, err := w.Snapshot(ctx, func(_ context.Context, b adapters.Batch) error {
		snap = append(snap, b.Changes...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ack(ctx, cursor); err != nil {
		t.Fatal(err)
	}
	if len(snap) != 1 || snap[0].Collection != "persons" || snap[0].Key != crdt.StringKey("crm:1") ||
		!crdt.Equal(snap[0].Row["id"], crdt.String("crm:1")) || !crdt.Equal(snap[0].Row["name"], crdt.String("ann")) {
		t.Fatalf("snapshot = %+v", snap)
	}
	bob := crdt.StringKey("erp:7")
	res, err := w.Apply(ctx, []adapters.Write{
		{Collection: "persons", Key: bob, Row: crdt.Row{"id": crdt.String("erp:7"), "name": crdt.String("bob")}},
		{Collection: "persons", Key: crdt.StringKey("crm:1"), Row: crdt.Row{"id": crdt.String("crm:1"), "name": crdt.String("Ann")}},
		{Collection: "persons", Key: crdt.StringKey("web:9"), Row: nil},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generated[0] != crdt.IntKey(2) || len(res.Generated) != 1 {
		t.Fatalf("generated = %v, want bob inserted as pid 2", res.Generated)
	}
	rows := func() string {
		var out string
		r, err := db.Query(`SELECT pid || '=' || Name FROM people ORDER BY pid`)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for r.Next() {
			var s string
			_ = r.Scan(&s)
			out += s + " "
		}
		return out
	}
	if got := rows(); got != "1=Ann 2=bob " {
		t.Fatalf("rows = %q", got)
	}
	// A restart reads the map back: bob is updated in place, not inserted
	// again, and a delete of him removes his row.
	w.Close()
	w = openWrapped(t, path, cfg)
	if _, err := w.Apply(ctx, []adapters.Write{{Collection: "persons", Key: bob, Row: crdt.Row{"id": crdt.String("erp:7"), "name": crdt.String("Bob")}}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows(); got != "1=Ann 2=Bob " {
		t.Fatalf("after a restart, rows = %q", got)
	}
	if _, err := w.Apply(ctx, []adapters.Write{{Collection: "persons", Key: bob}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := rows(); got != "1=Ann " {
		t.Fatalf("after bob's delete, rows = %q", got)
	}
	// Bob comes back (an update elsewhere won over the delete): he is
	// inserted afresh under a new local key.
	res, err = w.Apply(ctx, []adapters.Write{{Collection: "persons", Key: bob, Row: crdt.Row{"id": crdt.String("erp:7"), "name": crdt.String("Bob")}}}, nil)
	if err != nil || res.Generated[0] != crdt.IntKey(3) {
		t.Fatalf("bob's return: %v, generated %v", err, res.Generated)
	}
	if got := rows(); got != "1=Ann 3=Bob " {
		t.Fatalf("after bob's return, rows = %q", got)
	}
}
