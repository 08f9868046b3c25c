package http

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

func TestConfigJSONServerPreset(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
preset: json-server
base_url: http://127.0.0.1:3000/
collections:
  contacts:
    columns: {name: string, age: int}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collections["contacts"]
	if cfg.BaseURL != "http://127.0.0.1:3000" || c.Path != "/contacts" || c.ID != "id" || c.idKind != crdt.KindString ||
		!c.clientIDs || c.Updated != "updatedAt" || c.SinceParam != "updatedAt_gte" || c.SortValue != "updatedAt,id" ||
		c.OrderValue != "asc,asc" || c.PageParam != "_page" || c.LimitParam != "_limit" || !c.stampUpdated ||
		c.Update.Path != "/contacts/{id}" || cfg.Rate != 10 || cfg.PollInterval != 2*time.Second {
		t.Fatalf("preset not filled: %+v %+v", cfg, c)
	}
	a := &Adapter{cfg: cfg}
	got := a.listURL(c, true, 1500, 2)
	want := "http://127.0.0.1:3000/contacts?_limit=100&_order=asc%2Casc&_page=2&_sort=updatedAt%2Cid&updatedAt_gte=1500"
	if got != want {
		t.Fatalf("list URL %s, want %s", got, want)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{`collections: {c: {columns: {a: int}}}`, "config base_url"},
		{`base_url: ftp://x
collections: {c: {columns: {a: int}}}`, "config base_url"},
		{`base_url: http://x
preset: nope
collections: {c: {columns: {a: int}}}`, "config preset"},
		{`base_url: http://x`, "config collections"},
		{`base_url: http://x
collections: {c: {updated: u, since_param: u_gte, paging: page, page_param: p, limit_param: l}}`, "config collections.c.columns"},
		{`base_url: http://x
preset: json-server
collections: {c: {columns: {a: list}}}`, "config collections.c.columns.a"},
		{`base_url: http://x
preset: json-server
collections: {c: {id_kind: int, columns: {a: int}}}`, "config collections.c.client_ids"},
		{`base_url: http://x
collections: {c: {columns: {a: int}}}`, "config collections.c.updated"},
		{`base_url: http://x
preset: json-server
collections: {c: {paging: cursor, columns: {a: int}}}`, "config collections.c.paging"},
		{`base_url: http://x
preset: json-server
collections: {c: {update: {path: /c}, columns: {a: int}}}`, "config collections.c.update.path"},
		{`base_url: http://x
preset: json-server
auth: {user: u}
collections: {c: {columns: {a: int}}}`, "config auth"},
		{`base_url: http://x
colections: {}`, "colections"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.key)
		}
	}
}

func TestLoadConfigStateNextToIt(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "crm.yaml")
	if err := os.WriteFile(p, []byte("base_url: http://x\npreset: json-server\ncollections: {c: {columns: {a: int}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.statePath(); got != filepath.Join(dir, "crm.yaml.state.db") {
		t.Fatalf("state %s", got)
	}
}

func TestAuthSecretFileMustBePrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticator(AuthConfig{BearerFile: p}, nil); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("error %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := authenticator(AuthConfig{BearerFile: p}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		"Thu, 01 Jan 2026 00:00:05 GMT": 5 * time.Second, "Wed, 31 Dec 2025 23:00:00 GMT": 0,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

func TestRegisteredKind(t *testing.T) {
	open, ok := adapters.Lookup(Kind)
	if !ok {
		t.Fatal("kind http not registered")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "crm.yaml")
	y := "base_url: http://127.0.0.1:1\npreset: json-server\ncollections:\n  c: {columns: {a: int}}\n  d: {columns: {b: string}}\n"
	if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := open(context.Background(), adapters.Options{DSN: p, Tables: []string{"d"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ts, err := a.Tables(context.Background())
	if err != nil || len(ts) != 1 || ts[0].Name != "d" || !ts[0].Columns[0].Generated || ts[0].Key[0] != "id" {
		t.Fatalf("Tables = %+v, %v", ts, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "crm.yaml.state.db")); err != nil {
		t.Fatal(err)
	}
	if _, err := open(context.Background(), adapters.Options{DSN: p, Tables: []string{"x"}}); err == nil {
		t.Fatal("adapter.tables naming no collection opened")
	}
}

func TestEncodeRefusesOtherKinds(t *testing.T) {
	cfg, err := ParseConfig([]byte("base_url: http://x\npreset: json-server\ncollections: {c: {columns: {n: int, f: float, s: string}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	col := cfg.Collections["c"]
	b, err := col.encode(crdt.Row{"n": crdt.Int(1), "f": crdt.Int(2)}, "k", 5)
	if err != nil || string(b) != `{"f":2.0,"id":"k","n":1,"s":null,"updatedAt":5}` {
		t.Fatalf("encode = %s, %v", b, err)
	}
	for _, row := range []crdt.Row{{"n": crdt.String("x")}, {"s": crdt.Int(1)}, {"n": crdt.Float(1.5)}, {"f": crdt.Bool(true)}} {
		if _, err := col.encode(row, "k", 5); err == nil || !strings.Contains(err.Error(), "declared") {
			t.Errorf("encode %v: %v, want an error", row, err)
		}
	}
}
