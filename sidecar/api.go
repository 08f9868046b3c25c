package sidecar

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/console"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The HTTP API speaks JSON. Errors are {"error": "...", "hint": "..."} with
// a status code that says whose fault it was.

const maxListLimit = 1000

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	metrics := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorLog: nil})
	if a.cfg.API.MetricsPublic {
		mux.Handle("GET /metrics", metrics)
	} else {
		mux.Handle("GET /metrics", a.auth(metrics))
	}
	mux.Handle("GET /v1/status", a.auth(http.HandlerFunc(a.status)))
	mux.Handle("GET /v1/digest", a.auth(http.HandlerFunc(a.digest)))
	mux.Handle("GET /v1/records/{collection}", a.auth(http.HandlerFunc(a.list)))
	mux.Handle("GET /v1/records/{collection}/{key}", a.auth(http.HandlerFunc(a.get)))
	mux.Handle("PUT /v1/records/{collection}/{key}", a.auth(http.HandlerFunc(a.put)))
	mux.Handle("PATCH /v1/records/{collection}/{key}", a.auth(http.HandlerFunc(a.patch)))
	mux.Handle("DELETE /v1/records/{collection}/{key}", a.auth(http.HandlerFunc(a.del)))
	mux.Handle("POST /v1/parked/requeue", a.auth(http.HandlerFunc(a.requeueParked)))
	mux.Handle("POST /v1/verify", a.auth(http.HandlerFunc(a.verifyHandler)))
	mux.Handle("GET /v1/parked", a.auth(http.HandlerFunc(a.listParked)))
	mux.Handle("POST /v1/parked/retry", a.auth(http.HandlerFunc(a.retryParked)))
	mux.Handle("POST /v1/parked/skip", a.auth(http.HandlerFunc(a.skipParked)))
	mux.Handle("GET /v1/collections", a.auth(http.HandlerFunc(a.collections)))
	mux.Handle("GET /v1/conflicts", a.auth(http.HandlerFunc(a.conflicts)))
	// Authenticated by the adapter, by signature: the system cannot hold
	// the API token.
	mux.HandleFunc("POST /v1/webhooks", a.webhook)
	mux.Handle("POST /v1/conflicts/{id}/resolve", a.auth(http.HandlerFunc(a.resolveConflict)))
	api := jsonMisses(mux)
	if !a.cfg.API.NoConsole {
		ui, err := console.New(console.Config{API: api, Token: a.token, Metrics: a.reg, Logger: a.log})
		if err != nil {
			// The templates are embedded and parsed by the tests: this is
			// a broken build, not a runtime condition.
			panic(errors.NewAssertionErrorWithWrappedErrf(err, "console"))
		}
		mux.Handle("/ui", ui)
		mux.Handle("/ui/", ui)
	}
	return a.count(newGuard(a.cfg.API, a.token).wrap(api))
}

// jsonMisses answers requests no route takes (404) or takes with another
// method (405, with Allow) in the API's JSON error form.
func jsonMisses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &codeProbe{header: http.Header{}, code: http.StatusNotFound}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, probe.code, errors.Newf("%s is not allowed on %s", r.Method, r.URL.Path), "allowed: "+allow)
			return
		}
		writeError(w, probe.code, errors.Newf("no route for %s %s", r.Method, r.URL.Path), "see docs/api.md")
	})
}

// codeProbe records the status code and headers a handler writes and
// discards its body.
type codeProbe struct {
	header http.Header
	code   int
}

func (p *codeProbe) Header() http.Header         { return p.header }
func (p *codeProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *codeProbe) WriteHeader(code int)        { p.code = code }

// count records request metrics. Every label comes from a fixed set, so
// that no client can grow /metrics: the method is a known one or "other",
// the route is the pattern that matched (which ServeMux records in
// r.Pattern) or "other", and the code is one this API writes.
func (a *Agent) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		start := a.clock.Now()
		next.ServeHTTP(sw, r)
		a.m.apiRequests.WithLabelValues(methodLabel(r.Method), routeLabel(r.Pattern), strconv.Itoa(sw.code)).Inc()
		a.m.apiLatency.Observe(clock.Since(a.clock, start).Seconds())
	})
}

