package postgres

import (
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// ErrConfig marks configuration errors.
var ErrConfig = errors.New("postgres: bad config")

// Config configures the PostgreSQL adapter. Keys are named as in the YAML
// configuration (adapter.dsn, adapter.slot, ...).
type Config struct {
	// DSN is the connection string of the database to sync, as a URL
	// (postgres://user@host/db) or key=value pairs. Required. The role needs
	// the REPLICATION attribute, SELECT, INSERT, UPDATE and DELETE on the
	// synced tables, ownership of them to create the publication, and
	// EXECUTE on the pg_replication_origin_* functions (or superuser).
	DSN string

	// Node is this sidecar's name. The slot, publication and origin are
	// named lattice_<node> unless set below.
	Node string

	// Schemas whose tables are synced when Tables is empty. Default
	// [public]. Tables in the first schema are named by their bare name
	// (customers); tables in the others by schema.table.
	Schemas []string

	// Tables is an optional allow-list of tables to sync, named as above.
	// Empty means every table in Schemas.
	Tables []string

	// Slot is the logical replication slot. Default lattice_<node>.
	Slot string

	// Publication is the publication the slot streams. Default
	// lattice_<node>.
	Publication string

	// Origin is the replication origin that tags the adapter's own writes.
	// Default lattice_<node>.
	Origin string

	// ReplicaIdentity is "full" (default) or "keep". With full, the adapter
	// sets REPLICA IDENTITY FULL on every synced table at start-up, so that
	// an update carries the old row and with it the values PostgreSQL
	// stores out of line (TOAST) and does not send when they did not
	// change: every captured row is then whole. The price is WAL: updates
	// and deletes log the whole old row. With keep, the tables' replica
	// identity is left alone (it must be DEFAULT or FULL), and an update
	// that leaves an out-of-line value unchanged is captured without that
	// column, which the engine takes as unchanged.
	ReplicaIdentity string

	// Keys gives tables a natural key (adapters.Options.Keys), by
	// collection name: the columns listed, NOT NULL and covered exactly by
	// a unique index, name the table's records, and the primary key is
	// local, so it needs a default (an identity, a serial). The old rows of
	// the stream must carry the natural key: replica identity FULL (which
	// ReplicaIdentity full sets) or USING INDEX of that unique index.
	Keys map[string][]string

	// Local lists, per collection, the columns the sync leaves to the
	// database (adapters.Options.Local), with the value an insert by Apply
	// gives each; a null value leaves the column to its own default.
	Local map[string]map[string]crdt.Value

	// StatusInterval is how often capture reports its acknowledged
	// position to the server (standby status update), also while idle.
	// Default 10s; it must stay below the server's wal_sender_timeout.
	StatusInterval time.Duration

	// BatchSize is the number of rows per snapshot batch, and the number of
	// changes after which capture delivers a batch (a transaction is never
	// split, so a batch may be larger). Default 1000.
	BatchSize int

	// BatchWait is how long capture waits for more transactions before it
	// delivers a batch that is not full. Zero delivers each transaction as
	// soon as its commit arrives. Default 1ms.
	BatchWait time.Duration

	// SyncWait bounds how long an Apply transaction, its rows written and
	// locked, waits for capture's stream to decode everything committed
	// before it (see Adapter.Apply). A stream further behind defers the
	// Apply's writes. Before a transaction, holding no row, an Apply
	// waits up to five times as long for a stream that is missing or was
	// behind; an Apply given since fails as unavailable if no stream comes.
	// Default 2s.
	SyncWait time.Duration

	// Logger receives the adapter's logs. Default: discard.
	Logger *slog.Logger
	// Clock paces the adapter's retries (nil: clock.Real). Capture's
	// status updates follow the system clock, as network deadlines do.
	Clock clock.Clock
}

// The values of Config.ReplicaIdentity.
const (
	IdentityFull = "full"
	IdentityKeep = "keep"
)

// DefaultConfig returns a Config with every default filled in; DSN and Node
// are left for the caller.
func DefaultConfig() Config {
	return Config{
		Schemas:         []string{"public"},
		ReplicaIdentity: IdentityFull,
		StatusInterval:  10 * time.Second,
		BatchSize:       1000,
		BatchWait:       time.Millisecond,
		SyncWait:        2 * time.Second,
	}
}

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Validate fills in defaults and rejects bad values, naming the key.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return errors.Mark(errors.Newf("postgres config: "+key+": "+format, args...), ErrConfig)
	}
	if c.DSN == "" {
		return errors.WithHint(bad("dsn", "required"), "set adapter.dsn, e.g. postgres://lattice@localhost/crm")
	}
	if _, err := pgx.ParseConfig(c.DSN); err != nil {
		return bad("dsn", "%v", err)
	}
	d := DefaultConfig()
	if len(c.Schemas) == 0 {
		c.Schemas = d.Schemas
	}
	for _, s := range c.Schemas {
		if s == "" {
			return bad("schemas", "empty schema name")
		}
	}
	for _, t := range c.Tables {
		if t == "" || strings.HasPrefix(t, ".") || strings.HasSuffix(t, ".") || strings.Count(t, ".") > 1 {
			return bad("tables", "%q is not a table name (table or schema.table)", t)
		}
	}
	def := ""
	if c.Node != "" {
		def = "lattice_" + sanitize(c.Node)
	}
	for _, f := range []struct {
		key string
		v   *string
	}{{"slot", &c.Slot}, {"publication", &c.Publication}, {"origin", &c.Origin}} {
		if *f.v == "" {
			if def == "" {
				return errors.WithHint(bad(f.key, "required when node is not set"),
					"set node (the names default to lattice_<node>) or set slot, publication and origin")
			}
			*f.v = def
		}
		if !slotName.MatchString(*f.v) {
			return bad(f.key, "%q: want 1 to 63 lowercase letters, digits or underscores", *f.v)
		}
	}
	switch c.ReplicaIdentity {
	case "":
		c.ReplicaIdentity = d.ReplicaIdentity
	case IdentityFull, IdentityKeep:
	default:
		return bad("replica_identity", "%q: want full or keep", c.ReplicaIdentity)
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = d.StatusInterval
	}
	if c.StatusInterval < time.Millisecond || c.StatusInterval > 10*time.Minute {
		return bad("status_interval", "%s: want between 1ms and 10m", c.StatusInterval)
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.BatchSize < 0 {
		return bad("batch_size", "%d: want a positive number", c.BatchSize)
	}
	if c.BatchWait < 0 || c.BatchWait > time.Minute {
		return bad("batch_wait", "%s: want between 0 and 1m", c.BatchWait)
	}
	if c.SyncWait == 0 {
		c.SyncWait = d.SyncWait
	}
	if c.SyncWait < time.Millisecond || c.SyncWait > time.Minute {
		return bad("sync_wait", "%s: want between 1ms and 1m", c.SyncWait)
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// sanitize maps a node name to the characters slot names allow, keeping the
// result short enough for the lattice_ prefix.
func sanitize(node string) string {
	b := []byte(strings.ToLower(node))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 63-len("lattice_") {
		b = b[:63-len("lattice_")]
	}
	return string(b)
}
