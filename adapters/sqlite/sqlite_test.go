package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

const waitTimeout = 30 * time.Second

// fixture is a database file, an application's connection to it, and
// helpers to open adapters and follow their capture.
type fixture struct {
	t    *testing.T
	ctx  context.Context
	path string
	user *sql.DB
	mark int
}

// newFixture creates a database with a barrier table "marks" plus the given
// DDL, as an application would.
func newFixture(t *testing.T, ddl ...string) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app.db")
	u := newUserDB(t, path)
	f := &fixture{t: t, ctx: t.Context(), path: path, user: u.db}
	f.exec(append([]string{`CREATE TABLE marks(id INTEGER PRIMARY KEY)`}, ddl...)...)
	return f
}

// exec runs statements in one transaction.
func (f *fixture) exec(stmts ...string) {
	f.t.Helper()
	tx, err := f.user.BeginTx(f.ctx, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, s := range stmts {
		if _, err := tx.ExecContext(f.ctx, s); err != nil {
			f.t.Fatalf("%s: %v", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) execArgs(q string, args ...any) {
	f.t.Helper()
	if _, err := f.user.ExecContext(f.ctx, q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) config() sqlite.Config { return testConfig(f.t, f.path) }

func (f *fixture) open(cfg sqlite.Config) *sqlite.Adapter {
	f.t.Helper()
	a, err := sqlite.Open(f.ctx, cfg)
	if err != nil {
		f.t.Fatalf("open: %+v", err)
	}
	f.t.Cleanup(func() { a.Close() })
	return a
}

func (f *fixture) snapshot(a *sqlite.Adapter) (map[string]crdt.Row, []byte) {
	f.t.Helper()
	rows := map[string]crdt.Row{}
	cur, err := a.Snapshot(f.ctx, func(_ context.Context, b adapters.Batch) error {
		for _, c := range b.Changes {
			rows[c.Collection+"/"+c.Key.String()] = c.Row
		}
		return nil
	})
	if err != nil {
		f.t.Fatalf("snapshot: %+v", err)
	}
	return rows, cur
}

// follower runs Capture and collects its batches.
type follower struct {
	f       *fixture
	batches chan adapters.Batch
	done    chan error
	cancel  context.CancelFunc
	once    sync.Once
	last    []byte
}

func (f *fixture) follow(a *sqlite.Adapter, cursor []byte) *follower {
	ctx, cancel := context.WithCancel(f.ctx)
	fl := &follower{f: f, batches: make(chan adapters.Batch, 16), done: make(chan error, 1), cancel: cancel}
	go func() {
		fl.done <- a.Capture(ctx, cursor, func(ctx context.Context, b adapters.Batch) error {
			select {
			case fl.batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	f.t.Cleanup(fl.stop)
	return fl
}

func (fl *follower) stop() {
	fl.once.Do(func() {
		fl.cancel()
		select {
		case <-fl.done:
		case <-time.After(waitTimeout):
			fl.f.t.Errorf("capture did not stop")
		}
	})
}

// sync writes a barrier row and returns every change captured before it.
func (fl *follower) sync() []adapters.Change {
	fl.f.t.Helper()
	fl.f.mark++
	fl.f.execArgs(`INSERT INTO marks(id) VALUES(?)`, fl.f.mark)
	barrier := crdt.IntKey(int64(fl.f.mark))
	var out []adapters.Change
	for {
		select {
		case b := <-fl.batches:
			fl.last = b.Cursor
			for _, c := range b.Changes {
				if c.Collection == "marks" {
					if c.Key == barrier {
						return out
					}
					continue
				}
				out = append(out, c)
			}
		case err := <-fl.done:
			fl.f.t.Fatalf("capture ended: %+v", err)
		case <-time.After(waitTimeout):
			fl.f.t.Fatalf("barrier %d not captured within %s", fl.f.mark, waitTimeout)
		}
	}
}

// waitErr waits for Capture to fail and returns its error.
func (fl *follower) waitErr() error {
	fl.f.t.Helper()
	for {
		select {
		case <-fl.batches:
		case err := <-fl.done:
			fl.done <- err // for stop
			return err
		case <-time.After(waitTimeout):
			fl.f.t.Fatalf("capture did not fail within %s", waitTimeout)
		}
	}
}

// captureErr runs Capture from cursor and returns its error. A Capture that
// wrongly accepts the cursor returns at its deadline instead of running on.
func (f *fixture) captureErr(a *sqlite.Adapter, cursor []byte) error {
	ctx, cancel := context.WithTimeout(f.ctx, waitTimeout)
	defer cancel()
	return a.Capture(ctx, cursor, func(context.Context, adapters.Batch) error { return nil })
}

func rowString(r crdt.Row) string {
	if r == nil {
		return "<deleted>"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, k+"="+r[k].String())
	}
	return strings.Join(parts, " ")
}

func expectRows(t *testing.T, got []adapters.Change, want ...string) {
	t.Helper()
	var g []string
	for _, c := range got {
		g = append(g, c.Collection+"/"+c.Key.String()+" "+rowString(c.Row))
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("captured:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestOtherProcessWrites captures what another OS process writes to the file
// while the adapter runs: the triggers live in the file, so any writer fires
// them.
func TestOtherProcessWrites(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)

	const txns, perTxn = 40, 5
	cmd := exec.CommandContext(f.ctx, os.Args[0], "-test.run=^TestHelperWriterProcess$")
	cmd.Env = append(os.Environ(), "LATTICE_SQLITE_WRITER="+f.path, "LATTICE_SQLITE_TXNS="+strconv.Itoa(txns), "LATTICE_SQLITE_PER_TXN="+strconv.Itoa(perTxn))
	// Concurrent writes from this process, on its own connection.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 20 {
			if _, err := f.user.ExecContext(f.ctx, `INSERT INTO items(id, name, qty) VALUES(?, 'here', ?)`, 100000+i, i); err != nil {
				t.Errorf("local write: %v", err)
			}
		}
	})
	out, err := cmd.CombinedOutput()
	wg.Wait()
	if err != nil {
		t.Fatalf("writer process: %v\n%s", err, out)
	}
	got := fl.sync()
	// Every row of both writers, each transaction whole and in commit
	// order: the other process's rows come in its order.
	seen := map[crdt.Key]crdt.Row{}
	var order []int64
	for _, c := range got {
		seen[c.Key] = c.Row
		if v, _ := c.Key.Values(); v[0].AsInt() < 100000 {
			order = append(order, v[0].AsInt())
		}
	}
	if len(seen) != txns*perTxn+20 {
		t.Fatalf("captured %d distinct rows, want %d", len(seen), txns*perTxn+20)
	}
	for i := range order {
		if order[i] != int64(i) {
			t.Fatalf("rows of the other process out of order at %d: %v", i, order[:i+1])
		}
	}
	for k, r := range seen {
		id, _ := k.Values()
		if id[0].AsInt() < 100000 && !crdt.Equal(r["name"], crdt.String("process "+strconv.FormatInt(id[0].AsInt()/perTxn, 10))) {
			t.Errorf("row %s: %s", k, rowString(r))
		}
	}
}

// TestHelperWriterProcess is the other process of TestOtherProcessWrites.
func TestHelperWriterProcess(t *testing.T) {
	path := os.Getenv("LATTICE_SQLITE_WRITER")
	if path == "" {
		t.Skip("helper process for TestOtherProcessWrites")
	}
	txns, _ := strconv.Atoi(os.Getenv("LATTICE_SQLITE_TXNS"))
	per, _ := strconv.Atoi(os.Getenv("LATTICE_SQLITE_PER_TXN"))
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range txns {
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for j := range per {
			if _, err := tx.Exec(`INSERT INTO items(id, name, qty) VALUES(?, ?, ?)`, i*per+j, "process "+strconv.Itoa(i), j); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

type schemaState struct {
	version int64
	objects string
	layouts int
}

func (f *fixture) schema() schemaState {
	f.t.Helper()
	var s schemaState
	if err := f.user.QueryRow(`PRAGMA schema_version`).Scan(&s.version); err != nil {
		f.t.Fatal(err)
	}
	rows, err := f.user.Query(`SELECT type, name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %s: %s\n", typ, name, text)
	}
	if err := f.user.QueryRow(`SELECT count(*) FROM _lattice_layout`).Scan(&s.layouts); err != nil && !strings.Contains(err.Error(), "no such table") {
		f.t.Fatal(err)
	}
	s.objects = b.String()
	return s
}

// TestReinstallIdempotent opens the adapter again and again: the first Open
// installs, later ones change nothing at all in the schema.
func TestReinstallIdempotent(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE "odd ""name"""(k TEXT PRIMARY KEY, v REAL)`,
		`CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	before := f.schema()
	a := f.open(f.config())
	installed := f.schema()
	if installed.version == before.version {
		t.Fatalf("first open changed nothing in the schema")
	}
	for _, want := range []string{`trigger _lattice_ins_items`, `trigger _lattice_upd_items`, `trigger _lattice_del_items`, `trigger _lattice_ins_odd "name"`, `table _lattice_log`} {
		if !strings.Contains(installed.objects, want) {
			t.Errorf("after open, schema lacks %q:\n%s", want, installed.objects)
		}
	}
	a.Close()
	for range 3 {
		b := f.open(f.config())
		if got := f.schema(); got != installed {
			t.Fatalf("reopening changed the schema:\nbefore %d %d layouts\n%s\nafter %d %d layouts\n%s", installed.version, installed.layouts, installed.objects, got.version, got.layouts, got.objects)
		}
		b.Close()
	}
	// Two adapters opening at once (two sidecars by mistake, or a restart
	// racing a stop) serialize on the write lock and agree.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			c, err := sqlite.Open(f.ctx, f.config())
			if err != nil {
				t.Errorf("concurrent open: %v", err)
				return
			}
			c.Close()
		})
	}
	wg.Wait()
	if got := f.schema(); got != installed {
		t.Fatalf("concurrent opens changed the schema")
	}
}

// TestUninstall removes everything the adapter created; the application's
// tables, rows and writes are unaffected, and a new install starts a new log
// that refuses the old cursor.
func TestUninstall(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	before := f.schema()
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	f.exec(`INSERT INTO items VALUES(1, 'one')`)
	a.Close()
	if err := sqlite.Uninstall(f.ctx, f.config()); err != nil {
		t.Fatalf("uninstall: %+v", err)
	}
	// SQLite's own sqlite_sequence, created for the layouts' AUTOINCREMENT,
	// cannot be dropped; it stays, without lattice entries.
	after := f.schema()
	if got := strings.Replace(after.objects, "table sqlite_sequence: CREATE TABLE sqlite_sequence(name,seq)\n", "", 1); got != before.objects {
		t.Fatalf("uninstall left:\n%s\nwant:\n%s", after.objects, before.objects)
	}
	var seqs int
	if err := f.user.QueryRow(`SELECT count(*) FROM sqlite_sequence WHERE name LIKE '\_lattice\_%' ESCAPE '\'`).Scan(&seqs); err != nil || seqs != 0 {
		t.Fatalf("sqlite_sequence keeps %d lattice entries (%v)", seqs, err)
	}
	f.exec(`INSERT INTO items VALUES(2, 'two')`)
	// Uninstalling twice is fine.
	if err := sqlite.Uninstall(f.ctx, f.config()); err != nil {
		t.Fatalf("second uninstall: %+v", err)
	}
	b := f.open(f.config())
	fl := f.follow(b, cur)
	if err := fl.waitErr(); !errors.Is(err, sqlite.ErrCursor) {
		t.Fatalf("capture from a cursor of the uninstalled log: %v, want ErrCursor", err)
	}
	rows, _ := f.snapshot(b)
	if len(rows) != 2 {
		t.Fatalf("snapshot after reinstall has %d rows, want 2", len(rows))
	}
}

// TestSchemaChanges changes the schema while capture runs.
func TestSchemaChanges(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	f.exec(`INSERT INTO items VALUES(1, 'one')`)
	expectRows(t, fl.sync(), `items/1 id=1 name="one"`)

	t.Run("new column", func(t *testing.T) {
		f.exec(`ALTER TABLE items ADD COLUMN price REAL`)
		// The barrier after the ALTER is captured after the re-install:
		// capture re-installs before it reads the log.
		fl.sync()
		if !hasColumn(t, a, "items", "price") {
			t.Fatal("Tables lacks the new column items.price")
		}
		f.exec(`UPDATE items SET price = 9.5 WHERE id = 1`)
		expectRows(t, fl.sync(), `items/1 id=1 name="one" price=9.5`)
	})
	t.Run("new table with rows written before its triggers", func(t *testing.T) {
		// Created and filled in one transaction: no trigger can have seen
		// these rows, yet they are captured.
		f.exec(`CREATE TABLE tags(name TEXT PRIMARY KEY, color TEXT)`,
			`INSERT INTO tags VALUES('red', '#f00')`, `INSERT INTO tags VALUES('blue', '#00f')`)
		// Tables re-installs when the schema changed, so the rows are
		// logged before the barrier.
		if !hasColumn(t, a, "tags", "color") {
			t.Fatal("Tables lacks the new table tags")
		}
		expectRows(t, fl.sync(), `tags/red color="#f00" name="red"`, `tags/blue color="#00f" name="blue"`)
		f.exec(`UPDATE tags SET color = '#0000ff' WHERE name = 'blue'`)
		expectRows(t, fl.sync(), `tags/blue color="#0000ff" name="blue"`)
	})
	t.Run("table dropped and re-created", func(t *testing.T) {
		f.exec(`DROP TABLE tags`, `CREATE TABLE tags(name TEXT PRIMARY KEY, weight INTEGER)`, `INSERT INTO tags VALUES('green', 3)`)
		if !hasColumn(t, a, "tags", "weight") {
			t.Fatal("Tables lacks the re-created table's column tags.weight")
		}
		expectRows(t, fl.sync(), `tags/green name="green" weight=3`)
		f.exec(`DELETE FROM tags WHERE name = 'green'`)
		expectRows(t, fl.sync(), `tags/green <deleted>`)
	})
	t.Run("log rows written before a change decode after it", func(t *testing.T) {
		fl.stop()
		f.exec(`INSERT INTO items VALUES(2, 'two', 1.5)`)
		f.exec(`ALTER TABLE items ADD COLUMN note TEXT`)
		fl2 := f.follow(a, fl.last)
		got := fl2.sync()
		// Logged under the old layout: the row without the new column.
		expectRows(t, got, `items/2 id=2 name="two" price=1.5`)
		if !hasColumn(t, a, "items", "note") {
			t.Fatal("Tables lacks the new column items.note")
		}
		f.exec(`UPDATE items SET note = 'n' WHERE id = 2`)
		expectRows(t, fl2.sync(), `items/2 id=2 name="two" note="n" price=1.5`)
		fl = fl2
	})
	t.Run("unsupported column in an unlisted table", func(t *testing.T) {
		f.exec(`ALTER TABLE tags ADD COLUMN amount UUID`)
		fl.sync()
		if hasTable(t, a, "tags") {
			t.Fatal("Tables still lists tags, which has an unsupported column")
		}
		f.exec(`INSERT INTO tags VALUES('ignored', 1, 2)`)
		expectRows(t, fl.sync())
	})
}

// TestSchemaChangeListedTable: a listed table that becomes unsyncable stops
// capture with an error naming the column.
func TestSchemaChangeListedTable(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	cfg := f.config()
	cfg.Tables = []string{"items", "marks"}
	a := f.open(cfg)
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	f.exec(`ALTER TABLE items ADD COLUMN amount UUID`)
	err := fl.waitErr()
	if !errors.Is(err, sqlite.ErrNotInstallable) || !strings.Contains(err.Error(), "table items: column amount has unsupported type \"UUID\"") {
		t.Fatalf("capture error %v, want ErrNotInstallable naming items.amount", err)
	}
	t.Logf("error: %v\nhint: %s", err, errors.FlattenHints(err))
}

// hasTable reports whether a syncs the table. Tables re-installs first when
// the schema changed, so it answers for the schema as it is now.
func hasTable(t *testing.T, a *sqlite.Adapter, name string) bool {
	tables, err := a.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == name {
			return true
		}
	}
	return false
}

func hasColumn(t *testing.T, a *sqlite.Adapter, table, column string) bool {
	tables, err := a.Tables(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == table {
			return tb.Column(column) != nil
		}
	}
	return false
}

// TestDiscovery checks which tables are synced, how columns map, and how
// problems are reported.
func TestDiscovery(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE good(id INTEGER PRIMARY KEY, n BIGINT, x DOUBLE, s VARCHAR(20), b BOOL, y BLOB, t DATETIME, d DATE, j JSON, l INTEGER[], g INTEGER GENERATED ALWAYS AS (n + 1) VIRTUAL)`,
		`CREATE TABLE nokey(a TEXT, b TEXT)`,
		`CREATE TABLE money(id INTEGER PRIMARY KEY, amount UUID, note)`,
		`CREATE TABLE jsonkey(j JSON PRIMARY KEY)`,
		`CREATE VIEW v AS SELECT * FROM good`,
		`CREATE TABLE composite(a TEXT NOT NULL, b INTEGER NOT NULL, c TEXT, PRIMARY KEY (b, a)) WITHOUT ROWID`)
	a := f.open(f.config())
	tables, err := a.Tables(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	if got, want := strings.Join(names, ","), "composite,good,marks"; got != want {
		t.Fatalf("synced tables %s, want %s", got, want)
	}
	good := tables[1]
	var cols []string
	for _, c := range good.Columns {
		s := c.Name + ":" + c.Kind.String()
		if c.Kind == crdt.KindList {
			s += "<" + c.Elem.String() + ">"
		}
		cols = append(cols, s)
	}
	if got, want := strings.Join(cols, " "), "id:int n:int x:float s:string b:bool y:bytes t:time d:time j:json l:list<int>"; got != want {
		t.Errorf("columns of good: %s, want %s", got, want)
	}
	if got := strings.Join(tables[0].Key, ","); got != "b,a" {
		t.Errorf("key of composite: %s, want b,a (primary key order)", got)
	}

	for _, tt := range []struct {
		tables []string
		want   []string
	}{
		{[]string{"nokey"}, []string{"table nokey: it has no primary key"}},
		{[]string{"money", "jsonkey"}, []string{`table money: column amount has unsupported type "UUID"`, `table money: column note has unsupported type ""`, `table jsonkey: key column j has type "JSON", which cannot be part of a key`}},
		{[]string{"missing", "good"}, []string{"table missing does not exist"}},
		{[]string{"v"}, []string{"table v does not exist"}},
	} {
		cfg := f.config()
		cfg.Tables = tt.tables
		_, err := sqlite.Open(f.ctx, cfg)
		if !errors.Is(err, sqlite.ErrNotInstallable) {
			t.Errorf("open with tables %v: %v, want ErrNotInstallable", tt.tables, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("open with tables %v: error %q does not say %q", tt.tables, err, w)
			}
		}
		if hint := errors.FlattenHints(err); !strings.Contains(hint, "primary key") {
			t.Errorf("no hint in %+v", err)
		}
	}
	for _, bad := range []sqlite.Config{
		{},
		{Path: f.path, PollInterval: -1},
		{Path: f.path, BatchSize: -5},
		{Path: f.path, Tables: []string{"a", "a"}},
		{Path: f.path, Tables: []string{"_lattice_log"}},
		{Path: f.path, Tables: []string{""}},
		{Path: f.path, BusyTimeout: -time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", bad)
		} else if !strings.Contains(err.Error(), "sqlite adapter: ") {
			t.Errorf("Validate error %q does not name the adapter", err)
		}
	}
	if _, err := sqlite.Open(f.ctx, sqlite.Config{Path: ":memory:"}); err == nil || !strings.Contains(err.Error(), "journal mode") {
		t.Errorf("open of :memory: = %v, want a journal mode error", err)
	}
}

// A path that names no file is an error that says so, with a hint, and
// leaves no file behind: a typo must not start an empty database beside
// the real one. With Create the file is made.
func TestOpenMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	cfg := testConfig(t, path)
	_, err := sqlite.Open(t.Context(), cfg)
	if !errors.Is(err, sqlite.ErrNoDatabase) || !strings.Contains(err.Error(), path+" does not exist") ||
		!strings.Contains(errors.FlattenHints(err), "adapter.create: true") {
		t.Fatalf("open of a missing file = %v (hint %q), want ErrNoDatabase naming it with a hint", err, errors.FlattenHints(err))
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing file left %s behind (%v)", path, err)
	}
	cfg.Create = true
	a, err := sqlite.Open(t.Context(), cfg)
	if err != nil {
		t.Fatalf("open with Create: %v", err)
	}
	defer a.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("open with Create made no file: %v", err)
	}
}

// TestValueForms captures values written in the many forms applications
// use for them.
func TestValueForms(t *testing.T) {
	f := newFixture(t, `CREATE TABLE v(id INTEGER PRIMARY KEY, t TIMESTAMP, d DATE, b BOOLEAN, f REAL, i INTEGER, s TEXT, y BLOB, j JSON, l TEXT[])`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	when := time.Date(2024, 3, 1, 12, 30, 15, 250000000, time.UTC)
	f.exec(
		`INSERT INTO v(id, t, d) VALUES(1, '2024-03-01 12:30:15.25', '2024-03-01')`,
		`INSERT INTO v(id, t) VALUES(2, '2024-03-01T14:30:15.25+02:00')`,
		`INSERT INTO v(id, t) VALUES(3, 1709296215)`,
		`INSERT INTO v(id, t) VALUES(4, '2024-03-01 12:30')`,
		`INSERT INTO v(id, b) VALUES(5, 'true')`,
		`INSERT INTO v(id, b, f) VALUES(6, 7, 'NaN')`,
		`INSERT INTO v(id, i) VALUES(7, 'forty-two')`,
		`INSERT INTO v(id, s, y) VALUES(8, 'a' || char(0) || 'b', 'text in a blob')`,
		`INSERT INTO v(id, j) VALUES(9, '{"b": 1, "a": [1, 2]}')`,
		`INSERT INTO v(id, l) VALUES(10, '["x", "y,z"]')`,
		`INSERT INTO v(id, i, f) VALUES(11, 3.0, 2)`,
		`INSERT INTO v(id, j) VALUES(12, 'not json')`,
	)
	f.execArgs(`INSERT INTO v(id, t) VALUES(13, ?)`, when) // the driver's own time format
	got := fl.sync()
	byID := map[int64]crdt.Row{}
	for _, c := range got {
		byID[c.Row["id"].AsInt()] = c.Row
	}
	tm := crdt.Time(when)
	for _, tt := range []struct {
		id   int64
		col  string
		want crdt.Value
	}{
		{1, "t", tm},
		{1, "d", crdt.Time(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))},
		{2, "t", tm},
		{3, "t", crdt.TimeUnix(1709296215, 0)},
		{4, "t", crdt.Time(time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC))},
		{5, "b", crdt.Bool(true)},
		{6, "b", crdt.Bool(true)},
		{6, "f", crdt.Float(math.NaN())},
		{7, "i", crdt.String("forty-two")}, // does not fit INTEGER: captured as it is
		{8, "s", crdt.String("a\x00b")},
		{8, "y", crdt.Bytes([]byte("text in a blob"))},
		{9, "j", crdt.MustJSON(`{"a":[1,2],"b":1}`)},
		{10, "l", mustList(crdt.String("x"), crdt.String("y,z"))},
		{11, "i", crdt.Int(3)},
		{11, "f", crdt.Float(2)},
		{12, "j", crdt.String("not json")},
		{13, "t", tm},
	} {
		if g := byID[tt.id][tt.col]; !crdt.Equal(g, tt.want) {
			t.Errorf("row %d column %s: captured %s (%s), want %s", tt.id, tt.col, g, g.Kind(), tt.want)
		}
	}

	// What Apply writes, users read as the documented text, and capture
	// reads back exactly.
	row := crdt.Row{"id": crdt.Int(20), "t": crdt.Time(when.Add(123)), "d": crdt.Time(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)),
		"f": crdt.Float(math.NaN()), "s": crdt.String("nul\x00inside"), "b": crdt.Bool(false)}
	if _, err := a.Apply(f.ctx, []adapters.Write{{Collection: "v", Key: crdt.IntKey(20), Row: row}}, nil); err != nil {
		t.Fatal(err)
	}
	var ts, ds, fs string
	if err := f.user.QueryRow(`SELECT CAST(t AS TEXT), CAST(d AS TEXT), CAST(f AS TEXT) FROM v WHERE id = 20`).Scan(&ts, &ds, &fs); err != nil {
		t.Fatal(err)
	}
	if ts != "2024-03-01T12:30:15.250000123Z" || ds != "2024-03-01" || fs != "NaN" {
		t.Errorf("applied time %q, date %q, NaN %q", ts, ds, fs)
	}
	f.exec(`UPDATE v SET i = 1 WHERE id = 20`)
	got = fl.sync()
	row["i"] = crdt.Int(1)
	if len(got) != 1 || !rowsEqual(got[0].Row, row) {
		t.Errorf("captured after apply %v, want %s", got, rowString(row))
	}
}

func rowsEqual(a, b crdt.Row) bool {
	for k, v := range a {
		if !crdt.Equal(v, b[k]) {
			return false
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok && !v.IsNull() {
			return false
		}
	}
	return true
}

func mustList(vs ...crdt.Value) crdt.Value {
	l, err := crdt.List(vs...)
	if err != nil {
		panic(err)
	}
	return l
}

// TestPlainJSONColumn documents SQLite's NUMERIC affinity on a column
// declared JSON: objects and strings keep their text, a bare integer is
// stored as an integer (and captured exactly), a bare number beyond 64 bits
// becomes a REAL. JSON TEXT avoids the conversion.
func TestPlainJSONColumn(t *testing.T) {
	f := newFixture(t, `CREATE TABLE docs(id INTEGER PRIMARY KEY, plain JSON, text JSON TEXT)`)
	a := f.open(f.config())
	docs := []string{`{"a":1}`, `"s"`, `-17`, `12345678901234567890`, `2.5`}
	var writes []adapters.Write
	for i, d := range docs {
		writes = append(writes, adapters.Write{Collection: "docs", Key: crdt.IntKey(int64(i)), Row: crdt.Row{
			"id": crdt.Int(int64(i)), "plain": crdt.MustJSON(d), "text": crdt.MustJSON(d)}})
	}
	if _, err := a.Apply(f.ctx, writes, nil); err != nil {
		t.Fatal(err)
	}
	rows, _ := f.snapshot(a)
	for i, d := range docs {
		r := rows["docs/"+strconv.Itoa(i)]
		if !crdt.Equal(r["text"], crdt.MustJSON(d)) {
			t.Errorf("JSON TEXT column: %s read back as %s", d, r["text"])
		}
		want := crdt.MustJSON(d)
		if d == `12345678901234567890` {
			want = crdt.MustJSON(`1.2345678901234567e+19`)
		}
		if !crdt.Equal(r["plain"], want) {
			t.Errorf("JSON column: %s read back as %s, want %s", d, r["plain"], want)
		}
	}
}

// TestCursors checks cursor validation and that Ack trims the log.
func TestCursors(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	for i := range 5 {
		f.execArgs(`INSERT INTO items VALUES(?, 'x')`, i)
	}
	if got := fl.sync(); len(got) != 5 {
		t.Fatalf("captured %d changes, want 5", len(got))
	}
	fl.stop()
	logRows := func() int {
		var n int
		if err := f.user.QueryRow(`SELECT count(*) FROM _lattice_log`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := logRows(); n != 6 {
		t.Fatalf("log holds %d rows before ack, want 6", n)
	}
	if err := a.Ack(f.ctx, fl.last); err != nil {
		t.Fatal(err)
	}
	// The newest row stays, so that sequence numbers never go back.
	if n := logRows(); n != 1 {
		t.Fatalf("log holds %d rows after ack, want 1", n)
	}
	acked := fl.last
	for _, tt := range []struct {
		name   string
		cursor []byte
	}{
		{"before the acked position", cur},
		{"malformed", []byte{1, 2, 3}},
		{"another log", append(make([]byte, 8), cur[8:]...)},
	} {
		err := f.captureErr(a, tt.cursor)
		if !errors.Is(err, sqlite.ErrCursor) || !errors.Is(err, adapters.ErrCursor) {
			t.Errorf("capture from a cursor %s: %v, want ErrCursor and adapters.ErrCursor", tt.name, err)
		}
	}
	if err := a.Ack(f.ctx, []byte("short")); !errors.Is(err, sqlite.ErrCursor) {
		t.Errorf("ack of a malformed cursor: %v, want ErrCursor", err)
	}
	// The acknowledged position survives a restart, and numbering goes on
	// after it.
	a.Close()
	b := f.open(f.config())
	if err := f.captureErr(b, cur); !errors.Is(err, sqlite.ErrCursor) {
		t.Errorf("after restart, capture from before the acked position: %v, want ErrCursor", err)
	}
	f.exec(`INSERT INTO items VALUES(100, 'after ack')`)
	fl2 := f.follow(b, acked)
	expectRows(t, fl2.sync(), `items/100 id=100 name="after ack"`)
}

// TestCaptureExact writes random values of every kind with plain SQL and
// checks that capture delivers exactly them: what the triggers copy into the
// log keeps SQLite's storage class and bytes (NUL inside text, empty blobs,
// infinities, int64 limits). The rows come from rapid's generators, drawn up
// front and checked in one pass, which is much faster than one capture round
// trip per case.
func TestCaptureExact(t *testing.T) {
	f := newFixture(t, `CREATE TABLE r(id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, y BLOB, b BOOLEAN)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	gen := rapid.Custom(func(rt *rapid.T) crdt.Row {
		row := crdt.Row{
			"i": crdt.Int(rapid.Int64().Draw(rt, "i")),
			"f": crdt.Float(rapid.OneOf(rapid.Float64(), rapid.SampledFrom([]float64{math.Inf(1), math.Inf(-1), math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN()})).Draw(rt, "f")),
			"s": crdt.String(rapid.OneOf(rapid.String(), rapid.StringOf(rapid.SampledFrom([]rune{0, 'a', '\'', ',', 'é', '\n'}))).Draw(rt, "s")),
			"y": crdt.Bytes(rapid.SliceOf(rapid.Byte()).Draw(rt, "y")),
			"b": crdt.Bool(rapid.Bool().Draw(rt, "b")),
		}
		for _, c := range []string{"i", "f", "s", "y", "b"} {
			if rapid.IntRange(0, 9).Draw(rt, c+" null") == 0 {
				row[c] = crdt.Null()
			}
		}
		return row
	})
	const n = 400
	want := map[int64]crdt.Row{}
	tx, err := f.user.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= n; id++ {
		row := gen.Example(int(id))
		row["id"] = crdt.Int(id)
		args := []any{id}
		for _, c := range []string{"i", "f", "s", "y", "b"} {
			args = append(args, userValue(row[c]))
		}
		if _, err := tx.Exec(`INSERT INTO r(id, i, f, s, y, b) VALUES(?, ?, ?, ?, ?, ?)`, args...); err != nil {
			t.Fatal(err)
		}
		if v := row["f"]; v.Kind() == crdt.KindFloat && math.IsNaN(v.AsFloat()) {
			row["f"] = crdt.Null() // SQLite stores a bound NaN as NULL
		}
		want[id] = row
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var nul, emptyBlob, inf bool
	for _, r := range want {
		nul = nul || strings.ContainsRune(r["s"].AsString(), 0)
		emptyBlob = emptyBlob || (r["y"].Kind() == crdt.KindBytes && len(r["y"].AsBytes()) == 0)
		inf = inf || math.IsInf(r["f"].AsFloat(), 0)
	}
	if !nul || !emptyBlob || !inf {
		t.Fatalf("generated rows miss edge cases: NUL in text %v, empty blob %v, infinity %v", nul, emptyBlob, inf)
	}
	got := fl.sync()
	if len(got) != n {
		t.Fatalf("captured %d rows, want %d", len(got), n)
	}
	for _, c := range got {
		id := c.Row["id"].AsInt()
		if !rowsEqual(c.Row, want[id]) {
			t.Errorf("row %d: captured %s\n want %s", id, rowString(c.Row), rowString(want[id]))
		}
	}
}

// TestNullKeyNotCaptured: SQLite allows NULL in a non-integer primary key of
// a rowid table; such a row cannot be keyed and is left out, the others are
// captured.
func TestNullKeyNotCaptured(t *testing.T) {
	f := newFixture(t, `CREATE TABLE loose(code TEXT PRIMARY KEY, v INTEGER)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)
	f.exec(`INSERT INTO loose VALUES(NULL, 1)`, `INSERT INTO loose VALUES('a', 2)`)
	expectRows(t, fl.sync(), `loose/a code="a" v=2`)
}

// TestApplyConstraint: a row that violates a constraint SQLite enforces
// (NOT NULL, CHECK) fails Apply with a RowError naming it.
func TestApplyConstraint(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER CHECK (qty >= 0))`)
	a := f.open(f.config())
	ok := adapters.Write{Collection: "items", Key: crdt.IntKey(1), Row: crdt.Row{"id": crdt.Int(1), "name": crdt.String("a"), "qty": crdt.Int(1)}}
	for _, bad := range []adapters.Write{
		{Collection: "items", Key: crdt.IntKey(2), Row: crdt.Row{"id": crdt.Int(2), "qty": crdt.Int(1)}},
		{Collection: "items", Key: crdt.IntKey(3), Row: crdt.Row{"id": crdt.Int(3), "name": crdt.String("b"), "qty": crdt.Int(-1)}},
		{Collection: "items", Key: crdt.IntKey(4), Row: crdt.Row{"id": crdt.Int(5), "name": crdt.String("c")}},
	} {
		_, err := a.Apply(f.ctx, []adapters.Write{ok, bad}, nil)
		re, isRow := adapters.RowErrorOf(err)
		if !isRow || re.Key != bad.Key {
			t.Errorf("apply of %s: %v, want a RowError for key %s", rowString(bad.Row), err, bad.Key)
		}
		t.Logf("%v", err)
	}
	var n int
	if err := f.user.QueryRow(`SELECT count(*) FROM items`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed applies wrote %d rows (%v)", n, err)
	}
}

// TestLogFormatUpgrade: rows logged by the triggers of format 1, which
// logged no old rows, into a format 2 log, which had no time column, still
// decode after an upgrade (without Old or Committed), the log gains the
// time column, the triggers are rebuilt to log old rows and the time, and
// the database is marked so that an older lattice refuses it; a database of
// a newer format is refused.
func TestLogFormatUpgrade(t *testing.T) {
	f := newFixture(t, `CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT)`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	a.Close()

	// Put back the format 2 change log, without the time column, and the
	// format 1 triggers of items, as a previous version of the adapter
	// installed them.
	f.exec(
		`CREATE TEMP TABLE old_log AS SELECT seq, tbl, layout, op, c0, c1 FROM _lattice_log`,
		`DROP TABLE _lattice_log`,
		`CREATE TABLE _lattice_log(seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, layout INTEGER NOT NULL, op INTEGER NOT NULL, c0, c1)`,
		`INSERT INTO _lattice_log SELECT * FROM old_log`,
		`DROP TABLE old_log`,
	)
	var layout int64
	if err := f.user.QueryRow(`SELECT max(id) FROM _lattice_layout WHERE tbl = 'items'`).Scan(&layout); err != nil {
		t.Fatal(err)
	}
	l := strconv.FormatInt(layout, 10)
	guard := ` WHEN NOT EXISTS (SELECT 1 FROM _lattice_apply) BEGIN `
	f.exec(
		`DROP TRIGGER _lattice_ins_items`, `DROP TRIGGER _lattice_upd_items`, `DROP TRIGGER _lattice_del_items`,
		`CREATE TRIGGER "_lattice_ins_items" AFTER INSERT ON "items"`+guard+
			`INSERT INTO _lattice_log(tbl,layout,op,c0,c1) VALUES('items',`+l+`,0,NEW."id",NEW."name"); END`,
		`CREATE TRIGGER "_lattice_upd_items" AFTER UPDATE ON "items"`+guard+
			`INSERT INTO _lattice_log(tbl,layout,op,c0) SELECT 'items',`+l+`,1,OLD."id" WHERE OLD."id" IS NOT NEW."id"; `+
			`INSERT INTO _lattice_log(tbl,layout,op,c0,c1) VALUES('items',`+l+`,0,NEW."id",NEW."name"); END`,
		`CREATE TRIGGER "_lattice_del_items" AFTER DELETE ON "items"`+guard+
			`INSERT INTO _lattice_log(tbl,layout,op,c0) VALUES('items',`+l+`,1,OLD."id"); END`,
		`UPDATE _lattice_meta SET v = 1 WHERE k = 'format'`,
	)
	f.exec(`INSERT INTO items VALUES(1, 'one')`, `INSERT INTO items VALUES(2, 'two')`)
	f.exec(`UPDATE items SET name = 'uno' WHERE id = 1`)
	f.exec(`UPDATE items SET id = 3 WHERE id = 2`)
	f.exec(`DELETE FROM items WHERE id = 1`)

	b := f.open(f.config())
	var format int64
	if err := f.user.QueryRow(`SELECT v FROM _lattice_meta WHERE k = 'format'`).Scan(&format); err != nil || format != 3 {
		t.Fatalf("format after the upgrade is %d (%v), want 3", format, err)
	}
	before := time.Now().Truncate(time.Millisecond)
	f.exec(`UPDATE items SET name = 'three' WHERE id = 3`)
	f.exec(`DELETE FROM items WHERE id = 3`)
	after := time.Now()
	fl := f.follow(b, cur)
	got := fl.sync()
	named := func(i int64, name string) crdt.Row { return crdt.Row{"id": crdt.Int(i), "name": crdt.String(name)} }
	want := []adapters.Change{
		// Format 1: no old rows, a delete carries the key only.
		{Key: crdt.IntKey(1), Row: named(1, "one")},
		{Key: crdt.IntKey(2), Row: named(2, "two")},
		{Key: crdt.IntKey(1), Row: named(1, "uno")},
		{Key: crdt.IntKey(2)},
		{Key: crdt.IntKey(3), Row: named(3, "two")},
		{Key: crdt.IntKey(1)},
		// Format 3: old rows and the time.
		{Key: crdt.IntKey(3), Row: named(3, "three"), Old: named(3, "two")},
		{Key: crdt.IntKey(3), Old: named(3, "three")},
	}
	if len(got) != len(want) {
		t.Fatalf("captured %d changes, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Key != w.Key || (g.Row == nil) != (w.Row == nil) || !rowsEqual(g.Row, w.Row) ||
			(g.Old == nil) != (w.Old == nil) || !rowsEqual(g.Old, w.Old) {
			t.Errorf("change %d: %s %s (old %s), want %s %s (old %s)", i, g.Key, rowString(g.Row), rowString(g.Old), w.Key, rowString(w.Row), rowString(w.Old))
		}
		// Rows logged before the upgrade have no time; later ones the time
		// their trigger ran.
		if upgraded := i >= 6; upgraded != !g.Committed.IsZero() ||
			upgraded && (g.Committed.Before(before) || g.Committed.After(after)) {
			t.Errorf("change %d: committed %v, want %v (between %v and %v)", i, g.Committed, upgraded, before, after)
		}
	}
	fl.stop()
	b.Close()

	f.exec(`UPDATE _lattice_meta SET v = 4 WHERE k = 'format'`)
	_, err := sqlite.Open(f.ctx, f.config())
	if err == nil || !strings.Contains(err.Error(), "newer lattice") {
		t.Fatalf("open of a database of format 4: %v, want an error naming a newer lattice", err)
	}
	t.Logf("error: %v; hint: %s", err, errors.FlattenHints(err))
}

// TestTooWideTable: a table whose update does not fit in the change log
// beside its old row is not synced, with the reason.
func TestTooWideTable(t *testing.T) {
	cols := make([]string, 1000)
	for i := range cols {
		cols[i] = "c" + strconv.Itoa(i) + " INTEGER"
	}
	cols[0] += " PRIMARY KEY"
	f := newFixture(t, `CREATE TABLE wide(`+strings.Join(cols, ", ")+`)`)
	cfg := f.config()
	cfg.Tables = []string{"wide"}
	_, err := sqlite.Open(f.ctx, cfg)
	if !errors.Is(err, sqlite.ErrNotInstallable) || !strings.Contains(err.Error(), "table wide: it has 1000 columns") {
		t.Fatalf("open with a table of 1000 columns: %v, want ErrNotInstallable naming it", err)
	}
}

// Apply leaves alone a record whose change capture has not taken (or the
// engine not acknowledged): it defers that write, writes the others, and
// writes it once the change is acknowledged. A user's delete of the row
// then deletes the row the user wrote, never one Apply brought back.
func TestApplyDefersUncapturedRecords(t *testing.T) {
	f := newFixture(t, `CREATE TABLE c(id INTEGER PRIMARY KEY, name TEXT)`)
	f.exec(`INSERT INTO c VALUES (1, 'one'), (2, 'two')`)
	a := f.open(f.config())
	_, cur := f.snapshot(a)
	fl := f.follow(a, cur)

	// The user re-inserts row 1 after a delete; capture has not taken it.
	f.exec(`DELETE FROM c WHERE id = 1`, `INSERT INTO c VALUES (1, 'mine')`)
	row := func(id int64, name string) adapters.Write {
		return adapters.Write{Collection: "c", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "name": crdt.String(name)}}
	}
	del1 := adapters.Write{Collection: "c", Key: crdt.IntKey(1)}
	res, err := a.Apply(f.ctx, []adapters.Write{row(2, "merged"), del1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Deferred, []int{1}) || len(res.Position) == 0 {
		t.Fatalf("apply = %+v, want write 1 deferred and a position", res)
	}
	names := func() string {
		var out []string
		rows, err := f.user.Query(`SELECT id || '=' || name FROM c ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	if got, want := names(), "1=mine 2=merged"; got != want {
		t.Fatalf("table holds %s, want %s", got, want)
	}

	// Captured but not acknowledged: still deferred.
	got := fl.sync()
	if len(got) != 2 {
		t.Fatalf("captured %d changes, want the delete and the insert", len(got))
	}
	if res, err = a.Apply(f.ctx, []adapters.Write{del1}, nil); err != nil || len(res.Deferred) != 1 {
		t.Fatalf("apply before the ack = %+v, %v; want it deferred", res, err)
	}
	// Acknowledged: written.
	if err := a.Ack(f.ctx, fl.last); err != nil {
		t.Fatal(err)
	}
	if res, err = a.Apply(f.ctx, []adapters.Write{del1}, nil); err != nil || len(res.Deferred) != 0 {
		t.Fatalf("apply after the ack = %+v, %v; want it written", res, err)
	}
	if got, want := names(), "2=merged"; got != want {
		t.Fatalf("table holds %s, want %s", got, want)
	}
	// Apply's own writes are not captured, so they defer nothing.
	if res, err = a.Apply(f.ctx, []adapters.Write{row(1, "again")}, nil); err != nil || len(res.Deferred) != 0 {
		t.Fatalf("apply after an apply = %+v, %v; want it written", res, err)
	}
}
