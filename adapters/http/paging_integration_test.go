package http

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// Every paging kind json-server 0.17 offers, in small pages: _page (page),
// _start (offset), and the Link header's rel="next" that _page adds
// (next_link). Snapshot reads every record, capture keeps up with clients
// writing while it pages, and reconciliation's full listing finds a
// delete.
func TestIntegrationPagingKinds(t *testing.T) {
	for _, kind := range []struct{ name, keys string }{
		{"page", "paging: page"},
		{"offset", "paging: offset\n    offset_param: _start"},
		{"next_link", "paging: next_link"},
	} {
		t.Run(kind.name, func(t *testing.T) {
			var st stamper
			var seed []map[string]any
			for i := range 23 {
				id := fmt.Sprintf("s%02d", i)
				seed = append(seed, contact(id, "seed", id+"@x", i, st.next(id)))
			}
			s := startJSONServer(t, map[string][]map[string]any{"contacts": seed})
			y := fmt.Sprintf(`
preset: json-server
base_url: %s
state: %s
rate: 1000
burst: 100
poll_interval: 30ms
overlap: 1s
reconcile: 150ms
collections:
  contacts:
    page_size: 5
    %s
    columns: {name: string, email: string, age: int}
`, s.URL, filepath.Join(t.TempDir(), "state.db"), kind.keys)
			cfg, err := ParseConfig([]byte(y))
			if err != nil {
				t.Fatal(err)
			}
			a := openAdapter(t, cfg)
			ctx := context.Background()
			var snap collector
			cur, err := a.Snapshot(ctx, snap.sink)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(snap.latest()); n != 23 {
				t.Fatalf("snapshot: %d records, want 23", n)
			}
			var c collector
			capture(t, a, cur, &c)
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Go(func() {
					for i := range 20 {
						id := fmt.Sprintf("s%02d", (w*7+i*3)%23)
						s.Do("PUT", "/contacts/"+id, contact(id, fmt.Sprintf("w%d-%d", w, i), id+"@x", i, st.next(id)), 200, nil)
					}
				})
			}
			wg.Wait()
			s.Do("DELETE", "/contacts/s05", nil, 200, nil)
			server := s.Records("contacts")
			waitFor(t, "capture to reach the server's state", func() bool {
				l := c.latest()
				for id, rec := range server {
					if rec["name"] != "seed" && !sameRow(l[crdt.StringKey(id)], rec) {
						return false
					}
				}
				row, ok := l[crdt.StringKey("s05")]
				return ok && row == nil
			})
			t.Logf("%d changes captured, requests %v", len(c.all()), a.Stats().Requests)
		})
	}
}
