package adaptertest

import (
	"bytes"
	"context"
	"maps"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// testOldRows checks the row before each change (Change.Old): nil for an
// insert; for an update or a delete the whole row as the system held it,
// including what Apply wrote into it; chained through several updates of one
// row in one transaction; split between the delete of the old key and the
// insert of the new one when an update moves a row.
func testOldRows(e *env) {
	if !e.f.OldRows {
		e.t.Log("the system does not report old rows: only the ones reported are checked")
	}
	a := e.open()
	s := e.capture(a, e.snapshot(a, nil))

	r1 := e.typesRow(1, 1)
	e.exec(Op{Kind: Insert, Table: TypesTable, Row: r1})
	want := []adapters.Change{e.change(TypesTable, r1)}

	r1b := maps.Clone(r1)
	r1b["s_text"] = crdt.String("one column")
	e.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(1), "s_text": r1b["s_text"]}})
	want = append(want, e.update(TypesTable, r1, r1b))

	// Two updates of the row and one of another in one transaction: each
	// old row is the row just before its statement.
	r1c := maps.Clone(r1b)
	r1c["n_int"] = crdt.Null()
	r1d := maps.Clone(r1c)
	r1d["n_int"] = crdt.Int(7)
	p1 := e.pairRow("acme", 1, "first")
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: p1})
	want = append(want, e.change(PairsTable, p1))
	e.exec(
		Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(1), "n_int": crdt.Null()}},
		Op{Kind: Update, Table: PairsTable, Row: e.pairRow("acme", 1, "second")},
		Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(1), "n_int": crdt.Int(7)}},
	)
	want = append(want,
		e.update(TypesTable, r1b, r1c),
		e.update(PairsTable, p1, e.pairRow("acme", 1, "second")),
		e.update(TypesTable, r1c, r1d),
	)

	// A merged row applied, then a user's change to one column of it: the
	// old row is what Apply wrote, so that the engine sees that only that
	// column changed.
	applied := e.typesRow(1, 4)
	s.apply(a, []adapters.Write{{Collection: TypesTable, Key: e.tkey(1), Row: applied}})
	r1e := maps.Clone(applied)
	r1e["b_bool"] = crdt.Bool(true)
	e.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(1), "b_bool": crdt.Bool(true)}})
	want = append(want, e.update(TypesTable, applied, r1e))

	// A row moved to a new key: the old key's record is deleted with the
	// row it had, the new key's record inserted. A record's ID never
	// changes (Features.RecordIDs).
	if !e.f.RecordIDs {
		e.exec(Op{Kind: Update, Table: PairsTable, Row: e.pairKey("acme", 1), NewKey: crdt.Row{"n": crdt.Int(2)}})
		want = append(want,
			e.deletion(PairsTable, e.pairRow("acme", 1, "second")),
			e.change(PairsTable, e.pairRow("acme", 2, "second")),
		)
	}

	// A delete, and a re-insert of the same key, which starts afresh.
	e.exec(Op{Kind: Delete, Table: TypesTable, Row: e.idRow(1)})
	want = append(want, e.deletion(TypesTable, r1e))
	r1f := crdt.Row{"id": e.tid(1), "s_text": crdt.String("again")}
	e.exec(Op{Kind: Insert, Table: TypesTable, Row: r1f})
	want = append(want, e.change(TypesTable, r1f))

	got, _ := s.sync()
	e.checkChanges(got, want)
}

