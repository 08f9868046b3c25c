package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/bench"
)

// runCheck runs n checker schedules from seed (the clock's when zero) and
// stops at the first failure, whose error names its seed.
func runCheck(ctx context.Context, n int, seed uint64, dir string, log *slog.Logger, stdout io.Writer) error {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano() % 1e9)
	}
	// The sidecars run as child processes of this binary, so that a
	// restart can be a SIGKILL.
	bin, err := os.Executable()
	if err != nil {
		return errors.Wrap(err, "find the lattice binary")
	}
	start := time.Now()
	var writes int64
	kills := 0
	for i := range n {
		o := bench.CheckOptions{Seed: seed + uint64(i), Logger: log, Binary: bin}
		if dir != "" {
			o.Dir = filepath.Join(dir, fmt.Sprintf("seed-%d", o.Seed))
		}
		res, err := bench.Check(ctx, o)
		if err != nil {
			fmt.Fprintf(stdout, "schedule %d of %d, seed %d: FAILED\n", i+1, n, o.Seed)
			return err
		}
		writes += res.Committed
		kills += res.Kills
		fmt.Fprintf(stdout, "schedule %d of %d, seed %d: ok: %d writes committed, %d restarts (%d by SIGKILL), %d rows identical in every system, %.1fs\n",
			i+1, n, res.Seed, res.Committed, res.Restarts, res.Kills, res.Rows, res.Seconds)
	}
	took := time.Since(start)
	fmt.Fprintln(stdout, "checker: network partitions skipped: the checker does not set up network namespaces yet")
	fmt.Fprintf(stdout, "checker: %d schedules passed (seeds %d..%d), %d writes, %d SIGKILLs, %.1f schedules/min\n",
		n, seed, seed+uint64(n)-1, writes, kills, float64(n)/took.Minutes())
	return nil
}
