package http

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// metricValues gathers the adapter's metrics: name{label value} to value.
func metricValues(t *testing.T, a *Adapter) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range a.Collectors() {
		reg.MustRegister(c)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			k := f.GetName()
			for _, l := range m.GetLabel() {
				k += "{" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[k] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[k] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	f := newFlakyServer(t)
	a := budgetAdapter(t, f.URL, "circuit: {failures: 2, cooldown: 1h}")
	ctx := context.Background()
	m := metricValues(t, a)
	for _, k := range []string{"lattice_http_requests_total{2xx}", "lattice_http_requests_total{none}",
		"lattice_http_budget_waits_total{concurrency}", "lattice_http_circuit_state", "lattice_http_poll_age_seconds{contacts}",
		"lattice_http_high_water_age_seconds{contacts}", "lattice_http_records_skipped_total{contacts}"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %s at start", k)
		}
	}
	for range 3 {
		if _, err := a.c.do(ctx, "GET", f.URL+"/contacts", nil); err != nil {
			t.Fatal(err)
		}
	}
	f.down.Store(true)
	_, _ = a.c.do(ctx, "GET", f.URL+"/contacts", nil)
	_, _ = a.c.do(ctx, "GET", f.URL+"/contacts", nil)
	m = metricValues(t, a)
	for k, want := range map[string]float64{
		"lattice_http_requests_total{2xx}":   3,
		"lattice_http_requests_total{5xx}":   2,
		"lattice_http_circuit_state":         float64(circuitOpen),
		"lattice_http_circuit_opens_total":   1,
		"lattice_http_circuit_refused_total": 2, // the first call's third attempt, and the second call
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	for code, want := range map[int]string{0: "none", 200: "2xx", 204: "2xx", 301: "3xx", 404: "4xx", 429: "429", 503: "5xx"} {
		if got := codeClass(code); got != want {
			t.Errorf("codeClass(%d) = %s, want %s", code, got, want)
		}
	}
}
