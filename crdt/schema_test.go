package crdt_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

func TestCollectionValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		key    []string
		fields map[string]crdt.Policy
		want   string
	}{
		{"", nil, nil, "empty name"},
		{"a/b", nil, nil, "contains"},
		{strings.Repeat("x", 129), nil, nil, "longer than 128"},
		{"c", []string{"id", "id"}, nil, "listed twice"},
		{"c", []string{"bad\x01"}, nil, "key column"},
		{"c", []string{"id"}, map[string]crdt.Policy{"id": {Kind: crdt.Max}}, "cannot have policy"},
		{"c", nil, map[string]crdt.Policy{"f": {Kind: crdt.Prefer}}, "at least one source"},
		{"c", nil, map[string]crdt.Policy{"f": {Kind: crdt.Prefer, Prefer: []string{"a", "a"}}}, "twice"},
		{"c", nil, map[string]crdt.Policy{"f": {Kind: crdt.Prefer, Prefer: []string{""}}}, "empty source"},
		{"c", nil, map[string]crdt.Policy{"f": {Kind: crdt.Max, Prefer: []string{"a"}}}, "only allowed with prefer"},
		{"c", nil, map[string]crdt.Policy{"f": {Kind: crdt.PolicyKind(9)}}, "unknown policy"},
		{"c", nil, map[string]crdt.Policy{"": {Kind: crdt.LWW}}, "field"},
	} {
		_, err := crdt.NewCollection(tc.name, tc.key, tc.fields)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewCollection(%.10q, %v, %v) = %v, want %q", tc.name, tc.key, tc.fields, err, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	base := map[string]crdt.Policy{
		"phone": {Kind: crdt.Prefer, Prefer: []string{"crm", "erp"}},
		"tags":  {Kind: crdt.ORSet},
	}
	fp := func(name string, fields map[string]crdt.Policy) string {
		return crdt.MustCollection(name, []string{"id"}, fields).Fingerprint()
	}
	ref := fp("customers", base)
	with := func(f string, p crdt.Policy) map[string]crdt.Policy {
		out := map[string]crdt.Policy{}
		for k, v := range base {
			out[k] = v
		}
		out[f] = p
		return out
	}
	for name, fields := range map[string]map[string]crdt.Policy{
		"prefer order": with("phone", crdt.Policy{Kind: crdt.Prefer, Prefer: []string{"erp", "crm"}}),
		"prefer list":  with("phone", crdt.Policy{Kind: crdt.Prefer, Prefer: []string{"crm"}}),
		"kind":         with("tags", crdt.Policy{Kind: crdt.Max}),
		"new field":    with("seen", crdt.Policy{Kind: crdt.Min}),
		"min vs max":   with("seen", crdt.Policy{Kind: crdt.Max}),
	} {
		if got := fp("customers", fields); got == ref {
			t.Errorf("%s: same fingerprint for different rules", name)
		}
	}
	if fp("orders", base) == ref {
		t.Error("name not in the fingerprint")
	}
	if fp("customers", with("status", crdt.Policy{Kind: crdt.LWW})) != ref {
		t.Error("listing an LWW field changed the fingerprint")
	}
	s, err := crdt.NewSchema(false, crdt.MustCollection("customers", []string{"id"}, base))
	if err != nil {
		t.Fatal(err)
	}
	unlisted, err := s.Collection("notes")
	if err != nil || unlisted.Fingerprint() != fp("notes", map[string]crdt.Policy{"a": {Kind: crdt.LWW}}) {
		t.Fatalf("unlisted collection: %v", err)
	}
	if got := s.Fingerprints(); len(got) != 1 || got["customers"] != ref {
		t.Fatalf("Fingerprints = %v", got)
	}
	strict, _ := crdt.NewSchema(true, crdt.MustCollection("customers", []string{"id"}, base))
	if s.Fingerprint() == strict.Fingerprint() || s.Fingerprint() == crdt.MustSchema().Fingerprint() {
		t.Fatal("schema fingerprints")
	}
	// A Collection built by hand (without NewCollection) still works.
	hand := &crdt.Collection{Name: "customers", Key: []string{"id"}, Fields: base}
	if hand.Fingerprint() != ref || hand.Policy("tags").Kind != crdt.ORSet || hand.Policy("x").Kind != crdt.LWW {
		t.Fatal("hand-built collection")
	}
	var none *crdt.Collection
	if none.Policy("x").Kind != crdt.LWW {
		t.Fatal("nil collection")
	}
}

