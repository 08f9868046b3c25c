package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lattice-crdt/lattice/bench"
)

// runCheck runs n checker schedules from seed (the clock's when zero) and
// stops at the first failure, whose error names its seed.
func runCheck(ctx context.Context, n int, seed uint64, dir string, log *slog.Logger, stdout io.Writer) error {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano() % 1e9)
	}
	start := time.Now()
	var writes int64
	for i := range n {
		o := bench.CheckOptions{Seed: seed + uint64(i), Logger: log}
		if dir != "" {
			o.Dir = filepath.Join(dir, fmt.Sprintf("seed-%d", o.Seed))
		}
		res, err := bench.Check(ctx, o)
		if err != nil {
			fmt.Fprintf(stdout, "schedule %d of %d, seed %d: FAILED\n", i+1, n, o.Seed)
			return err
		}
		writes += res.Committed
		fmt.Fprintf(stdout, "schedule %d of %d, seed %d: ok: %d writes committed, %d restarts, %d rows identical in every system, %.1fs\n",
			i+1, n, res.Seed, res.Committed, res.Restarts, res.Rows, res.Seconds)
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "checker: %d schedules passed (seeds %d..%d), %d writes, %.1f schedules/min\n",
		n, seed, seed+uint64(n)-1, writes, float64(n)/took.Minutes())
	return nil
}
