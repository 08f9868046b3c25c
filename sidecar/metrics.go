package sidecar

import (
	"reflect"
	"strings"
	"sync"
	"unicode"

	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's own Prometheus metrics; the store's and gossip's
// counters are exported by statsCollector at scrape time.
type metrics struct {
	localFragments    prometheus.Counter
	receivedFragments prometheus.Counter
	mergedFragments   prometheus.Counter
	rejected          *prometheus.CounterVec
	propagation       prometheus.Histogram
	appliedRows       prometheus.Counter
	applyErrors       prometheus.Counter
	applyLatency      prometheus.Histogram
	captureErrors     prometheus.Counter
	badRows           prometheus.Counter
	parked            prometheus.Counter
	apiRequests       *prometheus.CounterVec
	apiLatency        prometheus.Histogram
	conflicts         *prometheus.CounterVec

	// conflictSeries holds the (collection, field) label pairs in use, at
	// most maxConflictSeries.
	conflictMu     sync.Mutex
	conflictSeries map[[2]string]bool
}

// maxConflictSeries bounds the label pairs of lattice_conflicts_total:
// collections and fields come from the schema and the system's tables, and
// past this many (or for names neither knows) they count as _other.
const maxConflictSeries = 1000

// otherLabel stands for a collection or field that does not get its own
// series.
const otherLabel = "_other"

// countConflict counts one logged conflict under bounded labels.
func (a *Agent) countConflict(collection, fieldName, rule string) {
	m := a.m
	coll, field := otherLabel, otherLabel
	if a.knownField(collection, fieldName) {
		coll, field = collection, fieldName
		if field == "" {
			field = "_record" // a delete against an update
		}
	}
	m.conflictMu.Lock()
	pair := [2]string{coll, field}
	if !m.conflictSeries[pair] {
		if len(m.conflictSeries) >= maxConflictSeries {
			pair = [2]string{otherLabel, otherLabel}
		} else {
			m.conflictSeries[pair] = true
		}
	}
	m.conflictMu.Unlock()
	m.conflicts.WithLabelValues(pair[0], pair[1], rule).Inc()
}

// knownField reports whether a collection and field are named by the
// schema or the system's tables, not only by a peer.
func (a *Agent) knownField(collection, field string) bool {
	if col, err := a.schema.Collection(collection); err == nil && col != nil {
		if _, listed := col.Fields[field]; listed && len(col.Fields) > 0 {
			return true
		}
	}
	cat := a.catalog()
	if cat == nil {
		return false
	}
	m, err := cat.Lookup(collection)
	if err != nil || !m.Synced {
		return false
	}
	if field == "" {
		return true
	}
	_, ok := m.Kinds[field]
	return ok
}

func newMetrics(a *Agent) *metrics {
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "lattice", Name: name, Help: help})
		a.reg.MustRegister(c)
		return c
	}
	m := &metrics{
		localFragments:    f("local_deltas_total", "Record fragments produced by local changes (captured or written through the API)."),
		receivedFragments: f("deltas_received_total", "Record fragments received from peers."),
		mergedFragments:   f("deltas_merged_total", "Received record fragments that changed the local state."),
		appliedRows:       f("apply_rows_total", "Merged records written into the local system."),
		applyErrors:       f("apply_errors_total", "Failed apply attempts (retried with backoff)."),
		captureErrors:     f("capture_errors_total", "Capture interruptions (restarted from the last durable cursor)."),
		badRows:           f("bad_rows_total", "Changes rejected as malformed or not fitting their field policy."),
		parked:            f("parked_total", "Records the system rejected, set aside for an operator."),
	}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "deltas_rejected_total",
		Help: "Received record fragments refused, by reason (clock_offset, unknown_collection, too_large, other)."}, []string{"reason"})
	m.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "propagation_delay_seconds",
		Help:    "Time from a change's origin stamp to its merge here.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
	m.applyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "apply_batch_seconds",
		Help: "Time to write one batch of merged records into the system.", Buckets: prometheus.DefBuckets})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "api_requests_total",
		Help: "HTTP API requests by method (a known one or other), route (the matched pattern or other) and status code."},
		[]string{"method", "route", "code"})
	m.apiLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "api_request_seconds",
		Help: "HTTP API request latency.", Buckets: prometheus.DefBuckets})
	m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "conflicts_total",
		Help: "Conflicts logged: merges that chose between writes whose loser the winner's writer had not seen, " +
			"by collection, field (_record for a delete against an update; _other past the label bound) and rule."},
		[]string{"collection", "field", "rule"})
	m.conflictSeries = map[[2]string]bool{}
	a.reg.MustRegister(m.rejected, m.propagation, m.applyLatency, m.apiRequests, m.apiLatency, m.conflicts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statsCollector{a})
	return m
}

// statsCollector exports the store's and gossip's counters at scrape time:
// every uint64 field of their Stats as a counter, every int field as a
// gauge, named lattice_store_<field> and lattice_gossip_<field>.
type statsCollector struct{ a *Agent }

func (statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range []struct {
		prefix string
		v      any
	}{{"store", store.Stats{}}, {"gossip", gossip.Stats{}}} {
		for _, f := range statFields(s.prefix, s.v) {
			ch <- f.desc
		}
	}
	ch <- pendingDesc
	ch <- membersDesc
}

var (
	pendingDesc = prometheus.NewDesc("lattice_pending_apply", "Records waiting to be written into the local system.", nil, nil)
	membersDesc = prometheus.NewDesc("lattice_members", "Cluster members seen alive, this node included.", nil, nil)
)

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	if a.store != nil {
		st := a.store.Stats()
		for _, f := range statFields("store", st) {
			ch <- f.metric()
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending))
	}
	if a.node != nil {
		gs := a.node.Stats()
		for _, f := range statFields("gossip", gs) {
			ch <- f.metric()
		}
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(gs.Members+1))
	}
}

type statField struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value float64
}

func (f statField) metric() prometheus.Metric {
	return prometheus.MustNewConstMetric(f.desc, f.kind, f.value)
}

var statDescs sync.Map // prefix.field -> *prometheus.Desc

func statFields(prefix string, v any) []statField {
	rv := reflect.ValueOf(v)
	rt := rv.Type()
	out := make([]statField, 0, rt.NumField())
	for i := range rt.NumField() {
		sf := rt.Field(i)
		var kind prometheus.ValueType
		var val float64
		switch fv := rv.Field(i); fv.Kind() {
		case reflect.Uint64:
			kind, val = prometheus.CounterValue, float64(fv.Uint())
		case reflect.Int, reflect.Int64:
			kind, val = prometheus.GaugeValue, float64(fv.Int())
		default:
			continue
		}
		name := "lattice_" + prefix + "_" + snake(sf.Name)
		if kind == prometheus.CounterValue {
			name += "_total"
		}
		d, ok := statDescs.Load(name)
		if !ok {
			d, _ = statDescs.LoadOrStore(name, prometheus.NewDesc(name, prefix+" "+sf.Name+" (see the "+prefix+" package's Stats).", nil, nil))
		}
		out = append(out, statField{desc: d.(*prometheus.Desc), kind: kind, value: val})
	}
	return out
}

// snake turns FragmentsMerged into fragments_merged and LSMBytes into
// lsm_bytes.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		upper := unicode.IsUpper(r)
		if upper && i > 0 {
			prev := rune(s[i-1])
			nextLower := i+1 < len(s) && unicode.IsLower(rune(s[i+1]))
			if unicode.IsLower(prev) || (unicode.IsUpper(prev) && nextLower) {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
