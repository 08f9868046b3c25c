package sidecar

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A row the system refuses (a trigger) is listed with the system's error;
// skip drops it from the parked list and keeps its merged state; retry
// after the fix writes it into the system.
func TestParkedListRetrySkip(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "sys", nil, time.Millisecond)
	n.exec(t, `CREATE TRIGGER refuse BEFORE INSERT ON customers WHEN NEW.name LIKE 'bad%'
		BEGIN SELECT RAISE(ABORT, 'names starting with bad are refused'); END`)
	c, err := NewClient(n.a.APIAddr(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, name := range []string{"ok", "bad2", "bad3"} {
		if _, err := c.Put(ctx, "customers", itoa(i+1), map[string]any{"name": name}); err != nil {
			t.Fatal(err)
		}
	}
	var list ParkedList
	waitFor(t, 15*time.Second, "two rows parked", func() bool {
		list = ParkedList{}
		err := c.Do(ctx, "GET", "/v1/parked", nil, &list)
		if err != nil {
			t.Log(err)
		}
		return err == nil && list.Total == 2 && len(list.Parked) == 2
	})
	if got := n.row(t, 1); got != "ok|||" {
		t.Fatalf("row 1 = %q, want it applied", got)
	}
	p2, p3 := list.Parked[0], list.Parked[1]
	if p2.Collection != "customers" || p2.Key != "2" || !strings.Contains(p2.Reason, "names starting with bad are refused") || p2.Seq == 0 {
		t.Fatalf("parked[0] = %+v", p2)
	}
	if got, _ := json.Marshal(p2.Row["name"]); string(got) != `"bad2"` {
		t.Fatalf("parked row name = %s, want the merged value", got)
	}

	// Paging: one at a time, the cursor leads to the second.
	var page ParkedList
	if err := c.Do(ctx, "GET", "/v1/parked?limit=1", nil, &page); err != nil || len(page.Parked) != 1 || page.Next == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	var page2 ParkedList
	if err := c.Do(ctx, "GET", "/v1/parked?limit=1&after="+page.Next, nil, &page2); err != nil || len(page2.Parked) != 1 || page2.Parked[0].Key != "3" || page2.Next != "" {
		t.Fatalf("second page = %+v, %v", page2, err)
	}

	// Skip with a seq that is not the current one is refused.
	err = c.Do(ctx, "POST", "/v1/parked/skip", ParkedTarget{Collection: "customers", Key: "3", Seq: p3.Seq + 1000}, nil)
	if err == nil || !strings.Contains(err.Error(), "(409)") {
		t.Fatalf("skip with a stale seq: %v, want 409", err)
	}
	var out map[string]int
	if err := c.Do(ctx, "POST", "/v1/parked/skip", ParkedTarget{Collection: "customers", Key: "3", Seq: p3.Seq}, &out); err != nil || out["skipped"] != 1 {
		t.Fatalf("skip = %v, %v", out, err)
	}
	if r, err := c.Get(ctx, "customers", "3"); err != nil || string(r.Row["name"]) != `"bad3"` {
		t.Fatalf("skipped record = %+v, %v; want its merged state kept", r, err)
	}
	if got := n.row(t, 3); got != "<none>" {
		t.Fatalf("row 3 = %q, want none: skip applies nothing", got)
	}

	// Retry one after the fix.
	n.exec(t, `DROP TRIGGER refuse`)
	if err := c.Do(ctx, "POST", "/v1/parked/retry", ParkedTarget{Collection: "customers", Key: "2"}, &out); err != nil || out["requeued"] != 1 {
		t.Fatalf("retry = %v, %v", out, err)
	}
	waitFor(t, 15*time.Second, "row 2 applied", func() bool { return n.row(t, 2) == "bad2|||" })
	if err := c.Do(ctx, "GET", "/v1/parked", nil, &list); err != nil || list.Total != 0 || len(list.Parked) != 0 {
		t.Fatalf("parked after retry = %+v, %v", list, err)
	}
	if got := n.row(t, 3); got != "<none>" {
		t.Fatalf("row 3 = %q after the retry of 2, want still none", got)
	}
	err = c.Do(ctx, "POST", "/v1/parked/retry", ParkedTarget{Collection: "customers", Key: "2"}, nil)
	if err == nil || !strings.Contains(err.Error(), "(404)") {
		t.Fatalf("retry of a record not parked: %v, want 404", err)
	}

	// The skipped record flows again with its next change.
	if _, err := c.Patch(ctx, "customers", "3", map[string]any{"status": "fixed"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "row 3 applied after a change", func() bool { return n.row(t, 3) == "bad3|fixed||" })

	resp := do(t, n.a, "GET", "/metrics", "", "")
	if !strings.Contains(resp.body, "lattice_parked_skipped_total 1\n") {
		t.Fatalf("metrics lack lattice_parked_skipped_total 1")
	}
}

// Bad retry and skip requests get clear 4xx answers.
func TestParkedRequestsBounded(t *testing.T) {
	a := startAgent(t, customersConfig)
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/v1/parked/retry", `{}`, http.StatusBadRequest},
		{"POST", "/v1/parked/retry", `{"collection":"customers"}`, http.StatusBadRequest},
		{"POST", "/v1/parked/retry", `{"collection":"customers","key":"x"}`, http.StatusBadRequest},
		{"POST", "/v1/parked/retry", `{"collection":"customers","key":"1","extra":1}`, http.StatusBadRequest},
		{"POST", "/v1/parked/retry", `{"collection":"customers","key":"1"}`, http.StatusNotFound},
		{"POST", "/v1/parked/retry", `{"all":true}`, http.StatusOK},
		{"POST", "/v1/parked/skip", `{"all":true}`, http.StatusBadRequest},
		{"POST", "/v1/parked/skip", `{"collection":"customers","key":"1"}`, http.StatusNotFound},
		{"POST", "/v1/parked/skip", `{"collection":"customers","key":"` + strings.Repeat("1", 70000) + `"}`, http.StatusRequestEntityTooLarge},
		{"GET", "/v1/parked?limit=0", "", http.StatusBadRequest},
		{"GET", "/v1/parked?after=!!", "", http.StatusBadRequest},
		{"GET", "/v1/parked", "", http.StatusOK},
	} {
		if got := do(t, a, tc.method, tc.path, "", tc.body); got.code != tc.want {
			t.Errorf("%s %s %.40s = %d %s, want %d", tc.method, tc.path, tc.body, got.code, got.body, tc.want)
		}
	}
}

// GET /v1/collections lists the system's tables and the config's
// collections with their rules and record counts.
func TestCollectionsEndpoint(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "sys", nil, time.Millisecond)
	n.exec(t, `INSERT INTO customers (id, name) VALUES (1, 'a'), (2, 'b')`)
	c, _ := NewClient(n.a.APIAddr(), "", "")
	var out struct {
		Collections []CollectionInfo `json:"collections"`
	}
	waitFor(t, 10*time.Second, "two records counted", func() bool {
		return c.Do(context.Background(), "GET", "/v1/collections", nil, &out) == nil &&
			len(out.Collections) == 1 && out.Collections[0].Records == 2
	})
	col := out.Collections[0]
	if col.Name != "customers" || !col.Synced || strings.Join(col.Key, ",") != "id" || col.Fingerprint == "" {
		t.Fatalf("collection = %+v", col)
	}
	got := map[string]string{}
	for _, f := range col.Fields {
		got[f.Name] = f.Policy + "/" + f.Kind
	}
	if got["tags"] != "orset/list" {
		t.Fatalf("tags = %q", got["tags"])
	}
	if !strings.HasPrefix(got["name"], "lww/") || len(got) != 4 {
		t.Fatalf("fields = %v", got)
	}
}
