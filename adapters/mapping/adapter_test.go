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
)

// notesSystem is a SQLite database with the table sys(c_id, c_note) and the
// given rows, and the SQLite adapter over it, mapped to the collection
// notes(id, note) with a value map on note; Tables is not called.
func notesSystem(t *testing.T, rows ...string) (adapters.Adapter, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sys.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE sys (c_id INTEGER PRIMARY KEY, c_note TEXT)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range rows {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	m, err := mapping.Compile(mapping.Config{Tables: map[string]mapping.TableConfig{
		"sys": {Collection: "notes", Columns: map[string]mapping.ColumnConfig{
			"c_id":   {Field: "id"},
			"c_note": {Field: "note", Values: map[string]string{"N:one": "one"}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	open, _ := adapters.Lookup("sqlite")
	inner, err := open(context.Background(), adapters.Options{DSN: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	a := mapping.New(inner, m, nil)
	t.Cleanup(func() { a.Close() })
	return a, db
}

// sysRows reads the system's table with SQL.
func sysRows(t *testing.T, db *sql.DB) string {
	t.Helper()
	r, err := db.Query(`SELECT c_id || '=' || COALESCE(c_note, '') FROM sys ORDER BY c_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out string
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out += s + " "
	}
	return out
}

// TestWrapWithoutTables checks that the adapter maps its tables also when
// the engine snapshots or applies before it calls Tables (nothing in the
// adapter contract makes Tables come first).
func TestWrapWithoutTables(t *testing.T) {
	ctx := t.Context()
	t.Run("snapshot", func(t *testing.T) {
		a, _ := notesSystem(t, `INSERT INTO sys VALUES (1, 'N:one')`)
		var got []adapters.Change
		if _, err := a.Snapshot(ctx, func(_ context.Context, b adapters.Batch) error {
			got = append(got, b.Changes...)
			return nil
		}); err != nil {
			t.Fatalf("snapshot: %+v", err)
		}
		want := crdt.Row{"id": crdt.Int(1), "note": crdt.String("one")}
		if len(got) != 1 || got[0].Collection != "notes" || !rowEqual(got[0].Row, want) {
			t.Fatalf("snapshot %+v, want collection notes row %v", got, want)
		}
	})
	t.Run("apply", func(t *testing.T) {
		a, db := notesSystem(t)
		w := adapters.Write{Collection: "notes", Key: crdt.IntKey(2), Row: crdt.Row{"id": crdt.Int(2), "note": crdt.String("one")}}
		if _, err := a.Apply(ctx, []adapters.Write{w}, nil); err != nil {
			t.Fatalf("apply: %+v", err)
		}
		if got := sysRows(t, db); got != "2=N:one " {
			t.Fatalf("the system holds %q, want 2=N:one", got)
		}
	})
}

// TestWrapBadRowSameKey checks that a bad row is named in collection space
// when another write of the batch has the same key: both name the same
// record, so the error is not ambiguous.
func TestWrapBadRowSameKey(t *testing.T) {
	a, _ := notesSystem(t)
	bad := adapters.Write{Collection: "notes", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Null(), "note": crdt.String("x")}}
	good := adapters.Write{Collection: "notes", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "note": crdt.String("y")}}
	_, err := a.Apply(t.Context(), []adapters.Write{bad, good}, nil)
	re, ok := adapters.RowErrorOf(err)
	if !ok || re.Collection != "notes" || re.Key != bad.Key || !errors.Is(err, adapters.ErrBadRow) {
		t.Fatalf("apply: %v, want a bad row naming notes/%s", err, bad.Key)
	}
}

// TestWrapSystemNameIsNoCollection checks that a write to the name of a
// table the mapping maps to another collection is a bad row, as for any
// collection the adapter does not report, and does not reach the table
// unmapped; reads by that name read nothing.
func TestWrapSystemNameIsNoCollection(t *testing.T) {
	a, db := notesSystem(t)
	raw := adapters.Write{Collection: "sys", Key: crdt.IntKey(3), Row: crdt.Row{"c_id": crdt.Int(3), "c_note": crdt.String("one")}}
	_, err := a.Apply(t.Context(), []adapters.Write{raw}, nil)
	re, ok := adapters.RowErrorOf(err)
	if !ok || re.Collection != "sys" || re.Key != raw.Key || !errors.Is(err, adapters.ErrBadRow) {
		t.Errorf("apply: %v, want a bad row naming sys/%s", err, raw.Key)
	}
	if got := sysRows(t, db); got != "" {
		t.Errorf("the system's table got %q unmapped", got)
	}
	a, _ = notesSystem(t, `INSERT INTO sys VALUES (1, 'N:one')`)
	rr := a.(adapters.RangeReader)
	if rows, err := rr.ReadRange(t.Context(), "sys", "", 10); err == nil {
		t.Errorf("ReadRange of sys read %+v unmapped", rows)
	}
	if rows, err := rr.ReadKeys(t.Context(), "sys", []crdt.Key{crdt.IntKey(1)}); err == nil {
		t.Errorf("ReadKeys of sys read %+v unmapped", rows)
	}
	var read []adapters.Change
	if err := rr.(adapters.TableReader).ReadTables(t.Context(), []string{"sys"}, func(_ context.Context, b adapters.Batch) error {
		read = append(read, b.Changes...)
		return nil
	}); err != nil || len(read) != 0 {
		t.Errorf("ReadTables of sys: %+v, %v; want nothing (not a collection)", read, err)
	}
	rows, err := rr.ReadRange(t.Context(), "notes", "", 10)
	if err != nil || len(rows) != 1 || !rowEqual(rows[0].Row, crdt.Row{"id": crdt.Int(1), "note": crdt.String("one")}) {
		t.Errorf("ReadRange of notes: %+v, %v", rows, err)
	}
}

func rowEqual(a, b crdt.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for f, v := range a {
		if w, ok := b[f]; !ok || !crdt.Equal(v, w) {
			return false
		}
	}
	return true
}
