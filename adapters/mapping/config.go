package mapping

// Config is a sidecar's mapping between its system's schema and the
// cluster's collections, under `mapping:` in the node config. Tables it does
// not list are synced as they are (identity: collection = table, field =
// column). Compile validates it.
type Config struct {
	// Tables maps system tables, by their name in the system.
	Tables map[string]TableConfig `yaml:"tables"`
}

// TableConfig maps one system table to one collection.
type TableConfig struct {
	// Collection is the collection the table holds (default: the table's
	// name). Two tables of one system may not hold the same collection.
	Collection string `yaml:"collection"`
	// Columns maps system columns, by their name in the system. A column not
	// listed maps to the field of the same name, unchanged.
	Columns map[string]ColumnConfig `yaml:"columns"`
	// Fields adds collection fields computed from the system row by a CEL
	// expression, by field name. Such a field has no column of its own: the
	// way back is a ColumnConfig.ToSystem expression on the columns it reads.
	Fields map[string]FieldExpr `yaml:"fields"`
	// Key says how the table's records are keyed in the collection (default:
	// by the table's primary key).
	Key KeyConfig `yaml:"key"`
}

// ColumnConfig maps one system column. At most one of Local, ToSystem and
// the mapping options (Field, Values, Convert, References) applies.
type ColumnConfig struct {
	// Field is the collection field the column holds (default: the column's
	// name).
	Field string `yaml:"field"`
	// Local keeps the column out of sync: it is never captured and never
	// written by an apply (adapters.Options.Local).
	Local bool `yaml:"local"`
	// Default, for a local column only, is the value an apply that inserts a
	// row gives the column (a NOT NULL column without a default of its own
	// needs one); null or unset lets the system's own column default apply.
	// A YAML scalar: null, a boolean, an integer, a float, a string or a
	// timestamp.
	Default any `yaml:"default"`
	// Values maps the column's text values to the field's, system value to
	// collection value ('A': 'Active'). It must be bijective on the values
	// it names: no two system values map to one collection value. A value it
	// does not name passes unchanged, unless it is one of the values the map
	// produces on the other side, which is an error (see the package doc).
	Values map[string]string `yaml:"values"`
	// Convert names a type conversion between the column's values and the
	// field's: int, text, bool:<true>/<false>, time:<Go layout>, time:unix,
	// time:unixms, cents, decimal:<digits> (see the package doc). With
	// Values, only text is allowed, and the map applies to the converted text.
	Convert string `yaml:"convert"`
	// ToSystem is a CEL expression over `fields` (the collection row) giving
	// the column's value on apply, for a column that has no field of its own
	// but is computed back from fields that FieldExpr expressions derive
	// from it (full_name from first_name and last_name). Such a column is
	// not captured as a field.
	ToSystem string `yaml:"to_system"`
	// References names the collection whose keys the column holds (an
	// order's customer_id holds keys of customers). Where that collection's
	// keys are minted through an ID map, the column's values are translated
	// through it both ways.
	References string `yaml:"references"`
}

// FieldExpr is a collection field computed from the system row.
type FieldExpr struct {
	// From is a CEL expression over `row` (the system row, by column name)
	// giving the field's value.
	From string `yaml:"from"`
	// Type is the kind of the field's values (a crdt.Kind name: bool, int,
	// float, string, bytes, time, json, list). It may be left out when the
	// expression's type is known without running it (split()[0] is a
	// string); it is required when the expression's type is dyn.
	Type string `yaml:"type"`
}

// KeyConfig says how a table's records are keyed in the collection. Natural
// and IDMap exclude each other; with neither, the table's primary key is the
// collection's key.
type KeyConfig struct {
	// Natural lists the columns, covered by a unique index over NOT NULL
	// columns, whose values key the records in every system (an email): the
	// system's own primary key then stays local (adapters.Options.Keys).
	Natural []string `yaml:"natural"`
	// IDMap keys the records by collection keys minted for them: a record
	// first seen in this system gets the key "<IDMap>:<local key>", and the
	// sidecar keeps the map between its local keys and collection keys
	// (adapters.IDMapper). The prefix must be unique in the cluster for the
	// collection, and must not contain ':'.
	IDMap string `yaml:"id_map"`
}
