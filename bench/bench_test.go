package bench

import (
	"context"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/sidecar"
)

// BenchmarkEndToEnd: three sidecars, each beside its own SQLite database;
// a row committed in one database until it is visible in another. Each
// iteration takes 100 samples; the percentiles cover all of them.
func BenchmarkEndToEnd(b *testing.B) {
	ctx := context.Background()
	c, err := StartCluster(ctx, ClusterOptions{Nodes: 3, SQLite: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ReportAllocs()
	var all []float64
	for b.Loop() {
		l, err := EndToEnd(ctx, c, EndToEndOptions{Samples: 100, From: 0, To: 2})
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, l.Raw...)
	}
	ds := make([]time.Duration, len(all))
	for i, ms := range all {
		ds[i] = time.Duration(ms * 1e6)
	}
	l := Summarise(ds)
	b.ReportMetric(l.P50ms, "p50-ms")
	b.ReportMetric(l.P99ms, "p99-ms")
	b.ReportMetric(float64(l.Samples), "samples")
}

// BenchmarkSQLiteThroughput: three sidecars with SQLite all inserting rows
// at once; field updates converged cluster-wide per second.
func BenchmarkSQLiteThroughput(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		c, err := StartCluster(ctx, ClusterOptions{Nodes: 3, SQLite: true})
		if err != nil {
			b.Fatal(err)
		}
		r, err := Throughput(ctx, c, ThroughputOptions{Duration: 2 * time.Second})
		c.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.FieldsPerSec, "fields/s")
		b.ReportMetric(r.TotalSeconds, "seconds")
	}
}

// BenchmarkEndToEndMapping: BenchmarkEndToEnd on two clusters in the same
// run, one plain and one whose sidecars all map their table (renamed
// table and columns, an integer column converted to text): the ratio is
// the mapped cluster's median latency over the plain one's. Each iteration
// takes 100 samples on each, alternately.
func BenchmarkEndToEndMapping(b *testing.B) {
	ctx := context.Background()
	plain, err := StartCluster(ctx, ClusterOptions{Nodes: 3, SQLite: true})
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	mapped, err := StartCluster(ctx, ClusterOptions{Nodes: 3, SQLite: true, Configure: func(_ int, c *sidecar.Config) {
		c.Mapping = mapping.Config{Tables: map[string]mapping.TableConfig{"items": {
			Collection: "things",
			Columns: map[string]mapping.ColumnConfig{
				"id": {Field: "thing_id"},
				"v":  {Field: "label"},
				"n":  {Field: "count", Convert: "text"},
			},
		}}}
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer mapped.Close()
	var raw [2][]float64
	for b.Loop() {
		for i, c := range []*Cluster{plain, mapped} {
			l, err := EndToEnd(ctx, c, EndToEndOptions{Samples: 100, From: 0, To: 2})
			if err != nil {
				b.Fatal(err)
			}
			raw[i] = append(raw[i], l.Raw...)
		}
	}
	var p50 [2]float64
	for i, r := range raw {
		ds := make([]time.Duration, len(r))
		for j, ms := range r {
			ds[j] = time.Duration(ms * 1e6)
		}
		l := Summarise(ds)
		p50[i] = l.P50ms
		if i == 1 {
			b.ReportMetric(l.P99ms, "mapped-p99-ms")
		} else {
			b.ReportMetric(l.P99ms, "p99-ms")
		}
	}
	b.ReportMetric(p50[0], "p50-ms")
	b.ReportMetric(p50[1], "mapped-p50-ms")
	b.ReportMetric(p50[1]/p50[0], "ratio")
}
