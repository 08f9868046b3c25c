package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

var _ adapters.IDMapper = (*Adapter)(nil)

// generated reports whether the server fills the column when an insert
// leaves it out: an identity, or a default (serial, UUID generator).
func (c *column) generated() bool { return c.Identity != 0 || c.HasDefault }

// idmapSchema names the schema that holds the adapter's ID map: the
// replication origin's name (lattice_<node>), which is the adapter's own,
// so that sidecars sharing a database keep their maps apart. Discovery
// never syncs its tables.
func idmapSchema(cfg *Config) string { return cfg.Origin }

// idmapTable is the ID map's qualified name.
func (a *Adapter) idmapTable() string {
	return pgx.Identifier{idmapSchema(&a.cfg), "idmap"}.Sanitize()
}

// ensureIDMap creates the ID map if it does not exist yet, the first time
// an Apply has a write with a NewKey, and otherwise reports whether it
// exists. The local key is the text forms of the key columns' values (as
// the server prints them, which is how they are read back), the collection
// key its crdt.Key bytes. A local key names one record and a collection key
// one row, hence the two unique constraints. The caller holds applyMu: no
// other session of this adapter creates the map, so the first look is
// remembered, and Applies without the map cost no round trip for it.
func (a *Adapter) ensureIDMap(ctx context.Context, conn *pgx.Conn, create bool) (bool, error) {
	if !a.idmapKnown {
		if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, a.idmapTable()).Scan(&a.idmapExists); err != nil {
			return false, err
		}
		a.idmapKnown = true
	}
	if a.idmapExists || !create {
		return a.idmapExists, nil
	}
	schema := pgx.Identifier{idmapSchema(&a.cfg)}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+schema); err != nil {
		return false, errors.WithHint(errors.Wrapf(classify(err), "create schema %s for the id map", idmapSchema(&a.cfg)),
			"the adapter's role needs CREATE on the database to keep an id map (GRANT CREATE ON DATABASE ...)")
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+a.idmapTable()+
		` (tbl text NOT NULL, local text[] NOT NULL, coll bytea NOT NULL, PRIMARY KEY (tbl, local), UNIQUE (tbl, coll))`); err != nil {
		return false, errors.Wrap(classify(err), "create the id map")
	}
	a.idmapExists = true
	return true, nil
}

