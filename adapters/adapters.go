// Package adapters defines how Lattice talks to the systems it keeps in
// sync: the Adapter interface, the Change a capture produces and the Write an
// apply consumes. Each system has its own package below this one
// (adapters/sqlite, adapters/postgres) that registers itself under its kind
// (Register) when imported: the engine opens adapters by kind and imports
// none, and a binary ships the adapters its main package imports.
// adapters/adaptertest holds the conformance suite every adapter passes.
//
// The contract, in the order the engine uses it:
//
//  1. Tables discovers the collections the system holds: names, primary keys
//     and column types.
//  2. With no stored cursor, Snapshot reads every row and returns the cursor
//     from which capture continues, consistently: no change falls between
//     the snapshot and the stream.
//  3. Capture streams the changes the system's own users commit, from a
//     cursor, in batches that end on transaction boundaries. The engine
//     makes each batch durable and only then calls Ack with its cursor, so
//     capture is at-least-once and nothing is acknowledged before it is safe.
//     Each change carries the row before it (Old) where the system can say,
//     so that the engine merges what the user changed, not a stale copy of
//     columns the user did not touch.
//  4. Apply writes merged rows into the system in one transaction, tagged so
//     that Capture never reports them: this is the echo guard that keeps
//     sync free of update loops. It returns its position in capture order,
//     so that the engine can tell a user's change that the apply overwrote
//     before capture saw it, and write the merged result back.
//
// Cursors are opaque to the engine except for their order: two cursors of
// one adapter installation compare with bytes.Compare in capture order.
//
// Optional capabilities, found by type assertion: CatalogNotifier (catalog
// changes noticed while running), TableReader (rows of tables taken into
// sync late), RangeReader (reads by key range, for verification) and
// RangeHasher (a key range's hash computed by the system, so that
// verification reads only the ranges that changed since it last found them
// equal) and WebhookReceiver (the system announces its changes by webhook,
// so that capture fetches them at once).
package adapters

