package http

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// testConfig returns the config of the contacts collection of a
// json-server at base, with the state in a temporary directory.
func testConfig(t *testing.T, base, extra string) *Config {
	t.Helper()
	y := fmt.Sprintf(`
preset: json-server
base_url: %s
state: %s
rate: 1000
burst: 100
retries: 2
backoff: 20ms
poll_interval: 30ms
overlap: 1s
reconcile: 150ms
%s
collections:
  contacts:
    columns: {name: string, email: string, age: int}
`, base, filepath.Join(t.TempDir(), "state.db"), extra)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func openAdapter(t *testing.T, cfg *Config) *Adapter {
	t.Helper()
	a, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// collector is a capture sink that keeps every change and the last cursor.
type collector struct {
	mu      sync.Mutex
	changes []adapters.Change
	cursor  []byte
}

func (c *collector) sink(_ context.Context, b adapters.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes = append(c.changes, b.Changes...)

	if b.Cursor != nil {
		c.cursor = b.Cursor
	}
	return nil
}

func (c *collector) all() []adapters.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.changes)
}

// latest returns the last captured row of each key (nil: deleted).
func (c *collector) latest() map[crdt.Key]crdt.Row {
	out := map[crdt.Key]crdt.Row{}
	for _, ch := range c.all() {
		out[ch.Key] = ch.Row
	}
	return out
}

// capture runs Capture from cursor until the test ends; its error is sent
// on the returned channel.
func capture(t *testing.T, a *Adapter, cursor []byte, c *collector) (stop func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ch <- a.Capture(ctx, cursor, c.sink)
	}()
	stop = func() {
		cancel()
		<-finished
	}
	t.Cleanup(stop)
	return stop, ch
}

// waitFor waits until cond holds, failing t after 30s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stamper hands out strictly increasing updated-at values per record, as
// a client that stamps its writes must (two writes of one record in one
// millisecond would look like one).
type stamper struct {
	mu   sync.Mutex
	last map[string]int64
}

func (s *stamper) next(id string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]int64{}
	}
	u := max(time.Now().UnixMilli(), s.last[id]+1)
	s.last[id] = u
	return u
}

func contact(id, name, email string, age int, u int64) map[string]any {
	return map[string]any{"id": id, "name": name, "email": email, "age": age, "updatedAt": u}
}

// withID returns row with the ID column set to id.
func withID(id string, row crdt.Row) crdt.Row {
	row["id"] = crdt.String(id)
	return row
}

// sameRow compares a captured row with a server record's fields.
func sameRow(row crdt.Row, rec map[string]any) bool {
	return row != nil && row["name"].AsString() == rec["name"] && row["email"].AsString() == rec["email"] &&
		float64(row["age"].AsInt()) == rec["age"]
}

func TestIntegrationCaptureConcurrent(t *testing.T) {
	var st stamper
	seed := []map[string]any{}
	for i := range 5 {
		id := fmt.Sprintf("s%d", i)
		seed = append(seed, contact(id, "seed", id+"@x", i, st.next(id)))
	}
	s := startJSONServer(t, map[string][]map[string]any{"contacts": seed})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	var snap collector
	cur, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.all()); n != 5 {
		t.Fatalf("snapshot: %d rows, want 5", n)
	}
	var c collector
	capture(t, a, cur, &c)

	// Four clients write at once: creates and updates of their own
	// records, while capture polls.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []string
			for i := range 30 {
				if len(mine) == 0 || r.IntN(3) == 0 {
					id := fmt.Sprintf("w%d-%d", w, i)
					s.Do("POST", "/contacts", contact(id, "new", id+"@x", i, st.next(id)), 201, nil)
					mine = append(mine, id)
					continue
				}
				id := mine[r.IntN(len(mine))]
				s.Do("PUT", "/contacts/"+id, contact(id, fmt.Sprintf("v%d", i), id+"@x", i, st.next(id)), 200, nil)
			}
		}()
	}
	wg.Wait()
	server := s.Records("contacts")
	var missing string
	defer func() {
		if t.Failed() {
			t.Log(missing)
		}
	}()
	waitFor(t, "capture to reach the server's state", func() bool {
		latest := c.latest()
		for id, rec := range server {
			if !sameRow(latest[crdt.StringKey(id)], rec) && !strings.HasPrefix(id, "s") {
				missing = fmt.Sprintf("%s: captured %v, server %v", id, latest[crdt.StringKey(id)], rec)
				return false
			}
		}
		return true
	})
	// Nothing doubled: each (record, updated-at) reported once.
	seen := map[string]bool{}
	for _, ch := range c.all() {
		k := ch.Key.String() + "@" + ch.Committed.String()
		if seen[k] {
			t.Errorf("change %s reported twice: %v", k, ch.Row)
		}
		seen[k] = true
		if ch.Committed.IsZero() {
			t.Errorf("change %s without a commit time", ch.Key)
		}
	}
	// The seed records were not changed: snapshot only.
	for _, ch := range c.all() {
		if strings.HasPrefix(ch.Key.String(), "s") {
			t.Errorf("unchanged seed record %s captured", ch.Key)
		}
	}
	t.Logf("%d records, %d changes captured, requests %v", len(server), len(c.all()), a.Stats().Requests)
}

