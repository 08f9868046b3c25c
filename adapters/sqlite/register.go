package sqlite

import (
	"context"

	"github.com/lattice-crdt/lattice/adapters"
)

// Kind is the name this adapter registers under: `adapter.kind: sqlite`.
const Kind = "sqlite"

func init() {
	adapters.Register(Kind, func(ctx context.Context, o adapters.Options) (adapters.Adapter, error) {
		c := DefaultConfig()
		c.Path = o.DSN
		c.Tables = o.Tables
		c.Create = o.Create
		c.Keys = o.Keys
		c.Local = o.Local
		if o.PollInterval > 0 {
			c.PollInterval = o.PollInterval
		}
		c.Logger = o.Logger
		c.Clock = o.Clock
		a, err := Open(ctx, c)
		if err != nil {
			return nil, err
		}
		return a, nil
	})
}
