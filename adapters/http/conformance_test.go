package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/adaptertest"
	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationConformanceJSONServer runs the adapter conformance suite
// against json-server: every scenario an API can take part in, with
// Features saying what it cannot do.
func TestIntegrationConformanceJSONServer(t *testing.T) {
	adaptertest.Run(t, jsonServerHarness{})
}

// jsonServerFeatures is what json-server, and the adapter over it, can hold
// and report.
func jsonServerFeatures() adaptertest.Features {
	return adaptertest.Features{
		// A record is named by its ID, which never changes; requests are
		// not transactions; capture polls by updated-at and finds deletes
		// by listing.
		RecordIDs: true, NoTransactions: true, Polling: true,
		// Values are JSON, kept by a JavaScript server: no binary, no
		// ±Inf, NaN nor JSON null apart from null, and numbers are doubles.
		// json-server keeps what it is sent: times are RFC 3339 text with
		// nanoseconds.
		NoBytes: true, NoInf: true, NaN: false, NoJSONNull: true, IntLimit: 1 << 53, TimePrecision: 0,
		// A cursor carries the installation's ID and names capture
		// positions kept in the state file, which Ack deletes.
		RejectsForeignCursor: true, RejectsDiscardedCursor: true,
		// Every ID is the server's (or minted by the adapter): the ID map
		// scenario runs.
		GeneratedKeys: true,
	}
}

// jsonServerHarness implements adaptertest.Harness with one json-server per
// system, each table a collection of its db.json. Users write and read with
// plain HTTP requests, as the API's other clients do, stamping updatedAt
// themselves as json-server's clients must.
type jsonServerHarness struct{}

func (jsonServerHarness) Features() adaptertest.Features { return jsonServerFeatures() }

func (jsonServerHarness) NewSystem(t *testing.T, tables []adaptertest.TableSpec) adaptertest.System {
	t.Helper()
	db := map[string][]map[string]any{}
	for _, spec := range tables {
		db[spec.Name] = []map[string]any{}
	}
	s := apitest.StartJSONServer(t, db)
	return &apiSystem{t: t, base: s.URL, tables: tables, state: filepath.Join(t.TempDir(), "state.db"), stamped: true,
		path:   func(table string) string { return "/" + table },
		config: func(cols string) string { return "preset: json-server\ncollections:\n" + cols }}
}

// TestIntegrationConformancePocketBase runs the adapter conformance suite
// against PocketBase, whose collections the harness creates with typed
// fields through its API; the adapter logs in as the superuser.
func TestIntegrationConformancePocketBase(t *testing.T) {
	adaptertest.Run(t, pocketBaseHarness{})
}

// pocketBaseFeatures is json-server's, but PocketBase has no null (an
// empty field holds "", 0, false or an empty date) and keeps times to the
// millisecond.
func pocketBaseFeatures() adaptertest.Features {
	f := jsonServerFeatures()
	f.ZeroIsNull = true
	f.TimePrecision = time.Millisecond
	return f
}

// pocketBaseHarness implements adaptertest.Harness with one PocketBase per
// system, each table a base collection whose fields have the column's type
// (number, text, bool, date, json) and whose ID takes the suite's record IDs
// (up to 100 characters of a-z and 0-9). Users write and read as the
// superuser, with plain requests.
type pocketBaseHarness struct{}

func (pocketBaseHarness) Features() adaptertest.Features { return pocketBaseFeatures() }

func (pocketBaseHarness) NewSystem(t *testing.T, tables []adaptertest.TableSpec) adaptertest.System {
	t.Helper()
	p := apitest.StartPocketBase(t, apitest.PocketBaseOptions{})
	for _, spec := range tables {
		fields := []apitest.Field{{"name": "id", "type": "text", "primaryKey": true, "required": true, "system": true,
			"min": 1, "max": 100, "pattern": "^[a-z0-9]+$", "autogeneratePattern": "[a-z0-9]{15}"}}
		for _, c := range spec.Columns {
			if c.Name == "id" {
				continue
			}
			f := apitest.Field{"name": c.Name}
			switch c.Kind {
			case crdt.KindInt, crdt.KindFloat:
				f["type"] = "number"
			case crdt.KindString:
				f["type"], f["max"] = "text", 100000
			case crdt.KindBool:
				f["type"] = "bool"
			case crdt.KindTime:
				f["type"] = "date"
			case crdt.KindJSON:
				f["type"], f["maxSize"] = "json", 1<<21
			default:
				t.Fatalf("table %s column %s: no PocketBase field for %s", spec.Name, c.Name, c.Kind)
			}
			fields = append(fields, f)
		}
		p.CreateCollection(spec.Name, fields...)
	}
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte(apitest.PocketBasePassword), 0o600); err != nil {
		t.Fatal(err)
	}
	return &apiSystem{t: t, base: p.URL, tables: tables, state: filepath.Join(dir, "state.db"), list: "items",
		path: func(table string) string { return "/api/collections/" + table + "/records" },
		config: func(cols string) string {
			return fmt.Sprintf("preset: pocketbase\nauth:\n  login: {identity: %s, password_file: %s}\ncollections:\n%s",
				apitest.PocketBaseEmail, pw, cols)
		},
		header: func(r *nethttp.Request) { r.Header.Set("Authorization", p.Token()) }}
}

