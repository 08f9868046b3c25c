package gossip

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
	"pgregory.net/rapid"
)

// sessionNode is a Node with just what runSession needs.
func sessionNode() *Node {
	n := &Node{log: slog.New(slog.DiscardHandler), cfg: DefaultConfig()}
	n.limits = crdt.DefaultLimits()
	n.limits.MaxMessageBytes = n.cfg.MaxMessageBytes
	return n
}

// syncPair runs one anti-entropy session between two replicas over an
// in-memory stream, a initiating, with the session code the nodes run.
func syncPair(t testing.TB, a, b Replica, excluded map[string]bool) (SyncResult, SyncResult) {
	ra, rb, _ := syncPairDetail(t, a, b, excluded)
	return ra, rb
}

func syncPairDetail(t testing.TB, a, b Replica, excluded map[string]bool) (_, _ SyncResult, detail string) {
	t.Helper()
	ca, cb := net.Pipe()
	defer ca.Close()
	defer cb.Close()
	opts := connOptions{maxMsg: DefaultMaxMessageBytes, timeout: 10 * time.Second}
	da := newDataConn(ca, bufio.NewReader(ca), opts, make([]byte, 16), make([]byte, 16), 'd', 'a')
	db := newDataConn(cb, bufio.NewReader(cb), opts, make([]byte, 16), make([]byte, 16), 'a', 'd')
	var resA, resB SyncResult
	errB := make(chan error, 1)
	rcA, rcB := newReconciler(a, excluded, DefaultMaxMessageBytes), newReconciler(b, excluded, DefaultMaxMessageBytes)
	go func() {
		errB <- sessionNode().runSession(db, rcB, &resB, false)
	}()
	if err := sessionNode().runSession(da, rcA, &resA, true); err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if err := <-errB; err != nil {
		t.Fatalf("responder: %v", err)
	}
	detail = fmt.Sprintf("a: ranges %d (%d B) items %d wants %d records %d (%d B); b: ranges %d (%d B) items %d wants %d records %d (%d B)",
		rcA.rangesSent, rcA.rangeBytes, rcA.itemsSent, rcA.wantsSent, rcA.recordsSent, rcA.recordBytes,
		rcB.rangesSent, rcB.rangeBytes, rcB.itemsSent, rcB.wantsSent, rcB.recordsSent, rcB.recordBytes)
	return resA, resB, detail
}

func memReplica(id crdt.ReplicaID) *gossiptest.MemReplica {
	return gossiptest.NewMemReplica(testSchema, id, fmt.Sprint("r", id))
}

// copyAll merges the whole state of src into dst.
func copyAll(t testing.TB, dst, src *gossiptest.MemReplica) {
	t.Helper()
	d, err := src.ReadRange("", "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Merge(d); err != nil {
		t.Fatal(err)
	}
}

func TestSyncConvergesProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		// One deterministic physical clock that the test advances, so that
		// equal wall times on both replicas happen and failures replay.
		now := time.Now().UnixNano()
		physical := func() int64 { return now }
		newRep := func(id crdt.ReplicaID) *gossiptest.MemReplica {
			return gossiptest.NewMemReplicaClock(testSchema, id, fmt.Sprint("r", id), crdt.NewClock(physical, 0))
		}
		a, b := newRep(1), newRep(2)
		keys := rapid.IntRange(1, 300).Draw(rt, "keys")
		// A shared base, then changes on either side or both.
		base := rapid.IntRange(0, keys).Draw(rt, "base")
		for k := range base {
			if _, err := a.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String(fmt.Sprint("base", k))}); err != nil {
				rt.Fatal(err)
			}
		}
		copyAll(t, b, a)
		ops := rapid.IntRange(0, 200).Draw(rt, "ops")
		for i := range ops {
			now += int64(rapid.SampledFrom([]int{0, 0, 1, 1000}).Draw(rt, "tick"))
			r := a
			if rapid.Bool().Draw(rt, "side") {
				r = b
			}
			k := crdt.IntKey(int64(rapid.IntRange(0, keys).Draw(rt, "key")))
			var err error
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0, 1:
				_, err = r.Put("people", k, crdt.Row{"name": crdt.String(fmt.Sprint("v", i))})
			case 2:
				_, err = r.Delete("people", k)
			case 3:
				_, err = r.Put("other", k, crdt.Row{"x": crdt.Int(int64(i))})
			}
			if err != nil {
				rt.Fatal(err)
			}
		}
		want := newRep(3)
		copyAll(t, want, a)
		copyAll(t, want, b)
		ra, rb := syncPair(t, a, b, nil)
		if a.Digest() != want.Digest() || b.Digest() != want.Digest() {
			rt.Fatalf("after sync: a %v, b %v, want %v (a: %+v, b: %+v)\na-want: %v\nb-want: %v", a.Digest(), b.Digest(), want.Digest(), ra, rb, diffReplicas(a, want), diffReplicas(b, want))
		}
	})
}

