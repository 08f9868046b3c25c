package sidecar

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// Parked records are the ones the local system refused: the apply loop sets
// them aside with the system's error so that every other record keeps
// flowing. An operator lists them, fixes the cause in the system and
// retries them, or skips them.
//
// Skip means exactly this: the parked entry is dropped and the record is
// not written into this node's system now. Nothing else changes. The
// record's merged state stays in this node's store and on every peer, other
// systems keep it, and this system keeps whatever row it has (possibly none,
// or an older one). The next change to the record, from any node, queues
// it for this system again; verification, where it runs, reports the row as
// drift. A skip is logged at warn level and counted in
// lattice_parked_skipped_total.

// maxParkedBody bounds the body of a retry or skip request.
const maxParkedBody = 64 << 10

// ParkedRecord is a parked record as GET /v1/parked shows it.
type ParkedRecord struct {
	Collection string `json:"collection"`
	Key        string `json:"key"`
	// Reason is the system's error.
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Seq identifies this parking; POST /v1/parked/skip takes it to skip
	// only the failure the operator saw.
	Seq uint64 `json:"seq"`
	// Row is the record's merged state, the row the system refused (absent
	// when the record is deleted or its state cannot be decoded).
	Row map[string]json.RawMessage `json:"row,omitempty"`
}

// ParkedList is the answer of GET /v1/parked.
type ParkedList struct {
	Parked []ParkedRecord `json:"parked"`
	// Total counts every parked record, not only this page.
	Total int `json:"total"`
	// Next is the cursor of the next page (pass it as ?after=), "" on the
	// last one.
	Next string `json:"next,omitempty"`
}

// ParkedTarget names a parked record in a retry or skip request.
type ParkedTarget struct {
	Collection string `json:"collection,omitempty"`
	Key        string `json:"key,omitempty"`
	// Seq, in a skip, skips the record only while it is parked as Seq.
	Seq uint64 `json:"seq,omitempty"`
	// All, in a retry, retries every parked record.
	All bool `json:"all,omitempty"`
}

func (a *Agent) listParked(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListLimit {
			writeError(w, http.StatusBadRequest, errors.Newf("limit %q must be between 1 and %d", s, maxListLimit), "")
			return
		}
		limit = n
	}
	var after crdt.ID
	if s := r.URL.Query().Get("after"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) > 2*crdt.MaxKeyBytes {
			writeError(w, http.StatusBadRequest, errors.New("after is not a cursor this API gave"), "pass the next value of the previous page")
			return
		}
		after = crdt.ID(b)
	}
	// One more than asked says whether there is a next page.
	parked, err := a.store.ParkedAfter(after, limit+1)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	out := ParkedList{Parked: []ParkedRecord{}, Total: a.store.ParkedLen()}
	for i, p := range parked {
		if i == limit {
			out.Next = base64.RawURLEncoding.EncodeToString([]byte(parked[i-1].ID()))
			break
		}
		out.Parked = append(out.Parked, a.parkedRecord(p))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) parkedRecord(p store.Parked) ParkedRecord {
	pr := ParkedRecord{Collection: p.Collection, Key: p.Key.String(), Reason: p.Reason, At: p.At, Seq: p.Seq}
	if p.Record == nil {
		return pr
	}
	col, err := a.schema.Collection(p.Collection)
	if err != nil {
		return pr
	}
	view := p.Record.View(col)
	if view == nil {
		return pr
	}
	row := crdt.Row{}
	if ci, err := a.catalog().Lookup(p.Collection); err == nil {
		if kr, err := ci.KeyRow(p.Key); err == nil {
			maps.Copy(row, kr)
		}
	}
	maps.Copy(row, view)
	pr.Row = make(map[string]json.RawMessage, len(row))
	for f, v := range row {
		if b, err := json.Marshal(v); err == nil {
			pr.Row[f] = b
		}
	}
	return pr
}

// parkedTarget reads a retry or skip request and resolves its record.
func (a *Agent) parkedTarget(w http.ResponseWriter, r *http.Request) (ParkedTarget, crdt.ID, bool) {
	var t ParkedTarget
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxParkedBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, errors.Newf("request body over %d bytes", maxParkedBody), "")
		return t, "", false
	}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			writeError(w, http.StatusBadRequest, errors.Wrap(err, "request body"),
				`send {"collection": "...", "key": "..."} (retry also takes {"all": true})`)
			return t, "", false
		}
	}
	if t.All {
		return t, "", true
	}
	if t.Collection == "" || t.Key == "" {
		writeError(w, http.StatusBadRequest, errors.New("name the parked record by collection and key"),
			`send {"collection": "...", "key": "..."}; GET /v1/parked lists them`)
		return t, "", false
	}
	ci, err := a.catalog().Lookup(t.Collection)
	if err != nil {
		writeError(w, http.StatusNotFound, err, "")
		return t, "", false
	}
	key, err := ci.ParseKey(t.Key)
	if err != nil {
		writeError(w, http.StatusBadRequest, err, "keys are the key columns' values separated by commas, as GET /v1/parked shows them")
		return t, "", false
	}
	id := crdt.MakeID(ci.Name, key)
	if !a.isParked(id) {
		writeError(w, http.StatusNotFound, errors.Newf("%s/%s is not parked", t.Collection, t.Key),
			"it may have been retried, skipped or changed since; GET /v1/parked lists what is parked")
		return t, "", false
	}
	return t, id, true
}

func (a *Agent) isParked(id crdt.ID) bool { return a.parkedEntry(id) != nil }

// parkedEntry returns the parked entry of id, or nil.
func (a *Agent) parkedEntry(id crdt.ID) *store.Parked {
	p, ok, err := a.store.ParkedEntry(id)
	if err != nil || !ok {
		return nil
	}
	return &p
}

func (a *Agent) retryParked(w http.ResponseWriter, r *http.Request) {
	t, id, ok := a.parkedTarget(w, r)
	if !ok {
		return
	}
	if t.All {
		a.requeueParked(w, r)
		return
	}
	if err := a.store.Requeue([]crdt.ID{id}); err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	a.log.Info("parked record queued for apply again", "collection", t.Collection, "key", t.Key)
	a.wakeApply()
	writeJSON(w, http.StatusOK, map[string]int{"requeued": 1})
}

func (a *Agent) skipParked(w http.ResponseWriter, r *http.Request) {
	t, id, ok := a.parkedTarget(w, r)
	if !ok {
		return
	}
	if t.All {
		writeError(w, http.StatusBadRequest, errors.New("skip takes one record, not all"),
			"skip records one by one, after reading each one's error")
		return
	}
	p := a.parkedEntry(id)
	skipped, err := a.store.Skip(id, t.Seq)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err, "")
		return
	}
	if !skipped {
		writeError(w, http.StatusConflict, errors.Newf("%s/%s was parked again (seq %d is gone) or retried since", t.Collection, t.Key, t.Seq),
			"list the parked records again and read the current error before skipping")
		return
	}
	reason := ""
	if p != nil {
		reason = p.Reason
	}
	a.log.Warn("parked record skipped: its merged state is not written into this system until it changes again",
		"collection", t.Collection, "key", t.Key, "seq", t.Seq, "reason", reason, "remote", r.RemoteAddr)
	a.m.parkedSkipped.Inc()
	writeJSON(w, http.StatusOK, map[string]int{"skipped": 1})
}
