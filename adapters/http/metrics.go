package http

import (
	"strconv"
	"sync"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/prometheus/client_golang/prometheus"
)

// The adapter's metrics, read at scrape time. Every public name is
// written out here; labels take values from fixed sets (codeClasses,
// "rate" and "concurrency") or from the collection names of the config.
var (
	requestsDesc = prometheus.NewDesc("lattice_http_requests_total",
		"Requests sent to the API, by response class: 2xx, 3xx, 429, 4xx (other than 429), 5xx, or none (no response: connection refused, timeout, TLS).",
		[]string{"code"}, nil)
	budgetWaitsDesc = prometheus.NewDesc("lattice_http_budget_waits_total",
		"Requests that waited before going out, by limit: rate (the requests-per-second budget) or concurrency (requests in flight).",
		[]string{"limit"}, nil)
	circuitStateDesc = prometheus.NewDesc("lattice_http_circuit_state",
		"The API's circuit breaker: 0 closed (requests flow), 1 half-open (one probe out), 2 open (requests fail at once; the writes wait).",
		nil, nil)
	circuitOpensDesc = prometheus.NewDesc("lattice_http_circuit_opens_total",
		"Times the circuit opened: after circuit.failures failed attempts in a row, or a failed probe.", nil, nil)
	circuitRefusedDesc = prometheus.NewDesc("lattice_http_circuit_refused_total",
		"Requests failed at once, without reaching the API, because the circuit was open.", nil, nil)
	pollAgeDesc = prometheus.NewDesc("lattice_http_poll_age_seconds",
		"Time since capture last read a collection's changes successfully (since the adapter opened, before the first poll).",
		[]string{"collection"}, nil)
	highWaterAgeDesc = prometheus.NewDesc("lattice_http_high_water_age_seconds",
		"Age of a collection's capture high-water mark: now less the newest updated-at capture has read (0 before the first record); it grows while nothing changes.",
		[]string{"collection"}, nil)
	skippedDesc = prometheus.NewDesc("lattice_http_records_skipped_total",
		"Listed records capture could not decode (no ID, a field of another kind), logged and skipped.",
		[]string{"collection"}, nil)
)

// codeClasses are the values of lattice_http_requests_total's code label.
var codeClasses = []string{"2xx", "3xx", "429", "4xx", "5xx", "none"}

// codeClass returns the label value of a status code; 0 is no response.
func codeClass(code int) string {
	switch {
	case code == 0:
		return "none"
	case code == 429:
		return "429"
	case code >= 200 && code < 600:
		return strconv.Itoa(code/100) + "xx"
	}
	return "none"
}

// polls records, per collection, when capture last read it successfully
// and the high-water mark it reached.
type polls struct {
	mu     sync.Mutex
	opened time.Time
	at     map[string]time.Time
	mark   map[string]int64 // milliseconds since the epoch
}

func (p *polls) done(coll string, at time.Time, mark int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at[coll] = at
	p.mark[coll] = mark
}

// metricsCollector exports an Adapter's metrics.
type metricsCollector struct{ a *Adapter }

// Collectors returns the adapter's Prometheus collector
// (adapters.MetricsExporter).
func (a *Adapter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{metricsCollector{a}}
}

func (metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, budgetWaitsDesc, circuitStateDesc, circuitOpensDesc,
		circuitRefusedDesc, pollAgeDesc, highWaterAgeDesc, skippedDesc} {
		ch <- d
	}
}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	st := a.c.stats()
	byClass := map[string]float64{}
	for code, n := range st.Requests {
		byClass[codeClass(code)] += float64(n)
	}
	for _, cl := range codeClasses {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, byClass[cl], cl)
	}
	ch <- prometheus.MustNewConstMetric(budgetWaitsDesc, prometheus.CounterValue, float64(st.BudgetWaits), "rate")
	ch <- prometheus.MustNewConstMetric(budgetWaitsDesc, prometheus.CounterValue, float64(a.c.slotWaits.Load()), "concurrency")
	state, opens, refused := a.c.breaker.snapshot()
	ch <- prometheus.MustNewConstMetric(circuitStateDesc, prometheus.GaugeValue, float64(state))
	ch <- prometheus.MustNewConstMetric(circuitOpensDesc, prometheus.CounterValue, float64(opens))
	ch <- prometheus.MustNewConstMetric(circuitRefusedDesc, prometheus.CounterValue, float64(refused))
	now := a.clk.Now()
	a.polls.mu.Lock()
	defer a.polls.mu.Unlock()
	for _, col := range a.colls {
		at, ok := a.polls.at[col.name]
		if !ok {
			at = a.polls.opened
		}
		ch <- prometheus.MustNewConstMetric(pollAgeDesc, prometheus.GaugeValue, max(now.Sub(at).Seconds(), 0), col.name)
		hw := 0.0
		if m := a.polls.mark[col.name]; m > 0 {
			hw = max(now.Sub(time.UnixMilli(m)).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(highWaterAgeDesc, prometheus.GaugeValue, hw, col.name)
		ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(a.skippedBy[col.name].Load()), col.name)
	}
}

var _ adapters.MetricsExporter = (*Adapter)(nil)
