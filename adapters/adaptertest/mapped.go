package adaptertest

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
)

// Mapped returns a Harness that runs the suite through a mapping
// (adapters/mapping) over the systems of h: every scenario runs unchanged in
// collection space while the system holds other names and other values.
//
// For each TableSpec the suite asks for, the system holds the table
// "sys_<table>" whose columns are "c_<column>", keys included, and Open
// wraps the system's adapter with mapping.New on a mapping that names them
// back (table to collection, column to field). Two columns also hold other
// values: the note column of PairsTable carries a value map (the notes in
// mappedNotes are stored under other texts, "one" as "N:one", and every
// other note passes unchanged, so the suite writes what it likes), and the
// boolean column of TypesTable is text in the system, 'Y' or 'N' (the
// conversion bool:Y/N). Exec translates the suite's user writes to the
// system's names and values before the system performs them; Rows
// translates the system's rows back, independently of the mapping's code,
// and fails on a value the mapping would never store.
//
// Natural keys and local columns run where h supports them: h opens its
// adapters with the Options its TableSpecs ask for, and the mapping's
// NaturalKeys and Local are checked to be exactly those. The IDMap scenario
// does not run (Features.GeneratedKeys is off): the mapping keeps the
// system adapter's ID map for itself (it is how a table keyed by id_map
// works) and does not expose adapters.IDMapper.
func Mapped(h Harness) Harness { return mapped{inner: h} }

// mappedNotes is the value map of PairsTable's note column, system text to
// collection text. The suite never writes a system text as a note.
var mappedNotes = map[string]string{
	"N:one":     "one",
	"N:two":     "two",
	"N:first":   "first",
	"N:applied": "applied",
	"N:user":    "user",
	"N:base":    "base",
}

// The prefixes of the system's names.
const (
	mappedTablePrefix  = "sys_"
	mappedColumnPrefix = "c_"
)

type mapped struct{ inner Harness }

// Features are h's, without GeneratedKeys (see Mapped).
func (m mapped) Features() Features {
	f := m.inner.Features()
	f.GeneratedKeys = false
	return f
}

func (m mapped) NewSystem(t *testing.T, tables []TableSpec) System {
	t.Helper()
	cfg := mapping.Config{Tables: map[string]mapping.TableConfig{}}
	specs := map[string]TableSpec{}
	sys := make([]TableSpec, len(tables))
	for i, spec := range tables {
		specs[spec.Name] = spec
		sys[i] = systemSpec(spec)
		tc, err := mappedTable(spec)
		if err != nil {
			t.Fatalf("mapping of %s: %+v", spec.Name, err)
		}
		cfg.Tables[sys[i].Name] = tc
	}
	mp, err := mapping.Compile(cfg)
	if err != nil {
		t.Fatalf("compile the mapping: %+v", err)
	}
	// The inner harness opens its adapters with the Options of the
	// system's TableSpecs: they must be the mapping's.
	keys, local := Mapping(sys)
	if got := mp.NaturalKeys(); len(got) != len(keys) || !maps.EqualFunc(got, keys, func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }) {
		t.Fatalf("the mapping's natural keys %v, the system's tables ask for %v", got, keys)
	}
	if got := mp.Local(); len(got) != len(local) || !maps.EqualFunc(got, local, func(a, b map[string]crdt.Value) bool {
		return maps.EqualFunc(a, b, crdt.Equal)
	}) {
		t.Fatalf("the mapping's local columns %v, the system's tables ask for %v", got, local)
	}
	return &mappedSystem{t: t, inner: m.inner.NewSystem(t, sys), m: mp, specs: specs}
}

// systemSpec returns spec under the system's names.
func systemSpec(spec TableSpec) TableSpec {
	out := spec
	out.Name = mappedTablePrefix + spec.Name
	out.Key = systemColumns(spec.Key)
	out.Natural = systemColumns(spec.Natural)
	out.Columns = make([]ColumnSpec, len(spec.Columns))
	for i, c := range spec.Columns {
		if spec.Name == TypesTable && c.Name == "b_bool" {
			c.Kind = crdt.KindString
		}
		c.Name = mappedColumnPrefix + c.Name
		out.Columns[i] = c
	}
	return out
}

func systemColumns(names []string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = mappedColumnPrefix + n
	}
	return out
}

// mappedTable returns the mapping of spec's system table: every column
// named back to its field, local columns local with their defaults, the
// natural key by its system names. The primary key of a table with a
// natural key is not named: the adapter does not report it.
func mappedTable(spec TableSpec) (mapping.TableConfig, error) {
	tc := mapping.TableConfig{Collection: spec.Name, Columns: map[string]mapping.ColumnConfig{}}
	tc.Key.Natural = systemColumns(spec.Natural)
	for _, c := range spec.Columns {
		name := mappedColumnPrefix + c.Name
		switch {
		case c.Local:
			def, err := scalar(c.Default)
			if err != nil {
				return tc, errors.Wrapf(err, "default of %s", c.Name)
			}
			tc.Columns[name] = mapping.ColumnConfig{Local: true, Default: def}
		case len(spec.Natural) > 0 && spec.IsKey(c.Name):
		case spec.Name == PairsTable && c.Name == "note":
			tc.Columns[name] = mapping.ColumnConfig{Field: c.Name, Values: mappedNotes}
		case spec.Name == TypesTable && c.Name == "b_bool":
			tc.Columns[name] = mapping.ColumnConfig{Field: c.Name, Convert: "bool:Y/N"}
		default:
			tc.Columns[name] = mapping.ColumnConfig{Field: c.Name}
		}
	}
	return tc, nil
}

