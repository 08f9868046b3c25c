package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
)

// formatVersion is the version of the adapter's tables and triggers. A
// database installed by a newer version is refused rather than misread.
//
// Version 2 logs the old row of updates and deletes (opUpdate, opDeleteRow)
// where version 1 logged only the new row of an update (opUpsert) and the
// key of a delete (opDelete). Rows logged by version 1 triggers still decode,
// without an old row; version 1 cannot read version 2 rows, so installing
// version 2 records it and an older lattice refuses the database.
//
// Version 3 adds the log column at: the Unix time in milliseconds at which
// the trigger ran, inside the user's transaction (Change.Committed). An
// upgrade adds the column to an existing log; rows logged before it have no
// time.
const formatVersion = 3

// The adapter's own tables. _lattice_log is the change log the triggers
// fill: a sequence number, the table, the layout and the operation, then the
// row's values in columns c0, c1, ... declared without a type, so that SQLite
// keeps each value exactly as the table held it (storage class and all).
// There are twice as many value columns as the widest synced table has
// columns (an update logs the new row and the old one); install adds more
// when a wider table appears. _lattice_layout holds the
// column lists log rows refer to; _lattice_meta the install ID, format
// version and acknowledged position; _lattice_apply holds a row only inside
// Apply's transactions (the echo marker); _lattice_idmap the ID map
// (idmapDDL).
//
// The sequence is a plain rowid, which SQLite assigns as one more than the
// largest in the table: Ack never deletes the newest log row, so numbers are
// never reused (AUTOINCREMENT would guarantee the same at a third more cost
// per logged row).
var internalDDL = []string{
	`CREATE TABLE IF NOT EXISTS _lattice_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS _lattice_layout(id INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, columns TEXT NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS _lattice_log(seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, layout INTEGER NOT NULL, op INTEGER NOT NULL, at INTEGER)`,
	`CREATE TABLE IF NOT EXISTS _lattice_apply(x INTEGER PRIMARY KEY)`,
	idmapDDL,
}

// logFixed is the number of _lattice_log columns besides the values: seq,
// tbl, layout, op and at. A log upgraded from format 2 has at after the
// value columns it had then, so the log is read by column name.
const logFixed = 5

// logTime is the SQL of the log's at column: the Unix time in milliseconds,
// which SQLite's 'now' gives to the millisecond and keeps for the whole
// statement.
const logTime = `CAST(round((julianday('now') - 2440587.5) * 86400000) AS INTEGER)`

// valueColumn names the i-th value column of the log.
func valueColumn(i int) string { return "c" + strconv.Itoa(i) }

// valueColumns returns "c0,c1,...,c<n-1>".
func valueColumns(n int) string {
	cols := make([]string, n)
	for i := range cols {
		cols[i] = valueColumn(i)
	}
	return strings.Join(cols, ",")
}

var internalTables = []string{"_lattice_log", "_lattice_layout", "_lattice_meta", "_lattice_apply", "_lattice_idmap"}

// Log row operations. The value columns c0, c1, ... hold, for a layout of
// n columns:
const (
	// opUpsert: the new row in c0..c(n-1). An insert, a row captured when
	// its table's triggers were created, and (format 1) an update.
	opUpsert = 0
	// opDelete (format 1 only): the key columns in key order.
	opDelete = 1
	// opUpdate: the new row in c0..c(n-1), the old row in cn..c(2n-1).
	opUpdate = 2
	// opDeleteRow: the old row in c0..c(n-1). A delete, and the old key of
	// an update that moved the row to a new primary key.
	opDeleteRow = 3
)

// maxLogColumns bounds the change log's width: SQLite's default limit on the
// columns of a table (SQLITE_MAX_COLUMN) is 2000.
const maxLogColumns = 2000

// maxTableColumns is the widest table the log can hold an update of: its
// new and old rows side by side.
const maxTableColumns = (maxLogColumns - logFixed) / 2

// triggerPrefix starts the name of every trigger the adapter installs.
const triggerPrefix = "_lattice_"

// ErrNotInstallable marks an Open that cannot sync what it was asked to: a
// listed table that is missing, has no primary key or has a column of an
// unsupported type.
var ErrNotInstallable = errors.New("sqlite: tables cannot be synced")

// ErrNoDatabase marks an Open of a database file that does not exist,
// without Config.Create.
var ErrNoDatabase = errors.New("sqlite: no database file")