// methodLabel returns method if it is one HTTP defines, else "other".
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// routeLabel returns the path of a registered pattern ("GET /v1/status"
// gives "/v1/status"), or "other" when no pattern matched.
func routeLabel(pattern string) string {
	if pattern == "" {
		return "other"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// auth requires "Authorization: Bearer <token>" when a token is configured.
// The scheme is case-insensitive and may be followed by more than one
// space (RFC 7235, section 2.1); the token is compared in constant time.
func (a *Agent) auth(next http.Handler) http.Handler {
	if a.token == "" {
		return next
	}
	want := []byte(a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare(bearerToken(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="lattice"`)
			writeError(w, http.StatusUnauthorized, errors.New("missing or wrong bearer token"),
				"send Authorization: Bearer <token> (the CLI: --token-file FILE or LATTICE_TOKEN; the agent reads it from api.token_file)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken returns the credentials of an Authorization header whose
// scheme is Bearer, in any case; nil for any other header.
func bearerToken(h string) []byte {
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil
	}
	return []byte(strings.TrimLeft(rest, " "))
}

type apiError struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
	// Limit names the size limit a write is over (crdt.Limit*).
	Limit string `json:"limit,omitempty"`
	// Field names the field a write was refused for.
	Field string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, code int, err error, hint string) {
	if hint == "" {
		if hs := errors.GetAllHints(err); len(hs) > 0 {
			hint = strings.Join(hs, "; ")
		}
	}
	out := apiError{Error: err.Error(), Hint: hint}
	if le, ok := crdt.LimitOf(err); ok {
		out.Limit = le.Limit
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		out.Field = fe.field
	}
	writeJSON(w, code, out)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"encode response"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (a *Agent) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers without authentication, so it names only a class of
// reason, never an error's text (which may name database hosts and users);
// /v1/status has the details.
func (a *Agent) readyz(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting", "reason": a.notReadyReason()})
		return
	}
	if failing := a.failing(a.clock.Now()); len(failing) > 0 {
		// The loop and its error are in /v1/status.
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "failing", "reason": failing[0] + " failing", "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// notReadyReason is one of a fixed set of texts that say why the agent is
// not ready.
func (a *Agent) notReadyReason() string {
	if st := a.captureSt.Load(); st != nil {
		switch st.State {
		case "retrying":
			return "capture failing"
		case "snapshot":
			return "initial snapshot"
		}
	}
	return "starting"
}

// recordJSON is a record as the API shows it.
type recordJSON struct {
	Collection string                `json:"collection"`
	Key        string                `json:"key"`
	Row        map[string]crdt.Value `json:"row"`
	Fields     map[string]fieldJSON  `json:"fields"`
}

type fieldJSON struct {
	Policy  string    `json:"policy"`
	Time    time.Time `json:"time"`
	Replica string    `json:"replica"`
	Source  string    `json:"source,omitempty"`
	Stamp   string    `json:"stamp"`
}

// target resolves the collection and key of a request.
func (a *Agent) target(w http.ResponseWriter, r *http.Request) (*engine.Mapping, *crdt.Collection, crdt.Key, bool) {
	name := r.PathValue("collection")
	ci, err := a.catalog().Lookup(name)
	if err != nil {
		writeError(w, http.StatusNotFound, err, "")
		return nil, nil, "", false
	}
	col, err := a.schema.Collection(name)
	if err != nil {
		writeError(w, http.StatusNotFound, err, "")
		return nil, nil, "", false
	}
	var key crdt.Key
	if text := r.PathValue("key"); text != "" {
		if key, err = ci.ParseKey(text); err != nil {
			writeError(w, http.StatusBadRequest, err, "keys are the key columns' values separated by commas, URL-escaped")
			return nil, nil, "", false
		}
	}
	return ci, col, key, true
}

func (a *Agent) recordJSON(ci *engine.Mapping, col *crdt.Collection, key crdt.Key, rec *crdt.Record) (*recordJSON, bool) {
	if !rec.Exists() {
		return nil, false
	}
	out := &recordJSON{Collection: ci.Name, Key: key.String(), Row: map[string]crdt.Value{}, Fields: map[string]fieldJSON{}}
	if kr, err := ci.KeyRow(key); err == nil {
		maps.Copy(out.Row, kr)
	}
	for _, fld := range rec.Fields {
		f := fld.Name
		v, meta, ok := rec.Get(col, f)
		if !ok {
			continue
		}
		out.Row[f] = v
		out.Fields[f] = fieldJSON{
			Policy:  meta.Policy.String(),
			Time:    meta.Stamp.TS.GoTime(),
			Replica: meta.Stamp.Replica.String(),
			Source:  meta.Source,
			Stamp:   meta.Stamp.String(),
		}
	}
	return out, true
}

func (a *Agent) get(w http.ResponseWriter, r *http.Request) {
	ci, col, key, ok := a.target(w, r)
	if !ok {
		return
	}
	a.writeRecord(w, ci, col, key, http.StatusNotFound)
}

// writeRecord answers with a record's current state, or with missing when
// it does not exist (404 for a read, 204 after a write that left nothing).
func (a *Agent) writeRecord(w http.ResponseWriter, ci *engine.Mapping, col *crdt.Collection, key crdt.Key, missing int) {
	rec, err := a.store.Get(ci.Name, key)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	out, exists := a.recordJSON(ci, col, key, rec)
	switch {
	case exists:
		writeJSON(w, http.StatusOK, out)
	case missing == http.StatusNotFound:
		writeError(w, missing, errors.Newf("no record %s/%s", ci.Name, key), "")
	default:
		w.WriteHeader(missing)
	}
}

func (a *Agent) list(w http.ResponseWriter, r *http.Request) {
	ci, col, _, ok := a.target(w, r)
	if !ok {
		return
	}
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, errors.Newf("limit %q must be between 1 and %d", s, maxListLimit), "")
			return
		}
		limit = n
	}
	var after crdt.Key
	if s := r.URL.Query().Get("after"); s != "" {
		k, err := ci.ParseKey(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, errors.Wrap(err, "after"), "")
			return
		}
		after = k
	}
	out := struct {
		Records []*recordJSON `json:"records"`
		Next    string        `json:"next,omitempty"`
	}{Records: []*recordJSON{}}
	// Deleted records are skipped, so read until the page is full.
	for len(out.Records) < limit {
		entries, err := a.store.Scan(ci.Name, after, limit)
		if err != nil {
			writeError(w, http.StatusInternalServerError, err, "")
			return
		}
		for _, e := range entries {
			after = e.Key
			if rj, ok := a.recordJSON(ci, col, e.Key, e.Record); ok {
				out.Records = append(out.Records, rj)
				if len(out.Records) == limit {
					break
				}
			}
		}
		if len(entries) < limit {
			after = ""
			break
		}
	}
	if after != "" {
		out.Next = after.String()
	}
	writeJSON(w, http.StatusOK, out)
}

// readRaw reads a body, bounded by api.max_body_bytes; it answers the
// request and returns false when it cannot.
func (a *Agent) readRaw(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body := http.MaxBytesReader(w, r.Body, a.cfg.API.MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge,
				errors.Newf("request body over the limit of %d bytes", a.cfg.API.MaxBodyBytes), "raise api.max_body_bytes or send less")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, errors.Wrap(err, "read request body"), "")
		return nil, false
	}
	return b, true
}

// readBody reads a JSON object body, bounded by api.max_body_bytes.
func (a *Agent) readBody(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	b, ok := a.readRaw(w, r)
	if !ok {
		return nil, false
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		if err == nil {
			err = errors.New("body is null")
		}
		writeError(w, http.StatusBadRequest, errors.Wrap(err, "request body must be a JSON object of fields"), "")
		return nil, false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, errors.New("request body holds more than one JSON value"), "")
		return nil, false
	}
	return fields, true
}

func (a *Agent) put(w http.ResponseWriter, r *http.Request)   { a.write(w, r, true) }
func (a *Agent) patch(w http.ResponseWriter, r *http.Request) { a.write(w, r, false) }

// write handles PUT (the body is the whole record: fields it leaves out
// become null) and PATCH (only the fields named change; OR-set fields may
// take {"add": [...], "remove": [...]}).
func (a *Agent) write(w http.ResponseWriter, r *http.Request, full bool) {
	ci, col, key, ok := a.target(w, r)
	if !ok {
		return
	}
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	ch := engine.Change{Collection: ci.Name, Key: key, Row: crdt.Row{}, Full: full}
	keyRow, _ := ci.KeyRow(key)
	for _, f := range sortedKeys(body) {
		raw := body[f]
		if err := crdt.ValidateName(f); err != nil {
			writeError(w, http.StatusBadRequest, errors.Wrapf(err, "field %q", f), "")
			return
		}
		if slices.Contains(ci.Key, f) {
			v, err := ci.Value(f, raw)
			if err != nil || !crdt.Equal(v, keyRow[f]) {
				writeError(w, http.StatusBadRequest, errors.Newf("field %s is a key column and differs from the key in the URL", f), "")
				return
			}
			continue
		}
		if col.Policy(f).Kind == crdt.ORSet {
			if ops, isOps, err := setOps(ci, f, raw); err != nil {
				writeError(w, http.StatusBadRequest, &fieldError{field: f, err: err}, "")
				return
			} else if isOps {
				if full {
					writeError(w, http.StatusBadRequest, errors.Newf("field %s: add/remove needs PATCH; PUT takes the whole set as a list", f), "")
					return
				}
				if ch.Add == nil {
					ch.Add, ch.Remove = map[string][]crdt.Value{}, map[string][]crdt.Value{}
				}
				ch.Add[f], ch.Remove[f] = ops.add, ops.remove
				continue
			}
		} else if setOpsBody(raw) != nil {
			writeError(w, http.StatusBadRequest,
				&fieldError{field: f, err: errors.Newf("field %s has policy %s: add/remove needs an orset field", f, col.Policy(f))},
				"set the field's policy to orset in the config, or write the whole value")
			return
		}
		v, err := ci.Value(f, raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, &fieldError{field: f, err: err}, "")
			return
		}
		ch.Row[f] = v
	}
	if err := a.checkColumns(ci, col, key, ch); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			writeError(w, http.StatusBadRequest, err, "")
		} else {
			writeError(w, http.StatusInternalServerError, err, "")
		}
		return
	}
	a.commit(w, ci, col, key, ch)
}

// fieldError is a write refused for one field.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// checkColumns refuses, on a node whose adapter holds the collection, a
// write its system could not store: a value for a field the table has no
// column for, or a NOT NULL column that the write would leave null (PUT
// replaces the whole row; PATCH keeps the fields it does not name). A null
// for a field without a column is accepted: it clears a value that came
// from elsewhere, and a null is never part of the row an apply writes. Values of the wrong type are
// refused earlier, by the column's kind. The errors are *fieldError.
func (a *Agent) checkColumns(ci *engine.Mapping, col *crdt.Collection, key crdt.Key, ch engine.Change) error {
	if !ci.Synced {
		return nil
	}
	for _, f := range sortedKeys(ch.Row) {
		if _, ok := ci.Kinds[f]; !ok && !ch.Row[f].IsNull() {
			return &fieldError{field: f, err: errors.WithHint(errors.Newf("table %s has no column %s", ci.Name, f),
				"write only the table's columns on this node; a null clears a field that has no column")}
		}
	}
	for _, ops := range []map[string][]crdt.Value{ch.Add, ch.Remove} {
		for _, f := range sortedKeys(ops) {
			if _, ok := ci.Kinds[f]; !ok {
				return &fieldError{field: f, err: errors.Newf("table %s has no column %s", ci.Name, f)}
			}
		}
	}
	if len(ci.NotNull) == 0 {
		return nil
	}
	var view crdt.Row
	if !ch.Full {
		rec, err := a.store.Get(ci.Name, key)
		if err != nil {
			return err
		}
		view = rec.View(col)
	}
	for _, c := range sortedKeys(ci.NotNull) {
		v, ok := ch.Row[c]
		if !ok {
			v, ok = view[c]
		}
		if (!ok || v.IsNull()) && len(ch.Add[c]) == 0 {
			return &fieldError{field: c, err: errors.WithHint(errors.Newf("column %s of table %s is NOT NULL: the write would leave it null", c, ci.Name),
				"give the column a value")}
		}
	}
	return nil
}

type ops struct{ add, remove []crdt.Value }

// setOpsBody returns the members of a {"add": ..., "remove": ...} object,
// or nil for any other JSON.
func setOpsBody(raw json.RawMessage) map[string]json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(raw, &body) != nil {
		return nil
	}
	_, add := body["add"]
	_, rem := body["remove"]
	if !add && !rem {
		return nil
	}
	return body
}

// setOps parses {"add": [...], "remove": [...]}; isOps is false for any
// other JSON (a whole set as a list, or null).
func setOps(ci *engine.Mapping, f string, raw json.RawMessage) (o ops, isOps bool, err error) {
	body := setOpsBody(raw)
	if body == nil {
		return o, false, nil
	}
	bad := func(err error) (ops, bool, error) {
		return ops{}, true, errors.Wrapf(err, "field %s: want {\"add\": [...], \"remove\": [...]}", f)
	}
	for _, name := range sortedKeys(body) {
		var dst *[]crdt.Value
		switch name {
		case "add":
			dst = &o.add
		case "remove":
			dst = &o.remove
		default:
			return bad(errors.Newf("unknown member %q", name))
		}
		var elems []json.RawMessage
		if err := json.Unmarshal(body[name], &elems); err != nil {
			return bad(errors.Wrap(err, name))
		}
		for _, e := range elems {
			v, err := ci.Elem(f, e)
			if err != nil {
				return o, true, err
			}
			*dst = append(*dst, v)
		}
	}
	return o, true, nil
}

func (a *Agent) del(w http.ResponseWriter, r *http.Request) {
	ci, col, key, ok := a.target(w, r)
	if !ok {
		return
	}
	a.commit(w, ci, col, key, engine.Change{Collection: ci.Name, Key: key, Delete: true})
}

// commit steps one API change through the engine, carries out its Ready
// and answers with the record's new state.
func (a *Agent) commit(w http.ResponseWriter, ci *engine.Mapping, col *crdt.Collection, key crdt.Key, ch engine.Change) {
	res, err := a.step(func(r engine.Reader) (*engine.Ready, error) { return a.eng.Local(r, []engine.Change{ch}, nil) })
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	if len(res.Failed) > 0 {
		err := res.Failed[0].Err
		code, hint := http.StatusBadRequest, ""
		switch {
		case errors.Is(err, crdt.ErrUnknownCollection):
			code = http.StatusNotFound
		case crdt.IsTooLarge(err):
			code, hint = http.StatusRequestEntityTooLarge, "nothing was stored: write fewer fields, set elements or bytes (docs/api.md lists the limits)"
		}
		writeError(w, code, err, hint)
		return
	}
	a.afterLocal(res, "api")
	if ch.Delete {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.writeRecord(w, ci, col, key, http.StatusNoContent)
}

func (a *Agent) digest(w http.ResponseWriter, r *http.Request) {
	d := a.store.Digest()
	out := map[string]any{"node": a.cfg.Node, "digest": d.Hash.String(), "records": d.Count}
	if v := a.verifyStatus(); v != nil {
		out["system"] = map[string]any{"digest": v.SystemDigest, "rows": v.SystemRows, "at": v.At}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) requeueParked(w http.ResponseWriter, r *http.Request) {
	parked, err := a.store.Parked(100000)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	ids := make([]crdt.ID, 0, len(parked))
	for _, p := range parked {
		ids = append(ids, crdt.MakeID(p.Collection, p.Key))
	}
	if err := a.store.Requeue(ids); err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	a.wakeApply()
	writeJSON(w, http.StatusOK, map[string]int{"requeued": len(ids)})
}
