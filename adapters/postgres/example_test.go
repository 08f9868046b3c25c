package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres"
)

// ExampleOpen shows the adapter's life as the engine drives it: open, take
// the initial snapshot, then capture from its cursor and acknowledge each
// batch once it is durable.
func ExampleOpen() {
	cfg := postgres.DefaultConfig()
	cfg.DSN = "postgres://lattice@localhost/crm"
	cfg.Node = "crm"
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := postgres.Open(ctx, cfg)
	if err != nil {
		fmt.Println(err) // names the problem; errors.GetAllHints says how to fix it
		return
	}
	defer a.Close()

	cursor, err := a.Snapshot(ctx, func(ctx context.Context, b adapters.Batch) error {
		fmt.Println("snapshot rows:", len(b.Changes))
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = a.Capture(ctx, cursor, func(ctx context.Context, b adapters.Batch) error {
		// Make the batch durable first, then acknowledge it.
		fmt.Println("changes:", len(b.Changes))
		return a.Ack(ctx, b.Cursor)
	})
	fmt.Println("capture ended:", err)
}
