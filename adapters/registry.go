package adapters

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// Options is what the engine tells an adapter it opens. An adapter uses the
// fields that make sense for its system and ignores the rest.
type Options struct {
	// DSN locates the system: a file path, a connection URL.
	DSN string
	// Node is the sidecar's name; adapters derive the names of the objects
	// they install in the system from it.
	Node string
	// Tables limits sync to these tables (empty: every table with a key).
	Tables []string
	// Keys gives tables a natural key: the columns listed, which a unique
	// index over NOT NULL columns covers, key the table's records in place
	// of its primary key. The primary key then stays local to the system:
	// Tables reports it as ordinary (generated) columns, Apply leaves it
	// out of the rows it inserts so that the system fills it, and captures
	// and applies name records by the natural key. A table listed here
	// without such an index fails Open with an error naming it.
	Keys map[string][]string
	// Local lists, per table, columns the sync leaves to the system:
	// Tables, Snapshot, Capture and the range reads leave them out, and
	// Apply never writes them: an update keeps their value, and an insert
	// gives them the value named here, or the column's own default when
	// the value is null (crdt.Null()). A table's primary key is local when
	// Keys gives the table a natural key, whether listed here or not.
	Local map[string]map[string]crdt.Value
	// Create lets a file-based adapter create its database when the file
	// does not exist; without it a missing file is an error.
	Create bool
	// PollInterval is how often a polling capture looks for changes (zero:
	// the adapter's default).
	PollInterval time.Duration
	// Slot, Publication and Origin name PostgreSQL's replication objects
	// (empty: derived from Node).
	Slot, Publication, Origin string
	// Logger receives the adapter's logs.
	Logger *slog.Logger
	// Clock is the source of time of the adapter's waits (nil:
	// clock.Real).
	Clock clock.Clock
}

// Opener opens an adapter.
type Opener func(ctx context.Context, o Options) (Adapter, error)

var registry = struct {
	sync.RWMutex
	m map[string]Opener
}{m: map[string]Opener{}}

// Register makes an adapter kind available to the engine under name. Each
// adapter package registers itself in init, so a binary holds the adapters
// its main package imports. Registering a name twice panics.
func Register(name string, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup || name == "" || open == nil {
		panic("adapters: Register of a duplicate or empty adapter " + name)
	}
	registry.m[name] = open
}

// Lookup returns the opener registered under name.
func Lookup(name string) (Opener, bool) {
	registry.RLock()
	defer registry.RUnlock()
	open, ok := registry.m[name]
	return open, ok
}

// Kinds lists the registered adapter names, sorted.
func Kinds() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.m))
	for name := range registry.m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
