package sidecar

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// A write over a size limit gets 413 naming the limit and stores nothing;
// the node keeps replicating into its peer's database.
func TestAPIWriteOverLimitStoresNothing(t *testing.T) {
	_, sys, api, db := startFaulty(t)
	c, _ := NewClient(api.APIAddr(), "", "")
	ctx := context.Background()
	if _, err := c.Put(ctx, "customers", "1", map[string]any{"name": "before"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "row 1 in sys", func() bool { return names(t, db) == "1=before" })
	digest := api.Digest()

	var body strings.Builder
	body.WriteString(`{"name": "huge"`)
	for i := range 60000 {
		fmt.Fprintf(&body, `, "f%05d": 1`, i)
	}
	body.WriteString("}")
	resp := do(t, api, "PUT", "/v1/records/customers/1", "", body.String())
	if resp.code != 413 {
		t.Fatalf("PUT with 60,000 fields = %d %s, want 413", resp.code, resp.body)
	}
	var e apiError
	if err := json.Unmarshal([]byte(resp.body), &e); err != nil || e.Limit != crdt.LimitFields ||
		!strings.Contains(e.Error, crdt.LimitFields) {
		t.Fatalf("error = %s, want one naming %s", resp.body, crdt.LimitFields)
	}
	if got := do(t, api, "GET", "/v1/records/customers/1", "", ""); got.code != 200 || !strings.Contains(got.body, `"name":"before"`) {
		t.Fatalf("GET after the refused PUT = %d %s", got.code, got.body)
	}
	if api.Digest() != digest {
		t.Fatal("the refused PUT changed the store")
	}

	// Replication goes on, into the peer's database.
	if _, err := c.Put(ctx, "customers", "2", map[string]any{"name": "after"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "row 2 in sys", func() bool {
		return names(t, db) == "1=before 2=after" && sys.Digest() == api.Digest()
	})
}

// A queued record that cannot be decoded (written under larger limits) is
// parked, and the records queued behind it reach the database.
func TestUndecodableQueuedRecordIsParked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sys.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	// A store written under larger limits: record 1 has more fields than
	// the default limits allow, record 2 is queued behind it.
	data := filepath.Join(dir, "sys")
	opts := store.DefaultOptions()
	opts.Limits.MaxFields = 1 << 16
	schema := crdt.MustSchema(crdt.MustCollection("customers", []string{"id"}, nil))
	s, err := store.Open(data, schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	big := crdt.Row{"name": crdt.String("big")}
	for i := range crdt.DefaultMaxFields + 1 {
		big[fmt.Sprintf("f%05d", i)] = crdt.Int(1)
	}
	res, err := s.Local("old", []store.Change{
		{Collection: "customers", Key: crdt.IntKey(1), Row: big},
		{Collection: "customers", Key: crdt.IntKey(2), Row: crdt.Row{"name": crdt.String("behind")}},
	}, nil)
	if err != nil || len(res.Failed) > 0 || s.PendingLen() != 2 {
		t.Fatalf("Local = %+v, %v; pending %d", res, err, s.PendingLen())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	sys, err := Start(context.Background(), Config{
		Node: "sys", Data: data, Bind: "127.0.0.1:0", API: APIConfig{Addr: "127.0.0.1:0"},
		Adapter: AdapterConfig{Kind: AdapterSQLite, DSN: path, PollInterval: time.Millisecond},
		Apply:   ApplyConfig{MaxBackoff: 50 * time.Millisecond},
	}, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Close() })
	waitFor(t, 15*time.Second, "record 2 applied, record 1 parked", func() bool {
		return names(t, db) == "2=behind" && sys.Store().PendingLen() == 0 && len(sys.Status().Parked) == 1
	})
	if p := sys.Status().Parked[0]; p.Key != "1" || !strings.Contains(p.Reason, crdt.LimitFields) {
		t.Fatalf("parked = %+v, want record 1 naming %s", p, crdt.LimitFields)
	}
}

// On a node whose adapter knows the table, a write the table cannot hold
// gets 400 naming the column, and nothing is stored or written.
func TestAPIWriteMustFitTheTable(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "n1", nil, time.Millisecond)
	n.exec(t, `INSERT INTO customers (id, name, status) VALUES (1, 'Acme', 'Active')`)
	waitFor(t, 10*time.Second, "row 1 captured", func() bool {
		return do(t, n.a, "GET", "/v1/records/customers/1", "", "").code == 200
	})
	digest := n.a.Digest()
	for _, tc := range []struct {
		name, method, key, body, field string
	}{
		{"missing column", "PATCH", "1", `{"nosuchcol": 1}`, "nosuchcol"},
		{"null into not null", "PATCH", "1", `{"name": null}`, "name"},
		{"put leaves not null out", "PUT", "1", `{"status": "Churned"}`, "name"},
		{"wrong type", "PATCH", "1", `{"phone": 5}`, "phone"},
		{"new record without not null", "PUT", "2", `{"status": "New"}`, "name"},
		{"patch creates without not null", "PATCH", "3", `{"phone": "555"}`, "name"},
		{"set ops on a missing column", "PATCH", "1", `{"nosuchset": {"add": ["a"]}}`, "nosuchset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, n.a, tc.method, "/v1/records/customers/"+tc.key, "", tc.body)
			var e apiError
			if resp.code != 400 || json.Unmarshal([]byte(resp.body), &e) != nil || e.Field != tc.field ||
				!strings.Contains(e.Error, tc.field) {
				t.Fatalf("%s %s = %d %s, want 400 naming %s", tc.method, tc.body, resp.code, resp.body, tc.field)
			}
		})
	}
	if n.a.Digest() != digest {
		t.Fatal("a refused write changed the store")
	}
	// The refused writes reached neither the store nor the table.
	if got := n.row(t, 1); got != "Acme|Active||" {
		t.Fatalf("row 1 = %q", got)
	}
	for _, id := range []int{2, 3} {
		if got := n.row(t, id); got != "<none>" {
			t.Fatalf("row %d = %q, want none", id, got)
		}
	}
	// Writes that fit go through: a null for a field without a column
	// clears it and is accepted.
	if resp := do(t, n.a, "PATCH", "/v1/records/customers/1", "", `{"status": "Churned", "nosuchcol": null}`); resp.code != 200 {
		t.Fatalf("PATCH that fits = %d %s", resp.code, resp.body)
	}
	waitFor(t, 10*time.Second, "row 1 updated", func() bool { return n.row(t, 1) == "Acme|Churned||" })
}