func TestIntegrationApplyEchoDeletes(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {
		contact("a", "Ann", "ann@x", 30, st.next("a")),
		contact("b", "Bob", "bob@x", 40, st.next("b")),
		contact("c", "Cy", "cy@x", 50, st.next("c")),
	}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	capture(t, a, cur, &c)

	row := func(name, email string, age int64) crdt.Row {
		return crdt.Row{"name": crdt.String(name), "email": crdt.String(email), "age": crdt.Int(age)}
	}
	writes := []adapters.Write{
		{Collection: "contacts", NewKey: crdt.StringKey("crm:1"), Row: row("Dee", "dee@x", 20)},
		{Collection: "contacts", Key: crdt.StringKey("a"), Row: withID("a", row("Ann B", "ann@x", 31))},
		{Collection: "contacts", Key: crdt.StringKey("b")},
		{Collection: "contacts", Key: crdt.StringKey("e"), Row: withID("e", row("Eve", "eve@x", 25))},
	}
	res, err := a.Apply(ctx, writes, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, ok := res.Generated[0]
	if !ok || len(res.Generated) != 1 {
		t.Fatalf("Generated = %v, want one key for write 0", res.Generated)
	}
	// Applied again (idempotent): the same record, no second one.
	res2, err := a.Apply(ctx, writes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Generated[0] != gen {
		t.Fatalf("second apply generated %s, want %s", res2.Generated[0], gen)
	}
	recs := s.Records("contacts")
	genID, _ := (&Collection{idKind: crdt.KindString}).idText(gen)
	if len(recs) != 4 || recs[genID]["name"] != "Dee" || recs["a"]["name"] != "Ann B" || recs["b"] != nil || recs["e"]["name"] != "Eve" {
		t.Fatalf("server holds %v", recs)
	}
	m, err := a.IDMap(ctx, "contacts")
	if err != nil || len(m) != 1 || m[gen] != crdt.StringKey("crm:1") {
		t.Fatalf("IDMap = %v, %v", m, err)
	}

	// A user deletes c and writes a: both reported (c by reconciliation),
	// and none of the adapter's own writes.
	s.Do("DELETE", "/contacts/c", nil, 200, nil)
	s.Do("PUT", "/contacts/a", contact("a", "Ann C", "ann@x", 32, st.next("a")), 200, nil)
	waitFor(t, "the user's delete and update", func() bool {
		l := c.latest()
		r, deleted := l[crdt.StringKey("c")]
		return deleted && r == nil && l[crdt.StringKey("a")]["name"].AsString() == "Ann C"
	})
	for _, ch := range c.all() {
		switch {
		case ch.Key == gen, ch.Key == crdt.StringKey("b"), ch.Key == crdt.StringKey("e"):
			t.Errorf("own write captured: %s %v", ch.Key, ch.Row)
		case ch.Key == crdt.StringKey("a") && ch.Row["name"].AsString() != "Ann C":
			t.Errorf("own write captured: %s %v", ch.Key, ch.Row)
		}
	}
}

func TestIntegrationRejectedRecordParked(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	row := func(name, email string) crdt.Row {
		return crdt.Row{"name": crdt.String(name), "email": crdt.String(email), "age": crdt.Int(1)}
	}
	_, err := a.Apply(ctx, []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey("a"), Row: withID("a", row("Ann 2", "ann@x"))},
		{Collection: "contacts", Key: crdt.StringKey("bad"), Row: withID("bad", row("Bad", "no-at-sign"))},
		{Collection: "contacts", Key: crdt.StringKey("ok"), Row: withID("ok", row("Ok", "ok@x"))},
	}, nil)
	re, ok := adapters.RowErrorOf(err)
	if !ok || !errors.Is(err, adapters.ErrBadRow) || re.Key != crdt.StringKey("bad") {
		t.Fatalf("Apply: %v, want a bad row naming bad", err)
	}
	if !strings.Contains(err.Error(), "email: must contain @") || !strings.Contains(err.Error(), "422") {
		t.Fatalf("error %q lacks the server's message", err)
	}
	if errors.Is(err, adapters.ErrUnavailable) {
		t.Fatal("a rejected record must not mark the system unavailable")
	}
	// The others flow: the engine applies them without the parked one.
	if _, err := a.Apply(ctx, []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey("a"), Row: withID("a", row("Ann 2", "ann@x"))},
		{Collection: "contacts", Key: crdt.StringKey("ok"), Row: withID("ok", row("Ok", "ok@x"))},
	}, nil); err != nil {
		t.Fatal(err)
	}
	recs := s.Records("contacts")
	if recs["a"]["name"] != "Ann 2" || recs["ok"]["name"] != "Ok" || recs["bad"] != nil {
		t.Fatalf("server holds %v", recs)
	}
}

