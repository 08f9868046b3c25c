package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
	sqlite3 "modernc.org/sqlite"
)

// Adapter syncs the tables of one SQLite database file. It is safe for
// concurrent use as adapters.Adapter requires. It starts no goroutines:
// Capture runs in its caller's.
type Adapter struct {
	cfg Config
	log *slog.Logger

	reopenMu sync.Mutex // serializes reopen

	mu      sync.Mutex
	db      *sql.DB     // nil while the file is deleted (see reopen)
	file    os.FileInfo // the file db was opened from
	cat     *catalog
	layouts map[int64]*layout // every layout seen, by id
	acked   int64
	warned  map[string]bool // table.column pairs already warned about
	// gen counts the files opened: reopen bumps it. A Capture started on
	// one file ends when it changes (see captures).
	gen uint64
	// captures holds every running Capture: reopen ends them before it
	// closes the old file, which SQLite would otherwise keep open through
	// their connections.
	captures map[*capture]bool

	changed chan struct{} // see CatalogChanged
}

var (
	_ adapters.Adapter         = (*Adapter)(nil)
	_ adapters.CatalogNotifier = (*Adapter)(nil)
)

// Open opens the database, switches it to WAL mode, and installs (or
// checks) the capture triggers of every synced table. It fails with an
// ErrNotInstallable error naming every problem of a table the config lists.
func Open(ctx context.Context, cfg Config) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, st, err := openFile(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	cat, err := install(ctx, db, &cfg)
	if err != nil {
		db.Close()
		return nil, errors.Wrapf(err, "sqlite database %s", cfg.Path)
	}
	a := &Adapter{cfg: cfg, log: cfg.Logger, db: db, file: st, cat: cat, acked: cat.acked,
		layouts: map[int64]*layout{}, warned: map[string]bool{}, changed: make(chan struct{}, 1),
		captures: map[*capture]bool{}}
	for _, t := range cat.tables {
		a.layouts[t.id] = t.layout
	}
	a.log.Info("sqlite: adapter open", "path", cfg.Path, "tables", len(cat.tables))
	return a, nil
}

// Close closes the database. The triggers and the change log stay: see
// Uninstall.
func (a *Adapter) Close() error {
	a.mu.Lock()
	db := a.db
	a.mu.Unlock()
	if db == nil {
		return nil
	}
	return errors.Wrapf(db.Close(), "close sqlite database %s", a.cfg.Path)
}

// Tables returns the synced tables, sorted by name, as the database's
// schema is now.
func (a *Adapter) Tables(ctx context.Context) ([]adapters.Table, error) {
	cat, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	return cat.infos(), nil
}

// CatalogChanged returns a channel that receives a value after the synced
// tables or their columns changed: Capture notices a schema change within a
// poll interval, installs the triggers of what is new, and then signals.
func (a *Adapter) CatalogChanged() <-chan struct{} { return a.changed }

func (a *Adapter) catalog() *catalog {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cat
}

// current returns the catalog, re-installing first if the schema changed
// since it was made.
func (a *Adapter) current(ctx context.Context) (*catalog, error) {
	db, err := a.database(ctx)
	if err != nil {
		return nil, err
	}
	var schema int64
	if err := db.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&schema); err != nil {
		return nil, errors.Wrapf(err, "read schema version of %s", a.cfg.Path)
	}
	if cat := a.catalog(); cat.schema == schema {
		return cat, nil
	}
	if err := a.refresh(ctx); err != nil {
		return nil, err
	}
	return a.catalog(), nil
}

// ErrCursor marks a cursor this database's change log cannot continue
// from: one from another database or from before an Uninstall, or one from
// before the acknowledged position, whose changes were discarded. Such
// errors are marked adapters.ErrCursor too.
var ErrCursor = errors.New("sqlite: cursor not valid for this change log")

// cursorError marks err with ErrCursor and adapters.ErrCursor.
func cursorError(err error) error {
	return errors.Mark(errors.Mark(err, ErrCursor), adapters.ErrCursor)
}

// A cursor is the change log's install ID and a log sequence number, 8
// bytes big-endian each. Sequence numbers are not negative, so within one
// install cursors compare with bytes.Compare as their sequence numbers do.
func encodeCursor(install, seq int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, uint64(install))
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	return b
}

