package console

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// page is what every template receives.
type page struct {
	Title   string
	Nav     string // the active tab
	Node    string
	CSRF    string
	Refresh int // seconds between reloads; 0: none
	Error   string
	Hint    string
	Notice  string
	Next    string // login: where to go after
	Authed  bool   // show the logout button
	// Paused is set when ?refresh=0 stopped the reloads; Toggle is the
	// page's address with the reloads switched the other way.
	Paused bool
	Toggle string
	Data   any
}

var pageNames = []string{"login", "error", "cluster", "node", "parked", "skip", "drift", "conflicts", "collections", "records", "record"}

var funcs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return humanDuration(time.Since(t)) + " ago"
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"ms":   func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) + " ms" },
	"join": strings.Join,
	"px":   func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"recordURL": func(collection, key string) string {
		return "/ui/records/" + url.PathEscape(collection) + "/" + url.PathEscape(key)
	},
	"collectionURL": func(collection string) string { return "/ui/collections/" + url.PathEscape(collection) },
	"compact":       compactJSON,
	// rows hands the conflict-rows template its list, the form token and
	// where to come back after a resolve.
	"rows": func(cs []conflict, csrf, back string) map[string]any {
		return map[string]any{"Conflicts": cs, "CSRF": csrf, "Back": back}
	},
	"pretty": func(raw json.RawMessage) string {
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") != nil {
			return string(raw)
		}
		return b.String()
	},
}

func parsePages() (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/conflict_rows.html", "templates/"+name+".html")
		if err != nil {
			return nil, errors.Wrapf(err, "console template %s", name)
		}
		out[name] = t
	}
	return out, nil
}

// humanDuration writes d with one or two units: 4s, 3m12s, 2h5m, 3d4h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m" + strconv.FormatInt(int64(d%time.Minute/time.Second), 10) + "s"
	case d < 48*time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h" + strconv.FormatInt(int64(d%time.Hour/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d" + strconv.FormatInt(int64(d%(24*time.Hour)/time.Hour), 10) + "h"
}

// compactJSON writes a JSON value on one line, bounded for a table cell.
func compactJSON(raw json.RawMessage) string {
	// Decoded and encoded again without HTML escapes (\u003c): the
	// template escapes for HTML, by context.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return string(raw)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return string(raw)
	}
	s := strings.TrimSuffix(b.String(), "\n")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// render writes a page; the page's own fields fill in around p.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, s *session, p page) {
	if s != nil {
		p.CSRF = s.csrf
		p.Authed = c.cfg.Token != ""
	}
	if p.Refresh < 0 {
		p.Refresh = 0 // a page that must not reload (an action's result)
	} else if c.cfg.Refresh > 0 && name != "login" && name != "error" && name != "skip" {
		q := r.URL.Query()
		if p.Paused = q.Get("refresh") == "0"; p.Paused {
			q.Del("refresh")
		} else {
			p.Refresh = max(1, int(c.cfg.Refresh/time.Second))
			q.Set("refresh", "0")
		}
		q.Del("done") // a notice is for the page right after its action
		p.Toggle = r.URL.Path
		if len(q) > 0 {
			p.Toggle += "?" + q.Encode()
		}
	}
	if p.Node == "" {
		var st status
		if c.call(r.Context(), "GET", "/v1/status", nil, &st) == nil {
			p.Node = st.Node
		}
	}
	var b bytes.Buffer
	if err := c.pages[name].Execute(&b, p); err != nil {
		c.log.Error("console page failed", "page", name, "err", err)
		http.Error(w, "the page could not be drawn; the agent's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// fail renders the error page.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, code int, msg, hint string) {
	_, s := c.sessionOf(r)
	c.render(w, r, code, "error", s, page{Title: http.StatusText(code), Error: msg, Hint: hint})
}

// failAPI renders an API error on the error page.
func (c *Console) failAPI(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		c.fail(w, r, ae.Code, ae.Msg, ae.Hint)
		return
	}
	c.fail(w, r, http.StatusInternalServerError, err.Error(), "")
}

// query returns a bounded query value.
func query(r *http.Request, name string) string {
	v := r.URL.Query().Get(name)
	if len(v) > maxValueBytes {
		return ""
	}
	return v
}

// memberRow is a member, or this node, on the cluster page.
type memberRow struct {
	member
	Self bool
	// Console is the member's console address, "" when its API is off.
	Console string
}

