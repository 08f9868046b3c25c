package postgres

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/crdt"
)

// ErrNaturalKey marks a natural key (Config.Keys) that the table cannot
// have: no unique index covers it, a column is nullable or missing, or the
// primary key an insert leaves out has no default.
var ErrNaturalKey = errors.New("postgres: unusable natural key")

// ErrLocalColumn marks a local column (Config.Local) that the table does
// not have, or a value an insert cannot give it.
var ErrLocalColumn = errors.New("postgres: unusable local column")

// fill is a local column an insert by Apply sets, and the value it sets,
// in text.
type fill struct {
	col column
	arg string
}

// mapTables applies the config's natural keys and local columns to the
// discovered tables: a table with a natural key is keyed by it, and its
// primary key is local; local columns leave Columns (all keeps every
// column, for the relations of the stream). Problems go to p: a table that
// is not synced, a column it does not have, a natural key without a unique
// index over NOT NULL columns, a primary key without a default, a replica
// identity that leaves the natural key out of the old rows.
func mapTables(ctx context.Context, q querier, cfg *Config, ts []*table, p *problems) error {
	byColl := map[string]*table{}
	for _, t := range ts {
		byColl[t.Collection] = t
		t.all = t.Columns
	}
	names := slices.Sorted(maps.Keys(cfg.Local))
	for name := range cfg.Keys {
		if _, ok := cfg.Local[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		t := byColl[name]
		if t == nil {
			p.add(ErrNoTable, "name synced tables in adapter.keys and adapter.local, as table (in the first schema) or schema.table",
				"table %s has a natural key or local columns but is not synced (missing, or left out of the tables list)", name)
			continue
		}
		if len(t.Key) == 0 {
			continue // no primary key: reported already
		}
		if err := mapTable(ctx, q, cfg, t, p); err != nil {
			return err
		}
	}
	return nil
}

// mapTable applies the natural key and local columns of one table.
func mapTable(ctx context.Context, q querier, cfg *Config, t *table, p *problems) error {
	natural := cfg.Keys[t.Collection]
	local := map[string]bool{}
	values := cfg.Local[t.Collection]
	defaults, err := columnDefaults(ctx, q, t)
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		c := t.column(name)
		v := values[name]
		switch {
		case c == nil:
			p.addTable(t, ErrLocalColumn, "name columns of the table in adapter.local", "table %s has no column %s to keep local", t.Collection, name)
			continue
		case slices.Contains(natural, name):
			p.addTable(t, ErrLocalColumn, "", "table %s: column %s is both local and in the natural key", t.Collection, name)
			continue
		case len(natural) == 0 && slices.Contains(t.Key, name):
			p.addTable(t, ErrLocalColumn, "", "table %s: column %s is in the primary key, which names its records: it cannot be local without a natural key", t.Collection, name)
			continue
		}
		local[name] = true
		s, ok, err := encodeText(c.Type, v)
		if err != nil {
			p.addTable(t, ErrLocalColumn, "", "table %s: local column %s cannot hold %s: %v", t.Collection, name, v, err)
			continue
		}
		switch {
		case ok:
			t.fills = append(t.fills, fill{col: *c, arg: s})
		case c.NotNull && c.Identity == 0 && !slices.Contains(defaults, name) && (len(natural) == 0 || !slices.Contains(t.Key, name)):
			p.addTable(t, ErrLocalColumn, "give the column a value in adapter.local, or a DEFAULT",
				"table %s: local column %s is NOT NULL without a default: inserts by Apply would fail", t.Collection, name)
		}
	}
	if len(natural) > 0 {
		ok, err := checkNatural(ctx, q, cfg, t, natural, defaults, p)
		if err != nil || !ok {
			return err
		}
		for _, k := range t.Key {
			if !slices.Contains(natural, k) {
				local[k] = true
			}
		}
		t.Key = slices.Clone(natural)
	}
	var synced []column
	for _, c := range t.all {
		if !local[c.Name] {
			synced = append(synced, c)
		}
	}
	t.Columns = synced
	t.local = local
	return nil
}

