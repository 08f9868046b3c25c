package crdttest

import (
	"flag"
	"fmt"
	"testing"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "run only this simulation seed (add -v to trace it)")
	seedsFlag = flag.Int("seeds", 1000, "number of simulation seeds TestSimulation runs")
)

// TestSimulation runs many seeded simulations, each with its own mix of
// faults (RandomConfig), and checks that all replicas converge to the
// oracle. A failure names the seed; -seed=N reruns exactly that one.
func TestSimulation(t *testing.T) {
	if *seedFlag != 0 {
		runSeed(t, *seedFlag, testing.Verbose())
		return
	}
	for i := range *seedsFlag {
		seed := uint64(i + 1)
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			runSeed(t, seed, false)
		})
	}
}

func runSeed(t *testing.T, seed uint64, trace bool) {
	t.Helper()
	cfg := RandomConfig(seed)
	if trace {
		cfg.Trace = func(line string) { t.Log(line) }
	}
	res, err := Run(cfg)
	if err != nil {
		t.Fatalf("%v\nconfig %+v\nrerun: go test ./crdt/crdttest -run TestSimulation -seed=%d -v", err, cfg, seed)
	}
	if trace {
		t.Log(res)
	}
}
