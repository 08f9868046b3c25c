package bench

import (
	"context"
	"testing"
	"time"
)

// TestScenarios runs each scenario small, so that `make test` keeps them
// working; the benchmarks run them in earnest.
func TestScenarios(t *testing.T) {
	ctx := context.Background()
	c, err := StartCluster(ctx, ClusterOptions{Nodes: 3, SQLite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l, err := EndToEnd(ctx, c, EndToEndOptions{Samples: 5, From: 0, To: 1})
	if err != nil {
		t.Fatal(err)
	}
	if l.Samples != 5 || l.P50ms <= 0 || l.P99ms < l.P50ms {
		t.Fatalf("implausible latencies %+v", l)
	}
	r, err := Throughput(ctx, c, ThroughputOptions{Duration: 200 * time.Millisecond, Batch: 20})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rows == 0 || r.FieldsPerSec <= 0 {
		t.Fatalf("implausible throughput %+v", r)
	}
	t.Logf("end-to-end %+v", l)
	t.Logf("throughput %+v", r)
}