func (a *Adapter) decodeCursor(b []byte) (int64, error) {
	if len(b) != 16 {
		return 0, cursorError(errors.Newf("cursor of %d bytes, want 16", len(b)))
	}
	install := int64(binary.BigEndian.Uint64(b))
	seq := int64(binary.BigEndian.Uint64(b[8:]))
	if want := a.catalog().installID; install != want {
		return 0, cursorError(errors.WithHint(
			errors.Newf("cursor is from change log %x, this database's is %x", install, want),
			"the lattice tables were removed (Uninstall) or this is another database file: take a new snapshot"))
	}
	if seq < 0 {
		return 0, cursorError(errors.Newf("cursor sequence %d is negative", seq))
	}
	return seq, nil
}

// logHead is the query for the change log's last sequence number. Ack
// never deletes the newest row, so it never goes back.
const logHead = `SELECT coalesce(max(seq), 0) FROM _lattice_log`

// Head returns the cursor of the change log's last row: every change
// committed before the call is at or before it.
func (a *Adapter) Head(ctx context.Context) ([]byte, error) {
	db, err := a.database(ctx)
	if err != nil {
		return nil, err
	}
	install := a.catalog().installID
	var seq int64
	if err := db.QueryRowContext(ctx, logHead).Scan(&seq); err != nil {
		return nil, errors.Wrapf(err, "read change log position of %s", a.cfg.Path)
	}
	return encodeCursor(install, seq), nil
}

