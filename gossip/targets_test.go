package gossip

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// simNodes builds nodes that know each other (only the membership state
// targets needs), each seeing the members in view(name) .
func simNodes(size, fanout int, seed uint64, view func(self, other string) bool) map[string]*Node {
	nodes := map[string]*Node{}
	var names []string
	for i := range size {
		names = append(names, fmt.Sprintf("m%03d", i))
	}
	for i, name := range names {
		n := &Node{cfg: Config{Name: name, Fanout: fanout, PushAllUpTo: 1}, peers: map[string]*peer{},
			rng: rand.New(rand.NewPCG(seed, uint64(i)))}
		for _, o := range names {
			if o != name && view(name, o) {
				n.peers[o] = &peer{name: o}
			}
		}
		n.rebuildRingLocked()
		nodes[name] = n
	}
	return nodes
}

// spread relays a new fragment from origin the way deliver does: every
// member that gets it for the first time passes it on. It returns the
// members reached and the number of hops.
func spread(nodes map[string]*Node, origin string) (map[string]bool, int) {
	have := map[string]bool{origin: true}
	type msg struct{ from, to string }
	var wave []msg
	first, _ := nodes[origin].targets("", false)
	for _, p := range first {
		wave = append(wave, msg{origin, p.name})
	}
	hops := 0
	for len(wave) > 0 {
		hops++
		var next []msg
		for _, m := range wave {
			if have[m.to] {
				continue
			}
			have[m.to] = true
			ts, _ := nodes[m.to].targets(m.from, true)
			for _, p := range ts {
				next = append(next, msg{m.to, p.name})
			}
		}
		wave = next
	}
	return have, hops
}

func TestRelayTargetsReachEveryMember(t *testing.T) {
	for _, tc := range []struct {
		size, fanout int
		missing      bool // one member absent from one other's view
	}{
		{50, 3, false}, {50, 2, false}, {50, 1, false}, {200, 3, false}, {50, 3, true},
	} {
		t.Run(fmt.Sprintf("n=%d/fanout=%d/missing=%v", tc.size, tc.fanout, tc.missing), func(t *testing.T) {
			maxHops := 0
			seeds := uint64(100)
			if tc.size > 50 {
				seeds = 10
			}
			for seed := range seeds {
				view := func(self, other string) bool { return true }
				if tc.missing {
					// m001 is unknown to the member just before it on the ring.
					probe := simNodes(tc.size, tc.fanout, seed, view)
					ring := probe["m000"].ring
					var pred string
					for i, name := range ring {
						if name == "m001" {
							pred = ring[(i+len(ring)-1)%len(ring)]
						}
					}
					view = func(self, other string) bool { return !(self == pred && other == "m001") }
				}
				nodes := simNodes(tc.size, tc.fanout, seed, view)
				origin := fmt.Sprintf("m%03d", seed%uint64(tc.size))
				got, hops := spread(nodes, origin)
				if len(got) != tc.size {
					t.Fatalf("seed %d: reached %d of %d members", seed, len(got), tc.size)
				}
				maxHops = max(maxHops, hops)
			}
			t.Logf("at most %d hops", maxHops)
			if tc.fanout >= 2 && maxHops > 4*tc.size/10+8 {
				t.Errorf("%d hops: the random links do not shorten the ring", maxHops)
			}
		})
	}
}