func TestIntegrationServerRestart(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	_, done := capture(t, a, cur, &c)
	s.Stop()
	// Capture fails (the engine restarts it from its durable cursor).
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Capture with the server down returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Capture did not fail with the server down")
	}
	w := []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"),
		Row: crdt.Row{"id": crdt.String("a"), "name": crdt.String("Ann 2"), "email": crdt.String("ann@x"), "age": crdt.Int(31)}}}
	if _, err := a.Apply(ctx, w, nil); !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("Apply with the server down: %v, want ErrUnavailable", err)
	}
	s.Start()
	// The circuit opened while the server was down: writes fail at once,
	// marked unavailable, until its probe finds the server back.
	waitFor(t, "the write after the restart", func() bool {
		_, err := a.Apply(ctx, w, nil)
		if err != nil && !errors.Is(err, adapters.ErrUnavailable) {
			t.Fatal(err)
		}
		return err == nil
	})
	s.Do("POST", "/contacts", contact("u", "User", "u@x", 1, st.next("u")), 201, nil)
	var c2 collector
	capture(t, a, cur, &c2)
	waitFor(t, "the user's record after the restart", func() bool { return c2.latest()[crdt.StringKey("u")] != nil })
	if r, ok := c2.latest()[crdt.StringKey("a")]; ok {
		t.Errorf("own write captured after the restart: %v", r)
	}

	// A 429 with Retry-After: 1 is waited out, then the write succeeds.
	s.Throttle()
	start := time.Now()
	if _, err := a.Apply(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("Apply after a 429 took %s, want Retry-After's 1s", d)
	}
	if st := a.Stats(); st.Requests[429] < 1 || st.Requests[0] < 1 {
		t.Errorf("stats %+v: want a 429 and connection errors counted", st)
	}
}

func TestIntegrationRequestBudget(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {}})
	target, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The requests, counted at the server's door.
	var mu sync.Mutex
	var at []time.Time
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	const budget = 10
	cfg := testConfig(t, front.URL, "")
	cfg.Rate, cfg.Burst = budget, 1
	a := openAdapter(t, cfg)
	ctx := context.Background()
	for i := range 30 {
		id := fmt.Sprintf("r%d", i)
		s.Do("POST", "/contacts", contact(id, "x", id+"@x", i, st.next(id)), 201, nil)
	}
	var ws []adapters.Write
	for i := range 30 {
		id := fmt.Sprintf("r%d", i)
		ws = append(ws, adapters.Write{Collection: "contacts", Key: crdt.StringKey(id),
			Row: crdt.Row{"id": crdt.String(id), "name": crdt.String("y"), "email": crdt.String("r@x"), "age": crdt.Int(int64(i))}})
	}
	start := time.Now()
	if _, err := a.Apply(ctx, ws, nil); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 30 {
		t.Fatalf("%d requests at the server, want 30", len(at))
	}
	// In any window of one second, at most budget+burst requests.
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		if n > budget+1 {
			t.Fatalf("%d requests within 1s from request %d, budget %d/s", n, i, budget)
		}
	}
	rate := float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
	if rate > budget*1.05 {
		t.Fatalf("%.2f requests/s, budget %d", rate, budget)
	}
	if a.Stats().BudgetWaits == 0 {
		t.Error("no budget waits counted")
	}
	t.Logf("30 writes in %s: %.2f requests/s at the server under a budget of %d/s, %d budget waits",
		elapsed.Round(time.Millisecond), rate, budget, a.Stats().BudgetWaits)
}

