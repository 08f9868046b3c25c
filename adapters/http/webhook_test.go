package http

import (
	"context"
	"encoding/hex"
	"fmt"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// secretFile writes the webhook secret into a private file.
func secretFile(t *testing.T, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(testSecret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// signedHeader returns the headers of a request signed at ts.
func signedHeader(secret string, ts time.Time, body string) nethttp.Header {
	h := nethttp.Header{}
	sec := strconv.FormatInt(ts.Unix(), 10)
	h.Set("X-Lattice-Timestamp", sec)
	h.Set("X-Lattice-Signature", "sha256="+hex.EncodeToString(Sign([]byte(secret), sec, []byte(body))))
	return h
}

// hookAdapter opens an adapter with webhooks on, over an API it never
// calls.
func hookAdapter(t *testing.T, base string) *Adapter {
	t.Helper()
	return openAdapter(t, testConfig(t, base, fmt.Sprintf("webhooks: {secret_file: %s}", secretFile(t, 0o600))))
}

func TestWebhookConfig(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1", "webhooks: {secret_file: /x}")
	if w := cfg.Webhooks; w.Window != 5*time.Minute || w.SignatureHeader != "X-Lattice-Signature" || w.TimestampHeader != "X-Lattice-Timestamp" {
		t.Fatalf("defaults not filled: %+v", w)
	}
	for _, tc := range []struct{ yaml, key string }{
		{`webhooks: {window: 1m}`, "config webhooks.secret_file"},
		{`webhooks: {secret_file: /x, window: -1s}`, "config webhooks.window"},
		{`webhooks: {secret_file: /x, window: 10ms}`, "config webhooks.window"},
		{`webhooks: {secret_file: /x, signature_header: X-A, timestamp_header: x-a}`, "config webhooks.signature_header"},
	} {
		_, err := ParseConfig([]byte("base_url: http://x\npreset: json-server\ncollections: {c: {columns: {a: int}}}\n" + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v, want an error naming %s", tc.yaml, err, tc.key)
		}
	}
	// The secret file must be private, as the other secret files.
	p := secretFile(t, 0o644)
	_, err := Open(context.Background(), testConfig(t, "http://127.0.0.1:1", "webhooks: {secret_file: "+p+"}"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "config webhooks.secret_file") ||
		!strings.Contains(strings.Join(errors.GetAllHints(err), ";"), "chmod 600 "+p) {
		t.Fatalf("Open with a 0644 secret file: %v, hints %q", err, errors.GetAllHints(err))
	}
}

// Only a request signed with the secret, with a timestamp within the
// window, seen for the first time, is accepted; nothing else wakes
// capture.
func TestWebhookAuthentication(t *testing.T) {
	a := hookAdapter(t, "http://127.0.0.1:1")
	now := time.Now()
	body := `{"collection":"contacts","id":"a","action":"update"}`
	good := signedHeader(testSecret, now, body)
	tampered := signedHeader(testSecret, now.Add(-time.Second), body)
	tampered.Set("X-Lattice-Timestamp", strconv.FormatInt(now.Unix(), 10))
	noPrefix := signedHeader(testSecret, now.Add(-2*time.Second), body)
	noPrefix.Set("X-Lattice-Signature", strings.TrimPrefix(noPrefix.Get("X-Lattice-Signature"), "sha256="))
	for _, tc := range []struct {
		name   string
		header nethttp.Header
		body   string
	}{
		{"unsigned", nethttp.Header{}, body},
		{"wrong secret", signedHeader("another secret", now, body), body},
		{"body changed", good, `{"collection":"contacts","id":"b","action":"update"}`},
		{"timestamp changed", tampered, body},
		{"stale", signedHeader(testSecret, now.Add(-6*time.Minute), body), body},
		{"from the future", signedHeader(testSecret, now.Add(6*time.Minute), body), body},
		{"no sha256= prefix", noPrefix, body},
	} {
		if err := a.Webhook(tc.header, []byte(tc.body)); !errors.Is(err, adapters.ErrWebhookRefused) {
			t.Errorf("%s: %v, want refused", tc.name, err)
		}
	}
	if len(a.hooks.wake) != 0 {
		t.Fatal("a refused request woke capture")
	}
	if err := a.Webhook(good, []byte(body)); err != nil {
		t.Fatalf("signed request: %v", err)
	}
	if len(a.hooks.wake) != 1 {
		t.Fatal("an accepted update did not wake capture")
	}
	<-a.hooks.wake
	if err := a.Webhook(good, []byte(body)); !errors.Is(err, adapters.ErrWebhookRefused) {
		t.Errorf("replay: %v, want refused", err)
	}
	if len(a.hooks.wake) != 0 {
		t.Fatal("a replay woke capture")
	}
	// The same event sent again, signed anew, is a new request.
	if err := a.Webhook(signedHeader(testSecret, now.Add(time.Second), body), []byte(body)); err != nil {
		t.Errorf("the event signed again: %v", err)
	}
	if s := a.WebhookStats(); s.Refused != 8 || s.Accepted != 2 {
		t.Errorf("stats %+v, want 8 refused and 2 accepted", s)
	}
}

// An authenticated body that is not an event is malformed; an event for a
// collection the adapter does not sync is ignored; many events wake
// capture once.
func TestWebhookEvents(t *testing.T) {
	a := hookAdapter(t, "http://127.0.0.1:1")
	now := time.Now()
	send := func(body string) error {
		now = now.Add(time.Millisecond) // distinct signatures need distinct bodies or seconds
		return a.Webhook(signedHeader(testSecret, now, body), []byte(body))
	}
	for _, body := range []string{`not json`, `{"collection":"contacts","id":"a","action":"upsert"}`,
		`{"collection":"contacts","action":"update"}`, `{"id":"a","action":"update"}`,
		`{"collection":"contacts","id":"a","action":"update"} {}`, `{"collection":"contacts","id":1.5,"action":"delete"}`} {
		if err := send(body); !errors.Is(err, adapters.ErrWebhookMalformed) {
			t.Errorf("%s: %v, want malformed", body, err)
		}
	}
	if len(a.hooks.wake) != 0 {
		t.Fatal("a malformed event woke capture")
	}
	if err := send(`{"collection":"other","id":"a","action":"delete"}`); err != nil {
		t.Fatalf("an event for another collection: %v", err)
	}
	if len(a.hooks.wake) != 0 || len(a.hooks.takeDeletes()) != 0 {
		t.Fatal("an event for another collection was taken")
	}
	for i := range 50 {
		action := []string{"create", "update", "delete"}[i%3]
		if err := send(fmt.Sprintf(`{"collection":"contacts","id":"r%d","action":%q}`, i, action)); err != nil {
			t.Fatal(err)
		}
	}
	if len(a.hooks.wake) != 1 {
		t.Fatalf("%d wakes pending, want 1", len(a.hooks.wake))
	}
	if d := a.hooks.takeDeletes(); len(d["contacts"]) != 16 {
		t.Fatalf("%d deletes pending, want 16", len(d["contacts"]))
	}
	if s := a.WebhookStats(); s.Malformed != 6 || s.Ignored != 1 || s.Accepted != 51 {
		t.Errorf("stats %+v", s)
	}
}

// An adapter without webhooks says so.
func TestWebhookOff(t *testing.T) {
	a := openAdapter(t, testConfig(t, "http://127.0.0.1:1", ""))
	if err := a.Webhook(nethttp.Header{}, []byte(`{}`)); !errors.Is(err, adapters.ErrNoWebhooks) {
		t.Fatalf("Webhook without webhooks: %v", err)
	}
}

// The signature docs/http.md computes with openssl, for the same secret,
// timestamp and body.
func TestWebhookSignatureVector(t *testing.T) {
	got := hex.EncodeToString(Sign([]byte(testSecret), "1700000000", []byte(`{"collection":"contacts","id":"a1","action":"update"}`)))
	if want := "2c48a721d5f8c16df6a083c1189ab904f3ef234af548a7def7bdb19f645a63b0"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

// The receiver's cost per request: the signature checked, the replay
// window kept, the event read and capture woken.
func BenchmarkWebhook(b *testing.B) {
	dir := b.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secret, []byte(testSecret), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig([]byte(fmt.Sprintf(`preset: json-server
base_url: http://127.0.0.1:1
state: %s
webhooks: {secret_file: %s}
collections: {contacts: {columns: {name: string}}}
`, filepath.Join(dir, "state.db"), secret)))
	if err != nil {
		b.Fatal(err)
	}
	a, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	now := time.Now()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		body := []byte(`{"collection":"contacts","id":"r` + strconv.Itoa(i) + `","action":"update"}`)
		if err := a.Webhook(signedHeader(testSecret, now, string(body)), body); err != nil {
			b.Fatal(err)
		}
		select {
		case <-a.hooks.wake:
		default:
		}
		if i%50_000 == 0 {
			a.hooks.mu.Lock()
			clear(a.hooks.seen) // stay under maxSeenSignatures
			a.hooks.mu.Unlock()
		}
	}
}
