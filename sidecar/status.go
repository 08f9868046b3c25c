package sidecar

import (
	"net/http"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
)

// Status is what GET /v1/status returns. Its JSON names are the public
// ones, written here and in docs/api.md: snake_case, with the unit in the
// name where a number has one (lag_ms). No type of another package is
// marshalled as it is: renaming a Go field never renames a public key.
type Status struct {
	// Node is this sidecar's name, Replica its replica ID (hex): stamps
	// name the replica, peers and logs the node.
	Node    string `json:"node"`
	Replica string `json:"replica"`
	Version string `json:"version"`
	Ready   bool   `json:"ready"`
	// Failing names the loops (capture, apply) failing for longer than
	// ready.fail_after: while it is not empty, /readyz answers 503.
	Failing []string       `json:"failing,omitempty"`
	Time    time.Time      `json:"time"`
	Digest  string         `json:"digest"`
	Records uint64         `json:"records"`
	Members []MemberStatus `json:"members"`
	Pending int            `json:"pending_apply"`
	Parked  []ParkedJSON   `json:"parked,omitempty"`
	Adapter AdapterStatus  `json:"adapter"`
	Gossip  GossipStatus   `json:"gossip"`
	Schema  string         `json:"schema_fingerprint"`
	// Verify is the last verification pass (omitted before the first).
	Verify *VerifyStatus `json:"verify,omitempty"`
}

// MemberStatus is one peer as this node sees it.
type MemberStatus struct {
	Name string `json:"name"`
	// Replica is the replica ID its writes are stamped with (as in
	// /v1/records' "replica"); omitted for a peer that does not advertise
	// it.
	Replica string `json:"replica,omitempty"`
	Addr    string `json:"addr"`     // gossip address (ip:port)
	APIAddr string `json:"api_addr"` // its HTTP API, "" when off
	Version string `json:"version"`
	// State is alive (answering or suspected) or failed (being
	// reconnected).
	State string `json:"state"`
	// SchemaFingerprint is the peer's; SchemaMismatch lists the collections
	// whose rules differ from ours (["*"] until the first stream says
	// which): none of the peer's changes to them are merged.
	SchemaFingerprint string   `json:"schema_fingerprint"`
	SchemaMismatch    []string `json:"schema_mismatch,omitempty"`
	// LastContact is when a data message from the peer last arrived.
	LastContact time.Time `json:"last_contact,omitzero"`
	// LagMS is the delay, in milliseconds, from the origin stamp of the
	// newest write in the last delta from the peer to its merge here.
	LagMS float64 `json:"lag_ms"`
	// QueuedDeltas waiting to be sent to the peer.
	QueuedDeltas int `json:"queued_deltas"`
	// Connected reports whether the outgoing delta stream is up.
	Connected bool `json:"connected"`
}

// GossipStatus holds the gossip layer's counters since start.
type GossipStatus struct {
	Members             int    `json:"members"` // live peers, this node excluded
	DeltasSent          uint64 `json:"deltas_sent"`
	FragmentsSent       uint64 `json:"fragments_sent"`
	DeltasReceived      uint64 `json:"deltas_received"`
	FragmentsReceived   uint64 `json:"fragments_received"`
	FragmentsMerged     uint64 `json:"fragments_merged"`
	FragmentsRelayed    uint64 `json:"fragments_relayed"`
	FragmentsDropped    uint64 `json:"fragments_dropped"`
	FragmentsRejected   uint64 `json:"fragments_rejected"`
	BytesIn             uint64 `json:"bytes_in"`
	BytesOut            uint64 `json:"bytes_out"`
	Syncs               uint64 `json:"syncs"`
	SyncFailures        uint64 `json:"sync_failures"`
	SyncsRefused        uint64 `json:"syncs_refused"`
	SyncRecordsSent     uint64 `json:"sync_records_sent"`
	SyncRecordsReceived uint64 `json:"sync_records_received"`
	SyncBytes           uint64 `json:"sync_bytes"`
	Bootstraps          uint64 `json:"bootstraps"`
	BootstrapRecords    uint64 `json:"bootstrap_records"`
	BootstrapBytes      uint64 `json:"bootstrap_bytes"`
	BootstrapsServed    uint64 `json:"bootstraps_served"`
	DecodeErrors        uint64 `json:"decode_errors"`
	RejectedPeers       uint64 `json:"rejected_peers"`
	// Incoming streams refused at their handshake, by reason; each also
	// counts in RejectedPeers.
	HandshakesOverCap         uint64 `json:"handshakes_over_cap"`
	HandshakeTimeouts         uint64 `json:"handshake_timeouts"`
	HandshakesMalformed       uint64 `json:"handshakes_malformed"`
	HandshakesUnauthenticated uint64 `json:"handshakes_unauthenticated"`
	HandshakesRefused         uint64 `json:"handshakes_refused"`
	SchemaMismatches          int    `json:"schema_mismatches"`
	MergeErrors               uint64 `json:"merge_errors"`
	NameConflicts             uint64 `json:"name_conflicts"`
}

