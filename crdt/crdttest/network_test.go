package crdttest

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

func TestNetwork(t *testing.T) {
	t.Run("lossless", func(t *testing.T) {
		nw := NewNetwork[int](rand.New(rand.NewPCG(1, 2)), 3, NetConfig{MaxDelay: 4})
		for i := range 100 {
			nw.Send(0, 1+i%2, i)
		}
		var got []int
		reordered := false
		for nw.InFlight() > 0 {
			for _, d := range nw.Tick() {
				if d.From != 0 || d.To != 1+d.Msg%2 {
					t.Fatalf("delivery %+v", d)
				}
				if len(got) > 0 && d.Msg < got[len(got)-1] {
					reordered = true
				}
				got = append(got, d.Msg)
			}
		}
		slices.Sort(got)
		if len(got) != 100 || got[0] != 0 || got[99] != 99 || !reordered {
			t.Fatalf("got %d messages, reordered %v", len(got), reordered)
		}
		if s := nw.Stats(); s.Sent != 100 || s.Delivered != 100 || s.Dropped+s.Cut+s.Duplicated != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("faults", func(t *testing.T) {
		nw := NewNetwork[int](rand.New(rand.NewPCG(3, 4)), 2, NetConfig{DropRate: 0.3, DupRate: 0.3})
		for i := range 1000 {
			nw.Send(0, 1, i)
		}
		n := len(nw.Drain())
		s := nw.Stats()
		if s.Dropped < 200 || s.Dropped > 400 || s.Duplicated < 120 || n != 1000-s.Dropped+s.Duplicated || s.Delivered != n {
			t.Fatalf("stats %+v, delivered %d", s, n)
		}
	})
	t.Run("partition and crash", func(t *testing.T) {
		nw := NewNetwork[int](rand.New(rand.NewPCG(5, 6)), 3, NetConfig{MaxDelay: 2})
		nw.Send(0, 1, 1)
		nw.Send(0, 2, 2)
		nw.Partition([]int{0, 1})
		if !nw.Partitioned() || !nw.Connected(0, 1) || nw.Connected(1, 2) {
			t.Fatal("partition")
		}
		nw.Send(1, 2, 3) // cut at once
		got := nw.Drain()
		if len(got) != 1 || got[0].Msg != 1 {
			t.Fatalf("got %+v: the message to 2 was in flight across the cut", got)
		}
		nw.Heal()
		if nw.Partitioned() {
			t.Fatal("heal")
		}
		nw.Send(0, 1, 4)
		nw.Send(1, 2, 5)
		nw.Send(2, 0, 6)
		nw.Crash(1)
		got = nw.Drain()
		if len(got) != 1 || got[0].Msg != 6 {
			t.Fatalf("got %+v after crashing 1", got)
		}
		if s := nw.Stats(); s.Cut != 4 {
			t.Fatalf("stats %+v", s)
		}
		for range 20 {
			nw.RandomPartition()
			if !nw.Partitioned() {
				t.Fatal("RandomPartition left one group")
			}
		}
	})
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{Replicas: 65},
		{Keys: -1},
		{Ops: -1},
		{MaxSkew: -1},
		{Net: NetConfig{DropRate: 2}},
		{Collections: []string{"bad/name"}},
		{Replicas: 2, ReplicaIDs: []crdt.ReplicaID{1}},
		{Replicas: 2, ReplicaIDs: []crdt.ReplicaID{1, 1}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestDeterministic: the same seed gives the same run.
func TestDeterministic(t *testing.T) {
	for seed := range uint64(5) {
		a, err := Run(RandomConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Run(RandomConfig(seed))
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("seed %d: %v then %v", seed, a, b)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	var lines int
	cfg := DefaultConfig(42)
	cfg.Trace = func(string) { lines++ }
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || res.Records == 0 || res.Net.Delivered == 0 || lines == 0 || res.Digest.Count == 0 {
		t.Fatalf("nothing happened: %v", res)
	}
	t.Log(res)
}