func TestIntegrationCreateAfterCrash(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	// A create recorded its intent and reached the server, and the process
	// stopped before the pair was recorded.
	key := crdt.StringKey("crm:9")
	id, err := a.st.intent(ctx, "contacts", []byte(key), "feedc0de")
	if err != nil || id != "feedc0de" {
		t.Fatal(id, err)
	}
	s.Do("POST", "/contacts", contact(id, "Zed", "z@x", 9, st.next(id)), 201, nil)
	res, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", NewKey: key,
		Row: crdt.Row{"name": crdt.String("Zed"), "email": crdt.String("z@x"), "age": crdt.Int(9)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generated[0] != crdt.StringKey(id) {
		t.Fatalf("Generated = %v, want %s", res.Generated, id)
	}
	if recs := s.Records("contacts"); len(recs) != 1 {
		t.Fatalf("server holds %d records, want 1: %v", len(recs), recs)
	}
}

func TestIntegrationCursors(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	other := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	c1, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	s.Do("PUT", "/contacts/a", contact("a", "Ann 2", "ann@x", 30, st.next("a")), 200, nil)
	var c collector
	stop, _ := capture(t, a, c1, &c)
	waitFor(t, "a batch", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.cursor != nil })
	stop()
	c2 := c.cursor
	h, err := a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Compare(c1, c2) >= 0 || bytes.Compare(c2, h) >= 0 {
		t.Fatalf("cursors out of order: %x %x %x", c1, c2, h)
	}
	if err := other.Capture(ctx, c1, (&collector{}).sink); !errors.Is(err, adapters.ErrCursor) {
		t.Fatalf("foreign cursor: %v, want ErrCursor", err)
	}
	if err := a.Ack(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if err := a.Capture(ctx, c1, (&collector{}).sink); !errors.Is(err, adapters.ErrCursor) {
		t.Fatalf("discarded cursor: %v, want ErrCursor", err)
	}
	// Reopened on its state, the adapter continues from c2 and reports
	// nothing already reported.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openAdapter(t, a.cfg)
	s.Do("PUT", "/contacts/a", contact("a", "Ann 3", "ann@x", 30, st.next("a")), 200, nil)
	var c3 collector
	capture(t, b, c2, &c3)
	waitFor(t, "the update after reopening", func() bool { return c3.latest()[crdt.StringKey("a")]["name"].AsString() == "Ann 3" })
	var n atomic.Int32
	for _, ch := range c3.all() {
		if ch.Row["name"].AsString() == "Ann 2" {
			n.Add(1)
		}
	}
	if n.Load() != 0 {
		t.Fatal("a change before the cursor reported again")
	}
}

func TestIntegrationReconcileFindsUnstamped(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	capture(t, a, cur, &c)
	// A client that stamps nothing: no poll can see its record, the
	// full listing does, once; and its delete.
	s.Do("POST", "/contacts", map[string]any{"id": "n", "name": "No stamp", "email": "n@x", "age": 1}, 201, nil)
	waitFor(t, "the unstamped record", func() bool { return c.latest()[crdt.StringKey("n")] != nil })
	s.Do("DELETE", "/contacts/n", nil, 200, nil)
	waitFor(t, "its delete", func() bool {
		r, ok := c.latest()[crdt.StringKey("n")]
		return ok && r == nil
	})
	n := 0
	for _, ch := range c.all() {
		if ch.Key == crdt.StringKey("n") && ch.Row != nil {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("unstamped record reported %d times, want 1", n)
	}
}

// A user's change that capture has not taken yet is not overwritten: the
// write is deferred, and goes through once capture has taken the change;
// nor is a record the user deleted brought back.
func TestIntegrationApplyDefersUncapturedChange(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {
		contact("a", "Ann", "ann@x", 30, st.next("a")), contact("b", "Bob", "bob@x", 40, st.next("b"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	s.Do("PUT", "/contacts/a", contact("a", "Ann (user)", "ann@x", 30, st.next("a")), 200, nil)
	row := func(id, name string) crdt.Row {
		return crdt.Row{"id": crdt.String(id), "name": crdt.String(name), "email": crdt.String(id + "@x"), "age": crdt.Int(1)}
	}
	ws := []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey("a"), Row: row("a", "Ann (merged)")},
		{Collection: "contacts", Key: crdt.StringKey("b"), Row: row("b", "Bob (merged)")},
	}
	res, err := a.Apply(ctx, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("Deferred = %v, want [0]", res.Deferred)
	}
	recs := s.Records("contacts")
	if recs["a"]["name"] != "Ann (user)" || recs["b"]["name"] != "Bob (merged)" {
		t.Fatalf("server holds %v", recs)
	}
	var c collector
	capture(t, a, cur, &c)
	waitFor(t, "the user's change captured", func() bool { return c.latest()[crdt.StringKey("a")]["name"].AsString() == "Ann (user)" })
	waitFor(t, "the write to go through", func() bool {
		res, err := a.Apply(ctx, ws[:1], nil)
		return err == nil && len(res.Deferred) == 0
	})
	if got := s.Records("contacts")["a"]["name"]; got != "Ann (merged)" {
		t.Fatalf("a is %v", got)
	}

	// A delete that capture has not reported yet: an update must not
	// bring the record back.
	s.Do("DELETE", "/contacts/b", nil, 200, nil)
	res, err = a.Apply(ctx, ws[1:], nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Deferred, []int{0}) {
		t.Fatalf("Deferred = %v, want [0]", res.Deferred)
	}
	if recs := s.Records("contacts"); recs["b"] != nil {
		t.Fatalf("deleted record brought back: %v", recs["b"])
	}
	waitFor(t, "the delete captured", func() bool {
		r, ok := c.latest()[crdt.StringKey("b")]
		return ok && r == nil
	})
}
