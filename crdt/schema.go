package crdt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
)

// PolicyKind names a field's merge rule.
type PolicyKind uint8

// The merge rules. Their numbers enter schema fingerprints: never renumber.
const (
	// LWW keeps the value of the write with the highest stamp.
	LWW PolicyKind = iota
	// Prefer ranks writes by the system (source) that made them, in the
	// order of Policy.Prefer, and breaks ties by stamp.
	Prefer
	// ORSet is an add-wins observed-remove set of scalars.
	ORSet
	// Max keeps the largest value written; null never wins.
	Max
	// Min keeps the smallest value written; null never wins.
	Min
	// Counter is a PN-counter of integers or exact decimals: a change from
	// old to new is an increment of new - old owned by the writing
	// replica, and concurrent increments all count.
	Counter
	numPolicies
)

var policyNames = [numPolicies]string{"lww", "prefer", "orset", "max", "min", "counter"}

func (k PolicyKind) String() string {
	if k < numPolicies {
		return policyNames[k]
	}
	return "policy(" + strconv.Itoa(int(k)) + ")"
}

// ParsePolicyKind returns the PolicyKind named s.
func ParsePolicyKind(s string) (PolicyKind, error) {
	for i, n := range policyNames {
		if n == s {
			return PolicyKind(i), nil
		}
	}
	return 0, errors.WithHint(errors.Newf("unknown merge policy %q", s),
		"use one of lww, orset, max, min, counter, or {prefer: [source, ...]}")
}

// Policy is the merge rule of one field.
type Policy struct {
	Kind PolicyKind
	// Prefer lists sources (node names) from most to least trusted; only for
	// Kind == Prefer. Writes from unlisted sources rank below all listed ones.
	Prefer []string
}

func (p Policy) String() string {
	if p.Kind == Prefer {
		return "prefer[" + strings.Join(p.Prefer, ",") + "]"
	}
	return p.Kind.String()
}

// IsRegister reports whether the field holds a register of writes (every
// policy but ORSet and Counter).
func (p Policy) IsRegister() bool { return p.Kind != ORSet && p.Kind != Counter }

// rank returns the preference rank of a source: higher is more trusted.
func (p *Policy) rank(source string) int {
	if p.Kind != Prefer {
		return 0
	}
	for i, s := range p.Prefer {
		if s == source {
			return len(p.Prefer) - i
		}
	}
	return 0
}

func (p Policy) validate() error {
	if p.Kind >= numPolicies {
		return errors.Newf("unknown policy kind %d", p.Kind)
	}
	if p.Kind == Prefer {
		if len(p.Prefer) == 0 {
			return errors.WithHint(errors.New("prefer needs at least one source"),
				"list node names from most to least trusted, e.g. {prefer: [crm, erp]}")
		}
		seen := map[string]bool{}
		for _, s := range p.Prefer {
			if s == "" {
				return errors.New("prefer lists an empty source name")
			}
			if seen[s] {
				return errors.Newf("prefer lists source %q twice", s)
			}
			seen[s] = true
		}
	} else if len(p.Prefer) > 0 {
		return errors.Newf("a source list is only allowed with prefer, not %s", p.Kind)
	}
	return nil
}

// Collection holds the merge rules of one collection (a table, an object
// type). Fields that are not listed are LWW. A Collection must not be
// modified once it is in use.
type Collection struct {
	Name string
	// Key lists the primary-key columns, in key order.
	Key []string
	// Fields maps field names to their policies.
	Fields map[string]Policy

	fingerprint string
	// policies points into a copy of Fields made by init, so that Policy
	// returns a pointer without allocating (Join asks for every field).
	policies map[string]*Policy
}

// NewCollection validates and returns a collection.
func NewCollection(name string, key []string, fields map[string]Policy) (*Collection, error) {
	c := &Collection{Name: name, Key: slices.Clone(key), Fields: maps.Clone(fields)}
	if err := c.init(); err != nil {
		return nil, err
	}
	return c, nil
}

// MustCollection is NewCollection for constant schemas in tests and examples.
func MustCollection(name string, key []string, fields map[string]Policy) *Collection {
	c, err := NewCollection(name, key, fields)
	if err != nil {
		panic(err)
	}
	return c
}

func (c *Collection) init() error {
	if err := ValidateName(c.Name); err != nil {
		return errors.Wrap(err, "collection name")
	}
	seen := map[string]bool{}
	for _, k := range c.Key {
		if err := ValidateName(k); err != nil {
			return errors.Wrapf(err, "collection %s: key column", c.Name)
		}
		if seen[k] {
			return errors.Newf("collection %s: key column %q listed twice", c.Name, k)
		}
		seen[k] = true
		if p, ok := c.Fields[k]; ok && p.Kind != LWW {
			return errors.Newf("collection %s: key column %q cannot have policy %s", c.Name, k, p)
		}
	}
	for f, p := range c.Fields {
		if err := ValidateName(f); err != nil {
			return errors.Wrapf(err, "collection %s: field", c.Name)
		}
		if err := p.validate(); err != nil {
			return errors.Wrapf(err, "collection %s: field %s", c.Name, f)
		}
	}
	c.policies = make(map[string]*Policy, len(c.Fields))
	for f, p := range c.Fields {
		c.policies[f] = &p
	}
	c.fingerprint = c.computeFingerprint()
	return nil
}