// checkNatural checks a natural key: NOT NULL columns of scalar types that
// a unique index covers exactly (what ON CONFLICT needs), a primary key
// the server generates, and a replica identity whose old rows carry the
// natural key (FULL, which Open sets with replica_identity: full, or USING
// INDEX of that unique index).
func checkNatural(ctx context.Context, q querier, cfg *Config, t *table, natural, defaults []string, p *problems) (bool, error) {
	ok := true
	for _, n := range natural {
		c := t.column(n)
		switch {
		case c == nil:
			p.addTable(t, ErrNaturalKey, "", "table %s has no column %s for its natural key", t.Collection, n)
		case !c.NotNull:
			p.addTable(t, ErrNaturalKey, "ALTER TABLE ... ALTER COLUMN ... SET NOT NULL on the natural key's columns",
				"table %s: natural key column %s is nullable", t.Collection, n)
		case c.Type.Kind() == crdt.KindJSON || c.Type.Kind() == crdt.KindList:
			p.addTable(t, ErrNaturalKey, "", "table %s: natural key column %s of type %s cannot be part of a record key", t.Collection, n, c.SQLType)
		default:
			continue
		}
		ok = false
	}
	if !ok {
		return false, nil
	}
	var index string
	var replIdent bool
	err := q.QueryRow(ctx, `
		SELECT ic.relname, i.indisreplident
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
		  AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
		       FROM unnest(i.indkey::int2[]) k(attnum) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
		      = (SELECT array_agg(n ORDER BY n) FROM unnest($2::text[]) n)
		ORDER BY i.indisreplident DESC, ic.relname LIMIT 1`, t.OID, natural).Scan(&index, &replIdent)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		quoted := make([]string, len(natural))
		for i, n := range natural {
			quoted[i] = pgx.Identifier{n}.Sanitize()
		}
		p.addTable(t, ErrNaturalKey, "create a unique index over exactly the natural key's columns, as CREATE UNIQUE INDEX ON "+
			t.qualified()+" ("+strings.Join(quoted, ", ")+")",
			"table %s has no unique index over its natural key (%s)", t.Collection, strings.Join(natural, ", "))
		return false, nil
	case err != nil:
		return false, errors.Wrapf(err, "read the unique indexes of %s", t.Collection)
	}
	for _, k := range t.Key {
		if c := t.column(k); c != nil && c.Identity == 0 && !slices.Contains(defaults, k) && !slices.Contains(natural, k) {
			p.addTable(t, ErrNaturalKey, "give the primary key a default: an identity (ALTER TABLE ... ALTER COLUMN ... ADD GENERATED BY DEFAULT AS IDENTITY), a serial or a DEFAULT",
				"table %s: primary key column %s has no default, so inserts by natural key cannot leave it out", t.Collection, k)
			ok = false
		}
	}
	switch {
	case t.ReplIdent == 'f' || cfg.ReplicaIdentity == IdentityFull:
	case t.ReplIdent == 'i' && replIdent:
	default:
		p.addTable(t, ErrReplicaIdentity, "ALTER TABLE "+t.qualified()+" REPLICA IDENTITY FULL, or REPLICA IDENTITY USING INDEX "+
			pgx.Identifier{index}.Sanitize()+"; or set adapter.replica_identity: full",
			"table %s has replica identity %s: changes of its natural key would not carry the old key", t.Collection, replIdentName(t.ReplIdent))
		ok = false
	}
	return ok, nil
}

// columnDefaults returns the names of the table's columns that have a
// default.
func columnDefaults(ctx context.Context, q querier, t *table) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND atthasdef`, t.OID)
	if err != nil {
		return nil, errors.Wrapf(err, "read the column defaults of %s", t.Collection)
	}
	defaults, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return defaults, errors.Wrapf(err, "read the column defaults of %s", t.Collection)
}

// strip deletes the local columns from row.
func (t *table) strip(row crdt.Row) {
	for name := range t.local {
		delete(row, name)
	}
}
