package store

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
)

// A captured change with its base row writes only what it touched: a
// newer remote value of another field survives, and the system, which holds
// the stale value, is queued for apply.
func TestLocalBaseKeepsRemoteWrites(t *testing.T) {
	s := openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x0"), "y": str("y0")}, Captured: true}}, nil)
	drain(t, s)
	// A remote write of y, newer, merged but not yet applied.
	var remote crdt.Delta
	cur := mustGet(t, s, "c", key)
	col, _ := s.Schema().Collection("c")
	o := crdt.Origin{Stamp: crdt.Stamp{TS: s.Clock().Now(), Replica: 99}}
	d, err := crdt.Diff(col, cur, crdt.Row{"y": str("y1")}, o)
	if err != nil {
		t.Fatal(err)
	}
	remote.Add("c", key, d)
	mustMerge(t, s, &remote)
	drain(t, s)

	res := mustLocal(t, s, "a", []Change{{
		Collection: "c", Key: key, Captured: true,
		Base: crdt.Row{"x": str("x0"), "y": str("y0")},
		Row:  crdt.Row{"x": str("x1"), "y": str("y0")},
	}}, nil)
	view := mustGet(t, s, "c", key).View(col)
	if view["x"].AsString() != "x1" || view["y"].AsString() != "y1" {
		t.Fatalf("view = %v, want x1 (local) and y1 (remote)", view)
	}
	if len(res.Effects) != 1 {
		t.Fatalf("effects = %v, want the record queued: the system holds y0", res.Effects)
	}
}

// A stale captured change that changes the state queues the record even
// when the captured row equals the new view: the system may hold an
// applied row instead.
func TestLocalStaleQueues(t *testing.T) {
	s := openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x0")}, Captured: true}}, nil)
	drain(t, s)
	for _, tc := range []struct {
		name  string
		stale bool
		want  int
	}{{"fresh", false, 0}, {"stale", true, 1}} {
		res := mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x-" + tc.name)}, Captured: true, Stale: tc.stale}}, nil)
		if len(res.Effects) != tc.want {
			t.Fatalf("%s: %d effects, want %d", tc.name, len(res.Effects), tc.want)
		}
		drain(t, s)
	}
	// A stale change that changes nothing queues nothing.
	res := mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x-stale")}, Captured: true, Stale: true}}, nil)
	if len(res.Effects) != 0 || res.Delta.Len() != 0 {
		t.Fatalf("no-op stale change: %d effects, delta %v", len(res.Effects), res.Delta)
	}
}

// A Commit step runs under the writer lock that queue acknowledgements
// take too, so the staleness the engine decides in it (from the apply
// positions) holds until the write; a stale change queues its record.
func TestCommitStepUnderWriterLock(t *testing.T) {
	s := openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x0")}, Captured: true}}, nil)
	drain(t, s)
	for _, tc := range []struct {
		name  string
		stale bool
		want  int
	}{{"fresh", false, 0}, {"stale", true, 1}} {
		calls, unlocked := 0, false
		rd, err := s.Commit(func(r engine.Reader) (*engine.Ready, error) {
			calls++
			if s.wmu.TryLock() {
				unlocked = true
				s.wmu.Unlock()
			}
			return engine.Local(r, s.Params("a"), []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x-" + tc.name)}, Captured: true, Stale: tc.stale}}, nil)
		})
		if err != nil {
			t.Fatal(err)
		}
		if calls != 1 || unlocked {
			t.Fatalf("%s: step called %d times, outside the writer lock: %v", tc.name, calls, unlocked)
		}
		if len(rd.Effects) != tc.want {
			t.Fatalf("%s: %d effects, want %d", tc.name, len(rd.Effects), tc.want)
		}
		drain(t, s)
	}
}

// An apply reads a queued record; before it acknowledges, a captured change
// changes the record: the acknowledgement must not remove the entry, or the
// system would keep the older state the apply wrote.
func TestCapturedChangeRequeuesInflightApply(t *testing.T) {
	s := openMem(t, crdt.MustSchema())
	key := crdt.IntKey(1)
	col, _ := s.Schema().Collection("c")
	// A remote change queues the record for apply.
	var remote crdt.Delta
	d, err := crdt.Diff(col, nil, crdt.Row{"x": str("remote")}, crdt.Origin{Stamp: crdt.Stamp{TS: s.Clock().Now(), Replica: 99}})
	if err != nil {
		t.Fatal(err)
	}
	remote.Add("c", key, d)
	mustMerge(t, s, &remote)
	inflight := mustPending(t, s)
	if len(inflight) != 1 {
		t.Fatalf("pending = %v", inflight)
	}
	// The system's user writes before the apply lands; capture merges it
	// and its row equals the new view.
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("local")}, Captured: true}}, nil)
	// The apply (of the older state) finishes and acknowledges.
	if err := s.AckPending(inflight); err != nil {
		t.Fatal(err)
	}
	p := mustPending(t, s)
	if len(p) != 1 || p[0].Record.View(col)["x"].AsString() != "local" {
		t.Fatalf("pending after the ack = %v, want the record queued with x=local", p)
	}
}