// openDB opens the database with the pragmas every connection needs.
func openDB(ctx context.Context, cfg *Config) (*sql.DB, error) {
	// The pool opens connections by path whenever it needs one. Were the
	// file deleted, a new connection would create an empty one and write
	// there: so the file is created here, once, and connections open it
	// read-write without creating it (mode=rw).
	q := url.Values{}
	if cfg.Path != ":memory:" { // refused below: not in WAL mode
		flags := os.O_RDWR
		if cfg.Create {
			flags |= os.O_CREATE
		}
		f, err := os.OpenFile(cfg.Path, flags, 0o644)
		if errors.Is(err, os.ErrNotExist) {
			return nil, errors.Mark(errors.WithHint(errors.Newf("sqlite database %s does not exist", cfg.Path),
				"check the path (adapter.dsn) for a typo; to start from a new, empty database, set adapter.create: true"), ErrNoDatabase)
		}
		if err != nil {
			return nil, errors.Wrapf(err, "open sqlite database %s", cfg.Path)
		}
		f.Close()
		q.Add("mode", "rw")
	}
	path := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(cfg.Path)
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, errors.Wrapf(err, "open sqlite database %s", cfg.Path)
	}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode=WAL`).Scan(&mode); err != nil {
		db.Close()
		return nil, errors.Wrapf(err, "open sqlite database %s", cfg.Path)
	}
	if mode != "wal" {
		db.Close()
		return nil, errors.WithHint(errors.Newf("sqlite database %s: journal mode is %q, not wal", cfg.Path, mode),
			"the adapter needs a database file in WAL mode (not :memory:) so that capture can read while others write")
	}
	return db, nil
}

// catalog is what an installation found and set up.
type catalog struct {
	installID int64
	// acked is the acknowledged position as the installation read it: where
	// Open starts. The Adapter keeps the current one.
	acked int64
	// schema is PRAGMA schema_version as the installation left it; when the
	// database's differs, the schema changed and the catalog is stale.
	schema int64
	tables map[string]*table
}

func (c *catalog) infos() []adapters.Table {
	names := make([]string, 0, len(c.tables))
	for n := range c.tables {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]adapters.Table, len(names))
	for i, n := range names {
		out[i] = c.tables[n].info
	}
	return out
}

// install creates the adapter's tables and (re)creates the capture triggers
// of every synced table, in one write transaction, changing nothing that is
// already as it should be. A table whose triggers were missing (new since
// the last installation, re-created, or newly listed) has its rows written
// to the log, so that rows written before its triggers existed are not lost.
func install(ctx context.Context, db *sql.DB, cfg *Config) (*catalog, error) {
	log := cfg.Logger
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, errors.Wrap(err, "install: begin")
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='_lattice_meta'`).Scan(&n); err != nil {
		return nil, errors.Wrap(err, "install: read schema")
	}
	fresh := n == 0
	for _, ddl := range internalDDL {
		if _, err := tx.ExecContext(ctx, ddl); err != nil {
			return nil, errors.Wrap(err, "install: create lattice tables")
		}
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, errors.Wrap(err, "install: random install id")
	}
	cat := &catalog{tables: map[string]*table{}}
	format := int64(0)
	for _, m := range []struct {
		key  string
		init int64
		dst  *int64
	}{
		{"format", formatVersion, &format},
		{"install", int64(binary.BigEndian.Uint64(rnd[:]) >> 1), &cat.installID},
		{"acked", 0, &cat.acked},
	} {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO _lattice_meta(k, v) VALUES(?, ?)`, m.key, m.init); err != nil {
			return nil, errors.Wrap(err, "install: write meta")
		}
		if err := tx.QueryRowContext(ctx, `SELECT v FROM _lattice_meta WHERE k=?`, m.key).Scan(m.dst); err != nil {
			return nil, errors.Wrap(err, "install: read meta")
		}
	}
	if format > formatVersion {
		return nil, errors.WithHint(errors.Newf("the lattice tables were set up by a newer lattice (format %d, this one knows %d)", format, formatVersion),
			"upgrade lattice on this node")
	}
	if format < formatVersion {
		// The triggers below are rebuilt in this format: from now on the log
		// holds rows an older lattice cannot read.
		if _, err := tx.ExecContext(ctx, `UPDATE _lattice_meta SET v=? WHERE k='format'`, formatVersion); err != nil {
			return nil, errors.Wrap(err, "install: write meta")
		}
		log.Info("sqlite: change log format upgraded", "from", format, "to", formatVersion)
	}

	founds, err := discover(ctx, tx)
	if err != nil {
		return nil, err
	}
	synced, err := choose(founds, cfg, log)
	if err != nil {
		return nil, err
	}
	fills, err := checkMapping(ctx, tx, synced, cfg)
	if err != nil {
		return nil, err
	}

	existing, err := listTriggers(ctx, tx)
	if err != nil {
		return nil, errors.Wrap(err, "install")
	}

	var hasAt int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('_lattice_log') WHERE name = 'at'`).Scan(&hasAt); err != nil {
		return nil, errors.Wrap(err, "install: read change log columns")
	}
	if hasAt == 0 {
		// A log of format 2 or older: its rows keep a null time.
		if _, err := tx.ExecContext(ctx, `ALTER TABLE _lattice_log ADD COLUMN at INTEGER`); err != nil {
			return nil, errors.Wrap(err, "install: add the time column to the change log")
		}
	}
	var width int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('_lattice_log')`).Scan(&width); err != nil {
		return nil, errors.Wrap(err, "install: read change log columns")
	}
	for _, f := range synced {
		for width-logFixed < 2*len(f.cols) {
			if _, err := tx.ExecContext(ctx, `ALTER TABLE _lattice_log ADD COLUMN `+valueColumn(width-logFixed)); err != nil {
				return nil, errors.Wrap(err, "install: widen change log")
			}
			width++
		}
	}

	wanted := map[string]bool{}
	for _, f := range synced {
		l, prev, err := ensureLayout(ctx, tx, f)
		if err != nil {
			return nil, err
		}
		mapLayout(l, cfg)
		missing := false
		for _, tr := range triggers(l) {
			wanted[tr.name] = true
			have, ok := existing[tr.name]
			if !ok {
				missing = true
			}
			if have == tr.sql {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+quoteIdent(tr.name)); err != nil {
				return nil, errors.Wrapf(err, "install: drop trigger %s", tr.name)
			}
			if _, err := tx.ExecContext(ctx, tr.sql); err != nil {
				return nil, errors.Wrapf(err, "install: create trigger %s", tr.name)
			}
			if ok {
				log.Info("sqlite: capture trigger rebuilt for a schema change", "table", l.table, "trigger", tr.name)
			}
		}
		if missing && !fresh {
			res, err := tx.ExecContext(ctx, `INSERT INTO _lattice_log(tbl,layout,op,`+valueColumns(len(l.cols))+`) SELECT `+
				quoteString(l.table)+`,`+strconv.FormatInt(l.id, 10)+`,`+strconv.Itoa(opUpsert)+`,`+
				columnList("", l.cols)+` FROM `+quoteIdent(l.table))
			if err != nil {
				return nil, errors.Wrapf(err, "install: capture existing rows of %s", l.table)
			}
			n, _ := res.RowsAffected()
			log.Warn("sqlite: table had no capture triggers; its current rows are captured",
				"table", l.table, "rows", n)
		} else if prev != nil && !fresh {
			if err := logNewColumns(ctx, tx, log, prev, l); err != nil {
				return nil, err
			}
		}
		cat.tables[l.table] = newTable(l, fills[l.table])
	}
	for name := range existing {
		if !wanted[name] {
			if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+quoteIdent(name)); err != nil {
				return nil, errors.Wrapf(err, "install: drop trigger %s", name)
			}
			log.Info("sqlite: capture trigger dropped: its table is no longer synced", "trigger", name)
		}
	}
	if err := tx.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&cat.schema); err != nil {
		return nil, errors.Wrap(err, "install: read schema version")
	}
	if err := tx.Commit(); err != nil {
		return nil, errors.Wrap(err, "install: commit")
	}
	return cat, nil
}

// choose picks the tables to sync. Problems with a table the config lists
// are errors; other tables with problems are skipped with a warning.
func choose(founds []*found, cfg *Config, log *slog.Logger) ([]*found, error) {
	byName := map[string]*found{}
	for _, f := range founds {
		byName[f.name] = f
	}
	var problems []string
	var out []*found
	if len(cfg.Tables) > 0 {
		for _, name := range cfg.Tables {
			f, ok := byName[name]
			switch {
			case !ok:
				problems = append(problems, "table "+name+" does not exist")
			case len(f.problems) > 0:
				for _, p := range f.problems {
					problems = append(problems, "table "+name+": "+p)
				}
			default:
				out = append(out, f)
			}
		}
	} else {
		for _, f := range founds {
			if len(f.problems) > 0 {
				log.Warn("sqlite: table not synced", "table", f.name, "why", strings.Join(f.problems, "; "))
				continue
			}
			out = append(out, f)
		}
	}
	if len(problems) > 0 {
		return nil, errors.Mark(errors.WithHint(
			errors.New(strings.Join(problems, "; ")),
			"give every synced table a primary key and declare its columns as "+supportedTypes+
				"; or leave the table out of the adapter's tables list"), ErrNotInstallable)
	}
	if len(out) == 0 {
		log.Warn("sqlite: no table to sync", "path", cfg.Path)
	}
	return out, nil
}

// ensureLayout returns the table's latest recorded layout if its columns
// are unchanged, or records a new one and returns the one it replaces too
// (nil if none, or if that one no longer decodes).
func ensureLayout(ctx context.Context, q querier, f *found) (l, prev *layout, err error) {
	enc := encodeColumns(f.cols)
	var id int64
	var have string
	err = q.QueryRowContext(ctx, `SELECT id, columns FROM _lattice_layout WHERE tbl=? ORDER BY id DESC LIMIT 1`, f.name).Scan(&id, &have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, nil, errors.Wrapf(err, "install: read layout of %s", f.name)
	case have == enc:
		return newLayout(id, f.name, f.cols), nil, nil
	default:
		prev, _ = decodeLayout(id, f.name, have)
	}
	res, err := q.ExecContext(ctx, `INSERT INTO _lattice_layout(tbl, columns) VALUES(?, ?)`, f.name, enc)
	if err != nil {
		return nil, nil, errors.Wrapf(err, "install: record layout of %s", f.name)
	}
	if id, err = res.LastInsertId(); err != nil {
		return nil, nil, errors.Wrapf(err, "install: record layout of %s", f.name)
	}
	return newLayout(id, f.name, f.cols), prev, nil
}

// logNewColumns logs, for each row that holds a value in a column the
// table gained since layout prev, an update of those columns from null.
// Their values were written by a default or by statements that ran with
// the triggers of the old layout, which did not log them.
func logNewColumns(ctx context.Context, q querier, log *slog.Logger, prev, l *layout) error {
	var added []*column
	for _, c := range l.cols {
		if !slices.ContainsFunc(prev.cols, func(p *column) bool { return p.Name == c.Name }) && c.Key == 0 {
			added = append(added, c)
		}
	}
	if len(added) == 0 {
		return nil
	}
	old := make([]string, len(l.cols))
	for i, c := range l.cols {
		old[i] = quoteIdent(c.Name)
		if slices.Contains(added, c) {
			old[i] = "NULL"
		}
	}
	where := make([]string, len(added))
	for i, c := range added {
		where[i] = quoteIdent(c.Name) + " IS NOT NULL"
	}
	res, err := q.ExecContext(ctx, `INSERT INTO _lattice_log(tbl,layout,op,`+valueColumns(2*len(l.cols))+`) SELECT `+
		quoteString(l.table)+`,`+strconv.FormatInt(l.id, 10)+`,`+strconv.Itoa(opUpdate)+`,`+
		columnList("", l.cols)+`,`+strings.Join(old, ",")+` FROM `+quoteIdent(l.table)+` WHERE `+strings.Join(where, " OR "))
	if err != nil {
		return errors.Wrapf(err, "install: capture the new columns of %s", l.table)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		names := make([]string, len(added))
		for i, c := range added {
			names[i] = c.Name
		}
		log.Info("sqlite: values of new columns captured", "table", l.table, "columns", names, "rows", n)
	}
	return nil
}

type trigger struct{ name, sql string }

// listTriggers returns the adapter's triggers in the database, name to SQL.
func listTriggers(ctx context.Context, q querier) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, sql FROM sqlite_master WHERE type='trigger' AND substr(name, 1, ?)=?`, len(triggerPrefix), triggerPrefix)
	if err != nil {
		return nil, errors.Wrap(err, "list triggers")
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			return nil, errors.Wrap(err, "list triggers")
		}
		out[name] = text
	}
	return out, errors.Wrap(rows.Err(), "list triggers")
}