type clusterData struct {
	Status  status
	Members []memberRow
	Chart   *chart
	Alive   int
}

func (c *Console) clusterPage(w http.ResponseWriter, r *http.Request, s *session) {
	var st status
	if err := c.call(r.Context(), "GET", "/v1/status", nil, &st); err != nil {
		c.failAPI(w, r, err)
		return
	}
	d := clusterData{Status: st, Alive: 1}
	d.Members = append(d.Members, memberRow{member: member{Name: st.Node, Replica: st.Replica, Version: st.Version, State: "alive",
		SchemaFingerprint: st.Schema, Connected: true}, Self: true})
	for _, m := range st.Members {
		row := memberRow{member: m}
		if m.APIAddr != "" {
			row.Console = "//" + m.APIAddr + "/ui/"
		}
		if m.State == "alive" {
			d.Alive++
		}
		d.Members = append(d.Members, row)
	}
	d.Chart = histogramChart(c.metricFamilies()["lattice_propagation_delay_seconds"])
	c.render(w, r, http.StatusOK, "cluster", s, page{Title: "Cluster", Nav: "cluster", Node: st.Node, Data: d})
}

type loopRow struct {
	Name    string
	Loop    *loop
	Failing bool // failing for longer than ready.fail_after
}

type nodeData struct {
	Status status
	Loops  []loopRow
	Gossip []metricRow
}

func (c *Console) nodePage(w http.ResponseWriter, r *http.Request, s *session) {
	var st status
	if err := c.call(r.Context(), "GET", "/v1/status", nil, &st); err != nil {
		c.failAPI(w, r, err)
		return
	}
	d := nodeData{Status: st}
	for _, l := range []struct {
		name string
		l    *loop
	}{{"capture", st.Adapter.Capture}, {"apply", st.Adapter.Apply}, {"verify", st.Adapter.Verify}} {
		if l.l != nil {
			d.Loops = append(d.Loops, loopRow{Name: l.name, Loop: l.l, Failing: slices.Contains(st.Failing, l.name)})
		}
	}
	names := make([]string, 0, len(st.Gossip))
	for n := range st.Gossip {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		d.Gossip = append(d.Gossip, metricRow{Name: n, Value: st.Gossip[n].String()})
	}
	c.render(w, r, http.StatusOK, "node", s, page{Title: "This node", Nav: "node", Node: st.Node, Data: d})
}

// notices are the fixed texts an action leaves for the next page (never
// text from the request).
var notices = map[string]string{
	"retried":     "The record is queued for apply again; it leaves this list once the system takes it.",
	"retried-all": "Every parked record is queued for apply again.",
	"skipped":     "The record was skipped: this system keeps its current row until the record changes again.",
	"resolved":    "The conflict is resolved: the chosen value is a new write that reaches every node.",
}

func (c *Console) parkedPage(w http.ResponseWriter, r *http.Request, s *session) {
	q := url.Values{"limit": {"50"}}
	if after := query(r, "after"); after != "" {
		q.Set("after", after)
	}
	var l parkedList
	if err := c.call(r.Context(), "GET", "/v1/parked?"+q.Encode(), nil, &l); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "parked", s, page{Title: "Parked records", Nav: "parked", Notice: notices[query(r, "done")], Data: l})
}

type target struct {
	Collection string `json:"collection,omitempty"`
	Key        string `json:"key,omitempty"`
	Seq        uint64 `json:"seq,omitempty"`
	All        bool   `json:"all,omitempty"`
}

func (c *Console) skipPage(w http.ResponseWriter, r *http.Request, s *session) {
	t := target{Collection: query(r, "collection"), Key: query(r, "key")}
	t.Seq, _ = strconv.ParseUint(query(r, "seq"), 10, 64)
	c.render(w, r, http.StatusOK, "skip", s, page{Title: "Skip a parked record", Nav: "parked", Data: t})
}

func (c *Console) retryAction(w http.ResponseWriter, r *http.Request, s *session) {
	t := target{Collection: r.PostForm.Get("collection"), Key: r.PostForm.Get("key"), All: r.PostForm.Get("all") == "1"}
	if err := c.call(r.Context(), "POST", "/v1/parked/retry", t, nil); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.log.Info("console: parked record retried", "collection", t.Collection, "key", t.Key, "all", t.All, "remote", r.RemoteAddr)
	done := "retried"
	if t.All {
		done = "retried-all"
	}
	http.Redirect(w, r, "/ui/parked?done="+done, http.StatusSeeOther)
}

