package sidecar

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
)

// hookAdapter is a SQLite adapter that receives webhooks: the request's
// X-Verdict header says what Webhook answers, and the bodies it accepted
// are kept.
type hookAdapter struct {
	adapters.Adapter
	mu       sync.Mutex
	accepted []string
}

func (h *hookAdapter) Webhook(header http.Header, body []byte) error {
	switch header.Get("X-Verdict") {
	case "ok":
		h.mu.Lock()
		h.accepted = append(h.accepted, string(body))
		h.mu.Unlock()
		return nil
	case "refuse":
		return errors.Mark(errors.New("signature mismatch: secret reason"), adapters.ErrWebhookRefused)
	case "malformed":
		return errors.Mark(errors.New("action: secret reason"), adapters.ErrWebhookMalformed)
	case "off":
		return adapters.ErrNoWebhooks
	}
	return errors.New("unexpected")
}

// startHookAgent starts an agent with a token over a hookAdapter.
func startHookAgent(t *testing.T) (*Agent, *hookAdapter) {
	t.Helper()
	n := newSQLiteNode(t, t.TempDir(), "n1", nil, 0, func(c *Config) { c.API.MaxBodyBytes = 256 })
	n.cfg.API.TokenFile = writeFile(t, "api.token", "0123456789abcdef-token\n")
	scfg := sqlite.DefaultConfig()
	scfg.Path = n.path
	real, err := sqlite.Open(context.Background(), scfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookAdapter{Adapter: real}
	a, err := Start(context.Background(), n.cfg, Options{Logger: testLogger(t), Adapter: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	waitFor(t, 10*time.Second, "ready", a.Ready)
	return a, h
}

func postHook(t *testing.T, a *Agent, verdict, contentType, body string) rawResp {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+a.APIAddr()+"/v1/webhooks", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Verdict", verdict)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, resp.Body)
	return rawResp{resp.StatusCode, b.String()}
}

// POST /v1/webhooks needs no API token: the adapter authenticates the
// request. Its answer is a status and nothing of the adapter's reasons.
func TestWebhookEndpoint(t *testing.T) {
	a, h := startHookAgent(t)
	for _, c := range []struct {
		verdict, contentType, body string
		want                       int
	}{
		{"ok", "application/json", `{"collection":"customers","id":"1","action":"update"}`, http.StatusNoContent},
		{"refuse", "application/json", `{}`, http.StatusUnauthorized},
		{"malformed", "application/json", `{}`, http.StatusBadRequest},
		{"off", "application/json", `{}`, http.StatusNotFound},
		{"ok", "application/json", `{"pad":"` + strings.Repeat("x", 300) + `"}`, http.StatusRequestEntityTooLarge},
		{"ok", "text/plain", `{}`, http.StatusUnsupportedMediaType},
	} {
		r := postHook(t, a, c.verdict, c.contentType, c.body)
		if r.code != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.verdict, c.contentType, r.code, c.want, r.body)
		}
		if strings.Contains(r.body, "secret reason") {
			t.Errorf("%s: the answer tells why: %s", c.verdict, r.body)
		}
	}
	h.mu.Lock()
	got := strings.Join(h.accepted, "\n")
	h.mu.Unlock()
	if want := `{"collection":"customers","id":"1","action":"update"}`; got != want {
		t.Errorf("accepted bodies %q, want %q", got, want)
	}
	for result, want := range map[string]float64{"accepted": 1, "refused": 1, "malformed": 2, "no_receiver": 1} {
		if got := webhookCount(t, a, result); got != want {
			t.Errorf("lattice_webhooks_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	// The other routes still need the token.
	if r := do(t, a, "GET", "/v1/status", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("GET /v1/status without a token: %d", r.code)
	}
}

// A node whose adapter receives no webhooks answers 404.
func TestWebhookNoReceiver(t *testing.T) {
	a := startAgent(t, nil)
	if r := do(t, a, "POST", "/v1/webhooks", "", `{"collection":"c","id":"1","action":"update"}`); r.code != http.StatusNotFound {
		t.Errorf("POST /v1/webhooks: %d, want 404: %s", r.code, r.body)
	}
}

// webhookCount reads lattice_webhooks_total{result}.
func webhookCount(t *testing.T, a *Agent, result string) float64 {
	t.Helper()
	for _, f := range gatherLattice(t, a) {
		if f.GetName() != "lattice_webhooks_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no lattice_webhooks_total{result=%q}", result)
	return 0
}
