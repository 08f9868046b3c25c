package sqlite

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// fill is a local column an insert by Apply sets, and the value it sets,
// as the driver binds it.
type fill struct {
	col *column
	arg any
}

// mapLayout applies the config's natural key and local columns to a layout:
// its records are named by the natural key, whose primary key is then
// local, and the local columns are left out of what it decodes. A layout
// recorded before the natural key's columns existed keeps no key: capture
// leaves its rows out.
func mapLayout(l *layout, cfg *Config) {
	l.local = map[string]bool{}
	for name := range cfg.Local[l.table] {
		l.local[name] = true
	}
	names := cfg.Keys[l.table]
	if len(names) == 0 {
		return
	}
	l.natural = true
	for _, k := range l.pk {
		if !slices.Contains(names, k.Name) {
			l.local[k.Name] = true
		}
	}
	l.key = nil
	for _, name := range names {
		i := slices.IndexFunc(l.cols, func(c *column) bool { return c.Name == name })
		if i < 0 {
			l.key = nil
			return
		}
		l.key = append(l.key, l.cols[i])
	}
}

// strip deletes the local columns from row.
func (l *layout) strip(row crdt.Row) {
	if row == nil {
		return
	}
	for name := range l.local {
		delete(row, name)
	}
}

// moved splits a captured update that changed the natural key into the
// delete of the old key and the insert of the new one, as the triggers log
// a change of the record key. The triggers of a table with a natural key
// log such an update so; the update rows that moved splits were logged
// before the table had its natural key, by triggers that watched the
// primary key. Other changes are returned as they are.
func (l *layout) moved(c adapters.Change) []adapters.Change {
	if !l.natural || c.Row == nil || c.Old == nil {
		return []adapters.Change{c}
	}
	vals := make([]crdt.Value, len(l.key))
	for i, k := range l.key {
		vals[i] = c.Old[k.Name]
	}
	old, err := crdt.MakeKey(vals...)
	if err != nil || old == c.Key {
		return []adapters.Change{c}
	}
	return []adapters.Change{
		{Collection: c.Collection, Key: old, Old: c.Old, Committed: c.Committed},
		{Collection: c.Collection, Key: c.Key, Row: c.Row, Insert: true, Committed: c.Committed},
	}
}

