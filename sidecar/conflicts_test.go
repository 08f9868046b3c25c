package sidecar

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// conflictCount reads lattice_conflicts_total for one label set.
func conflictCount(t *testing.T, a *Agent, collection, field, rule string) float64 {
	t.Helper()
	for _, f := range gatherLattice(t, a) {
		if f.GetName() != "lattice_conflicts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["collection"] == collection && got["field"] == field && got["rule"] == rule {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// A remote write concurrent with a local one is logged and counted once;
// GET /v1/conflicts filters and pages it; POST .../resolve re-asserts the
// loser as a write that wins and marks the conflict resolved.
func TestConflictsAPI(t *testing.T) {
	a := startAgent(t, customersConfig)
	if r := do(t, a, "PUT", "/v1/records/customers/1", "", `{"name": "Ann"}`); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	base, err := a.Store().Get("customers", crdt.IntKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, a, "PATCH", "/v1/records/customers/1", "", `{"name": "Bob"}`); r.code != 200 {
		t.Fatalf("PATCH: %d %s", r.code, r.body)
	}
	// A peer that saw only Ann writes Carl, a little later.
	col, _ := a.schema.Collection("customers")
	at := a.Store().Clock().Now()
	at.Wall += 1e6
	d, err := crdt.Diff(col, base, crdt.Row{"name": crdt.String("Carl")}, crdt.Origin{Stamp: crdt.Stamp{TS: at, Replica: 99}})
	if err != nil {
		t.Fatal(err)
	}
	remote := &crdt.Delta{}
	remote.Add("customers", crdt.IntKey(1), d)
	for range 2 { // the second delivery decides nothing new
		if _, err := (replica{a}).Merge(remote); err != nil {
			t.Fatal(err)
		}
	}
	// name is not listed and no system table names it: an API client
	// chose it, so it counts as _other under its listed collection.
	if got := conflictCount(t, a, "customers", "_other", "lww"); got != 1 {
		t.Fatalf("lattice_conflicts_total{customers,_other,lww} = %v, want 1", got)
	}
	list := func(query string) (int, ConflictPage) {
		t.Helper()
		r := do(t, a, "GET", "/v1/conflicts"+query, "", "")
		var p ConflictPage
		if r.code == 200 {
			if err := json.Unmarshal([]byte(r.body), &p); err != nil {
				t.Fatal(err)
			}
		}
		return r.code, p
	}
	code, page := list("?collection=customers&key=1&field=name")
	if code != 200 || len(page.Conflicts) != 1 {
		t.Fatalf("GET /v1/conflicts = %d %+v", code, page)
	}
	cf := page.Conflicts[0]
	if string(cf.Winner.Value) != `"Carl"` || string(cf.Loser.Value) != `"Bob"` || cf.Loser.Node != "n1" || cf.Winner.Replica != crdt.ReplicaID(99).String() || cf.Rule != "lww" {
		t.Fatalf("conflict %+v, want Carl (replica 99) over Bob (n1) by lww", cf)
	}
	for query, want := range map[string]int{"?field=phone": 0, "?collection=orders": 0, "?since=2100-01-01T00:00:00Z": 0, "?until=2000-01-01T00:00:00Z": 0, "": 1} {
		if code, p := list(query); code != 200 || len(p.Conflicts) != want {
			t.Errorf("GET /v1/conflicts%s = %d, %d conflicts; want %d", query, code, len(p.Conflicts), want)
		}
	}
	for _, query := range []string{"?key=1", "?limit=0", "?limit=1001", "?since=yesterday", "?after=x"} {
		if code, _ := list(query); code != 400 {
			t.Errorf("GET /v1/conflicts%s = %d, want 400", query, code)
		}
	}
	if r := do(t, a, "POST", "/v1/conflicts/99/resolve", "", "{}"); r.code != 404 {
		t.Errorf("resolve of an unknown conflict = %d %s, want 404", r.code, r.body)
	}
	if r := do(t, a, "POST", "/v1/conflicts/1/resolve", "", `{"vaule": "x"}`); r.code != 400 {
		t.Errorf("resolve with an unknown body field = %d %s, want 400", r.code, r.body)
	}
	r := do(t, a, "POST", "/v1/conflicts/1/resolve", "", "{}")
	if r.code != 200 || !strings.Contains(r.body, `"by":"n1"`) {
		t.Fatalf("resolve = %d %s", r.code, r.body)
	}
	rec, _ := a.Store().Get("customers", crdt.IntKey(1))
	if v, meta, _ := rec.Get(col, "name"); v.AsString() != "Bob" || meta.Stamp.Compare(d.Written) <= 0 {
		t.Fatalf("name = %s at %s after the override, want Bob, newer than Carl (%s)", v, meta.Stamp, d.Written)
	}
	if _, p := list(""); len(p.Conflicts) != 1 || p.Conflicts[0].Resolved == nil || string(p.Conflicts[0].Resolved.Value) != `"Bob"` {
		t.Fatalf("after resolve: %+v, want one conflict, resolved with Bob", p.Conflicts)
	}
	if got := conflictCount(t, a, "customers", "_other", "lww"); got != 1 {
		t.Fatalf("the override counted as a conflict: %v", got)
	}
}
