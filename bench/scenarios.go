package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
)

// Latencies summarises a set of durations.
type Latencies struct {
	Samples int     `json:"samples"`
	P50ms   float64 `json:"p50_ms"`
	P90ms   float64 `json:"p90_ms"`
	P99ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
	MeanMs  float64 `json:"mean_ms"`
	// Raw holds every sample in milliseconds, in the order taken.
	Raw []float64 `json:"raw_ms,omitempty"`
}

// Summarise computes percentiles (nearest rank) of ds.
func Summarise(ds []time.Duration) Latencies {
	l := Latencies{Samples: len(ds)}
	if len(ds) == 0 {
		return l
	}
	ms := make([]float64, len(ds))
	var sum float64
	for i, d := range ds {
		ms[i] = float64(d) / 1e6
		sum += ms[i]
	}
	l.Raw = slices.Clone(ms)
	slices.Sort(ms)
	pick := func(p float64) float64 {
		i := int(p*float64(len(ms))+0.5) - 1
		return ms[min(max(i, 0), len(ms)-1)]
	}
	l.P50ms, l.P90ms, l.P99ms, l.MaxMs = pick(.50), pick(.90), pick(.99), ms[len(ms)-1]
	l.MeanMs = sum / float64(len(ms))
	return l
}

// EndToEndOptions configure EndToEnd.
type EndToEndOptions struct {
	Samples int           // default 200
	From    int           // index of the node written to
	To      int           // index of the node read from
	Timeout time.Duration // per sample (default 10s)
	// Spread, when set, waits a random time up to Spread before each
	// write, so that writes fall at random points of a polling system's
	// interval rather than just after the poll that ended the sample
	// before (default 0: none).
	Spread time.Duration
}

// EndToEnd measures, one change at a time, the time from a commit in one
// SQLite database to the changed row being visible in another: capture,
// store, gossip, merge and apply. Each sample waits for the whole cluster to
// converge before the next, so samples do not overlap.
func EndToEnd(ctx context.Context, c *Cluster, o EndToEndOptions) (Latencies, error) {
	o, err := o.check(len(c.Nodes))
	if err != nil {
		return Latencies{}, err
	}
	from, to := c.Nodes[o.From], c.Nodes[o.To]
	if from.DB == nil || to.DB == nil {
		return Latencies{}, errors.New("end-to-end needs two distinct SQLite nodes")
	}
	read, err := to.DB.PrepareContext(ctx, `SELECT v FROM items WHERE id = 1`)
	if err != nil {
		return Latencies{}, errors.Wrap(err, "prepare read")
	}
	defer read.Close()
	return sample(ctx, c, o,
		func(i int, v string) error {
			_, err := from.DB.ExecContext(ctx, `INSERT INTO items (id, v, n) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = excluded.n`, v, i)
			return err
		},
		func(v string) (bool, error) {
			var got sql.NullString
			if err := read.QueryRowContext(ctx).Scan(&got); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return false, err
			}
			return got.String == v, nil
		})
}