// checkMapping checks the natural keys and local columns of the config
// against the synced tables and returns, by table, the local columns an
// insert sets. It fails with an ErrNotInstallable error naming every
// problem: a table that is not synced, a column that does not exist, a
// natural key without a unique index over NOT NULL columns, a primary key
// the database cannot generate, a value that does not fit its column.
func checkMapping(ctx context.Context, q querier, synced []*found, cfg *Config) (map[string][]fill, error) {
	byName := map[string]*found{}
	for _, f := range synced {
		byName[f.name] = f
	}
	names := slices.Sorted(maps.Keys(cfg.Local))
	for name := range cfg.Keys {
		if _, ok := cfg.Local[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var problems []string
	out := map[string][]fill{}
	for _, name := range names {
		f := byName[name]
		if f == nil {
			problems = append(problems, fmt.Sprintf("table %s has a natural key or local columns but is not synced (missing, left out of the tables list, or not syncable)", name))
			continue
		}
		defaults, err := columnDefaults(ctx, q, name)
		if err != nil {
			return nil, err
		}
		cols := map[string]*column{}
		for _, c := range f.cols {
			cols[c.Name] = c
		}
		natural := cfg.Keys[name]
		local := cfg.Local[name]
		for _, cname := range slices.Sorted(maps.Keys(local)) {
			c := cols[cname]
			v := local[cname]
			switch {
			case c == nil:
				problems = append(problems, fmt.Sprintf("table %s has no column %s to keep local", name, cname))
			case slices.Contains(natural, cname):
				problems = append(problems, fmt.Sprintf("table %s: column %s is both local and in the natural key", name, cname))
			case len(natural) == 0 && c.Key > 0:
				problems = append(problems, fmt.Sprintf("table %s: column %s is in the primary key, which names its records: it cannot be local without a natural key", name, cname))
			case !v.IsNull():
				arg, err := toNative(v, c)
				if err != nil {
					problems = append(problems, fmt.Sprintf("table %s: local column %s cannot hold %s: %v", name, cname, v, err))
					continue
				}
				out[name] = append(out[name], fill{col: c, arg: arg})
			case c.NotNull && !defaults[cname] && (len(natural) == 0 || c.Key == 0):
				problems = append(problems, fmt.Sprintf("table %s: local column %s is NOT NULL without a default: give it a value for inserts", name, cname))
			}
		}
		if len(natural) == 0 {
			continue
		}
		var withoutRowid bool
		if err := q.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema='main' AND name=?`, name).Scan(&withoutRowid); err != nil {
			return nil, errors.Wrapf(err, "read table %s", name)
		}
		problems = append(problems, checkNatural(f, cols, natural, defaults, !withoutRowid)...)
		ok, err := uniqueIndex(ctx, q, name, natural)
		if err != nil {
			return nil, err
		}
		if !ok {
			quoted := make([]string, len(natural))
			for i, n := range natural {
				quoted[i] = quoteIdent(n)
			}
			problems = append(problems, fmt.Sprintf("table %s has no unique index over its natural key (%s): create one, as CREATE UNIQUE INDEX %s ON %s(%s)",
				name, strings.Join(natural, ", "), quoteIdent(name+"_"+strings.Join(natural, "_")), quoteIdent(name), strings.Join(quoted, ", ")))
		}
	}
	if len(problems) > 0 {
		return nil, errors.Mark(errors.WithHint(errors.New(strings.Join(problems, "; ")),
			"a natural key names columns that a unique index covers exactly, each NOT NULL, and the primary key then needs a default "+
				"(INTEGER PRIMARY KEY is one); local columns name columns of a synced table"), ErrNotInstallable)
	}
	return out, nil
}

// checkNatural checks the natural key's columns and that the database
// generates the primary key an insert leaves out.
func checkNatural(f *found, cols map[string]*column, natural []string, defaults map[string]bool, rowid bool) []string {
	var problems []string
	for _, n := range natural {
		c := cols[n]
		switch {
		case c == nil:
			problems = append(problems, fmt.Sprintf("table %s has no column %s for its natural key", f.name, n))
		case !c.NotNull:
			problems = append(problems, fmt.Sprintf("table %s: natural key column %s is not NOT NULL", f.name, n))
		case c.Kind == crdt.KindJSON || c.Kind == crdt.KindList:
			problems = append(problems, fmt.Sprintf("table %s: natural key column %s has type %q, which cannot be part of a key", f.name, n, c.Type))
		}
	}
	var pk []*column
	for _, c := range f.cols {
		if c.Key > 0 {
			pk = append(pk, c)
		}
	}
	// A rowid table's INTEGER PRIMARY KEY is the rowid, which SQLite
	// assigns.
	if len(pk) == 1 && rowid && strings.EqualFold(strings.TrimSpace(pk[0].Type), "INTEGER") {
		return problems
	}
	for _, c := range pk {
		if !defaults[c.Name] && !slices.Contains(natural, c.Name) {
			problems = append(problems, fmt.Sprintf("table %s: primary key column %s has no default, so inserts by natural key cannot leave it out", f.name, c.Name))
		}
	}
	return problems
}

// columnDefaults returns the names of the table's columns that have a
// default.
func columnDefaults(ctx context.Context, q querier, table string) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM pragma_table_info(?) WHERE dflt_value IS NOT NULL`, table)
	if err != nil {
		return nil, errors.Wrapf(err, "read column defaults of table %s", table)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, errors.Wrapf(err, "read column defaults of table %s", table)
		}
		out[n] = true
	}
	return out, errors.Wrapf(rows.Err(), "read column defaults of table %s", table)
}

// uniqueIndex reports whether a unique index of table, not partial, covers
// exactly the columns cols (in any order): what ON CONFLICT(cols) needs.
func uniqueIndex(ctx context.Context, q querier, table string, cols []string) (bool, error) {
	rows, err := q.QueryContext(ctx, `SELECT il.name, ii.name FROM pragma_index_list(?) il, pragma_index_info(il.name) ii
		WHERE il."unique" AND NOT il.partial ORDER BY il.name`, table)
	if err != nil {
		return false, errors.Wrapf(err, "read indexes of table %s", table)
	}
	defer rows.Close()
	indexes := map[string][]string{}
	for rows.Next() {
		var index string
		var col *string // null for an expression
		if err := rows.Scan(&index, &col); err != nil {
			return false, errors.Wrapf(err, "read indexes of table %s", table)
		}
		c := ""
		if col != nil {
			c = *col
		}
		indexes[index] = append(indexes[index], c)
	}
	if err := rows.Err(); err != nil {
		return false, errors.Wrapf(err, "read indexes of table %s", table)
	}
	want := slices.Sorted(slices.Values(cols))
	for _, have := range indexes {
		slices.Sort(have)
		if slices.Equal(have, want) {
			return true, nil
		}
	}
	return false, nil
}
