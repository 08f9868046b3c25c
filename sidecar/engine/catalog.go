package engine

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// CatalogConfig is what the node's config says about collections, beside
// what the adapter reports.
type CatalogConfig struct {
	// Strict maps only the collections listed in Collections.
	Strict bool
	// Collections are the configured collections by name.
	Collections map[string]CollectionConfig
}

// CollectionConfig is the configured key and value kinds of one
// collection (config collections.NAME).
type CollectionConfig struct {
	Key      []string
	KeyTypes []string
	// FieldTypes maps fields to their declared kind (for OR-set fields,
	// the element kind).
	FieldTypes map[string]string
}

// Mapping is what the engine knows of one collection beyond its merge rules:
// its key columns and the kinds of its values, from the adapter's discovery
// or the config. It is immutable once built.
type Mapping struct {
	Name     string
	Key      []string
	KeyKinds []crdt.Kind
	Kinds    map[string]crdt.Kind // field -> kind (list fields: KindList)
	Elems    map[string]crdt.Kind // list field -> element kind
	Synced   bool                 // the adapter holds this collection
	// NotNull lists the non-key columns the system refuses null in.
	NotNull map[string]bool
	// jsonSets lists OR-set fields the system keeps in a JSON column as an
	// array: captured arrays become sets, applied sets become arrays.
	jsonSets map[string]bool
}

// Catalog maps the system's catalog (its tables and columns) to
// collections. It is immutable once built: a catalog change builds a new
// one (NewCatalog) and the engine swaps it in (Engine.SetCatalog).
type Catalog struct {
	strict bool
	colls  map[string]*Mapping
}