// testApplyPosition checks the position Apply returns: every change
// committed before the Apply is at or before it, a change committed before
// the Apply and captured after it comes in a batch that starts before it, and
// a change committed after the Apply ends after it.
func testApplyPosition(e *env) {
	e.exec(
		Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(1, 1)},
		Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(2, 2)},
		Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(3, 3)},
	)
	a := e.open()
	cursor := e.snapshot(a, nil)
	c0 := e.head(a)
	if bytes.Compare(c0, cursor) < 0 {
		e.t.Errorf("head %x is before the snapshot's cursor %x", c0, cursor)
	}
	s := e.capture(a, c0)
	set := func(id int64, text string) adapters.Change {
		e.exec(Op{Kind: Update, Table: TypesTable, Row: crdt.Row{"id": e.tid(id), "s_text": crdt.String(text)}})
		row := e.typesRow(id, int(id))
		row["s_text"] = crdt.String(text)
		return e.change(TypesTable, row)
	}
	apply := func(text string) []byte {
		e.t.Helper()
		row := e.typesRow(2, 2)
		row["s_text"] = crdt.String(text)
		pos, err := a.Apply(e.ctx, []adapters.Write{{Collection: TypesTable, Key: e.tkey(2), Row: row}}, nil)
		if err != nil {
			e.t.Fatalf("apply: %+v", err)
		}
		if len(pos.Deferred) > 0 {
			e.t.Fatalf("apply deferred a write of a record without uncaptured changes")
		}
		if len(pos.Position) == 0 {
			e.t.Fatalf("apply returned an empty position")
		}
		return pos.Position
	}

	// U1 committed and captured before the Apply.
	u1 := set(1, "u1")
	b1 := last(s.until(u1))
	p1 := apply("applied 1")
	if bytes.Compare(b1.Cursor, p1) > 0 {
		e.t.Errorf("a change committed before an apply has the position %x, after the apply's %x", b1.Cursor, p1)
	}
	// U2 committed after the Apply returned.
	u2 := set(1, "u2")
	if b2 := last(s.until(u2)); bytes.Compare(b2.Cursor, p1) <= 0 {
		e.t.Errorf("a change committed after an apply ends at %x, not after the apply's position %x", b2.Cursor, p1)
	}

	// U3 committed just before an Apply, likely captured after it; U4
	// committed after it.
	u3 := set(3, "u3")
	p2 := apply("applied 2")
	if bytes.Compare(p2, p1) <= 0 {
		e.t.Errorf("apply position %x is not after the previous one %x, with changes committed between them", p2, p1)
	}
	u4 := set(1, "u4")
	var b3, b4 *batch
	for _, b := range s.until(u4) {
		for _, c := range b.Changes {
			switch {
			case c.Key == u3.Key && e.same(c.Row, u3.Row):
				b3 = &b
			case c.Key == u4.Key && e.same(c.Row, u4.Row):
				b4 = &b
			}
		}
	}
	if b3 == nil || b4 == nil {
		e.t.Fatalf("changes committed around the second apply not captured")
	}
	if bytes.Compare(b3.Prev, p2) >= 0 {
		e.t.Errorf("a change committed before an apply came in a batch that starts at %x, not before the apply's position %x: "+
			"the engine would not know the apply may have overwritten it", b3.Prev, p2)
	}
	if bytes.Compare(b4.Cursor, p2) <= 0 {
		e.t.Errorf("a change committed after an apply ends at %x, not after the apply's position %x", b4.Cursor, p2)
	}
	// The applied writes were not captured.
	got, _ := s.sync()
	for _, c := range got {
		e.t.Errorf("apply was captured: %s", describe(c))
	}
}