// dropIDMap drops the ID map and its schema, which holds nothing else (a
// schema of the same name that holds other objects is left).
func (a *Adapter) dropIDMap(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS `+a.idmapTable()); err != nil {
		return errors.Wrap(classify(err), "drop the id map")
	}
	_, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{idmapSchema(&a.cfg)}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "2BP01" { // dependent objects: not only ours
		return nil
	}
	return errors.Wrapf(classify(err), "drop schema %s", idmapSchema(&a.cfg))
}

// IDMap returns the ID map of table: the key the server generated for each
// record Apply inserted with a Write.NewKey, to that NewKey.
func (a *Adapter) IDMap(ctx context.Context, table string) (map[crdt.Key]crdt.Key, error) {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	t, err := a.rangeTable(table)
	if err != nil {
		return nil, err
	}
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	out := map[crdt.Key]crdt.Key{}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, a.idmapTable()).Scan(&exists); err != nil || !exists {
		return out, errors.Wrapf(err, "read the id map of %s", table)
	}
	rows, err := conn.Query(ctx, `SELECT local, coll FROM `+a.idmapTable()+` WHERE tbl = $1`, table)
	if err != nil {
		return nil, errors.Wrapf(err, "read the id map of %s", table)
	}
	defer rows.Close()
	for rows.Next() {
		var local []string
		var coll []byte
		if err := rows.Scan(&local, &coll); err != nil {
			return nil, errors.Wrapf(err, "read the id map of %s", table)
		}
		k, err := decodeKey(t, local)
		if err != nil {
			return nil, errors.Wrapf(err, "read the id map of %s", table)
		}
		out[k] = crdt.Key(coll)
	}
	return out, errors.Wrapf(rows.Err(), "read the id map of %s", table)
}

// decodeKey converts the text forms of a row's key columns to its key.
func decodeKey(t *table, texts []string) (crdt.Key, error) {
	if len(texts) != len(t.Key) {
		return "", errors.Newf("key of %d values, table %s has %d key columns", len(texts), t.Collection, len(t.Key))
	}
	vals := make([]crdt.Value, len(texts))
	for i, name := range t.Key {
		c := t.column(name)
		if c == nil {
			return "", errors.Newf("table %s has no key column %s", t.Collection, name)
		}
		v, err := decodeText(c.Type, texts[i])
		if err != nil {
			return "", errors.Wrapf(err, "key column %s", name)
		}
		vals[i] = v
	}
	return crdt.MakeKey(vals...)
}

// mappedKeys returns, by write index, the local keys the ID map holds for
// the writes' NewKeys: those records were inserted by an earlier Apply, and
// the write updates them. It reads on the apply session, outside the
// transaction (only this session writes the map), one query per table.
func (a *Adapter) mappedKeys(ctx context.Context, conn *pgx.Conn, writes []adapters.Write) (map[int]crdt.Key, error) {
	byTable := map[string]map[crdt.Key][]int{} // collection, NewKey: write indexes
	for i, w := range writes {
		if w.NewKey == "" {
			continue
		}
		if byTable[w.Collection] == nil {
			byTable[w.Collection] = map[crdt.Key][]int{}
		}
		byTable[w.Collection][w.NewKey] = append(byTable[w.Collection][w.NewKey], i)
	}
	out := map[int]crdt.Key{}
	for coll, idx := range byTable {
		keys := make([][]byte, 0, len(idx))
		for k := range idx {
			keys = append(keys, []byte(k))
		}
		rows, err := conn.Query(ctx, `SELECT coll, local FROM `+a.idmapTable()+` WHERE tbl = $1 AND coll = ANY($2::bytea[])`, coll, keys)
		if err != nil {
			return nil, errors.Mark(errors.Wrap(err, "apply: read the id map"), adapters.ErrUnavailable)
		}
		type pair struct {
			coll  []byte
			local []string
		}
		var pairs []pair
		for rows.Next() {
			var p pair
			if err := rows.Scan(&p.coll, &p.local); err != nil {
				rows.Close()
				return nil, errors.Mark(errors.Wrap(err, "apply: read the id map"), adapters.ErrUnavailable)
			}
			pairs = append(pairs, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, errors.Mark(errors.Wrap(err, "apply: read the id map"), adapters.ErrUnavailable)
		}
		for _, p := range pairs {
			is := idx[crdt.Key(p.coll)]
			t := a.catalog().byColl[coll]
			if t == nil {
				return nil, adapters.BadRow(coll, crdt.Key(p.coll), errors.Newf("unknown table %s", coll))
			}
			k, err := decodeKey(t, p.local)
			if err != nil {
				return nil, adapters.BadRow(coll, crdt.Key(p.coll), errors.Wrap(err, "id map"))
			}
			for _, i := range is {
				out[i] = k
			}
		}
	}
	return out, nil
}

// asUpdate turns a write with a NewKey the ID map holds into the write of
// the record under its local key: the row with the key columns set.
func asUpdate(t *table, w adapters.Write, local crdt.Key) (adapters.Write, error) {
	vals, err := local.Values()
	if err != nil {
		return adapters.Write{}, err
	}
	if len(vals) != len(t.Key) {
		return adapters.Write{}, errors.AssertionFailedf("mapped key %s of table %s has %d elements, the table %d key columns", local, t.Collection, len(vals), len(t.Key))
	}
	row := make(crdt.Row, len(w.Row)+len(vals))
	for k, v := range w.Row {
		row[k] = v
	}
	for i, k := range t.Key {
		row[k] = vals[i]
	}
	return adapters.Write{Collection: w.Collection, Key: local, Row: row}, nil
}

// newRowStatement returns the statement and text arguments that insert the
// row of a write with a NewKey, leaving the key columns (which must be
// generated, and absent from the row) to the server, and record the key it
// generated in the ID map, in one statement that returns that key's text
// forms. Parameters: $1 the collection, $2 the NewKey, then the other
// columns. A pair that already holds the generated key is stale (a
// sequence reset) and takes the new collection key.
func (a *Adapter) newRowStatement(t *table, w adapters.Write) (string, []any, error) {
	switch {
	case w.Key != "":
		return "", nil, errors.Newf("a write with a new key has a key (%s)", w.Key)
	case w.Row == nil:
		return "", nil, errors.New("a write with a new key deletes")
	}
	if err := w.NewKey.Validate(); err != nil {
		return "", nil, errors.Wrap(err, "new key")
	}
	var keys, keyTexts []string
	for _, k := range t.Key {
		c := t.column(k)
		if c == nil || !c.generated() {
			return "", nil, errors.Newf("key column %s of table %s is not generated by the server (make it an identity or serial, or give it a default)", k, t.Collection)
		}
		if _, in := w.Row[k]; in {
			return "", nil, errors.Newf("a write with a new key sets key column %s", k)
		}
		id := pgx.Identifier{k}.Sanitize()
		keys = append(keys, id)
		keyTexts = append(keyTexts, id+"::text")
	}
	args := []any{w.Collection, []byte(w.NewKey)}
	var names, params []string
	for i := range t.Columns {
		c := &t.Columns[i]
		if slices.Contains(t.Key, c.Name) {
			continue
		}
		s, ok, err := encodeText(c.Type, w.Row[c.Name])
		if err != nil {
			return "", nil, errors.Wrapf(err, "column %s", c.Name)
		}
		var arg any
		if ok {
			arg = s
		}
		args = append(args, arg)
		names = append(names, pgx.Identifier{c.Name}.Sanitize())
		params = append(params, "$"+strconv.Itoa(len(args))+"::text::"+c.CastType)
	}
	for _, f := range t.fills {
		args = append(args, f.arg)
		names = append(names, pgx.Identifier{f.col.Name}.Sanitize())
		params = append(params, "$"+strconv.Itoa(len(args))+"::text::"+f.col.CastType)
	}
	var sb strings.Builder
	sb.WriteString("WITH ins AS (INSERT INTO " + t.qualified())
	if len(names) == 0 {
		sb.WriteString(" DEFAULT VALUES")
	} else {
		sb.WriteString(" (" + strings.Join(names, ", ") + ")")
		if t.identityAlways() {
			sb.WriteString(" OVERRIDING SYSTEM VALUE")
		}
		sb.WriteString(" VALUES (" + strings.Join(params, ", ") + ")")
	}
	sb.WriteString(" RETURNING " + strings.Join(keys, ", ") + "), rec AS (INSERT INTO " + a.idmapTable() +
		" (tbl, local, coll) SELECT $1::text, ARRAY[" + strings.Join(keyTexts, ", ") + "], $2::bytea FROM ins" +
		" ON CONFLICT (tbl, local) DO UPDATE SET coll = EXCLUDED.coll) SELECT " + strings.Join(keyTexts, ", ") + " FROM ins")
	return sb.String(), args, nil
}

// unmapStatement returns the delete of a row that also drops its pair from
// the ID map: should the key come back (a sequence reset), the new row is
// another record. Parameters are those of t.deleteSQL, then the collection.
func (a *Adapter) unmapStatement(t *table) string {
	texts := make([]string, len(t.Key))
	for i, k := range t.Key {
		texts[i] = "($" + strconv.Itoa(i+1) + "::text::" + t.column(k).CastType + ")::text"
	}
	return "WITH unmap AS (DELETE FROM " + a.idmapTable() + " WHERE tbl = $" + strconv.Itoa(len(t.Key)+1) +
		"::text AND local = ARRAY[" + strings.Join(texts, ", ") + "]) " + t.deleteSQL
}

// writeKey is the key a RowError names a write by: its NewKey for a write
// that inserts a new record, which has no Key yet.
func writeKey(w adapters.Write) crdt.Key {
	if w.NewKey != "" {
		return w.NewKey
	}
	return w.Key
}

// mappedStatement returns the statement of one write. A write with a
// NewKey inserts its row (newRowStatement), or, when the ID map holds the
// NewKey (local), writes the record under its local key. A delete drops the
// record's pair too once the ID map exists (mapping).
func (a *Adapter) mappedStatement(ctx context.Context, w adapters.Write, local crdt.Key, mapping bool, refreshed *bool) (stmt, error) {
	if w.NewKey == "" {
		sql, args, err := a.statement(ctx, w, refreshed)
		if err != nil {
			return stmt{}, err
		}
		if w.Row == nil && mapping {
			// statement found the table.
			return stmt{sql: a.unmapStatement(a.catalog().byColl[w.Collection]), args: append(args, w.Collection)}, nil
		}
		return stmt{sql: sql, args: args}, nil
	}
	t, err := a.lookup(ctx, w, refreshed)
	if err != nil {
		return stmt{}, err
	}
	if local == "" {
		sql, args, err := a.newRowStatement(t, w)
		if err != nil {
			return stmt{}, adapters.BadRow(w.Collection, w.NewKey, err)
		}
		return stmt{sql: sql, args: args, generates: t}, nil
	}
	u, err := asUpdate(t, w, local)
	if err != nil {
		return stmt{}, adapters.BadRow(w.Collection, w.NewKey, err)
	}
	sql, args, err := a.statement(ctx, u, refreshed)
	if re, ok := adapters.RowErrorOf(err); ok {
		return stmt{}, adapters.BadRow(w.Collection, w.NewKey, re.Err)
	}
	return stmt{sql: sql, args: args}, err
}
