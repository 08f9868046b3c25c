package console

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// The JSON the console reads, as docs/api.md defines it. Only the fields a
// page shows are named; the rest of each answer is ignored.

type status struct {
	Node    string    `json:"node"`
	Replica string    `json:"replica"`
	Version string    `json:"version"`
	Ready   bool      `json:"ready"`
	Failing []string  `json:"failing"`
	Time    time.Time `json:"time"`
	Digest  string    `json:"digest"`
	Records uint64    `json:"records"`
	Members []member  `json:"members"`
	Pending int       `json:"pending_apply"`
	Adapter struct {
		Kind    string `json:"kind"`
		Capture *loop  `json:"capture"`
		Apply   *loop  `json:"apply"`
		Verify  *loop  `json:"verify"`
	} `json:"adapter"`
	Gossip map[string]json.Number `json:"gossip"`
	Schema string                 `json:"schema_fingerprint"`
	// Verify is the last verification pass, where the agent verifies.
	Verify *verifyStatus `json:"verify"`
}

type verifyStatus struct {
	At           time.Time `json:"at"`
	Seconds      float64   `json:"seconds"`
	Rows         int64     `json:"rows"`
	DriftRecords int       `json:"drift_records"`
	Repaired     int       `json:"repaired"`
	Repair       string    `json:"repair"`
	SystemDigest string    `json:"system_digest"`
	SystemRows   uint64    `json:"system_rows"`
}

// verifyReport is the answer of POST /v1/verify.
type verifyReport struct {
	Started      time.Time `json:"started"`
	Seconds      float64   `json:"seconds"`
	Repair       string    `json:"repair"`
	Rows         int64     `json:"rows"`
	Records      int64     `json:"records"`
	Ranges       int64     `json:"ranges"`
	RangesDiffer int64     `json:"ranges_differ"`
	DriftRecords int       `json:"drift_records"`
	Drift        []struct {
		Collection string `json:"collection"`
		Key        string `json:"key"`
		Kind       string `json:"kind"`
		Fields     []struct {
			Field  string          `json:"field"`
			System json.RawMessage `json:"system"`
			Merged json.RawMessage `json:"merged"`
		} `json:"fields"`
	} `json:"drift"`
	Repaired     int    `json:"repaired"`
	SystemDigest string `json:"system_digest"`
	SystemRows   uint64 `json:"system_rows"`
}

// conflictList is the answer of GET /v1/conflicts.
type conflictList struct {
	Conflicts []conflict `json:"conflicts"`
	Next      string     `json:"next"`
}

type conflict struct {
	ID         uint64        `json:"id"`
	At         time.Time     `json:"at"`
	Collection string        `json:"collection"`
	Key        string        `json:"key"`
	Field      string        `json:"field"`
	Rule       string        `json:"rule"`
	Winner     conflictWrite `json:"winner"`
	Loser      conflictWrite `json:"loser"`
	Resolved   *struct {
		By    string          `json:"by"`
		At    time.Time       `json:"at"`
		Stamp string          `json:"stamp"`
		Value json.RawMessage `json:"value"`
	} `json:"resolved"`
}

type conflictWrite struct {
	Value   json.RawMessage `json:"value"`
	Delete  bool            `json:"delete"`
	Stamp   string          `json:"stamp"`
	Time    time.Time       `json:"time"`
	Replica string          `json:"replica"`
	Node    string          `json:"node"`
	Source  string          `json:"source"`
}

type member struct {
	Name              string    `json:"name"`
	Replica           string    `json:"replica"`
	Addr              string    `json:"addr"`
	APIAddr           string    `json:"api_addr"`
	Version           string    `json:"version"`
	State             string    `json:"state"`
	SchemaFingerprint string    `json:"schema_fingerprint"`
	SchemaMismatch    []string  `json:"schema_mismatch"`
	LastContact       time.Time `json:"last_contact"`
	LagMS             float64   `json:"lag_ms"`
	QueuedDeltas      int       `json:"queued_deltas"`
	Connected         bool      `json:"connected"`
}

type loop struct {
	State        string    `json:"state"`
	Since        time.Time `json:"since"`
	Error        string    `json:"error"`
	FailingSince time.Time `json:"failing_since"`
	Retries      int       `json:"retries"`
	LastBatch    time.Time `json:"last_batch"`
}

type parkedList struct {
	Parked []struct {
		Collection string                     `json:"collection"`
		Key        string                     `json:"key"`
		Reason     string                     `json:"reason"`
		At         time.Time                  `json:"at"`
		Seq        uint64                     `json:"seq"`
		Row        map[string]json.RawMessage `json:"row"`
	} `json:"parked"`
	Total int    `json:"total"`
	Next  string `json:"next"`
}

type collectionList struct {
	Collections []struct {
		Name        string   `json:"name"`
		Key         []string `json:"key"`
		Synced      bool     `json:"synced"`
		Records     uint64   `json:"records"`
		Fingerprint string   `json:"fingerprint"`
		Fields      []struct {
			Name       string `json:"name"`
			Policy     string `json:"policy"`
			Configured bool   `json:"configured"`
			Kind       string `json:"kind"`
		} `json:"fields"`
		// Mapping is the collection's mapping to this node's system, where
		// the agent has one.
		Mapping json.RawMessage `json:"mapping"`
	} `json:"collections"`
	Schema string `json:"schema_fingerprint"`
}

type record struct {
	Collection string                     `json:"collection"`
	Key        string                     `json:"key"`
	Row        map[string]json.RawMessage `json:"row"`
	Fields     map[string]struct {
		Policy  string    `json:"policy"`
		Time    time.Time `json:"time"`
		Replica string    `json:"replica"`
		Source  string    `json:"source"`
		Stamp   string    `json:"stamp"`
	} `json:"fields"`
}

type recordList struct {
	Records []record `json:"records"`
	Next    string   `json:"next"`
}

// apiError is an answer of the API that is not a success.
type apiError struct {
	Code  int
	Msg   string `json:"error"`
	Hint  string `json:"hint"`
	Route bool   // false when no route took the request (404/405 from the mux)
}

func (e *apiError) Error() string { return e.Msg }

// missing reports whether err says that the API has no such endpoint: the
// feature has not landed on this agent.
func missing(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && !ae.Route
}

// call sends one request to the API in process and decodes a JSON answer
// into out.
func (c *Console) call(ctx context.Context, method, path string, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return errors.Wrap(err, "encode request")
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://console.invalid"+path, rd)
	if err != nil {
		return errors.Wrap(err, "build request")
	}
	req.Host = "127.0.0.1"
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.code >= 300 {
		ae := &apiError{Code: rec.code, Route: true}
		if json.Unmarshal(rec.body.Bytes(), ae) != nil || ae.Msg == "" {
			ae.Msg = strings.TrimSpace(rec.body.String())
		}
		// The API answers a request no route takes with "no route for" (404)
		// or "is not allowed on" (405).
		if (rec.code == http.StatusNotFound && strings.HasPrefix(ae.Msg, "no route for ")) || rec.code == http.StatusMethodNotAllowed {
			ae.Route = false
		}
		return ae
	}
	if out != nil && rec.body.Len() > 0 {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return errors.Wrapf(err, "decode %s %s", method, path)
		}
	}
	return nil
}

// recorder is the response writer of an in-process API call.
type recorder struct {
	header http.Header
	code   int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
