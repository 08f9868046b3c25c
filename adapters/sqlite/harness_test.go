package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/adaptertest"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConformance runs the adapter conformance suite on SQLite files.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, harness{})
}

// TestConformanceMapped runs the conformance suite through a mapping: the
// files hold tables and columns under other names, and one column's values
// under other texts (adaptertest.Mapped).
func TestConformanceMapped(t *testing.T) {
	adaptertest.Run(t, adaptertest.Mapped(harness{}))
}

// harness implements adaptertest.Harness with one database file per system
// and a separate *sql.DB (its own connections, no lattice code) for the
// users' writes and reads.
type harness struct{}

func (harness) Features() adaptertest.Features {
	// SQLite turns a bound NaN into NULL, so users cannot store NaN; times
	// are text and keep nanoseconds. The triggers log old rows; a cursor
	// names its change log, and Ack deletes what it covers.
	return adaptertest.Features{Lists: true, NaN: false, TimePrecision: 0,
		OldRows: true, RejectsForeignCursor: true, RejectsDiscardedCursor: true, NaturalKeys: true, GeneratedKeys: true}
}

// declType is how a careful application declares each kind in SQLite. JSON
// is declared "JSON TEXT": a plain JSON column has NUMERIC affinity, and
// SQLite would itself turn a document that is a bare large number into a
// REAL (see TestPlainJSONColumn).
func declType(c adaptertest.ColumnSpec) string {
	switch c.Kind {
	case crdt.KindInt:
		return "INTEGER"
	case crdt.KindFloat:
		return "REAL"
	case crdt.KindString:
		return "TEXT"
	case crdt.KindBool:
		return "BOOLEAN"
	case crdt.KindBytes:
		return "BLOB"
	case crdt.KindTime:
		return "TIMESTAMP"
	case crdt.KindJSON:
		return "JSON TEXT"
	case crdt.KindList:
		return declType(adaptertest.ColumnSpec{Kind: c.Elem}) + "[]"
	}
	return "UNSUPPORTED"
}

func (harness) NewSystem(t *testing.T, tables []adaptertest.TableSpec) adaptertest.System {
	t.Helper()
	s := newUserDB(t, filepath.Join(t.TempDir(), "system.db"))
	for _, spec := range tables {
		s.specs[spec.Name] = spec
		for _, q := range createSQL(spec) {
			if _, err := s.db.Exec(q); err != nil {
				t.Fatalf("create table %s: %s: %v", spec.Name, q, err)
			}
		}
	}
	s.keys, s.local = adaptertest.Mapping(tables)
	return s
}

// createSQL returns the statements that create the table of spec. A
// table with a natural key has a unique index over it and an INTEGER
// PRIMARY KEY (the rowid, which SQLite assigns); the key columns of others
// are NOT NULL, as SQLite does not make them so itself.
func createSQL(spec adaptertest.TableSpec) []string {
	var cols []string
	for _, c := range spec.Columns {
		def := quote(c.Name) + " " + declType(c)
		if c.Generated {
			// The rowid under the column's name.
			cols = append(cols, def+" PRIMARY KEY")
			continue
		}
		if c.NotNull || spec.IsKey(c.Name) && len(spec.Natural) == 0 {
			def += " NOT NULL"
		}
		cols = append(cols, def)
	}
	if len(spec.Key) == 1 && spec.Column(spec.Key[0]).Generated {
		return []string{"CREATE TABLE " + quote(spec.Name) + " (" + strings.Join(cols, ", ") + ")"}
	}
	keys := make([]string, len(spec.Key))
	for i, k := range spec.Key {
		keys[i] = quote(k)
	}
	out := []string{"CREATE TABLE " + quote(spec.Name) + " (" + strings.Join(cols, ", ") + ", PRIMARY KEY (" + strings.Join(keys, ", ") + "))"}
	if len(spec.Natural) > 0 && !spec.Unindexed {
		natural := make([]string, len(spec.Natural))
		for i, k := range spec.Natural {
			natural[i] = quote(k)
		}
		out = append(out, "CREATE UNIQUE INDEX "+quote(spec.Name+"_natural")+" ON "+quote(spec.Name)+" ("+strings.Join(natural, ", ")+")")
	}
	return out
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// userDB is an application's view of a database file.
type userDB struct {
	t     *testing.T
	path  string
	db    *sql.DB
	specs map[string]adaptertest.TableSpec
	// keys and local are the natural keys and local columns of the specs
	// (adaptertest.Mapping), which the adapters open with.
	keys  map[string][]string
	local map[string]map[string]crdt.Value
}

func newUserDB(t *testing.T, path string) *userDB {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &userDB{t: t, path: path, db: db, specs: map[string]adaptertest.TableSpec{}}
}

func (s *userDB) Open(ctx context.Context) (adapters.Adapter, error) {
	cfg := testConfig(s.t, s.path)
	cfg.Keys, cfg.Local = s.keys, s.local
	return sqlite.Open(ctx, cfg)
}

func testConfig(t *testing.T, path string) sqlite.Config {
	cfg := sqlite.DefaultConfig()
	cfg.Path = path
	cfg.PollInterval = 2 * time.Millisecond
	cfg.BatchSize = 500
	cfg.Logger = testLogger(t)
	return cfg
}

// testLogger routes logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Exec writes as an application using database/sql would: Go values bound
// as parameters (a time.Time as the driver formats it, a list as JSON text).
func (s *userDB) Exec(ctx context.Context, ops ...adaptertest.Op) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	for _, op := range ops {
		spec, ok := s.specs[op.Table]
		if !ok {
			return errors.Newf("unknown table %s", op.Table)
		}
		var q string
		var args []any
		var where []string
		var whereArgs []any
		for _, k := range spec.RecordKey() {
			where = append(where, quote(k)+" = ?")
			whereArgs = append(whereArgs, userValue(op.Row[k]))
		}
		names := slices.Sorted(maps.Keys(op.Row))
		switch op.Kind {
		case adaptertest.Insert:
			marks := make([]string, len(names))
			cols := make([]string, len(names))
			for i, n := range names {
				cols[i], marks[i] = quote(n), "?"
				args = append(args, userValue(op.Row[n]))
			}
			q = "INSERT INTO " + quote(op.Table) + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
		case adaptertest.Update:
			var sets []string
			for _, n := range names {
				if !spec.IsRecordKey(n) {
					sets = append(sets, quote(n)+" = ?")
					args = append(args, userValue(op.Row[n]))
				}
			}
			for _, n := range slices.Sorted(maps.Keys(op.NewKey)) {
				sets = append(sets, quote(n)+" = ?")
				args = append(args, userValue(op.NewKey[n]))
			}
			q = "UPDATE " + quote(op.Table) + " SET " + strings.Join(sets, ", ") + " WHERE " + strings.Join(where, " AND ")
			args = append(args, whereArgs...)
		case adaptertest.Delete:
			q = "DELETE FROM " + quote(op.Table) + " WHERE " + strings.Join(where, " AND ")
			args = whereArgs
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return errors.Wrapf(err, "%s", q)
		}
	}
	return tx.Commit()
}

