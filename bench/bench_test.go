package bench

import (
	"context"
	"testing"
	"time"
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
