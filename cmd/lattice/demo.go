package main

import (
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/lattice-crdt/lattice/sidecar/demo"
	"github.com/spf13/cobra"
)

func demoCmd() *cobra.Command {
	var (
		opts    demo.Options
		verbose bool
	)
	cmd := &cobra.Command{
		Use:     "demo [--dir DIR] [--keep] [--verbose]",
		Short:   "Run three sidecars beside three SQLite databases and resolve classic sync conflicts",
		GroupID: "tools",
		Long: `Run three sidecars in this process, each beside its own SQLite database, make
the classic two-way sync conflicts happen (concurrent edits, a delete against
an update, a set edited on two sides) and show each resolved, comparing the
databases' tables after every step. Needs nothing but this binary.

Each sidecar serves the web console on its API address; the demo prints the
addresses and the file holding the API token. With --keep the cluster stays
up after the scenes, until Ctrl-C, so that you can look at it in a browser
and change the databases yourself.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.Out = cmd.OutOrStdout()
			if verbose {
				opts.Logger = sidecar.NewLogger(cmd.ErrOrStderr(), sidecar.LogConfig{Level: "info"})
			}
			return demo.Run(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "keep the databases and stores in `DIR` (default: a temporary directory, removed afterwards)")
	f.BoolVar(&verbose, "verbose", false, "print the sidecars' logs to standard error")
	f.BoolVar(&opts.Keep, "keep", false, "keep the cluster up after the scenes (until Ctrl-C) and print the consoles' addresses")
	f.DurationVar(&opts.Timeout, "timeout", 15*time.Second, "how long to wait for each convergence")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}
