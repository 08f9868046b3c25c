package crdt_test

import (
	"bytes"
	"encoding/hex"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/wire")

// st is the stamp of the n-th write of the fixtures, by replica r.
func st(n int64, r crdt.ReplicaID) crdt.Stamp {
	return crdt.Stamp{TS: crdt.Timestamp{Wall: 1_700_000_000_000_000_000 + n*1_000_000, Logical: uint32(n % 3)}, Replica: r}
}

func goldenSchema() *crdt.Schema {
	return crdt.MustSchema(
		crdt.MustCollection("customers", []string{"id"}, map[string]crdt.Policy{
			"last_seen_at": {Kind: crdt.Max},
			"phone":        {Kind: crdt.Prefer, Prefer: []string{"crm", "erp"}},
			"score":        {Kind: crdt.Min},
			"tags":         {Kind: crdt.ORSet},
		}),
		crdt.MustCollection("orders", []string{"tenant", "id"}, map[string]crdt.Policy{"items": {Kind: crdt.ORSet}}),
	)
}

// goldenCustomer uses every policy: a Max frontier of two writes, a Prefer
// write shadowed by a newer one from a lower-ranked source, an OR-set with
// two adds of one element and a causal context with a gap (a cloud dot).
func goldenCustomer() *crdt.Record {
	return &crdt.Record{
		Deleted: st(1, 1),
		Written: st(9, 3),
		Fields: []crdt.Field{
			{Name: "last_seen_at", Reg: []crdt.Write{
				{Stamp: st(8, 2), Value: crdt.TimeUnix(1_700_000_100, 0)},
				{Stamp: st(4, 1), Value: crdt.TimeUnix(1_700_000_500, 250)},
			}},
			{Name: "name", Reg: []crdt.Write{{Stamp: st(9, 3), Value: crdt.String("Ada Lovelace")}}},
			{Name: "phone", Reg: []crdt.Write{
				{Stamp: st(7, 2), Value: crdt.String("+1 555 0100"), Source: "erp"},
				{Stamp: st(5, 1), Value: crdt.String("+1 555 0199"), Source: "crm"},
			}},
			{Name: "score", Reg: []crdt.Write{{Stamp: st(6, 2), Value: crdt.Float(-0.5)}}},
			{Name: "tags", Set: &crdt.ORSetState{
				Elems: []crdt.Elem{
					{Value: crdt.String("gold"), Entries: []crdt.Entry{{Counter: 3, Stamp: st(3, 1)}, {Counter: 1, Stamp: st(6, 2)}}},
					{Value: crdt.String("vip"), Entries: []crdt.Entry{{Counter: 2, Stamp: st(9, 3)}}},
				},
				Ctx: crdt.CausalContext{
					VV:    []crdt.Dot{{Replica: 1, Counter: 3}, {Replica: 2, Counter: 1}},
					Cloud: []crdt.Dot{{Replica: 3, Counter: 2}},
				},
			}},
		},
	}
}

// goldenValues holds a value of every kind, edge cases included, in LWW
// fields of a collection the schema does not list.
func goldenValues() *crdt.Record {
	w := func(name string, v crdt.Value) crdt.Field {
		return crdt.Field{Name: name, Reg: []crdt.Write{{Stamp: st(2, 4), Value: v}}}
	}
	return &crdt.Record{Written: st(2, 4), Fields: []crdt.Field{
		w("bool", crdt.Bool(true)),
		w("bytes", crdt.Bytes([]byte{0, 0xff, 0x80})),
		w("float", crdt.Float(math.Inf(-1))),
		w("int", crdt.Int(math.MinInt64)),
		w("json", crdt.MustJSON(`{"z": [1, 2.50, null], "a": "ü"}`)),
		w("list", must(crdt.List(crdt.Int(1), crdt.String("x"), crdt.Null(), crdt.Float(0.1)))),
		w("nan", crdt.Float(math.NaN())),
		w("null", crdt.Null()),
		w("string", crdt.String("héllo\x00wörld")),
		w("time", crdt.Time(time.Date(1969, 7, 20, 20, 17, 40, 123456789, time.UTC))),
	}}
}

func goldenDelta() *crdt.Delta {
	d := &crdt.Delta{}
	d.Add("customers", crdt.IntKey(42), goldenCustomer())
	d.Add("notes", crdt.MustKey(crdt.Bytes([]byte{0, 1})), goldenValues())
	d.Add("orders", crdt.MustKey(crdt.String("acme"), crdt.Int(7)), &crdt.Record{
		Deleted: st(10, 2), Written: st(2, 1),
		Fields: []crdt.Field{{Name: "items", Set: &crdt.ORSetState{Ctx: crdt.CausalContext{VV: []crdt.Dot{{Replica: 1, Counter: 4}}}}}},
	})
	return d
}

type goldenCase struct {
	name, what string
	delta      *crdt.Delta  // enveloped delta, or
	record     *crdt.Record // a bare record (AppendRecord)
}

func goldenCases() []goldenCase {
	del := &crdt.Delta{}
	del.Add("customers", crdt.StringKey("c-1"), &crdt.Record{Deleted: st(3, 7)})
	return []goldenCase{
		{name: "delta", what: "a delta of three records: every policy, every value kind, a tombstone", delta: goldenDelta()},
		{name: "delta_delete", what: "a delta that deletes one record", delta: del},
		{name: "delta_empty", what: "a delta without fragments", delta: &crdt.Delta{}},
		{name: "record_customer", what: "a stored record state (AppendRecord, no envelope) using every policy", record: goldenCustomer()},
		{name: "record_values", what: "a stored record state holding a value of every kind", record: goldenValues()},
		{name: "record_reinserted", what: "a record re-inserted after a delete: the reset stamp is the fourth element", record: &crdt.Record{
			Deleted: st(5, 2), Written: st(6, 1), Reset: st(5, 2),
			Fields: []crdt.Field{{Name: "status", Reg: []crdt.Write{{Stamp: st(6, 1), Value: crdt.String("New")}}}},
		}},
		{name: "record_counter", what: "a record with two counter fields: per-replica sums as integers and as exact decimal text, the fourth element of a field", record: &crdt.Record{
			Written: st(9, 2),
			Fields: []crdt.Field{
				{Name: "balance", Ctr: []crdt.CounterEntry{
					{Stamp: st(4, 1), P: crdt.String("12.50"), N: crdt.String("0.25")},
					{Stamp: st(9, 2), P: crdt.String("3.00"), N: crdt.String("0.00")},
				}},
				{Name: "stock", Ctr: []crdt.CounterEntry{
					{Stamp: st(3, 1), P: crdt.Int(10), N: crdt.Int(4)},
					{Stamp: st(8, 2), P: crdt.Int(0), N: crdt.Int(1)},
				}},
			},
		}},
	}
}

func (g goldenCase) encode() []byte {
	if g.delta != nil {
		return crdt.EncodeDelta(g.delta)
	}
	return crdt.AppendRecord(nil, g.record)
}

// describe renders a fixture for people: what it is, its structure and its
// bytes.
func (g goldenCase) describe(b []byte) string {
	var s strings.Builder
	s.WriteString("# " + g.name + ".golden: " + g.what + "\n")
	s.WriteString("# Generated by go test ./crdt -run Golden -update; do not edit.\n\n")
	if g.delta != nil {
		s.WriteString(g.delta.String())
	} else {
		s.WriteString(g.record.String())
	}
	s.WriteString("\n\n")
	s.WriteString(hex.Dump(b))
	return s.String()
}

// TestGolden decodes every fixture in testdata/wire, compares it with the
// structure it was made from and re-encodes it byte for byte: a change of the
// wire format, or of any encoding, fails here. go test ./crdt -run Golden
// -update rewrites the fixtures, which is right only for a deliberate,
// compatible change.
func TestGolden(t *testing.T) {
	schema := goldenSchema()
	for _, g := range goldenCases() {
		t.Run(g.name, func(t *testing.T) {
			path := filepath.Join("testdata", "wire", g.name+".golden")
			txt := filepath.Join("testdata", "wire", g.name+".txt")
			want := g.encode()
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(txt, []byte(g.describe(want)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			desc, err := os.ReadFile(txt)
			if err != nil {
				t.Fatal(err)
			}
			if string(desc) != g.describe(b) {
				t.Errorf("%s does not describe %s; run with -update", txt, path)
			}
			if g.delta != nil {
				got, err := crdt.DecodeDelta(b, crdt.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				requireDeltasEqual(t, got, g.delta)
				// The fixtures are normalized states: joining them changes
				// nothing.
				norm, err := crdt.JoinDeltas(schema, got, nil)
				if err != nil {
					t.Fatal(err)
				}
				requireDeltasEqual(t, norm, g.delta)
				if again := crdt.EncodeDelta(got); !bytes.Equal(again, b) {
					t.Fatalf("re-encoding differs:\n got  %x\n want %x", again, b)
				}
			} else {
				got, err := crdt.DecodeRecord(b, crdt.DefaultLimits())
				if err != nil {
					t.Fatal(err)
				}
				if !crdt.EqualRecords(got, g.record) {
					t.Fatalf("decoded %s\nwant %s", got, g.record)
				}
				if again := crdt.AppendRecord(nil, got); !bytes.Equal(again, b) {
					t.Fatalf("re-encoding differs:\n got  %x\n want %x", again, b)
				}
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("the encoder no longer writes %s:\n got  %x\n want %x", path, want, b)
			}
		})
	}
}
