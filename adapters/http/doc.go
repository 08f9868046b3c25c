// Package http is the adapter for a system reached over a JSON REST API: a
// CRM or an ERP that offers no database to read. It is declarative: a YAML
// file (adapter.dsn) gives the API's base URL, authentication, request
// budget, and per collection the list request with its "updated since"
// filter, sort and pagination, where the records sit in the response, the
// ID and updated-at fields, the declared fields and their kinds, and the
// write requests. A preset fills the conventions of a known API
// (json-server). docs/http.md is the reference.
//
// The API has no transactions and keeps nothing for the adapter, so the
// adapter keeps its own durable state in a small SQLite file (state:, by
// default next to the config file): capture positions, the records it
// knows the server holds, its own recent writes and the ID map.
//
// Capture polls each collection from a high-water mark of (updated-at, ID),
// asking again from an overlap window before it (the server's clock,
// writes that commit late) and skipping the records of the window it has
// already reported at the same updated-at, so that nothing is missed or
// reported twice. A change's Old is the record as the adapter last
// captured or wrote it (the state file keeps it), so that the engine takes
// only the fields that differ from it as the change's intent, not the
// server's stale copies of fields merged from elsewhere whose write
// waited for capture. A cursor is a sequence number (big-endian, so that
// cursors compare with bytes.Compare in capture order) and the
// installation's ID; the state file keeps the marks of every cursor not yet
// acknowledged. The adapter's own writes are not reported: each write
// records the (ID, updated-at) the server holds after it, and capture skips
// a record with exactly that pair. A user's write in the same millisecond
// as the adapter's write of the same record is skipped with it; the
// engine's verification repairs such a record. Deletes leave no trace in a
// poll: every Reconcile interval capture lists every record and reports
// the records it knew that the listing lacks, each confirmed gone by a
// read of its own, and the records the listing holds that no poll reported
// (records without an updated-at). A reported delete stays known until an
// Ack covers it: a capture resumed from an earlier cursor reports it again.
// Polls, listings, Head and Apply take their sequence numbers in turn,
// under one lock, so that a change committed after an Apply (or Head)
// returns comes in a batch after its position.
//
// Apply sends one request per write, in order: an update (PUT) of the
// whole record, a delete (a record already gone counts as deleted), or a
// create. With read_before_write (the default) it first reads the record,
// and defers the write (Applied.Deferred) when the server holds a version
// newer than the one capture last took or Apply last wrote, so that a
// user's change that capture has not taken yet is not overwritten. A record first seen elsewhere (Write.NewKey) is created and its
// ID and collection key recorded in the state file's ID map (IDMapper).
// With client IDs (client_ids: true) the adapter mints the ID and records
// it as an intent before the request, so that a create repeated after a
// crash writes the same record again; without them the server's ID is
// known only from the response, and a crash between the response and the
// recording of the pair leaves a record on the server that the map does
// not name: the repeated create makes a second one. A record the API
// rejects (400, 422 and the other 4xx but for auth) fails with a RowError
// holding the server's message; 429, 5xx and connection errors are retried
// with backoff and jitter, honouring Retry-After, and then fail marked
// adapters.ErrUnavailable, as do 401 and 403.
//
// A system that sends webhooks (webhooks: in the config) has its changes
// fetched at once: the sidecar passes each request to Webhook, which
// authenticates it by an HMAC-SHA256 signature over its timestamp and body
// under a shared secret, refusing stale timestamps and replays. An event
// wakes capture for an immediate poll (many events, one poll), and a
// delete event makes capture read the record and report the delete when
// the server answers 404, as reconciliation would. Polls and
// reconciliation go on at their intervals: a webhook that never arrives
// costs time, not changes. webhooks/pocketbase holds the hook files with
// which PocketBase sends them.
//
// Every request waits for the system's request budget (rate, burst) and
// for one of its concurrency slots. A circuit breaker (circuit.go) stops
// requests to an API that keeps failing: while it is open they fail at
// once, marked adapters.ErrUnavailable, and one probe per cooldown finds
// out whether the API is back. The adapter's metrics (metrics.go) reach the
// sidecar through adapters.MetricsExporter; Stats counts requests by status
// code and the requests that waited. An https API's certificate is always
// verified, against the system's roots or a CA bundle, and a client
// certificate may be sent (tls.go).
//
// Listings page by number, offset, cursor or next link (paging.go); a next
// link is followed only on base_url's scheme and host. Capture's walk
// restarts its filter at the last updated-at read rather than trust a
// cursor while records move. An API that keeps deleted records marked
// (soft deletes, softdelete.go) has them captured as deletes, and Apply's
// delete marks them.
package http
