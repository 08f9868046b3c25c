package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

var _ adapters.RangeReader = (*Adapter)(nil)

// ReadRange reads up to limit rows of table after the key after, in key
// order, with the primary key's own order: integers numerically and text
// with SQLite's default BINARY collation (bytewise), which is the order of
// their crdt.Key encodings.
func (a *Adapter) ReadRange(ctx context.Context, table string, after crdt.Key, limit int) ([]adapters.Change, error) {
	if limit <= 0 {
		return nil, errors.Newf("sqlite: read range of %s: limit %d, want > 0", table, limit)
	}
	t, db, err := a.rangeTable(ctx, table)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(t.key))
	for i, k := range t.key {
		keys[i] = quoteIdent(k.Name)
	}
	q := t.selectAll()
	var args []any
	if after != "" {
		if args, err = t.keyArgs(after); err != nil {
			return nil, err
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(keys)), ",")
		q += ` WHERE (` + strings.Join(keys, ",") + `) > (` + marks + `)`
	}
	q += ` ORDER BY ` + strings.Join(keys, ",") + ` LIMIT ?`
	args = append(args, limit)
	return a.readRows(ctx, db, t, q, args, limit)
}

// ReadKeys reads the rows of table with the given keys.
func (a *Adapter) ReadKeys(ctx context.Context, table string, keys []crdt.Key) ([]adapters.Change, error) {
	t, db, err := a.rangeTable(ctx, table)
	if err != nil {
		return nil, err
	}
	where := make([]string, len(t.key))
	for i, k := range t.key {
		where[i] = quoteIdent(k.Name) + "=?"
	}
	q := t.selectAll() + ` WHERE ` + strings.Join(where, " AND ")
	var out []adapters.Change
	for _, k := range keys {
		args, err := t.keyArgs(k)
		if err != nil {
			return nil, err
		}
		rows, err := a.readRows(ctx, db, t, q, args, 1)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

func (a *Adapter) rangeTable(ctx context.Context, table string) (*table, *sql.DB, error) {
	cat, err := a.current(ctx)
	if err != nil {
		return nil, nil, err
	}
	t := cat.tables[table]
	if t == nil {
		return nil, nil, adapters.BadRow(table, "", errors.Newf("table %s is not synced", table))
	}
	db, err := a.database(ctx)
	if err != nil {
		return nil, nil, err
	}
	return t, db, nil
}

// selectAll selects every synced column of t as SQLite holds it (see
// Snapshot for the unary plus).
func (t *table) selectAll() string {
	sel := make([]string, len(t.cols))
	for i, c := range t.cols {
		sel[i] = "+" + quoteIdent(c.Name)
	}
	return `SELECT ` + strings.Join(sel, ",") + ` FROM ` + quoteIdent(t.table)
}

// keyArgs binds the values of key k for t's key columns.
func (t *table) keyArgs(k crdt.Key) ([]any, error) {
	vals, err := k.Values()
	if err != nil {
		return nil, err
	}
	if len(vals) != len(t.key) {
		return nil, adapters.BadRow(t.table, k, errors.Newf("key of %d values for %d key columns", len(vals), len(t.key)))
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		if args[i], err = toNative(v, t.key[i]); err != nil {
			return nil, adapters.BadRow(t.table, k, err)
		}
	}
	return args, nil
}

func (a *Adapter) readRows(ctx context.Context, db *sql.DB, t *table, q string, args []any, limit int) ([]adapters.Change, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, errors.Wrapf(err, "read table %s", t.table)
	}
	defer rows.Close()
	out := make([]adapters.Change, 0, min(limit, 1024))
	vals := make([]any, len(t.cols))
	ptrs := make([]any, len(t.cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, errors.Wrapf(err, "read table %s", t.table)
		}
		c, ok, err := a.decode(t.layout, opUpsert, vals)
		if err != nil {
			return nil, errors.Wrapf(err, "read table %s", t.table)
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, errors.Wrapf(rows.Err(), "read table %s", t.table)
}
