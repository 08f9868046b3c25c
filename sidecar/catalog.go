package sidecar

import (
	"context"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
)

// The catalog is live: the agent maps the tables and columns the adapter
// reports (engine.Catalog), and maps them again when they change while it runs:
// every adapter.catalog_interval, whenever an adapter that implements
// adapters.CatalogNotifier says so, and at once when a captured change names
// a table or column the mapping lacks. What the new mapping gains is
// written into the system without a manual step:
//
//   - a new table: every record of its collection the store holds is queued
//     for apply (remote changes that arrived before the table existed were
//     settled without a write), and its parked records are requeued;
//   - a new column: the parked records of its collection are requeued (a
//     merged value for a column the system lacked was refused and parked).

// catalog returns the current mapping of the system's catalog.
func (a *Agent) catalog() *engine.Catalog { return a.eng.Catalog() }

// catalogLoop refreshes the mapping periodically and when the adapter
// reports a change, until ctx is done.
func (a *Agent) catalogLoop(ctx context.Context) {
	var changed <-chan struct{}
	if n, ok := a.adp.(adapters.CatalogNotifier); ok {
		changed = n.CatalogChanged()
	}
	everyTick(ctx, a.clock, a.cfg.Adapter.CatalogInterval, changed, func(periodic bool) {
		if err := a.refreshCatalog(ctx, periodic); err != nil && ctx.Err() == nil {
			a.log.Warn("refresh of the system's catalog failed; the previous mapping stays", "err", err)
		}
	})
}

// everyTick calls fn every interval by clk (periodic true) and whenever
// changed receives (periodic false), one call at a time, until ctx is done.
func everyTick(ctx context.Context, clk clock.Clock, interval time.Duration, changed <-chan struct{}, fn func(periodic bool)) {
	tick := clk.NewTicker(interval)
	defer tick.Stop()
	for {
		periodic := false
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			periodic = true
		case <-changed:
		}
		fn(periodic)
	}
}

// refreshCatalog reads the adapter's tables, swaps in their mapping and
// queues what the new mapping makes writable. forget clears the names that
// an earlier refresh did not find (see needsCatalog).
func (a *Agent) refreshCatalog(ctx context.Context, forget bool) error {
	a.catMu.Lock()
	defer a.catMu.Unlock()
	if forget {
		clear(a.catMiss)
	}
	tables, err := a.adp.Tables(ctx)
	if err != nil {
		return errors.Wrap(err, "discover the system's tables")
	}
	ti, err := engine.NewCatalog(a.cfg.catalogConfig(), a.schema, tables)
	if err != nil {
		return err
	}
	if err := a.readNewTables(ctx, ti); err != nil {
		return err
	}
	newTables, newColumns := a.eng.SetCatalog(ti)
	if len(newTables) == 0 && len(newColumns) == 0 {
		return nil
	}
	a.log.Info("the system's catalog changed", "new_tables", newTables, "new_columns", newColumns)
	var queue []crdt.ID
	for _, name := range newTables {
		a.store.Ascend(crdt.ID(name+"\x00"), crdt.ID(name+"\x01"), func(id crdt.ID, _ crdt.Hash) bool {
			queue = append(queue, id)
			return true
		})
	}
	parked, err := a.store.Parked(0)
	if err != nil {
		return err
	}
	var requeue []crdt.ID
	for _, p := range parked {
		if slices.Contains(newTables, p.Collection) || slices.Contains(newColumns, p.Collection) {
			requeue = append(requeue, p.ID())
		}
	}
	if len(requeue) > 0 {
		if err := a.store.Requeue(requeue); err != nil {
			return err
		}
	}
	if len(queue) > 0 {
		if err := a.store.Enqueue(queue); err != nil {
			return err
		}
	}
	if len(queue) > 0 || len(requeue) > 0 {
		a.log.Info("records queued for the system after a catalog change", "queued", len(queue), "requeued", len(requeue))
		a.wakeApply()
	}
	return nil
}

// readNewTables reads the rows of the tables that next maps and the
// current catalog does not, when the adapter can (adapters.TableReader),
// and steps them through the engine as snapshot rows mapped with next. It
// runs before next is swapped in: until then apply writes nothing into those
// tables, so it cannot overwrite a row before it is read.
func (a *Agent) readNewTables(ctx context.Context, next *engine.Catalog) error {
	tr, ok := a.adp.(adapters.TableReader)
	if !ok {
		return nil
	}
	newTables, _ := engine.Gains(a.catalog(), next)
	if len(newTables) == 0 {
		return nil
	}
	err := tr.ReadTables(ctx, newTables, func(ctx context.Context, b adapters.Batch) error {
		rd, err := a.step(func(r engine.Reader) (*engine.Ready, error) { return a.eng.CaptureTables(r, next, b) })
		if err != nil {
			return err
		}
		for _, sk := range rd.Skipped {
			a.m.badRows.Inc()
			a.log.Warn("row of a new table skipped", "collection", sk.Collection, "err", sk.Err)
		}
		a.afterLocal(rd, "catalog")
		return nil
	})
	return errors.Wrapf(err, "read the rows of the new table(s) %v", newTables)
}

// needsCatalog reports whether a captured batch names a table or column the
// mapping lacks, and which of those names no refresh has been asked about
// since the last periodic one: a name a refresh did not find is not worth
// another until then.
func (a *Agent) needsCatalog(changes []adapters.Change) bool {
	unknown := a.catalog().Unknown(changes)
	if len(unknown) == 0 {
		return false
	}
	a.catMu.Lock()
	defer a.catMu.Unlock()
	ask := false
	for _, n := range unknown {
		if !a.catMiss[n] {
			a.catMiss[n] = true
			ask = true
		}
	}
	return ask
}

// catalogConfig is what the config says about collections, for the
// engine's catalog mapping.
func (c Config) catalogConfig() engine.CatalogConfig {
	cc := engine.CatalogConfig{Strict: c.Strict, Collections: make(map[string]engine.CollectionConfig, len(c.Collections))}
	for name, col := range c.Collections {
		ec := engine.CollectionConfig{Key: col.Key, KeyTypes: col.KeyTypes}
		for f, fc := range col.Fields {
			if fc.Type != "" {
				if ec.FieldTypes == nil {
					ec.FieldTypes = map[string]string{}
				}
				ec.FieldTypes[f] = fc.Type
			}
		}
		cc.Collections[name] = ec
	}
	return cc
}
