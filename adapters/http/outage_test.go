package http

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

// A sidecar over json-server through an outage: the server stops, writes
// made through the sidecar's API queue, the circuit opens so that only
// its probes reach the down server, and once the server is back every
// write lands. The requests are counted at the server's door, a proxy that
// answers 502 while the server is down.
func TestIntegrationOutageQueuesAndCircuit(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = nil
	proxy.ErrorHandler = func(w nethttp.ResponseWriter, r *nethttp.Request, err error) { w.WriteHeader(nethttp.StatusBadGateway) }
	front := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		hits.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	dir := t.TempDir()
	apiCfg := filepath.Join(dir, "crm-api.yaml")
	y := fmt.Sprintf(`preset: json-server
base_url: %s
rate: 200
burst: 10
retries: 1
backoff: 10ms
circuit: {failures: 3, cooldown: 200ms, max_cooldown: 800ms}
poll_interval: 50ms
overlap: 1s
reconcile: 300ms
collections:
  contacts:
    columns: {name: string, email: string, age: int}
`, front.URL)
	if err := os.WriteFile(apiCfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError + 4}))
	a, err := sidecar.Start(context.Background(), sidecar.Config{
		Node: "crm", Data: filepath.Join(dir, "store"), Bind: "127.0.0.1:0",
		API: sidecar.APIConfig{Addr: "127.0.0.1:0"}, Adapter: sidecar.AdapterConfig{Kind: Kind, DSN: apiCfg},
		// The engine's own backoff, bounded so that the writes land soon
		// after the server is back.
		Apply: sidecar.ApplyConfig{MaxBackoff: time.Second},
	}, sidecar.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	waitFor(t, "the sidecar ready", a.Ready)
	put := func(key, name string) {
		t.Helper()
		body := fmt.Sprintf(`{"name": %q, "email": "%s@x", "age": 1}`, name, key)
		req, _ := nethttp.NewRequest("PUT", "http://"+a.APIAddr()+"/v1/records/contacts/"+key, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %d %s", key, resp.StatusCode, b)
		}
	}
	get := func(path string) string {
		t.Helper()
		resp, err := nethttp.Get("http://" + a.APIAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	put("k0", "before")
	waitFor(t, "the first write to land", func() bool { return s.Records("contacts")["k0"] != nil })

	s.Stop()
	const n = 20
	for i := range n {
		put(fmt.Sprintf("k%d", i+1), "during")
	}
	// The circuit opens after three failed attempts; from then on only a
	// probe per cooldown (200ms doubling to 800ms) reaches the door.
	// The sidecar exports the adapter's metrics.
	waitFor(t, "the circuit to open", func() bool { return strings.Contains(get("/metrics"), "\nlattice_http_circuit_state 2\n") })
	before := hits.Load()
	outage := 3 * time.Second
	deadline := time.Now().Add(outage)
	for time.Now().Before(deadline) {
		put("k1", "during again") // the queue keeps taking writes
		time.Sleep(50 * time.Millisecond)
	}
	during := hits.Load() - before
	// 3s of cooldowns of 200, 400, 800, 800, 800ms: about five probes,
	// each with at most one retry.
	if during > 12 {
		t.Fatalf("%d requests reached the down server in %s with the circuit open, want a few probes", during, outage)
	}
	t.Logf("%d requests reached the door in %s of outage with the circuit open", during, outage)

	s.Start()
	back := time.Now()
	waitFor(t, "every write to land", func() bool {
		recs := s.Records("contacts")
		for i := range n {
			key := fmt.Sprintf("k%d", i+1)
			want := "during"
			if key == "k1" {
				want = "during again"
			}
			if recs[key] == nil || recs[key]["name"] != want {
				return false
			}
		}
		return recs["a"] != nil && recs["k0"] != nil
	})
	t.Logf("every write landed %s after the server was back", time.Since(back).Round(time.Millisecond))
	m := get("/metrics")
	// Nothing was set aside: a 502 after the retries is the system's
	// state, not the record's.
	for _, want := range []string{"lattice_http_circuit_state 0", `lattice_http_requests_total{code="5xx"}`, "lattice_http_circuit_opens_total",
		"\nlattice_parked 0\n", "\nlattice_parked_total 0\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
