package engine

import (
	"sync/atomic"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Engine holds the state of the boundary between one system and its
// replica: the catalog mapping and the apply positions. Its steps (Capture,
// Local) return a Ready for the driver to carry out, in order; Advance
// tells it a Ready was.
//
// An Engine is not safe for concurrent use, except Catalog and SetCatalog:
// the driver serialises the other calls.
type Engine struct {
	p   Params
	cat atomic.Pointer[Catalog]
	pos Positions
}

// New returns an engine that stamps changes with p and maps the system's
// catalog with cat.
func New(p Params, cat *Catalog) *Engine {
	e := &Engine{p: p}
	e.cat.Store(cat)
	return e
}

// Catalog returns the current catalog mapping. It is safe for concurrent
// use.
func (e *Engine) Catalog() *Catalog { return e.cat.Load() }

// SetCatalog swaps in a new catalog mapping (after the adapter reported a
// change) and returns what it gains over the old one (Gains). It is safe
// for concurrent use.
func (e *Engine) SetCatalog(cat *Catalog) (newTables, newColumns []string) {
	return Gains(e.cat.Swap(cat), cat)
}

// Positions returns the apply positions, for the driver to record applies
// in (Positions.Applying before an apply, Positions.AppliedAt after it) and
// to set the barrier of a resumed capture.
func (e *Engine) Positions() *Positions { return &e.pos }

// Skipped is a captured change that the catalog cannot map.
type Skipped struct {
	Collection string
	Err        error
}

// Capture steps a batch of captured changes. Each change is mapped through
// the catalog (key columns stripped, JSON arrays of OR-set fields made sets)
// and, when the batch has a cursor, marked Stale when an apply may have
// overwritten it before capture saw it: the batch starts at prev, before
// the apply's position (Positions.Stale). Snapshot batches (no cursor) are
// never stale. A change the catalog cannot map is listed in Ready.Skipped.
//
// r must be the Reader of a store.Commit: the staleness decision and the
// write happen under one writer lock, so that no apply acknowledgement
// lands between them.
func (e *Engine) Capture(r Reader, b adapters.Batch, prev []byte, cursor *Cursor) (*Ready, error) {
	return e.capture(r, e.Catalog(), b, prev, cursor)
}

// CaptureTables steps rows read from tables that join the catalog while
// running (adapters.TableReader), mapped with cat, the catalog about to be
// set (SetCatalog): a system whose capture of a table starts only then
// (PostgreSQL's publication) never streams the rows written before. They
// are snapshot rows: no cursor, never stale. Rows capture did report diff
// to nothing.
func (e *Engine) CaptureTables(r Reader, cat *Catalog, b adapters.Batch) (*Ready, error) {
	return e.capture(r, cat, b, nil, nil)
}

func (e *Engine) capture(r Reader, cat *Catalog, b adapters.Batch, prev []byte, cursor *Cursor) (*Ready, error) {
	changes := make([]Change, 0, len(b.Changes))
	var skipped []Skipped
	for _, c := range b.Changes {
		ci, err := cat.Lookup(c.Collection)
		if err != nil {
			skipped = append(skipped, Skipped{Collection: c.Collection, Err: err})
			continue
		}
		ch := Change{
			Collection: c.Collection,
			Key:        c.Key,
			// Partial: a column a capture leaves out is unchanged (adapters
			// send nulls explicitly).
			Row:      ci.FromSystem(ci.StripKey(c.Row)),
			Base:     ci.FromSystem(ci.StripKey(c.Old)),
			Delete:   c.Row == nil,
			Insert:   c.Insert,
			Captured: true,
		}
		if !c.Committed.IsZero() {
			ch.Committed = c.Committed.UnixNano()
		}
		if cursor != nil {
			ch.Stale = e.pos.Stale(crdt.MakeID(c.Collection, c.Key), prev)
		} else {
			ch.Snapshot = true
		}
		changes = append(changes, ch)
	}
	rd, err := Local(r, e.p, changes, cursor)
	if err != nil {
		return nil, err
	}
	rd.Skipped = skipped
	return rd, nil
}

// Local steps local changes that did not come from capture (API writes), or
// only a cursor. See the package function Local.
func (e *Engine) Local(r Reader, changes []Change, cursor *Cursor) (*Ready, error) {
	return Local(r, e.p, changes, cursor)
}

// Advance tells the engine that rd was carried out: its Writes are durable
// and its Ack was handed to the adapter. Capture has then passed the apply
// positions at or before the Ack.
func (e *Engine) Advance(rd *Ready) {
	if rd.Ack != nil {
		e.pos.Passed(rd.Ack)
	}
}