// userValue is the Go value an application binds for v.
func userValue(v crdt.Value) any {
	switch v.Kind() {
	case crdt.KindNull:
		return nil
	case crdt.KindBool:
		return v.AsBool()
	case crdt.KindInt:
		return v.AsInt()
	case crdt.KindFloat:
		return v.AsFloat()
	case crdt.KindString, crdt.KindJSON:
		return v.AsString()
	case crdt.KindBytes:
		return v.AsBytes()
	case crdt.KindTime:
		return v.AsTime()
	case crdt.KindList:
		elems := make([]any, len(v.AsList()))
		for i, e := range v.AsList() {
			elems[i] = userValue(e)
		}
		b, err := json.Marshal(elems)
		if err != nil {
			panic(err)
		}
		return string(b)
	}
	panic("unknown kind " + v.Kind().String())
}

// Rows reads a table with the driver's own conversions, independently of
// the adapter's.
func (s *userDB) Rows(ctx context.Context, table string) ([]crdt.Row, error) {
	spec, ok := s.specs[table]
	if !ok {
		return nil, errors.Newf("unknown table %s", table)
	}
	cols := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		cols[i] = quote(c.Name)
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+quote(table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []crdt.Row
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := crdt.Row{}
		for i, c := range spec.Columns {
			v, err := readValue(vals[i], c)
			if err != nil {
				return nil, errors.Wrapf(err, "table %s column %s", table, c.Name)
			}
			row[c.Name] = v
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func readValue(x any, c adaptertest.ColumnSpec) (crdt.Value, error) {
	if x == nil {
		return crdt.Null(), nil
	}
	switch c.Kind {
	case crdt.KindInt:
		if i, ok := x.(int64); ok {
			return crdt.Int(i), nil
		}
	case crdt.KindFloat:
		switch x := x.(type) {
		case float64:
			return crdt.Float(x), nil
		case int64:
			return crdt.Float(float64(x)), nil
		case string:
			if x == "NaN" {
				return crdt.Float(math.NaN()), nil
			}
		}
	case crdt.KindString:
		if s, ok := x.(string); ok {
			return crdt.String(s), nil
		}
	case crdt.KindBool:
		if i, ok := x.(int64); ok && (i == 0 || i == 1) {
			return crdt.Bool(i == 1), nil
		}
	case crdt.KindBytes:
		if b, ok := x.([]byte); ok {
			return crdt.Bytes(b), nil
		}
	case crdt.KindTime:
		switch x := x.(type) {
		case time.Time:
			return crdt.Time(x), nil
		case string:
			if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return crdt.Time(tm), nil
			}
		}
	case crdt.KindJSON:
		if s, ok := x.(string); ok {
			return crdt.JSON([]byte(s))
		}
	case crdt.KindList:
		if s, ok := x.(string); ok {
			return crdt.FromJSON([]byte(s), crdt.KindList, c.Elem)
		}
	}
	return crdt.Value{}, errors.Newf("unexpected %T %v for a %s column", x, x, c.Kind)
}
