package sidecar

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's own Prometheus metrics; the store's and gossip's
// counters are exported by statsCollector at scrape time. Every public name
// is written out here, not derived from a Go name; docs/metrics.md is
// generated from the registry (TestMetricsDoc fails when it drifts).
type metrics struct {
	localFragments    prometheus.Counter
	receivedFragments prometheus.Counter
	mergedFragments   prometheus.Counter
	rejected          *prometheus.CounterVec
	propagation       prometheus.Histogram
	appliedRows       prometheus.Counter
	applyDeferred     prometheus.Counter
	applyErrors       prometheus.Counter
	applyLatency      prometheus.Histogram
	captureErrors     prometheus.Counter
	badRows           prometheus.Counter
	parked            prometheus.Counter
	parkedSkipped     prometheus.Counter
	apiRequests       *prometheus.CounterVec
	apiLatency        prometheus.Histogram
	conflicts         *prometheus.CounterVec
	webhooks          *prometheus.CounterVec

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

// countConflict counts one logged conflict under bounded labels: a
// collection the schema lists or the system holds keeps its name, and so
// does a field the schema lists or the system's table has; any other name
// (one that only a peer or an API client chose) counts as _other, and so
// does every pair past maxConflictSeries.
func (a *Agent) countConflict(collection, fieldName, rule string) {
	m := a.m
	coll, field := otherLabel, otherLabel
	if known, fields := a.knownLabels(collection); known {
		coll = collection
		switch {
		case fieldName == "":
			field = "_record" // an update against a delete
		case fields[fieldName]:
			field = fieldName
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

// knownLabels reports whether the schema lists a collection or the system
// holds it, and the fields either names.
func (a *Agent) knownLabels(collection string) (bool, map[string]bool) {
	known := false
	fields := map[string]bool{}
	for _, c := range a.schema.Collections() {
		if c.Name == collection {
			known = true
			for f := range c.Fields {
				fields[f] = true
			}
		}
	}
	if cat := a.catalog(); cat != nil {
		if m, err := cat.Lookup(collection); err == nil && m.Synced {
			known = true
			for f := range m.Kinds {
				fields[f] = true
			}
		}
	}
	return known, fields
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
		applyDeferred:     f("apply_deferred_total", "Merged records not written yet because the system held a newer change to them that capture had not taken; each is applied once it has."),
		applyErrors:       f("apply_errors_total", "Apply batches the system failed (each retried with backoff)."),
		captureErrors:     f("capture_errors_total", "Capture interruptions: each restarts from the last durable cursor."),
		badRows:           f("bad_rows_total", "Captured changes refused as malformed or not fitting their field policy."),
		parked:            f("parked_total", "Times a record was parked: the system refused it and it was set aside for an operator (lattice_parked counts those parked now)."),
		parkedSkipped:     f("parked_skipped_total", "Parked records an operator skipped: dropped from the parked list without being applied (the merged state stays)."),
	}
	// The mapping's guard (adapters/mapping), 0 on a node without a
	// mapping.
	guard := func(get func(mapping.Stats) int64) func() float64 {
		return func() float64 {
			if a.mapped == nil {
				return 0
			}
			return float64(get(a.mapped.Stats()))
		}
	}
	a.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "lattice", Name: "mapping_loops_total",
			Help: "Merged records the mapping refused to write because they would never settle (the mapping changes them on every round trip, or the system did not keep the same row written repeatedly); each is parked, naming the fields."},
			guard(func(s mapping.Stats) int64 { return s.Loops })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "lattice", Name: "mapping_lossy_total",
			Help: "Merged records written through a mapping that does not carry their values back exactly (normalised once, then settled)."},
			guard(func(s mapping.Stats) int64 { return s.Lossy })))
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "deltas_rejected_total",
		Help: "Received record fragments refused, by reason: clock_offset (a timestamp too far ahead), unknown_collection, too_large, other."}, []string{"reason"})
	// Every reason from the start, so that rate() and alerts see a 0, not
	// an absent series, before the first rejection.
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	m.propagation = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "propagation_delay_seconds",
		Help:    "Time from a change's origin stamp (its writer's clock) to its merge here, per merged fragment.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}})
	m.applyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "apply_batch_seconds",
		Help: "Time to write one batch of merged records into the system.", Buckets: prometheus.DefBuckets})
	m.apiRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "api_requests_total",
		Help: "HTTP API requests answered, by method (a known one or other), route (the matched pattern or other) and status code."},
		[]string{"method", "route", "code"})
	m.apiLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "api_request_seconds",
		Help: "Time to serve one HTTP API request, from its headers read to its answer written.", Buckets: prometheus.DefBuckets})
	m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "conflicts_total",
		Help: "Conflicts logged: merges that chose between writes whose loser the winner's writer had not seen, " +
			"by collection, field (_record for a delete against an update; _other past the label bound) and rule."},
		[]string{"collection", "field", "rule"})
	m.conflictSeries = map[[2]string]bool{}
	// A zero for every rule from the start, under _other, so that rate()
	// and alerts see the metric before the first conflict.
	for _, rule := range []string{"lww", "prefer", "max", "min", crdt.RuleDelete} {
		m.conflicts.WithLabelValues(otherLabel, otherLabel, rule)
	}
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "lattice", Name: "webhooks_total",
		Help: "Webhook requests (POST /v1/webhooks), by result: accepted, refused (not authenticated), malformed, no_receiver, failed."},
		[]string{"result"})
	for _, r := range webhookResults {
		m.webhooks.WithLabelValues(r)
	}
	a.reg.MustRegister(m.webhooks)
	a.reg.MustRegister(m.rejected, m.propagation, m.applyLatency, m.apiRequests, m.apiLatency, m.conflicts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		statsCollector{a})
	return m
}

