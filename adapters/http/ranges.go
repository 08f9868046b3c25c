package http

import (
	"bytes"
	"context"
	nethttp "net/http"
	"slices"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Ranged is the adapter with range reads (range_reads: true), which the
// engine's verification needs: it compares the API's records with the
// merged state and repairs what differs (docs/verify.md).
type Ranged struct {
	*Adapter

	mu       sync.Mutex
	listings map[string][]adapters.Change // by collection, sorted by key: the current pass's listing
}

// ReadRange returns up to limit records of table with keys after after, in
// key order. An API cannot list by key range, so a pass's first read
// (after is "") lists the whole collection and the pass's later reads page
// through that listing, which the last read drops. A record that changes
// meanwhile is read again by ReadKeys before verification calls it drift.
func (r *Ranged) ReadRange(ctx context.Context, table string, after crdt.Key, limit int) ([]adapters.Change, error) {
	col := r.byName[table]
	if col == nil {
		return nil, errors.Newf("http adapter: unknown collection %s", table)
	}
	if limit <= 0 {
		return nil, errors.Newf("http adapter: read range of %s: limit %d", table, limit)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.listings[table]
	if after == "" || !ok {
		recs, err := r.listAll(ctx, col)
		if err != nil {
			return nil, err
		}
		l = make([]adapters.Change, 0, len(recs))
		for _, rec := range recs {
			if rec.deleted {
				continue
			}
			ch, err := r.change(col, rec, true)
			if err != nil {
				return nil, err
			}
			l = append(l, ch)
		}
		slices.SortFunc(l, func(a, b adapters.Change) int { return bytes.Compare([]byte(a.Key), []byte(b.Key)) })
		if r.listings == nil {
			r.listings = map[string][]adapters.Change{}
		}
		r.listings[table] = l
	}
	i, _ := slices.BinarySearchFunc(l, after, func(c adapters.Change, k crdt.Key) int {
		return bytes.Compare([]byte(c.Key), []byte(k))
	})
	if i < len(l) && l[i].Key == after {
		i++
	}
	end := min(i+limit, len(l))
	if end-i < limit {
		delete(r.listings, table) // the pass has read the last range
	}
	return slices.Clone(l[i:end]), nil
}

// ReadKeys reads each record with its own request; a record the server
// does not hold (404), or marks deleted, is left out.
func (r *Ranged) ReadKeys(ctx context.Context, table string, keys []crdt.Key) ([]adapters.Change, error) {
	col := r.byName[table]
	if col == nil {
		return nil, errors.Newf("http adapter: unknown collection %s", table)
	}
	var out []adapters.Change
	for _, k := range keys {
		id, err := col.idText(k)
		if err != nil {
			continue // no record of this collection has such a key
		}
		resp, err := r.c.do(ctx, nethttp.MethodGet, r.recordURL(col, col.Update.Path, id), nil)
		var se *statusError
		if errors.As(err, &se) && se.code == nethttp.StatusNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		rec, err := col.decodeResponse(resp.body)
		if err != nil {
			return nil, errors.Wrapf(err, "http adapter: read %s %s", table, id)
		}
		if rec.deleted || rec.id != id {
			continue
		}
		ch, err := r.change(col, rec, true)
		if err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, nil
}

var _ adapters.RangeReader = (*Ranged)(nil)
