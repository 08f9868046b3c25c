package mapping

import (
	"cmp"
	"context"
	"crypto/sha256"
	"log/slog"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// The optional capabilities of the system's adapter, in collection space.
// Wrap returns an adapter that implements adapters.RangeReader and
// adapters.RangeHasher exactly when the system's adapter does, so that the
// engine's type assertions still tell what the system can do.
//
// A table keyed by the ID map is ordered by its collection keys, which are
// not the order of its local keys: its range reads read the whole table
// through the system's adapter and its hashes are computed here from the
// translated rows. Verification of such tables costs a read of the table
// per range; docs/mapping.md says so.

// rangeAdapter is an Adapter over a system that reads by key range.
type rangeAdapter struct {
	*Adapter
	rr adapters.RangeReader
}

// hashAdapter is an Adapter over a system that also hashes key ranges.
type hashAdapter struct {
	*rangeAdapter
	rh adapters.RangeHasher
}

// New wraps a on m and returns the adapter the engine uses: Wrap(a, m,
// log).Capable().
func New(a adapters.Adapter, m *Map, log *slog.Logger) adapters.Adapter {
	return Wrap(a, m, log).Capable()
}

// Capable returns w with the range capabilities of the system's adapter:
// the adapter the engine uses.
func (w *Adapter) Capable() adapters.Adapter {
	rr, ok := w.inner.(adapters.RangeReader)
	if !ok {
		return w
	}
	ra := &rangeAdapter{Adapter: w, rr: rr}
	if rh, ok := w.inner.(adapters.RangeHasher); ok {
		return &hashAdapter{rangeAdapter: ra, rh: rh}
	}
	return ra
}

// translate maps rows read from the system to collection space.
func (w *Adapter) translate(rows []adapters.Change) ([]adapters.Change, error) {
	out := make([]adapters.Change, 0, len(rows))
	for _, c := range rows {
		mc, err := w.fromSystem(c)
		if err != nil {
			return nil, err
		}
		out = append(out, mc)
	}
	return out, nil
}

// ReadRange reads a key range of a collection.
func (r *rangeAdapter) ReadRange(ctx context.Context, coll string, after crdt.Key, limit int) ([]adapters.Change, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	if err := r.hidden(coll); err != nil {
		return nil, err
	}
	st := r.collState(coll)
	if st == nil {
		return r.rr.ReadRange(ctx, coll, after, limit)
	}
	if st.ids != nil {
		all, err := r.readAll(ctx, st)
		if err != nil {
			return nil, err
		}
		return window(all, after, "", limit), nil
	}
	rows, err := r.rr.ReadRange(ctx, st.system.Name, after, limit)
	if err != nil {
		return nil, err
	}
	return r.translate(rows)
}

// readAll reads every row of a table keyed by the ID map, in collection
// key order.
func (r *rangeAdapter) readAll(ctx context.Context, st *tableState) ([]adapters.Change, error) {
	const page = 1000
	var all []adapters.Change
	var after crdt.Key
	for {
		rows, err := r.rr.ReadRange(ctx, st.system.Name, after, page)
		if err != nil {
			return nil, err
		}
		if len(rows) > 0 {
			after = rows[len(rows)-1].Key
		}
		tr, err := r.translate(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, tr...)
		if len(rows) < page {
			break
		}
	}
	slices.SortFunc(all, func(a, b adapters.Change) int { return cmp.Compare(a.Key, b.Key) })
	return all, nil
}

// window returns up to limit rows (sorted by key) after the key after and
// at or before through ("" sets no bound).
func window(rows []adapters.Change, after, through crdt.Key, limit int) []adapters.Change {
	// The first row past after ("" is before every key).
	i, _ := slices.BinarySearchFunc(rows, after, func(c adapters.Change, k crdt.Key) int {
		if c.Key <= k {
			return -1
		}
		return 1
	})
	var out []adapters.Change
	for ; i < len(rows) && len(out) < limit; i++ {
		if through != "" && rows[i].Key > through {
			break
		}
		out = append(out, rows[i])
	}
	return out
}

// ReadKeys reads the rows of a collection with the given keys.
func (r *rangeAdapter) ReadKeys(ctx context.Context, coll string, keys []crdt.Key) ([]adapters.Change, error) {
	if err := r.load(ctx); err != nil {
		return nil, err
	}
	if err := r.hidden(coll); err != nil {
		return nil, err
	}
	st := r.collState(coll)
	if st == nil {
		return r.rr.ReadKeys(ctx, coll, keys)
	}
	local := keys
	if st.ids != nil {
		local = make([]crdt.Key, 0, len(keys))
		r.mu.Lock()
		for _, k := range keys {
			if l, ok := st.ids.localKey(k); ok {
				local = append(local, l)
			}
		}
		r.mu.Unlock()
	}
	rows, err := r.rr.ReadKeys(ctx, st.system.Name, local)
	if err != nil {
		return nil, err
	}
	return r.translate(rows)
}

// HashRange hashes a key range of a collection: the system computes it,
// but for a table keyed by the ID map.
func (h *hashAdapter) HashRange(ctx context.Context, coll string, after, through crdt.Key, limit int) (adapters.RangeHash, error) {
	if err := h.load(ctx); err != nil {
		return adapters.RangeHash{}, err
	}
	if err := h.hidden(coll); err != nil {
		return adapters.RangeHash{}, err
	}
	if st := h.collState(coll); st == nil || st.ids == nil {
		return h.rh.HashRange(ctx, h.systemName(coll), after, through, limit)
	}
	_, sum, err := h.ReadHashedRange(ctx, coll, after, through, limit)
	return sum, err
}

// ReadHashedRange reads a key range of a collection and its hash.
func (h *hashAdapter) ReadHashedRange(ctx context.Context, coll string, after, through crdt.Key, limit int) ([]adapters.Change, adapters.RangeHash, error) {
	if err := h.load(ctx); err != nil {
		return nil, adapters.RangeHash{}, err
	}
	if err := h.hidden(coll); err != nil {
		return nil, adapters.RangeHash{}, err
	}
	st := h.collState(coll)
	if st == nil {
		return h.rh.ReadHashedRange(ctx, coll, after, through, limit)
	}
	if st.ids == nil {
		rows, sum, err := h.rh.ReadHashedRange(ctx, st.system.Name, after, through, limit)
		if err != nil {
			return nil, sum, err
		}
		tr, err := h.translate(rows)
		return tr, sum, err
	}
	all, err := h.readAll(ctx, st)
	if err != nil {
		return nil, adapters.RangeHash{}, err
	}
	rows := window(all, after, through, limit)
	var sum adapters.RangeHash
	for _, c := range rows {
		var b []byte
		b = append(b, c.Key...)
		rs := rowSum(c.Row)
		b = append(b, rs[:]...)
		hs := sha256.Sum256(b)
		var one adapters.RangeHash
		copy(one.Sum[:], hs[:16])
		one.Rows, one.Last = 1, c.Key
		sum = sum.Combine(one)
	}
	return rows, sum, nil
}

// hidden returns an error for the system's name of a table that the
// mapping maps to another collection: it names no collection of this
// adapter, and its rows must not be read unmapped.
func (w *Adapter) hidden(coll string) error {
	if w.collState(coll) != nil {
		return nil
	}
	if st := w.state(coll); st != nil {
		return errors.Newf("no collection %s: table %s holds collection %s", coll, coll, st.coll.Name)
	}
	return nil
}

// ReadTables reads every row of the named collections, when the system's
// adapter can (adapters.TableReader); otherwise it sends nothing.
func (w *Adapter) ReadTables(ctx context.Context, names []string, sink adapters.Sink) error {
	if err := w.load(ctx); err != nil {
		return err
	}
	tr, ok := w.inner.(adapters.TableReader)
	if !ok {
		return nil
	}
	sys := make([]string, 0, len(names))
	for _, n := range names {
		if w.hidden(n) == nil {
			sys = append(sys, w.systemName(n))
		}
	}
	return tr.ReadTables(ctx, sys, w.sink(sink))
}

// never is the catalog channel of a system that reports no changes.
var never = make(chan struct{})

// CatalogChanged passes the system adapter's notices on
// (adapters.CatalogNotifier); a system without them never sends one.
func (w *Adapter) CatalogChanged() <-chan struct{} {
	if n, ok := w.inner.(adapters.CatalogNotifier); ok {
		return n.CatalogChanged()
	}
	return never
}