func (c *Console) skipAction(w http.ResponseWriter, r *http.Request, s *session) {
	t := target{Collection: r.PostForm.Get("collection"), Key: r.PostForm.Get("key")}
	seq, err := strconv.ParseUint(r.PostForm.Get("seq"), 10, 64)
	if err != nil || seq == 0 {
		c.fail(w, r, http.StatusBadRequest, "skip needs the seq of the parking it skips", "use the Skip button of the parked list")
		return
	}
	t.Seq = seq
	if err := c.call(r.Context(), "POST", "/v1/parked/skip", t, nil); err != nil {
		c.failAPI(w, r, err)
		return
	}
	http.Redirect(w, r, "/ui/parked?done=skipped", http.StatusSeeOther)
}

type driftData struct {
	Available bool
	Loop      *loop
	Verify    *verifyStatus
	Metrics   []metricRow
	// Report is the pass the Verify now button ran.
	Report *verifyReport
}

func (c *Console) drift(r *http.Request) (driftData, string, error) {
	var st status
	if err := c.call(r.Context(), "GET", "/v1/status", nil, &st); err != nil {
		return driftData{}, "", err
	}
	d := driftData{Loop: st.Adapter.Verify, Verify: st.Verify, Metrics: metricRows(c.metricFamilies(), "lattice_drift", "lattice_verify")}
	d.Available = d.Loop != nil || d.Verify != nil || len(d.Metrics) > 0
	return d, st.Node, nil
}

func (c *Console) driftPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, node, err := c.drift(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "drift", s, page{Title: "Drift", Nav: "drift", Node: node, Data: d})
}

// verifyAction runs one verification pass that only reports, and shows
// what it found.
func (c *Console) verifyAction(w http.ResponseWriter, r *http.Request, s *session) {
	var rep verifyReport
	if err := c.call(r.Context(), "POST", "/v1/verify", map[string]string{"repair": "report"}, &rep); err != nil {
		if missing(err) {
			c.fail(w, r, http.StatusNotFound, "this agent does not verify its system", "")
			return
		}
		c.failAPI(w, r, err)
		return
	}
	c.log.Info("console: verification pass run", "drift_records", rep.DriftRecords, "remote", r.RemoteAddr)
	d, node, err := c.drift(r)
	if err != nil {
		c.failAPI(w, r, err)
		return
	}
	d.Available, d.Report = true, &rep
	// The result is this answer's own: a reload would run nothing.
	c.render(w, r, http.StatusOK, "drift", s, page{Title: "Drift", Nav: "drift", Node: node, Data: d, Refresh: -1})
}

type conflictsData struct {
	Available bool
	Filter    map[string]string
	Conflicts []conflict
	Next      string
	NextQuery string
}

var conflictFilters = []string{"collection", "key", "field", "since", "until"}

func (c *Console) conflictsPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := conflictsData{Filter: map[string]string{}}
	q := url.Values{"limit": {"100"}}
	for _, f := range conflictFilters {
		if v := query(r, f); v != "" {
			d.Filter[f] = v
			q.Set(f, v)
		}
	}
	if after := query(r, "after"); after != "" {
		q.Set("after", after)
	}
	var l conflictList
	err := c.call(r.Context(), "GET", "/v1/conflicts?"+q.Encode(), nil, &l)
	switch {
	case missing(err):
	case err != nil:
		c.failAPI(w, r, err)
		return
	default:
		d.Available, d.Conflicts, d.Next = true, l.Conflicts, l.Next
		if d.Next != "" {
			nq := url.Values{}
			for k, v := range d.Filter {
				nq.Set(k, v)
			}
			nq.Set("after", d.Next)
			d.NextQuery = nq.Encode()
		}
	}
	c.render(w, r, http.StatusOK, "conflicts", s, page{Title: "Conflicts", Nav: "conflicts", Notice: notices[query(r, "done")], Data: d})
}