// check fills the defaults of o and checks its nodes against a cluster of
// n nodes.
func (o EndToEndOptions) check(n int) (EndToEndOptions, error) {
	if o.Samples == 0 {
		o.Samples = 200
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.From == o.To || o.From < 0 || o.To < 0 || o.From >= n || o.To >= n {
		return o, errors.Newf("end-to-end needs two distinct nodes of %d, got %d and %d", n, o.From, o.To)
	}
	return o, nil
}

// sample takes o.Samples end-to-end samples one at a time: write makes
// change i, carrying the value v, in node From's system, and visible reports
// whether node To's system shows v. After each sample it waits for the whole
// cluster to converge, so samples do not overlap.
func sample(ctx context.Context, c *Cluster, o EndToEndOptions, write func(i int, v string) error, visible func(v string) (bool, error)) (Latencies, error) {
	from, to := c.Nodes[o.From].Name, c.Nodes[o.To].Name
	ds := make([]time.Duration, 0, o.Samples)
	for i := range o.Samples {
		if o.Spread > 0 {
			select {
			case <-ctx.Done():
				return Latencies{}, ctx.Err()
			case <-time.After(rand.N(o.Spread)):
			}
		}
		v := fmt.Sprintf("sample-%d-%d", time.Now().UnixNano(), i)
		start := time.Now()
		if err := write(i, v); err != nil {
			return Latencies{}, errors.Wrapf(err, "write in %s", from)
		}
		deadline := start.Add(o.Timeout)
		for {
			ok, err := visible(v)
			if err != nil {
				return Latencies{}, errors.Wrapf(err, "read in %s", to)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return Latencies{}, errors.Newf("sample %d not visible in %s within %s", i, to, o.Timeout)
			}
			// Paces the polling, which would otherwise take a core from the
			// sidecars; a round trip costs about as much.
			time.Sleep(100 * time.Microsecond)
		}
		ds = append(ds, time.Since(start))
		if err := c.WaitFor(ctx, o.Timeout, c.Converged); err != nil {
			return Latencies{}, err
		}
	}
	return Summarise(ds), nil
}

// ThroughputOptions configure Throughput.
type ThroughputOptions struct {
	Duration time.Duration // how long every node writes (default 3s)
	Batch    int           // rows per write transaction (default 100)
	Timeout  time.Duration // for convergence after the writes (default 60s)
}

// ThroughputResult is what Throughput measured.
type ThroughputResult struct {
	Rows          int64   `json:"rows"`
	Fields        int64   `json:"fields"`
	WriteSeconds  float64 `json:"write_seconds"`
	TotalSeconds  float64 `json:"total_seconds"`
	FieldsPerSec  float64 `json:"fields_per_second"`
	RowsPerSecond float64 `json:"rows_per_second"`
}

// Throughput has every node insert rows into its own SQLite database as
// fast as it can for a while, then waits until all databases hold every row
// and the replicas converged. The rate is field updates (two per row)
// converged cluster-wide per second, from the first write to convergence.
func Throughput(ctx context.Context, c *Cluster, o ThroughputOptions) (ThroughputResult, error) {
	o = o.withDefaults()
	// Rows already there (from an earlier scenario) count towards the
	// target every database must reach, not towards the rate.
	before := make([]int64, len(c.Nodes))
	for i, n := range c.Nodes {
		if n.DB == nil {
			return ThroughputResult{}, errors.New("throughput needs SQLite nodes")
		}
		if err := n.DB.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&before[i]); err != nil {
			return ThroughputResult{}, errors.Wrap(err, "count rows")
		}
	}
	var rows atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(c.Nodes))
	start := time.Now()
	stop := start.Add(o.Duration)
	for i, n := range c.Nodes {
		wg.Go(func() {
			base := int64(i+1) << 40
			for k := int64(0); time.Now().Before(stop); k += int64(o.Batch) {
				tx, err := n.DB.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				for j := range int64(o.Batch) {
					if _, err := tx.ExecContext(ctx, `INSERT INTO items (id, v, n) VALUES (?, ?, ?)`, base+k+j, "payload-0123456789", k+j); err != nil {
						_ = tx.Rollback()
						errs <- err
						return
					}
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
				rows.Add(int64(o.Batch))
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return ThroughputResult{}, errors.Wrap(err, "write")
	}
	writeDone := time.Since(start)
	want := rows.Load()
	err := c.WaitFor(ctx, o.Timeout, func() (bool, string) {
		for i, n := range c.Nodes {
			var got int64
			if err := n.DB.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&got); err != nil {
				return false, err.Error()
			}
			if got-before[i] < want {
				return false, fmt.Sprintf("%s holds %d of %d new rows", n.Name, got-before[i], want)
			}
		}
		return c.Converged()
	})
	if err != nil {
		return ThroughputResult{}, err
	}
	return throughput(want, writeDone, time.Since(start)), nil
}

// withDefaults fills the options left zero.
func (o ThroughputOptions) withDefaults() ThroughputOptions {
	if o.Duration == 0 {
		o.Duration = 3 * time.Second
	}
	if o.Batch == 0 {
		o.Batch = 100
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	return o
}

// throughput is the result of rows (two fields each) written in writing
// and converged everywhere after total.
func throughput(rows int64, writing, total time.Duration) ThroughputResult {
	return ThroughputResult{
		Rows:          rows,
		Fields:        2 * rows,
		WriteSeconds:  writing.Seconds(),
		TotalSeconds:  total.Seconds(),
		FieldsPerSec:  float64(2*rows) / total.Seconds(),
		RowsPerSecond: float64(rows) / total.Seconds(),
	}
}
