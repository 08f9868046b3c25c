package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Start-up and schema errors. Each is reported with a hint saying how to fix
// it.
var (
	ErrVersion         = errors.New("postgres: server version too old")
	ErrWALLevel        = errors.New("postgres: wal_level is not logical")
	ErrServerSettings  = errors.New("postgres: server settings unsuitable")
	ErrPrivilege       = errors.New("postgres: missing privilege")
	ErrNoTable         = errors.New("postgres: table not found")
	ErrNoPrimaryKey    = errors.New("postgres: table has no primary key")
	ErrReplicaIdentity = errors.New("postgres: unsuitable replica identity")
	ErrUnsupportedType = errors.New("postgres: unsupported column type")
	ErrSlotInvalidated = errors.New("postgres: replication slot invalidated")
	ErrSlotMissing     = errors.New("postgres: replication slot missing")
	ErrSlotInUse       = errors.New("postgres: replication slot in use")
	ErrPublication     = errors.New("postgres: publication does not cover the synced tables")
	ErrSchemaChange    = errors.New("postgres: incompatible schema change")
	ErrTruncate        = errors.New("postgres: table truncated")
	ErrOriginInUse     = errors.New("postgres: replication origin in use")
)

// MinVersion is the oldest PostgreSQL major version the adapter accepts.
const MinVersion = 14

// column is one column of a synced table.
type column struct {
	Name string
	Type pgType
	// SQLType is the type as format_type prints it with its modifier
	// (character varying(20)), for messages.
	SQLType string
	// CastType is the type without modifier, the target of the text casts
	// Apply uses: assignment to the column then applies the modifier and
	// fails on overflow instead of truncating.
	CastType string
	NotNull  bool
	Identity byte // 'a' generated always, 'd' by default, 0 none
	// HasDefault: the column has a default (a serial's nextval, a UUID
	// generator), which fills it when an insert leaves it out.
	HasDefault bool
}

// table is a synced table.
type table struct {
	Schema, Name string
	Collection   string
	OID          uint32
	Key          []string
	Columns      []column
	ReplIdent    byte

	// all lists every column of the table, local ones included, as the
	// stream's relations send them; Columns the synced ones (see mapTable).
	all []column
	// local holds the names of the columns the sync leaves out: those of
	// Config.Local, and the primary key of a table with a natural key,
	// whose Key is then the natural key.
	local map[string]bool
	// fills holds the local columns an insert by Apply sets.
	fills []fill

	// upsertSQL and deleteSQL are Apply's statements (see applySQL).
	upsertSQL, deleteSQL string
}

func (t *table) qualified() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func (t *table) column(name string) *column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

func (t *table) identityAlways() bool {
	for _, c := range t.Columns {
		if c.Identity == 'a' {
			return true
		}
	}
	return false
}

// describe returns the table as the adapters contract describes it.
func (t *table) describe() adapters.Table {
	out := adapters.Table{Name: t.Collection, Key: slices.Clone(t.Key)}
	for _, c := range t.Columns {
		out.Columns = append(out.Columns, adapters.Column{
			Name: c.Name, Kind: c.Type.Kind(), Elem: c.Type.Elem(), Type: c.SQLType, Nullable: !c.NotNull,
			Generated: c.generated(),
		})
	}
	return out
}

// catalog is the set of synced tables, by collection and by qualified
// PostgreSQL name.
type catalog struct {
	tables []*table // sorted by collection
	byColl map[string]*table
	byName map[[2]string]*table // {schema, name}
}

func newCatalog(ts []*table) *catalog {
	slices.SortFunc(ts, func(a, b *table) int { return strings.Compare(a.Collection, b.Collection) })
	c := &catalog{tables: ts, byColl: map[string]*table{}, byName: map[[2]string]*table{}}
	for _, t := range ts {
		c.byColl[t.Collection] = t
		c.byName[[2]string{t.Schema, t.Name}] = t
		t.upsertSQL, t.deleteSQL = t.applySQL()
	}
	return c
}