// testHead checks that Head is at or after the cursor of every change
// committed before it, and before every change committed after it.
func testHead(e *env) {
	a := e.open()
	cursor := e.snapshot(a, nil)
	h0 := e.head(a)
	if bytes.Compare(h0, cursor) < 0 {
		e.t.Errorf("head %x is before the snapshot's cursor %x", h0, cursor)
	}
	s := e.capture(a, cursor)
	e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("head", 1, "one")})
	e.exec(Op{Kind: Update, Table: PairsTable, Row: e.pairRow("head", 1, "two")})
	h := e.head(a)
	if bytes.Compare(h, h0) < 0 {
		e.t.Errorf("head went back from %x to %x", h0, h)
	}
	after := 0
	for _, b := range s.until(e.change(PairsTable, e.pairRow("head", 1, "two"))) {
		if bytes.Compare(b.Cursor, h) <= 0 {
			continue
		}
		// Where capture polls, a change's cursor is that of the poll that
		// read it: a change committed before head comes in a batch after
		// it when capture lags, but in the first such batch.
		if after++; !e.f.Polling || after > 1 {
			e.t.Errorf("a batch committed before head ends at %x, after head %x", b.Cursor, h)
		}
	}
	e.exec(Op{Kind: Delete, Table: PairsTable, Row: e.pairRow("head", 1, "")})
	b := last(s.until(e.deletion(PairsTable, e.pairRow("head", 1, "two"))))
	if bytes.Compare(b.Cursor, h) <= 0 {
		e.t.Errorf("a change committed after head ends at %x, not after head %x", b.Cursor, h)
	}
	if h2 := e.head(a); bytes.Compare(h2, b.Cursor) < 0 {
		e.t.Errorf("head %x is before the cursor %x of a change committed before it", h2, b.Cursor)
	}
}

// testCursors checks that Capture refuses, with an error marked
// adapters.ErrCursor, the cursors it cannot continue from: a malformed one,
// one of another system (where the harness says so) and one from before an
// acknowledged cursor (where the harness says the adapter discards).
func testCursors(e *env) {
	a := e.open()
	cursor := e.snapshot(a, nil)
	e.captureFails(a, []byte{0xff, 1, 2}, "a malformed cursor")

	if e.f.RejectsDiscardedCursor {
		s := e.capture(a, cursor)
		e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("cursor", 1, "one")})
		first := last(s.until(e.change(PairsTable, e.pairRow("cursor", 1, "one"))))
		e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("cursor", 2, "two")})
		acked := last(s.until(e.change(PairsTable, e.pairRow("cursor", 2, "two"))))
		if err := a.Ack(e.ctx, acked.Cursor); err != nil {
			e.t.Fatalf("ack: %+v", err)
		}
		s.stop()
		e.captureFails(a, cursor, "the snapshot's cursor, before the acknowledged one")
		e.captureFails(a, first.Cursor, "a batch's cursor, before the acknowledged one")
		// The acknowledged cursor itself still works.
		s2 := e.capture(a, acked.Cursor)
		e.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("cursor", 3, "three")})
		got, _ := s2.sync()
		e.checkChanges(got, []adapters.Change{e.change(PairsTable, e.pairRow("cursor", 3, "three"))})
		s2.stop()
	}

	if e.f.RejectsForeignCursor {
		oe := *e
		oe.sys = e.h.NewSystem(e.t, Tables(e.f))
		oa := oe.open()
		oe.snapshot(oa, nil)
		oe.exec(Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("other", 1, "other system")})
		e.captureFails(a, oe.head(oa), "another system's cursor")
	}
}

// errAccepted is what captureFails' sink returns: Capture delivered a batch
// from a cursor it should have refused.
var errAccepted = errors.New("capture accepted the cursor and delivered a batch")

// captureFails runs Capture from cursor and checks that it fails with an
// error marked adapters.ErrCursor. A barrier write makes an adapter that
// wrongly accepts the cursor deliver at once rather than wait.
func (e *env) captureFails(a adapters.Adapter, cursor []byte, what string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- a.Capture(ctx, cursor, func(context.Context, adapters.Batch) error { return errAccepted })
	}()
	e.barrier()
	err := <-done
	switch {
	case errors.Is(err, adapters.ErrCursor):
		e.t.Logf("capture from %s: %v", what, err)
	case errors.Is(err, errAccepted):
		e.t.Errorf("capture from %s (%x) was accepted, want an error marked adapters.ErrCursor", what, cursor)
	default:
		e.t.Errorf("capture from %s (%x): %+v, want an error marked adapters.ErrCursor", what, cursor, err)
	}
}

func last(bs []batch) batch { return bs[len(bs)-1] }
