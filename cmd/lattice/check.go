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
func runCheck(ctx context.Context, n int, seed uint64, with []string, dir string, log *slog.Logger, stdout io.Writer) error {
	var opt bench.CheckOptions
	for _, w := range with {
		switch w {
		case "restore":
			opt.Restore = true
		case "tag-inserts":
			opt.TagInserts = true
		default:
			return errors.WithHint(errors.Newf("--check-with %q: not a part of the checker", w), "the parts are restore and tag-inserts")
		}
	}
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
	kills, restores := 0, 0
	for i := range n {
		o := opt
		o.Seed, o.Logger, o.Binary = seed+uint64(i), log, bin
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
		restores += res.Restored
		restore := "no file restored"
		if res.Restored > 0 {
			restore = "a file restored from an older copy"
			if res.Settled {
				restore += " (its writes since captured)"
			}
		}
		fmt.Fprintf(stdout, "schedule %d of %d, seed %d: ok: %d writes committed, %d restarts (%d by SIGKILL), %s, %d rows identical in every system, rows applied/allowed %s, %.1fs\n",
			i+1, n, res.Seed, res.Committed, res.Restarts, res.Kills, restore, res.Rows, bench.WriteSummary(res.Applied, res.Bound), res.Seconds)
	}
	took := time.Since(start)
	fmt.Fprintln(stdout, "checker: network partitions skipped: the checker does not set up network namespaces yet")
	fmt.Fprintf(stdout, "checker: %d schedules passed (seeds %d..%d), %d writes, %d SIGKILLs, %d files restored from older copies, %.1f schedules/min\n",
		n, seed, seed+uint64(n)-1, writes, kills, restores, float64(n)/took.Minutes())
	return nil
}