// Without an apply queue, effects are reported and nothing is queued.
func TestNoApplyQueue(t *testing.T) {
	s := openMem(t, crdt.MustSchema(), func(o *Options) { o.NoApplyQueue = true })
	col, _ := s.Schema().Collection("c")
	var remote crdt.Delta
	d, err := crdt.Diff(col, nil, crdt.Row{"x": str("remote")}, crdt.Origin{Stamp: crdt.Stamp{TS: s.Clock().Now(), Replica: 99}})
	if err != nil {
		t.Fatal(err)
	}
	remote.Add("c", crdt.IntKey(1), d)
	if res := mustMerge(t, s, &remote); len(res.Effects) != 1 {
		t.Fatalf("merge effects = %v, want one", res.Effects)
	}
	if res := mustLocal(t, s, "api", []Change{{Collection: "c", Key: crdt.IntKey(2), Row: crdt.Row{"x": str("local")}}}, nil); len(res.Effects) != 1 {
		t.Fatalf("local effects = %v, want one", res.Effects)
	}
	if n := s.PendingLen(); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
	if _, err := s.Check(); err != nil {
		t.Fatalf("check: %v", err)
	}
}

// A captured change with a commit time is stamped with it, above what its
// writer saw and forwarded into the clock; one too far ahead of the clock is
// stamped at capture, and counted.
func TestLocalCommitStamp(t *testing.T) {
	var now atomic.Int64
	now.Store(1_000_000_000_000)
	s := openMem(t, crdt.MustSchema(), func(o *Options) {
		o.Physical = now.Load
		o.MaxClockOffset = time.Second
	})
	col, _ := s.Schema().Collection("c")
	key := crdt.IntKey(1)
	stampOf := func(field string) crdt.Stamp {
		t.Helper()
		r, err := s.Get("c", key)
		if err != nil {
			t.Fatal(err)
		}
		_, m, ok := r.Get(col, field)
		if !ok {
			t.Fatalf("field %s not visible", field)
		}
		return m.Stamp
	}
	at := now.Load() - int64(time.Minute)
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x0"), "y": str("y0")}, Captured: true, Committed: at}}, nil)
	if got := stampOf("x").TS; got != (crdt.Timestamp{Wall: at}) {
		t.Fatalf("insert stamped %s, want its commit time %d", got, at)
	}
	// A change whose writer saw x0, committed before it by the system's
	// clock: stamped just above the write it saw.
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"x": str("x1")}, Base: crdt.Row{"x": str("x0")}, Captured: true, Committed: at - 5}}, nil)
	if got, want := stampOf("x").TS, (crdt.Timestamp{Wall: at}).Next(); got != want {
		t.Fatalf("update stamped %s, want %s: above the write its writer saw", got, want)
	}
	if last := s.Clock().Now(); !(crdt.Timestamp{Wall: at}).Less(last) {
		t.Fatalf("clock at %s after a commit stamp", last)
	}
	// A commit time two seconds ahead of the clock is not adopted.
	ahead := now.Load() + int64(2*time.Second)
	mustLocal(t, s, "a", []Change{{Collection: "c", Key: key, Row: crdt.Row{"y": str("y1")}, Base: crdt.Row{"y": str("y0")}, Captured: true, Committed: ahead}}, nil)
	if got := stampOf("y").TS; got.Wall >= ahead {
		t.Fatalf("a commit time beyond the max offset was adopted: %s", got)
	}
	if n := s.Stats().CommitTimesAhead; n != 1 {
		t.Fatalf("CommitTimesAhead = %d, want 1", n)
	}
}
