package gossip

import (
	"sync/atomic"
	"time"
)

// Stats are a Node's counters since it started. Deltas are counted as the
// batches that cross the wire and as fragments (one record each).
type Stats struct {
	Members int // live peers, this node excluded

	DeltasSent        uint64 // delta batches written to peers
	FragmentsSent     uint64 // fragments in them
	DeltasReceived    uint64 // delta batches read from peers
	FragmentsReceived uint64 // fragments in them
	FragmentsMerged   uint64 // received fragments that changed the replica
	FragmentsRelayed  uint64 // fragments forwarded to further peers (relay mode)
	FragmentsDropped  uint64 // not delivered: queue full, peer gone, stream broken, oversized
	FragmentsRejected uint64 // received but not merged: schema mismatch, clock offset, unknown collection

	BytesIn  uint64 // data-path bytes read (deltas, sessions), framing included
	BytesOut uint64 // data-path bytes written

	Syncs               uint64 // anti-entropy sessions completed (either side)
	SyncFailures        uint64 // sessions that ended in an error
	SyncsRefused        uint64 // sessions refused because of MaxSyncs (either side)
	SyncRecordsSent     uint64 // records sent by anti-entropy
	SyncRecordsReceived uint64 // records received by anti-entropy
	SyncBytes           uint64 // bytes of anti-entropy sessions, both directions

	Bootstraps       uint64 // bootstraps completed as the receiver
	BootstrapRecords uint64 // records received by bootstrap
	BootstrapBytes   uint64 // bytes of those chunks
	BootstrapsServed uint64 // bootstraps served to peers

	DecodeErrors  uint64 // malformed, truncated or oversized messages dropped
	RejectedPeers uint64 // streams or members refused, every reason below included, and joins memberlist refused for their key or label
	// Incoming streams refused before or at their hello, by reason; each
	// also counts in RejectedPeers.
	HandshakesOverCap         uint64 // closed at once: MaxHandshakes or MaxHandshakesPerHost reached
	HandshakeTimeouts         uint64 // not through the handshake within HandshakeTimeout
	HandshakesMalformed       uint64 // bad preamble, oversized or undecodable hello
	HandshakesUnauthenticated uint64 // frames that do not open with any key, or encryption on one side only
	HandshakesRefused         uint64 // valid hellos refused: label, name, membership, source host, per-peer caps
	SchemaMismatches          int    // (peer, collection) pairs whose rules differ now
	MergeErrors               uint64 // Merge calls that failed
	NameConflicts             uint64 // another node claimed a member's name
}

type counters struct {
	deltasSent, fragmentsSent                             atomic.Uint64
	deltasReceived, fragmentsReceived, fragmentsMerged    atomic.Uint64
	fragmentsRelayed, fragmentsDropped, fragmentsRejected atomic.Uint64
	bytesIn, bytesOut                                     atomic.Uint64
	syncs, syncFailures, syncsRefused                     atomic.Uint64
	syncRecordsSent, syncRecordsReceived, syncBytes       atomic.Uint64
	bootstraps, bootstrapRecords, bootstrapsServed        atomic.Uint64
	bootstrapBytes                                        atomic.Uint64
	decodeErrors, rejectedPeers, mergeErrors              atomic.Uint64
	rejected                                              [numRejectReasons]atomic.Uint64
	nameConflicts                                         atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		DeltasSent:          c.deltasSent.Load(),
		FragmentsSent:       c.fragmentsSent.Load(),
		DeltasReceived:      c.deltasReceived.Load(),
		FragmentsReceived:   c.fragmentsReceived.Load(),
		FragmentsMerged:     c.fragmentsMerged.Load(),
		FragmentsRelayed:    c.fragmentsRelayed.Load(),
		FragmentsDropped:    c.fragmentsDropped.Load(),
		FragmentsRejected:   c.fragmentsRejected.Load(),
		BytesIn:             c.bytesIn.Load(),
		BytesOut:            c.bytesOut.Load(),
		Syncs:               c.syncs.Load(),
		SyncFailures:        c.syncFailures.Load(),
		SyncsRefused:        c.syncsRefused.Load(),
		SyncRecordsSent:     c.syncRecordsSent.Load(),
		SyncRecordsReceived: c.syncRecordsReceived.Load(),
		SyncBytes:           c.syncBytes.Load(),
		Bootstraps:          c.bootstraps.Load(),
		BootstrapRecords:    c.bootstrapRecords.Load(),
		BootstrapBytes:      c.bootstrapBytes.Load(),
		BootstrapsServed:    c.bootstrapsServed.Load(),
		DecodeErrors:        c.decodeErrors.Load(),
		RejectedPeers:       c.rejectedPeers.Load(),

		HandshakesOverCap:         c.rejected[rejectOverCap].Load(),
		HandshakeTimeouts:         c.rejected[rejectTimeout].Load(),
		HandshakesMalformed:       c.rejected[rejectMalformed].Load(),
		HandshakesUnauthenticated: c.rejected[rejectUnauthenticated].Load(),
		HandshakesRefused:         c.rejected[rejectRefused].Load(),
		MergeErrors:               c.mergeErrors.Load(),
		NameConflicts:             c.nameConflicts.Load(),
	}
}

// rejectReason classifies a refused incoming stream.
type rejectReason int

const (
	rejectOverCap rejectReason = iota
	rejectTimeout
	rejectMalformed
	rejectUnauthenticated
	rejectRefused
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{"over_cap", "timeout", "malformed", "unauthenticated", "refused"}

func (r rejectReason) String() string { return rejectNames[r] }

// reject counts a refused incoming stream under its reason and in the
// total.
func (c *counters) reject(r rejectReason) {
	c.rejected[r].Add(1)
	c.rejectedPeers.Add(1)
}

// Member is a peer as this node sees it.
type Member struct {
	Name    string
	Addr    string // memberlist address (ip:port)
	APIAddr string
	// Replica is the replica ID (hex) the member stamps its writes with,
	// "" when it does not advertise one.
	Replica string
	Version string
	State   string // alive (memberlist's alive or suspect), failed (being reconnected)
	// SchemaFingerprint is the peer's whole-schema fingerprint (node meta).
	SchemaFingerprint string
	// SchemaMismatch lists the collections whose rules differ from ours;
	// none of the peer's deltas for them are merged. Known after the first
	// stream with the peer; until then a differing SchemaFingerprint is
	// reported as ["*"].
	SchemaMismatch []string
	// LastContact is when a data message from the peer last arrived.
	LastContact time.Time
	// Lag is the delay from the origin stamp of the newest write in the last
	// delta received from this peer to its merge here.
	Lag time.Duration
	// Queued is the number of deltas waiting to be sent to the peer.
	Queued int
	// Connected reports whether the outgoing delta stream is up.
	Connected bool
}

// SyncResult describes one anti-entropy session.
type SyncResult struct {
	Peer            string
	Turns           int // messages exchanged
	RangesSent      int // range entries sent
	RecordsSent     int
	RecordsReceived int
	RecordsChanged  int // received records that changed the replica
	BytesSent       uint64
	BytesReceived   uint64
	Duration        time.Duration
}
