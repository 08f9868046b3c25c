package http

import (
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// nested is the connector of an API that keeps a record's fields in an
// object of their own, {"id", "updatedAt", "fields": {...}}, and wants
// every request to carry a header its code computes.
type nested struct {
	NoConnector
	prepared atomic.Int64
}

func (n *nested) Prepare(req *nethttp.Request) error {
	n.prepared.Add(1)
	req.Header.Set("X-Client", "lattice-"+strings.ToLower(req.Method))
	return nil
}

func (*nested) Record(_ string, raw json.RawMessage) (json.RawMessage, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if f, ok := rec["fields"]; ok {
		if err := json.Unmarshal(f, &fields); err != nil {
			return nil, errors.Wrap(err, "fields")
		}
	}
	delete(rec, "fields")
	for k, v := range fields {
		rec[k] = v
	}
	return json.Marshal(rec)
}

func (*nested) Body(_ string, obj json.RawMessage) ([]byte, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(obj, &rec); err != nil {
		return nil, err
	}
	out := map[string]any{}
	fields := map[string]json.RawMessage{}
	for k, v := range rec {
		switch k {
		case "id", "updatedAt":
			out[k] = v
		default:
			fields[k] = v
		}
	}
	out["fields"] = fields
	return json.Marshal(out)
}

var testNested = &nested{}

func init() { RegisterConnector("test-nested", testNested) }

func TestConnectorConfig(t *testing.T) {
	base := "base_url: http://127.0.0.1:1\ncollections:\n  contacts:\n    updated: u\n    since_param: u_gte\n    paging: page\n    page_param: p\n    limit_param: l\n    columns: {name: string}\n"
	for _, tc := range []struct{ y, want, hint string }{
		{"connector: nowhere\n" + base, `config connector: no connector "nowhere" is registered`, "registered connectors: test-nested"},
		{base + "    update: {method: PUT, body: changed}\n", "config collections.contacts.update.body: changed fields with method PUT", "method: PATCH"},
		{base + "    update: {method: PATCH, body: some}\n", `config collections.contacts.update.body: "some"`, "record or changed"},
		{base + "    create: {body: changed}\n", "config collections.contacts.create.body: only updates choose their body", ""},
	} {
		_, err := ParseConfig([]byte(tc.y))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.y, err, tc.want)
			continue
		}
		if h := strings.Join(errors.GetAllHints(err), "; "); !strings.Contains(h, tc.hint) {
			t.Errorf("%s: hint %q, want %q", tc.y, h, tc.hint)
		}
	}
	cfg, err := ParseConfig([]byte("connector: test-nested\n" + base + "    update: {method: PATCH, body: changed}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if col := cfg.Collections["contacts"]; col.conn != testNested || col.Update.Body != "changed" {
		t.Fatalf("connector %v, body %q", col.conn, col.Update.Body)
	}
}

// An API whose records nest their fields, through a connector: captured
// and applied in the config's terms, stored on the server in its own, and
// every request prepared by the connector.
func TestIntegrationConnector(t *testing.T) {
	var st stamper
	rec := func(id, name, email string, age int) map[string]any {
		return map[string]any{"id": id, "updatedAt": st.next(id), "fields": map[string]any{"name": name, "email": email, "age": age}}
	}
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {rec("a", "Ann", "ann@x", 30), rec("b", "Bob", "bob@x", 40)}})
	a := openAdapter(t, testConfig(t, s.URL, "connector: test-nested"))
	before := testNested.prepared.Load()
	ctx := context.Background()
	var snap collector
	cur, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatal(err)
	}
	if l := snap.latest(); len(l) != 2 || l[crdt.StringKey("a")]["email"].AsString() != "ann@x" || l[crdt.StringKey("b")]["age"].AsInt() != 40 {
		t.Fatalf("snapshot %v", l)
	}
	var c collector
	capture(t, a, cur, &c)

	row := crdt.Row{"name": crdt.String("Ann B"), "email": crdt.String("ann@x"), "age": crdt.Int(31)}
	res, err := a.Apply(ctx, []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey("a"), Row: withID("a", row)},
		{Collection: "contacts", NewKey: crdt.StringKey("crm:1"), Row: crdt.Row{"name": crdt.String("Dee"), "email": crdt.String("dee@x"), "age": crdt.Int(20)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	genID, _ := (&Collection{idKind: crdt.KindString}).idText(res.Generated[1])
	recs := s.Records("contacts")
	fields := func(id string) map[string]any { f, _ := recs[id]["fields"].(map[string]any); return f }
	if f := fields("a"); f["name"] != "Ann B" || f["age"] != float64(31) || recs["a"]["name"] != nil {
		t.Fatalf("server holds a as %v", recs["a"])
	}
	if f := fields(genID); f["name"] != "Dee" {
		t.Fatalf("server holds the created record as %v (%s)", recs[genID], genID)
	}

	// A user's change in the API's terms is captured in the config's.
	s.Do("PUT", "/contacts/b", rec("b", "Bob", "bob@new", 41), 200, nil)
	waitFor(t, "the user's change", func() bool {
		r := c.latest()[crdt.StringKey("b")]
		return r != nil && r["email"].AsString() == "bob@new" && r["age"].AsInt() == 41
	})
	for _, ch := range c.all() {
		if ch.Key != crdt.StringKey("b") {
			t.Errorf("captured %s %v: only b changed", ch.Key, ch.Row)
		}
	}
	var sent int64
	for _, n := range a.Stats().Requests {
		sent += n
	}
	if got := testNested.prepared.Load() - before; got != sent {
		t.Fatalf("the connector prepared %d requests, the adapter sent %d", got, sent)
	}
}

// With update body changed, an update sends the fields that differ from
// the record as the adapter last saw it: a field a user changed meanwhile
// on the server is kept. With the whole record, it would be overwritten.
func TestIntegrationUpdateChangedFields(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	cfg, err := ParseConfig(fmt.Appendf(nil, `
preset: json-server
base_url: %s
state: %s
rate: 1000
burst: 100
read_before_write: false
collections:
  contacts:
    update: {method: PATCH, body: changed}
    columns: {name: string, email: string, age: int}
`, s.URL, filepath.Join(t.TempDir(), "state.db")))
	if err != nil {
		t.Fatal(err)
	}
	a := openAdapter(t, cfg)
	ctx := context.Background()
	if _, err := a.Snapshot(ctx, (&collector{}).sink); err != nil {
		t.Fatal(err)
	}
	// The user changes the email; capture has not taken it when the merged
	// state's new name is applied.
	s.Do("PATCH", "/contacts/a", map[string]any{"email": "ann@new", "updatedAt": st.next("a")}, 200, nil)
	row := withID("a", crdt.Row{"name": crdt.String("Ann B"), "email": crdt.String("ann@x"), "age": crdt.Int(30)})
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"), Row: row}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := s.Records("contacts")["a"]; r["name"] != "Ann B" || r["email"] != "ann@new" {
		t.Fatalf("server holds %v, want the new name and the user's email", r)
	}
	// The adapter knows the record as the server answered the write (with
	// the user's email): a write of the merged row sends the email.
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey("a"), Row: row}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := s.Records("contacts")["a"]; r["name"] != "Ann B" || r["email"] != "ann@x" {
		t.Fatalf("server holds %v, want the merged row", r)
	}
}
