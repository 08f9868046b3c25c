package postgres

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestStreamOldRows feeds a stream pgoutput messages as the server sends
// them for each replica identity, and checks the old rows of the captured
// changes: the whole old row with replica identity full ('O'), none with a
// key-only old tuple ('K') or none at all; an unchanged out-of-line value in
// the row and the old row when the old tuple has it, left out of both when
// not; a moved key split into a delete with the old row and an insert
// without one. Every change carries its transaction's commit time.
func TestStreamOldRows(t *testing.T) {
	const relID = 16385
	int4, text := typeOf(t, "integer"), typeOf(t, "text")
	tbl := &table{Schema: "public", Name: "docs", Collection: "docs", Key: []string{"id"},
		Columns: []column{{Name: "id", Type: int4}, {Name: "body", Type: text}, {Name: "n", Type: int4}}}
	cfg := DefaultConfig()
	cfg.Origin = "lattice_test"
	cfg.BatchSize = 1 // deliver at each commit
	a := &Adapter{cfg: cfg, log: slog.New(slog.DiscardHandler), types: newTypeCache()}

	v := func(s string) tupleColumn { return tupleColumn{Kind: 't', Data: []byte(s)} }
	null := tupleColumn{Kind: 'n'}
	unchanged := tupleColumn{Kind: 'u'}
	row := func(id int64, body string, n int64) crdt.Row {
		return crdt.Row{"id": crdt.Int(id), "body": crdt.String(body), "n": crdt.Int(n)}
	}
	tests := []struct {
		name string
		msg  any
		want []adapters.Change
	}{
		{"insert", &msgInsert{RelID: relID, New: tuple{v("1"), v("a"), v("1")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: row(1, "a", 1)}}},
		{"update, identity full", &msgUpdate{RelID: relID, OldKind: 'O', Old: tuple{v("1"), v("a"), v("1")}, New: tuple{v("1"), v("b"), v("1")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: row(1, "b", 1), Old: row(1, "a", 1)}}},
		{"update to null, identity full", &msgUpdate{RelID: relID, OldKind: 'O', Old: tuple{v("1"), v("b"), v("1")}, New: tuple{v("1"), null, v("1")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "body": crdt.Null(), "n": crdt.Int(1)},
				Old: row(1, "b", 1)}}},
		{"unchanged out-of-line value, identity full", &msgUpdate{RelID: relID, OldKind: 'O', Old: tuple{v("1"), v("big"), v("1")}, New: tuple{v("1"), unchanged, v("2")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: row(1, "big", 2), Old: row(1, "big", 1)}}},
		{"unchanged out-of-line value not in the old tuple", &msgUpdate{RelID: relID, OldKind: 'O', Old: tuple{v("1"), unchanged, v("2")}, New: tuple{v("1"), unchanged, v("3")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "n": crdt.Int(3)}, Old: crdt.Row{"id": crdt.Int(1), "n": crdt.Int(2)}}}},
		{"update, no old tuple", &msgUpdate{RelID: relID, New: tuple{v("1"), unchanged, v("4")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "n": crdt.Int(4)}}}},
		{"key moved, identity full", &msgUpdate{RelID: relID, OldKind: 'O', Old: tuple{v("1"), v("c"), v("4")}, New: tuple{v("2"), unchanged, v("4")}},
			[]adapters.Change{{Key: crdt.IntKey(1), Old: row(1, "c", 4)}, {Key: crdt.IntKey(2), Row: row(2, "c", 4)}}},
		{"key moved, key only", &msgUpdate{RelID: relID, OldKind: 'K', Old: tuple{v("2"), null, null}, New: tuple{v("3"), v("c"), v("4")}},
			[]adapters.Change{{Key: crdt.IntKey(2)}, {Key: crdt.IntKey(3), Row: row(3, "c", 4)}}},
		{"delete, identity full", &msgDelete{RelID: relID, OldKind: 'O', Old: tuple{v("3"), v("c"), v("4")}},
			[]adapters.Change{{Key: crdt.IntKey(3), Old: row(3, "c", 4)}}},
		{"delete, key only", &msgDelete{RelID: relID, OldKind: 'K', Old: tuple{v("4"), null, null}},
			[]adapters.Change{{Key: crdt.IntKey(4)}}},
	}
	var got []adapters.Batch
	s := &stream{a: a, cat: newCatalog([]*table{tbl}), rels: map[uint32]*relation{},
		sink: func(_ context.Context, b adapters.Batch) error { got = append(got, b); return nil }}
	ctx := t.Context()
	feed := func(m any) {
		t.Helper()
		if err := s.handleWAL(ctx, encodeMessage(m)); err != nil {
			t.Fatalf("%T: %+v", m, err)
		}
	}
	feed(&msgRelation{RelID: relID, Namespace: "public", Name: "docs", ReplicaIdentity: 'f', Columns: []relColumn{
		{Flags: 1, Name: "id", TypeOID: int4.OID, TypMod: -1}, {Name: "body", TypeOID: text.OID, TypMod: -1}, {Name: "n", TypeOID: int4.OID, TypMod: -1}}})
	at := lsn(0x1000)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			feed(&msgBegin{FinalLSN: at, Xid: uint32(at)})
			feed(tt.msg)
			// 2026-12-02 14:00:00 UTC, in microseconds since 2000-01-01.
			committed := time.Date(2026, 12, 2, 14, 0, 0, int(at), time.UTC).Truncate(time.Microsecond)
			feed(&msgCommit{CommitLSN: at, EndLSN: at + 8, CommitTime: committed.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds()})
			at += 0x100
			if len(got) != 1 || len(got[0].Changes) != len(tt.want) {
				t.Fatalf("captured %v, want one batch of %d changes", got, len(tt.want))
			}
			for i, w := range tt.want {
				g := got[0].Changes[i]
				if g.Collection != "docs" || g.Key != w.Key || !sameRow(g.Row, w.Row) || !sameRow(g.Old, w.Old) {
					t.Errorf("change %d: key %s row %v old %v\n             want key %s row %v old %v", i, g.Key, g.Row, g.Old, w.Key, w.Row, w.Old)
				}
				if !g.Committed.Equal(committed) {
					t.Errorf("change %d: committed %v, want the commit message's %v", i, g.Committed, committed)
				}
			}
		})
	}
}

// sameRow compares rows exactly: the same columns, equal values, nil only
// with nil.
func sameRow(a, b crdt.Row) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !crdt.Equal(v, w) {
			return false
		}
	}
	return true
}
