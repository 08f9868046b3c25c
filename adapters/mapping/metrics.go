package mapping

import (
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/prometheus/client_golang/prometheus"
)

// Collectors returns the metrics of the system's adapter
// (adapters.MetricsExporter), none when it exports none: the wrapper adds
// no metrics of its own here (its guard's counts are Stats).
func (w *Adapter) Collectors() []prometheus.Collector {
	if e, ok := w.inner.(adapters.MetricsExporter); ok {
		return e.Collectors()
	}
	return nil
}

var _ adapters.MetricsExporter = (*Adapter)(nil)
