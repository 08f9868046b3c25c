package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// column is one synced column as the adapter maps it. Its JSON form is what
// _lattice_layout stores.
type column struct {
	Name string    `json:"name"`
	Type string    `json:"type"`
	Kind crdt.Kind `json:"kind"`
	Elem crdt.Kind `json:"elem,omitempty"`
	// Key is the column's 1-based position in the primary key, 0 if none.
	Key     int  `json:"key,omitempty"`
	NotNull bool `json:"notnull,omitempty"`

	date    bool // declared DATE: midnight is stored as YYYY-MM-DD
	decimal bool // declared NUMERIC or DECIMAL: exact decimal text
	// generated: SQLite fills the column when an insert leaves it out (see
	// generatedColumns). Not part of the layout: log rows do not depend on it.
	generated bool
}

// layout is the column list a table's triggers write log rows in. A new
// layout is recorded whenever the table's columns change, and log rows name
// the layout they were written in, so rows written before a schema change
// still decode after it.
type layout struct {
	id    int64
	table string
	cols  []*column
	// key lists the columns that name the table's records, in key order:
	// the primary key, or the natural key the config gives (see mapLayout).
	key []*column
	// pk lists the primary-key columns in key order.
	pk []*column
	// natural says key is a natural key: the primary key is local.
	natural bool
	// local holds the names of the columns the sync leaves out.
	local map[string]bool
}

func newLayout(id int64, table string, cols []*column) *layout {
	l := &layout{id: id, table: table, cols: cols}
	for _, c := range cols {
		c.date = strings.EqualFold(strings.TrimSpace(c.Type), "DATE")
		c.decimal = isDecimalType(c.Type)
		if c.Key > 0 {
			l.pk = append(l.pk, c)
		}
	}
	slices.SortFunc(l.pk, func(a, b *column) int { return a.Key - b.Key })
	l.key = l.pk
	return l
}

// encodeColumns is the stored form of a layout's columns.
func encodeColumns(cols []*column) string {
	b, err := json.Marshal(cols)
	if err != nil {
		// Only strings and small integers: cannot fail.
		panic(errors.AssertionFailedf("encode layout: %v", err))
	}
	return string(b)
}

func decodeLayout(id int64, table, columns string) (*layout, error) {
	var cols []*column
	if err := json.Unmarshal([]byte(columns), &cols); err != nil {
		return nil, errors.Wrapf(err, "decode layout %d of table %s", id, table)
	}
	if len(cols) == 0 {
		return nil, errors.Newf("layout %d of table %s has no columns", id, table)
	}
	l := newLayout(id, table, cols)
	if len(l.key) == 0 {
		return nil, errors.Newf("layout %d of table %s has no key columns", id, table)
	}
	return l, nil
}

// table is a synced table: its current layout, its description for the
// engine and the statements Apply uses.
type table struct {
	*layout
	info   adapters.Table
	upsert string // INSERT ... ON CONFLICT (key) DO UPDATE
	delete string // DELETE ... WHERE key
	// byName holds the synced columns: those a write may name.
	byName map[string]*column
	// synced lists the synced columns in table order: the first arguments
	// of upsert.
	synced []*column
	// fills holds the values of the local columns an insert sets (see
	// Config.Local): the last arguments of upsert, which an update leaves
	// alone.
	fills []any
	// fillNames are the quoted names of the columns of fills.
	fillNames []string
}