// collectionName names a table: bare in the first configured schema,
// schema-qualified elsewhere.
func collectionName(cfg *Config, schema, name string) string {
	if schema == cfg.Schemas[0] {
		return name
	}
	return schema + "." + name
}

// wanted resolves the allow-list to {schema, name} pairs; nil means every
// table in cfg.Schemas.
func wanted(cfg *Config) [][2]string {
	if len(cfg.Tables) == 0 {
		return nil
	}
	out := make([][2]string, 0, len(cfg.Tables))
	for _, t := range cfg.Tables {
		if s, n, ok := strings.Cut(t, "."); ok {
			out = append(out, [2]string{s, n})
		} else {
			out = append(out, [2]string{cfg.Schemas[0], t})
		}
	}
	return out
}

// problems gathers start-up problems so that one error reports them all.
type problems struct {
	list []problem
}

// problem is one start-up problem; table names the table it concerns, if
// it concerns one.
type problem struct {
	line  string
	mark  error
	hint  string
	table [2]string
}

func (p *problems) add(mark error, hint, format string, args ...any) {
	p.list = append(p.list, problem{line: fmt.Sprintf(format, args...), mark: mark, hint: hint})
}

// addTable adds a problem of table t.
func (p *problems) addTable(t *table, mark error, hint, format string, args ...any) {
	p.list = append(p.list, problem{line: fmt.Sprintf(format, args...), mark: mark, hint: hint, table: [2]string{t.Schema, t.Name}})
}

// split moves the problems of the tables for which leave is true out of p,
// and returns them.
func (p *problems) split(leave func(table [2]string) bool) []problem {
	var kept, left []problem
	for _, pr := range p.list {
		if pr.table != ([2]string{}) && leave(pr.table) {
			left = append(left, pr)
		} else {
			kept = append(kept, pr)
		}
	}
	p.list = kept
	return left
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	var err error
	if len(p.list) == 1 {
		err = errors.Newf("postgres: %s", p.list[0].line)
	} else {
		lines := make([]string, len(p.list))
		for i, pr := range p.list {
			lines[i] = pr.line
		}
		err = errors.Newf("postgres: %d problems:\n  %s", len(p.list), strings.Join(lines, "\n  "))
	}
	var marks []error
	var hints []string
	for _, pr := range p.list {
		if !slices.Contains(marks, pr.mark) {
			marks = append(marks, pr.mark)
		}
		if pr.hint != "" && !slices.Contains(hints, pr.hint) {
			hints = append(hints, pr.hint)
		}
	}
	for _, m := range marks {
		err = errors.Mark(err, m)
	}
	for _, h := range hints {
		err = errors.WithHint(err, h)
	}
	return err
}