// A merged value this system cannot store parks only that record; a later
// change of the record, in SQL or through the API, queues it again, and
// changes flow again.
func TestParkedRecordFlowsAgainAfterAFix(t *testing.T) {
	_, sys, api, db := startFaulty(t)
	c, _ := NewClient(api.APIAddr(), "", "")
	ctx := context.Background()
	for i, name := range []string{"one", "two"} {
		if _, err := c.Put(ctx, "customers", itoa(i+1), map[string]any{"name": name}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "rows in sys", func() bool { return names(t, db) == "1=one 2=two" })
	parked := func(key, reason string) bool {
		p := sys.Status().Parked
		return len(p) == 1 && p[0].Key == key && strings.Contains(p[0].Reason, reason)
	}

	// The API-only node knows no table: it takes a null name, which sys's
	// table refuses.
	if resp := do(t, api, "PATCH", "/v1/records/customers/1", "", `{"name": null}`); resp.code != 200 {
		t.Fatalf("PATCH on the API node = %d %s", resp.code, resp.body)
	}
	waitFor(t, 15*time.Second, "record 1 parked on sys", func() bool { return parked("1", "NOT NULL") })
	if _, err := c.Put(ctx, "customers", "2", map[string]any{"name": "two-b"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "record 2 flows", func() bool { return names(t, db) == "1=one 2=two-b" })

	// The user fixes record 1 in sys's database.
	if _, err := db.Exec(`UPDATE customers SET name = 'fixed' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "record 1 fixed everywhere", func() bool {
		r, err := c.Get(ctx, "customers", "1")
		return err == nil && string(r.Row["name"]) == `"fixed"` && len(sys.Status().Parked) == 0 &&
			sys.Store().PendingLen() == 0 && sys.Digest() == api.Digest()
	})

	// A value for a column sys lacks parks record 2; a null through sys's
	// API clears it.
	if resp := do(t, api, "PATCH", "/v1/records/customers/2", "", `{"nosuchcol": 1}`); resp.code != 200 {
		t.Fatalf("PATCH on the API node = %d %s", resp.code, resp.body)
	}
	waitFor(t, 15*time.Second, "record 2 parked on sys", func() bool { return parked("2", "nosuchcol") })
	if resp := do(t, sys, "PATCH", "/v1/records/customers/2", "", `{"nosuchcol": null}`); resp.code != 200 {
		t.Fatalf("PATCH clearing the field on sys = %d %s", resp.code, resp.body)
	}
	waitFor(t, 15*time.Second, "record 2 unparked", func() bool { return len(sys.Status().Parked) == 0 && sys.Store().PendingLen() == 0 })
	if _, err := c.Put(ctx, "customers", "2", map[string]any{"name": "after"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "later change flows", func() bool {
		return names(t, db) == "1=fixed 2=after" && sys.Digest() == api.Digest()
	})
}
