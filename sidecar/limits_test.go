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
