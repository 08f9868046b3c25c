package http

import (
	"context"
	"maps"
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// A captured change carries the row as the adapter last saw it (captured or
// written) as its Old, so that the engine takes only the fields the user
// changed as the change's intent: a field merged from elsewhere that the
// adapter deferred writing (read before write) is not overwritten by the
// server's stale copy of it.
func TestIntegrationCaptureReportsOld(t *testing.T) {
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
	row := func(id, name, email string, age int) crdt.Row {
		return crdt.Row{"id": crdt.String(id), "name": crdt.String(name), "email": crdt.String(email), "age": crdt.Int(int64(age))}
	}
	// change waits for the n-th change captured and returns it.
	change := func(n int) adapters.Change {
		t.Helper()
		waitFor(t, "a change captured", func() bool { return len(c.all()) >= n })
		return c.all()[n-1]
	}
	same := func(what string, got, want crdt.Row) {
		t.Helper()
		if got == nil || !maps.EqualFunc(got, want, crdt.Equal) {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}

	// A user's change of a record the snapshot read: Old is the snapshot's
	// row.
	s.Do("PUT", "/contacts/a", contact("a", "Ann", "ann@x", 31, st.next("a")), 200, nil)
	ch := change(1)
	same("Old after the snapshot", ch.Old, row("a", "Ann", "ann@x", 30))
	same("Row", ch.Row, row("a", "Ann", "ann@x", 31))

	// After the adapter's own write: Old is the row it wrote.
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"), Row: row("a", "Ann M", "ann@x", 31)}}, nil); err != nil {
		t.Fatal(err)
	}
	s.Do("PUT", "/contacts/a", contact("a", "Ann M", "ann@y", 31, st.next("a")), 200, nil)
	ch = change(2)
	same("Old after an apply", ch.Old, row("a", "Ann M", "ann@x", 31))

	// A record first seen in a poll has no Old; its next change has the
	// row the poll read.
	s.Do("POST", "/contacts", contact("b", "Bob", "bob@x", 40, st.next("b")), 201, nil)
	if ch = change(3); ch.Old != nil {
		t.Fatalf("Old of a new record: %v", ch.Old)
	}
	s.Do("PUT", "/contacts/b", contact("b", "Bob", "bob@x", 41, st.next("b")), 200, nil)
	ch = change(4)
	same("Old after a poll", ch.Old, row("b", "Bob", "bob@x", 40))
}