import (
	"context"
	"net/http"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Adapter connects one system. Methods may be called from different
// goroutines, but the engine never calls Capture twice at once, nor Apply
// twice at once.
type Adapter interface {
	// Tables returns the collections the adapter syncs, sorted by name.
	Tables(ctx context.Context) ([]Table, error)

	// Snapshot sends every row of every synced table to sink, in batches,
	// and returns the cursor from which Capture continues with nothing
	// missed between the two.
	Snapshot(ctx context.Context, sink Sink) (cursor []byte, err error)

	// Capture sends the changes committed after cursor to sink until ctx is
	// done or the system fails, and returns the error (ctx.Err() when
	// cancelled). Batches never split a system transaction. Writes made by
	// Apply are never sent. If sink returns an error, Capture stops and
	// returns it; the engine restarts capture from its last durable cursor.
	// A cursor the adapter cannot continue from (older than what it
	// discarded after Ack, or from another installation) fails with an error
	// marked ErrCursor: the engine then takes a new snapshot.
	Capture(ctx context.Context, cursor []byte, sink Sink) error

	// Ack tells the system that everything up to cursor is durable in
	// Lattice, so it may discard it (a replication slot's flush position, a
	// change log's rows). Ack of an older cursor than one already acked is a
	// no-op.
	Ack(ctx context.Context, cursor []byte) error

	// Apply writes rows in one transaction that Capture does not report. A
	// write with a nil Row deletes the record; otherwise the Row is the
	// record's whole row, key columns included, and columns it does not name
	// become null. An empty list and null are the same value. A Write.Key
	// that disagrees with the key columns of its Row is a bad row. Apply is
	// idempotent. A row the system rejects for what it holds (a value of the
	// wrong type, an unknown table) fails the call with an error that
	// RowErrorOf finds, naming that write; the engine sets it aside and
	// applies the others. An error that means the system cannot take writes
	// now (down, unreachable, out of resources, a lock or deadlock that
	// outlasted retries) is marked ErrUnavailable: the engine retries the
	// whole batch later. Any other error names neither: the engine applies
	// the batch's writes one at a time to find the one that fails.
	//
	// Apply returns its position in capture order (Applied.Position) and the
	// writes it deferred (Applied.Deferred). since is the capture position
	// the merged rows reflect: every change up to it was captured and merged
	// before the rows were read (nil: the adapter's acknowledged position).
	// An adapter that can tell, inside the apply's transaction, that the
	// system holds a change to a record after since leaves that record alone
	// and defers its write: the merged row does not include that change, so
	// writing it would show the system's users an older state than the one
	// they wrote, and a user's next statement (a DELETE that finds no row)
	// could act on it. The engine keeps a deferred write queued and applies
	// the merged state once capture has taken the change.
	Apply(ctx context.Context, writes []Write, since []byte) (Applied, error)

	// Head returns a cursor at or after every change committed so far.
	// Capture may start from it.
	Head(ctx context.Context) ([]byte, error)

	// Close releases the adapter's connections. It does not drop what the
	// adapter installed in the system (triggers, slots), which must survive
	// restarts; see the adapter's own Uninstall where it has one.
	Close() error
}

// CatalogNotifier is implemented by adapters that notice when the system's
// catalog changes while they run: a table or column added, dropped or
// altered. The engine then calls Tables again and maps what is new, without
// waiting for its periodic look. It is optional: the engine also calls
// Tables every adapter.catalog_interval.
type CatalogNotifier interface {
	// CatalogChanged returns a channel that receives a value after the
	// tables Tables reports changed. It is buffered, never closed, and the
	// same channel on every call; one value may stand for several changes.
	CatalogChanged() <-chan struct{}
}

// RangeReader is implemented by adapters whose system can be read by key
// range, so that the engine can compare the system with the merged state
// (verification) without a snapshot. Reads are plain reads: they take no
// capture position and change nothing.
type RangeReader interface {
	// ReadRange returns up to limit rows of table (limit > 0) with keys
	// after the key after ("" starts at the first row), in the order of
	// their crdt.Key encodings (bytes.Compare), which for keys of one kind
	// is the order of their values: integers numerically, text bytewise.
	// Each is a Change with Collection, Key and the whole Row, key columns
	// included and nulls explicit, as Snapshot reports it. Fewer than limit
	// rows means the table holds no more.
	ReadRange(ctx context.Context, table string, after crdt.Key, limit int) ([]Change, error)

	// ReadKeys returns the rows of table with the given keys, in the same
	// form; keys without a row are left out.
	ReadKeys(ctx context.Context, table string, keys []crdt.Key) ([]Change, error)
}

// RangeHasher is implemented by adapters whose system can hash a key range
// of a table itself, so that verification can tell that a range has not
// changed since it last compared it without reading its rows over the wire.
// A range is the rows with keys after the key after ("" starts at the first
// row) and at or before the key through ("" sets no bound), in ReadRange's
// order, up to limit rows (limit > 0). Like ReadRange, it takes no capture
// position and changes nothing.
//
// A system-side hash says nothing about the merged state (the mapping and
// the types differ), only whether the system's rows changed: the engine
// keeps, per range, the hash it read together with the rows it found equal
// to the merged state, and reads the rows again when the hash changes.
type RangeHasher interface {
	// HashRange returns the RangeHash of a range, computed by the system.
	HashRange(ctx context.Context, table string, after, through crdt.Key, limit int) (RangeHash, error)

	// ReadHashedRange returns the rows of a range as ReadRange returns
	// them, and their RangeHash, from one read: HashRange of the same range
	// returns the same RangeHash for as long as these rows are unchanged,
	// and a different one (but for a negligible chance) once any row in
	// the range is added, deleted or changed in any column.
	ReadHashedRange(ctx context.Context, table string, after, through crdt.Key, limit int) ([]Change, RangeHash, error)
}

// RangeHash is a system's hash of the rows of a key range. Sum is the XOR of
// the 128-bit hashes of the rows, each computed by the adapter from every
// column of the row as the system holds it (key columns included), so that
// the hashes of adjacent ranges combine into the hash of their union
// (Combine). The zero RangeHash is that of an empty range.
type RangeHash struct {
	Sum  [16]byte
	Rows int
	// Last is the key of the range's last row ("" when empty).
	Last crdt.Key
}

// Combine returns the hash of the union of h's range and the range that
// follows it directly, next.
func (h RangeHash) Combine(next RangeHash) RangeHash {
	out := RangeHash{Rows: h.Rows + next.Rows, Last: h.Last}
	for i := range out.Sum {
		out.Sum[i] = h.Sum[i] ^ next.Sum[i]
	}
	if next.Rows > 0 {
		out.Last = next.Last
	}
	return out
}

// TableReader is implemented by adapters whose capture of a table starts
// only when the adapter takes the table into its sync (PostgreSQL adds it
// to its publication when Tables finds it): rows written into a table
// before that are never captured. When the engine's catalog gains tables it
// calls ReadTables for them and takes their rows as snapshot rows, which
// the diff against the merged state makes idempotent.
type TableReader interface {
	// ReadTables sends every row of the named synced tables (by collection
	// name) to sink, in batches without a cursor. A name the adapter does
	// not sync is skipped.
	ReadTables(ctx context.Context, names []string, sink Sink) error
}

// IDMapper is implemented by adapters that keep an ID map inside the
// system: for every record an Apply inserted with a Write.NewKey, the key
// the system generated and the collection key it stands for, written in
// the apply's own transaction, so that the map and the rows never
// disagree, whenever the process stops. The ID map lets systems that each
// mint their own keys hold the same records (adapters/mapping).
type IDMapper interface {
	// IDMap returns the pairs recorded for table: local key to collection
	// key.
	IDMap(ctx context.Context, table string) (map[crdt.Key]crdt.Key, error)
}

// RoundTripper is implemented by adapters that map values on their way
// into the system and back (adapters/mapping). RoundTrip returns the
// collection row the system holds once row is written into it and read
// back: row itself when the mapping carries every value exactly.
// Verification compares the system with the merged state through it.
type RoundTripper interface {
	RoundTrip(collection string, row crdt.Row) (crdt.Row, error)
}

// WebhookReceiver is implemented by adapters whose system can announce its
// changes by webhook: the sidecar passes each webhook request it receives
// (POST /v1/webhooks) to Webhook, which authenticates it and makes capture
// fetch the change at once instead of at its next poll. Webhooks only hurry
// capture: one that never comes costs time, not changes. Webhook does no
// I/O with the system and may be called from any goroutine.
type WebhookReceiver interface {
	// Webhook takes one request's headers and raw body. It returns nil
	// for a request it accepted, also one it ignores (an event for a
	// collection or record it does not sync); an error marked
	// ErrWebhookRefused for one it cannot authenticate, which triggers
	// nothing; one marked ErrWebhookMalformed for an authenticated body it
	// cannot read; and one marked ErrNoWebhooks when its config enables no
	// webhooks.
	Webhook(header http.Header, body []byte) error
}

// ErrWebhookRefused marks a webhook request that failed authentication: a
// missing or wrong signature, a timestamp outside the replay window, a
// replay.
var ErrWebhookRefused = errors.New("adapters: webhook refused")

// ErrWebhookMalformed marks an authenticated webhook request whose body the
// adapter cannot read.
var ErrWebhookMalformed = errors.New("adapters: webhook malformed")

// ErrNoWebhooks marks a webhook request to an adapter that receives none.
var ErrNoWebhooks = errors.New("adapters: no webhook receiver")

// Sink receives captured batches. It returns only once the batch is
// durable (or failed). The batch, its changes and their rows belong to the
// sink once passed: the adapter does not reuse them, and the sink may keep
// them.
type Sink func(ctx context.Context, b Batch) error

// Batch is a group of changes that ends on a system transaction boundary,
// with the cursor just after it. Snapshot batches carry no cursor: only the
// cursor Snapshot returns may be stored.
type Batch struct {
	Changes []Change
	Cursor  []byte
}

// Change is one row as a system's user committed it.
type Change struct {
	Collection string
	Key        crdt.Key
	// Row is the whole row after the change, key columns included, nulls
	// explicit. A column may be left out when the change did not carry its
	// value (PostgreSQL's unchanged TOAST values): a missing column means
	// unchanged, not null. Row is nil when the row was deleted.
	Row crdt.Row
	// Old is the row before the change, with the same rules, when the
	// system reports it (SQLite's triggers, PostgreSQL with replica identity
	// full); nil for an insert, for a snapshot, and when unknown.
	Old crdt.Row
	// Insert says the change inserted the row: no row had its key just
	// before it (an INSERT, or the new key of an update that changed the
	// primary key). Its user saw nothing of the record, so it removes no
	// element of an OR-set field. A snapshot row is not an insert.
	Insert bool
	// Committed is when the system committed the change, as the system's
	// clock tells it, where the system reports it (SQLite: the time the
	// capture trigger ran inside the user's transaction, to the
	// millisecond); zero when unknown, as for a snapshot.
	Committed time.Time
}

// Write is one merged row for Apply.
type Write struct {
	Collection string
	Key        crdt.Key
	// Row is the whole merged row, key columns included; nil deletes.
	Row crdt.Row
	// NewKey asks Apply to insert a record the system does not hold yet
	// and whose key the system generates (key columns that are
	// Column.Generated): Key is empty and Row holds no key columns. Apply
	// inserts the row, lets the system generate the key (a serial, an
	// identity, a default), records the pair (generated key, NewKey) in its
	// ID map in the same transaction (IDMapper), and reports the generated
	// key in Applied.Generated. The record is then known by its local key:
	// later writes name it by Key. A NewKey the ID map already holds (the
	// same write applied again) inserts nothing: Apply writes the row to
	// the record under its mapped key and reports that key. A RowError for
	// such a write names it by its NewKey, since it has no Key.
	NewKey crdt.Key
}

// Applied is what an Apply did.
type Applied struct {
	// Position is the apply's position in capture order: a cursor at or
	// after the position of every change the system committed before the
	// apply's transaction. A change captured in a batch that starts at or
	// after it (a batch starts at the cursor Capture was given, or at the
	// previous batch's cursor) was committed after the apply; one in an
	// earlier batch may have been overwritten by it. A conservative (later)
	// position is correct, and costs only a redundant write.
	Position []byte
	// Deferred lists, in ascending order, the indexes of the writes Apply
	// left unwritten because the system holds a change to their records
	// that capture has not reported yet (see Adapter.Apply).
	Deferred []int
	// Generated holds, by write index, the keys the system generated for
	// the writes with a NewKey.
	Generated map[int]crdt.Key
}

// Table describes one collection as the system holds it.
type Table struct {
	Name string
	// Key lists the primary-key columns in key order.
	Key     []string
	Columns []Column
}

// Column describes one column and the Value kind it maps to.
type Column struct {
	Name string
	// Kind is the kind of values the adapter captures for the column.
	Kind crdt.Kind
	// Elem is the element kind of a list column.
	Elem crdt.Kind
	// Type is the system's own type name, for messages.
	Type string
	// Nullable reports whether the column accepts null.
	Nullable bool
	// Generated reports that the system fills the column when an insert
	// leaves it out: a serial, an identity, a default (SQLite's INTEGER
	// PRIMARY KEY).
	Generated bool
}

// Column returns the named column, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// KeyKinds returns the kinds of the key columns, for parsing keys from text.
func (t *Table) KeyKinds() []crdt.Kind {
	out := make([]crdt.Kind, len(t.Key))
	for i, k := range t.Key {
		if c := t.Column(k); c != nil {
			out[i] = c.Kind
		}
	}
	return out
}

// ErrCursor marks a cursor an adapter cannot continue capture from: the
// engine must take a new snapshot.
var ErrCursor = errors.New("adapters: cursor not valid")

// ErrUnavailable marks Apply errors that concern the system's state, not
// any write: the system is down or busy, and the same batch may succeed
// later.
var ErrUnavailable = errors.New("adapters: system unavailable")

// ErrBadRow marks errors for rows a system cannot hold or a capture cannot
// express: a value of the wrong type, a missing primary key, an unknown
// table. Such an error concerns one row, not the system's health.
var ErrBadRow = errors.New("adapters: bad row")

// RowError is a bad row in an Apply batch or a capture.
type RowError struct {
	Collection string
	Key        crdt.Key
	Err        error
}

func (e *RowError) Error() string {
	return "collection " + e.Collection + " key " + e.Key.String() + ": " + e.Err.Error()
}

func (e *RowError) Unwrap() error { return e.Err }

// BadRow returns a RowError marked ErrBadRow.
func BadRow(collection string, key crdt.Key, err error) error {
	return errors.Mark(&RowError{Collection: collection, Key: key, Err: err}, ErrBadRow)
}

// RowErrorOf returns the RowError in err's chain, if any.
func RowErrorOf(err error) (*RowError, bool) {
	var re *RowError
	if errors.As(err, &re) {
		return re, true
	}
	return nil, false
}
