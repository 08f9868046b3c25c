package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// sampleReport builds a report from made-up measurements: two latency
// distributions and two throughputs.
func sampleReport() *Report {
	rng := rand.New(rand.NewPCG(1, 2))
	lat := func(n int, base time.Duration) *Latencies {
		ds := make([]time.Duration, n)
		for i := range ds {
			ds[i] = base + time.Duration(rng.ExpFloat64()*float64(base)/2)
		}
		l := Summarise(ds)
		return &l
	}
	return &Report{
		Version: "test",
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Machine: Machine{OS: "linux", Arch: "amd64", CPUs: 2, Go: "go1.26", Load: []float64{1.5, 1, 0.5}},
		Nodes:   3,
		Scenarios: []Scenario{
			{Name: ScenarioEndToEnd, System: SystemSQLite, Latency: lat(50, 2*time.Millisecond)},
			{Name: ScenarioThroughput, System: SystemSQLite, Throughput: &ThroughputResult{Rows: 90000, Fields: 180000, WriteSeconds: 3, TotalSeconds: 4.5, FieldsPerSec: 40000, RowsPerSecond: 20000}},
			{Name: ScenarioEndToEnd, System: SystemPostgres, Latency: lat(30, 5*time.Millisecond)},
			{Name: ScenarioThroughput, System: SystemPostgres, Throughput: &ThroughputResult{Rows: 60000, Fields: 120000, WriteSeconds: 3, TotalSeconds: 5, FieldsPerSec: 24000, RowsPerSecond: 12000}},
		},
	}
}

// svgElements parses doc as XML and counts its elements by name and class
// ("path.cdf"); it fails t if doc is not well-formed or its root is not an
// svg element.
func svgElements(t *testing.T, doc []byte) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	counts := map[string]int{}
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v\n%s", err, doc)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 && (e.Name.Local != "svg" || e.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", e.Name)
			}
			depth++
			counts[e.Name.Local]++
			for _, a := range e.Attr {
				if a.Name.Local == "class" {
					counts[e.Name.Local+"."+a.Value]++
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if counts["svg"] != 1 {
		t.Fatalf("%d svg elements, want 1", counts["svg"])
	}
	return counts
}

func TestReportWriters(t *testing.T) {
	tests := []struct {
		name       string
		report     *Report
		cdfs, bars int
		table      []string // substrings of the table
	}{
		{
			name:   "full",
			report: sampleReport(),
			cdfs:   2,
			bars:   2,
			table:  []string{"scenario", "end-to-end (sqlite)", "throughput (postgres)", "rows/s", "20000", "12000", "samples"},
		},
		{
			name:   "empty",
			report: &Report{Version: "test", Nodes: 3},
			table:  []string{"scenario"},
		},
		{
			name: "one sample, zero throughput, markup in names",
			report: &Report{Version: "<&>", Nodes: 2, Scenarios: []Scenario{
				{Name: ScenarioEndToEnd, System: "a<b>&c", Latency: &Latencies{Samples: 1, P50ms: 3, P99ms: 3, Raw: []float64{3}}},
				{Name: ScenarioThroughput, System: SystemAPI, Throughput: &ThroughputResult{}},
			}},
			cdfs:  1,
			bars:  1,
			table: []string{"end-to-end (a<b>&c)", "throughput (api)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.report
			var svg, js, table bytes.Buffer
			if err := r.WriteSVG(&svg); err != nil {
				t.Fatal(err)
			}
			counts := svgElements(t, svg.Bytes())
			if got := counts["path.cdf"]; got != tt.cdfs {
				t.Errorf("%d CDF paths, want %d", got, tt.cdfs)
			}
			if got := counts["rect.bar"]; got != tt.bars {
				t.Errorf("%d bars, want %d", got, tt.bars)
			}

			if err := r.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			var back struct {
				Report
				Figures []Figure `json:"figures"`
			}
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatalf("json does not decode: %v\n%s", err, js.Bytes())
			}
			want := r.Figures()
			if len(back.Figures) != len(want) {
				t.Fatalf("json holds %d figures, want %d", len(back.Figures), len(want))
			}
			for i := range want {
				if back.Figures[i] != want[i] {
					t.Errorf("figure %d: got %+v, want %+v", i, back.Figures[i], want[i])
				}
			}
			if len(back.Scenarios) != len(r.Scenarios) {
				t.Fatalf("json holds %d scenarios, want %d", len(back.Scenarios), len(r.Scenarios))
			}
			for i, s := range r.Scenarios {
				b := back.Scenarios[i]
				if s.Latency != nil && (b.Latency == nil || len(b.Latency.Raw) != len(s.Latency.Raw) || b.Latency.P99ms != s.Latency.P99ms) {
					t.Errorf("scenario %d: latency %+v did not survive json: %+v", i, s.Latency, b.Latency)
				}
				if s.Throughput != nil && (b.Throughput == nil || *b.Throughput != *s.Throughput) {
					t.Errorf("scenario %d: throughput %+v did not survive json: %+v", i, s.Throughput, b.Throughput)
				}
			}
			if back.Version != r.Version || back.Nodes != r.Nodes || !back.Time.Equal(r.Time) || back.Machine.CPUs != r.Machine.CPUs {
				t.Errorf("json header %+v, want %+v", back.Report, *r)
			}

			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.table {
				if !strings.Contains(table.String(), s) {
					t.Errorf("table lacks %q:\n%s", s, table.String())
				}
			}
			// Header plus one line per figure.
			if got, want := strings.Count(table.String(), "\n"), 1+len(r.Figures()); got != want {
				t.Errorf("table has %d lines, want %d:\n%s", got, want, table.String())
			}
		})
	}
}