func TestSchema(t *testing.T) {
	a := crdt.MustCollection("a", nil, nil)
	if _, err := crdt.NewSchema(false, a, crdt.MustCollection("a", nil, nil)); err == nil {
		t.Fatal("duplicate collection accepted")
	}
	if _, err := crdt.NewSchema(false, &crdt.Collection{Name: "bad/name"}); err == nil {
		t.Fatal("invalid hand-built collection accepted")
	}
	strict, _ := crdt.NewSchema(true, a, &crdt.Collection{Name: "b"})
	if _, err := strict.Collection("c"); !errors.Is(err, crdt.ErrUnknownCollection) {
		t.Fatalf("strict: %v", err)
	} else if hints := errors.GetAllHints(err); len(hints) == 0 {
		t.Fatal("no hint")
	}
	if cs := strict.Collections(); len(cs) != 2 || cs[0].Name != "a" || cs[1].Name != "b" {
		t.Fatalf("Collections = %v", cs)
	}
	lax := crdt.MustSchema(a)
	if _, err := lax.Collection("bad/name"); !errors.Is(err, crdt.ErrUnknownCollection) {
		t.Fatalf("invalid name: %v", err)
	}
	var none *crdt.Schema
	if c, err := none.Collection("x"); err != nil || c.Name != "x" || none.Collections() != nil {
		t.Fatalf("nil schema: %v", err)
	}
}

func TestPolicyNames(t *testing.T) {
	for _, pc := range policyCases {
		k, err := crdt.ParsePolicyKind(pc.pol.Kind.String())
		if err != nil || k != pc.pol.Kind {
			t.Errorf("ParsePolicyKind(%s) = %v, %v", pc.pol.Kind, k, err)
		}
		if pc.pol.IsRegister() == (pc.pol.Kind == crdt.ORSet || pc.pol.Kind == crdt.Counter) {
			t.Errorf("%s: IsRegister", pc.name)
		}
	}
	if _, err := crdt.ParsePolicyKind("fifo"); err == nil || len(errors.GetAllHints(err)) == 0 {
		t.Error("unknown policy")
	}
	if got := (crdt.Policy{Kind: crdt.Prefer, Prefer: []string{"a", "b"}}).String(); got != "prefer[a,b]" {
		t.Errorf("String = %q", got)
	}
	if crdt.PolicyKind(9).String() != "policy(9)" {
		t.Error("unknown kind name")
	}
}

func TestKeyOfAndKeyRow(t *testing.T) {
	c := crdt.MustCollection("orders", []string{"tenant", "id"}, nil)
	k, err := c.KeyOf(crdt.Row{"tenant": crdt.String("acme"), "id": crdt.Int(7), "x": crdt.Int(1)})
	if err != nil || k != crdt.MustKey(crdt.String("acme"), crdt.Int(7)) {
		t.Fatalf("KeyOf = %q, %v", k, err)
	}
	row, err := c.KeyRow(k)
	if err != nil || len(row) != 2 || !crdt.Equal(row["id"], crdt.Int(7)) {
		t.Fatalf("KeyRow = %v, %v", row, err)
	}
	for _, bad := range []crdt.Row{{"tenant": crdt.String("acme")}, {"tenant": crdt.Null(), "id": crdt.Int(1)}, {"tenant": crdt.MustJSON(`{}`), "id": crdt.Int(1)}} {
		if _, err := c.KeyOf(bad); !errors.Is(err, crdt.ErrInvalidKey) {
			t.Errorf("KeyOf(%v) = %v", bad, err)
		}
	}
	if _, err := crdt.MustCollection("n", nil, nil).KeyOf(crdt.Row{}); !errors.Is(err, crdt.ErrInvalidKey) {
		t.Error("no key columns")
	}
	if _, err := c.KeyRow(crdt.IntKey(1)); !errors.Is(err, crdt.ErrInvalidKey) {
		t.Error("short key")
	}
	if _, err := c.KeyRow(crdt.Key("\x00")); !errors.Is(err, crdt.ErrInvalidKey) {
		t.Error("invalid key")
	}
}

