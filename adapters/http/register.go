package http

import (
	"context"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
)

// Kind is the name this adapter registers under: `adapter.kind: http`, with
// adapter.dsn naming the adapter's YAML config file.
const Kind = "http"

func init() {
	adapters.Register(Kind, func(ctx context.Context, o adapters.Options) (adapters.Adapter, error) {
		cfg, err := LoadConfig(o.DSN)
		if err != nil {
			return nil, err
		}
		if o.PollInterval > 0 {
			cfg.PollInterval = o.PollInterval
		}
		if len(o.Keys) > 0 || len(o.Local) > 0 {
			return nil, errors.WithHint(errors.New("http adapter: natural keys and local columns are not supported"),
				"key the API's collections by an ID map (key: {id_map: ...}) instead")
		}
		if len(o.Tables) > 0 {
			for name := range cfg.Collections {
				if !slices.Contains(o.Tables, name) {
					delete(cfg.Collections, name)
				}
			}
			if len(cfg.Collections) == 0 {
				return nil, errors.WithHint(errors.Newf("http adapter: adapter.tables %v names no collection of %s", o.Tables, o.DSN),
					"list collections declared in the adapter's config")
			}
		}
		a, err := Open(ctx, cfg, o.Logger, o.Clock)
		if err != nil {
			return nil, err
		}
		if cfg.RangeReads {
			return &Ranged{Adapter: a}, nil
		}
		return a, nil
	})
}
