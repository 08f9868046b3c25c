package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/lattice-crdt/lattice/crdt"
)

// Options configure a Store. Start from DefaultOptions; Validate fills the
// zero values it can and rejects the rest, naming the option.
//
// The Badger knobs default to a smaller footprint than Badger's own: 32 MiB
// memtables (each takes about 1.3 times that, with room for one
// transaction), at most 2 waiting to flush, 32 MiB of block cache and 16 MiB
// of index cache, against 64 MiB, 5, 256 MiB and unbounded. The cost is more
// frequent flushes and more reads from disk on large working sets.
type Options struct {
	// InMemory runs Badger without files (tests). Nothing survives Close and
	// SyncWrites does not apply.
	InMemory bool
	// Physical is the physical clock of the HLC in nanoseconds since the
	// epoch. Default time.Now().UnixNano.
	Physical func() int64
	// MaxClockOffset is how far a remote timestamp may be ahead of Physical
	// before its fragment is rejected. Default crdt.DefaultMaxOffset; a
	// negative value disables the check.
	MaxClockOffset time.Duration
	// Logger receives the store's and Badger's logs (Badger's info messages
	// at debug level). Default: discard.
	Logger *slog.Logger
	// Limits bound the records the store accepts (Local and Merge refuse a
	// record over any of them with a crdt.ErrTooLarge error) and the
	// decoding of stored records: the same value, so that every record the
	// store writes it can read. Default crdt.DefaultLimits().
	Limits crdt.Limits
	// SyncWrites fsyncs every commit, so that Merge and Local return only
	// once their writes survive a power loss. Default true. Without it a
	// crash of the machine (not of the process) may lose the last commits,
	// which breaks the promise behind an acknowledged adapter cursor.
	SyncWrites bool

	// MemTableSize is the size of one memtable. Default 32 MiB (Badger: 64).
	// Larger memtables flush less often; a transaction may hold at most 15%
	// of it, which bounds the parts a large batch is split into.
	MemTableSize int64
	// NumMemtables is how many memtables may be in memory, the one being
	// written included. Default 2 (Badger: 5). More absorb write bursts
	// while flushes catch up, each costing MemTableSize of memory.
	NumMemtables int
	// BlockCacheSize caches decompressed table blocks. Default 32 MiB
	// (Badger: 256). A smaller cache means more disk reads and
	// decompression for reads that miss it. It must be positive because
	// tables are compressed.
	BlockCacheSize int64
	// IndexCacheSize caches table indexes and bloom filters. Default 16 MiB.
	// Zero keeps every index in memory (Badger's default), which grows with
	// the data.
	IndexCacheSize int64
	// ValueLogFileSize is the size of one value-log file. Default 256 MiB
	// (Badger: 1 GiB). Smaller files let value-log GC reclaim space sooner.
	ValueLogFileSize int64
	// ValueThreshold is the size from which a value goes to the value log
	// instead of the LSM tree. Default 16 KiB (Badger: 1 MiB). Values in the
	// LSM tree make reads and the start-up scan fast but are rewritten by
	// every compaction; large ones are cheaper in the value log. At most
	// 1 MiB and at most 15% of MemTableSize.
	ValueThreshold int64
	// NumCompactors is the number of compaction goroutines. Default 2
	// (Badger: 4); 0 disables compaction (tests only), 1 is not allowed.
	NumCompactors int
	// NumLevelZeroTables is how many level-0 tables may accumulate before
	// compaction into level 1 starts. Default 5. Writes stall at three times
	// this number.
	NumLevelZeroTables int

	// NoApplyQueue keeps no pending-apply queue, for a replica whose system
	// is its own HTTP API (no adapter): nothing is ever applied, and a queue
	// would only grow. Merge and Local still report their effects.
	NoApplyQueue bool
	// GCInterval is how often value-log GC runs. Default 5m; 0 disables it.
	GCInterval time.Duration
	// GCDiscardRatio is the fraction of a value-log file that must be
	// garbage before GC rewrites it. Default 0.5; lower reclaims more space
	// for more I/O.
	GCDiscardRatio float64
	// NoConflictLog turns the conflict log off: Merge neither looks for
	// conflicts nor records them.
	NoConflictLog bool
	// ConflictKeep is the most conflicts the log keeps; older ones are
	// dropped as new ones are logged. Default 100000.
	ConflictKeep int
	// ConflictMaxAge is how long a conflict is kept. Default 30 days; a
	// negative value keeps conflicts until ConflictKeep drops them.
	ConflictMaxAge time.Duration

	// MaxBatchBytes caps the size of one Badger transaction written by Merge
	// or Local; larger batches are split into several transactions at record
	// boundaries. Default 0: 90% of Badger's limit (15% of MemTableSize).
	MaxBatchBytes int
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		Physical:           func() int64 { return time.Now().UnixNano() },
		MaxClockOffset:     crdt.DefaultMaxOffset,
		Limits:             crdt.DefaultLimits(),
		SyncWrites:         true,
		MemTableSize:       32 << 20,
		NumMemtables:       2,
		BlockCacheSize:     32 << 20,
		IndexCacheSize:     16 << 20,
		ValueLogFileSize:   256 << 20,
		ValueThreshold:     16 << 10,
		NumCompactors:      2,
		NumLevelZeroTables: 5,
		GCInterval:         5 * time.Minute,
		GCDiscardRatio:     0.5,
		ConflictKeep:       100000,
		ConflictMaxAge:     conflictAge,
	}
}