func TestOperationErrors(t *testing.T) {
	c := mixed()
	o := func(wall int64, r crdt.ReplicaID) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: r}, Source: "r0"}
	}
	d, err := crdt.Diff(c, nil, crdt.Row{"lww": crdt.Int(1), "orset": must(crdt.List(crdt.Int(1)))}, o(10, 1))
	if err != nil {
		t.Fatal(err)
	}
	rec := crdt.Join(c, nil, d)
	for name, err := range map[string]error{
		"stale diff":        second(crdt.Diff(c, rec, crdt.Row{"lww": crdt.Int(2)}, o(10, 1))),
		"stale setops":      second(crdt.SetOps(c, rec, "orset", []crdt.Value{crdt.Int(2)}, nil, o(9, 5))),
		"stale delete":      second(crdt.Delete(rec, o(10, 1))),
		"zero stamp":        second(crdt.Diff(c, rec, crdt.Row{}, crdt.Origin{})),
		"zero replica":      second(crdt.Diff(c, nil, crdt.Row{"lww": crdt.Int(2)}, o(20, 0))),
		"scalar for a set":  second(crdt.Diff(c, rec, crdt.Row{"orset": crdt.Int(2)}, o(20, 1))),
		"setops on lww":     second(crdt.SetOps(c, rec, "lww", []crdt.Value{crdt.Int(2)}, nil, o(20, 1))),
		"setops on a key":   second(crdt.SetOps(crdt.MustCollection("k", []string{"id"}, map[string]crdt.Policy{"id": {Kind: crdt.LWW}}), nil, "id", nil, nil, o(20, 1))),
		"list as a element": second(crdt.SetOps(c, rec, "orset", []crdt.Value{must(crdt.List())}, nil, o(20, 1))),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := crdt.Diff(c, rec, crdt.Row{"lww": crdt.Int(2)}, o(10, 1)); !errors.Is(err, crdt.ErrStaleStamp) {
		t.Errorf("stale: %v", err)
	}
	if _, err := crdt.SetOps(c, rec, "lww", nil, nil, o(20, 1)); !errors.Is(err, crdt.ErrPolicy) || len(errors.GetAllHints(err)) == 0 {
		t.Errorf("policy: %v", err)
	}
	if _, err := crdt.Diff(c, rec, crdt.Row{"orset": crdt.Int(2)}, o(20, 1)); !errors.Is(err, crdt.ErrPolicy) {
		t.Errorf("policy: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestGet(t *testing.T) {
	c := mixed()
	o := func(wall int64, r crdt.ReplicaID, src string) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: r}, Source: src}
	}
	d1, _ := crdt.Diff(c, nil, crdt.Row{"max": crdt.Int(10), "prefer": crdt.String("a"), "orset": must(crdt.List(crdt.Int(1))), "lww": crdt.Null()}, o(1, 1, "r0"))
	s := crdt.Join(c, nil, d1)
	d2, _ := crdt.Diff(c, s, crdt.Row{"prefer": crdt.String("b")}, o(2, 2, "r1"))
	s = crdt.Join(c, s, d2)
	v, meta, ok := s.Get(c, "prefer")
	if !ok || !crdt.Equal(v, crdt.String("b")) || meta.Source != "r1" || meta.Stamp != o(2, 2, "").Stamp || meta.Policy.Kind != crdt.Prefer || meta.Shadowed != 0 {
		t.Fatalf("Get(prefer) = %v %+v %v", v, meta, ok)
	}
	if v, meta, ok := s.Get(c, "orset"); !ok || len(v.AsList()) != 1 || meta.Stamp != o(1, 1, "").Stamp {
		t.Fatalf("Get(orset) = %v %+v", v, meta)
	}
	if _, _, ok := s.Get(c, "lww"); ok {
		t.Fatal("null field visible")
	}
	if _, _, ok := s.Get(c, "missing"); ok {
		t.Fatal("missing field visible")
	}
	del, _ := crdt.Delete(s, o(3, 1, ""))
	gone := crdt.Join(c, s, del)
	if _, meta, ok := gone.Get(c, "max"); ok || meta.Policy.Kind != crdt.Max {
		t.Fatal("field of a deleted record visible")
	}
	if gone.View(c) != nil || gone.Exists() || gone.IsEmpty() {
		t.Fatal("deleted record")
	}
	if !strings.Contains(gone.String(), "del=") || (*crdt.Record)(nil).String() != "<empty>" {
		t.Fatal("String")
	}
	var none *crdt.Delta
	if none.Len() != 0 || !none.MaxStamp().IsZero() || none.String() != "<empty delta>" {
		t.Fatal("nil delta")
	}
	dd := &crdt.Delta{}
	dd.Add("c", crdt.IntKey(1), gone)
	if dd.MaxStamp() != o(3, 1, "").Stamp || !strings.HasPrefix(dd.String(), "c/1 ") {
		t.Fatalf("delta %s max %s", dd, dd.MaxStamp())
	}
}
