package adaptertest

import (
	"bytes"
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
//   - a captured change is diffed against the merged record with
//     crdt.DiffFrom and the change's old row (stamped by the local clock), so
//     that only what the user changed counts, and the delta joined, as the
//     engine does;
//   - a remote write is a delta stamped by the same clock under another
//     replica ID, joined, and the merged view of its row queued for Apply.
//
// Capture runs behind the system, so a captured change can be older, in the
// system's own order, than an Apply that already overwrote it: merging it
// moves the merged state without the system having moved. Apply's position
// tells those changes apart. The replica keeps each record's last apply
// position, and re-applies the record's merged view when a change to it
// arrives in a batch that starts before that position (the change may have
// been committed before the apply); a change in a batch that starts at or
// after it was committed after the apply, which the system already holds. A
// change that arrives while the record's Apply runs is compared with the
// position once the Apply returns it.
type replica struct {
	mu    sync.Mutex
	clock *crdt.Clock
	cols  map[string]*crdt.Collection
	recs  map[crdt.ID]*crdt.Record
	// applied is each applied record's last apply position.
	applied map[crdt.ID][]byte
	// inflight holds the records of the Apply under way, each with the
	// earliest start of a batch that changed it since (nil: none).
	inflight map[crdt.ID][]byte
	pending  map[crdt.ID]bool
	// requeued counts the records queued again by the position rule.
	requeued int
	// deferred counts the writes Apply deferred.
	deferred int
}

const (
	localReplica  crdt.ReplicaID = 1
	remoteReplica crdt.ReplicaID = 2
)

func newReplica(tables map[string]*TableSpec) *replica {
	r := &replica{
		clock:    crdt.NewClock(func() int64 { return time.Now().UnixNano() }, 0),
		cols:     map[string]*crdt.Collection{},
		recs:     map[crdt.ID]*crdt.Record{},
		applied:  map[crdt.ID][]byte{},
		inflight: map[crdt.ID][]byte{},
		pending:  map[crdt.ID]bool{},
	}
	for name, spec := range tables {
		r.cols[name] = crdt.MustCollection(name, spec.Key, nil)
	}
	return r
}

// merge joins the delta that brings a row from old to what was observed (a
// nil row deletes it; a nil old diffs the whole row), stamped by replica id.
func (r *replica) merge(collection string, key crdt.Key, old, row crdt.Row, id crdt.ReplicaID) error {
	c, ok := r.cols[collection]
	if !ok {
		return errors.Newf("unknown collection %q", collection)
	}
	rid := crdt.MakeID(collection, key)
	cur := r.recs[rid]
	d, err := crdt.DiffFrom(c, cur, old, row, crdt.Origin{Stamp: crdt.Stamp{TS: r.clock.Now(), Replica: id}})
	if err != nil {
		return errors.Wrapf(err, "diff %s/%s", collection, key)
	}
	if d != nil {
		r.recs[rid] = crdt.Join(c, cur, d)
	}
	return nil
}

// snapshot merges a change read by Snapshot, before anything was applied.
func (r *replica) snapshot(ch adapters.Change) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.merge(ch.Collection, ch.Key, nil, ch.Row, localReplica)
}

// local merges a change captured in a batch that starts at prev, and queues
// the record again if an Apply may have overwritten the change.
func (r *replica) local(ch adapters.Change, prev []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.merge(ch.Collection, ch.Key, ch.Old, ch.Row, localReplica); err != nil {
		return err
	}
	rid := crdt.MakeID(ch.Collection, ch.Key)
	if start, running := r.inflight[rid]; running {
		if start == nil || bytes.Compare(prev, start) < 0 {
			r.inflight[rid] = prev
		}
		return nil
	}
	if pos, ok := r.applied[rid]; ok && bytes.Compare(prev, pos) < 0 && !r.pending[rid] {
		r.pending[rid] = true
		r.requeued++
	}
	return nil
}

// remote merges a write from another replica and queues its row for Apply.
func (r *replica) remote(collection string, key crdt.Key, row crdt.Row) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.merge(collection, key, nil, row, remoteReplica); err != nil {
		return err
	}
	r.pending[crdt.MakeID(collection, key)] = true
	return nil
}

// done records the position an Apply of writes returned, and queues
// again the records that a change captured meanwhile, in a batch starting
// before that position, may have been overwritten by.
func (r *replica) done(writes []adapters.Write, res adapters.Applied) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pos := res.Position
	for i, w := range writes {
		rid := crdt.MakeID(w.Collection, w.Key)
		if slices.Contains(res.Deferred, i) {
			// Not written: the record stays queued, for after capture.
			delete(r.inflight, rid)
			if !r.pending[rid] {
				r.pending[rid] = true
				r.deferred++
			}
			continue
		}
		r.applied[rid] = pos
		if start := r.inflight[rid]; start != nil && bytes.Compare(start, pos) < 0 && !r.pending[rid] {
			r.pending[rid] = true
			r.requeued++
		}
		delete(r.inflight, rid)
	}
}

// deferrals returns how many writes Apply deferred.
func (r *replica) deferrals() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deferred
}

// requeues returns how many records the position rule queued again.
func (r *replica) requeues() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requeued
}

// takePending returns the writes that bring the system to the merged state
// of every queued row, and marks those rows in flight until done gets the
// Apply's position, so that a change captured meanwhile is not missed.
func (r *replica) takePending() ([]adapters.Write, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := slices.Sorted(maps.Keys(r.pending))
	clear(r.pending)
	out := make([]adapters.Write, 0, len(ids))
	for _, rid := range ids {
		r.inflight[rid] = nil
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
