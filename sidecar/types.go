package sidecar

import (
	"encoding/json"
	"slices"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// collInfo is what the agent knows of one collection beyond its merge rules:
// its key columns and the kinds of its values, from the adapter's discovery
// or the config.
type collInfo struct {
	name     string
	key      []string
	keyKinds []crdt.Kind
	kinds    map[string]crdt.Kind // field -> kind (list fields: KindList)
	elems    map[string]crdt.Kind // list field -> element kind
	synced   bool                 // the adapter holds this collection
	// notNull lists the non-key columns the system refuses null in.
	notNull map[string]bool
	// jsonSets lists OR-set fields the system keeps in a JSON column as an
	// array: captured arrays become sets, applied sets become arrays.
	jsonSets map[string]bool
}

type typeInfo struct {
	strict bool
	colls  map[string]*collInfo
}

func newTypeInfo(cfg Config, schema *crdt.Schema, tables []adapters.Table) (*typeInfo, error) {
	ti := &typeInfo{strict: cfg.Strict, colls: map[string]*collInfo{}}
	for _, t := range tables {
		if cfg.Strict {
			if _, listed := cfg.Collections[t.Name]; !listed {
				continue
			}
		}
		ci := &collInfo{name: t.Name, key: slices.Clone(t.Key), kinds: map[string]crdt.Kind{}, elems: map[string]crdt.Kind{}, synced: true}
		ci.keyKinds = t.KeyKinds()
		col, err := schema.Collection(t.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range t.Columns {
			if !c.Nullable && !slices.Contains(t.Key, c.Name) {
				if ci.notNull == nil {
					ci.notNull = map[string]bool{}
				}
				ci.notNull[c.Name] = true
			}
			switch {
			case c.Kind == crdt.KindJSON && col.Policy(c.Name).Kind == crdt.ORSet:
				if ci.jsonSets == nil {
					ci.jsonSets = map[string]bool{}
				}
				ci.jsonSets[c.Name] = true
				ci.kinds[c.Name], ci.elems[c.Name] = crdt.KindList, crdt.KindNull
			case c.Kind == crdt.KindList:
				ci.kinds[c.Name], ci.elems[c.Name] = c.Kind, c.Elem
			default:
				ci.kinds[c.Name] = c.Kind
			}
		}
		if cc, ok := cfg.Collections[t.Name]; ok && len(cc.Key) > 0 && !slices.Equal(cc.Key, t.Key) {
			return nil, errors.WithHint(
				keyErr("collections."+t.Name+".key", "%v does not match the primary key %v the system reports", cc.Key, t.Key),
				"remove key from the config or make it match the table")
		}
		ti.colls[t.Name] = ci
	}
	for name, cc := range cfg.Collections {
		ci := ti.colls[name]
		if ci == nil {
			ci = &collInfo{name: name, key: slices.Clone(cc.Key), kinds: map[string]crdt.Kind{}, elems: map[string]crdt.Kind{}}
			for i := range cc.Key {
				k := crdt.KindString
				if i < len(cc.KeyTypes) {
					k, _ = crdt.ParseKind(cc.KeyTypes[i])
				}
				ci.keyKinds = append(ci.keyKinds, k)
			}
			ti.colls[name] = ci
		}
		col, err := schema.Collection(name)
		if err != nil {
			return nil, err
		}
		for f, fc := range cc.Fields {
			if fc.Type == "" {
				continue
			}
			k, _ := crdt.ParseKind(fc.Type)
			if col.Policy(f).Kind == crdt.ORSet {
				if _, known := ci.elems[f]; !known {
					ci.kinds[f] = crdt.KindList
					ci.elems[f] = k
				}
			} else if _, known := ci.kinds[f]; !known {
				ci.kinds[f] = k
			}
		}
	}
	return ti, nil
}

// lookup returns what is known of a collection. Unknown collections get a
// single string key column "id" unless the schema is strict.
func (ti *typeInfo) lookup(name string) (*collInfo, error) {
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
	return &collInfo{name: name, key: []string{"id"}, keyKinds: []crdt.Kind{crdt.KindString},
		kinds: map[string]crdt.Kind{}, elems: map[string]crdt.Kind{}}, nil
}

// parseKey parses the text form of a key (as in a URL).
func (ci *collInfo) parseKey(text string) (crdt.Key, error) {
	if len(ci.key) == 0 {
		return "", errors.WithHint(errors.Newf("collection %s has no key columns", ci.name),
			"list them under collections."+ci.name+".key")
	}
	return crdt.ParseKeyText(text, ci.keyKinds)
}

// keyRow returns the key columns of k as a row.
func (ci *collInfo) keyRow(k crdt.Key) (crdt.Row, error) {
	return (&crdt.Collection{Name: ci.name, Key: ci.key}).KeyRow(k)
}

// stripKey returns row without its key columns (they are the record's key,
// not fields).
func (ci *collInfo) stripKey(row crdt.Row) crdt.Row {
	if row == nil {
		return nil
	}
	out := make(crdt.Row, len(row))
	for f, v := range row {
		if !slices.Contains(ci.key, f) {
			out[f] = v
		}
	}
	return out
}

// value converts a JSON value for field f, using the field's known kind or
// inferring one from the JSON type.
func (ci *collInfo) value(f string, raw json.RawMessage) (crdt.Value, error) {
	k, ok := ci.kinds[f]
	if !ok {
		k = crdt.KindNull
	}
	v, err := crdt.FromJSON(raw, k, ci.elems[f])
	if err != nil {
		return crdt.Value{}, errors.Wrapf(err, "field %s", f)
	}
	return v, nil
}

// elem converts one OR-set element for field f.
func (ci *collInfo) elem(f string, raw json.RawMessage) (crdt.Value, error) {
	k := ci.elems[f]
	v, err := crdt.FromJSON(raw, k, crdt.KindNull)
	if err != nil {
		return crdt.Value{}, errors.Wrapf(err, "field %s element", f)
	}
	if v.Kind() == crdt.KindList {
		return crdt.Value{}, errors.Newf("field %s: set elements cannot be lists", f)
	}
	return v, nil
}

// fromSystem converts a captured row to the values the store merges: JSON
// arrays of OR-set fields kept in JSON columns become sets. A JSON document
// that is not an array is kept as it is, and the OR-set rejects it.
func (ci *collInfo) fromSystem(row crdt.Row) crdt.Row {
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

// toSystem converts a merged row to what the system stores: sets of OR-set
// fields kept in JSON columns become JSON arrays (in canonical order).
func (ci *collInfo) toSystem(row crdt.Row) (crdt.Row, error) {
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
