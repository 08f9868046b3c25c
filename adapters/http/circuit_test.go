package http

import (
	"context"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// flakyServer answers 503 while down, else an empty list, and counts the
// requests that reach it.
type flakyServer struct {
	*httptest.Server
	down     atomic.Bool
	hits     atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
	hold     chan struct{} // when not nil, requests wait on it
}

func newFlakyServer(t *testing.T) *flakyServer {
	f := &flakyServer{}
	f.Server = httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		f.hits.Add(1)
		n := f.inFlight.Add(1)
		defer f.inFlight.Add(-1)
		for {
			p := f.peak.Load()
			if n <= p || f.peak.CompareAndSwap(p, n) {
				break
			}
		}
		if f.hold != nil {
			<-f.hold
		}
		if f.down.Load() {
			w.WriteHeader(nethttp.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "[]")
	}))
	t.Cleanup(f.Close)
	return f
}

func budgetAdapter(t *testing.T, base, extra string) *Adapter {
	t.Helper()
	y := fmt.Sprintf(`
preset: json-server
base_url: %s
state: %s
rate: 10000
burst: 100
retries: 2
backoff: 1ms
%s
collections:
  contacts:
    columns: {name: string}
`, base, filepath.Join(t.TempDir(), "state.db"), extra)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return openAdapter(t, cfg)
}

// While the circuit is open, requests fail at once marked unavailable and
// none reaches the server; one probe per cooldown goes through, the
// cooldown doubling up to its cap; the first probe that succeeds closes
// the circuit.
func TestCircuitStopsHammering(t *testing.T) {
	f := newFlakyServer(t)
	a := budgetAdapter(t, f.URL, "circuit: {failures: 3, cooldown: 50ms, max_cooldown: 200ms}")
	ctx := context.Background()
	get := func() error { _, err := a.c.do(ctx, "GET", f.URL+"/contacts", nil); return err }
	f.down.Store(true)

	// The first call tries three times (retries: 2) and opens the circuit.
	if err := get(); !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("down: %v, want ErrUnavailable", err)
	}
	if got := f.hits.Load(); got != 3 {
		t.Fatalf("%d attempts before the circuit opened, want 3", got)
	}
	if st, _, _ := a.c.breaker.snapshot(); st != circuitOpen {
		t.Fatalf("circuit %s, want open", st)
	}
	// Calls while open fail at once.
	start := time.Now()
	for range 100 {
		err := get()
		if !errors.Is(err, adapters.ErrUnavailable) {
			t.Fatalf("open: %v, want ErrUnavailable", err)
		}
		if !errors.Is(err, errCircuitOpen) && time.Since(start) < 50*time.Millisecond {
			t.Fatalf("open: %v, want the circuit's error", err)
		}
	}
	// A client that keeps calling for a second while the server is down:
	// only probes reach it, one per cooldown (50, 100, 200, 200, ...ms).
	before := f.hits.Load()
	deadline := time.Now().Add(time.Second)
	calls := 0
	for time.Now().Before(deadline) {
		_ = get()
		calls++
		time.Sleep(time.Millisecond) // a busy client, not a wait for a condition
	}
	probes := f.hits.Load() - before
	if probes < 2 || probes > 8 {
		t.Fatalf("%d requests reached the down server in 1s of %d calls, want a few probes", probes, calls)
	}
	_, opens, refused := a.c.breaker.snapshot()
	t.Logf("1s of %d calls against a down server: %d reached it, %d refused at once, circuit opened %d times", calls, probes, refused, opens)

	// Back up: the next probe closes the circuit and requests flow.
	f.down.Store(false)
	waitFor(t, "the circuit to close", func() bool { return get() == nil })
	if st, _, _ := a.c.breaker.snapshot(); st != circuitClosed {
		t.Fatalf("circuit %s, want closed", st)
	}
	for range 10 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
}

// A 4xx is an answer: the server is up, and the circuit stays closed.
func TestCircuitIgnoresRejections(t *testing.T) {
	b := newBreaker(CircuitConfig{Failures: 2, Cooldown: time.Hour, MaxCooldown: time.Hour}, clock.Real{})
	ctx := context.Background()
	for range 10 {
		if _, err := b.allow(); err != nil {
			t.Fatal(err)
		}
		b.record(classifyAttempt(ctx, &statusError{code: 422}, true), false)
		b.record(classifyAttempt(ctx, &statusError{code: 429}, false), false)
	}
	b.record(classifyAttempt(ctx, &statusError{code: 429}, true), false)
	b.record(classifyAttempt(ctx, &statusError{code: 500}, false), false)
	if _, err := b.allow(); !errors.Is(err, errCircuitOpen) {
		t.Fatalf("after a final 429 and a 500: %v, want the circuit open", err)
	}
}

// At most concurrency requests are in flight at once; the others wait.
func TestConcurrencyLimit(t *testing.T) {
	f := newFlakyServer(t)
	f.hold = make(chan struct{})
	a := budgetAdapter(t, f.URL, "concurrency: 3")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := a.c.do(context.Background(), "GET", f.URL+"/contacts", nil); err != nil {
				t.Error(err)
			}
		})
	}
	waitFor(t, "three requests at the server", func() bool { return f.inFlight.Load() == 3 })
	waitFor(t, "the others to wait for a slot", func() bool { return a.c.slotWaits.Load() == 7 })
	if n := f.inFlight.Load(); n != 3 {
		t.Fatalf("%d requests in flight, want 3", n)
	}
	close(f.hold)
	wg.Wait()
	if p := f.peak.Load(); p != 3 {
		t.Fatalf("peak %d requests in flight, want 3", p)
	}
}

// A write that meets a 5xx after every retry waits: it is marked
// unavailable, never parked as a bad row.
func TestApplyUnavailableIsNotABadRow(t *testing.T) {
	f := newFlakyServer(t)
	f.down.Store(true)
	a := budgetAdapter(t, f.URL, "circuit: {failures: 100}")
	_, err := a.Apply(context.Background(), []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"),
		Row: crdt.Row{"id": crdt.String("a"), "name": crdt.String("x")}}}, nil)
	if !errors.Is(err, adapters.ErrUnavailable) || errors.Is(err, adapters.ErrBadRow) {
		t.Fatalf("Apply against a 503: %v, want unavailable and not a bad row", err)
	}
}