// apiSystem is one API server holding the suite's tables as collections.
type apiSystem struct {
	t      *testing.T
	base   string
	tables []adaptertest.TableSpec
	state  string
	// config returns the adapter's config but for base_url, state and the
	// request budget, given the collections' YAML.
	config func(collections string) string
	// header sets the users' credentials on a request, when the API needs
	// them.
	header func(*nethttp.Request)
	// path returns the path of a table's records.
	path func(table string) string
	// stamped says the users stamp updatedAt (json-server keeps no time of
	// its own); list names the array of records in a list response, which
	// then pages ("" for a response that is the array).
	stamped bool
	list    string

	mu   sync.Mutex
	last int64 // the last updatedAt stamped
}

func (s *apiSystem) spec(table string) (*adaptertest.TableSpec, error) {
	for i := range s.tables {
		if s.tables[i].Name == table {
			return &s.tables[i], nil
		}
	}
	return nil, errors.Newf("unknown table %s", table)
}

// Open opens the adapter with a config that declares every column of every
// table, its state file kept across restarts.
func (s *apiSystem) Open(ctx context.Context) (adapters.Adapter, error) {
	var cols strings.Builder
	for _, spec := range s.tables {
		fmt.Fprintf(&cols, "  %s:\n    columns: {", spec.Name)
		first := true
		for _, c := range spec.Columns {
			if c.Name == "id" {
				continue
			}
			if !first {
				cols.WriteString(", ")
			}
			first = false
			fmt.Fprintf(&cols, "%s: %s", c.Name, c.Kind)
		}
		cols.WriteString("}\n")
	}
	y := fmt.Sprintf("base_url: %s\nstate: %s\nrate: 2000\nburst: 200\nretries: 2\nbackoff: 20ms\n"+
		"poll_interval: 20ms\noverlap: 1s\nreconcile: 100ms\n", s.base, s.state) + s.config(cols.String())
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg, nil, nil)
}

// stamp returns the updatedAt of a user's write: the time, after every
// stamp before it and after the record's current one (which may be the
// adapter's), as a careful client stamps.
func (s *apiSystem) stamp(current int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = max(time.Now().UnixMilli(), s.last+1, current+1)
	return s.last
}