// rejectReasons are the values of lattice_deltas_rejected_total's reason.
var rejectReasons = []string{"clock_offset", "unknown_collection", "too_large", "other"}

// statMetric is one metric read from a Stats value at scrape time.
type statMetric[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(S) float64
}

func counterOf[S any](name, help string, v func(S) uint64) statMetric[S] {
	return statMetric[S]{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, func(s S) float64 { return float64(v(s)) }}
}

func gaugeOf[S any, N int | int64 | uint64](name, help string, v func(S) N) statMetric[S] {
	return statMetric[S]{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, func(s S) float64 { return float64(v(s)) }}
}

// storeMetrics are the store's counters and sizes; each names the
// store.Stats field it reads (TestEveryStatHasAMetric keeps them complete).
var storeMetrics = []statMetric[store.Stats]{
	counterOf("lattice_store_merges_total", "Merge calls on the store: batches of remote fragments merged in one transaction.", func(s store.Stats) uint64 { return s.Merges }),
	counterOf("lattice_store_fragments_merged_total", "Remote fragments that changed the store's state.", func(s store.Stats) uint64 { return s.FragmentsMerged }),
	counterOf("lattice_store_fragments_unchanged_total", "Remote fragments the store already held: merged with no change.", func(s store.Stats) uint64 { return s.FragmentsUnchanged }),
	counterOf("lattice_store_fragments_rejected_total", "Remote fragments the store refused: clock offset, unknown collection, bad key, over a size limit.", func(s store.Stats) uint64 { return s.FragmentsRejected }),
	counterOf("lattice_store_clock_rejections_total", "Remote fragments refused because a timestamp was more than max_clock_offset ahead of this node's clock.", func(s store.Stats) uint64 { return s.ClockRejections }),
	counterOf("lattice_store_commit_times_ahead_total", "Captured changes whose commit time was too far ahead of this node's clock: stamped at capture time instead.", func(s store.Stats) uint64 { return s.CommitTimesAhead }),
	counterOf("lattice_store_local_txns_total", "Store transactions that recorded local changes (captured or written through the API).", func(s store.Stats) uint64 { return s.LocalTxns }),
	counterOf("lattice_store_local_changes_total", "Local changes that changed the store's state.", func(s store.Stats) uint64 { return s.LocalChanges }),
	counterOf("lattice_store_local_failed_total", "Local changes the store could not record (reported back to capture or the API).", func(s store.Stats) uint64 { return s.LocalFailed }),
	counterOf("lattice_store_effects_total", "Records put on the pending-apply queue for the local system.", func(s store.Stats) uint64 { return s.Effects }),
	counterOf("lattice_store_acked_total", "Pending-apply entries acknowledged after the system took them.", func(s store.Stats) uint64 { return s.Acked }),
	counterOf("lattice_store_commits_total", "Badger transactions committed by the store's writers.", func(s store.Stats) uint64 { return s.Commits }),
	counterOf("lattice_store_splits_total", "Extra transactions for batches too large for one.", func(s store.Stats) uint64 { return s.Splits }),
	counterOf("lattice_store_bytes_written_total", "Bytes of keys and values written by the store's writers.", func(s store.Stats) uint64 { return s.BytesWritten }),
	counterOf("lattice_store_gc_runs_total", "Value-log garbage collection rounds.", func(s store.Stats) uint64 { return s.GCRuns }),
	counterOf("lattice_store_gc_rewrites_total", "Value-log files rewritten by garbage collection.", func(s store.Stats) uint64 { return s.GCRewrites }),
	gaugeOf("lattice_store_pending", "Records on the pending-apply queue (as lattice_pending_apply).", func(s store.Stats) int { return s.Pending }),
	gaugeOf("lattice_store_parked", "Records parked now (as lattice_parked).", func(s store.Stats) int { return s.Parked }),
	gaugeOf("lattice_store_records", "Records in the store, deleted ones (tombstones) included.", func(s store.Stats) int { return s.Records }),
	counterOf("lattice_store_seq_total", "This replica's local sequence number: one per local change recorded, since the store was created.", func(s store.Stats) uint64 { return s.Seq }),
	gaugeOf("lattice_store_lsm_bytes", "Size of the store's LSM tree on disk, in bytes.", func(s store.Stats) int64 { return s.LSMBytes }),
	gaugeOf("lattice_store_vlog_bytes", "Size of the store's value log on disk, in bytes.", func(s store.Stats) int64 { return s.VLogBytes }),
}

