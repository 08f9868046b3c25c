package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/bench"
	"github.com/spf13/cobra"
)

func benchCmd() *cobra.Command {
	var (
		o                      bench.RunOptions
		pg                     listFlag
		jsonPath, svgPath, dir string
		verbose                bool
		check                  int
		seed                   uint64
		with                   []string
		pgMix                  string
	)
	cmd := &cobra.Command{
		Use:     "bench [--nodes N] [--samples N] [--duration D] [--sqlite=false] [--postgres DSN,DSN,...] [--json FILE] [--svg FILE]",
		Short:   "Run convergence benchmarks; print a table, write JSON and an SVG plot",
		GroupID: "tools",
		Long: `Run convergence benchmarks on this machine: sidecars in this process on
loopback, each beside its own SQLite database (or with --sqlite=false its API
as the system), measuring end-to-end propagation, throughput and catch-up.
Prints a table; --json and --svg write the report and a plot.
--check N runs N seeded schedules of the randomized checker instead (clients
writing random SQL, API writers, restarts; every database compared with the
others and with an oracle); a failure prints its seed, --seed S reruns it.
--check-with runs parts in every schedule that by default run in a seeded half
of them; --check-postgres chooses how many sidecars sit beside PostgreSQL
instead of SQLite.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if check > 0 {
				var log *slog.Logger
				if verbose {
					log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
				}
				return runCheck(cmd.Context(), check, seed, with, pgMix, dir, log, cmd.OutOrStdout())
			}
			o.Postgres = pg
			o.Dir = dir
			o.Progress = cmd.ErrOrStderr()
			if verbose {
				o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			}
			return runBench(cmd.Context(), o, jsonPath, svgPath, cmd.OutOrStdout())
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&o.Nodes, "nodes", bench.DefaultNodes, "`N` sidecars per cluster, all in this process on loopback")
	fs.IntVar(&o.Samples, "samples", bench.DefaultSamples, "`N` end-to-end samples: changes made one at a time")
	fs.DurationVar(&o.Duration, "duration", bench.DefaultDuration, "how long the writers write in the throughput scenarios")
	fs.BoolVar(&o.SQLite, "sqlite", true, "each sidecar beside its own SQLite database; false: the sidecars' API is the system")
	fs.Var(&pg, "postgres", "also run the PostgreSQL scenarios in these databases (`DSN`s), one per sidecar, comma-separated or repeated\n"+
		"(wal_level=logical; the bench creates and drops the table "+bench.PostgresTable+" and slots named lattice_bench_<node>)")
	fs.StringVar(&jsonPath, "json", "", "write the report, raw samples included, as JSON to `FILE`")
	fs.StringVar(&svgPath, "svg", "", "write a plot of the latency distribution and the throughput as SVG to `FILE`")
	fs.StringVar(&dir, "dir", "", "keep the databases and stores in `DIR` (default: temporary directories, removed afterwards)")
	fs.BoolVar(&verbose, "verbose", false, "print the sidecars' logs to standard error")
	fs.IntVar(&check, "check", 0, "instead of the benchmarks, run `N` randomized checker schedules (see docs/verify.md)")
	fs.Uint64Var(&seed, "seed", 0, "with --check: the first schedule's seed (default: from the clock); schedule i uses seed+i")
	fs.StringSliceVar(&with, "check-with", nil, "with --check: run these `PARTS` in every schedule, not in a seeded half of them (docs/verify.md): "+
		"restore (a database file replaced by an older copy), tag-inserts (set rows created concurrently everywhere)")
	fs.StringVar(&pgMix, "check-postgres", "auto", "with --check: how many sidecars sit beside PostgreSQL databases (one throwaway server, restarted during\n"+
		"each schedule): auto (one or two, chosen by the seed, when PostgreSQL is installed), off, or `N`")
	_ = cmd.MarkFlagFilename("json", "json")
	_ = cmd.MarkFlagFilename("svg", "svg")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

func runBench(ctx context.Context, o bench.RunOptions, jsonPath, svgPath string, stdout io.Writer) error {
	switch {
	case o.Nodes < 2:
		return errors.Newf("--nodes %d: need at least 2", o.Nodes)
	case o.Samples < 1:
		return errors.Newf("--samples %d: need at least 1", o.Samples)
	case o.Duration <= 0:
		return errors.Newf("--duration %s: must be positive", o.Duration)
	}
	// Create the output files first, so that a bad path fails before the
	// run; a failed run removes them again.
	var jsonFile, svgFile *os.File
	ok := false
	for _, f := range []struct {
		path string
		dst  **os.File
	}{{jsonPath, &jsonFile}, {svgPath, &svgFile}} {
		if f.path == "" {
			continue
		}
		file, err := os.Create(f.path)
		if err != nil {
			return errors.Wrapf(err, "create %s", f.path)
		}
		defer func() {
			_ = file.Close()
			if !ok {
				_ = os.Remove(file.Name())
			}
		}()
		*f.dst = file
	}

	r, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	m := r.Machine
	fmt.Fprintf(stdout, "lattice %s, %d nodes, %s/%s, %d CPUs", r.Version, r.Nodes, m.OS, m.Arch, m.CPUs)
	if len(m.Load) > 0 {
		fmt.Fprintf(stdout, ", load average %.2f at the start", m.Load[0])
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout)
	if err := r.WriteTable(stdout); err != nil {
		return err
	}
	for _, f := range []struct {
		file  *os.File
		write func(io.Writer) error
	}{{jsonFile, r.WriteJSON}, {svgFile, r.WriteSVG}} {
		if f.file == nil {
			continue
		}
		if err := f.write(f.file); err != nil {
			return errors.Wrapf(err, "write %s", f.file.Name())
		}
		if err := f.file.Close(); err != nil {
			return errors.Wrapf(err, "close %s", f.file.Name())
		}
		fmt.Fprintf(stdout, "\nwrote %s", f.file.Name())
	}
	if jsonFile != nil || svgFile != nil {
		fmt.Fprintln(stdout)
	}
	ok = true
	return nil
}
