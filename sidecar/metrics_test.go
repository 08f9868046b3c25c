package sidecar

import (
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/store"
	dto "github.com/prometheus/client_model/go"
)

// Every field of store.Stats and gossip.Stats reaches /metrics: each
// field, set alone, moves exactly one metric of its table. A new field
// without a metric fails here.
func TestEveryStatHasAMetric(t *testing.T) {
	check := func(t *testing.T, zero any, values func(v any) []float64, names []string) {
		rt := reflect.TypeOf(zero)
		base := values(zero)
		for i := range rt.NumField() {
			v := reflect.New(rt).Elem()
			switch f := v.Field(i); f.Kind() {
			case reflect.Int, reflect.Int64:
				f.SetInt(7)
			case reflect.Uint64:
				f.SetUint(7)
			default:
				t.Fatalf("%s.%s: a %s; export it as a metric or say why not", rt, rt.Field(i).Name, f.Kind())
			}
			got := values(v.Interface())
			var moved []string
			for j := range got {
				if got[j] != base[j] {
					moved = append(moved, names[j])
				}
			}
			if len(moved) != 1 || got[slices.Index(names, moved[0])] != 7 {
				t.Errorf("%s.%s moves %q, want one metric at 7", rt, rt.Field(i).Name, moved)
			}
		}
		if len(names) != rt.NumField() {
			t.Errorf("%d metrics for the %d fields of %s", len(names), rt.NumField(), rt)
		}
	}
	t.Run("store", func(t *testing.T) {
		var names []string
		for _, m := range storeMetrics {
			names = append(names, descName(m.desc.String()))
		}
		check(t, store.Stats{}, func(v any) []float64 {
			var out []float64
			for _, m := range storeMetrics {
				out = append(out, m.value(v.(store.Stats)))
			}
			return out
		}, names)
	})
	t.Run("gossip", func(t *testing.T) {
		var names []string
		for _, m := range gossipMetrics {
			names = append(names, descName(m.desc.String()))
		}
		check(t, gossip.Stats{}, func(v any) []float64 {
			var out []float64
			for _, m := range gossipMetrics {
				out = append(out, m.value(v.(gossip.Stats)))
			}
			return out
		}, names)
	})
}

// descName digs the fqName out of a Desc's String form.
func descName(s string) string {
	_, rest, _ := strings.Cut(s, `fqName: "`)
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// A fresh agent exports every series it will ever have (the API's request
// counter, labelled by request, aside), each with a HELP text that says
// what it counts, and a 0 for every rejection reason.
func TestMetricsPresentFromStart(t *testing.T) {
	a := startAgent(t, nil)
	fams := gatherLattice(t, a)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
		if help := f.GetHelp(); len(help) < 20 || strings.Contains(help, "(see the") || strings.Contains(help, "Stats") {
			t.Errorf("%s: HELP %q does not say what it counts", f.GetName(), help)
		}
	}
	for _, name := range []string{"lattice_deltas_rejected_total", "lattice_parked", "lattice_parked_total", "lattice_members",
		"lattice_pending_apply", "lattice_propagation_delay_seconds", "lattice_gossip_rejected_peers_total", "lattice_apply_errors_total",
		"lattice_capture_errors_total", "lattice_store_clock_rejections_total", "lattice_loop_failing_seconds", "lattice_ready"} {
		if byName[name] == nil {
			t.Errorf("a fresh agent does not export %s", name)
		}
	}
	if f := byName["lattice_deltas_rejected_total"]; f != nil {
		var reasons []string
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				reasons = append(reasons, l.GetValue())
			}
			if m.GetCounter().GetValue() != 0 {
				t.Errorf("lattice_deltas_rejected_total %v = %v at start", m.GetLabel(), m.GetCounter().GetValue())
			}
		}
		slices.Sort(reasons)
		if want := []string{"clock_offset", "other", "too_large", "unknown_collection"}; !slices.Equal(reasons, want) {
			t.Errorf("lattice_deltas_rejected_total reasons %q, want %q", reasons, want)
		}
	}
}

// lattice_members counts the members that status lists, by state; this
// node is not one of them.
func TestMembersMetricMatchesStatus(t *testing.T) {
	a := startAgent(t, nil)
	b := startAgent(t, func(c *Config) { c.Node = "n2"; c.Join = []string{a.Node().Addr()} })
	waitFor(t, 10*time.Second, "n1 to see n2", func() bool { return len(a.Status().Members) == 1 })
	for _, ag := range []*Agent{a, b} {
		st := ag.Status()
		alive := 0
		for _, m := range st.Members {
			if m.State == "alive" {
				alive++
			}
		}
		var got = map[string]float64{}
		for _, f := range gatherLattice(t, ag) {
			if f.GetName() != "lattice_members" {
				continue
			}
			for _, m := range f.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		if got["alive"] != float64(alive) || got["failed"] != float64(len(st.Members)-alive) || alive != 1 {
			t.Errorf("%s: lattice_members %v; status lists %d members, %d alive", st.Node, got, len(st.Members), alive)
		}
	}
}

func gatherLattice(t *testing.T, a *Agent) []*dto.MetricFamily {
	t.Helper()
	fams, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.MetricFamily
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "lattice_") {
			out = append(out, f)
		}
	}
	return out
}

// docs/metrics.md lists every metric the agent exports, generated from
// the registry: a metric added, renamed or re-described in the code and not
// in the doc fails here. LATTICE_UPDATE_DOCS=1 rewrites the doc's table.
func TestMetricsDoc(t *testing.T) {
	// An http adapter, so that the metrics it exports are listed too; its
	// API answers every list with no records.
	api := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(api.Close)
	dsn := filepath.Join(t.TempDir(), "api.yaml")
	y := "preset: json-server\nbase_url: " + api.URL + "\ncollections:\n  contacts:\n    columns: {name: string}\n"
	if err := os.WriteFile(dsn, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, func(c *Config) {
		c.API.MetricsPublic = true
		c.Adapter = AdapterConfig{Kind: "http", DSN: dsn}
	})
	// One request, so that the API's labelled counter has a series.
	if r := do(t, a, "GET", "/healthz", "", ""); r.code != 200 {
		t.Fatalf("GET /healthz = %d", r.code)
	}
	var b strings.Builder
	b.WriteString("| metric | type | labels | what it counts |\n|---|---|---|---|\n")
	for _, f := range gatherLattice(t, a) {
		var labels []string
		if ms := f.GetMetric(); len(ms) > 0 {
			for _, l := range ms[0].GetLabel() {
				labels = append(labels, "`"+l.GetName()+"`")
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.GetName(), strings.ToLower(f.GetType().String()), strings.Join(labels, ", "), f.GetHelp())
	}
	table := b.String()

	const path, begin, end = "../docs/metrics.md", "<!-- metrics table: generated by TestMetricsDoc -->\n", "<!-- end of the generated table -->\n"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", path, begin, end)
	}
	if got := s[i+len(begin) : j]; got != table {
		if os.Getenv("LATTICE_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(s[:i+len(begin)]+table+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the table in %s", path)
			return
		}
		t.Errorf("%s is out of date with the code; run LATTICE_UPDATE_DOCS=1 go test -run TestMetricsDoc ./sidecar/ and commit it. Want:\n%s", path, table)
	}
}

// gaugeValue reads a gauge from the agent's registry; label, if not "",
// is the value of its one label.
func gaugeValue(t *testing.T, a *Agent, name, label string) float64 {
	t.Helper()
	for _, f := range gatherLattice(t, a) {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}
