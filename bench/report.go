package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// Report is what `lattice bench` measured: the machine, and per scenario
// the latencies or the throughput, with every raw sample. It is written as
// a table (WriteTable), JSON (WriteJSON) and an SVG plot (WriteSVG).
type Report struct {
	// Version is the Lattice version measured.
	Version string `json:"version"`
	// Time is when the run started.
	Time time.Time `json:"time"`
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
	// Nodes is the number of sidecars in each cluster.
	Nodes int `json:"nodes"`
	// Scenarios are in the order they ran.
	Scenarios []Scenario `json:"scenarios"`
}

// Machine describes the machine a report was measured on. Figures from a
// loaded machine are slower: Load says how busy it was when the run began.
type Machine struct {
	// OS and Arch are runtime.GOOS and runtime.GOARCH.
	OS   string `json:"os"`
	Arch string `json:"arch"`
	// CPUs is the number of logical CPUs.
	CPUs int `json:"cpus"`
	// Go is the Go version the binary was built with.
	Go string `json:"go"`
	// Load is the 1, 5 and 15 minute load average (Linux only).
	Load []float64 `json:"load,omitempty"`
}

// ThisMachine describes the running machine.
func ThisMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		for i := 0; i < 3 && i < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m.Load = append(m.Load, v)
		}
	}
	return m
}

// Scenario names.
const (
	ScenarioEndToEnd   = "end-to-end"
	ScenarioThroughput = "throughput"
)

// System names: what the sidecars sit beside.
const (
	SystemSQLite   = "sqlite"
	SystemAPI      = "api"
	SystemPostgres = "postgres"
)

// Scenario is one measurement: an end-to-end latency distribution or a
// throughput, on one kind of system.
type Scenario struct {
	// Name is ScenarioEndToEnd or ScenarioThroughput.
	Name string `json:"name"`
	// System is what the sidecars sat beside: SystemSQLite, SystemAPI or
	// SystemPostgres.
	System string `json:"system"`
	// Latency is set for an end-to-end scenario.
	Latency *Latencies `json:"latency,omitempty"`
	// Throughput is set for a throughput scenario.
	Throughput *ThroughputResult `json:"throughput,omitempty"`
}

// Title names the scenario in tables and plots: "end-to-end (sqlite)".
func (s Scenario) Title() string { return s.Name + " (" + s.System + ")" }

// Figure is one number of a report, as a table row.
type Figure struct {
	// Scenario is the scenario's Title.
	Scenario string `json:"scenario"`
	// Figure names the number: p50, p99, rows, ...
	Figure string  `json:"figure"`
	Value  float64 `json:"value"`
	// Unit is ms, rows/s, fields/s, rows, s, or empty for a count.
	Unit string `json:"unit"`
}

// Figures returns the report's numbers in table order: for a latency the
// percentiles, maximum and mean in milliseconds and the sample count; for a
// throughput the rates, the rows written and the seconds taken.
func (r *Report) Figures() []Figure {
	var out []Figure
	for _, s := range r.Scenarios {
		add := func(name string, v float64, unit string) {
			out = append(out, Figure{Scenario: s.Title(), Figure: name, Value: v, Unit: unit})
		}
		if l := s.Latency; l != nil {
			add("p50", l.P50ms, "ms")
			add("p90", l.P90ms, "ms")
			add("p99", l.P99ms, "ms")
			add("max", l.MaxMs, "ms")
			add("mean", l.MeanMs, "ms")
			add("samples", float64(l.Samples), "")
		}
		if t := s.Throughput; t != nil {
			add("rows", t.RowsPerSecond, "rows/s")
			add("fields", t.FieldsPerSec, "fields/s")
			add("written", float64(t.Rows), "rows")
			add("writing", t.WriteSeconds, "s")
			add("converged", t.TotalSeconds, "s")
		}
	}
	return out
}

// WriteTable prints the figures as a table: scenario, figure, value, unit.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tfigure\tvalue\tunit\t\n")
	last := ""
	for _, f := range r.Figures() {
		name := f.Scenario
		if name == last {
			name = ""
		}
		last = f.Scenario
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name, f.Figure, FormatValue(f.Value), f.Unit)
	}
	return errors.Wrap(tw.Flush(), "write table")
}

// FormatValue prints v with three significant digits, or as a whole number
// from 1000 on: 0.123, 4.56, 78.9, 12345.
func FormatValue(v float64) string {
	switch a := math.Abs(v); {
	case v == 0 || a >= 1000 || v == math.Trunc(v) && a < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// jsonReport is the JSON form: the report and its figures, so that scripts
// need not recompute them.
type jsonReport struct {
	*Report
	Figures []Figure `json:"figures"`
}

// WriteJSON writes the report as indented JSON, raw samples included, with
// the table's figures under "figures".
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return errors.Wrap(enc.Encode(jsonReport{r, r.Figures()}), "write json report")
}

// newReport starts a report for this machine.
func newReport(nodes int) *Report {
	return &Report{
		Version: sidecar.Version,
		Time:    time.Now().UTC().Truncate(time.Second),
		Machine: ThisMachine(),
		Nodes:   nodes,
	}
}
