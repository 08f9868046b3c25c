package mapping

import (
	"sort"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// valueMap is a bijective map between system texts and collection texts,
// extended to every text by the identity on the texts it names on neither
// side: a text it names only on the other side is refused, since mapping it
// back would give a different text.
type valueMap struct {
	forward map[string]string // system -> collection
	back    map[string]string // collection -> system
}

// newValueMap checks that m is bijective and returns it with its inverse.
// The error names the two system values that clash, in sorted order.
func newValueMap(m map[string]string) (*valueMap, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vm := &valueMap{forward: m, back: make(map[string]string, len(m))}
	for _, k := range keys {
		v := m[k]
		if prev, dup := vm.back[v]; dup {
			return nil, errors.Newf("%q and %q both map to %q", prev, k, v)
		}
		vm.back[v] = k
	}
	return vm, nil
}

// toCollection maps a system value; null passes.
func (m *valueMap) toCollection(v crdt.Value) (crdt.Value, error) {
	return m.apply(v, m.forward, m.back, "collection")
}

// toSystem maps a collection value; null passes.
func (m *valueMap) toSystem(v crdt.Value) (crdt.Value, error) {
	return m.apply(v, m.back, m.forward, "system")
}

func (m *valueMap) apply(v crdt.Value, to, other map[string]string, side string) (crdt.Value, error) {
	if v.IsNull() {
		return v, nil
	}
	if v.Kind() != crdt.KindString {
		return crdt.Value{}, errors.Newf("a value map applies to text, got %s %s", v.Kind(), v)
	}
	s := v.AsString()
	if out, ok := to[s]; ok {
		return crdt.String(out), nil
	}
	if _, ok := other[s]; ok {
		return crdt.Value{}, errors.Newf("%q is not in the value map but is the %s value of %q: it would not map back to itself", s, side, other[s])
	}
	return v, nil
}