func memberStatus(m gossip.Member) MemberStatus {
	return MemberStatus{
		Name: m.Name, Replica: m.Replica, Addr: m.Addr, APIAddr: m.APIAddr, Version: m.Version, State: m.State,
		SchemaFingerprint: m.SchemaFingerprint, SchemaMismatch: m.SchemaMismatch,
		LastContact: m.LastContact.UTC(), LagMS: float64(m.Lag) / float64(time.Millisecond),
		QueuedDeltas: m.Queued, Connected: m.Connected,
	}
}

func gossipStatus(s gossip.Stats) GossipStatus {
	return GossipStatus{
		Members: s.Members, DeltasSent: s.DeltasSent, FragmentsSent: s.FragmentsSent,
		DeltasReceived: s.DeltasReceived, FragmentsReceived: s.FragmentsReceived,
		FragmentsMerged: s.FragmentsMerged, FragmentsRelayed: s.FragmentsRelayed,
		FragmentsDropped: s.FragmentsDropped, FragmentsRejected: s.FragmentsRejected,
		BytesIn: s.BytesIn, BytesOut: s.BytesOut, Syncs: s.Syncs, SyncFailures: s.SyncFailures,
		SyncsRefused: s.SyncsRefused, SyncRecordsSent: s.SyncRecordsSent,
		SyncRecordsReceived: s.SyncRecordsReceived, SyncBytes: s.SyncBytes,
		Bootstraps: s.Bootstraps, BootstrapRecords: s.BootstrapRecords, BootstrapBytes: s.BootstrapBytes,
		BootstrapsServed: s.BootstrapsServed, DecodeErrors: s.DecodeErrors, RejectedPeers: s.RejectedPeers,
		HandshakesOverCap: s.HandshakesOverCap, HandshakeTimeouts: s.HandshakeTimeouts,
		HandshakesMalformed: s.HandshakesMalformed, HandshakesUnauthenticated: s.HandshakesUnauthenticated,
		HandshakesRefused: s.HandshakesRefused,
		SchemaMismatches:  s.SchemaMismatches, MergeErrors: s.MergeErrors, NameConflicts: s.NameConflicts,
	}
}

// AdapterStatus reports the capture and apply loops.
type AdapterStatus struct {
	Kind    string      `json:"kind"`
	Capture *LoopStatus `json:"capture,omitempty"`
	Apply   *LoopStatus `json:"apply,omitempty"`
	// Verify is the periodic verification loop (verify.go): idle,
	// verifying or retrying; omitted where the agent does not verify.
	Verify *LoopStatus `json:"verify,omitempty"`
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
	now := a.clock.Now()
	s := Status{
		Node:    a.cfg.Node,
		Replica: a.store.ReplicaID().String(),
		Version: Version,
		Ready:   a.ready.Load(),
		Failing: a.failing(now),
		Time:    now.UTC(),
		Digest:  d.Hash.String(),
		Records: d.Count,
		Members: []MemberStatus{},
		Pending: a.store.PendingLen(),
		Adapter: AdapterStatus{Kind: a.cfg.Adapter.Kind},
		Gossip:  gossipStatus(a.node.Stats()),
		Schema:  a.schema.Fingerprint(),
		Verify:  a.verifyStatus(),
	}
	s.Ready = s.Ready && len(s.Failing) == 0
	for _, m := range a.node.Members() {
		s.Members = append(s.Members, memberStatus(m))
	}
	if a.adp != nil {
		s.Adapter.Capture = loopStatus(a.captureSt.Load(), now)
		s.Adapter.Apply = loopStatus(a.applySt.Load(), now)
		if st := a.verifySt.Load(); st != nil {
			s.Adapter.Verify = loopStatus(st, now)
		}
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
