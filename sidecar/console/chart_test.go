package console

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The chart shows each bucket's own count (not the cumulative one), with
// whole, distinct gridline labels, and the buckets holding the median and
// the 99th percentile.
func TestHistogramChart(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "d_seconds", Help: "h", Buckets: []float64{.001, .01, .1}})
	reg.MustRegister(h)
	for _, v := range []float64{.0005, .005, .005, .05, 5} {
		h.Observe(v)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := histogramChart(mfs[0])
	var got []uint64
	var labels []string
	for _, b := range c.Bars {
		got = append(got, b.Count)
		labels = append(labels, b.Label)
	}
	if want := []uint64{1, 2, 1, 1}; !slices.Equal(got, want) {
		t.Fatalf("bars = %v, want %v", got, want)
	}
	if want := []string{"1ms", "10ms", "100ms", "more"}; !slices.Equal(labels, want) {
		t.Fatalf("labels = %v, want %v", labels, want)
	}
	var ticks []string
	for _, tk := range c.YTicks {
		ticks = append(ticks, tk.Label)
	}
	if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(ticks, want) {
		t.Fatalf("ticks = %v, want %v", ticks, want)
	}
	if c.P50 != "≤ 10ms" || c.P99 != "> 100ms" || c.Total != 5 {
		t.Fatalf("p50 %q p99 %q total %d", c.P50, c.P99, c.Total)
	}
	if histogramChart(nil) != nil || histogramChart(&dto.MetricFamily{}) != nil {
		t.Fatal("a missing histogram draws a chart")
	}
}
