package mapping

import (
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Map is a compiled Config: the mapping of every table it names, ready to
// translate rows. It is immutable and safe for concurrent use.
type Map struct {
	tables       map[string]*TableMap
	byCollection map[string]*TableMap
}

// TableMap maps one system table to its collection. It is immutable and
// safe for concurrent use.
type TableMap struct {
	table      string
	collection string
	columns    map[string]*column // listed columns, by system name
	byField    map[string]*column // listed columns that hold a field, by field
	computed   []*computed        // sorted by field
	isComputed map[string]bool
	toSystem   []*column // columns with a to_system expression, sorted by name
	natural    []string
	idMap      string
}

// column is a compiled ColumnConfig.
type column struct {
	name     string
	field    string
	local    bool
	def      crdt.Value
	values   *valueMap
	conv     *conversion
	toSystem *expr
	ref      string
}

// computed is a compiled FieldExpr.
type computed struct {
	field string
	expr  *expr
	kind  crdt.Kind
}

// Compile validates cfg and compiles it. Its errors name the offending key
// (mapping.tables.<table>.columns.<column>.values) and carry a hint.
func Compile(cfg Config) (*Map, error) {
	m := &Map{tables: map[string]*TableMap{}, byCollection: map[string]*TableMap{}}
	names := make([]string, 0, len(cfg.Tables))
	for name := range cfg.Tables {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		tm, err := compileTable(name, cfg.Tables[name])
		if err != nil {
			return nil, err
		}
		if prev, dup := m.byCollection[tm.collection]; dup {
			return nil, configError(tablePath(name)+".collection",
				"give each table its own collection: a system holds a collection in one table",
				"tables %s and %s both map to collection %s", prev.table, name, tm.collection)
		}
		m.tables[name] = tm
		m.byCollection[tm.collection] = tm
	}
	return m, nil
}

func tablePath(table string) string { return "mapping.tables." + table }

// configError returns an error about the config key at path, with a hint.
func configError(path, hint, format string, args ...any) error {
	return errors.WithHint(errors.Newf("%s: %s", path, errors.Newf(format, args...).Error()), hint)
}

// wrapConfig returns err about the config key at path, with a hint.
func wrapConfig(err error, path, hint string) error {
	return errors.WithHint(errors.Wrap(err, path), hint)
}

func compileTable(name string, tc TableConfig) (*TableMap, error) {
	path := tablePath(name)
	if name == "" {
		return nil, configError(path, "name the table as the system does", "empty table name")
	}
	tm := &TableMap{
		table:      name,
		collection: tc.Collection,
		columns:    map[string]*column{},
		byField:    map[string]*column{},
		isComputed: map[string]bool{},
	}
	if tm.collection == "" {
		tm.collection = name
	}
	colNames := make([]string, 0, len(tc.Columns))
	for c := range tc.Columns {
		colNames = append(colNames, c)
	}
	sort.Strings(colNames)
	for _, cn := range colNames {
		c, err := compileColumn(path+".columns."+cn, cn, tc.Columns[cn])
		if err != nil {
			return nil, err
		}
		tm.columns[cn] = c
		switch {
		case c.toSystem != nil:
			tm.toSystem = append(tm.toSystem, c)
		case !c.local:
			if prev, dup := tm.byField[c.field]; dup {
				return nil, configError(path+".columns."+cn+".field", "map each field from one column",
					"columns %s and %s both map to field %s", prev.name, cn, c.field)
			}
			tm.byField[c.field] = c
		}
	}
	fieldNames := make([]string, 0, len(tc.Fields))
	for f := range tc.Fields {
		fieldNames = append(fieldNames, f)
	}
	sort.Strings(fieldNames)
	for _, f := range fieldNames {
		fp := path + ".fields." + f
		if f == "" {
			return nil, configError(fp, "name the field", "empty field name")
		}
		if c, dup := tm.byField[f]; dup {
			return nil, configError(fp, "map each field from one column or one expression",
				"field %s is also the field of column %s", f, c.name)
		}
		cf, err := compileField(fp, f, tc.Fields[f], tm.columns)
		if err != nil {
			return nil, err
		}
		tm.computed = append(tm.computed, cf)
		tm.isComputed[f] = true
	}
	if err := tm.compileKey(path+".key", tc.Key); err != nil {
		return nil, err
	}
	return tm, nil
}

func compileColumn(path, name string, cc ColumnConfig) (*column, error) {
	c := &column{name: name, field: cc.Field, local: cc.Local, ref: cc.References}
	if c.field == "" {
		c.field = name
	}
	mapped := cc.Field != "" || cc.Values != nil || cc.Convert != "" || cc.References != ""
	switch {
	case name == "":
		return nil, configError(path, "name the column as the system does", "empty column name")
	case cc.Local && (mapped || cc.ToSystem != ""):
		return nil, configError(path, "a local column is never synced: drop local, or drop field, values, convert, to_system and references",
			"column %s is both local and mapped", name)
	case cc.Default != nil && !cc.Local:
		return nil, configError(path+".default", "a default is the insert value of a local column: set local: true or drop default",
			"default on a column that is not local")
	case cc.ToSystem != "" && mapped:
		return nil, configError(path+".to_system", "a column computed by to_system has no field of its own: drop field, values, convert and references",
			"column %s has both to_system and a field mapping", name)
	case cc.References != "" && (cc.Values != nil || cc.Convert != ""):
		return nil, configError(path+".references", "a reference holds keys, translated through the ID map: drop values and convert",
			"reference column %s has values or convert", name)
	}
	if cc.Local {
		def, err := defaultValue(cc.Default)
		if err != nil {
			return nil, wrapConfig(err, path+".default", "give a YAML scalar: null, a boolean, a number, a string or a timestamp")
		}
		c.def = def
	}
	if cc.Convert != "" {
		conv, err := parseConversion(cc.Convert)
		if err != nil {
			return nil, wrapConfig(err, path+".convert", "known conversions: "+conversionNames)
		}
		c.conv = conv
	}
	if cc.Values != nil {
		if c.conv != nil && c.conv.collection != crdt.KindString {
			return nil, configError(path+".values", "a value map applies to text: combine it only with convert: text",
				"values with convert %s, which gives %s values", c.conv.name, c.conv.collection)
		}
		vm, err := newValueMap(cc.Values)
		if err != nil {
			return nil, wrapConfig(err, path+".values", "a value map must be bijective: give each system value its own collection value")
		}
		c.values = vm
	}
	if cc.ToSystem != "" {
		e, err := compileExpr(cc.ToSystem, fieldsVar)
		if err != nil {
			return nil, wrapConfig(err, path+".to_system", "write a CEL expression over fields, the collection row (fields.first_name + ' ' + fields.last_name)")
		}
		c.toSystem = e
	}
	return c, nil
}

func compileField(path, name string, fe FieldExpr, columns map[string]*column) (*computed, error) {
	e, err := compileExpr(fe.From, rowVar)
	if err != nil {
		return nil, wrapConfig(err, path+".from", "write a CEL expression over row, the system row (row.full_name.split(' ')[0])")
	}
	for _, in := range e.inputs {
		if c := columns[in]; c != nil && c.local {
			return nil, configError(path+".from", "a local column is never captured: an expression cannot read it",
				"the expression reads local column %s", in)
		}
	}
	cf := &computed{field: name, expr: e, kind: outputKind(e.out)}
	if fe.Type != "" {
		k, err := crdt.ParseKind(fe.Type)
		if err != nil || k == crdt.KindNull {
			return nil, configError(path+".type", "name a value kind: bool, int, float, string, bytes, time, json or list",
				"unknown field type %q", fe.Type)
		}
		if !outputFits(e.out, k) {
			return nil, configError(path+".type", "make the expression give the field's type, or fix the type",
				"the expression gives %s, not %s", e.out, k)
		}
		cf.kind = k
	}
	if cf.kind == crdt.KindNull {
		return nil, configError(path+".type", "set type: the expression's type is known only when it runs",
			"the expression's type is %s", e.out)
	}
	return cf, nil
}

func (tm *TableMap) compileKey(path string, kc KeyConfig) error {
	if len(kc.Natural) > 0 && kc.IDMap != "" {
		return configError(path, "a table is keyed by a natural key or by an ID map, not both", "both natural and id_map")
	}
	if strings.Contains(kc.IDMap, ":") {
		return configError(path+".id_map", "the prefix ends at the first ':' of a minted key: drop the ':'",
			"id_map prefix %q contains ':'", kc.IDMap)
	}
	tm.idMap = kc.IDMap
	for i, k := range kc.Natural {
		if k == "" || slices.Contains(kc.Natural[:i], k) {
			return configError(path+".natural", "list each key column once, by its system name", "empty or repeated column %q", k)
		}
		if err := tm.checkKeyColumn(path+".natural", k); err != nil {
			return err
		}
	}
	tm.natural = slices.Clone(kc.Natural)
	return nil
}

// checkKeyColumn refuses a key column whose values the mapping changes: keys
// must be the same values in the system and in the collection.
func (tm *TableMap) checkKeyColumn(path, name string) error {
	c := tm.columns[name]
	if c == nil {
		return nil
	}
	if c.local || c.values != nil || c.conv != nil || c.toSystem != nil || c.ref != "" {
		return configError(path, "a key column may be renamed, but not local, mapped by values or convert, computed, or a reference",
			"key column %s is local, value-mapped, converted, computed or a reference", name)
	}
	return nil
}

// defaultValue converts a YAML scalar to a value.
func defaultValue(x any) (crdt.Value, error) {
	switch v := x.(type) {
	case nil:
		return crdt.Null(), nil
	case bool:
		return crdt.Bool(v), nil
	case int:
		return crdt.Int(int64(v)), nil
	case int64:
		return crdt.Int(v), nil
	case uint64:
		if v > math.MaxInt64 {
			return crdt.Value{}, errors.Newf("integer %d out of range", v)
		}
		return crdt.Int(int64(v)), nil
	case float64:
		return crdt.Float(v), nil
	case string:
		return crdt.String(v), nil
	case time.Time:
		return crdt.Time(v), nil
	}
	return crdt.Value{}, errors.Newf("a default of type %T is not a scalar", x)
}

// Table returns the mapping of a system table, or nil when the config does
// not name it: the table is then synced as it is.
func (m *Map) Table(systemTable string) *TableMap { return m.tables[systemTable] }

// ByCollection returns the mapping of the table that holds a collection, or
// nil when no table is mapped to it: the table of the same name, if any,
// holds it as it is.
func (m *Map) ByCollection(name string) *TableMap { return m.byCollection[name] }

// Tables returns the system tables the map names, sorted.
func (m *Map) Tables() []string { return slices.Sorted(maps.Keys(m.tables)) }

// Local returns, by system table, the local columns and the values an insert
// gives them (null: the column's own default), for adapters.Options.Local.
func (m *Map) Local() map[string]map[string]crdt.Value {
	out := map[string]map[string]crdt.Value{}
	for name, tm := range m.tables {
		for cn, c := range tm.columns {
			if !c.local {
				continue
			}
			if out[name] == nil {
				out[name] = map[string]crdt.Value{}
			}
			out[name][cn] = c.def
		}
	}
	return out
}

// NaturalKeys returns, by system table, the natural key columns of the tables
// that have one, for adapters.Options.Keys.
func (m *Map) NaturalKeys() map[string][]string {
	out := map[string][]string{}
	for name, tm := range m.tables {
		if len(tm.natural) > 0 {
			out[name] = slices.Clone(tm.natural)
		}
	}
	return out
}
