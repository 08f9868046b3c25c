package adapters

import "github.com/prometheus/client_golang/prometheus"

// MetricsExporter is implemented by adapters that export metrics of their
// own (the http adapter's requests, budget and circuit). The sidecar
// registers the collectors in its Prometheus registry when it starts, once;
// adapters/mapping forwards them from the adapter it wraps. Metric names
// begin with lattice_<adapter kind>_ and their labels take values from a
// bounded set (code classes, names from the adapter's config), never from
// what the system sends.
type MetricsExporter interface {
	// Collectors returns the adapter's collectors. They read the adapter's
	// state at scrape time and must be safe for concurrent use.
	Collectors() []prometheus.Collector
}
