package sidecar

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// ConflictJSON is one logged conflict as GET /v1/conflicts shows it.
type ConflictJSON struct {
	// ID is the conflict's number on this node (a cursor and the argument
	// of POST /v1/conflicts/{id}/resolve).
	ID uint64 `json:"id"`
	// At is when this node logged it.
	At         time.Time `json:"at"`
	Collection string    `json:"collection"`
	Key        string    `json:"key"`
	// Field is empty for an update against a delete.
	Field string `json:"field,omitempty"`
	// Rule is what decided: lww, prefer, max, min or delete.
	Rule     string            `json:"rule"`
	Winner   ConflictWriteJSON `json:"winner"`
	Loser    ConflictWriteJSON `json:"loser"`
	Resolved *ResolutionJSON   `json:"resolved,omitempty"`
}

// ConflictWriteJSON is one side of a conflict.
type ConflictWriteJSON struct {
	// Value is the written value as the records API shows it (absent for
	// a delete).
	Value json.RawMessage `json:"value,omitempty"`
	// Delete says this side is the record's delete.
	Delete bool      `json:"delete,omitempty"`
	Stamp  string    `json:"stamp"`
	Time   time.Time `json:"time"`
	// Replica is the writer's replica ID; Node its name when this node
	// knows it (itself or a live member).
	Replica string `json:"replica"`
	Node    string `json:"node,omitempty"`
	// Source is the node the field recorded as the writer (prefer fields).
	Source string `json:"source,omitempty"`
}

// ResolutionJSON says who resolved a conflict, when, and with what.
type ResolutionJSON struct {
	By    string          `json:"by"`
	At    time.Time       `json:"at"`
	Stamp string          `json:"stamp"`
	Value json.RawMessage `json:"value"`
}

// ConflictPage is the answer of GET /v1/conflicts.
type ConflictPage struct {
	Conflicts []ConflictJSON `json:"conflicts"`
	// Next is the cursor of the next page (after=...), empty after the
	// last.
	Next string `json:"next,omitempty"`
}

// replicaNames maps replica IDs to node names: this node's, and those of
// every member seen since start, live now or not (a conflict's writer may
// have left or be restarting).
func (a *Agent) replicaNames() map[string]string {
	names := map[string]string{}
	if a.node != nil {
		names = a.node.ReplicaNames()
		for _, m := range a.node.Members() {
			if m.Replica != "" {
				names[m.Replica] = m.Name
			}
		}
	}
	names[a.store.ReplicaID().String()] = a.cfg.Node
	return names
}

func conflictWriteJSON(w crdt.ConflictWrite, names map[string]string) ConflictWriteJSON {
	out := ConflictWriteJSON{Delete: w.Delete, Stamp: w.Stamp.String(), Time: w.Stamp.TS.GoTime(),
		Replica: w.Stamp.Replica.String(), Node: names[w.Stamp.Replica.String()], Source: w.Source}
	if !w.Delete {
		out.Value = valueJSON(w.Value)
	}
	return out
}

func conflictJSON(c *store.Conflict, names map[string]string) ConflictJSON {
	out := ConflictJSON{ID: c.ID, At: time.Unix(0, c.At).UTC(), Collection: c.Collection, Key: c.Key.String(),
		Field: c.Field, Rule: c.Rule, Winner: conflictWriteJSON(c.Winner, names), Loser: conflictWriteJSON(c.Loser, names)}
	if r := c.Resolved; r != nil {
		out.Resolved = &ResolutionJSON{By: r.By, At: time.Unix(0, r.At).UTC(), Stamp: r.Stamp.String(), Value: valueJSON(r.Value)}
	}
	return out
}

// parseTimeParam reads an RFC 3339 time or Unix nanoseconds.
func parseTimeParam(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixNano(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.Newf("time %q is neither RFC 3339 nor Unix nanoseconds", s)
	}
	return n, nil
}