// Exec sends each op as its own request, in order, stopping at the first
// that fails: an insert is a POST, an update a GET and a PATCH of the
// fields it names, a delete a DELETE. An update or a delete of a record
// that does not exist does nothing, as in SQL.
func (s *apiSystem) Exec(ctx context.Context, ops ...adaptertest.Op) error {
	for _, op := range ops {
		if len(op.NewKey) > 0 {
			return errors.Newf("%s: a record's ID never changes", op.Table)
		}
		if _, err := s.spec(op.Table); err != nil {
			return err
		}
		id := op.Row["id"]
		if id.Kind() != crdt.KindString {
			return errors.Newf("%s %s: no id in %v", op.Kind, op.Table, op.Row)
		}
		path := s.path(op.Table) + "/" + url.PathEscape(id.AsString())
		switch op.Kind {
		case adaptertest.Insert:
			var stamp int64
			if s.stamped {
				stamp = s.stamp(0)
			}
			body, err := s.body(op.Row, stamp)
			if err != nil {
				return err
			}
			if _, err := s.do(ctx, "POST", s.path(op.Table), body); err != nil {
				return err
			}
		case adaptertest.Update:
			var stamp int64
			if s.stamped {
				cur, err := s.do(ctx, "GET", path, nil)
				if isStatus(err, nethttp.StatusNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var rec struct {
					UpdatedAt int64 `json:"updatedAt"`
				}
				_ = json.Unmarshal(cur, &rec)
				stamp = s.stamp(rec.UpdatedAt)
			}
			fields := crdt.Row{}
			for k, v := range op.Row {
				if k != "id" {
					fields[k] = v
				}
			}
			body, err := s.body(fields, stamp)
			if err != nil {
				return err
			}
			if _, err := s.do(ctx, "PATCH", path, body); err != nil && !isStatus(err, nethttp.StatusNotFound) {
				return err
			}
		case adaptertest.Delete:
			if _, err := s.do(ctx, "DELETE", path, nil); err != nil && !isStatus(err, nethttp.StatusNotFound) {
				return err
			}
		}
	}
	return nil
}

// body renders fields as a JSON object, as an application would: times as
// RFC 3339 text, JSON documents inline; and updatedAt unless it is zero.
func (s *apiSystem) body(fields crdt.Row, updated int64) ([]byte, error) {
	obj := map[string]json.RawMessage{}
	if updated != 0 {
		obj["updatedAt"] = json.RawMessage(fmt.Sprint(updated))
	}
	for k, v := range fields {
		b, err := v.MarshalJSON()
		if err != nil {
			return nil, err
		}
		obj[k] = b
	}
	return json.Marshal(obj)
}

// httpStatus is a response other than 2xx.
type httpStatus struct {
	code int
	msg  string
}

func (e *httpStatus) Error() string { return fmt.Sprintf("%d: %s", e.code, e.msg) }

func isStatus(err error, code int) bool {
	var se *httpStatus
	return errors.As(err, &se) && se.code == code
}

func (s *apiSystem) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.header != nil {
		s.header(req)
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, errors.Wrapf(&httpStatus{code: resp.StatusCode, msg: clip(b)}, "%s %s", method, path)
	}
	return b, nil
}

// Rows lists the collection with a plain GET and converts each field to a
// Value of its column's kind.
func (s *apiSystem) Rows(ctx context.Context, table string) ([]crdt.Row, error) {
	spec, err := s.spec(table)
	if err != nil {
		return nil, err
	}
	if s.list == "" {
		b, err := s.do(ctx, "GET", s.path(table), nil)
		if err != nil {
			return nil, err
		}
		var recs []map[string]json.RawMessage
		if err := json.Unmarshal(b, &recs); err != nil {
			return nil, errors.Wrapf(err, "list %s", table)
		}
		return rowsOf(spec, recs)
	}
	var all []map[string]json.RawMessage
	for page := 1; ; page++ {
		b, err := s.do(ctx, "GET", fmt.Sprintf("%s?page=%d&perPage=500&skipTotal=1&sort=id", s.path(table), page), nil)
		if err != nil {
			return nil, err
		}
		var resp map[string]json.RawMessage
		var recs []map[string]json.RawMessage
		if err := json.Unmarshal(b, &resp); err != nil {
			return nil, errors.Wrapf(err, "list %s", table)
		}
		if err := json.Unmarshal(resp[s.list], &recs); err != nil {
			return nil, errors.Wrapf(err, "list %s", table)
		}
		all = append(all, recs...)
		if len(recs) < 500 {
			return rowsOf(spec, all)
		}
	}
}

// rowsOf converts records to rows of spec's columns; a missing field is
// null.
func rowsOf(spec *adaptertest.TableSpec, recs []map[string]json.RawMessage) ([]crdt.Row, error) {
	out := make([]crdt.Row, 0, len(recs))
	for _, rec := range recs {
		row := crdt.Row{}
		for _, c := range spec.Columns {
			raw, ok := rec[c.Name]
			if !ok {
				row[c.Name] = crdt.Null()
				continue
			}
			v, err := crdt.FromJSON(raw, c.Kind, c.Elem)
			var text string
			if err != nil && c.Kind == crdt.KindTime && json.Unmarshal(raw, &text) == nil {
				// PocketBase: an empty date, or its own layout.
				if text == "" {
					v, err = crdt.Null(), nil
				} else if t, perr := time.Parse("2006-01-02 15:04:05.000Z", text); perr == nil {
					v, err = crdt.Time(t), nil
				}
			}
			if err != nil {
				return nil, errors.Wrapf(err, "%s record %s field %s", spec.Name, rec["id"], c.Name)
			}
			row[c.Name] = v
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["id"].AsString() < out[j]["id"].AsString() })
	return out, nil
}
