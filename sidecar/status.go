package sidecar

import (
	"net/http"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
)

// Status is what GET /v1/status returns.
type Status struct {
	Node    string          `json:"node"`
	Replica string          `json:"replica"`
	Version string          `json:"version"`
	Ready   bool            `json:"ready"`
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
	Kind    string     `json:"kind"`
	Capture *loopState `json:"capture,omitempty"`
	Apply   *loopState `json:"apply,omitempty"`
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
	s := Status{
		Node:    a.cfg.Node,
		Replica: a.store.ReplicaID().String(),
		Version: Version,
		Ready:   a.ready.Load(),
		Time:    time.Now().UTC(),
		Digest:  d.Hash.String(),
		Records: d.Count,
		Members: a.node.Members(),
		Pending: a.store.PendingLen(),
		Adapter: AdapterStatus{Kind: a.cfg.Adapter.Kind},
		Gossip:  a.node.Stats(),
		Schema:  a.schema.Fingerprint(),
	}
	if a.adp != nil {
		s.Adapter.Capture = a.captureSt.Load()
		s.Adapter.Apply = a.applySt.Load()
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
