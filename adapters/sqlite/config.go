package sqlite

import (
	"log/slog"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// Config configures the SQLite adapter. The names in messages are the keys
// of the adapter section of the sidecar's config file.
type Config struct {
	// Path is the database file. It must exist unless Create is set: a
	// typo in a path must not start an empty database beside the real one.
	Path string
	// Create creates the file (empty) when it does not exist.
	Create bool
	// Tables, if not empty, lists the tables to sync; each must exist and be
	// syncable, or Open fails naming what is wrong. If empty, every table
	// that can be synced is, and the others are skipped with a warning.
	Tables []string
	// Keys gives tables a natural key (adapters.Options.Keys): the columns
	// listed, which a unique index covers exactly, each NOT NULL, name the
	// table's records, and the primary key is local. Open fails for a table
	// without such an index, or whose primary key has no default (an
	// INTEGER PRIMARY KEY has one: the rowid).
	Keys map[string][]string
	// Local lists, per table, the columns the sync leaves to the database
	// (adapters.Options.Local), with the value an insert by Apply gives
	// each; a null value leaves the column to its own default.
	Local map[string]map[string]crdt.Value
	// PollInterval is how often Capture looks for new changes when idle. A
	// look costs one PRAGMA; reading the log happens only when another
	// connection committed something.
	PollInterval time.Duration
	// BatchSize is the number of rows per Snapshot batch. Capture batches
	// are bounded by transactions instead (see the package doc).
	BatchSize int
	// BusyTimeout is how long a statement waits for a lock another
	// connection holds (SQLite's busy_timeout) before failing.
	BusyTimeout time.Duration
	// Logger receives the adapter's logs; nil discards them.
	Logger *slog.Logger
	// Clock paces the polls (nil: clock.Real).
	Clock clock.Clock
}

// DefaultConfig returns the defaults; Path must still be set.
func DefaultConfig() Config {
	return Config{
		PollInterval: 5 * time.Millisecond,
		BatchSize:    1000,
		BusyTimeout:  5 * time.Second,
	}
}

// Validate fills unset fields with their defaults and rejects bad values,
// naming the key at fault.
func (c *Config) Validate() error {
	d := DefaultConfig()
	if c.Path == "" {
		return errors.WithHint(errors.New("sqlite adapter: path is empty"), "set path to the database file")
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.PollInterval < 0 || c.PollInterval > time.Minute {
		return errors.Newf("sqlite adapter: poll_interval %s out of range (want 0 < poll_interval <= 1m)", c.PollInterval)
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.BatchSize < 0 || c.BatchSize > 1_000_000 {
		return errors.Newf("sqlite adapter: batch_size %d out of range (want 1 to 1000000)", c.BatchSize)
	}
	if c.BusyTimeout == 0 {
		c.BusyTimeout = d.BusyTimeout
	}
	if c.BusyTimeout < 0 {
		return errors.Newf("sqlite adapter: busy_timeout %s is negative", c.BusyTimeout)
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		if t == "" {
			return errors.Newf("sqlite adapter: tables[%d] is empty", i)
		}
		if isInternal(t) {
			return errors.Newf("sqlite adapter: tables[%d] %q is an internal table", i, t)
		}
		if seen[t] {
			return errors.Newf("sqlite adapter: tables lists %q twice", t)
		}
		seen[t] = true
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
