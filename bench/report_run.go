package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// Run's defaults.
const (
	DefaultNodes    = 3
	DefaultSamples  = 200
	DefaultDuration = 3 * time.Second
)

// RunOptions configure Run.
type RunOptions struct {
	// Nodes is the number of sidecars per cluster (default 3). The
	// PostgreSQL scenarios run one sidecar per database instead.
	Nodes int
	// Samples is the number of end-to-end samples per system (default 200).
	Samples int
	// Duration is how long the writers write in a throughput scenario
	// (default 3s).
	Duration time.Duration
	// SQLite puts each sidecar beside its own SQLite database; without it
	// the sidecars have no adapter and the scenarios write and read through
	// their HTTP API.
	SQLite bool
	// Postgres lists databases, one per sidecar, to run the PostgreSQL
	// scenarios in; none skips them. Each needs wal_level=logical and a role
	// that may create replication slots; Run creates the table
	// PostgresTable in each and drops it again, with the replication
	// objects named lattice_bench_<node>.
	Postgres []string
	// Dir holds the databases and stores, one subdirectory per cluster
	// (default: temporary directories, removed afterwards).
	Dir string
	// Logger receives the sidecars' logs (default: discarded).
	Logger *slog.Logger
	// Progress, if set, receives a line as each scenario starts.
	Progress io.Writer
}

// Run runs the scenarios on this machine: end-to-end latency and
// throughput for SQLite databases (or the API), then for the PostgreSQL
// databases given. Each SQLite or API scenario gets a fresh cluster.
func Run(ctx context.Context, o RunOptions) (*Report, error) {
	if o.Nodes == 0 {
		o.Nodes = DefaultNodes
	}
	if o.Nodes < 2 {
		return nil, errors.Newf("bench: nodes: %d, need at least 2", o.Nodes)
	}
	if o.Samples <= 0 {
		o.Samples = DefaultSamples
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if len(o.Postgres) == 1 {
		return nil, errors.WithHint(errors.New("bench: postgres: one database, need at least 2"),
			"give one database per sidecar, e.g. three databases on one server")
	}
	if len(o.Postgres) > 0 {
		if err := checkPostgres(ctx, o.Postgres); err != nil {
			return nil, err
		}
	}
	r := newReport(o.Nodes)
	for _, run := range []func(context.Context, RunOptions) (Scenario, error){runEndToEnd, runThroughput} {
		sc, err := run(ctx, o)
		if err != nil {
			return nil, err
		}
		r.Scenarios = append(r.Scenarios, sc)
	}
	if len(o.Postgres) > 0 {
		scs, err := runPostgres(ctx, o)
		if err != nil {
			return nil, err
		}
		r.Scenarios = append(r.Scenarios, scs...)
	}
	return r, nil
}

func (o RunOptions) progress(s Scenario, format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "%s: %s\n", s.Title(), fmt.Sprintf(format, args...))
	}
}

// dir returns the directory for one cluster: a new subdirectory of Dir, or
// "" (a temporary directory) without Dir.
func (o RunOptions) dir(name string) (string, error) {
	if o.Dir == "" {
		return "", nil
	}
	d := filepath.Join(o.Dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", errors.Wrapf(err, "create %s", d)
	}
	return d, nil
}

func (o RunOptions) system() string {
	if o.SQLite {
		return SystemSQLite
	}
	return SystemAPI
}

// startLocal starts a fresh SQLite or API cluster for one scenario.
func startLocal(ctx context.Context, o RunOptions, scenario string) (*Cluster, error) {
	d, err := o.dir(o.system() + "-" + scenario)
	if err != nil {
		return nil, err
	}
	co := ClusterOptions{Nodes: o.Nodes, Dir: d, SQLite: o.SQLite, Logger: o.Logger}
	if !o.SQLite {
		co.Configure = func(_ int, c *sidecar.Config) { c.Collections = apiCollections() }
	}
	c, err := StartCluster(ctx, co)
	return c, errors.Wrapf(err, "start %s cluster", o.system())
}

func runEndToEnd(ctx context.Context, o RunOptions) (Scenario, error) {
	sc := Scenario{Name: ScenarioEndToEnd, System: o.system()}
	o.progress(sc, "%d nodes, %d changes one at a time, from node 1 to node %d", o.Nodes, o.Samples, o.Nodes)
	c, err := startLocal(ctx, o, sc.Name)
	if err != nil {
		return sc, err
	}
	defer c.Close()
	eo := EndToEndOptions{Samples: o.Samples, From: 0, To: o.Nodes - 1}
	var l Latencies
	if o.SQLite {
		l, err = EndToEnd(ctx, c, eo)
	} else {
		l, err = apiEndToEnd(ctx, c, eo)
	}
	if err != nil {
		return sc, errors.Wrap(err, sc.Title())
	}
	sc.Latency = &l
	return sc, nil
}

func runThroughput(ctx context.Context, o RunOptions) (Scenario, error) {
	sc := Scenario{Name: ScenarioThroughput, System: o.system()}
	o.progress(sc, "%d nodes writing for %s, then until converged", o.Nodes, o.Duration)
	c, err := startLocal(ctx, o, sc.Name)
	if err != nil {
		return sc, err
	}
	defer c.Close()
	to := ThroughputOptions{Duration: o.Duration}
	var t ThroughputResult
	if o.SQLite {
		t, err = Throughput(ctx, c, to)
	} else {
		t, err = apiThroughput(ctx, c, to)
	}
	if err != nil {
		return sc, errors.Wrap(err, sc.Title())
	}
	sc.Throughput = &t
	return sc, nil
}

