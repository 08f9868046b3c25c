package http

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar"
)

// requests returns how many requests the adapter has sent.
func requests(a *Adapter) int64 {
	var n int64
	for _, c := range a.Stats().Requests {
		n += c
	}
	return n
}

// With an hour between polls and between reconciliations, only a webhook
// can explain a change that arrives: an update and a create arrive by the
// immediate poll a signed event wakes, a delete by the read that confirms
// it. A request with a bad signature, a stale timestamp or a replayed
// signature is refused and sends no request to the API.
func TestIntegrationWebhookCapture(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {
		contact("a", "Ann", "ann@x", 30, st.next("a")), contact("b", "Bob", "bob@x", 40, st.next("b"))}})
	cfg := testConfig(t, s.URL, fmt.Sprintf("webhooks: {secret_file: %s}", secretFile(t, 0o600)))
	cfg.PollInterval, cfg.Reconcile = time.Hour, time.Hour
	a := openAdapter(t, cfg)
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	before := requests(a)
	var c collector
	capture(t, a, cur, &c)
	// Capture's first poll, then an hour's wait.
	waitFor(t, "the first poll", func() bool { return requests(a) == before+1 })

	send := func(id, action string) (nethttp.Header, []byte, time.Time) {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"collection":"contacts","id":%q,"action":%q}`, id, action))
		h := signedHeader(testSecret, time.Now(), string(body))
		start := time.Now()
		if err := a.Webhook(h, body); err != nil {
			t.Fatalf("%s %s: %v", action, id, err)
		}
		return h, body, start
	}
	row := func(id string) (crdt.Row, bool) {
		r, ok := c.latest()[crdt.StringKey(id)]
		return r, ok
	}

	s.Do("PUT", "/contacts/a", contact("a", "Ann B", "ann@x", 31, st.next("a")), 200, nil)
	h, body, start := send("a", "update")
	waitFor(t, "the update", func() bool { r, _ := row("a"); return crdt.Equal(r["name"], crdt.String("Ann B")) })
	t.Logf("update captured %s after its webhook", time.Since(start).Round(time.Millisecond))

	s.Do("POST", "/contacts", contact("c", "Cy", "cy@x", 5, st.next("c")), 201, nil)
	_, _, start = send("c", "create")
	waitFor(t, "the create", func() bool { r, _ := row("c"); return crdt.Equal(r["name"], crdt.String("Cy")) })
	t.Logf("create captured %s after its webhook", time.Since(start).Round(time.Millisecond))

	// Refused requests trigger nothing: b's change is not fetched.
	s.Do("PUT", "/contacts/b", contact("b", "Bob B", "bob@x", 41, st.next("b")), 200, nil)
	waitFor(t, "capture idle", func() bool { return len(a.hooks.wake) == 0 })
	reqs, wakes := requests(a), a.WebhookStats().Wakes
	bbody := []byte(`{"collection":"contacts","id":"b","action":"update"}`)
	bad := signedHeader(testSecret, time.Now(), string(bbody))
	bad.Set("X-Lattice-Signature", "sha256="+hex.EncodeToString(Sign([]byte("not the secret"), bad.Get("X-Lattice-Timestamp"), bbody)))
	stale := signedHeader(testSecret, time.Now().Add(-10*time.Minute), string(bbody))
	for name, req := range map[string]struct {
		h nethttp.Header
		b []byte
	}{"bad signature": {bad, bbody}, "stale": {stale, bbody}, "replay": {h, body}} {
		if err := a.Webhook(req.h, req.b); !errors.Is(err, adapters.ErrWebhookRefused) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if len(a.hooks.wake) != 0 || a.WebhookStats().Wakes != wakes || requests(a) != reqs {
		t.Fatalf("refused requests woke capture: %d pending, wakes %d then %d, requests %d then %d",
			len(a.hooks.wake), wakes, a.WebhookStats().Wakes, reqs, requests(a))
	}
	if r, _ := row("b"); crdt.Equal(r["name"], crdt.String("Bob B")) {
		t.Fatal("b's change was captured without a webhook")
	}
	_, _, start = send("b", "update")
	waitFor(t, "b's update", func() bool { r, _ := row("b"); return crdt.Equal(r["name"], crdt.String("Bob B")) })
	t.Logf("update captured %s after its webhook", time.Since(start).Round(time.Millisecond))

	// A delete, confirmed by a read, reported at once and forgotten once
	// an Ack covers it (until then a capture from an earlier cursor
	// reports it again).
	s.Do("DELETE", "/contacts/b", nil, 200, nil)
	_, _, start = send("b", "delete")
	waitFor(t, "the delete", func() bool { r, ok := row("b"); return ok && r == nil })
	t.Logf("delete captured %s after its webhook", time.Since(start).Round(time.Millisecond))
	if _, known, err := a.st.knownAt(ctx, "contacts", "b"); err != nil || !known {
		t.Fatalf("b forgotten before its delete was acknowledged: %v %v", known, err)
	}
	c.mu.Lock()
	ackTo := c.cursor
	c.mu.Unlock()
	if err := a.Ack(ctx, ackTo); err != nil {
		t.Fatal(err)
	}
	if _, known, err := a.st.knownAt(ctx, "contacts", "b"); err != nil || known {
		t.Fatalf("b still known after its delete was acknowledged: %v %v", known, err)
	}
	// A delete announced for a record the server still holds, or one the
	// adapter never knew, reports nothing.
	n := len(c.all())
	send("a", "delete")
	send("zz", "delete")
	s.Do("PUT", "/contacts/c", contact("c", "Cy B", "cy@x", 6, st.next("c")), 200, nil)
	send("c", "update")
	waitFor(t, "c's update", func() bool { r, _ := row("c"); return crdt.Equal(r["name"], crdt.String("Cy B")) })
	for _, ch := range c.all()[n:] {
		if ch.Row == nil {
			t.Errorf("delete of %s reported", ch.Key)
		}
	}
	if s := a.WebhookStats(); s.Deletes != 1 || s.Refused != 3 {
		t.Errorf("webhook stats %+v, want 1 delete and 3 refused", s)
	}
	t.Logf("webhook stats %+v, requests %v", a.WebhookStats(), a.Stats().Requests)
}

// Two sidecars, one over json-server's API with webhooks on and an hour
// between polls, one over SQLite: changes in the API reach the SQLite
// table by signed webhooks sent to the sidecar's own API (POST
// /v1/webhooks, no API token), deletes included; bad requests get 401.
func TestIntegrationWebhookEndToEnd(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	dir := t.TempDir()
	apiCfg := filepath.Join(dir, "crm-api.yaml")
	y := fmt.Sprintf(`preset: json-server