// ValidateName checks a collection or field name: 1 to 128 bytes, no control
// characters, no '/'.
func ValidateName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 128 {
		return errors.Newf("name %.20q... is longer than 128 bytes", s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '/' {
			return errors.Newf("name %q contains %q", s, r)
		}
	}
	return nil
}

var lwwPolicy = Policy{Kind: LWW}

// Policy returns the merge rule of a field (LWW when not listed). The result
// is shared and must not be modified.
func (c *Collection) Policy(field string) *Policy {
	if c == nil {
		return &lwwPolicy
	}
	if c.policies != nil {
		if p, ok := c.policies[field]; ok {
			return p
		}
		return &lwwPolicy
	}
	if p, ok := c.Fields[field]; ok {
		return &p
	}
	return &lwwPolicy
}

// Fingerprint identifies the merge rules of the collection. Two collections
// with the same name and rules have the same fingerprint, whatever the order
// they were listed in; LWW fields are the default and do not count, so an
// unlisted collection and one listing only LWW fields agree.
func (c *Collection) Fingerprint() string {
	if c.fingerprint == "" {
		return c.computeFingerprint()
	}
	return c.fingerprint
}

func (c *Collection) computeFingerprint() string {
	h := sha256.New()
	var b []byte
	b = appendLenString(b, "lattice-collection-v1")
	b = appendLenString(b, c.Name)
	for _, f := range slices.Sorted(maps.Keys(c.Fields)) {
		p := c.Fields[f]
		if p.Kind == LWW {
			continue
		}
		b = appendLenString(b, f)
		b = append(b, byte(p.Kind))
		b = binary.AppendUvarint(b, uint64(len(p.Prefer)))
		for _, s := range p.Prefer {
			b = appendLenString(b, s)
		}
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

func appendLenString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Schema is the set of collections a replica knows. Collections that are not
// listed take LWW for every field unless the schema is Strict.
type Schema struct {
	collections map[string]*Collection
	// Strict rejects collections that are not listed.
	Strict bool
}

// NewSchema builds a schema from validated collections.
func NewSchema(strict bool, cols ...*Collection) (*Schema, error) {
	s := &Schema{collections: make(map[string]*Collection, len(cols)), Strict: strict}
	for _, c := range cols {
		if _, dup := s.collections[c.Name]; dup {
			return nil, errors.Newf("collection %q defined twice", c.Name)
		}
		if c.fingerprint == "" {
			if err := c.init(); err != nil {
				return nil, err
			}
		}
		s.collections[c.Name] = c
	}
	return s, nil
}

// MustSchema is NewSchema for constant schemas in tests and examples.
func MustSchema(cols ...*Collection) *Schema {
	s, err := NewSchema(false, cols...)
	if err != nil {
		panic(err)
	}
	return s
}

// ErrUnknownCollection marks errors for collections a strict schema does not
// list.
var ErrUnknownCollection = errors.New("crdt: unknown collection")

// Collection returns the rules of a collection. For a name that is not
// listed it returns an all-LWW collection, or an ErrUnknownCollection error
// when the schema is strict.
func (s *Schema) Collection(name string) (*Collection, error) {
	if s != nil {
		if c, ok := s.collections[name]; ok {
			return c, nil
		}
		if s.Strict {
			return nil, errors.Mark(errors.WithHint(errors.Newf("unknown collection %q", name),
				"list it under collections in the config, or turn strict mode off"), ErrUnknownCollection)
		}
	}
	if err := ValidateName(name); err != nil {
		return nil, errors.Mark(errors.Wrap(err, "collection name"), ErrUnknownCollection)
	}
	// Fingerprint computes the all-LWW fingerprint when asked: this path runs
	// for every fragment of an unlisted collection.
	return &Collection{Name: name}, nil
}

// Collections returns the listed collections sorted by name.
func (s *Schema) Collections() []*Collection {
	if s == nil {
		return nil
	}
	out := slices.Collect(maps.Values(s.collections))
	slices.SortFunc(out, func(a, b *Collection) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Fingerprints maps every listed collection to its fingerprint.
func (s *Schema) Fingerprints() map[string]string {
	out := map[string]string{}
	for _, c := range s.Collections() {
		out[c.Name] = c.Fingerprint()
	}
	return out
}

// Fingerprint identifies the rules of the whole schema.
func (s *Schema) Fingerprint() string {
	h := sha256.New()
	var b []byte
	if s != nil && s.Strict {
		b = append(b, 1)
	}
	for _, c := range s.Collections() {
		b = appendLenString(b, c.Name)
		b = appendLenString(b, c.Fingerprint())
	}
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)[:8])
}