// newTable makes the table of a mapped layout (see mapLayout); fills are
// the local columns an insert sets, with their values.
func newTable(l *layout, fills []fill) *table {
	t := &table{layout: l, byName: map[string]*column{}}
	t.info.Name = l.table
	isKey := map[*column]bool{}
	for _, k := range l.key {
		t.info.Key = append(t.info.Key, k.Name)
		isKey[k] = true
	}
	var names, marks, sets []string
	for _, c := range l.cols {
		if l.local[c.Name] {
			continue
		}
		t.byName[c.Name] = c
		t.synced = append(t.synced, c)
		t.info.Columns = append(t.info.Columns, adapters.Column{
			Name: c.Name, Kind: c.Kind, Elem: c.Elem, Type: c.Type,
			Nullable: !c.NotNull && !isKey[c], Generated: c.generated,
		})
		name := quoteIdent(c.Name)
		names = append(names, name)
		marks = append(marks, "?")
		if !isKey[c] {
			sets = append(sets, name+"=excluded."+name)
		}
	}
	for _, f := range fills {
		names = append(names, quoteIdent(f.col.Name))
		marks = append(marks, "?")
		t.fills = append(t.fills, f.arg)
		t.fillNames = append(t.fillNames, quoteIdent(f.col.Name))
	}
	keyNames := make([]string, len(l.key))
	where := make([]string, len(l.key))
	for i, k := range l.key {
		keyNames[i] = quoteIdent(k.Name)
		where[i] = quoteIdent(k.Name) + "=?"
	}
	action := "DO NOTHING"
	if len(sets) > 0 {
		action = "DO UPDATE SET " + strings.Join(sets, ",")
	}
	t.upsert = "INSERT INTO " + quoteIdent(l.table) + "(" + strings.Join(names, ",") + ") VALUES(" +
		strings.Join(marks, ",") + ") ON CONFLICT(" + strings.Join(keyNames, ",") + ") " + action
	t.delete = "DELETE FROM " + quoteIdent(l.table) + " WHERE " + strings.Join(where, " AND ")
	return t
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteString quotes an SQL string literal.
func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// querier is what discovery and installation read and write through: a
// transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// found is a table as discovery found it: its columns, or why it cannot be
// synced.
type found struct {
	name     string
	cols     []*column
	problems []string
}

// isInternal reports whether a table belongs to SQLite or to the adapter.
func isInternal(name string) bool {
	l := strings.ToLower(name)
	return strings.HasPrefix(l, "sqlite_") || strings.HasPrefix(l, "_lattice_")
}

// discover lists the ordinary tables of the main database with their
// columns, and what keeps each from being synced.
func discover(ctx context.Context, q querier) ([]*found, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_list WHERE schema='main' AND type='table' ORDER BY name`)
	if err != nil {
		return nil, errors.Wrap(err, "list tables")
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, errors.Wrap(err, "list tables")
		}
		if !isInternal(n) {
			names = append(names, n)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, errors.Wrap(err, "list tables")
	}
	out := make([]*found, 0, len(names))
	for _, n := range names {
		f, err := discoverTable(ctx, q, n)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func discoverTable(ctx context.Context, q querier, name string) (*found, error) {
	f := &found{name: name}
	if err := crdt.ValidateName(name); err != nil {
		f.problems = append(f.problems, fmt.Sprintf("its name cannot be a collection name: %v", err))
	}
	rows, err := q.QueryContext(ctx, `SELECT name, type, "notnull", pk, hidden, dflt_value IS NOT NULL FROM pragma_table_xinfo(?) ORDER BY cid`, name)
	if err != nil {
		return nil, errors.Wrapf(err, "read columns of table %s", name)
	}
	defer rows.Close()
	for rows.Next() {
		var cname, ctype string
		var notNull, pk, hidden int
		var hasDefault bool
		if err := rows.Scan(&cname, &ctype, &notNull, &pk, &hidden, &hasDefault); err != nil {
			return nil, errors.Wrapf(err, "read columns of table %s", name)
		}
		if hidden != 0 {
			// Generated columns are derived from the others; each system
			// derives its own.
			continue
		}
		if err := crdt.ValidateName(cname); err != nil {
			f.problems = append(f.problems, fmt.Sprintf("column %q cannot be a field name: %v", cname, err))
			continue
		}
		kind, elem, ok := kindOf(ctype)
		if !ok {
			f.problems = append(f.problems, fmt.Sprintf("column %s has unsupported type %q", cname, ctype))
			continue
		}
		if pk > 0 && (kind == crdt.KindJSON || kind == crdt.KindList) {
			f.problems = append(f.problems, fmt.Sprintf("key column %s has type %q, which cannot be part of a key", cname, ctype))
			continue
		}
		f.cols = append(f.cols, &column{Name: cname, Type: ctype, Kind: kind, Elem: elem, Key: pk, NotNull: notNull != 0, generated: hasDefault})
	}
	if err := rows.Err(); err != nil {
		return nil, errors.Wrapf(err, "read columns of table %s", name)
	}
	rows.Close()
	if err := markRowidAlias(ctx, q, name, f.cols); err != nil {
		return nil, err
	}
	if len(f.cols) > maxTableColumns {
		f.problems = append(f.problems, fmt.Sprintf("it has %d columns; the change log holds rows of at most %d", len(f.cols), maxTableColumns))
	}
	if !slices.ContainsFunc(f.cols, func(c *column) bool { return c.Key > 0 }) && len(f.problems) == 0 {
		f.problems = append(f.problems, "it has no primary key")
	}
	return f, nil
}
