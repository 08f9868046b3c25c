package adaptertest

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// replica is the suite's tiny single-replica engine, which defines what
// "merged" means for the concurrent scenario. Every field is LWW. It keeps
// one crdt.Record per row and changes it only by joining deltas:
//
//   - a captured change is diffed against the merged record (crdt.Diff,
//     stamped by the local clock) and the delta joined, as the engine does;
//   - a remote write is a delta stamped by the same clock under another
//     replica ID, joined, and the merged view of its row queued for Apply.
//
// One rule goes beyond the plain engine loop, and an engine needs it too:
// capture runs behind the system, so a captured change can be older, in the
// system's own order, than an Apply that already reached the row. Merging it
// moves the merged state without the system having moved, so the replica
// re-applies the merged view of every row that has been applied before once a
// captured change for it is merged. The extra write is never captured and
// leaves a row that was already equal unchanged.
type replica struct {
	mu      sync.Mutex
	clock   *crdt.Clock
	cols    map[string]*crdt.Collection
	recs    map[crdt.ID]*crdt.Record
	applied map[crdt.ID]bool
	pending map[crdt.ID]bool
}

const (
	localReplica  crdt.ReplicaID = 1
	remoteReplica crdt.ReplicaID = 2
)

func newReplica(tables map[string]*TableSpec) *replica {
	r := &replica{
		clock:   crdt.NewClock(func() int64 { return time.Now().UnixNano() }, 0),
		cols:    map[string]*crdt.Collection{},
		recs:    map[crdt.ID]*crdt.Record{},
		applied: map[crdt.ID]bool{},
		pending: map[crdt.ID]bool{},
	}
	for name, spec := range tables {
		r.cols[name] = crdt.MustCollection(name, spec.Key, nil)
	}
	return r
}

// merge joins the delta that brings a row to what was observed (a nil row
// deletes it), stamped by replica id.
func (r *replica) merge(collection string, key crdt.Key, row crdt.Row, id crdt.ReplicaID) error {
	c, ok := r.cols[collection]
	if !ok {
		return errors.Newf("unknown collection %q", collection)
	}
	rid := crdt.MakeID(collection, key)
	cur := r.recs[rid]
	d, err := crdt.Diff(c, cur, row, crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: id}})
	if err != nil {
		return errors.Wrapf(err, "diff %s/%s", collection, key)
	}
	if d != nil {
		r.recs[rid] = crdt.Join(c, cur, d)
	}
	return nil
}

// local merges a captured change.
func (r *replica) local(ch adapters.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.merge(ch.Collection, ch.Key, ch.Row, localReplica); err != nil {
		return err
	}
	if rid := crdt.MakeID(ch.Collection, ch.Key); r.applied[rid] {
		r.pending[rid] = true
	}
	return nil
}

// remote merges a write from another replica and queues its row for Apply.
func (r *replica) remote(collection string, key crdt.Key, row crdt.Row) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.merge(collection, key, row, remoteReplica); err != nil {
		return err
	}
	r.pending[crdt.MakeID(collection, key)] = true
	return nil
}

// takePending returns the writes that bring the system to the merged state
// of every queued row, and marks those rows applied. Marking happens before
// the caller applies, so that a change captured meanwhile queues its row
// again.
func (r *replica) takePending() ([]adapters.Write, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := slices.Sorted(maps.Keys(r.pending))
	clear(r.pending)
	out := make([]adapters.Write, 0, len(ids))
	for _, rid := range ids {
		r.applied[rid] = true
		w, err := r.write(rid)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// write is the Apply write of a row's merged state: its view plus its key
// columns, or a delete.
func (r *replica) write(rid crdt.ID) (adapters.Write, error) {
	name, key, err := rid.Split()
	if err != nil {
		return adapters.Write{}, err
	}
	c := r.cols[name]
	rec := r.recs[rid]
	w := adapters.Write{Collection: name, Key: key}
	if !rec.Exists() {
		return w, nil
	}
	keyRow, err := c.KeyRow(key)
	if err != nil {
		return adapters.Write{}, err
	}
	w.Row = rec.View(c)
	maps.Copy(w.Row, keyRow)
	return w, nil
}

// state returns the merged view of every live row.
func (r *replica) state() (state, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := state{}
	for rid := range r.recs {
		w, err := r.write(rid)
		if err != nil {
			return nil, err
		}
		if w.Row != nil {
			st.putWrite(w)
		}
	}
	return st, nil
}

// pendingCount returns how many rows wait to be applied.
func (r *replica) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// emptyListIsNull maps empty lists to null, as Lattice's registers hold them.
func emptyListIsNull(row crdt.Row) crdt.Row {
	out := make(crdt.Row, len(row))
	for n, v := range row {
		if v.Kind() == crdt.KindList && len(v.AsList()) == 0 {
			v = crdt.Null()
		}
		out[n] = v
	}
	return out
}