base_url: %s
rate: 50
burst: 5
poll_interval: 1h
reconcile: 1h
webhooks: {secret_file: %s}
collections:
  contacts:
    columns: {name: string, email: string, age: int}
`, s.URL, secretFile(t, 0o600))
	if err := os.WriteFile(apiCfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	crmAdapter, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "web.db")
	db := sqliteContacts(t, dbPath)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	start := func(name string, join []string, ad sidecar.AdapterConfig, adp adapters.Adapter) *sidecar.Agent {
		a, err := sidecar.Start(context.Background(), sidecar.Config{
			Node: name, Data: filepath.Join(dir, name+"-store"), Bind: "127.0.0.1:0", Join: join,
			API: sidecar.APIConfig{Addr: "127.0.0.1:0", TokenFile: writeSecret(t, "0123456789abcdef-token")}, Adapter: ad,
		}, sidecar.Options{Logger: log, Adapter: adp})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		waitFor(t, name+" ready", a.Ready)
		return a
	}
	crm := start("crm", nil, sidecar.AdapterConfig{Kind: Kind, DSN: apiCfg}, crmAdapter)
	start("web", []string{crm.Node().Addr()}, sidecar.AdapterConfig{Kind: "sqlite", DSN: dbPath, PollInterval: 5 * time.Millisecond}, nil)
	// The snapshot's two reads, then capture's first poll.
	waitFor(t, "crm's first poll", func() bool { return requests(crmAdapter) >= 3 })
	dbRow := func(id string) string {
		var out string
		if err := db.QueryRow(`SELECT name || '|' || age FROM contacts WHERE id = ?`, id).Scan(&out); err != nil {
			return "<none>"
		}
		return out
	}
	waitFor(t, "the snapshot in SQLite", func() bool { return dbRow("a") == "Ann|30" })

	post := func(h nethttp.Header, body []byte) int {
		t.Helper()
		req, err := nethttp.NewRequest("POST", "http://"+crm.APIAddr()+"/v1/webhooks", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = h.Clone()
		req.Header.Set("Content-Type", "application/json")
		resp, err := nethttp.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	hook := func(id, action string) (nethttp.Header, []byte) {
		t.Helper()
		body := []byte(fmt.Sprintf(`{"collection":"contacts","id":%q,"action":%q}`, id, action))
		h := signedHeader(testSecret, time.Now(), string(body))
		if code := post(h, body); code != nethttp.StatusNoContent {
			t.Fatalf("webhook %s %s: %d, want 204", action, id, code)
		}
		return h, body
	}
	arrives := func(id, want string) {
		t.Helper()
		start := time.Now()
		waitFor(t, id+" = "+want+" in SQLite", func() bool { return dbRow(id) == want })
		t.Logf("%s = %s in SQLite %s after the webhook", id, want, time.Since(start).Round(time.Millisecond))
	}

	s.Do("PUT", "/contacts/a", contact("a", "Ann B", "ann@x", 31, st.next("a")), 200, nil)
	h, body := hook("a", "update")
	arrives("a", "Ann B|31")
	s.Do("POST", "/contacts", contact("c", "Cy", "cy@x", 5, st.next("c")), 201, nil)
	hook("c", "create")
	arrives("c", "Cy|5")

	stale := signedHeader(testSecret, time.Now().Add(-time.Hour), string(body))
	bad := signedHeader("wrong", time.Now(), string(body))
	for name, req := range map[string]nethttp.Header{"replay": h, "stale": stale, "bad signature": bad, "unsigned": {}} {
		if code := post(req, body); code != nethttp.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	if code := post(signedHeader(testSecret, time.Now(), "[1]"), []byte("[1]")); code != nethttp.StatusBadRequest {
		t.Errorf("malformed event: %d, want 400", code)
	}

	s.Do("DELETE", "/contacts/c", nil, 200, nil)
	hook("c", "delete")
	arrives("c", "<none>")
	// The delete is counted once its batch's bookkeeping is done, which
	// may be after the other node applied it.
	waitFor(t, "the webhook's delete counted", func() bool { return crmAdapter.WebhookStats().Deletes >= 1 })
	if got := crmAdapter.WebhookStats(); got.Refused != 4 || got.Malformed != 1 || got.Deletes != 1 {
		t.Errorf("webhook stats %+v", got)
	}
}

// writeSecret writes a private file holding s.
func writeSecret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret-"+strconv.Itoa(len(s)))
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sqliteContacts creates a SQLite database at path with the contacts table
// the other node syncs.
func sqliteContacts(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, email TEXT, age INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return db
}
