package postgres

import (
	"context"

	"github.com/lattice-crdt/lattice/adapters"
)

// Kind is the name this adapter registers under: `adapter.kind: postgres`.
const Kind = "postgres"

func init() {
	adapters.Register(Kind, func(ctx context.Context, o adapters.Options) (adapters.Adapter, error) {
		c := DefaultConfig()
		c.DSN = o.DSN
		c.Node = o.Node
		c.Tables = o.Tables
		c.Keys = o.Keys
		c.Local = o.Local
		c.Slot = o.Slot
		c.Publication = o.Publication
		c.Origin = o.Origin
		c.Logger = o.Logger
		c.Clock = o.Clock
		a, err := Open(ctx, c)
		if err != nil {
			return nil, err
		}
		return a, nil
	})
}