// gossipMetrics are the gossip layer's counters; each names the
// gossip.Stats field it reads.
var gossipMetrics = []statMetric[gossip.Stats]{
	gaugeOf("lattice_gossip_members", "Peers alive, this node excluded (as status' gossip.members).", func(s gossip.Stats) int { return s.Members }),
	counterOf("lattice_gossip_deltas_sent_total", "Delta batches written to peers.", func(s gossip.Stats) uint64 { return s.DeltasSent }),
	counterOf("lattice_gossip_fragments_sent_total", "Record fragments in the delta batches written to peers.", func(s gossip.Stats) uint64 { return s.FragmentsSent }),
	counterOf("lattice_gossip_deltas_received_total", "Delta batches read from peers.", func(s gossip.Stats) uint64 { return s.DeltasReceived }),
	counterOf("lattice_gossip_fragments_received_total", "Record fragments in the delta batches read from peers.", func(s gossip.Stats) uint64 { return s.FragmentsReceived }),
	counterOf("lattice_gossip_fragments_merged_total", "Received fragments that changed this replica.", func(s gossip.Stats) uint64 { return s.FragmentsMerged }),
	counterOf("lattice_gossip_fragments_relayed_total", "Fragments forwarded to further peers (relay mode, larger clusters).", func(s gossip.Stats) uint64 { return s.FragmentsRelayed }),
	counterOf("lattice_gossip_fragments_dropped_total", "Fragments not delivered to a peer: queue full, peer gone, stream broken, oversized (anti-entropy repairs them).", func(s gossip.Stats) uint64 { return s.FragmentsDropped }),
	counterOf("lattice_gossip_fragments_rejected_total", "Fragments received but not merged: schema mismatch, clock offset, unknown collection.", func(s gossip.Stats) uint64 { return s.FragmentsRejected }),
	counterOf("lattice_gossip_bytes_in_total", "Bytes read on the data path (deltas, anti-entropy, bootstrap), framing included.", func(s gossip.Stats) uint64 { return s.BytesIn }),
	counterOf("lattice_gossip_bytes_out_total", "Bytes written on the data path (deltas, anti-entropy, bootstrap), framing included.", func(s gossip.Stats) uint64 { return s.BytesOut }),
	counterOf("lattice_gossip_syncs_total", "Anti-entropy sessions completed, as either side.", func(s gossip.Stats) uint64 { return s.Syncs }),
	counterOf("lattice_gossip_sync_failures_total", "Anti-entropy sessions that ended in an error.", func(s gossip.Stats) uint64 { return s.SyncFailures }),
	counterOf("lattice_gossip_syncs_refused_total", "Anti-entropy sessions refused because too many ran at once (either side).", func(s gossip.Stats) uint64 { return s.SyncsRefused }),
	counterOf("lattice_gossip_sync_records_sent_total", "Records sent by anti-entropy.", func(s gossip.Stats) uint64 { return s.SyncRecordsSent }),
	counterOf("lattice_gossip_sync_records_received_total", "Records received by anti-entropy.", func(s gossip.Stats) uint64 { return s.SyncRecordsReceived }),
	counterOf("lattice_gossip_sync_bytes_total", "Bytes of anti-entropy sessions, both directions.", func(s gossip.Stats) uint64 { return s.SyncBytes }),
	counterOf("lattice_gossip_bootstraps_total", "Bootstraps completed as the receiver (a new or wiped replica filled from a peer).", func(s gossip.Stats) uint64 { return s.Bootstraps }),
	counterOf("lattice_gossip_bootstrap_records_total", "Records received by bootstrap.", func(s gossip.Stats) uint64 { return s.BootstrapRecords }),
	counterOf("lattice_gossip_bootstrap_bytes_total", "Bytes of bootstrap chunks received.", func(s gossip.Stats) uint64 { return s.BootstrapBytes }),
	counterOf("lattice_gossip_bootstraps_served_total", "Bootstraps served to peers.", func(s gossip.Stats) uint64 { return s.BootstrapsServed }),
	counterOf("lattice_gossip_decode_errors_total", "Malformed, truncated or oversized messages from peers, dropped.", func(s gossip.Stats) uint64 { return s.DecodeErrors }),
	counterOf("lattice_gossip_rejected_peers_total", "Streams and members refused, every reason included: the lattice_gossip_handshakes_* reasons, unreadable node meta, and nodes memberlist refused for their gossip key or cluster label.", func(s gossip.Stats) uint64 { return s.RejectedPeers }),
	counterOf("lattice_gossip_handshakes_over_cap_total", "Incoming streams closed at once: gossip.max_handshakes or max_handshakes_per_host reached.", func(s gossip.Stats) uint64 { return s.HandshakesOverCap }),
	counterOf("lattice_gossip_handshake_timeouts_total", "Incoming streams not through their handshake within gossip.handshake_timeout.", func(s gossip.Stats) uint64 { return s.HandshakeTimeouts }),
	counterOf("lattice_gossip_handshakes_malformed_total", "Incoming streams with a bad preamble or an oversized or undecodable hello.", func(s gossip.Stats) uint64 { return s.HandshakesMalformed }),
	counterOf("lattice_gossip_handshakes_unauthenticated_total", "Incoming streams whose frames open with none of this node's keys, or encrypted on one side only.", func(s gossip.Stats) uint64 { return s.HandshakesUnauthenticated }),
	counterOf("lattice_gossip_handshakes_refused_total", "Incoming streams with a valid hello refused: label, name, membership, source host, per-peer caps.", func(s gossip.Stats) uint64 { return s.HandshakesRefused }),
	gaugeOf("lattice_gossip_schema_mismatches", "Peer and collection pairs whose merge rules differ from this node's now (their changes are not merged).", func(s gossip.Stats) int { return s.SchemaMismatches }),
	counterOf("lattice_gossip_merge_errors_total", "Merges of received deltas that failed in the store.", func(s gossip.Stats) uint64 { return s.MergeErrors }),
	counterOf("lattice_gossip_name_conflicts_total", "Times another node claimed a member's name.", func(s gossip.Stats) uint64 { return s.NameConflicts }),
}