func TestReportFigures(t *testing.T) {
	r := sampleReport()
	got := map[string]Figure{}
	for _, f := range r.Figures() {
		got[f.Scenario+"/"+f.Figure] = f
	}
	l := r.Scenarios[0].Latency
	for key, want := range map[string]Figure{
		"end-to-end (sqlite)/p50":       {Value: l.P50ms, Unit: "ms"},
		"end-to-end (sqlite)/p99":       {Value: l.P99ms, Unit: "ms"},
		"end-to-end (sqlite)/samples":   {Value: 50},
		"throughput (sqlite)/rows":      {Value: 20000, Unit: "rows/s"},
		"throughput (postgres)/fields":  {Value: 24000, Unit: "fields/s"},
		"throughput (postgres)/written": {Value: 60000, Unit: "rows"},
	} {
		f, ok := got[key]
		if !ok {
			t.Errorf("no figure %s", key)
			continue
		}
		if f.Value != want.Value || f.Unit != want.Unit {
			t.Errorf("%s = %v %s, want %v %s", key, f.Value, f.Unit, want.Value, want.Unit)
		}
	}
}

func TestFormatValue(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.1234, "0.123"}, {4.567, "4.57"}, {78.91, "78.9"}, {123.45, "123.5"},
		{200, "200"}, {12345.6, "12346"}, {0.99, "0.99"}, {-2.5, "-2.5"},
	} {
		if got := FormatValue(tt.v); got != tt.want {
			t.Errorf("FormatValue(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ v, want float64 }{
		{0, 1}, {-3, 1}, {0.7, 1}, {1, 1}, {1.1, 2}, {3, 5}, {21775, 50000}, {100000, 100000}, {100001, 200000},
	} {
		if got := niceCeil(tt.v); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestRun runs Run small with SQLite databases and with the API as the
// system, and checks that the report holds both scenarios with plausible
// figures.
func TestRun(t *testing.T) {
	for _, sqlite := range []bool{true, false} {
		system := SystemAPI
		if sqlite {
			system = SystemSQLite
		}
		t.Run(system, func(t *testing.T) {
			var progress bytes.Buffer
			r, err := Run(context.Background(), RunOptions{
				Nodes: 3, Samples: 5, Duration: 200 * time.Millisecond, SQLite: sqlite,
				Dir: t.TempDir(), Logger: testLogger(t), Progress: &progress,
			})
			if err != nil {
				t.Fatalf("%+v", err)
			}
			if len(r.Scenarios) != 2 {
				t.Fatalf("%d scenarios, want 2: %+v", len(r.Scenarios), r.Scenarios)
			}
			e, tp := r.Scenarios[0], r.Scenarios[1]
			if e.Title() != ScenarioEndToEnd+" ("+system+")" || e.Latency == nil || e.Latency.Samples != 5 || e.Latency.P50ms <= 0 {
				t.Errorf("end-to-end scenario %+v", e)
			}
			if tp.Title() != ScenarioThroughput+" ("+system+")" || tp.Throughput == nil || tp.Throughput.Rows == 0 || tp.Throughput.RowsPerSecond <= 0 {
				t.Errorf("throughput scenario %+v", tp)
			}
			if got := strings.Count(progress.String(), "\n"); got != 2 {
				t.Errorf("%d progress lines, want 2:\n%s", got, progress.String())
			}
			var svg bytes.Buffer
			if err := r.WriteSVG(&svg); err != nil {
				t.Fatal(err)
			}
			svgElements(t, svg.Bytes())
			t.Logf("end-to-end %+v", *e.Latency)
			t.Logf("throughput %+v", *tp.Throughput)
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []RunOptions{
		{Nodes: 1},
		{Postgres: []string{"postgres://localhost/one"}},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) succeeded", o)
		}
	}
}