// columnList renders the columns as a comma-separated list of references,
// qualified by ref (NEW, OLD) unless it is empty.
func columnList(ref string, cols []*column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = quoteIdent(c.Name)
		if ref != "" {
			parts[i] = ref + "." + parts[i]
		}
	}
	return strings.Join(parts, ",")
}

// triggers returns the capture triggers of a table. They copy the row's
// values into the log as they are, with SQL any SQLite of the last decade
// runs, since every process writing the database runs them with its own
// SQLite library. Each is skipped while _lattice_apply holds a row, which
// only Apply's own uncommitted transaction can see.
func triggers(l *layout) []trigger {
	tbl := quoteIdent(l.table)
	n := len(l.cols)
	head := func(n int) string {
		return "INSERT INTO _lattice_log(tbl,layout,op,at," + valueColumns(n) + ") "
	}
	fixed := func(op int) string {
		return quoteString(l.table) + "," + strconv.FormatInt(l.id, 10) + "," + strconv.Itoa(op) + "," + logTime + ","
	}
	guard := " WHEN NOT EXISTS (SELECT 1 FROM _lattice_apply) BEGIN "
	var keyMoved []string
	for _, k := range l.key {
		keyMoved = append(keyMoved, "OLD."+quoteIdent(k.Name)+" IS NOT NEW."+quoteIdent(k.Name))
	}
	moved := strings.Join(keyMoved, " OR ")
	ins := triggerPrefix + "ins_" + l.table
	upd := triggerPrefix + "upd_" + l.table
	del := triggerPrefix + "del_" + l.table
	return []trigger{
		{ins, "CREATE TRIGGER " + quoteIdent(ins) + " AFTER INSERT ON " + tbl + guard +
			head(n) + "VALUES(" + fixed(opUpsert) + columnList("NEW", l.cols) + "); END"},
		// An update that moves a row to a new key (the record key: the
		// natural key of a table that has one) deletes the old key, then
		// inserts the new one: for the new key's record it is an insert.
		{upd, "CREATE TRIGGER " + quoteIdent(upd) + " AFTER UPDATE ON " + tbl + guard +
			head(n) + "SELECT " + fixed(opDeleteRow) + columnList("OLD", l.cols) + " WHERE " + moved + "; " +
			head(n) + "SELECT " + fixed(opUpsert) + columnList("NEW", l.cols) + " WHERE " + moved + "; " +
			head(2*n) + "SELECT " + fixed(opUpdate) + columnList("NEW", l.cols) + "," + columnList("OLD", l.cols) +
			" WHERE NOT (" + moved + "); END"},
		{del, "CREATE TRIGGER " + quoteIdent(del) + " AFTER DELETE ON " + tbl + guard +
			head(n) + "VALUES(" + fixed(opDeleteRow) + columnList("OLD", l.cols) + "); END"},
	}
}

// Uninstall removes everything the adapter installed in the database at
// cfg.Path: the capture triggers and the lattice tables, change log and
// ID map included. Run it only with the sidecar stopped; a cursor the sidecar kept
// is worthless afterwards (the next Open starts a new change log, and
// Capture refuses the old cursor). SQLite's own sqlite_sequence table, which
// the layouts' AUTOINCREMENT created, stays (SQLite cannot drop it), without
// lattice entries.
func Uninstall(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	db, err := openDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return errors.Wrap(err, "uninstall: begin")
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	names, err := listTriggers(ctx, tx)
	if err != nil {
		return errors.Wrap(err, "uninstall")
	}
	for n := range names {
		if _, err := tx.ExecContext(ctx, `DROP TRIGGER IF EXISTS `+quoteIdent(n)); err != nil {
			return errors.Wrapf(err, "uninstall: drop trigger %s", n)
		}
	}
	for _, t := range internalTables {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return errors.Wrapf(err, "uninstall: drop table %s", t)
		}
	}
	if err := tx.Commit(); err != nil {
		return errors.Wrap(err, "uninstall: commit")
	}
	cfg.Logger.Info("sqlite: lattice triggers and tables removed", "path", cfg.Path, "triggers", len(names))
	return nil
}
