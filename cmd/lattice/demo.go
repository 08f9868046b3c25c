package main

import (
	"context"
	"io"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/lattice-crdt/lattice/sidecar/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--dir DIR] [--verbose]", stderr)
	dir := fs.String("dir", "", "keep the databases and stores in DIR (default: a temporary directory, removed afterwards)")
	verbose := fs.Bool("verbose", false, "print the sidecars' logs to standard error")
	timeout := fs.Duration("timeout", 15*time.Second, "how long to wait for each convergence")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := demo.Options{Dir: *dir, Out: stdout, Timeout: *timeout}
	if *verbose {
		opts.Logger = sidecar.NewLogger(stderr, sidecar.LogConfig{Level: "info"})
	}
	return demo.Run(ctx, opts)
}
