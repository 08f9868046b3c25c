package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

func testState(t *testing.T) *state {
	t.Helper()
	st, err := openState(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.close() })
	return st
}

// A capture's bookkeeping runs after its sink, outside the lock that
// orders it with Apply: what it records must not undo an Apply made
// meanwhile, whose updated-at is newer.
func TestKnownNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	st := testState(t)
	if err := st.addKnown(ctx, "c", 5, map[string]int64{"a": 100, "b": 100}); err != nil {
		t.Fatal(err)
	}
	if err := st.wrote(ctx, "c", "a", 6, 200, []byte(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	// A poll numbered before the Apply finishes its bookkeeping after it.
	if err := st.addKnown(ctx, "c", 5, map[string]int64{"a": 150, "b": 150}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int64{"a": 200, "b": 150} {
		if u, ok, err := st.knownAt(ctx, "c", id); err != nil || !ok || u != want {
			t.Errorf("known %s at %d (%v, %v), want %d", id, u, ok, err, want)
		}
	}
	// Nor bring back a record an Apply deleted after the poll's number.
	if err := st.deleted(ctx, "c", "b", 7); err != nil {
		t.Fatal(err)
	}
	if err := st.addKnown(ctx, "c", 6, map[string]int64{"b": 160}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.knownAt(ctx, "c", "b"); err != nil || ok {
		t.Errorf("b known again after the Apply deleted it (%v)", err)
	}
}

// A delete reported by reconciliation is forgotten when an Ack covers it,
// but not when an Apply wrote the record again after the report: marks
// carry the delete until a poll reads the record again.
func TestAckKeepsRecordAppliedAfterItsDelete(t *testing.T) {
	ctx := context.Background()
	st := testState(t)
	if err := st.addKnown(ctx, "c", 1, map[string]int64{"x": 100, "y": 100}); err != nil {
		t.Fatal(err)
	}
	// Reconciliation reports both deleted at 3.
	if err := st.putLast(ctx, "c", 3, map[string][]byte{"x": nil, "y": nil}); err != nil {
		t.Fatal(err)
	}
	gone := map[string]*mark{"c": {Gone: map[string]bool{"x": true, "y": true}}}
	if err := st.putMarks(ctx, 3, gone); err != nil {
		t.Fatal(err)
	}
	// An Apply writes x again at 5; a poll's marks at 6 still say both gone.
	if err := st.wrote(ctx, "c", "x", 5, 300, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.putMarks(ctx, 6, gone); err != nil {
		t.Fatal(err)
	}
	if err := st.ack(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.knownAt(ctx, "c", "x"); !ok {
		t.Error("x, written by an Apply after its delete was reported, is no longer known")
	}
	if _, ok, _ := st.knownAt(ctx, "c", "y"); ok {
		t.Error("y, deleted and acknowledged, is still known")
	}
}

// Sequence numbers are never handed out twice, across restarts: a capture
// after a restart comes after the position of an Apply before it, even
// when no capture stored its marks since.
func TestIntegrationSequenceSurvivesRestart(t *testing.T) {
	var stp stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, stp.next("a"))}})
	cfg := testConfig(t, s.URL, "")
	ctx := context.Background()
	a, err := Open(ctx, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Snapshot(ctx, (&collector{}).sink); err != nil {
		t.Fatal(err)
	}
	var pos []byte
	for range 3 {
		res, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"),
			Row: withID("a", crdt.Row{"name": crdt.String("Ann B"), "email": crdt.String("ann@x"), "age": crdt.Int(31)})}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pos = res.Position
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b := openAdapter(t, cfg)
	head, err := b.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Compare(head, pos) <= 0 {
		t.Fatalf("Head after a restart %x, not after the Apply's position %x before it", head, pos)
	}
}

// A record stamped ahead of this clock does not carry the high-water mark
// with it: a later change of another record is still polled.
func TestIntegrationFutureStampDoesNotBlindPolls(t *testing.T) {
	var stp stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, stp.next("a"))}})
	a := openAdapter(t, testConfig(t, s.URL, ""))
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	capture(t, a, cur, &c)
	s.Do("POST", "/contacts", contact("f", "Future", "f@x", 1, time.Now().Add(time.Hour).UnixMilli()), 201, nil)
	waitFor(t, "the record stamped ahead", func() bool { return c.latest()[crdt.StringKey("f")] != nil })
	s.Do("PUT", "/contacts/a", contact("a", "Ann B", "ann@x", 31, stp.next("a")), 200, nil)
	waitFor(t, "a later change of another record", func() bool {
		r := c.latest()[crdt.StringKey("a")]
		return r != nil && r["name"].AsString() == "Ann B"
	})
}

