package mapping_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
)

// memAdapter is a system adapter over one table in memory: "sys" keyed by
// the int column c_id, with the text column c_note.
type memAdapter struct {
	rows   map[crdt.Key]crdt.Row
	writes []adapters.Write
}

func newMemAdapter(rows ...crdt.Row) *memAdapter {
	a := &memAdapter{rows: map[crdt.Key]crdt.Row{}}
	for _, r := range rows {
		a.rows[crdt.IntKey(r["c_id"].AsInt())] = r
	}
	return a
}

func (a *memAdapter) Tables(context.Context) ([]adapters.Table, error) {
	return []adapters.Table{{Name: "sys", Key: []string{"c_id"}, Columns: []adapters.Column{
		{Name: "c_id", Kind: crdt.KindInt, Type: "integer"},
		{Name: "c_note", Kind: crdt.KindString, Type: "text", Nullable: true},
	}}}, nil
}

func (a *memAdapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	var b adapters.Batch
	for _, k := range slices.Sorted(maps.Keys(a.rows)) {
		b.Changes = append(b.Changes, adapters.Change{Collection: "sys", Key: k, Row: a.rows[k]})
	}
	return []byte{1}, sink(ctx, b)
}

func (a *memAdapter) Capture(context.Context, []byte, adapters.Sink) error { return nil }
func (a *memAdapter) Ack(context.Context, []byte) error                    { return nil }
func (a *memAdapter) Head(context.Context) ([]byte, error)                 { return []byte{1}, nil }
func (a *memAdapter) Close() error                                         { return nil }

func (a *memAdapter) Apply(_ context.Context, writes []adapters.Write, _ []byte) (adapters.Applied, error) {
	for _, w := range writes {
		if w.Collection != "sys" {
			return adapters.Applied{}, adapters.BadRow(w.Collection, w.Key, errors.Newf("no table %s", w.Collection))
		}
		if w.Row != nil && w.Row["c_id"].IsNull() {
			return adapters.Applied{}, adapters.BadRow(w.Collection, w.Key, errors.New("key column c_id is missing or null"))
		}
		a.writes = append(a.writes, w)
	}
	return adapters.Applied{Position: []byte{1}}, nil
}

// ReadRange returns every row after after, by key; the table is small.
func (a *memAdapter) ReadRange(_ context.Context, table string, after crdt.Key, limit int) ([]adapters.Change, error) {
	if table != "sys" {
		return nil, errors.Newf("table %s is not synced", table)
	}
	var out []adapters.Change
	for _, k := range slices.Sorted(maps.Keys(a.rows)) {
		if k > after && len(out) < limit {
			out = append(out, adapters.Change{Collection: table, Key: k, Row: a.rows[k]})
		}
	}
	return out, nil
}

func (a *memAdapter) ReadKeys(_ context.Context, table string, keys []crdt.Key) ([]adapters.Change, error) {
	if table != "sys" {
		return nil, errors.Newf("table %s is not synced", table)
	}
	var out []adapters.Change
	for _, k := range keys {
		if r, ok := a.rows[k]; ok {
			out = append(out, adapters.Change{Collection: table, Key: k, Row: r})
		}
	}
	return out, nil
}

// ReadTables sends every row of the named tables it has.
func (a *memAdapter) ReadTables(ctx context.Context, names []string, sink adapters.Sink) error {
	if !slices.Contains(names, "sys") {
		return nil
	}
	_, err := a.Snapshot(ctx, sink)
	return err
}

func memMap(t *testing.T) *mapping.Map {
	t.Helper()
	m, err := mapping.Compile(mapping.Config{Tables: map[string]mapping.TableConfig{
		"sys": {Collection: "notes", Columns: map[string]mapping.ColumnConfig{
			"c_id":   {Field: "id"},
			"c_note": {Field: "note", Values: map[string]string{"N:one": "one"}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWrapWithoutTables checks that the adapter maps its tables also when
// the engine snapshots or applies before it calls Tables (nothing in the
// adapter contract makes Tables come first).
func TestWrapWithoutTables(t *testing.T) {
	ctx := t.Context()
	t.Run("snapshot", func(t *testing.T) {
		inner := newMemAdapter(crdt.Row{"c_id": crdt.Int(1), "c_note": crdt.String("N:one")})
		a := mapping.New(inner, memMap(t), nil)
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
		inner := newMemAdapter()
		a := mapping.New(inner, memMap(t), nil)
		w := adapters.Write{Collection: "notes", Key: crdt.IntKey(2), Row: crdt.Row{"id": crdt.Int(2), "note": crdt.String("one")}}
		if _, err := a.Apply(ctx, []adapters.Write{w}, nil); err != nil {
			t.Fatalf("apply: %+v", err)
		}
		want := crdt.Row{"c_id": crdt.Int(2), "c_note": crdt.String("N:one")}
		if len(inner.writes) != 1 || inner.writes[0].Collection != "sys" || !rowEqual(inner.writes[0].Row, want) {
			t.Fatalf("system got %+v, want table sys row %v", inner.writes, want)
		}
	})
}

// TestWrapBadRowSameKey checks that a bad row is named in collection space
// when another write of the batch has the same key: both name the same
// record, so the error is not ambiguous.
func TestWrapBadRowSameKey(t *testing.T) {
	a := mapping.New(newMemAdapter(), memMap(t), nil)
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
// unmapped.
func TestWrapSystemNameIsNoCollection(t *testing.T) {
	inner := newMemAdapter()
	a := mapping.New(inner, memMap(t), nil)
	raw := adapters.Write{Collection: "sys", Key: crdt.IntKey(3), Row: crdt.Row{"c_id": crdt.Int(3), "c_note": crdt.String("one")}}
	_, err := a.Apply(t.Context(), []adapters.Write{raw}, nil)
	re, ok := adapters.RowErrorOf(err)
	if !ok || re.Collection != "sys" || re.Key != raw.Key || !errors.Is(err, adapters.ErrBadRow) {
		t.Errorf("apply: %v, want a bad row naming sys/%s", err, raw.Key)
	}
	if len(inner.writes) != 0 {
		t.Errorf("the system's table got %+v unmapped", inner.writes)
	}
	inner = newMemAdapter(crdt.Row{"c_id": crdt.Int(1), "c_note": crdt.String("N:one")})
	rr := mapping.New(inner, memMap(t), nil).(adapters.RangeReader)
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
