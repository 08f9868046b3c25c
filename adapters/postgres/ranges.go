package postgres

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

var (
	_ adapters.RangeReader = (*Adapter)(nil)
	_ adapters.RangeHasher = (*Adapter)(nil)
)

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
	r, err := keyRange(t, "", after, "")
	if err != nil {
		return nil, err
	}
	q := selectAll(t) + r.where + ` ORDER BY ` + r.order + ` LIMIT ` + strconv.Itoa(limit)
	return a.readRows(ctx, t, q, r.args, limit, 0, nil)
}

// A range's hash is computed by the server: each row's hash is
// hashtextextended, with seeds 0 and 1 (two 64-bit halves), of the text of
// the row of the synced columns, ROW(...)::text, in the "C" collation; the
// range's hash is the XOR of its rows' hashes (bit_xor). The row's text is
// its columns' output forms, which the session fixes (DateStyle, TimeZone,
// extra_float_digits, bytea_output; see values.go), and it tells a null
// from an empty string. hashtextextended is the hash PostgreSQL partitions
// by: fast (making the row's text costs more), stable, not cryptographic;
// it guards against accidents, not against a writer who crafts
// collisions. ReadHashedRange returns the same per-row hashes beside the
// rows, so that the hash and the rows come from one statement (one
// snapshot). See "Verification reads" in doc.go for what it costs.

// HashRange hashes up to limit rows of a table after the key after and at
// or before through ("" no bound), in ReadRange's order, in one query that
// returns only the hash, the row count and the last key.
func (a *Adapter) HashRange(ctx context.Context, table string, after, through crdt.Key, limit int) (adapters.RangeHash, error) {
	if limit <= 0 {
		return adapters.RangeHash{}, errors.Newf("postgres: hash range of %s: limit %d, want > 0", table, limit)
	}
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return adapters.RangeHash{}, err
	}
	defer done()
	t, err := a.rangeTable(table)
	if err != nil {
		return adapters.RangeHash{}, err
	}
	r, err := keyRange(t, "x", after, through)
	if err != nil {
		return adapters.RangeHash{}, err
	}
	// The rows' text is made once, in a subquery that LIMIT keeps from
	// being flattened into the hashes' arguments. The last key comes from a
	// second scan of the same range's keys (an index-only scan, within the
	// statement's snapshot), which costs less than numbering the rows.
	keys := make([]string, len(t.Key))
	desc := make([]string, len(t.Key))
	lastCols := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = `x.` + pgx.Identifier{k}.Sanitize() + ` AS k` + strconv.Itoa(i)
		desc[i] = keyExpr(t.column(k), `s.k`+strconv.Itoa(i)) + ` DESC`
		lastCols[i] = `l.k` + strconv.Itoa(i)
	}
	lim := ` LIMIT ` + strconv.Itoa(limit)
	q := `SELECT a.n, a.h0, a.h1, ` + strings.Join(lastCols, ", ") +
		` FROM (SELECT count(*) AS n, bit_xor(hashtextextended(s.t, 0)) AS h0, bit_xor(hashtextextended(s.t, 1)) AS h1` +
		` FROM (SELECT ` + rowText(t, "x") + ` AS t FROM ` + t.qualified() + ` x` + r.where + ` ORDER BY ` + r.order + lim + `) s) a` +
		` LEFT JOIN (SELECT s.* FROM (SELECT ` + strings.Join(keys, ", ") + ` FROM ` + t.qualified() + ` x` + r.where +
		` ORDER BY ` + r.order + lim + `) s ORDER BY ` + strings.Join(desc, ", ") + ` LIMIT 1) l ON true`
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return adapters.RangeHash{}, err
	}
	res := conn.PgConn().ExecParams(ctx, q, textParams(r.args), nil, nil, nil).Read()
	if res.Err != nil {
		return adapters.RangeHash{}, errors.Wrapf(classify(res.Err), "hash range of table %s", t.qualified())
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 3+len(t.Key) {
		return adapters.RangeHash{}, errors.AssertionFailedf("hash range of %s: %d rows", t.Collection, len(res.Rows))
	}
	vals := res.Rows[0]
	n, err := strconv.Atoi(string(vals[0]))
	if err != nil {
		return adapters.RangeHash{}, errors.Wrapf(err, "hash range of %s: count", t.Collection)
	}
	if n == 0 {
		return adapters.RangeHash{}, nil
	}
	var h rowHashes
	if err := h.add(vals[1:3]); err != nil {
		return adapters.RangeHash{}, errors.Wrapf(err, "hash range of %s", t.Collection)
	}
	row := make(crdt.Row, len(t.Key))
	for i, k := range t.Key {
		if vals[3+i] == nil {
			return adapters.RangeHash{}, errors.AssertionFailedf("hash range of %s: null key column %s", t.Collection, k)
		}
		v, err := decodeText(t.column(k).Type, string(vals[3+i]))
		if err != nil {
			return adapters.RangeHash{}, adapters.BadRow(t.Collection, "", errors.Wrapf(err, "column %s", k))
		}
		row[k] = v
	}
	last, err := keyOf(t.Collection, t.Key, row)
	if err != nil {
		return adapters.RangeHash{}, err
	}
	return adapters.RangeHash{Sum: h.sum(), Rows: n, Last: last}, nil
}