// conflicts answers GET /v1/conflicts: filters collection, key (with
// collection), field, since and until; paged by limit and after.
func (a *Agent) conflicts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var cq store.ConflictQuery
	cq.Collection, cq.Field = q.Get("collection"), q.Get("field")
	if text := q.Get("key"); text != "" {
		if cq.Collection == "" {
			writeError(w, http.StatusBadRequest, errors.New("key needs collection"), "add collection=NAME")
			return
		}
		ci, err := a.catalog().Lookup(cq.Collection)
		if err != nil {
			writeError(w, http.StatusNotFound, err, "")
			return
		}
		if cq.Key, err = ci.ParseKey(text); err != nil {
			writeError(w, http.StatusBadRequest, err, "keys are the key columns' values separated by commas")
			return
		}
	}
	var err error
	if cq.Since, err = parseTimeParam(q.Get("since")); err == nil {
		cq.Until, err = parseTimeParam(q.Get("until"))
	}
	if err == nil && q.Get("after") != "" {
		cq.After, err = strconv.ParseUint(q.Get("after"), 10, 64)
	}
	if err == nil && q.Get("limit") != "" {
		cq.Limit, err = strconv.Atoi(q.Get("limit"))
		if err == nil && (cq.Limit < 1 || cq.Limit > store.MaxConflictPage) {
			err = errors.Newf("limit %d outside [1, %d]", cq.Limit, store.MaxConflictPage)
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err, "see docs/api.md, GET /v1/conflicts")
		return
	}
	cs, next, err := a.store.Conflicts(cq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	names := a.replicaNames()
	page := ConflictPage{Conflicts: make([]ConflictJSON, 0, len(cs))}
	for i := range cs {
		page.Conflicts = append(page.Conflicts, conflictJSON(&cs[i], names))
	}
	if next != 0 {
		page.Next = strconv.FormatUint(next, 10)
	}
	writeJSON(w, http.StatusOK, page)
}

// resolveConflict answers POST /v1/conflicts/{id}/resolve: it re-asserts
// the body's "value", or without one the loser's value (or delete), as a
// new write of the conflict's field, and marks the conflict resolved by
// this node in the same transaction.
func (a *Agent) resolveConflict(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, errors.Newf("conflict id %q is not a positive number", r.PathValue("id")), "")
		return
	}
	c, err := a.store.Conflict(id)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNoConflict) {
			code = http.StatusNotFound
		}
		writeError(w, code, err, "")
		return
	}
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if r.ContentLength != 0 {
		raw, ok := a.readBody(w, r)
		if !ok {
			return
		}
		for k := range raw {
			if k != "value" {
				writeError(w, http.StatusBadRequest, errors.Newf("unknown field %q", k), `the body is {"value": V}, or empty for the loser's value`)
				return
			}
		}
		body.Value = raw["value"]
	}
	ci, err := a.catalog().Lookup(c.Collection)
	if err != nil {
		writeError(w, http.StatusNotFound, err, "")
		return
	}
	col, err := a.schema.Collection(c.Collection)
	if err != nil {
		writeError(w, http.StatusNotFound, err, "")
		return
	}
	ch := engine.Change{Collection: c.Collection, Key: c.Key, Resolves: id, ResolvedBy: a.cfg.Node}
	source := a.cfg.Node
	switch {
	case c.Field == "" && body.Value != nil:
		writeError(w, http.StatusBadRequest, errors.Newf("conflict %d is an update against a delete: it has no field to write", id),
			"resolve it without a value to delete the record again, or write the record with lattice put")
		return
	case c.Field == "":
		if !c.Loser.Delete {
			writeError(w, http.StatusConflict, errors.Newf("conflict %d: the delete won; nothing to re-assert", id), "")
			return
		}
		ch.Delete = true
	default:
		v := c.Loser.Value
		if body.Value != nil {
			if v, err = ci.Value(c.Field, body.Value); err != nil {
				writeError(w, http.StatusBadRequest, err, "")
				return
			}
		}
		ch.Row = crdt.Row{c.Field: v}
		p := col.Policy(c.Field)
		switch p.Kind {
		case crdt.Prefer:
			// An override speaks for the field's owner: a write from a
			// lower-ranked source would lose again.
			source = p.Prefer[0]
		case crdt.Max, crdt.Min:
			rec, err := a.store.Get(c.Collection, c.Key)
			if err != nil {
				writeError(w, http.StatusInternalServerError, err, "")
				return
			}
			cur, _, ok := rec.Get(col, c.Field)
			cmp := crdt.Compare(v, cur)
			if p.Kind == crdt.Min {
				cmp = -cmp
			}
			if ok && (v.IsNull() || cmp < 0) {
				writeError(w, http.StatusConflict, errors.Newf("field %s has policy %s: %s cannot win over %s", c.Field, p, v, cur),
					"a max (min) field keeps the largest (smallest) value written; change the policy to override it")
				return
			}
		}
	}
	p := a.store.Params(source)
	res, err := a.step(func(r engine.Reader) (*engine.Ready, error) { return engine.Local(r, p, []engine.Change{ch}, nil) })
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	if len(res.Failed) > 0 {
		writeError(w, http.StatusBadRequest, res.Failed[0].Err, "")
		return
	}
	a.afterLocal(res, "api")
	c, err = a.store.Conflict(id)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	writeJSON(w, http.StatusOK, conflictJSON(&c, a.replicaNames()))
}
