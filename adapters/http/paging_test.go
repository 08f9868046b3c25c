package http

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// cursorAPI is a small API with the cursor and body-link paging that
// json-server lacks: GET /contacts lists {"data": [...], "next_cursor":
// ..., "links": {"next": ...}}, by (updatedAt, id) with updatedAt_gte,
// else by id. Its cursor is an offset into the listing, as many APIs make
// it: records that move while a client pages shift the others.
type cursorAPI struct {
	*httptest.Server
	mu      sync.Mutex
	recs    map[string]map[string]any
	linkTo  string // when set, next links point at this origin instead
	listing int    // list requests
}

func newCursorAPI(t *testing.T, n int) *cursorAPI {
	f := &cursorAPI{recs: map[string]map[string]any{}}
	for i := range n {
		id := fmt.Sprintf("r%02d", i)
		f.recs[id] = map[string]any{"id": id, "name": "v0", "updatedAt": time.Now().UnixMilli()}
	}
	f.Server = httptest.NewServer(nethttp.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *cursorAPI) serve(w nethttp.ResponseWriter, r *nethttp.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if id, ok := strings.CutPrefix(r.URL.Path, "/contacts/"); ok {
		rec := f.recs[id]
		if rec == nil {
			w.WriteHeader(404)
			fmt.Fprint(w, "{}")
			return
		}
		_ = json.NewEncoder(w).Encode(rec)
		return
	}
	f.listing++
	q := r.URL.Query()
	var list []map[string]any
	for _, rec := range f.recs {
		list = append(list, rec)
	}
	since, bySince := q["updatedAt_gte"]
	if bySince {
		s, _ := strconv.ParseInt(since[0], 10, 64)
		list = slices.DeleteFunc(list, func(rec map[string]any) bool { return rec["updatedAt"].(int64) < s })
	}
	slices.SortFunc(list, func(a, b map[string]any) int {
		if bySince && a["updatedAt"].(int64) != b["updatedAt"].(int64) {
			return int(a["updatedAt"].(int64) - b["updatedAt"].(int64))
		}
		return strings.Compare(a["id"].(string), b["id"].(string))
	})
	off, _ := strconv.Atoi(strings.TrimPrefix(q.Get("cursor"), "c"))
	limit, _ := strconv.Atoi(q.Get("limit"))
	page := list[min(off, len(list)):min(off+limit, len(list))]
	out := map[string]any{"data": page, "next_cursor": nil, "links": map[string]any{"next": nil}}
	if off+limit < len(list) {
		cur := "c" + strconv.Itoa(off+limit)
		q.Set("cursor", cur)
		origin := f.URL
		if f.linkTo != "" {
			origin = f.linkTo
		}
		out["next_cursor"] = cur
		out["links"] = map[string]any{"next": origin + r.URL.Path + "?" + q.Encode()}
	}
	_ = json.NewEncoder(w).Encode(out)
}

// update sets a record's name, stamping it later than any before.
func (f *cursorAPI) update(id, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := time.Now().UnixMilli()
	if prev, ok := f.recs[id]; ok {
		u = max(u, prev["updatedAt"].(int64)+1)
	}
	f.recs[id] = map[string]any{"id": id, "name": name, "updatedAt": u}
}

func (f *cursorAPI) names() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for id, rec := range f.recs {
		out[id] = rec["name"].(string)
	}
	return out
}

