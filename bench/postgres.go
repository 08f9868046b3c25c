package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/sidecar"

	_ "github.com/lattice-crdt/lattice/adapters/postgres"
)

// PostgresTable is the table PostgreSQL clusters sync. Its name keeps it
// apart from an application's tables, since the databases may be a user's
// own (`lattice bench --postgres`).
const PostgresTable = "lattice_bench"

// PostgresSchema creates PostgresTable: the same shape as the SQLite
// scenarios' items table.
const PostgresSchema = `CREATE TABLE ` + PostgresTable + ` (id bigint PRIMARY KEY, v text, n bigint)`

// postgresPrefix names the replication slot, publication and origin of
// each node (postgresPrefix + node name), so that the bench never touches
// those of a sidecar that runs for real beside the same database.
const postgresPrefix = "lattice_bench_"

// PostgresCluster is a cluster whose sidecars each sit beside a PostgreSQL
// database, with the postgres adapter syncing PostgresTable.
type PostgresCluster struct {
	*Cluster
	// DSNs are the nodes' databases, in node order.
	DSNs []string
	// conns hold one connection per database for checks; only the
	// goroutine driving a scenario uses them.
	conns []*pgx.Conn
	// names are the nodes' slot, publication and origin names.
	names []string
	// nextKey is the first key the next throughput run inserts from, per
	// node (keys of node i start at (i+1)<<40).
	nextKey int64
}

// StartPostgresCluster creates PostgresTable in each database (dropping one
// left over by an earlier run) and starts one sidecar per database, with
// the options of StartCluster (Nodes is len(dsns); SQLite must be off).
// Each database needs wal_level=logical and a role allowed to create
// replication slots, publications and origins (a superuser is simplest).
// Close drops the table and the replication objects again.
func StartPostgresCluster(ctx context.Context, dsns []string, o ClusterOptions) (*PostgresCluster, error) {
	if len(dsns) < 2 {
		return nil, errors.Newf("postgres cluster: need at least two databases, got %d", len(dsns))
	}
	if o.SQLite {
		return nil, errors.New("postgres cluster: SQLite must be off")
	}
	if o.Nodes != 0 && o.Nodes != len(dsns) {
		return nil, errors.Newf("postgres cluster: %d nodes for %d databases", o.Nodes, len(dsns))
	}
	o.Nodes = len(dsns)
	pc := &PostgresCluster{DSNs: dsns, names: make([]string, len(dsns))}
	for i, dsn := range dsns {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			pc.closeConns()
			return nil, errors.Wrapf(err, "connect to database %d", i+1)
		}
		pc.conns = append(pc.conns, conn)
		if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+PostgresTable); err != nil {
			pc.closeConns()
			return nil, errors.Wrapf(err, "drop %s left over in database %d", PostgresTable, i+1)
		}
		if _, err := conn.Exec(ctx, PostgresSchema); err != nil {
			pc.closeConns()
			return nil, errors.Wrapf(err, "create %s in database %d", PostgresTable, i+1)
		}
	}
	configure := o.Configure
	o.Configure = func(i int, c *sidecar.Config) {
		name := postgresPrefix + c.Node
		pc.names[i] = name
		c.Adapter = sidecar.AdapterConfig{
			Kind:        sidecar.AdapterPostgres,
			DSN:         dsns[i],
			Tables:      []string{PostgresTable},
			Slot:        name,
			Publication: name,
			Origin:      name,
		}
		if configure != nil {
			configure(i, c)
		}
	}
	c, err := StartCluster(ctx, o)
	if err != nil {
		pc.uninstall(ctx)
		pc.closeConns()
		return nil, err
	}
	pc.Cluster = c
	return pc, nil
}

// Close stops the sidecars, then drops the table, the slots, the
// publications and the origins the cluster created. Calling it again does
// nothing.
func (pc *PostgresCluster) Close() {
	pc.Cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pc.uninstall(ctx)
	pc.closeConns()
}

