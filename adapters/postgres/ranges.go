package postgres

import (
	"context"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

var _ adapters.RangeReader = (*Adapter)(nil)

// ReadRange reads up to limit rows of a table after the key after, in the
// order of their crdt.Key encodings: text keys compare with the "C"
// collation (bytewise, whatever the database's collation), numeric keys
// (captured as text) by their text, the others (integers, times, UUIDs,
// bytea) by their own order, which is their encodings' order.
func (a *Adapter) ReadRange(ctx context.Context, table string, after crdt.Key, limit int) ([]adapters.Change, error) {
	if limit <= 0 {
		return nil, errors.Newf("postgres: read range of %s: limit %d, want > 0", table, limit)
	}
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := a.rangeTable(table)
	if err != nil {
		return nil, err
	}
	exprs := make([]string, len(t.Key))
	for i, k := range t.Key {
		exprs[i] = keyExpr(t.column(k), pgx.Identifier{k}.Sanitize())
	}
	q := selectAll(t)
	var args []any
	if after != "" {
		if args, err = keyArgs(t, after); err != nil {
			return nil, err
		}
		marks := make([]string, len(t.Key))
		for i, k := range t.Key {
			c := t.column(k)
			marks[i] = keyExpr(c, "$"+strconv.Itoa(i+1)+"::"+c.CastType)
		}
		q += ` WHERE (` + strings.Join(exprs, ", ") + `) > (` + strings.Join(marks, ", ") + `)`
	}
	q += ` ORDER BY ` + strings.Join(exprs, ", ") + ` LIMIT ` + strconv.Itoa(limit)
	return a.readRows(ctx, t, q, args, limit)
}

// ReadKeys reads the rows of a table with the given keys.
func (a *Adapter) ReadKeys(ctx context.Context, table string, keys []crdt.Key) ([]adapters.Change, error) {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := a.rangeTable(table)
	if err != nil {
		return nil, err
	}
	where := make([]string, len(t.Key))
	for i, k := range t.Key {
		where[i] = pgx.Identifier{k}.Sanitize() + " = $" + strconv.Itoa(i+1) + "::" + t.column(k).CastType
	}
	q := selectAll(t) + ` WHERE ` + strings.Join(where, " AND ")
	var out []adapters.Change
	for _, k := range keys {
		args, err := keyArgs(t, k)
		if err != nil {
			return nil, err
		}
		rows, err := a.readRows(ctx, t, q, args, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (a *Adapter) rangeTable(table string) (*table, error) {
	cat := a.catalog()
	if cat == nil || cat.byColl[table] == nil {
		return nil, adapters.BadRow(table, "", errors.Newf("table %s is not synced", table))
	}
	return cat.byColl[table], nil
}

// keyExpr is the expression a key column (or a parameter of its type)
// sorts by in crdt.Key order.
func keyExpr(c *column, expr string) string {
	if c == nil || c.Type.Array {
		return expr
	}
	switch c.Type.Scalar {
	case scalarText:
		return expr + ` COLLATE "C"`
	case scalarNumeric:
		return `(` + expr + `)::text COLLATE "C"`
	}
	return expr
}

func selectAll(t *table) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return `SELECT ` + strings.Join(names, ", ") + ` FROM ` + t.qualified()
}

// keyArgs encodes the values of key k as text parameters of t's key
// columns.
func keyArgs(t *table, k crdt.Key) ([]any, error) {
	vals, err := k.Values()
	if err != nil {
		return nil, err
	}
	if len(vals) != len(t.Key) {
		return nil, adapters.BadRow(t.Collection, k, errors.Newf("key has %d elements, table has %d key columns", len(vals), len(t.Key)))
	}
	args := make([]any, len(vals))
	for i, name := range t.Key {
		s, _, err := encodeText(t.column(name).Type, vals[i])
		if err != nil {
			return nil, adapters.BadRow(t.Collection, k, errors.Wrapf(err, "column %s", name))
		}
		args[i] = s
	}
	return args, nil
}

// readRows runs a query of selectAll's columns on the catalog connection,
// in text format, and decodes its rows as Snapshot does.
func (a *Adapter) readRows(ctx context.Context, t *table, q string, args []any, limit int) ([]adapters.Change, error) {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	params := make([][]byte, len(args))
	for i, v := range args {
		params[i] = []byte(v.(string))
	}
	rr := conn.PgConn().ExecParams(ctx, q, params, nil, nil, nil)
	out := make([]adapters.Change, 0, min(limit, 1024))
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(t.Columns) {
			_, _ = rr.Close()
			return nil, errors.AssertionFailedf("read %s: %d values for %d columns", t.Collection, len(vals), len(t.Columns))
		}
		row := make(crdt.Row, len(vals))
		for i, v := range vals {
			if v == nil {
				row[t.Columns[i].Name] = crdt.Null()
				continue
			}
			val, err := decodeText(t.Columns[i].Type, string(v))
			if err != nil {
				_, _ = rr.Close()
				return nil, adapters.BadRow(t.Collection, "", errors.Wrapf(err, "column %s", t.Columns[i].Name))
			}
			row[t.Columns[i].Name] = val
		}
		key, err := keyOf(t.Collection, t.Key, row)
		if err != nil {
			_, _ = rr.Close()
			return nil, err
		}
		out = append(out, adapters.Change{Collection: t.Collection, Key: key, Row: row})
	}
	if _, err := rr.Close(); err != nil {
		return nil, errors.Wrapf(classify(err), "read table %s", t.qualified())
	}
	return out, nil
}