// A create the server answers 2xx without a record the adapter can name
// is set aside, not retried: a retry would make another record.
func TestCreateResponseWithoutRecordIsParked(t *testing.T) {
	var posts int
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.Method == nethttp.MethodPost {
			posts++
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"status":"created"}`))
			return
		}
		_ = json.NewEncoder(w).Encode([]any{})
	}))
	t.Cleanup(srv.Close)
	cfg, err := ParseConfig([]byte("base_url: " + srv.URL + "\nstate: " + filepath.Join(t.TempDir(), "s.db") + `
rate: 1000
collections:
  contacts:
    updated: updatedAt
    since_param: updatedAt_gte
    paging: page
    page_param: _page
    limit_param: _limit
    columns: {name: string}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := openAdapter(t, cfg)
	_, err = a.Apply(context.Background(), []adapters.Write{{Collection: "contacts", NewKey: crdt.StringKey("erp:1"), Row: crdt.Row{"name": crdt.String("Ann")}}}, nil)
	if !errors.Is(err, adapters.ErrBadRow) || posts != 1 {
		t.Fatalf("err %v after %d creates, want a bad row after 1", err, posts)
	}
	if h := strings.Join(errors.GetAllHints(err), "; "); !strings.Contains(h, "look for it there") {
		t.Fatalf("hint %q", h)
	}
}

// The values of the query parameters the config sends with every list
// request never show in errors: an API key may sit there.
func TestErrorsHideQueryValues(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":"bad"}`))
	}))
	t.Cleanup(srv.Close)
	cfg, err := ParseConfig([]byte("preset: json-server\nbase_url: " + srv.URL + "\nstate: " + filepath.Join(t.TempDir(), "s.db") + `
rate: 1000
retries: 1
backoff: 1ms
collections:
  contacts:
    query: {api_key: s3cret}
    columns: {name: string}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := openAdapter(t, cfg)
	_, err = a.Snapshot(context.Background(), (&collector{}).sink)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "api_key=REDACTED") {
		t.Fatalf("err = %v", err)
	}
	srv.Close()
	_, err = a.Snapshot(context.Background(), (&collector{}).sink)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("transport error %v", err)
	}
}

func TestRetryableStatuses(t *testing.T) {
	for code, want := range map[int]bool{400: false, 404: false, 408: true, 409: false, 422: false, 423: true, 425: true, 429: true, 500: true, 503: true} {
		if got := retryable(code); got != want {
			t.Errorf("retryable(%d) = %v, want %v", code, got, want)
		}
	}
}

// A login the server cannot serve (5xx after the retries) is the system's
// outage: the writes wait, and the hint does not send the user to the
// credentials.
func TestLoginOutageIsNoCredentialError(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.WriteHeader(nethttp.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(fmt.Appendf(nil, `
base_url: %s
preset: json-server
state: %s
retries: 1
backoff: 1ms
auth: {login: {path: /login, identity: sync, password_file: %s}}
collections: {c: {columns: {a: int}}}
`, srv.URL, filepath.Join(t.TempDir(), "s.db"), pw))
	if err != nil {
		t.Fatal(err)
	}
	a := openAdapter(t, cfg)
	_, err = a.Head(context.Background())
	if !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("err %v, want unavailable", err)
	}
	if h := strings.Join(errors.GetAllHints(err), "; "); strings.Contains(h, "password") {
		t.Fatalf("hint %q points at the credentials", h)
	}
}

func TestGoneStatuses(t *testing.T) {
	for code, want := range map[int]bool{404: true, 410: true, 400: false, 500: false} {
		if got := isGone(code); got != want {
			t.Errorf("isGone(%d) = %v, want %v", code, got, want)
		}
	}
}