// Validate fills unset options with their defaults and rejects bad values
// with an error that names the option.
func (o *Options) Validate() error {
	d := DefaultOptions()
	if o.Physical == nil {
		o.Physical = d.Physical
	}
	if o.MaxClockOffset == 0 {
		o.MaxClockOffset = d.MaxClockOffset
	}
	if o.ConflictKeep == 0 {
		o.ConflictKeep = d.ConflictKeep
	}
	if o.ConflictKeep < 0 {
		return errors.Newf("store option ConflictKeep is %d, want a positive number", o.ConflictKeep)
	}
	if o.ConflictMaxAge == 0 {
		o.ConflictMaxAge = d.ConflictMaxAge
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Limits == (crdt.Limits{}) {
		o.Limits = d.Limits
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = d.MemTableSize
	}
	if o.NumMemtables == 0 {
		o.NumMemtables = d.NumMemtables
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = d.BlockCacheSize
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = d.ValueLogFileSize
	}
	if o.ValueThreshold == 0 {
		o.ValueThreshold = d.ValueThreshold
	}
	if o.NumLevelZeroTables == 0 {
		o.NumLevelZeroTables = d.NumLevelZeroTables
	}
	if o.GCDiscardRatio == 0 {
		o.GCDiscardRatio = d.GCDiscardRatio
	}
	bad := func(key, format string, args ...any) error {
		return errors.WithHint(errors.Newf("store option %s: %s", key, fmt.Sprintf(format, args...)),
			"fix the store settings or leave the option unset for its default")
	}
	lim := o.Limits
	switch {
	case lim.MaxMessageBytes <= 0 || lim.MaxFragments <= 0 || lim.MaxFields <= 0 || lim.MaxWrites <= 0 ||
		lim.MaxElems <= 0 || lim.MaxEntries <= 0 || lim.MaxDots <= 0 || lim.MaxValueBytes <= 0 ||
		lim.MaxListLen <= 0 || lim.MaxDepth <= 0 || lim.MaxRecordBytes <= 0:
		return bad("Limits", "every limit must be positive (leave Limits zero for the defaults)")
	case o.MemTableSize < 1<<20:
		return bad("MemTableSize", "%d is below 1 MiB", o.MemTableSize)
	case o.NumMemtables < 1:
		return bad("NumMemtables", "%d is below 1", o.NumMemtables)
	case o.BlockCacheSize < 0:
		return bad("BlockCacheSize", "%d is negative (tables are compressed, so a cache is required)", o.BlockCacheSize)
	case o.IndexCacheSize < 0:
		return bad("IndexCacheSize", "%d is negative", o.IndexCacheSize)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return bad("ValueLogFileSize", "%d is outside [1 MiB, 2 GiB)", o.ValueLogFileSize)
	case o.ValueThreshold < 0 || o.ValueThreshold > 1<<20:
		return bad("ValueThreshold", "%d is outside [0, 1 MiB]", o.ValueThreshold)
	case o.ValueThreshold > badgerTxnLimit(o.MemTableSize):
		return bad("ValueThreshold", "%d is above 15%% of MemTableSize (%d)", o.ValueThreshold, badgerTxnLimit(o.MemTableSize))
	case o.NumCompactors < 0 || o.NumCompactors == 1:
		return bad("NumCompactors", "%d: use 0 (no compaction) or at least 2", o.NumCompactors)
	case o.NumLevelZeroTables < 1:
		return bad("NumLevelZeroTables", "%d is below 1", o.NumLevelZeroTables)
	case o.GCInterval < 0:
		return bad("GCInterval", "%s is negative (0 disables value-log GC)", o.GCInterval)
	case o.GCDiscardRatio <= 0 || o.GCDiscardRatio >= 1:
		return bad("GCDiscardRatio", "%g is outside (0, 1)", o.GCDiscardRatio)
	case o.MaxBatchBytes < 0:
		return bad("MaxBatchBytes", "%d is negative (0 means automatic)", o.MaxBatchBytes)
	case o.MaxBatchBytes > 0 && o.MaxBatchBytes < 4<<10:
		return bad("MaxBatchBytes", "%d is below 4 KiB", o.MaxBatchBytes)
	}
	return nil
}

// badgerTxnLimit is Badger's size limit of one transaction.
func badgerTxnLimit(memTableSize int64) int64 { return 15 * memTableSize / 100 }

// batchBytes is the size at which a write batch is split.
func (o *Options) batchBytes() int64 {
	limit := badgerTxnLimit(o.MemTableSize) * 9 / 10
	if o.MaxBatchBytes > 0 && int64(o.MaxBatchBytes) < limit {
		return int64(o.MaxBatchBytes)
	}
	return limit
}

func (o *Options) badger(dir string) badger.Options {
	bo := badger.DefaultOptions(dir)
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	}
	bo.SyncWrites = o.SyncWrites && !o.InMemory
	bo.Logger = badgerLogger{o.Logger}
	bo.MetricsEnabled = false
	bo.DetectConflicts = false // a single writer: nothing to detect
	bo.Compression = options.Snappy
	bo.MemTableSize = o.MemTableSize
	bo.NumMemtables = o.NumMemtables
	bo.BlockCacheSize = o.BlockCacheSize
	bo.IndexCacheSize = o.IndexCacheSize
	bo.ValueLogFileSize = o.ValueLogFileSize
	bo.ValueThreshold = o.ValueThreshold
	bo.NumCompactors = o.NumCompactors
	bo.NumLevelZeroTables = o.NumLevelZeroTables
	bo.NumLevelZeroTablesStall = 3 * o.NumLevelZeroTables
	return bo
}

// badgerLogger routes Badger's logs to slog; Badger's info messages (table
// and memtable bookkeeping) go to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, v ...any)   { b.log(slog.LevelError, f, v) }
func (b badgerLogger) Warningf(f string, v ...any) { b.log(slog.LevelWarn, f, v) }
func (b badgerLogger) Infof(f string, v ...any)    { b.log(slog.LevelDebug, f, v) }
func (b badgerLogger) Debugf(f string, v ...any)   { b.log(slog.LevelDebug, f, v) }

func (b badgerLogger) log(level slog.Level, f string, v []any) {
	if b.l.Enabled(context.Background(), level) {
		b.l.Log(context.Background(), level, badgerMsg(f, v), "component", "badger")
	}
}

func badgerMsg(f string, v []any) string { return strings.TrimSpace(fmt.Sprintf(f, v...)) }
