package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)

// ClusterOptions configure a cluster.
type ClusterOptions struct {
	// Nodes is the number of sidecars (default 3).
	Nodes int
	// Dir holds databases and stores (default: a new temporary directory,
	// removed by Close).
	Dir string
	// SQLite puts each sidecar beside its own SQLite database holding the
	// table items(id INTEGER PRIMARY KEY, v TEXT, n INTEGER); without it
	// the sidecars have no adapter and their API is the system.
	SQLite bool
	// PollInterval is the SQLite capture poll interval (default 1ms).
	PollInterval time.Duration
	// Logger receives the sidecars' logs (default: discarded).
	Logger *slog.Logger
	// Configure adjusts each node's config.
	Configure func(i int, c *sidecar.Config)
}

// Node is one sidecar of a cluster.
type Node struct {
	Name   string
	Agent  *sidecar.Agent
	DB     *sql.DB // nil without SQLite
	DBPath string
	Client *sidecar.Client
}

// Cluster is a set of sidecars that joined each other.
type Cluster struct {
	Nodes   []*Node
	dir     string
	ownsDir bool
}

// ItemsSchema is the table SQLite clusters sync.
const ItemsSchema = `CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)`

// StartCluster starts the sidecars, each joining the ones before it, and
// waits until every one is ready and sees all the others.
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{dir: o.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "lattice-bench-")
		if err != nil {
			return nil, errors.Wrap(err, "create cluster directory")
		}
		c.dir, c.ownsDir = d, true
	}
	var join []string
	for i := range o.Nodes {
		n := &Node{Name: fmt.Sprintf("n%d", i+1)}
		cfg := sidecar.Config{
			Node:    n.Name,
			Data:    filepath.Join(c.dir, n.Name),
			Bind:    "127.0.0.1:0",
			Join:    slices.Clone(join),
			Cluster: "lattice-bench",
			API:     sidecar.APIConfig{Addr: "127.0.0.1:0"},
			Log:     sidecar.LogConfig{Level: "warn"},
		}
		if o.SQLite {
			n.DBPath = filepath.Join(c.dir, n.Name+".db")
			db, err := sql.Open("sqlite", "file:"+n.DBPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
			if err != nil {
				c.Close()
				return nil, errors.Wrapf(err, "open %s", n.DBPath)
			}
			n.DB = db
			if _, err := db.ExecContext(ctx, ItemsSchema); err != nil {
				c.Close()
				return nil, errors.Wrapf(err, "create items in %s", n.DBPath)
			}
			cfg.Adapter = sidecar.AdapterConfig{Kind: sidecar.AdapterSQLite, DSN: n.DBPath, Tables: []string{"items"}, PollInterval: o.PollInterval}
		}
		if o.Configure != nil {
			o.Configure(i, &cfg)
		}
		a, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: o.Logger})
		if err != nil {
			c.Close()
			return nil, errors.Wrapf(err, "start %s", n.Name)
		}
		n.Agent = a
		c.Nodes = append(c.Nodes, n)
		if n.Client, err = sidecar.NewClient(a.APIAddr(), "", ""); err != nil {
			c.Close()
			return nil, err
		}
		join = append(join, a.Node().Addr())
	}
	err := c.WaitFor(ctx, 30*time.Second, func() (bool, string) {
		for _, n := range c.Nodes {
			if !n.Agent.Ready() {
				return false, n.Name + " not ready"
			}
			if m := len(n.Agent.Node().Members()); m < len(c.Nodes)-1 {
				return false, fmt.Sprintf("%s sees %d peers", n.Name, m)
			}
		}
		return true, ""
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close stops every sidecar and removes the directory if the cluster made
// it.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		if n.Agent != nil {
			_ = n.Agent.Close()
		}
		if n.DB != nil {
			_ = n.DB.Close()
		}
	}
	if c.ownsDir {
		_ = os.RemoveAll(c.dir)
	}
}

// WaitFor polls cond every millisecond until it holds, ctx ends or the
// timeout passes; the error says what cond last reported.
func (c *Cluster) WaitFor(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	var why string
	for {
		ok, w := cond()
		if ok {
			return nil
		}
		why = w
		if time.Now().After(deadline) {
			return errors.Newf("timed out after %s: %s", timeout, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Converged reports whether every replica has the same digest and nothing
// left to apply.
func (c *Cluster) Converged() (bool, string) {
	first := c.Nodes[0].Agent.Digest()
	for _, n := range c.Nodes {
		if d := n.Agent.Digest(); d != first {
			return false, fmt.Sprintf("%s digest %s differs from %s's %s", n.Name, d, c.Nodes[0].Name, first)
		}
		if p := n.Agent.Store().PendingLen(); p > 0 {
			return false, fmt.Sprintf("%s has %d records to apply", n.Name, p)
		}
	}
	return true, ""
}
