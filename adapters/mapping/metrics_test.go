package mapping_test

import (
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/prometheus/client_golang/prometheus"
)

// exporting is an adapter that exports metrics; only Collectors is called.
type exporting struct {
	adapters.Adapter
	c []prometheus.Collector
}

func (e exporting) Collectors() []prometheus.Collector { return e.c }

// exportingRanges also reads by key range.
type exportingRanges struct {
	exporting
	adapters.RangeReader
}

// The wrapper forwards the collectors of the adapter it wraps, whatever
// capabilities Capable gives it, and exports none of an adapter without.
func TestWrapForwardsCollectors(t *testing.T) {
	m, err := mapping.Compile(mapping.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})
	for name, inner := range map[string]adapters.Adapter{
		"plain":  exporting{c: []prometheus.Collector{c}},
		"ranges": exportingRanges{exporting: exporting{c: []prometheus.Collector{c}}},
	} {
		t.Run(name, func(t *testing.T) {
			w := mapping.New(inner, m, nil)
			e, ok := w.(adapters.MetricsExporter)
			if !ok {
				t.Fatalf("%T does not export metrics", w)
			}
			if got := e.Collectors(); len(got) != 1 || got[0] != c {
				t.Fatalf("Collectors() = %v, want the inner adapter's", got)
			}
			if _, ok := w.(adapters.RangeReader); ok != (name == "ranges") {
				t.Fatalf("RangeReader %v for %s", ok, name)
			}
		})
	}
	plain := mapping.New(struct{ adapters.Adapter }{}, m, nil).(adapters.MetricsExporter)
	if got := plain.Collectors(); len(got) != 0 {
		t.Fatalf("Collectors() = %v for an adapter without metrics", got)
	}
}
