package sidecar

import (
	"context"
	"log/slog"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
)

// openAdapter opens the adapter the config names.
func openAdapter(ctx context.Context, cfg Config, log *slog.Logger) (adapters.Adapter, error) {
	dsn, err := cfg.Adapter.ReadDSN()
	if err != nil {
		return nil, err
	}
	switch cfg.Adapter.Kind {
	case AdapterSQLite:
		c := sqlite.DefaultConfig()
		c.Path = dsn
		c.Tables = cfg.Adapter.Tables
		if cfg.Adapter.PollInterval > 0 {
			c.PollInterval = cfg.Adapter.PollInterval
		}
		c.Logger = log
		a, err := sqlite.Open(ctx, c)
		if err != nil {
			return nil, errors.Wrap(err, "config adapter: open sqlite")
		}
		return a, nil
	case AdapterPostgres:
		c := postgres.DefaultConfig()
		c.DSN = dsn
		c.Node = cfg.Node
		c.Tables = cfg.Adapter.Tables
		c.Slot = cfg.Adapter.Slot
		c.Publication = cfg.Adapter.Publication
		c.Origin = cfg.Adapter.Origin
		c.Logger = log
		a, err := postgres.Open(ctx, c)
		if err != nil {
			return nil, errors.Wrap(err, "config adapter: open postgres")
		}
		return a, nil
	}
	return nil, errors.AssertionFailedf("adapter kind %q passed validation", cfg.Adapter.Kind)
}
