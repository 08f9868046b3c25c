package sidecar

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn, ReplaceAttr: PlainErrors}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startAgent starts an API-only agent on loopback with free ports.
func startAgent(t testing.TB, mod func(*Config)) *Agent {
	t.Helper()
	cfg := Config{
		Node: "n1",
		Data: filepath.Join(t.TempDir(), "data"),
		Bind: "127.0.0.1:0",
		API:  APIConfig{Addr: "127.0.0.1:0"},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := Start(context.Background(), cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, 10*time.Second, "agent ready", a.Ready)
	return a
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type rawResp struct {
	code int
	body string
}

func do(t *testing.T, a *Agent, method, path, token, body string) rawResp {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+a.APIAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, string(b)}
}

func customersConfig(c *Config) {
	c.Collections = map[string]CollectionConfig{
		"customers": {
			Key:      []string{"id"},
			KeyTypes: []string{"int"},
			Fields: map[string]FieldConfig{
				"tags":  {Policy: "orset", Type: "string"},
				"phone": {Prefer: []string{"n1", "n2"}},
				"seen":  {Policy: "max", Type: "time"},
			},
		},
	}
}

func TestAPIRecordLifecycle(t *testing.T) {
	a := startAgent(t, customersConfig)
	c, err := NewClient(a.APIAddr(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := c.Put(ctx, "customers", "42", map[string]any{
		"name": "Acme", "status": "Active", "tags": []string{"eu", "vip"}, "seen": "2026-11-25T10:00:00Z", "phone": "+1 555",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rec.Row["id"]); got != "42" {
		t.Errorf("row id = %s, want 42 (the key column, typed int)", got)
	}
	if rec.Fields["phone"].Source != "n1" || rec.Fields["phone"].Policy != "prefer[n1,n2]" {
		t.Errorf("phone meta = %+v", rec.Fields["phone"])
	}
	// PATCH: set operations and a partial update.
	rec, err = c.Patch(ctx, "customers", "42", map[string]any{
		"tags":   map[string]any{"add": []string{"priority"}, "remove": []string{"eu"}},
		"status": "On Hold",
		"seen":   "2026-11-24T10:00:00Z", // older: max keeps the later time
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rec.Row["tags"]), `["priority","vip"]`; got != want {
		t.Errorf("tags = %s, want %s", got, want)
	}
	if got, want := string(rec.Row["seen"]), `"2026-11-25T10:00:00Z"`; got != want {
		t.Errorf("seen = %s, want %s (max)", got, want)
	}
	if got := string(rec.Row["name"]); got != `"Acme"` {
		t.Errorf("PATCH dropped name: %s", got)
	}
	// PUT replaces: fields left out become null.
	rec, err = c.Put(ctx, "customers", "42", map[string]any{"name": "Acme Corp"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Row["status"]; ok {
		t.Errorf("PUT kept status: %v", rec.Row)
	}
	// List, then delete.
	if _, err := c.Put(ctx, "customers", "7", map[string]any{"name": "Globex"}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Records []Record `json:"records"`
		Next    string   `json:"next"`
	}
	if err := c.Do(ctx, "GET", "/v1/records/customers?limit=1", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Records) != 1 || list.Records[0].Key != "7" || list.Next != "7" {
		t.Fatalf("first page = %+v", list)
	}
	if err := c.Do(ctx, "GET", "/v1/records/customers?limit=1&after=7", nil, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Records) != 1 || list.Records[0].Key != "42" {
		t.Fatalf("second page = %+v", list)
	}
	if err := c.Delete(ctx, "customers", "42"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "customers", "42"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after delete = %v, want not found", err)
	}
	d, n, err := c.Digest(ctx)
	if err != nil || n != 2 || d != a.Digest().Hash.String() {
		t.Fatalf("digest = %s/%d, %v", d, n, err)
	}
}

func TestAPIErrorsChangeNothing(t *testing.T) {
	const token = "0123456789abcdef-token"
	a := startAgent(t, func(c *Config) {
		customersConfig(c)
		c.Strict = true
		c.API.Token = token
		c.API.MaxBodyBytes = 1024
	})
	if r := do(t, a, "PUT", "/v1/records/customers/1", token, `{"name": "seed", "tags": ["a"]}`); r.code != 200 {
		t.Fatalf("seed: %d %s", r.code, r.body)
	}
	before := a.Digest()
	cases := []struct {
		name, method, path, token, body string
		code                            int
		want                            string
	}{
		{"no token", "PUT", "/v1/records/customers/1", "", `{"name":"x"}`, 401, "bearer token"},
		{"wrong token", "GET", "/v1/records/customers/1", "nope-nope-nope-nope", "", 401, "bearer token"},
		{"metrics need token", "GET", "/metrics", "", "", 401, "bearer token"},
		{"bad json", "PUT", "/v1/records/customers/1", token, `{"name":`, 400, "JSON object"},
		{"not an object", "PATCH", "/v1/records/customers/1", token, `[1,2]`, 400, "JSON object"},
		{"two values", "PATCH", "/v1/records/customers/1", token, `{"a":1} {"b":2}`, 400, "more than one"},
		{"unknown collection strict", "PUT", "/v1/records/orders/1", token, `{"a":1}`, 404, "unknown collection"},
		{"bad key", "PUT", "/v1/records/customers/abc", token, `{"a":1}`, 400, "not an integer"},
		{"oversized body", "PUT", "/v1/records/customers/1", token, `{"name":"` + strings.Repeat("x", 2000) + `"}`, 413, "over the limit"},
		{"set ops on lww field", "PATCH", "/v1/records/customers/1", token, `{"name":{"add":["x"]}}`, 400, "needs an orset field"},
		{"set ops with put", "PUT", "/v1/records/customers/1", token, `{"tags":{"add":["x"]}}`, 400, "needs PATCH"},
		{"scalar for orset", "PUT", "/v1/records/customers/1", token, `{"tags":"x"}`, 400, "want an array"},
		{"wrong type", "PATCH", "/v1/records/customers/1", token, `{"seen":"yesterday"}`, 400, "RFC 3339"},
		{"key column differs", "PATCH", "/v1/records/customers/1", token, `{"id":2}`, 400, "key column"},
		{"unknown set op field", "PATCH", "/v1/records/customers/1", token, `{"tags":{"add":["x"],"drop":["y"]}}`, 400, "add"},
		{"wrong method", "POST", "/v1/records/customers/1", token, `{}`, 405, "not allowed"},
		{"no route", "GET", "/v2/things", token, ``, 404, "no route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, a, tc.method, tc.path, tc.token, tc.body)
			if r.code != tc.code || !strings.Contains(r.body, tc.want) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tc.method, tc.path, r.code, r.body, tc.code, tc.want)
			}
			{
				var e apiError
				if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
					t.Fatalf("error body %q is not {\"error\": ...}", r.body)
				}
			}
		})
	}
	if after := a.Digest(); after != before {
		t.Fatalf("rejected requests changed the replica: %v -> %v", before, after)
	}
	// Health endpoints are open; metrics work with the token.
	if r := do(t, a, "GET", "/healthz", "", ""); r.code != 200 {
		t.Fatalf("healthz = %d", r.code)
	}
	if r := do(t, a, "GET", "/readyz", "", ""); r.code != 200 {
		t.Fatalf("readyz = %d", r.code)
	}
	r := do(t, a, "GET", "/metrics", token, "")
	for _, m := range []string{"lattice_local_deltas_total", "lattice_store_records", "lattice_gossip_deltas_sent_total", "lattice_pending_apply", "lattice_members"} {
		if !strings.Contains(r.body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	var st Status
	if r := do(t, a, "GET", "/v1/status", token, ""); r.code != 200 || json.Unmarshal([]byte(r.body), &st) != nil || st.Node != "n1" || !st.Ready || st.Records != 1 {
		t.Fatalf("status = %d %s", r.code, r.body)
	}
}

func TestAPIValueKinds(t *testing.T) {
	a := startAgent(t, nil)
	ctx := context.Background()
	c, _ := NewClient(a.APIAddr(), "", "")
	// Without a declared type, kinds are inferred from JSON.
	if _, err := c.Put(ctx, "things", `a/b\,c`, map[string]any{"n": 1, "f": 1.5, "b": true, "doc": map[string]any{"z": 1, "a": []int{1}}, "l": []any{"x", 2}}); err != nil {
		t.Fatal(err)
	}
	col, _ := a.schema.Collection("things")
	key, err := crdt.ParseKeyText(`a/b\,c`, []crdt.Kind{crdt.KindString})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := a.store.Get("things", key)
	if err != nil || rec == nil {
		t.Fatalf("record under key %q not found: %v", key, err)
	}
	view := rec.View(col)
	for f, want := range map[string]crdt.Kind{"n": crdt.KindInt, "f": crdt.KindFloat, "b": crdt.KindBool, "doc": crdt.KindJSON, "l": crdt.KindList} {
		if got := view[f].Kind(); got != want {
			t.Errorf("field %s kind = %s, want %s", f, got, want)
		}
	}
	if got := view["doc"].AsString(); got != `{"a":[1],"z":1}` {
		t.Errorf("doc = %s, want canonical JSON", got)
	}
}
