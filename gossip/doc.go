// Package gossip is the peer cluster: it finds the other sidecars, pushes
// every local delta to them with low latency, relays deltas in large
// clusters, repairs whatever was lost with anti-entropy, and brings a new or
// wiped replica up to date with a bootstrap. It knows the replica only
// through the small Replica interface (the store implements it; gossiptest
// has an in-memory one) and never blocks its callers: Broadcast queues.
//
// # Membership
//
// Membership and failure detection are hashicorp/memberlist with its LAN
// preset: unique node names, an explicit bind and advertise address, a
// cluster label (memberlist drops packets and streams of another label) and
// a keyring loaded from a key file (memberlist gets HKDF-derived keys, never
// the file's). Without keys the node runs in the clear and logs a warning;
// Config.Validate refuses that on a non-loopback bind unless Insecure. Node meta
// (memberlist caps it at 512 bytes; Config.Validate bounds each field so it
// fits) carries the API address, the data address, the version, the
// whole-schema fingerprint and a leaving flag.
//
// memberlist's callbacks do not say whether a member left or failed (the
// Node.State they pass is not kept up to date), so Leave first sets the
// leaving flag in the node meta and then leaves. A member that disappears
// without the flag failed: the node keeps its address and tries to rejoin
// it every ReconnectInterval, because memberlist alone never heals a
// partition once each side has declared the other dead (its gossip to the
// dead stops after GossipToTheDeadTime).
//
// # Why not memberlist for the data
//
// memberlist's piggybacked gossip carries about 20 KB/s per node (a few
// broadcasts in 1400-byte UDP packets every 200ms) and retransmits each
// message log(n) times: right for membership, wrong for a stream of
// deltas. Its SendReliable dials a new TCP connection for every message,
// with a three-way handshake and memberlist's own framing each time, and
// its LocalState push/pull is a full-state transfer every 30s capped at a
// few MiB. So deltas travel on streams of their own:
//
//   - Data streams share memberlist's listener. The transport memberlist
//     uses is wrapped by a mux that reads the first byte of each incoming
//     stream: memberlist's streams start with a message type (0 to 13) or
//     its label marker (244), ours with 'L'. One port, one firewall rule,
//     and an injected transport (the fault-injecting one in tests) carries
//     both.
//   - memberlist encrypts and labels only what it writes itself, so the
//     data streams do their own framing and encryption, with the same
//     keyring: a cleartext preamble exchanges two random 16-byte nonces,
//     then every frame is a 4-byte length and an AES-256-GCM sealed
//     message under a key of its stream and direction (HKDF-SHA256 over
//     the ring key, both nonces, the label and the direction) with the
//     sequence number as nonce, and additional data binding the label,
//     both stream nonces, the direction and the sequence number. A peer
//     without a key in the ring can neither read nor forge a frame, a
//     captured frame cannot be replayed, reordered or moved to another
//     stream, no nonce repeats under a key, and a node with another label
//     fails to authenticate (in the clear, the hello's label is compared).
//     Every length is checked against its bound, as an unsigned 32-bit
//     value, before anything is allocated (see conn.go).
//   - Each node keeps one long-lived outgoing stream per peer for deltas,
//     fed by a bounded queue (QueueLen deltas; a delta that does not fit
//     is dropped and counted, and anti-entropy repairs it) and written in
//     batches: the sender takes what is queued, waits up to BatchDelay for
//     more, stops at BatchBytes, and writes one frame. A delta larger than
//     BatchBytes is split by fragment; a single record larger than
//     MaxMessageBytes cannot travel at all and is dropped with an error
//     log (raise max_message_bytes), never retried forever.
//   - Anti-entropy and bootstrap sessions open short-lived streams of
//     their own, at most MaxSyncs at a time per node (offers beyond that
//     are refused and retried later).
//
// Measured on a 2-core machine (docs/benchmarks.md has the figures, medians
// of three runs, and the commands): a write reaches the two other nodes of
// a 3-node loopback cluster in 2.2 ms at the median (the 2 ms BatchDelay is
// most of it) and 3.1 ms at p99 at 1,000 writes/s; three nodes writing at
// once converge 166k field updates/s with in-memory replicas and 60k/s
// with Badger stores fsyncing every commit; in a 50-node cluster a write
// reaches every node in 16 ms at the median and 50 ms at p99.
//
// # Dissemination
//
// In clusters of up to PushAllUpTo members (default 16) every delta goes
// to every peer, and nobody relays. Beyond that a delta goes to Fanout
// peers (default 3): the node's neighbours on a ring of the members sorted
// by a hash of their names (successor and predecessor) and random others;
// a receiver relays the fragments that changed its replica (Replica.Merge
// says which), to its own neighbours and random peers, never back to the
// sender. Pure random push (infect-and-die) misses about e^-Fanout of the
// members, 5% at fanout 3, which would leave most writes to anti-entropy
// in a 50-node cluster. With the ring links the set of members that have a
// fragment is closed under "ring neighbour", so it is the whole ring as
// long as views agree; with both neighbours a member missing from one
// neighbour's view is reached from the other side. The random links keep
// the number of hops logarithmic.
//
// # Schemas
//
// The node meta's whole-schema fingerprint shows a difference early; the
// hello of every data stream carries the per-collection fingerprints, and
// both ends compute the collections whose rules differ (an unlisted
// collection counts as all-LWW, a collection a strict schema does not list
// as unknown). Those are reported (an error log once per change, Stats,
// Members) and never exchanged with that peer: the sender leaves them out
// of deltas, the receiver drops any that arrive anyway, anti-entropy
// reconciles the key space minus those collections, and bootstrap skips
// them. Merging a collection under two sets of rules would make replicas
// diverge silently.
//
// # Anti-entropy
//
// Every SyncInterval (jittered by ±50%), and at once after a join or when a
// member appears, a node reconciles with a random peer by range-based set
// reconciliation over the replica's range fingerprints (sync.go has the
// protocol): fingerprints of ID ranges are compared, differing ranges are
// split (16, 8 or 4 parts by size) until they hold a few records, then
// item lists (ID and 8-byte hash) are compared and only the differing
// records cross, joined both ways. For a record both sides hold in
// different states the probably newer side sends first (the wanter hints
// its copy's newest write time), so a one-sided change crosses once. IDs
// are front-coded and hashes truncated to 8 bytes. Cost: O(d log n) bytes
// and O(log n) round trips for d differences among n records; each turn is
// bounded, so a wiped peer's full state flows in 1 MiB turns, and a
// session lasts at most ten IOTimeouts: a larger repair goes on in the next
// rounds, keeping what was merged. Measured: 200k records, 2k changed
// while a node was away: back in sync 0.06 s after it restarts, moving 360
// bytes per changed record, 2.3x the bytes of the changed records and 2.4%
// of a full-state transfer.
//
// # Bootstrap
//
// A new or wiped replica calls Bootstrap: a peer (one with the same
// schema fingerprint first) streams its records in ID order in chunks of
// about 256 KiB; if it fails midway the next peer resumes from the last
// chunk. Deltas keep arriving meanwhile (joins commute, so order does not
// matter), and an anti-entropy round follows to pick up what changed during
// the transfer.
//
// # Wire format
//
// Every data-path message is a crdt envelope [version, type, body...],
// types numbered from 16 (wire.go lists them), msgpack arrays that only
// grow at the end so that an older peer skips what a newer one appends.
// Deltas are embedded with crdt.EncodeFragments and read with
// crdt.Decoder, after crdt.CheckMsgpack has bounded the nesting. The range
// entries and wants of anti-entropy, which dominate its bytes, are a
// compact binary form inside one msgpack bin value (rangecodec.go). Every
// decoder is bounded and fuzzed; garbage, truncated or oversized input is
// dropped and counted (Stats.DecodeErrors, RejectedPeers), never a panic.
//
// # Key rotation
//
// Keys rotate without downtime, in three steps, each done on every node
// before the next begins:
//
//  1. Install: add the new key to every node's key file as a secondary
//     (second line) and restart the nodes one by one, or call
//     Node.InstallKey. Every node can now decrypt both keys.
//  2. Use: make the new key primary (first line) and restart, or call
//     Node.UseKey. Nodes now encrypt with it; those not yet switched
//     still decrypt it.
//  3. Remove: delete the old key from the files and restart, or call
//     Node.RemoveKey. A node still holding only the old key is now locked
//     out.
//
// The keyring is memberlist's, shared by the data path, so one call
// changes both.
//
// # Invariants and hazards
//
//   - Goroutines are started and stopped by the Node: memberlist's, one
//     sender per peer, one reader per incoming stream, the anti-entropy and
//     reconnect loops, sessions. Close cancels them, closes every stream,
//     shuts memberlist down and waits. memberlist's own probe goroutines
//     may outlive Shutdown by up to a probe interval; they end on their own
//     timers.
//   - No callback from memberlist blocks or calls back into memberlist (it
//     holds its node lock): they update the node's maps and start or cancel
//     goroutines.
//   - A stream is served only for a current member (waiting up to a second
//     for memberlist to report one that just joined) whose memberlist
//     address is the stream's source host, and a member's data address
//     must be on that host too. Per peer: one incoming session, one delta
//     stream (a new one replaces the old), at most four streams; incoming
//     sessions leave one of MaxSyncs to the node's own anti-entropy. What a
//     hello said about a peer's schema is dropped when the peer leaves.
//     Failed-stream warnings are rate-limited per source.
//   - Nothing waits without a bound: an incoming stream has HandshakeTimeout
//     from accept to its checked hello, and at most MaxHandshakes (and
//     MaxHandshakesPerHost per source) are in that phase at once; the hello
//     is at most 64 KiB and every read buffer grows as bytes arrive, never
//     to a length announced on the wire. Dials and session reads and writes
//     have IOTimeout; delta streams have IdleTimeout, kept open by a
//     keepalive every third of it, and close when the peer leaves or the
//     node closes.
//   - Broadcast never blocks; Backlog tells a producer that can wait how
//     full the queues are.
//   - Losing a delta is always allowed: merging is a join, so anti-entropy
//     (or the next write) repairs any gap, and duplicates and reordering
//     are harmless. The protocol never depends on delivery for
//     correctness, only for latency.
package gossip