// ReadHashedRange reads the rows HashRange hashes, with each row's hash
// computed by the server in the same statement, and returns their
// RangeHash.
func (a *Adapter) ReadHashedRange(ctx context.Context, table string, after, through crdt.Key, limit int) ([]adapters.Change, adapters.RangeHash, error) {
	if limit <= 0 {
		return nil, adapters.RangeHash{}, errors.Newf("postgres: read range of %s: limit %d, want > 0", table, limit)
	}
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, adapters.RangeHash{}, err
	}
	defer done()
	t, err := a.rangeTable(table)
	if err != nil {
		return nil, adapters.RangeHash{}, err
	}
	r, err := keyRange(t, "x", after, through)
	if err != nil {
		return nil, adapters.RangeHash{}, err
	}
	// The row's text is made once, in a subquery (LIMIT keeps it from being
	// flattened into both hashes' arguments), whose order the outer ORDER BY
	// keeps without sorting again.
	inner := make([]string, len(t.Columns))
	outer := make([]string, len(t.Columns))
	alias := map[string]string{}
	for i, c := range t.Columns {
		alias[c.Name] = `s.c` + strconv.Itoa(i)
		inner[i] = `x.` + pgx.Identifier{c.Name}.Sanitize() + ` AS c` + strconv.Itoa(i)
		outer[i] = alias[c.Name]
	}
	order := make([]string, len(t.Key))
	for i, k := range t.Key {
		order[i] = keyExpr(t.column(k), alias[k])
	}
	q := `SELECT ` + strings.Join(outer, ", ") + `, hashtextextended(s.t, 0), hashtextextended(s.t, 1) FROM (SELECT ` +
		strings.Join(inner, ", ") + `, ` + rowText(t, "x") + ` AS t FROM ` + t.qualified() + ` x` + r.where +
		` ORDER BY ` + r.order + ` LIMIT ` + strconv.Itoa(limit) + `) s ORDER BY ` + strings.Join(order, ", ")
	var h rowHashes
	rows, err := a.readRows(ctx, t, q, r.args, limit, 2, h.add)
	if err != nil {
		return nil, adapters.RangeHash{}, err
	}
	if len(rows) == 0 {
		return rows, adapters.RangeHash{}, nil
	}
	return rows, adapters.RangeHash{Sum: h.sum(), Rows: len(rows), Last: rows[len(rows)-1].Key}, nil
}

// rowHashes accumulates the XOR of rows' hashes, two int8 halves each.
type rowHashes struct{ h [2]uint64 }

// add adds one row's hash from its two halves' text.
func (r *rowHashes) add(halves [][]byte) error {
	for i, b := range halves {
		v, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return errors.Wrap(err, "row hash")
		}
		r.h[i] ^= uint64(v)
	}
	return nil
}

func (r *rowHashes) sum() [16]byte {
	var s [16]byte
	binary.BigEndian.PutUint64(s[:8], r.h[0])
	binary.BigEndian.PutUint64(s[8:], r.h[1])
	return s
}

// rowText is the text of the row of t's synced columns of the table
// aliased alias, in the "C" collation, which the row hashes hash.
func rowText(t *table, alias string) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = alias + `.` + pgx.Identifier{c.Name}.Sanitize()
	}
	return `ROW(` + strings.Join(names, ", ") + `)::text COLLATE "C"`
}

// keyClauses is a key range of a table as SQL: a WHERE clause (empty when
// the range is the whole table), the ORDER BY list of crdt.Key order, and
// the text parameters the clause refers to.
type keyClauses struct {
	where, order string
	args         []any
}

// keyRange returns the clauses of the keys after after and at or before
// through ("" for no bound), with the key columns qualified by alias ("" for
// none).
func keyRange(t *table, alias string, after, through crdt.Key) (keyClauses, error) {
	var r keyClauses
	exprs := make([]string, len(t.Key))
	for i, k := range t.Key {
		name := pgx.Identifier{k}.Sanitize()
		if alias != "" {
			name = alias + "." + name
		}
		exprs[i] = keyExpr(t.column(k), name)
	}
	tuple := `(` + strings.Join(exprs, ", ") + `)`
	var conds []string
	for _, b := range []struct {
		key crdt.Key
		op  string
	}{{after, " > "}, {through, " <= "}} {
		if b.key == "" {
			continue
		}
		args, err := keyArgs(t, b.key)
		if err != nil {
			return r, err
		}
		marks := make([]string, len(t.Key))
		for i, k := range t.Key {
			c := t.column(k)
			marks[i] = keyExpr(c, "$"+strconv.Itoa(len(r.args)+i+1)+"::"+c.CastType)
		}
		r.args = append(r.args, args...)
		conds = append(conds, tuple+b.op+`(`+strings.Join(marks, ", ")+`)`)
	}
	if len(conds) > 0 {
		r.where = ` WHERE ` + strings.Join(conds, " AND ")
	}
	r.order = strings.Join(exprs, ", ")
	return r, nil
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
		rows, err := a.readRows(ctx, t, q, args, 1, 0, nil)
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
// in text format, and decodes its rows as Snapshot does. When extra > 0,
// each row has extra columns after those, passed to onExtra.
func (a *Adapter) readRows(ctx context.Context, t *table, q string, args []any, limit, extra int, onExtra func([][]byte) error) ([]adapters.Change, error) {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	rr := conn.PgConn().ExecParams(ctx, q, textParams(args), nil, nil, nil)
	out := make([]adapters.Change, 0, min(limit, 1024))
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(t.Columns)+extra {
			_, _ = rr.Close()
			return nil, errors.AssertionFailedf("read %s: %d values for %d columns", t.Collection, len(vals), len(t.Columns)+extra)
		}
		if extra > 0 {
			if err := onExtra(vals[len(t.Columns):]); err != nil {
				_, _ = rr.Close()
				return nil, errors.Wrapf(err, "read %s", t.Collection)
			}
			vals = vals[:len(t.Columns)]
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

// textParams are the text parameters keyArgs makes, as ExecParams takes
// them.
func textParams(args []any) [][]byte {
	params := make([][]byte, len(args))
	for i, v := range args {
		params[i] = []byte(v.(string))
	}
	return params
}
