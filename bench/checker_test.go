package bench

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestChecker runs randomized checker schedules: LATTICE_CHECK_RUNS of
// them (default 2) from seed LATTICE_CHECK_SEED (default: the time). A
// failure names its seed; LATTICE_CHECK_SEED=N LATTICE_CHECK_RUNS=1 reruns
// it.
func TestChecker(t *testing.T) {
	runs, seed := 2, uint64(time.Now().UnixNano())
	if s := os.Getenv("LATTICE_CHECK_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		runs = n
	}
	if s := os.Getenv("LATTICE_CHECK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	for i := range runs {
		res, err := Check(context.Background(), CheckOptions{Seed: seed + uint64(i), Duration: 1500 * time.Millisecond})
		if err != nil {
			t.Fatalf("%+v", err)
		}
		t.Logf("seed %d: %d writes (%d committed), %d restarts, %d rows, %.1fs", res.Seed, res.Writes, res.Committed, res.Restarts, res.Rows, res.Seconds)
	}
}
