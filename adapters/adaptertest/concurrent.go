package adaptertest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Sizes of the concurrent scenario: small enough for -race on two cores,
// large enough for Apply and user writes to interleave on the same rows.
const (
	concurrentUsers    = 2
	concurrentUserTxns = 60
	concurrentApplies  = 40
	concurrentIDs      = 12
)

// testConcurrentMerge applies merged rows while users write the same rows,
// with the suite's single-replica engine (see replica) merging both sides.
// At the end the system must hold exactly the merged state, and Apply must
// never have been captured back.
func testConcurrentMerge(e *env) {
	seed := uint64(time.Now().UnixNano())
	e.t.Logf("seed %d", seed)

	var seedOps []Op
	for id := int64(1); id <= concurrentIDs/2; id++ {
		seedOps = append(seedOps, Op{Kind: Insert, Table: TypesTable, Row: e.typesRow(id, int(id))})
	}
	seedOps = append(seedOps, Op{Kind: Insert, Table: PairsTable, Row: e.pairRow("a", 1, "seed")})
	e.exec(seedOps...)

	r := newReplica(e.tables)
	a := e.open()
	cursor := e.snapshot(a, func(b adapters.Batch) error {
		for _, c := range b.Changes {
			if err := r.snapshot(c); err != nil {
				return err
			}
		}
		return nil
	})
	s := e.capture(a, cursor)

	var lastCursor atomic.Pointer[[]byte]
	var batches, changes, applied atomic.Int64
	merge := func(b batch) {
		batches.Add(1)
		changes.Add(int64(len(b.Changes)))
		for _, c := range b.Changes {
			if err := r.local(c, b.Prev); err != nil {
				e.t.Errorf("merge captured change: %+v", err)
			}
		}
		cur := b.Cursor
		lastCursor.Store(&cur)
	}

	var wg sync.WaitGroup
	var userFailures atomic.Int64
	errs := make(chan error, concurrentUsers+1)
	for u := range concurrentUsers {
		g := &rng{s: seed + uint64(u)*1000003}
		wg.Go(func() {
			for range concurrentUserTxns {
				if err := e.sys.Exec(e.ctx, e.randomUserTxn(g)...); err != nil {
					// A user transaction may fail (a lock timeout); it then
					// wrote nothing, which is fine for the check.
					userFailures.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		g := &rng{s: seed ^ 0x5eed}
		for i := range concurrentApplies {
			for range 1 + g.intn(4) {
				table, keyRow, row := e.randomRemoteWrite(g)
				if g.intn(2) == 0 {
					// A user writes the row just before the remote write is
					// applied to it: capture usually reads the user's write
					// after Apply has overwritten it.
					if err := e.sys.Exec(e.ctx, e.randomUpdate(g, table, keyRow)); err != nil {
						userFailures.Add(1)
					}
				}
				if err := r.remote(table, e.key(table, keyRow), row); err != nil {
					errs <- err
					return
				}
			}
			writes, err := r.takePending()
			if err != nil {
				errs <- err
				return
			}
			pos, err := a.Apply(e.ctx, writes, nil)
			if err != nil {
				errs <- err
				return
			}
			r.done(writes, pos)
			applied.Add(int64(len(writes)))
			if i%8 == 0 {
				if c := lastCursor.Load(); c != nil {
					if err := a.Ack(e.ctx, *c); err != nil {
						errs <- err
						return
					}
				}
			}
		}
	})
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// Merge what capture delivers while users and Apply run.
	for running := true; running; {
		select {
		case b := <-s.batches:
			s.check(b)
			merge(b)
		case <-done:
			running = false
		case <-time.After(waitTimeout):
			e.t.Fatalf("concurrent workload did not finish within %s", waitTimeout)
		}
	}
	close(errs)
	for err := range errs {
		e.t.Fatalf("apply side: %+v", err)
	}
	if n := userFailures.Load(); n > 0 {
		e.t.Logf("%d of %d user transactions failed (and wrote nothing)", n, concurrentUsers*concurrentUserTxns)
	}

	e.t.Logf("while users wrote: %d changes captured in %d batches, %d rows applied, %d re-queued by apply position, %d deferred",
		changes.Load(), batches.Load(), applied.Load(), r.requeues(), r.deferrals())

	// Catch up, re-apply what capture moved, until nothing is pending. Each
	// round ends with a barrier, so every change before it has been merged.
	for round := 0; ; round++ {
		_, bts := s.catchUp()
		for _, bt := range bts {
			merge(bt)
		}
		n := r.pendingCount()
		if n == 0 {
			break
		}
		if round == 5 {
			e.t.Fatalf("rows still pending after %d apply rounds: is Apply captured back?", round)
		}
		writes, err := r.takePending()
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Logf("round %d: re-applying %d rows", round, len(writes))
		// As the engine does after each captured batch: what capture
		// delivered is acknowledged, so nothing is deferred now.
		if c := lastCursor.Load(); c != nil {
			if err := a.Ack(e.ctx, *c); err != nil {
				e.t.Fatal(err)
			}
		}
		pos, err := a.Apply(e.ctx, writes, nil)
		if err != nil {
			e.t.Fatalf("final apply: %+v", err)
		}
		r.done(writes, pos)
	}
	merged, err := r.state()
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkState("system vs merged state", e.systemState(), merged, emptyListIsNull)
}

// randomUserTxn returns one user transaction: an update of one column, a
// replacement (delete and insert), a delete, or several of them at once.
func (e *env) randomUserTxn(g *rng) []Op {
	var ops []Op
	for range 1 + g.intn(3) {
		table, keyRow := e.randomKey(g)
		switch g.intn(10) {
		case 0, 1:
			ops = append(ops, Op{Kind: Delete, Table: table, Row: keyRow})
		case 2, 3, 4:
			row := e.randomRow(g, table, keyRow)
			ops = append(ops, Op{Kind: Delete, Table: table, Row: keyRow}, Op{Kind: Insert, Table: table, Row: row})
		default:
			ops = append(ops, e.randomUpdate(g, table, keyRow))
		}
	}
	return ops
}

// randomUpdate sets one non-key column of a row.
func (e *env) randomUpdate(g *rng, table string, keyRow crdt.Row) Op {
	spec := e.tables[table]
	var col *ColumnSpec
	for col == nil || spec.IsKey(col.Name) {
		col = &spec.Columns[g.intn(len(spec.Columns))]
	}
	row := crdt.Row{col.Name: g.pick(col.Kind, e.f)}
	for k, v := range keyRow {
		row[k] = v
	}
	return Op{Kind: Update, Table: table, Row: row}
}

// randomRemoteWrite returns a whole row (or a delete) from another replica,
// and its key columns.
func (e *env) randomRemoteWrite(g *rng) (table string, keyRow, row crdt.Row) {
	table, keyRow = e.randomKey(g)
	if g.intn(6) == 0 {
		return table, keyRow, nil
	}
	return table, keyRow, e.full(table, e.randomRow(g, table, keyRow))
}

func (e *env) randomKey(g *rng) (string, crdt.Row) {
	if g.intn(3) == 0 {
		return PairsTable, e.pairKey([]string{"a", "b"}[g.intn(2)], int64(1+g.intn(3)))
	}
	return TypesTable, crdt.Row{"id": e.tid(int64(1 + g.intn(concurrentIDs)))}
}

func (e *env) randomRow(g *rng, table string, keyRow crdt.Row) crdt.Row {
	row := crdt.Row{}
	for _, c := range e.tables[table].Columns {
		if v, ok := keyRow[c.Name]; ok {
			row[c.Name] = v
			continue
		}
		row[c.Name] = g.pick(c.Kind, e.f)
	}
	return row
}
