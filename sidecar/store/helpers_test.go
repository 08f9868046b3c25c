package store

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// testSchema has one collection with every policy and one unlisted
// collection (all LWW, since the schema is not strict).
func testSchema(strict bool) *crdt.Schema {
	people := crdt.MustCollection("people", []string{"id"}, map[string]crdt.Policy{
		"phone": {Kind: crdt.Prefer, Prefer: []string{"crm", "erp"}},
		"tags":  {Kind: crdt.ORSet},
		"seen":  {Kind: crdt.Max},
		"low":   {Kind: crdt.Min},
	})
	s, err := crdt.NewSchema(strict, people)
	if err != nil {
		panic(err)
	}
	return s
}

// fakeTime is a physical clock that tests move by hand.
type fakeTime struct{ ns atomic.Int64 }

func newFakeTime() *fakeTime {
	f := &fakeTime{}
	f.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return f
}

func (f *fakeTime) now() int64              { return f.ns.Load() }
func (f *fakeTime) advance(d time.Duration) { f.ns.Add(int64(d)) }

// peer is a replica made of plain memory that produces deltas with the crdt
// operations, as a remote sidecar would.
type peer struct {
	id     crdt.ReplicaID
	source string
	clock  *crdt.Clock
	schema *crdt.Schema
	state  map[crdt.ID]*crdt.Record
}

func newPeer(id crdt.ReplicaID, source string, schema *crdt.Schema, physical func() int64) *peer {
	return &peer{id: id, source: source, clock: crdt.NewClock(physical, -1), schema: schema, state: map[crdt.ID]*crdt.Record{}}
}

func (p *peer) origin() crdt.Origin {
	return crdt.Origin{Stamp: crdt.Stamp{TS: p.clock.Now(), Replica: p.id}, Source: p.source}
}

func (p *peer) col(name string) *crdt.Collection {
	c, err := p.schema.Collection(name)
	if err != nil {
		panic(err)
	}
	return c
}

// apply joins an operation's delta into the peer and returns it as a Delta.
func (p *peer) apply(collection string, key crdt.Key, d *crdt.Record, err error) *crdt.Delta {
	if err != nil {
		panic(err)
	}
	out := &crdt.Delta{}
	if d.IsEmpty() {
		return out
	}
	id := crdt.MakeID(collection, key)
	p.state[id] = crdt.Join(p.col(collection), p.state[id], d)
	out.Add(collection, key, d)
	return out
}

func (p *peer) write(collection string, key crdt.Key, row crdt.Row) *crdt.Delta {
	c := p.col(collection)
	d, err := crdt.Diff(c, p.state[crdt.MakeID(collection, key)], row, p.origin())
	return p.apply(collection, key, d, err)
}

func (p *peer) setOps(collection string, key crdt.Key, field string, add, remove []crdt.Value) *crdt.Delta {
	c := p.col(collection)
	d, err := crdt.SetOps(c, p.state[crdt.MakeID(collection, key)], field, add, remove, p.origin())
	return p.apply(collection, key, d, err)
}

func (p *peer) delete(collection string, key crdt.Key) *crdt.Delta {
	d, err := crdt.Delete(p.state[crdt.MakeID(collection, key)], p.origin())
	return p.apply(collection, key, d, err)
}

// receive joins a delta into the peer.
func (p *peer) receive(d *crdt.Delta) {
	for _, f := range d.Fragments {
		if _, err := p.clock.Update(f.Record.MaxStamp().TS); err != nil {
			panic(err)
		}
		id := crdt.MakeID(f.Collection, f.Key)
		p.state[id] = crdt.Join(p.col(f.Collection), p.state[id], f.Record)
	}
}

func mustMerge(t testing.TB, s *Store, d *crdt.Delta) *MergeResult {
	t.Helper()
	res, err := s.Merge(d)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	return res
}

func mustLocal(t testing.TB, s *Store, source string, changes []Change, cur *Cursor) *LocalResult {
	t.Helper()
	res, err := s.Local(source, changes, cur)
	if err != nil {
		t.Fatalf("local: %v", err)
	}
	return res
}

func mustGet(t testing.TB, s *Store, collection string, key crdt.Key) *crdt.Record {
	t.Helper()
	r, err := s.Get(collection, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", collection, key, err)
	}
	return r
}

func mustPending(t testing.TB, s *Store) []Pending {
	t.Helper()
	p, err := s.Pending(0)
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	return p
}

func joinAll(deltas ...*crdt.Delta) *crdt.Delta {
	out := &crdt.Delta{}
	for _, d := range deltas {
		out.Fragments = append(out.Fragments, d.Fragments...)
	}
	return out
}

func str(s string) crdt.Value { return crdt.String(s) }
func num(i int64) crdt.Value  { return crdt.Int(i) }

// recomputeDigest reads every record and hashes its stored encoding.
func recomputeDigest(t testing.TB, s *Store) crdt.Fingerprint {
	t.Helper()
	fp, err := s.Check()
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return fp
}