var (
	pendingDesc = prometheus.NewDesc("lattice_pending_apply", "Records waiting to be written into the local system.", nil, nil)
	parkedDesc  = prometheus.NewDesc("lattice_parked", "Records parked now: refused by the system and set aside until retried or skipped.", nil, nil)
	failingDesc = prometheus.NewDesc("lattice_loop_failing_seconds", "How long the capture or apply loop has been failing without a success in between; 0 while it works (and on nodes without an adapter).", []string{"loop"}, nil)
	readyDesc   = prometheus.NewDesc("lattice_ready", "1 while the node is ready (what /readyz answers 200 for), else 0.", nil, nil)
	membersDesc = prometheus.NewDesc("lattice_members", "Peers this node knows, by state (alive, failed), this node excluded: the members of /v1/status and lattice status.", []string{"state"}, nil)
)

// statsCollector exports the store's and gossip's counters at scrape time.
type statsCollector struct{ a *Agent }

func (statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range storeMetrics {
		ch <- m.desc
	}
	for _, m := range gossipMetrics {
		ch <- m.desc
	}
	ch <- pendingDesc
	ch <- parkedDesc
	ch <- membersDesc
	ch <- failingDesc
	ch <- readyDesc
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	if a.store != nil {
		st := a.store.Stats()
		for _, m := range storeMetrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending))
		ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(st.Parked))
	}
	if a.node != nil {
		gs := a.node.Stats()
		for _, m := range gossipMetrics {
			ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(gs))
		}
		states := map[string]int{"alive": 0, "failed": 0}
		for _, m := range a.node.Members() {
			states[m.State]++
		}
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), state)
		}
	}
	now := a.clock.Now()
	for _, l := range []struct {
		name string
		st   *atomic.Pointer[loopState]
	}{{"capture", &a.captureSt}, {"apply", &a.applySt}} {
		var failing time.Duration
		if since := l.st.Load().failingSince(now); !since.IsZero() {
			failing = now.Sub(since)
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, failing.Seconds(), l.name)
	}
	ready := 0.0
	if a.ready.Load() && len(a.failing(now)) == 0 {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
}

// registerAdapterMetrics registers the metrics an adapter exports of its
// own (adapters.MetricsExporter; the mapping wrapper forwards them), once,
// at start.
func registerAdapterMetrics(reg prometheus.Registerer, adp adapters.Adapter) error {
	e, ok := adp.(adapters.MetricsExporter)
	if !ok {
		return nil
	}
	for _, c := range e.Collectors() {
		if err := reg.Register(c); err != nil {
			return errors.Wrap(err, "register the adapter's metrics")
		}
	}
	return nil
}