// resolveAction re-asserts a conflict's loser, or a value typed in (JSON,
// or else taken as a string), as a new write.
func (c *Console) resolveAction(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseUint(r.PostForm.Get("id"), 10, 64)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "resolve needs the conflict's id", "use the Resolve button of the conflict log")
		return
	}
	var body any
	if v := r.PostForm.Get("value"); r.PostForm.Get("use") == "value" {
		var js any
		if json.Unmarshal([]byte(v), &js) == nil {
			body = map[string]json.RawMessage{"value": json.RawMessage(v)}
		} else {
			body = map[string]string{"value": v}
		}
	}
	if err := c.call(r.Context(), "POST", "/v1/conflicts/"+strconv.FormatUint(id, 10)+"/resolve", body, nil); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.log.Info("console: conflict resolved", "id", id, "remote", r.RemoteAddr)
	back := "/ui/conflicts?done=resolved"
	if next := r.PostForm.Get("back"); strings.HasPrefix(next, "/ui/records/") && safeNext(next) == next {
		back = next
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (c *Console) collectionsPage(w http.ResponseWriter, r *http.Request, s *session) {
	var l collectionList
	if err := c.call(r.Context(), "GET", "/v1/collections", nil, &l); err != nil {
		c.failAPI(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "collections", s, page{Title: "Collections and policies", Nav: "collections", Data: l})
}

type recordsData struct {
	Collection string
	Records    []record
	Columns    []string
	Next       string
}

func (c *Console) recordsPage(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	q := url.Values{"limit": {"50"}}
	if after := query(r, "after"); after != "" {
		q.Set("after", after)
	}
	var l recordList
	if err := c.call(r.Context(), "GET", "/v1/records/"+url.PathEscape(name)+"?"+q.Encode(), nil, &l); err != nil {
		c.failAPI(w, r, err)
		return
	}
	d := recordsData{Collection: name, Records: l.Records, Next: l.Next}
	cols := map[string]bool{}
	for _, rec := range l.Records {
		for f := range rec.Row {
			cols[f] = true
		}
	}
	for f := range cols {
		d.Columns = append(d.Columns, f)
	}
	sort.Strings(d.Columns)
	c.render(w, r, http.StatusOK, "records", s, page{Title: name, Nav: "collections", Data: d})
}

type fieldRow struct {
	Name    string
	Value   string
	Policy  string
	Time    time.Time
	Replica string
	Node    string // the node whose replica wrote it, when known
	Source  string
	Stamp   string
	Key     bool // a key column: part of the record's identity, not written
}

type recordData struct {
	Record record
	Fields []fieldRow
	// ConflictLog says the agent keeps one; Conflicts are this record's.
	ConflictLog bool
	Conflicts   []conflict
	Back        string
}

func (c *Console) recordPage(w http.ResponseWriter, r *http.Request, s *session) {
	col, key := r.PathValue("collection"), r.PathValue("key")
	var rec record
	if err := c.call(r.Context(), "GET", "/v1/records/"+url.PathEscape(col)+"/"+url.PathEscape(key), nil, &rec); err != nil {
		c.failAPI(w, r, err)
		return
	}
	var st status
	_ = c.call(r.Context(), "GET", "/v1/status", nil, &st)
	nodes := map[string]string{st.Replica: st.Node}
	for _, m := range st.Members {
		if m.Replica != "" {
			nodes[m.Replica] = m.Name
		}
	}
	d := recordData{Record: rec}
	names := make([]string, 0, len(rec.Row))
	for f := range rec.Row {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		fr := fieldRow{Name: f, Value: compactJSON(rec.Row[f])}
		if meta, ok := rec.Fields[f]; ok {
			fr.Policy, fr.Time, fr.Replica, fr.Source, fr.Stamp = meta.Policy, meta.Time, meta.Replica, meta.Source, meta.Stamp
			fr.Node = nodes[meta.Replica]
		} else {
			fr.Key = true
		}
		d.Fields = append(d.Fields, fr)
	}
	var l conflictList
	if err := c.call(r.Context(), "GET", "/v1/conflicts?"+url.Values{"collection": {col}, "key": {key}, "limit": {"50"}}.Encode(), nil, &l); err == nil {
		d.ConflictLog, d.Conflicts = true, l.Conflicts
	}
	d.Back = r.URL.Path
	c.render(w, r, http.StatusOK, "record", s, page{Title: col + "/" + key, Nav: "collections", Node: st.Node, Data: d})
}