// uninstall drops what the cluster installed, best effort: the objects of
// node i live in database i.
func (pc *PostgresCluster) uninstall(ctx context.Context) {
	for i, conn := range pc.conns {
		if name := pc.names[i]; name != "" {
			_, _ = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, name)
			_, _ = conn.Exec(ctx, `DROP PUBLICATION IF EXISTS `+pgx.Identifier{name}.Sanitize())
			_, _ = conn.Exec(ctx, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1`, name)
		}
		_, _ = conn.Exec(ctx, `DROP TABLE IF EXISTS `+PostgresTable)
	}
}

func (pc *PostgresCluster) closeConns() {
	for _, c := range pc.conns {
		_ = c.Close(context.Background())
	}
	pc.conns = nil
}

// count returns the number of rows in node i's table.
func (pc *PostgresCluster) count(ctx context.Context, i int) (int64, error) {
	var n int64
	err := pc.conns[i].QueryRow(ctx, `SELECT count(*) FROM `+PostgresTable).Scan(&n)
	return n, errors.Wrapf(err, "count rows in %s", pc.Nodes[i].Name)
}

// PostgresEndToEnd measures, one change at a time, the time from a commit
// in one PostgreSQL database to the changed row being visible in another
// (polled with a prepared statement): capture from the slot, store, gossip,
// merge and apply. Each sample waits for the whole cluster to converge
// before the next, so samples do not overlap.
func PostgresEndToEnd(ctx context.Context, pc *PostgresCluster, o EndToEndOptions) (Latencies, error) {
	o, err := o.check(len(pc.Nodes))
	if err != nil {
		return Latencies{}, err
	}
	from, to := pc.conns[o.From], pc.conns[o.To]
	const read = "lattice_bench_read"
	if _, err := to.Prepare(ctx, read, `SELECT v FROM `+PostgresTable+` WHERE id = 1`); err != nil {
		return Latencies{}, errors.Wrap(err, "prepare read")
	}
	defer func() { _ = to.Deallocate(context.Background(), read) }()
	write := `INSERT INTO ` + PostgresTable + ` (id, v, n) VALUES (1, $1, $2)
		ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = excluded.n`
	return sample(ctx, pc.Cluster, o,
		func(i int, v string) error {
			_, err := from.Exec(ctx, write, v, i)
			return err
		},
		func(v string) (bool, error) {
			var got *string
			if err := to.QueryRow(ctx, read).Scan(&got); err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return false, err
			}
			return got != nil && *got == v, nil
		})
}

// PostgresThroughput has a writer in every database insert rows as fast as
// it can for a while, in transactions of Batch rows (one INSERT statement
// per row, sent in one round trip), then waits until every database holds
// every row and the replicas converged. The rates count rows and field
// updates (two per row) converged cluster-wide per second, from the first
// write to convergence. It can run more than once on a cluster: each run
// inserts new keys.
func PostgresThroughput(ctx context.Context, pc *PostgresCluster, o ThroughputOptions) (ThroughputResult, error) {
	if o.Timeout == 0 {
		o.Timeout = 120 * time.Second
	}
	o = o.withDefaults()
	before := make([]int64, len(pc.Nodes))
	for i := range pc.Nodes {
		n, err := pc.count(ctx, i)
		if err != nil {
			return ThroughputResult{}, err
		}
		before[i] = n
	}
	writers := make([]*pgx.Conn, len(pc.DSNs))
	defer func() {
		for _, w := range writers {
			if w != nil {
				_ = w.Close(context.Background())
			}
		}
	}()
	for i, dsn := range pc.DSNs {
		w, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return ThroughputResult{}, errors.Wrapf(err, "connect a writer to %s", pc.Nodes[i].Name)
		}
		writers[i] = w
	}
	insert := `INSERT INTO ` + PostgresTable + ` (id, v, n) VALUES ($1, $2, $3)`
	type result struct {
		rows int64
		err  error
	}
	results := make(chan result, len(writers))
	first := pc.nextKey
	start := time.Now()
	stop := start.Add(o.Duration)
	for i, w := range writers {
		go func() {
			base := int64(i+1)<<40 + first
			var k int64
			for time.Now().Before(stop) {
				err := pgx.BeginFunc(ctx, w, func(tx pgx.Tx) error {
					var b pgx.Batch
					for j := range int64(o.Batch) {
						b.Queue(insert, base+k+j, "payload-0123456789", k+j)
					}
					return tx.SendBatch(ctx, &b).Close()
				})
				if err != nil {
					results <- result{k, errors.Wrapf(err, "insert in %s", pc.Nodes[i].Name)}
					return
				}
				k += int64(o.Batch)
			}
			results <- result{k, nil}
		}()
	}
	var rows, most int64
	var err error
	for range writers {
		r := <-results
		rows += r.rows
		most = max(most, r.rows)
		err = errors.CombineErrors(err, r.err)
	}
	writeDone := time.Since(start)
	pc.nextKey += most
	if err != nil {
		return ThroughputResult{}, err
	}
	// Counting a large table takes milliseconds of a core the sidecars
	// need: count only once the replicas look converged (cheap, in
	// memory), which they rarely do before the end.
	deadline := start.Add(o.Duration + o.Timeout)
	for {
		ok, why := pc.Converged()
		if ok {
			for i := range pc.Nodes {
				n, err := pc.count(ctx, i)
				if err != nil {
					return ThroughputResult{}, err
				}
				if n-before[i] < rows {
					ok, why = false, fmt.Sprintf("%s holds %d of %d new rows", pc.Nodes[i].Name, n-before[i], rows)
					break
				}
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return ThroughputResult{}, errors.Newf("timed out after %s: %s", o.Timeout, why)
		}
		select {
		case <-ctx.Done():
			return ThroughputResult{}, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return throughput(rows, writeDone, time.Since(start)), nil
}

// median returns the median of xs (0 for none); xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// checkPostgres connects to each database and checks wal_level, so that a
// bad DSN fails before any scenario runs rather than after the others.
func checkPostgres(ctx context.Context, dsns []string) error {
	for i, dsn := range dsns {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		conn, err := pgx.Connect(cctx, dsn)
		if err != nil {
			cancel()
			return errors.WithHint(errors.Wrapf(err, "connect to postgres database %d", i+1),
				"give one postgres:// URL per sidecar, e.g. postgres://user@localhost:5432/db1")
		}
		var level string
		err = conn.QueryRow(cctx, `SHOW wal_level`).Scan(&level)
		_ = conn.Close(context.Background())
		cancel()
		if err != nil {
			return errors.Wrapf(err, "read wal_level of postgres database %d", i+1)
		}
		if level != "logical" {
			return errors.WithHint(errors.Newf("postgres database %d: wal_level is %s, not logical", i+1, level),
				"set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL")
		}
	}
	return nil
}