// querier is the part of *pgx.Conn the catalog queries use.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// discover reads the synced tables from the catalog and checks that each can
// be synced: a primary key, a usable replica identity, supported column
// types, and the privileges the adapter needs.
// Problems with tables go to p; the error is for failed queries.
func discover(ctx context.Context, q querier, cfg *Config, types *typeCache, p *problems) (*catalog, error) {
	want := wanted(cfg)
	schemas := slices.Clone(cfg.Schemas)
	for _, w := range want {
		if !slices.Contains(schemas, w[0]) {
			schemas = append(schemas, w[0])
		}
	}
	rows, err := q.Query(ctx, `
		SELECT c.oid, n.nspname, c.relname, c.relreplident::text,
		       has_table_privilege(c.oid, 'SELECT'), has_table_privilege(c.oid, 'INSERT'),
		       has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = ANY($1) AND n.nspname <> $2
		ORDER BY n.nspname, c.relname`, schemas, idmapSchema(cfg))
	if err != nil {
		return nil, errors.Wrap(err, "list tables")
	}
	var ts []*table
	found := map[[2]string]bool{}
	for rows.Next() {
		var t table
		var ident string
		var sel, ins, upd, del bool
		if err := rows.Scan(&t.OID, &t.Schema, &t.Name, &ident, &sel, &ins, &upd, &del); err != nil {
			rows.Close()
			return nil, errors.Wrap(err, "list tables")
		}
		name := [2]string{t.Schema, t.Name}
		if want != nil && !slices.Contains(want, name) {
			continue // without an allow-list, the query kept the tables of cfg.Schemas only
		}
		found[name] = true
		if len(ident) == 1 {
			t.ReplIdent = ident[0]
		}
		t.Collection = collectionName(cfg, t.Schema, t.Name)
		if !sel || !ins || !upd || !del {
			var missing []string
			for _, m := range []struct {
				ok   bool
				priv string
			}{{sel, "SELECT"}, {ins, "INSERT"}, {upd, "UPDATE"}, {del, "DELETE"}} {
				if !m.ok {
					missing = append(missing, m.priv)
				}
			}
			p.addTable(&t, ErrPrivilege, "GRANT SELECT, INSERT, UPDATE, DELETE ON the synced tables TO the adapter's role",
				"table %s: missing %s privilege", t.Collection, strings.Join(missing, ", "))
		}
		ts = append(ts, &t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, errors.Wrap(err, "list tables")
	}
	for _, w := range want {
		if !found[w] {
			p.add(ErrNoTable, "check adapter.tables: entries are table (in the first schema) or schema.table",
				"table %s.%s listed in tables does not exist (or is not a plain table)", w[0], w[1])
		}
	}
	if len(ts) > 0 {
		if err := loadColumns(ctx, q, cfg, ts, types, p); err != nil {
			return nil, err
		}
	}
	if err := mapTables(ctx, q, cfg, ts, p); err != nil {
		return nil, err
	}
	return newCatalog(ts), nil
}

func loadColumns(ctx context.Context, q querier, cfg *Config, ts []*table, types *typeCache, p *problems) error {
	oids := make([]uint32, len(ts))
	byOID := map[uint32]*table{}
	for i, t := range ts {
		oids[i] = t.OID
		byOID[t.OID] = t
	}
	rows, err := q.Query(ctx, `
		SELECT a.attrelid, a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
		       format_type(a.atttypid, NULL), a.attnotnull, a.attgenerated::text, a.attidentity::text, a.atthasdef
		FROM pg_attribute a
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return errors.Wrap(err, "list columns")
	}
	type pending struct {
		t   *table
		c   column
		oid uint32
	}
	var cols []pending
	for rows.Next() {
		var rel, typ uint32
		var c column
		var generated, identity string
		if err := rows.Scan(&rel, &c.Name, &typ, &c.SQLType, &c.CastType, &c.NotNull, &generated, &identity, &c.HasDefault); err != nil {
			rows.Close()
			return errors.Wrap(err, "list columns")
		}
		if generated != "" {
			continue // computed by the server: neither published nor written
		}
		if identity != "" {
			c.Identity = identity[0]
		}
		// "character" without a length means character(1), to which a cast
		// truncates: cast to the unbounded bpchar instead.
		switch typ {
		case 1042:
			c.CastType = "bpchar"
		case 1014:
			c.CastType = "bpchar[]"
		}
		cols = append(cols, pending{byOID[rel], c, typ})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return errors.Wrap(err, "list columns")
	}
	for _, pc := range cols {
		typ, err := types.resolve(ctx, q, pc.oid)
		if err != nil {
			return err
		}
		pc.c.Type = typ
		if typ.Scalar == scalarNone {
			p.addTable(pc.t, ErrUnsupportedType, unsupportedHint,
				"table %s column %s: unsupported type %s", pc.t.Collection, pc.c.Name, pc.c.SQLType)
		}
		pc.t.Columns = append(pc.t.Columns, pc.c)
	}

	rows, err = q.Query(ctx, `
		SELECT i.indrelid, a.attname
		FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indisprimary AND i.indrelid = ANY($1)
		ORDER BY i.indrelid, k.ord`, oids)
	if err != nil {
		return errors.Wrap(err, "list primary keys")
	}
	for rows.Next() {
		var rel uint32
		var name string
		if err := rows.Scan(&rel, &name); err != nil {
			rows.Close()
			return errors.Wrap(err, "list primary keys")
		}
		byOID[rel].Key = append(byOID[rel].Key, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return errors.Wrap(err, "list primary keys")
	}

	for _, t := range ts {
		if len(t.Key) == 0 {
			p.addTable(t, ErrNoPrimaryKey, "add a primary key (ALTER TABLE ... ADD PRIMARY KEY (...)) or leave the table out of adapter.tables",
				"table %s has no primary key: records need a key", t.Collection)
			continue
		}
		for _, k := range t.Key {
			c := t.column(k)
			if c == nil {
				p.addTable(t, ErrNoPrimaryKey, "", "table %s: key column %s is a generated column", t.Collection, k)
				continue
			}
			switch c.Type.Kind() {
			case crdt.KindJSON, crdt.KindList:
				p.addTable(t, ErrUnsupportedType, "use key columns of scalar types (integers, text, uuid, numeric, timestamps, bytea, boolean)",
					"table %s: key column %s of type %s cannot be part of a record key", t.Collection, k, c.SQLType)
			}
		}
		switch {
		case t.ReplIdent == 'd' || t.ReplIdent == 'f':
		case cfg.ReplicaIdentity == IdentityFull:
			// Open sets it to FULL.
		case len(cfg.Keys[t.Collection]) > 0:
			// checkNatural checks it against the natural key.
		default:
			p.addTable(t, ErrReplicaIdentity, "ALTER TABLE ... REPLICA IDENTITY DEFAULT (the primary key) or FULL",
				"table %s has replica identity %s: deletes would not carry the primary key", t.Collection, replIdentName(t.ReplIdent))
		}
	}
	return nil
}

const unsupportedHint = "supported: smallint, integer, bigint, numeric, real, double precision, text, varchar, char, " +
	"boolean, timestamp(tz), date, uuid, json, jsonb, bytea, enums, domains over these, and one-dimensional arrays of them; " +
	"change the column type or leave the table out of adapter.tables"

func replIdentName(b byte) string {
	switch b {
	case 'n':
		return "NOTHING"
	case 'i':
		return "USING INDEX"
	case 'd':
		return "DEFAULT"
	case 'f':
		return "FULL"
	}
	return fmt.Sprintf("%q", b)
}

// typeCache resolves type OIDs to supported types: built-in types directly,
// domains to their base type, enums to text, arrays to their element type.
// Unsupported types resolve to a pgType with scalarNone and their name.
type typeCache struct {
	m map[uint32]pgType
}

func newTypeCache() *typeCache { return &typeCache{m: map[uint32]pgType{}} }

func (c *typeCache) resolve(ctx context.Context, q querier, oid uint32) (pgType, error) {
	return c.resolveDepth(ctx, q, oid, 0)
}

func (c *typeCache) resolveDepth(ctx context.Context, q querier, oid uint32, depth int) (pgType, error) {
	if t, ok := builtinTypes[oid]; ok {
		return t, nil
	}
	if t, ok := c.m[oid]; ok {
		return t, nil
	}
	var typtype, category, name string
	var base, elem uint32
	err := q.QueryRow(ctx, `SELECT typtype::text, typcategory::text, typbasetype, typelem, format_type(oid, NULL)
		FROM pg_type WHERE oid = $1`, oid).Scan(&typtype, &category, &base, &elem, &name)
	if errors.Is(err, pgx.ErrNoRows) {
		return pgType{OID: oid, Name: fmt.Sprintf("type %d", oid)}, nil
	}
	if err != nil {
		return pgType{}, errors.Wrapf(err, "look up type %d", oid)
	}
	t := pgType{OID: oid, Name: name}
	if depth < 8 {
		switch {
		case typtype == "d":
			bt, err := c.resolveDepth(ctx, q, base, depth+1)
			if err != nil {
				return pgType{}, err
			}
			t.Scalar, t.Array = bt.Scalar, bt.Array
		case typtype == "e":
			t.Scalar = scalarText
		case category == "A" && elem != 0:
			et, err := c.resolveDepth(ctx, q, elem, depth+1)
			if err != nil {
				return pgType{}, err
			}
			if !et.Array {
				t.Scalar, t.Array = et.Scalar, true
			}
		}
	}
	c.m[oid] = t
	return t, nil
}
