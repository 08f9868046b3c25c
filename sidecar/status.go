package sidecar

import (
	"net/http"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
)

// Status is what GET /v1/status returns.
type Status struct {
	Node    string `json:"node"`
	Replica string `json:"replica"`
	Version string `json:"version"`
	Ready   bool   `json:"ready"`
	// Failing names the loops (capture, apply) failing for longer than
	// ready.fail_after: while it is not empty, /readyz answers 503.
	Failing []string        `json:"failing,omitempty"`
	Time    time.Time       `json:"time"`
	Digest  string          `json:"digest"`
	Records uint64          `json:"records"`
	Members []gossip.Member `json:"members"`
	Pending int             `json:"pending_apply"`
	Parked  []ParkedJSON    `json:"parked,omitempty"`
	Adapter AdapterStatus   `json:"adapter"`
	Gossip  gossip.Stats    `json:"gossip"`
	Schema  string          `json:"schema_fingerprint"`
}

// AdapterStatus reports the capture and apply loops.
type AdapterStatus struct {
	Kind    string      `json:"kind"`
	Capture *LoopStatus `json:"capture,omitempty"`
	Apply   *LoopStatus `json:"apply,omitempty"`
}

// LoopStatus is the state of the capture or apply loop.
type LoopStatus struct {
	// State is idle, snapshot, capturing, applying or retrying; Since is
	// when it began.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Error is the last error of a failure that has not ended yet,
	// FailingSince the time of its first error and Retries the number of
	// attempts that failed since.
	Error        string    `json:"error,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Retries      int       `json:"retries,omitempty"`
	// LastBatch is when the loop last finished a batch.
	LastBatch time.Time `json:"last_batch,omitzero"`
}

func loopStatus(s *loopState, now time.Time) *LoopStatus {
	if s == nil {
		return nil
	}
	ls := &LoopStatus{State: s.State, Since: s.Since.UTC(), LastBatch: s.LastBatch.UTC()}
	if since := s.failingSince(now); !since.IsZero() {
		ls.Error, ls.FailingSince, ls.Retries = s.Error, since.UTC(), s.Retries
	}
	return ls
}

// ParkedJSON is a record the system rejected, set aside.
type ParkedJSON struct {
	Collection string    `json:"collection"`
	Key        string    `json:"key"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// Status returns the agent's status.
func (a *Agent) Status() Status {
	d := a.store.Digest()
	now := time.Now()
	s := Status{
		Node:    a.cfg.Node,
		Replica: a.store.ReplicaID().String(),
		Version: Version,
		Ready:   a.ready.Load(),
		Failing: a.failing(now),
		Time:    now.UTC(),
		Digest:  d.Hash.String(),
		Records: d.Count,
		Members: a.node.Members(),
		Pending: a.store.PendingLen(),
		Adapter: AdapterStatus{Kind: a.cfg.Adapter.Kind},
		Gossip:  a.node.Stats(),
		Schema:  a.schema.Fingerprint(),
	}
	s.Ready = s.Ready && len(s.Failing) == 0
	if a.adp != nil {
		s.Adapter.Capture = loopStatus(a.captureSt.Load(), now)
		s.Adapter.Apply = loopStatus(a.applySt.Load(), now)
	}
	if parked, err := a.store.Parked(100); err == nil {
		for _, p := range parked {
			s.Parked = append(s.Parked, ParkedJSON{Collection: p.Collection, Key: p.Key.String(), Reason: p.Reason, At: p.At})
		}
	}
	return s
}

func (a *Agent) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.Status())
}
