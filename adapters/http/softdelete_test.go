package http

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

func softConfig(t *testing.T, base, deleted string) *Config {
	t.Helper()
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
    deleted: %s
    columns: {name: string, email: string, age: int}
`, base, filepath.Join(t.TempDir(), "state.db"), deleted)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A record the API marks deleted is captured as a delete and left out of
// a snapshot; Apply's delete sets the mark (soft) or sends DELETE (hard);
// a write of a deleted record clears the mark.
func TestIntegrationSoftDeletes(t *testing.T) {
	row := func(id, name string) crdt.Row {
		return crdt.Row{"id": crdt.String(id), "name": crdt.String(name), "email": crdt.String(id + "@x"), "age": crdt.Int(1)}
	}
	deletedIn := func(c *collector, id string) func() bool {
		return func() bool {
			r, ok := c.latest()[crdt.StringKey(id)]
			return ok && r == nil
		}
	}
	t.Run("flag", func(t *testing.T) {
		var st stamper
		marked := func(id string, del bool) map[string]any {
			r := contact(id, "N"+id, id+"@x", 1, st.next(id))
			r["deleted"] = del
			return r
		}
		s := startJSONServer(t, map[string][]map[string]any{"contacts": {marked("a", false), marked("b", false), marked("c", true)}})
		a := openAdapter(t, softConfig(t, s.URL, "{field: deleted, value: true}"))
		ctx := context.Background()
		var snap collector
		cur, err := a.Snapshot(ctx, snap.sink)
		if err != nil {
			t.Fatal(err)
		}
		if l := snap.latest(); len(l) != 2 || l[crdt.StringKey("c")] != nil {
			t.Fatalf("snapshot %v, want a and b only", l)
		}
		var c collector
		capture(t, a, cur, &c)
		// A user deletes b the API's way.
		s.Do("PATCH", "/contacts/b", map[string]any{"deleted": true, "updatedAt": st.next("b")}, 200, nil)
		waitFor(t, "b's soft delete captured", deletedIn(&c, "b"))

		// Apply deletes a: the record stays, marked, its fields kept.
		if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a")}}, nil); err != nil {
			t.Fatal(err)
		}
		recs := s.Records("contacts")
		if recs["a"] == nil || recs["a"]["deleted"] != true || recs["a"]["name"] != "Na" {
			t.Fatalf("a after a soft delete: %v", recs["a"])
		}
		// b written again from elsewhere: the mark is cleared.
		if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("b"), Row: row("b", "Back")}}, nil); err != nil {
			t.Fatal(err)
		}
		if recs := s.Records("contacts"); recs["b"]["deleted"] != false || recs["b"]["name"] != "Back" {
			t.Fatalf("b after a write: %v", recs["b"])
		}
		// A user's change after them is captured, and neither of the
		// adapter's own writes.
		s.Do("PATCH", "/contacts/c", map[string]any{"deleted": false, "name": "Cy", "updatedAt": st.next("c")}, 200, nil)
		waitFor(t, "c brought back by a user", func() bool { return c.latest()[crdt.StringKey("c")]["name"].AsString() == "Cy" })
		for _, ch := range c.all() {
			if ch.Key == crdt.StringKey("a") || ch.Key == crdt.StringKey("b") && ch.Row != nil {
				t.Errorf("own write captured: %s %v", ch.Key, ch.Row)
			}
		}
		// A user brings a back without changing a synced field: the row is
		// reported with no old row, so that it is taken whole.
		s.Do("PATCH", "/contacts/a", map[string]any{"deleted": false, "updatedAt": st.next("a")}, 200, nil)
		waitFor(t, "a brought back by a user", func() bool { return c.latest()[crdt.StringKey("a")]["name"].AsString() == "Na" })
		for _, ch := range c.all() {
			if ch.Key == crdt.StringKey("a") && ch.Old != nil {
				t.Errorf("a brought back with an old row %v: the engine would see no change", ch.Old)
			}
		}
	})
	t.Run("timestamp", func(t *testing.T) {
		var st stamper
		s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "a@x", 1, st.next("a")), contact("b", "Bob", "b@x", 1, st.next("b"))}})
		a := openAdapter(t, softConfig(t, s.URL, "{field: deletedAt}"))
		ctx := context.Background()
		cur, err := a.Snapshot(ctx, (&collector{}).sink)
		if err != nil {
			t.Fatal(err)
		}
		var c collector
		capture(t, a, cur, &c)
		s.Do("PATCH", "/contacts/b", map[string]any{"deletedAt": 1700000000000, "updatedAt": st.next("b")}, 200, nil)
		waitFor(t, "b's soft delete captured", deletedIn(&c, "b"))
		if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a")}}, nil); err != nil {
			t.Fatal(err)
		}
		if at, ok := s.Records("contacts")["a"]["deletedAt"].(float64); !ok || at < 1e12 {
			t.Fatalf("a after a soft delete: %v, want deletedAt a time", s.Records("contacts")["a"])
		}
	})
	t.Run("hard", func(t *testing.T) {
		var st stamper
		s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "a@x", 1, st.next("a"))}})
		a := openAdapter(t, softConfig(t, s.URL, "{field: deleted, value: true, apply: hard}"))
		if _, err := a.Apply(context.Background(), []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a")}}, nil); err != nil {
			t.Fatal(err)
		}
		if recs := s.Records("contacts"); len(recs) != 0 {
			t.Fatalf("server holds %v after a hard delete", recs)
		}
	})
}