// Snapshot reads every synced table in one read transaction, together with
// the change log's last sequence number, so the snapshot and the cursor
// describe the same instant: every later commit has a higher sequence.
// Its batches carry no cursor: only the returned one may be stored.
func (a *Adapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	cat, err := a.current(ctx)
	if err != nil {
		return nil, err
	}
	db, err := a.database(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, errors.Wrap(err, "snapshot: begin")
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var seq int64
	if err := tx.QueryRowContext(ctx, logHead).Scan(&seq); err != nil {
		return nil, errors.Wrap(err, "snapshot: read log position")
	}
	batch := make([]adapters.Change, 0, a.cfg.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := sink(ctx, adapters.Batch{Changes: batch})
		batch = make([]adapters.Change, 0, a.cfg.BatchSize)
		return err
	}
	for _, info := range cat.infos() {
		t := cat.tables[info.Name]
		// +column is the column's value unchanged, but without the declared
		// type, so the driver hands it over as SQLite holds it (it would
		// parse text in a TIMESTAMP column itself), just as the log does.
		sel := make([]string, len(t.cols))
		for i, c := range t.cols {
			sel[i] = "+" + quoteIdent(c.Name)
		}
		rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(sel, ",")+` FROM `+quoteIdent(t.table))
		if err != nil {
			return nil, errors.Wrapf(err, "snapshot: read table %s", t.table)
		}
		vals := make([]any, len(t.cols))
		ptrs := make([]any, len(t.cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, errors.Wrapf(err, "snapshot: read table %s", t.table)
			}
			c, ok, err := a.decode(t.layout, opUpsert, vals)
			if err != nil {
				rows.Close()
				return nil, errors.Wrapf(err, "snapshot: table %s", t.table)
			}
			if !ok {
				continue
			}
			batch = append(batch, c)
			if len(batch) >= a.cfg.BatchSize {
				if err := flush(); err != nil {
					rows.Close()
					return nil, err
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, errors.Wrapf(err, "snapshot: read table %s", t.table)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return encodeCursor(cat.installID, seq), nil
}

// Capture polls the change log and sends what users committed after cursor,
// one batch per read of the log. A read sees only whole transactions (SQLite
// readers see commits atomically), so every batch ends on a transaction
// boundary. It polls cheaply: PRAGMA data_version tells whether another
// connection committed since the last look, and the log is read only then.
// A changed PRAGMA schema_version makes it re-install the triggers, so that
// new columns and tables are captured.
func (a *Adapter) Capture(ctx context.Context, cursor []byte, sink adapters.Sink) (err error) {
	// reopen cancels this context with an ErrFileChanged cause: whatever
	// Capture was doing then fails, and that cause is what it returns.
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer func() {
		if err != nil && parent.Err() == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
	}()
	db, gen, err := a.databaseGen(ctx)
	if err != nil {
		return err
	}
	seq, err := a.decodeCursor(cursor)
	if err != nil {
		return err
	}
	a.mu.Lock()
	acked := a.acked
	a.mu.Unlock()
	if seq < acked {
		return cursorError(errors.Newf("cursor at log position %d is before the acknowledged position %d, whose changes were discarded", seq, acked))
	}
	// The log never goes back (Ack keeps its newest row): a cursor past its
	// head was taken from a later state of this file, which was since
	// replaced by an older copy (a backup restored).
	var head int64
	if err := db.QueryRowContext(ctx, logHead).Scan(&head); err != nil {
		return a.captureErr(ctx, err, "read the log head")
	}
	if seq > head {
		return cursorError(errors.WithHint(
			errors.Newf("cursor at log position %d is past the change log's head %d: the database is older than the cursor", seq, head),
			"the file was replaced by an older copy: the engine takes a new snapshot and reconciles it by initial_sync"))
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return a.captureErr(ctx, err, "connect")
	}
	defer conn.Close()
	c := &capture{conn: conn, cancel: cancel}
	if err := a.addCapture(c, gen); err != nil {
		return err
	}
	defer a.removeCapture(c)
	// The poll runs every few milliseconds for as long as the sidecar runs:
	// one prepared statement, no table read.
	poll, err := a.preparePoll(ctx, c)
	if err != nil {
		return a.captureErr(ctx, err, "prepare poll")
	}
	defer poll.Close()
	lastData := int64(-1)
	timer := a.cfg.Clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C():
		}
		// A file deleted or replaced under the adapter: it is closed at once
		// (see reopen), and Capture ends so that the engine starts again
		// from the new file.
		if err := a.checkFile(); err != nil {
			if errors.Is(err, ErrFileChanged) {
				a.removeCapture(c) // this error, not reopen's cause, is returned
				poll.Close()
				conn.Close()
				if rerr := a.reopen(ctx, err); rerr != nil && !errors.Is(rerr, ErrFileChanged) {
					a.log.Warn("sqlite: reopen", "err", rerr)
				}
			}
			return err
		}
		// Another call noticed the new file first and opened it: this
		// connection reads the old one.
		if a.generation() != gen {
			return fileReopened(a.cfg.Path)
		}
		var data int64
		if err := poll.QueryRowContext(ctx).Scan(&data); err != nil {
			return a.captureErr(ctx, err, "poll")
		}
		// A schema change is a commit too, so it shows in data_version.
		if data != lastData {
			lastData = data
			var schema int64
			if err := conn.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&schema); err != nil {
				return a.captureErr(ctx, err, "poll")
			}
			if schema != a.catalog().schema {
				if err := a.refresh(ctx); err != nil {
					return err
				}
			}
			if seq, err = a.readLog(ctx, db, conn, seq, sink); err != nil {
				return err
			}
		}
		timer.Reset(a.cfg.PollInterval)
	}
}

func (a *Adapter) captureErr(ctx context.Context, err error, what string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return errors.Wrapf(err, "capture: %s %s", what, a.cfg.Path)
}

// readLog sends the log rows after seq as one batch and returns the new
// position. A layout missing from the cache is read through the pool, not
// conn: a second query on conn while its rows are open would wait behind
// reopen's conn.Close (which waits for those rows) and then run on the
// connection Close released. A layout row is committed with or before the
// first log row naming it, so any connection finds it.
func (a *Adapter) readLog(ctx context.Context, db *sql.DB, conn *sql.Conn, seq int64, sink adapters.Sink) (int64, error) {
	cat := a.catalog()
	rows, err := conn.QueryContext(ctx, `SELECT * FROM _lattice_log WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return seq, a.captureErr(ctx, err, "read log")
	}
	names, err := rows.Columns()
	if err != nil {
		rows.Close()
		return seq, a.captureErr(ctx, err, "read log")
	}
	if len(names) < logFixed {
		rows.Close()
		return seq, errors.AssertionFailedf("change log has %d columns", len(names))
	}
	vals, ptrs := scanTargets(len(names))
	at, pos := logColumns(names)
	natives := make([]any, len(pos))
	var changes []adapters.Change
	last := seq
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return seq, a.captureErr(ctx, err, "read log")
		}
		s, _ := vals[0].(int64)
		tbl, _ := vals[1].(string)
		layoutID, _ := vals[2].(int64)
		op, _ := vals[3].(int64)
		last = s
		if _, synced := cat.tables[tbl]; !synced {
			continue
		}
		l, err := a.layout(ctx, db, layoutID)
		if err != nil {
			rows.Close()
			return seq, err
		}
		for k, i := range pos {
			natives[k] = vals[i]
		}
		c, ok, err := a.decode(l, op, natives)
		if err != nil {
			rows.Close()
			return seq, errors.Wrapf(err, "capture: log row %d", s)
		}
		if at >= 0 {
			if ms, isTime := vals[at].(int64); isTime {
				c.Committed = time.UnixMilli(ms).UTC()
			}
		}
		// The insert trigger logs an insert, and the new key of a key change.
		c.Insert = op == opUpsert
		if ok {
			changes = append(changes, l.moved(c)...)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return seq, a.captureErr(ctx, err, "read log")
	}
	if len(changes) > 0 {
		if err := sink(ctx, adapters.Batch{Changes: changes, Cursor: encodeCursor(cat.installID, last)}); err != nil {
			return seq, err
		}
	}
	return last, nil
}

// scanTargets returns n values and pointers to them, for rows.Scan.
func scanTargets(n int) ([]any, []any) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, ptrs
}

// logColumns finds, among the columns of a SELECT * of the change log, the
// time column (-1 if missing) and the value columns by number (pos[k] is the
// index of ck), wherever they are: an upgraded log has at after its older
// value columns.
func logColumns(names []string) (at int, pos []int) {
	at = -1
	pos = make([]int, max(len(names)-logFixed, 0))
	for i, name := range names {
		if name == "at" {
			at = i
		} else if k, err := strconv.Atoi(strings.TrimPrefix(name, "c")); err == nil && name != "c" && k >= 0 && k < len(pos) {
			pos[k] = i
		}
	}
	return at, pos
}

// layout returns a layout by id, from the cache or the database.
func (a *Adapter) layout(ctx context.Context, conn querier, id int64) (*layout, error) {
	a.mu.Lock()
	l, ok := a.layouts[id]
	a.mu.Unlock()
	if ok {
		return l, nil
	}
	var tbl, cols string
	if err := conn.QueryRowContext(ctx, `SELECT tbl, columns FROM _lattice_layout WHERE id=?`, id).Scan(&tbl, &cols); err != nil {
		return nil, a.captureErr(ctx, err, "read layout "+strconv.FormatInt(id, 10))
	}
	l, err := decodeLayout(id, tbl, cols)
	if err != nil {
		return nil, err
	}
	mapLayout(l, &a.cfg)
	a.mu.Lock()
	a.layouts[id] = l
	a.mu.Unlock()
	return l, nil
}

// errLog marks a change log row that does not decode: a corrupt or
// hand-edited log.
var errLog = errors.New("sqlite: malformed change log row")

// decode turns the values of a log row (or a snapshot row) into a Change.
// ok is false for a row that cannot be expressed (a null or malformed key),
// which is logged and left out. The row before the change (Change.Old) is
// known for updates and deletes logged by format 2 triggers, and nil for
// inserts and for rows logged by format 1 triggers.
func (a *Adapter) decode(l *layout, op int64, natives []any) (adapters.Change, bool, error) {
	c := adapters.Change{Collection: l.table}
	n := len(l.cols)
	var want int
	switch op {
	case opUpsert, opDeleteRow:
		want = n
	case opUpdate:
		want = 2 * n
	case opDelete:
		want = len(l.key)
	default:
		return c, false, errors.Mark(errors.Newf("unknown log operation %d", op), errLog)
	}
	if len(natives) < want {
		return c, false, errors.Mark(errors.Newf("%d values for %d columns", len(natives), want), errLog)
	}
	var keyRow crdt.Row // the row the key is read from
	switch op {
	case opUpsert:
		c.Row = a.row(l, l.cols, natives[:n])
		keyRow = c.Row
	case opUpdate:
		c.Row = a.row(l, l.cols, natives[:n])
		c.Old = a.row(l, l.cols, natives[n:2*n])
		keyRow = c.Row
	case opDeleteRow:
		c.Old = a.row(l, l.cols, natives[:n])
		keyRow = c.Old
	case opDelete:
		if l.natural {
			a.log.Warn("sqlite: delete logged by an old trigger without its row not captured: the table has a natural key", "table", l.table)
			return c, false, nil
		}
		keyRow = a.row(l, l.key, natives[:len(l.key)])
	}
	keyVals := make([]crdt.Value, len(l.key))
	for i, k := range l.key {
		keyVals[i] = keyRow[k.Name]
	}
	key, err := crdt.MakeKey(keyVals...)
	if err != nil {
		a.log.Warn("sqlite: row with an unusable primary key not captured", "table", l.table, "err", err)
		return c, false, nil
	}
	if op == opUpdate && !l.natural && !oldKeyIs(l, c.Old, keyVals) {
		// The triggers log a key change as a delete and an insert; an update
		// row whose old key differs is not theirs. Triggers from before a
		// table had its natural key logged its change as an update row
		// (see moved).
		return c, false, errors.Mark(errors.New("update row whose old and new keys differ"), errLog)
	}
	c.Key = key
	l.strip(c.Row)
	l.strip(c.Old)
	return c, true, nil
}

// row converts the values of the given columns.
func (a *Adapter) row(l *layout, cols []*column, natives []any) crdt.Row {
	row := make(crdt.Row, len(cols))
	for i, col := range cols {
		v, ok := fromNative(natives[i], col)
		if !ok {
			a.warnOnce(l.table, col, v)
		}
		row[col.Name] = v
	}
	return row
}

// oldKeyIs reports whether the key columns of old hold keyVals.
func oldKeyIs(l *layout, old crdt.Row, keyVals []crdt.Value) bool {
	for i, k := range l.key {
		if !crdt.Equal(old[k.Name], keyVals[i]) {
			return false
		}
	}
	return true
}

func (a *Adapter) warnOnce(table string, c *column, v crdt.Value) {
	k := table + "." + c.Name
	a.mu.Lock()
	first := !a.warned[k]
	a.warned[k] = true
	a.mu.Unlock()
	if first {
		a.log.Warn("sqlite: value does not fit its column's declared type; captured as it is",
			"table", table, "column", c.Name, "type", c.Type, "kind", v.Kind().String(), "value", clip(v.String()))
	}
}

// refresh re-installs after a schema change and swaps in the new catalog.
func (a *Adapter) refresh(ctx context.Context) error {
	db, err := a.database(ctx)
	if err != nil {
		return err
	}
	cat, err := install(ctx, db, &a.cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.Wrap(err, "re-install after a schema change")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !maps.EqualFunc(a.cat.tables, cat.tables, func(x, y *table) bool { return x.id == y.id }) {
		a.log.Info("sqlite: synced tables changed", "tables", len(cat.tables))
		select {
		case a.changed <- struct{}{}:
		default:
		}
	}
	a.cat = cat
	for _, t := range cat.tables {
		a.layouts[t.id] = t.layout
	}
	return nil
}

// Ack deletes the log rows up to cursor (but the newest): Lattice holds them
// durably.
func (a *Adapter) Ack(ctx context.Context, cursor []byte) error {
	seq, err := a.decodeCursor(cursor)
	if err != nil {
		return err
	}
	a.mu.Lock()
	acked := a.acked
	a.mu.Unlock()
	if seq <= acked {
		return nil
	}
	db, gen, err := a.databaseGen(ctx)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return errors.Wrap(err, "ack: begin")
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// A copy of the file has its install ID: a cursor past the log's head
	// was taken from a later state of a file since replaced by an older
	// copy. Recorded, it would fail every cursor of this file.
	var head int64
	if err := tx.QueryRowContext(ctx, logHead).Scan(&head); err != nil {
		return errors.Wrap(err, "ack: read change log position")
	}
	if seq > head {
		a.log.Warn("sqlite: acknowledgement past the change log's head ignored: it is from a file since replaced by an older copy",
			"path", a.cfg.Path, "seq", seq, "head", head)
		return nil
	}
	// The newest row stays, whatever the cursor: see internalDDL.
	if _, err := tx.ExecContext(ctx, `DELETE FROM _lattice_log WHERE seq <= ? AND seq < (SELECT max(seq) FROM _lattice_log)`, seq); err != nil {
		return errors.Wrap(err, "ack: trim change log")
	}
	if _, err := tx.ExecContext(ctx, `UPDATE _lattice_meta SET v=? WHERE k='acked' AND v < ?`, seq, seq); err != nil {
		return errors.Wrap(err, "ack: record position")
	}
	if err := tx.Commit(); err != nil {
		return errors.Wrap(err, "ack: commit")
	}
	a.mu.Lock()
	if a.gen == gen { // else a.acked is the next file's
		a.acked = max(a.acked, seq)
	}
	a.mu.Unlock()
	return nil
}

// Apply writes rows in one transaction that inserts the echo marker first
// and deletes it last, so the capture triggers skip every write in between
// and no other connection ever sees the marker. Each write is converted and
// checked before the transaction starts; a write SQLite still rejects (a
// NOT NULL or CHECK constraint) fails the batch with a RowError too.
//
// The position returned is the change log's last sequence number as the
// transaction reads it. SQLite runs one write transaction at a time, and
// Apply's takes the write lock when it begins, so every change committed
// before it is at or below that number and every later one above it.
func (a *Adapter) Apply(ctx context.Context, writes []adapters.Write, since []byte) (adapters.Applied, error) {
	if len(writes) == 0 {
		head, err := a.Head(ctx)
		return adapters.Applied{Position: head}, err
	}
	// A cursor of another install (the file was replaced) says nothing
	// about this log: the acknowledged position stands in. So does one past
	// the log's head (see apply).
	after := int64(-1)
	if len(since) > 0 {
		if seq, err := a.decodeCursor(since); err == nil {
			after = seq
		}
	}
	pos, deferred, generated, err := a.apply(ctx, writes, after)
	return adapters.Applied{Position: pos, Deferred: deferred, Generated: generated}, err
}

// apply writes writes, deferring those whose records have changes logged
// after the sequence number after (-1: after the acknowledged position). It
// returns the keys generated for writes with a NewKey, by write index.
func (a *Adapter) apply(ctx context.Context, writes []adapters.Write, after int64) ([]byte, []int, map[int]crdt.Key, error) {
	cat, err := a.current(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	type stmt struct {
		w    *adapters.Write
		t    *table
		args []any
		// fresh: w has a NewKey the ID map does not hold; insertNew
		// inserts it.
		fresh bool
	}
	stmts := make([]stmt, len(writes))
	for i := range writes {
		w := &writes[i]
		prepare := prepareWrite
		if w.NewKey != "" {
			prepare = prepareNew
		}
		t, args, err := prepare(cat, w)
		if err != nil {
			return nil, nil, nil, adapters.BadRow(w.Collection, writeKey(w), err)
		}
		stmts[i] = stmt{w: w, t: t, args: args, fresh: w.NewKey != ""}
	}
	// Writing into a file deleted or replaced since it was opened would
	// lose the writes: database checks the file first.
	db, err := a.database(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: begin"))
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var seq int64
	if err := tx.QueryRowContext(ctx, logHead).Scan(&seq); err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: read change log position"))
	}
	// A since past the head is from a later state of a file since
	// replaced by an older copy (same install ID): it says nothing of this
	// log, whose changes after the acknowledged position must defer writes.
	if after > seq {
		after = -1
	}
	// A NewKey the ID map holds was inserted by an earlier Apply: the write
	// updates that record under its local key.
	generated := map[int]crdt.Key{}
	for i := range stmts {
		s := &stmts[i]
		if !s.fresh {
			continue
		}
		local, err := mappedKey(ctx, tx, s.w)
		if err != nil {
			return nil, nil, nil, unavailable(errors.Wrap(err, "apply: read the id map"))
		}
		if local == "" {
			continue
		}
		w, err := asUpdate(cat, s.w, local)
		if err == nil {
			s.t, s.args, err = prepareWrite(cat, &w)
		}
		if err != nil {
			return nil, nil, nil, adapters.BadRow(s.w.Collection, s.w.NewKey, err)
		}
		s.w, s.fresh, generated[i] = &w, false, local
	}
	// The transaction holds SQLite's write lock from its start, so no user
	// writes between this look at the log and the writes below.
	busy, err := a.uncaptured(ctx, tx, cat, writes, after)
	if err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: read uncaptured changes"))
	}
	var deferred []int
	for i, s := range stmts {
		if busy[crdt.MakeID(s.w.Collection, s.w.Key)] {
			deferred = append(deferred, i)
		}
	}
	if len(deferred) == len(stmts) {
		return encodeCursor(cat.installID, seq), deferred, nil, nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO _lattice_apply(x) VALUES(1)`); err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: set echo marker"))
	}
	prepared := map[string]*sql.Stmt{}
	defer func() {
		for _, s := range prepared {
			s.Close()
		}
	}()
	for i, s := range stmts {
		if len(deferred) > 0 && slices.Contains(deferred, i) {
			continue
		}
		if s.fresh {
			local, err := insertNew(ctx, tx, s.t, s.w, s.args)
			if err != nil {
				if isRowFault(err) {
					return nil, nil, nil, adapters.BadRow(s.w.Collection, s.w.NewKey, err)
				}
				return nil, nil, nil, unavailable(errors.Wrapf(err, "apply: insert %s/new %s", s.w.Collection, s.w.NewKey))
			}
			generated[i] = local
			continue
		}
		q := s.t.upsert
		if s.w.Row == nil {
			q = s.t.delete
			if err := unmap(ctx, tx, s.w); err != nil {
				return nil, nil, nil, unavailable(errors.Wrap(err, "apply"))
			}
		}
		ps, ok := prepared[q]
		if !ok {
			if ps, err = tx.PrepareContext(ctx, q); err != nil {
				return nil, nil, nil, errors.Wrapf(err, "apply: prepare statement for %s", s.t.table)
			}
			prepared[q] = ps
		}
		if _, err := ps.ExecContext(ctx, s.args...); err != nil {
			if isRowFault(err) {
				return nil, nil, nil, adapters.BadRow(s.w.Collection, writeKey(&writes[i]), err)
			}
			return nil, nil, nil, unavailable(errors.Wrapf(err, "apply: write %s/%s", s.w.Collection, s.w.Key))
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM _lattice_apply`); err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: clear echo marker"))
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, nil, unavailable(errors.Wrap(err, "apply: commit"))
	}
	if len(generated) == 0 {
		generated = nil
	}
	return encodeCursor(cat.installID, seq), deferred, generated, nil
}

// uncaptured returns the records of writes' tables that have a change in
// the log after the sequence number after (-1: after the acknowledged
// position): changes the merged rows do not include. Ack keeps the log
// short, so while capture keeps up this reads a few rows.
func (a *Adapter) uncaptured(ctx context.Context, tx *sql.Tx, cat *catalog, writes []adapters.Write, after int64) (map[crdt.ID]bool, error) {
	if after < 0 {
		if err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT v FROM _lattice_meta WHERE k='acked'), 0)`).Scan(&after); err != nil {
			return nil, err
		}
	}
	var tables []any
	seen := map[string]bool{}
	for _, w := range writes {
		t := cat.tables[w.Collection]
		if t != nil && !seen[t.table] {
			seen[t.table] = true
			tables = append(tables, t.table)
		}
	}
	// Only the key columns are read: first which layouts and operations the
	// rows after the position have, then, for each, the distinct keys.
	type group struct {
		layout, op int64
	}
	q := `SELECT DISTINCT layout, op FROM _lattice_log WHERE seq > ? AND tbl IN (?` + strings.Repeat(",?", len(tables)-1) + `)`
	rows, err := tx.QueryContext(ctx, q, append([]any{after}, tables...)...)
	if err != nil {
		return nil, err
	}
	var groups []group
	for rows.Next() {
		var g group
		if err := rows.Scan(&g.layout, &g.op); err != nil {
			rows.Close()
			return nil, err
		}
		groups = append(groups, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	busy := map[crdt.ID]bool{}
	for _, g := range groups {
		l, err := a.layout(ctx, tx, g.layout)
		if err != nil {
			return nil, err
		}
		// Where the key is: the whole row's key columns (an insert, the new
		// row of an update, the old row of a delete), or the key alone (a
		// delete logged by format 1 triggers). An update of a natural key
		// changes two records: the old row's key is read too.
		switch g.op {
		case opDelete, opUpsert, opUpdate, opDeleteRow:
		default:
			continue // capture reports the malformed row
		}
		if len(l.key) == 0 || g.op == opDelete && l.natural {
			continue // capture leaves it out
		}
		offsets := []int{0}
		if g.op == opUpdate && l.natural {
			offsets = append(offsets, len(l.cols))
		}
		for _, off := range offsets {
			cols := make([]string, len(l.key))
			for i, k := range l.key {
				if g.op == opDelete {
					cols[i] = valueColumn(i)
				} else {
					cols[i] = valueColumn(off + slices.Index(l.cols, k))
				}
			}
			if err := logKeys(ctx, tx, l, cols, after, g.op, busy); err != nil {
				return nil, err
			}
		}
	}
	return busy, nil
}

// logKeys adds to busy the distinct keys that the value columns cols hold
// in the log rows of layout l and operation op after the sequence number
// after.
func logKeys(ctx context.Context, tx *sql.Tx, l *layout, cols []string, after, op int64, busy map[crdt.ID]bool) error {
	krows, err := tx.QueryContext(ctx, `SELECT DISTINCT `+strings.Join(cols, ",")+` FROM _lattice_log WHERE seq > ? AND layout = ? AND op = ?`, after, l.id, op)
	if err != nil {
		return err
	}
	defer krows.Close()
	vals, ptrs := scanTargets(len(cols))
	keyVals := make([]crdt.Value, len(cols))
	for krows.Next() {
		if err := krows.Scan(ptrs...); err != nil {
			return err
		}
		for i, k := range l.key {
			keyVals[i], _ = fromNative(vals[i], k)
		}
		// A key capture cannot express is left out by capture too.
		if key, err := crdt.MakeKey(keyVals...); err == nil {
			busy[crdt.MakeID(l.table, key)] = true
		}
	}
	return krows.Err()
}

// prepareWrite checks a write against its table and returns the arguments
// of its statement: every column for an upsert, the key for a delete.
func prepareWrite(cat *catalog, w *adapters.Write) (*table, []any, error) {
	t, ok := cat.tables[w.Collection]
	if !ok {
		return nil, nil, errors.Newf("no synced table %q", w.Collection)
	}
	keyVals, err := w.Key.Values()
	if err != nil {
		return nil, nil, errors.Wrap(err, "write key")
	}
	if len(keyVals) != len(t.key) {
		return nil, nil, errors.Newf("key has %d elements, table %s has %d key columns", len(keyVals), t.table, len(t.key))
	}
	if w.Row == nil {
		args := make([]any, len(t.key))
		for i, k := range t.key {
			if args[i], err = toNative(keyVals[i], k); err != nil {
				return nil, nil, errors.Wrap(err, "key")
			}
		}
		return t, args, nil
	}
	for name := range w.Row {
		if t.byName[name] == nil {
			return nil, nil, errors.Newf("table %s has no column %q", t.table, name)
		}
	}
	for i, k := range t.key {
		v := w.Row[k.Name]
		if v.IsNull() {
			return nil, nil, errors.Newf("key column %s is missing or null", k.Name)
		}
		if !crdt.Equal(v, keyVals[i]) {
			return nil, nil, errors.Newf("key column %s is %s in the row but %s in the write's key", k.Name, v, keyVals[i])
		}
	}
	args := make([]any, len(t.synced), len(t.synced)+len(t.fills))
	for i, c := range t.synced {
		if args[i], err = toNative(w.Row[c.Name], c); err != nil {
			return nil, nil, err
		}
	}
	return t, append(args, t.fills...), nil
}

// unavailable marks err adapters.ErrUnavailable when SQLite says the
// database cannot take writes now (busy, locked, I/O, full, read-only,
// unopenable) or the error is not SQLite's (a closed handle, a cancelled
// context); other errors name no write and the engine looks for the one at
// fault.
func unavailable(err error) error {
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return errors.Mark(err, adapters.ErrUnavailable)
	}
	switch se.Code() & 0xff {
	case 5, 6, 7, 8, 10, 11, 13, 14, 26: // BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT, FULL, CANTOPEN, NOTADB
		return errors.Mark(err, adapters.ErrUnavailable)
	}
	return err
}

// isRowFault reports whether SQLite rejected a statement for the values it
// was given rather than for the database's state: a constraint, a type
// mismatch (a non-integer rowid) or a value too big.
func isRowFault(err error) bool {
	var se *sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case 18, 19, 20: // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH
		return true
	}
	return false
}