func cursorConfig(t *testing.T, base, paging string) *Config {
	t.Helper()
	y := fmt.Sprintf(`
base_url: %s
state: %s
rate: 10000
burst: 100
poll_interval: 10ms
overlap: 1s
reconcile: 100ms
collections:
  contacts:
    id_kind: string
    updated: updatedAt
    updated_format: unix_ms
    since_param: updatedAt_gte
    records: data
    limit_param: limit
    page_size: 4
    %s
    columns: {name: string}
`, base, filepath.Join(t.TempDir(), "state.db"), paging)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Capture by updated-at and reconciliation's full listing work with
// cursor paging and with next links in the body, and lose nothing while
// records move under an offset cursor: the walk restarts its filter at the
// last updated-at instead of trusting the cursor.
func TestPagingCursorAndBodyLink(t *testing.T) {
	for name, paging := range map[string]string{
		"cursor":    "{paging: cursor, cursor_param: cursor, cursor_path: next_cursor}",
		"next_path": "{paging: next_link, next_path: links.next}",
	} {
		t.Run(name, func(t *testing.T) {
			paging = strings.NewReplacer("{", "", "}", "", ", ", "\n    ").Replace(paging)
			f := newCursorAPI(t, 30)
			a := openAdapter(t, cursorConfig(t, f.URL, paging))
			ctx := context.Background()
			var snap collector
			cur, err := a.Snapshot(ctx, snap.sink)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(snap.latest()); n != 30 {
				t.Fatalf("snapshot: %d records, want 30", n)
			}
			var c collector
			capture(t, a, cur, &c)
			// Updates move records to the end of the listing while capture
			// pages through it.
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 300 {
				f.update(fmt.Sprintf("r%02d", r.IntN(30)), fmt.Sprintf("v%d", i+1))
			}
			f.mu.Lock()
			delete(f.recs, "r07")
			f.mu.Unlock()
			want := f.names()
			waitFor(t, "capture to reach the API's state", func() bool {
				l := c.latest()
				for id, name := range want {
					if l[crdt.StringKey(id)]["name"].AsString() != name && snap.latest()[crdt.StringKey(id)]["name"].AsString() != name {
						return false
					}
				}
				row, ok := l[crdt.StringKey("r07")]
				return ok && row == nil
			})
			f.mu.Lock()
			t.Logf("%d list requests", f.listing)
			f.mu.Unlock()
		})
	}
}

// A next link to another host is refused: the credentials go nowhere
// but base_url.
func TestPagingRefusesForeignLink(t *testing.T) {
	f := newCursorAPI(t, 10)
	f.linkTo = "http://127.0.0.2:1"
	a := openAdapter(t, cursorConfig(t, f.URL, "paging: next_link\n    next_path: links.next"))
	_, err := a.Snapshot(context.Background(), (&collector{}).sink)
	if err == nil || !strings.Contains(err.Error(), "leaves http://127.0.0.1") {
		t.Fatalf("Snapshot: %v, want the foreign link refused", err)
	}
	// The same for a Link header.
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Link", `<https://elsewhere.example/contacts?page=2>; rel="next"`)
		fmt.Fprint(w, `{"data": [{"id": "a", "updatedAt": 1, "name": "x"}]}`)
	}))
	t.Cleanup(srv.Close)
	a = openAdapter(t, cursorConfig(t, srv.URL, "paging: next_link"))
	if _, err := a.Snapshot(context.Background(), (&collector{}).sink); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("Snapshot: %v, want the foreign link refused", err)
	}
}

// An API that hands out the same cursor again ends the listing with an
// error instead of a loop.
func TestPagingRepeatedCursor(t *testing.T) {
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		fmt.Fprint(w, `{"data": [{"id": "a", "updatedAt": 1, "name": "x"}], "next_cursor": "same"}`)
	}))
	t.Cleanup(srv.Close)
	a := openAdapter(t, cursorConfig(t, srv.URL, "paging: cursor\n    cursor_param: cursor\n    cursor_path: next_cursor"))
	if _, err := a.Snapshot(context.Background(), (&collector{}).sink); err == nil || !strings.Contains(err.Error(), "already read") {
		t.Fatalf("Snapshot: %v, want a repeated cursor refused", err)
	}
}

func TestLinkNext(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`<http://h/c?_page=2>; rel="next"`, "http://h/c?_page=2"},
		{`<http://h/c?_page=1>; rel="first", <http://h/c?_page=3>; rel="next", <http://h/c?_page=9>; rel="last"`, "http://h/c?_page=3"},
		{`<http://h/c?a=1,2>; rel="prev",<http://h/c?b=3>; rel=next`, "http://h/c?b=3"},
		{`</c?p=2>; title="x"; rel="prefetch next"`, "/c?p=2"},
		{`<http://h/c?_page=1>; rel="first"`, ""},
		{``, ""},
		{`garbage`, ""},
	} {
		if got := linkNext([]string{tc.in}); got != tc.want {
			t.Errorf("linkNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestJSONString(t *testing.T) {
	for _, tc := range []struct {
		body, path, want string
		err              bool
	}{
		{`{"meta": {"next": "abc"}}`, "meta.next", "abc", false},
		{`{"meta": {"next": null}}`, "meta.next", "", false},
		{`{"meta": {}}`, "meta.next", "", false},
		{`{"next": 12}`, "next", "12", false},
		{`{"next": {"a": 1}}`, "next", "", true},
		{`[1]`, "next", "", true},
	} {
		got, err := jsonString([]byte(tc.body), tc.path)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("jsonString(%s, %s) = %q, %v", tc.body, tc.path, got, err)
		}
	}
}

// A redirect to another host is not followed: the request reaches only
// base_url's host.
func TestRedirectStaysOnBaseURL(t *testing.T) {
	var elsewhere int
	other := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		elsewhere++
		fmt.Fprint(w, "[]")
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path == "/moved" {
			fmt.Fprint(w, "[]")
			return
		}
		target := other.URL + "/contacts"
		if r.URL.Path == "/contacts/local" {
			target = "/moved"
		}
		nethttp.Redirect(w, r, target, nethttp.StatusFound)
	}))
	t.Cleanup(srv.Close)
	a := budgetAdapter(t, srv.URL, "")
	if _, err := a.c.do(context.Background(), "GET", srv.URL+"/contacts/local", nil); err != nil {
		t.Fatalf("redirect on the same host: %v", err)
	}
	_, err := a.c.do(context.Background(), "GET", srv.URL+"/contacts", nil)
	if err == nil || !strings.Contains(err.Error(), "not followed") || elsewhere != 0 {
		t.Fatalf("redirect elsewhere: %v, %d requests there", err, elsewhere)
	}
}