// runPostgres runs both scenarios on one PostgreSQL cluster: the
// throughput run counts only the rows it inserts.
func runPostgres(ctx context.Context, o RunOptions) ([]Scenario, error) {
	e2e := Scenario{Name: ScenarioEndToEnd, System: SystemPostgres}
	tput := Scenario{Name: ScenarioThroughput, System: SystemPostgres}
	n := len(o.Postgres)
	o.progress(e2e, "%d databases, %d changes one at a time, from database 1 to database %d", n, o.Samples, n)
	d, err := o.dir(SystemPostgres)
	if err != nil {
		return nil, err
	}
	pc, err := StartPostgresCluster(ctx, o.Postgres, ClusterOptions{Dir: d, Logger: o.Logger})
	if err != nil {
		return nil, errors.Wrap(err, "start postgres cluster")
	}
	defer pc.Close()
	l, err := PostgresEndToEnd(ctx, pc, EndToEndOptions{Samples: o.Samples, From: 0, To: n - 1})
	if err != nil {
		return nil, errors.Wrap(err, e2e.Title())
	}
	e2e.Latency = &l
	o.progress(tput, "%d databases writing for %s, then until converged", n, o.Duration)
	t, err := PostgresThroughput(ctx, pc, ThroughputOptions{Duration: o.Duration})
	if err != nil {
		return nil, errors.Wrap(err, tput.Title())
	}
	tput.Throughput = &t
	return []Scenario{e2e, tput}, nil
}

// apiCollections declares the items collection for sidecars without an
// adapter, which learn keys and types from the config alone.
func apiCollections() map[string]sidecar.CollectionConfig {
	return map[string]sidecar.CollectionConfig{
		"items": {
			Key:      []string{"id"},
			KeyTypes: []string{"int"},
			Fields: map[string]sidecar.FieldConfig{
				"v": {Policy: "lww", Type: "string"},
				"n": {Policy: "lww", Type: "int"},
			},
		},
	}
}

// apiClients returns a client per node with enough idle connections for
// concurrent writers, and a function that closes them.
func apiClients(c *Cluster) ([]*sidecar.Client, func(), error) {
	var out []*sidecar.Client
	closeAll := func() {
		for _, cl := range out {
			cl.HTTP.CloseIdleConnections()
		}
	}
	for _, n := range c.Nodes {
		cl, err := sidecar.NewClient(n.Agent.APIAddr(), "", "")
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		if tr, ok := cl.HTTP.Transport.(*http.Transport); ok {
			tr.MaxIdleConnsPerHost = 16
		}
		out = append(out, cl)
	}
	return out, closeAll, nil
}

// apiEndToEnd is EndToEnd for sidecars whose API is the system: from a PUT
// answered by one sidecar to a GET of another returning the new value.
func apiEndToEnd(ctx context.Context, c *Cluster, o EndToEndOptions) (Latencies, error) {
	o, err := o.check(len(c.Nodes))
	if err != nil {
		return Latencies{}, err
	}
	clients, done, err := apiClients(c)
	if err != nil {
		return Latencies{}, err
	}
	defer done()
	from, to := clients[o.From], clients[o.To]
	return sample(ctx, c, o,
		func(i int, v string) error {
			_, err := from.Put(ctx, "items", "1", map[string]any{"v": v, "n": i})
			return err
		},
		func(v string) (bool, error) {
			want, _ := json.Marshal(v)
			rec, err := to.Get(ctx, "items", "1")
			if errors.Is(err, sidecar.ErrNotFound) {
				return false, nil
			}
			return err == nil && string(rec.Row["v"]) == string(want), err
		})
}

// apiWriters is the number of concurrent writers per node in
// apiThroughput: HTTP requests wait on a round trip each.
const apiWriters = 4

// apiThroughput is Throughput for sidecars whose API is the system: writers
// PUT new records into every sidecar as fast as they can for a while, then
// it waits until every replica holds every record and they converged.
func apiThroughput(ctx context.Context, c *Cluster, o ThroughputOptions) (ThroughputResult, error) {
	o = o.withDefaults()
	clients, done, err := apiClients(c)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer done()
	before := make([]uint64, len(c.Nodes))
	for i, n := range c.Nodes {
		before[i] = n.Agent.Digest().Count
	}
	var (
		mu   sync.Mutex
		rows int64
		errs error
		wg   sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(o.Duration)
	for i, cl := range clients {
		for w := range apiWriters {
			wg.Go(func() {
				// Keys of node i, writer w: (i+1)<<40 + w<<32 + k.
				base := int64(i+1)<<40 + int64(w)<<32
				var k int64
				var err error
				for ; time.Now().Before(stop); k++ {
					key := strconv.FormatInt(base+k, 10)
					if _, err = cl.Put(ctx, "items", key, map[string]any{"v": "payload-0123456789", "n": k}); err != nil {
						err = errors.Wrapf(err, "write to %s", c.Nodes[i].Name)
						break
					}
				}
				mu.Lock()
				rows += k
				errs = errors.CombineErrors(errs, err)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if errs != nil {
		return ThroughputResult{}, errs
	}
	writeDone := time.Since(start)
	err = c.WaitFor(ctx, o.Timeout, func() (bool, string) {
		for i, n := range c.Nodes {
			if got := int64(n.Agent.Digest().Count - before[i]); got < rows {
				return false, fmt.Sprintf("%s holds %d of %d records", n.Name, got, rows)
			}
		}
		return c.Converged()
	})
	if err != nil {
		return ThroughputResult{}, err
	}
	return throughput(rows, writeDone, time.Since(start)), nil
}
