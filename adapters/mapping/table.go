package mapping

import (
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Table returns the system table's name.
func (tm *TableMap) Table() string { return tm.table }

// Collection returns the name of the collection the table holds.
func (tm *TableMap) Collection() string { return tm.collection }

// NaturalKey returns the natural key columns (KeyConfig.Natural), or nil.
func (tm *TableMap) NaturalKey() []string { return slices.Clone(tm.natural) }

// IDMap returns the prefix of the collection keys minted from the table's
// local keys (KeyConfig.IDMap), or "" when the table has no ID map.
func (tm *TableMap) IDMap() string { return tm.idMap }

// Field returns the field a system column holds: its configured field, or
// the column's own name when the config does not list it. It reports false
// for a local column and for a column computed by to_system.
func (tm *TableMap) Field(column string) (string, bool) {
	c := tm.columns[column]
	switch {
	case c == nil:
		return column, true
	case c.local || c.toSystem != nil:
		return "", false
	}
	return c.field, true
}

// Column returns the system column that holds a field: the column the config
// maps to it, or the column of the same name when neither a listed column
// nor an expression produces the field. It reports false for a computed
// field and for a name that a listed column gives up (renamed, local, or
// computed by to_system).
func (tm *TableMap) Column(field string) (string, bool) {
	if c := tm.byField[field]; c != nil {
		return c.name, true
	}
	if tm.isComputed[field] || tm.columns[field] != nil {
		return "", false
	}
	return field, true
}

// References returns, by system column, the collection whose keys the
// column holds (ColumnConfig.References).
func (tm *TableMap) References() map[string]string {
	out := map[string]string{}
	for name, c := range tm.columns {
		if c.ref != "" {
			out[name] = c.ref
		}
	}
	return out
}

// forward maps a system value of c to its field's value.
func (c *column) forward(v crdt.Value) (crdt.Value, error) {
	if v.IsNull() {
		return v, nil
	}
	var err error
	if c.conv != nil {
		if v, err = c.conv.forward(v); err != nil {
			return crdt.Value{}, err
		}
	}
	if c.values != nil {
		return c.values.toCollection(v)
	}
	return v, nil
}

// back maps a field's value to c's system value.
func (c *column) back(v crdt.Value) (crdt.Value, error) {
	if v.IsNull() {
		return v, nil
	}
	var err error
	if c.values != nil {
		if v, err = c.values.toSystem(v); err != nil {
			return crdt.Value{}, err
		}
	}
	if c.conv != nil {
		return c.conv.back(v)
	}
	return v, nil
}

// ToCollection translates a system row (system column names, key columns
// included) into a collection row (field names): columns renamed, values
// mapped and converted, computed fields evaluated, local columns and columns
// computed by to_system dropped. A column missing from the row (a value the
// capture did not report, unchanged) leaves its field missing, and so does a
// computed field that reads a missing column; a computed field whose
// columns are all null is null. A value that a value map or a conversion refuses, or
// an expression that fails, is an error naming the table, the column and the
// value.
func (tm *TableMap) ToCollection(row crdt.Row) (crdt.Row, error) {
	if row == nil {
		return nil, nil
	}
	out := make(crdt.Row, len(row)+len(tm.computed))
	for name, v := range row {
		field := name
		if c := tm.columns[name]; c != nil {
			if c.local || c.toSystem != nil {
				continue
			}
			var err error
			if v, err = c.forward(v); err != nil {
				return nil, errors.Wrapf(err, "table %s column %s value %s", tm.table, name, row[name])
			}
			field = c.field
		}
		if _, dup := out[field]; dup {
			return nil, errors.Newf("table %s: field %s is produced by two columns (%s and another)", tm.table, field, name)
		}
		out[field] = v
	}
	for _, cf := range tm.computed {
		v, ok, err := evalOver(cf.expr, row, cf.kind, true)
		if err != nil {
			return nil, errors.Wrapf(err, "table %s field %s", tm.table, cf.field)
		}
		if !ok {
			continue
		}
		if _, dup := out[cf.field]; dup {
			return nil, errors.Newf("table %s: field %s is produced by a column and an expression", tm.table, cf.field)
		}
		out[cf.field] = v
	}
	return out, nil
}

// ToSystem translates a collection row (field names) into a system row
// (system column names), the inverse of ToCollection: fields renamed back,
// values mapped and converted back, columns with a to_system expression
// evaluated. Fields without a column (computed fields, names a listed
// column gives up) are left out. A null stays null; a to_system expression
// reads a missing field as null, and gives null when all it reads is null. A value that a
// value map or a conversion refuses, or an expression that fails, is an
// error naming the table, the column and the value.
func (tm *TableMap) ToSystem(row crdt.Row) (crdt.Row, error) {
	if row == nil {
		return nil, nil
	}
	out := make(crdt.Row, len(row)+len(tm.toSystem))
	for field, v := range row {
		if c := tm.byField[field]; c != nil {
			sv, err := c.back(v)
			if err != nil {
				return nil, errors.Wrapf(err, "table %s column %s value %s", tm.table, c.name, v)
			}
			out[c.name] = sv
			continue
		}
		if tm.isComputed[field] || tm.columns[field] != nil {
			continue
		}
		out[field] = v
	}
	for _, c := range tm.toSystem {
		v, _, err := evalOver(c.toSystem, row, crdt.KindNull, false)
		if err != nil {
			return nil, errors.Wrapf(err, "table %s column %s", tm.table, c.name)
		}
		out[c.name] = v
	}
	return out, nil
}

// evalOver evaluates e over row. A missing input gives no value (ok false)
// when missingOut, and counts as null otherwise. When every input is null
// the result is null and e does not run; otherwise nulls are visible to e.
func evalOver(e *expr, row crdt.Row, want crdt.Kind, missingOut bool) (v crdt.Value, ok bool, err error) {
	allNull := len(e.inputs) > 0
	for _, in := range e.inputs {
		x, present := row[in]
		if !present && missingOut {
			return crdt.Value{}, false, nil
		}
		if present && !x.IsNull() {
			allNull = false
		}
	}
	if allNull {
		return crdt.Null(), true, nil
	}
	v, err = e.eval(row, want)
	return v, err == nil, err
}

// Describe returns the system table t as the collection the engine sees:
// named after the collection, columns renamed to their fields with their
// kinds after conversion, computed fields added with their kinds, local
// columns and columns computed by to_system left out, key columns renamed.
// It fails, naming the config key, when the config names a column t lacks,
// when a conversion does not take the column's kind, when a field is
// produced twice, or when a key column is mapped in a way keys cannot be.
func (tm *TableMap) Describe(t adapters.Table) (adapters.Table, error) {
	path := tablePath(tm.table)
	if t.Name != tm.table {
		return adapters.Table{}, errors.AssertionFailedf("describe table %s with the mapping of table %s", t.Name, tm.table)
	}
	for name, c := range tm.columns {
		// The adapter leaves local columns out of what it reports (it
		// checked them against the table: adapters.Options.Local).
		if t.Column(name) == nil && !c.local {
			return adapters.Table{}, configError(path+".columns."+name, "name the column as the system does, or drop it",
				"table %s has no column %s", tm.table, name)
		}
	}
	for _, cf := range tm.computed {
		for _, in := range cf.expr.inputs {
			if t.Column(in) == nil {
				return adapters.Table{}, configError(path+".fields."+cf.field+".from", "read columns of the table by their system names",
					"table %s has no column %s", tm.table, in)
			}
		}
	}
	if len(tm.natural) > 0 && !slices.Equal(t.Key, tm.natural) {
		return adapters.Table{}, configError(path+".key.natural", "pass NaturalKeys to the adapter (adapters.Options.Keys)",
			"table %s is keyed by %v, not by the natural key %v", tm.table, t.Key, tm.natural)
	}
	out := adapters.Table{Name: tm.collection, Key: make([]string, len(t.Key))}
	for i, k := range t.Key {
		if err := tm.checkKeyColumn(path+".columns."+k, k); err != nil {
			return adapters.Table{}, err
		}
		out.Key[i], _ = tm.Field(k)
	}
	produced := map[string]string{} // field -> what produces it
	for _, col := range t.Columns {
		c := tm.columns[col.Name]
		field := col.Name
		if c != nil {
			cp := path + ".columns." + col.Name
			switch {
			case c.local:
				continue
			case c.toSystem != nil:
				if !outputFits(c.toSystem.out, col.Kind) {
					return adapters.Table{}, configError(cp+".to_system", "make the expression give the column's type",
						"the expression gives %s, column %s holds %s", c.toSystem.out, col.Name, col.Kind)
				}
				continue
			}
			if c.conv != nil {
				if col.Kind != c.conv.system {
					return adapters.Table{}, configError(cp+".convert", "pick the conversion for the column's type ("+conversionNames+")",
						"convert %s takes %s values, column %s holds %s", c.conv.name, c.conv.system, col.Name, col.Kind)
				}
				col.Kind = c.conv.collection
			}
			if c.values != nil && col.Kind != crdt.KindString {
				return adapters.Table{}, configError(cp+".values", "a value map applies to text; for integers add convert: text",
					"column %s holds %s values", col.Name, col.Kind)
			}
			field = c.field
		}
		if by, dup := produced[field]; dup {
			return adapters.Table{}, configError(path, "map each field from one column or one expression",
				"field %s is produced by column %s and by %s", field, col.Name, by)
		}
		produced[field] = "column " + col.Name
		col.Name = field
		out.Columns = append(out.Columns, col)
	}
	for _, cf := range tm.computed {
		if by, dup := produced[cf.field]; dup {
			return adapters.Table{}, configError(path+".fields."+cf.field, "map each field from one column or one expression",
				"field %s is produced by an expression and by %s", cf.field, by)
		}
		produced[cf.field] = "an expression"
		out.Columns = append(out.Columns, adapters.Column{Name: cf.field, Kind: cf.kind, Type: "expression", Nullable: true})
	}
	for _, c := range tm.toSystem {
		for _, in := range c.toSystem.inputs {
			if _, ok := produced[in]; !ok {
				return adapters.Table{}, configError(path+".columns."+c.name+".to_system", "read fields of the collection by their names",
					"collection %s has no field %s", tm.collection, in)
			}
		}
	}
	return out, nil
}