// NewCatalog maps the tables an adapter reports, and the collections the
// config lists, under schema.
func NewCatalog(cfg CatalogConfig, schema *crdt.Schema, tables []adapters.Table) (*Catalog, error) {
	ti := &Catalog{strict: cfg.Strict, colls: map[string]*Mapping{}}
	for _, t := range tables {
		if cfg.Strict {
			if _, listed := cfg.Collections[t.Name]; !listed {
				continue
			}
		}
		ci := &Mapping{Name: t.Name, Key: slices.Clone(t.Key), Kinds: map[string]crdt.Kind{}, Elems: map[string]crdt.Kind{}, Synced: true}
		ci.KeyKinds = t.KeyKinds()
		col, err := schema.Collection(t.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range t.Columns {
			if !c.Nullable && !slices.Contains(t.Key, c.Name) {
				if ci.NotNull == nil {
					ci.NotNull = map[string]bool{}
				}
				ci.NotNull[c.Name] = true
			}
			switch {
			case c.Kind == crdt.KindJSON && col.Policy(c.Name).Kind == crdt.ORSet:
				if ci.jsonSets == nil {
					ci.jsonSets = map[string]bool{}
				}
				ci.jsonSets[c.Name] = true
				ci.Kinds[c.Name], ci.Elems[c.Name] = crdt.KindList, crdt.KindNull
			case c.Kind == crdt.KindList:
				ci.Kinds[c.Name], ci.Elems[c.Name] = c.Kind, c.Elem
			default:
				ci.Kinds[c.Name] = c.Kind
			}
		}
		if cc, ok := cfg.Collections[t.Name]; ok && len(cc.Key) > 0 && !slices.Equal(cc.Key, t.Key) {
			return nil, errors.WithHint(
				errors.Newf("config collections.%s.key: %v does not match the primary key %v the system reports", t.Name, cc.Key, t.Key),
				"remove key from the config or make it match the table")
		}
		ti.colls[t.Name] = ci
	}
	for name, cc := range cfg.Collections {
		ci := ti.colls[name]
		if ci == nil {
			ci = &Mapping{Name: name, Key: slices.Clone(cc.Key), Kinds: map[string]crdt.Kind{}, Elems: map[string]crdt.Kind{}}
			for i := range cc.Key {
				k := crdt.KindString
				if i < len(cc.KeyTypes) {
					k, _ = crdt.ParseKind(cc.KeyTypes[i])
				}
				ci.KeyKinds = append(ci.KeyKinds, k)
			}
			ti.colls[name] = ci
		}
		col, err := schema.Collection(name)
		if err != nil {
			return nil, err
		}
		for f, typ := range cc.FieldTypes {
			if typ == "" {
				continue
			}
			k, _ := crdt.ParseKind(typ)
			if col.Policy(f).Kind == crdt.ORSet {
				if _, known := ci.Elems[f]; !known {
					ci.Kinds[f] = crdt.KindList
					ci.Elems[f] = k
				}
			} else if _, known := ci.Kinds[f]; !known {
				ci.Kinds[f] = k
			}
		}
	}
	return ti, nil
}

// Names returns the collections the catalog maps, sorted: the system's
// tables and the config's collections.
func (ti *Catalog) Names() []string {
	out := make([]string, 0, len(ti.colls))
	for n := range ti.colls {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Lookup returns what is known of a collection. Unknown collections get a
// single string key column "id" unless the schema is strict.
func (ti *Catalog) Lookup(name string) (*Mapping, error) {
	if ci, ok := ti.colls[name]; ok {
		return ci, nil
	}
	if ti.strict {
		return nil, errors.Mark(errors.WithHint(errors.Newf("unknown collection %q", name),
			"list it under collections in the config, or turn strict off"), crdt.ErrUnknownCollection)
	}
	if err := crdt.ValidateName(name); err != nil {
		return nil, errors.Mark(err, crdt.ErrUnknownCollection)
	}
	return &Mapping{Name: name, Key: []string{"id"}, KeyKinds: []crdt.Kind{crdt.KindString},
		Kinds: map[string]crdt.Kind{}, Elems: map[string]crdt.Kind{}}, nil
}

// Collections returns the names of the collections the catalog maps,
// sorted.
func (ti *Catalog) Collections() []string {
	return slices.Sorted(maps.Keys(ti.colls))
}

// Gains lists the synced collections in next that prev did not sync (new
// tables), and those that gained columns (by collection name). prev may be
// nil.
func Gains(prev, next *Catalog) (newTables, newColumns []string) {
	for name, ci := range next.colls {
		if !ci.Synced {
			continue
		}
		var pc *Mapping
		if prev != nil {
			pc = prev.colls[name]
		}
		if pc == nil || !pc.Synced {
			newTables = append(newTables, name)
			continue
		}
		for f := range ci.Kinds {
			if _, ok := pc.Kinds[f]; !ok {
				newColumns = append(newColumns, name)
				break
			}
		}
	}
	slices.Sort(newTables)
	slices.Sort(newColumns)
	return newTables, newColumns
}

// Unknown lists the tables ("t") and columns ("t.c") that captured changes
// name and the catalog does not map: a sign that the system's catalog
// changed since it was built.
func (ti *Catalog) Unknown(changes []adapters.Change) []string {
	var unknown []string
	for _, c := range changes {
		ci, ok := ti.colls[c.Collection]
		if !ok || !ci.Synced {
			unknown = append(unknown, c.Collection)
			continue
		}
		for _, row := range []crdt.Row{c.Row, c.Old} {
			for f := range row {
				if _, ok := ci.Kinds[f]; !ok {
					unknown = append(unknown, c.Collection+"."+f)
				}
			}
		}
	}
	return unknown
}

// ParseKey parses the text form of a key (as in a URL).
func (ci *Mapping) ParseKey(text string) (crdt.Key, error) {
	if len(ci.Key) == 0 {
		return "", errors.WithHint(errors.Newf("collection %s has no key columns", ci.Name),
			"list them under collections."+ci.Name+".key")
	}
	return crdt.ParseKeyText(text, ci.KeyKinds)
}

// KeyRow returns the key columns of k as a row.
func (ci *Mapping) KeyRow(k crdt.Key) (crdt.Row, error) {
	return (&crdt.Collection{Name: ci.Name, Key: ci.Key}).KeyRow(k)
}

// StripKey returns row without its key columns (they are the record's key,
// not fields).
func (ci *Mapping) StripKey(row crdt.Row) crdt.Row {
	if row == nil {
		return nil
	}
	out := make(crdt.Row, len(row))
	for f, v := range row {
		if !slices.Contains(ci.Key, f) {
			out[f] = v
		}
	}
	return out
}

// Value converts a JSON value for field f, using the field's known kind or
// inferring one from the JSON type.
func (ci *Mapping) Value(f string, raw json.RawMessage) (crdt.Value, error) {
	k, ok := ci.Kinds[f]
	if !ok {
		k = crdt.KindNull
	}
	v, err := crdt.FromJSON(raw, k, ci.Elems[f])
	if err != nil {
		return crdt.Value{}, errors.Wrapf(err, "field %s", f)
	}
	return v, nil
}

// Elem converts one OR-set element for field f.
func (ci *Mapping) Elem(f string, raw json.RawMessage) (crdt.Value, error) {
	k := ci.Elems[f]
	v, err := crdt.FromJSON(raw, k, crdt.KindNull)
	if err != nil {
		return crdt.Value{}, errors.Wrapf(err, "field %s element", f)
	}
	if v.Kind() == crdt.KindList {
		return crdt.Value{}, errors.Newf("field %s: set elements cannot be lists", f)
	}
	return v, nil
}

// FromSystem converts a captured row to the values the store merges: JSON
// arrays of OR-set fields kept in JSON columns become sets. A JSON document
// that is not an array is kept as it is, and the OR-set rejects it.
func (ci *Mapping) FromSystem(row crdt.Row) crdt.Row {
	if row == nil || len(ci.jsonSets) == 0 {
		return row
	}
	for f := range ci.jsonSets {
		v, ok := row[f]
		if !ok || v.Kind() != crdt.KindJSON {
			continue
		}
		if l, err := crdt.FromJSON(json.RawMessage(v.AsString()), crdt.KindNull, crdt.KindNull); err == nil && l.Kind() == crdt.KindList {
			row[f] = l
		}
	}
	return row
}

// ToSystem converts a merged row to what the system stores: sets of OR-set
// fields kept in JSON columns become JSON arrays (in canonical order).
func (ci *Mapping) ToSystem(row crdt.Row) (crdt.Row, error) {
	for f := range ci.jsonSets {
		v, ok := row[f]
		if !ok || v.Kind() != crdt.KindList {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, errors.Wrapf(err, "field %s", f)
		}
		if row[f], err = crdt.JSON(b); err != nil {
			return nil, errors.Wrapf(err, "field %s", f)
		}
	}
	return row, nil
}