func TestSyncExcludesCollections(t *testing.T) {
	a, b := memReplica(1), memReplica(2)
	for k := range 50 {
		if _, err := a.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String("a")}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put("other", crdt.IntKey(int64(k)), crdt.Row{"x": crdt.Int(1)}); err != nil {
			t.Fatal(err)
		}
	}
	syncPair(t, a, b, map[string]bool{"other": true})
	if got := b.Fingerprint("people\x00", "people\x01"); got != a.Fingerprint("people\x00", "people\x01") {
		t.Fatalf("people not synced")
	}
	if got := a.Fingerprint("other\x00", "other\x01").Count; got != 0 {
		t.Fatalf("a got %d records of the excluded collection", got)
	}
}

func TestSyncWipedSide(t *testing.T) {
	a, b := memReplica(1), memReplica(2)
	for k := range 5000 {
		if _, err := a.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String("a")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"pull", "push"} {
		t.Run(dir, func(t *testing.T) {
			b = memReplica(2)
			if dir == "pull" {
				syncPair(t, b, a, nil)
			} else {
				syncPair(t, a, b, nil)
			}
			if a.Digest() != b.Digest() {
				t.Fatalf("digests differ after sync")
			}
		})
	}
}

// TestSyncCost checks that a session's bytes grow with the differences,
// not with the records: d changes among n cost a bounded amount each.
func TestSyncCost(t *testing.T) {
	for _, tc := range []struct{ n, d int }{{20000, 10}, {20000, 200}, {50000, 200}} {
		t.Run(fmt.Sprintf("n=%d/d=%d", tc.n, tc.d), func(t *testing.T) {
			a, b := memReplica(1), memReplica(2)
			d := &crdt.Delta{}
			for k := range tc.n {
				x, err := a.Put("people", crdt.IntKey(int64(k)), crdt.Row{"name": crdt.String(fmt.Sprintf("%0100d", k))})
				if err != nil {
					t.Fatal(err)
				}
				d.Fragments = append(d.Fragments, x.Fragments...)
			}
			if _, err := b.Merge(d); err != nil {
				t.Fatal(err)
			}
			changed := 0
			for i := range tc.d {
				k := int64(i * (tc.n / tc.d))
				x, err := a.Put("people", crdt.IntKey(k), crdt.Row{"name": crdt.String(fmt.Sprintf("%0100d", -1-i))})
				if err != nil {
					t.Fatal(err)
				}
				changed += len(encodeFragments(x).body)
			}
			ra, _, detail := syncPairDetail(t, b, a, nil)
			if a.Digest() != b.Digest() {
				t.Fatal("not converged")
			}
			t.Log(detail)
			total := ra.BytesSent + ra.BytesReceived
			t.Logf("bytes %d (%.0f per change, %.2fx the changed records), turns %d, sent %d received %d records",
				total, float64(total)/float64(tc.d), float64(total)/float64(changed), ra.Turns, ra.RecordsSent, ra.RecordsReceived)
			if ra.RecordsReceived != tc.d || ra.RecordsSent != 0 {
				t.Errorf("records received %d sent %d, want %d and 0", ra.RecordsReceived, ra.RecordsSent, tc.d)
			}
			if float64(total) > 3*float64(changed)+2048 {
				t.Errorf("session moved %d bytes for %d bytes of changed records, want at most 3x", total, changed)
			}
		})
	}
}

func diffReplicas(a, b *gossiptest.MemReplica) []string {
	ma := map[crdt.ID]crdt.Hash{}
	a.Ascend("", "", func(id crdt.ID, h crdt.Hash) bool { ma[id] = h; return true })
	var out []string
	b.Ascend("", "", func(id crdt.ID, h crdt.Hash) bool {
		if ha, ok := ma[id]; !ok || ha != h {
			c, k, _ := id.Split()
			out = append(out, fmt.Sprintf("%s: a=%+v b=%+v", id, a.Get(c, k), b.Get(c, k)))
		}
		delete(ma, id)
		return true
	})
	for id := range ma {
		out = append(out, fmt.Sprintf("%s only in a", id))
	}
	return out
}