// scalar returns v as the YAML scalar a config would hold.
func scalar(v crdt.Value) (any, error) {
	switch v.Kind() {
	case crdt.KindNull:
		return nil, nil
	case crdt.KindBool:
		return v.AsBool(), nil
	case crdt.KindInt:
		return v.AsInt(), nil
	case crdt.KindFloat:
		return v.AsFloat(), nil
	case crdt.KindString:
		return v.AsString(), nil
	case crdt.KindTime:
		return v.AsTime(), nil
	}
	return nil, errors.Newf("a default of kind %s is not a scalar", v.Kind())
}

// mappedSystem is a System of the inner harness seen in collection space.
type mappedSystem struct {
	t     *testing.T
	inner System
	m     *mapping.Map
	specs map[string]TableSpec // by collection
}

// Open opens the system's adapter and wraps it with the mapping.
func (s *mappedSystem) Open(ctx context.Context) (adapters.Adapter, error) {
	a, err := s.inner.Open(ctx)
	if err != nil {
		return nil, err
	}
	return mapping.New(a, s.m, slog.New(slog.NewTextHandler(logWriter{s.t}, nil))), nil
}

// logWriter writes the mapping's warnings to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Exec performs ops under the system's names and values.
func (s *mappedSystem) Exec(ctx context.Context, ops ...Op) error {
	out := make([]Op, len(ops))
	for i, op := range ops {
		if _, ok := s.specs[op.Table]; !ok {
			return errors.Newf("unknown table %s", op.Table)
		}
		out[i] = Op{Kind: op.Kind, Table: mappedTablePrefix + op.Table,
			Row: s.toSystem(op.Table, op.Row), NewKey: s.toSystem(op.Table, op.NewKey)}
	}
	return s.inner.Exec(ctx, out...)
}

// toSystem renames the columns of a row of table and maps their values.
func (s *mappedSystem) toSystem(table string, row crdt.Row) crdt.Row {
	if row == nil {
		return nil
	}
	out := make(crdt.Row, len(row))
	for c, v := range row {
		out[mappedColumnPrefix+c] = systemValue(table, c, v)
	}
	return out
}

// systemValue is the value the system holds for v in column c of table.
func systemValue(table, c string, v crdt.Value) crdt.Value {
	switch {
	case table == PairsTable && c == "note" && v.Kind() == crdt.KindString:
		for sys, coll := range mappedNotes {
			if v.AsString() == coll {
				return crdt.String(sys)
			}
		}
	case table == TypesTable && c == "b_bool" && v.Kind() == crdt.KindBool:
		if v.AsBool() {
			return crdt.String("Y")
		}
		return crdt.String("N")
	}
	return v
}

// collectionValue is the value of column c of table that the system holds
// as v.
func collectionValue(table, c string, v crdt.Value) (crdt.Value, error) {
	switch {
	case table == PairsTable && c == "note" && v.Kind() == crdt.KindString:
		if coll, ok := mappedNotes[v.AsString()]; ok {
			return crdt.String(coll), nil
		}
		if slices.Contains(slices.Collect(maps.Values(mappedNotes)), v.AsString()) {
			// An Apply that did not map the value back.
			return v, errors.Newf("note %q, which the value map stores under another text", v.AsString())
		}
	case table == TypesTable && c == "b_bool" && !v.IsNull():
		switch {
		case crdt.Equal(v, crdt.String("Y")):
			return crdt.Bool(true), nil
		case crdt.Equal(v, crdt.String("N")):
			return crdt.Bool(false), nil
		}
		return v, errors.Newf("%s, not 'Y' or 'N'", v)
	}
	return v, nil
}

// Rows reads the system's rows of table and names them back.
func (s *mappedSystem) Rows(ctx context.Context, table string) ([]crdt.Row, error) {
	if _, ok := s.specs[table]; !ok {
		return nil, errors.Newf("unknown table %s", table)
	}
	rows, err := s.inner.Rows(ctx, mappedTablePrefix+table)
	if err != nil {
		return nil, err
	}
	out := make([]crdt.Row, len(rows))
	for i, row := range rows {
		r := make(crdt.Row, len(row))
		for c, v := range row {
			name, ok := strings.CutPrefix(c, mappedColumnPrefix)
			if !ok {
				return nil, errors.Newf("table %s%s: column %s has no %s prefix", mappedTablePrefix, table, c, mappedColumnPrefix)
			}
			if r[name], err = collectionValue(table, name, v); err != nil {
				return nil, errors.Wrapf(err, "table %s%s column %s", mappedTablePrefix, table, c)
			}
		}
		out[i] = r
	}
	return out, nil
}
