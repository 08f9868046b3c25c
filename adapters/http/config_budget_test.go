package http

import (
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
)

// The keys of budgets, TLS, paging and soft deletes: each error names its
// key and carries a hint.
func TestConfigNewKeys(t *testing.T) {
	const base = "base_url: http://x\npreset: json-server\n"
	for _, tc := range []struct{ yaml, key string }{
		{base + "concurrency: -1\ncollections: {c: {columns: {a: int}}}", "config concurrency"},
		{base + "circuit: {failures: -2}\ncollections: {c: {columns: {a: int}}}", "config circuit.failures"},
		{base + "circuit: {cooldown: -1s}\ncollections: {c: {columns: {a: int}}}", "config circuit"},
		{base + "circuit: {cooldown: 1m, max_cooldown: 10s}\ncollections: {c: {columns: {a: int}}}", "config circuit.max_cooldown"},
		{base + "tls: {server_name: x}\ncollections: {c: {columns: {a: int}}}", "config tls"},
		{base + "collections: {c: {paging: cursor, cursor_param: c, columns: {a: int}}}", "config collections.c.paging"},
		{base + "collections: {c: {paging: bogus, columns: {a: int}}}", "config collections.c.paging"},
		{base + "collections: {c: {cursor_path: x, columns: {a: int}}}", "config collections.c.cursor_param"},
		{base + "collections: {c: {next_path: x, columns: {a: int}}}", "config collections.c.next_path"},
		{base + "collections: {c: {deleted: {value: true}, columns: {a: int}}}", "config collections.c.deleted.field"},
		{base + "collections: {c: {deleted: {field: id}, columns: {a: int}}}", "config collections.c.deleted.field"},
		{base + "collections: {c: {deleted: {field: a}, columns: {a: int}}}", "config collections.c.deleted.field"},
		{base + "collections: {c: {deleted: {field: d, apply: later}, columns: {a: int}}}", "config collections.c.deleted.apply"},
		{base + "collections: {c: {deleted: {field: d, value: [1]}, columns: {a: int}}}", "config collections.c.deleted.value"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.key)
			continue
		}
		if len(errors.GetAllHints(err)) == 0 {
			t.Errorf("%q: error %v has no hint", tc.yaml, err)
		}
	}
	cfg, err := ParseConfig([]byte(base + "collections: {c: {paging: next_link, deleted: {field: gone_at}, columns: {a: int}}}"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collections["c"]
	if cfg.Concurrency != 4 || cfg.Circuit != (CircuitConfig{Failures: 5, Cooldown: time.Second, MaxCooldown: time.Minute}) ||
		c.Deleted.Apply != "soft" || c.Deleted.Method != "PATCH" || c.Deleted.value != nil {
		t.Fatalf("defaults not filled: %+v %+v", cfg, c.Deleted)
	}
	want := "http://x/c?_limit=100&_order=asc%2Casc&_page=1&_sort=updatedAt%2Cid&updatedAt_gte=0"
	if got := (&Adapter{cfg: cfg}).listURL(c, true, 0, 1); got != want {
		t.Fatalf("first next_link page %s, want %s", got, want)
	}
}
