package sidecar

import (
	"context"
	"log/slog"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// openAdapter opens the adapter the config names. Adapters register
// themselves (adapters.Register); the binary's main package imports the ones
// it ships.
func openAdapter(ctx context.Context, cfg Config, clk clock.Clock, log *slog.Logger) (adapters.Adapter, error) {
	open, ok := adapters.Lookup(cfg.Adapter.Kind)
	if !ok {
		return nil, unknownAdapter(cfg.Adapter.Kind)
	}
	dsn, err := cfg.Adapter.ReadDSN()
	if err != nil {
		return nil, err
	}
	var keys map[string][]string
	var local map[string]map[string]crdt.Value
	if len(cfg.Mapping.Tables) > 0 {
		m, err := mapping.Compile(cfg.Mapping)
		if err != nil {
			return nil, err
		}
		keys, local = m.NaturalKeys(), m.Local()
	}
	a, err := open(ctx, adapters.Options{
		Keys:         keys,
		Local:        local,
		DSN:          dsn,
		Node:         cfg.Node,
		Tables:       cfg.Adapter.Tables,
		Create:       cfg.Adapter.Create,
		PollInterval: cfg.Adapter.PollInterval,
		Slot:         cfg.Adapter.Slot,
		Publication:  cfg.Adapter.Publication,
		Origin:       cfg.Adapter.Origin,
		Logger:       log,
		Clock:        clk,
	})
	if err != nil {
		return nil, errors.Wrapf(err, "config adapter: open %s", cfg.Adapter.Kind)
	}
	return a, nil
}

// unknownAdapter says that no adapter of that kind is in this binary.
func unknownAdapter(kind string) error {
	return errors.WithHintf(keyErr("adapter.kind", "unknown adapter %q", kind),
		"this binary has: %s", strings.Join(append([]string{AdapterNone}, adapters.Kinds()...), ", "))
}
