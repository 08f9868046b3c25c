package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/bench"
)

// runCheck runs n checker schedules from seed (the clock's when zero) and
// stops at the first failure, whose error names its seed. pg is the
// --check-postgres mix: auto, off or a number of sidecars.
func runCheck(ctx context.Context, n int, seed uint64, with []string, pg, dir string, log *slog.Logger, stdout io.Writer) error {
	var opt bench.CheckOptions
	if err := checkPostgresMix(&opt, pg, stdout); err != nil {
		return err
	}
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
	partitions, why := bench.CanPartition()
	if partitions {
		opt.Partitions = 1
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
	kills, restores, pgSchedules, pgRestarts, cuts, tagInserts := 0, 0, 0, 0, 0, 0
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
		if res.Postgres > 0 {
			pgSchedules++
		}
		pgRestarts += res.PostgresRestarts
		cuts += res.Partitions
		tags := "tag rows created before the writes"
		if res.TagInserts {
			tagInserts++
			tags = "tag rows created concurrently"
		}
		restore := "no file restored"
		if res.Restored > 0 {
			restore = "a file restored from an older copy"
			if res.Settled {
				restore += " (its writes since captured)"
			}
		}
		systems := "SQLite only"
		if res.Postgres > 0 {
			systems = fmt.Sprintf("%d of %d beside PostgreSQL, %d PostgreSQL restarts (%d sidecars started again)",
				res.Postgres, len(res.Applied), res.PostgresRestarts, res.Respawns)
		}
		fmt.Fprintf(stdout, "schedule %d of %d, seed %d: ok: %s, %d writes committed, %d restarts (%d by SIGKILL), %d partitions, %s, %s, %d rows identical in every system, rows applied/allowed %s, %.1fs\n",
			i+1, n, res.Seed, systems, res.Committed, res.Restarts, res.Kills, res.Partitions, restore, tags, res.Rows, bench.WriteSummary(res.Applied, res.Bound), res.Seconds)
	}
	took := time.Since(start)
	if !partitions {
		fmt.Fprintf(stdout, "checker: network partitions skipped: %s\n", why)
	}
	fmt.Fprintf(stdout, "checker: %d schedules passed (seeds %d..%d, %d with PostgreSQL), %d writes, %d SIGKILLs, %d PostgreSQL restarts, %d partitions, %d files restored from older copies, %d with tag rows created concurrently, %.1f schedules/min\n",
		n, seed, seed+uint64(n)-1, pgSchedules, writes, kills, pgRestarts, cuts, restores, tagInserts, float64(n)/took.Minutes())
	return nil
}

// checkPostgresMix sets the options' PostgreSQL mix from --check-postgres:
// auto puts one or two sidecars (a seeded choice) beside PostgreSQL when
// its binaries are installed, and only SQLite, with a message, when not
// (an error under LATTICE_REQUIRE_INTEGRATION=1, as in CI); off none; a
// number that many, which then need the binaries.
func checkPostgresMix(o *bench.CheckOptions, pg string, stdout io.Writer) error {
	switch pg {
	case "off", "0":
		o.Postgres = 0
		return nil
	case "auto":
		o.Postgres = bench.PostgresSeeded
	default:
		n, err := strconv.Atoi(pg)
		if err != nil || n < 0 || n > bench.CheckNodes {
			return errors.WithHint(errors.Newf("--check-postgres %q: not auto, off or a number of sidecars", pg),
				fmt.Sprintf("give auto, off, or 1 to %d", bench.CheckNodes))
		}
		o.Postgres = n
	}
	bin, err := pgtest.FindBinaries()
	switch {
	case err == nil:
		o.PostgresBinaries = bin
		return nil
	case pg != "auto":
		return errors.Wrapf(err, "--check-postgres %s", pg)
	case os.Getenv(pgtest.EnvRequire) == "1":
		return errors.Wrapf(err, "%s=1: the checker needs PostgreSQL", pgtest.EnvRequire)
	}
	o.Postgres = 0
	fmt.Fprintf(stdout, "checker: PostgreSQL skipped, every sidecar beside SQLite: %v\n", err)
	return nil
}
