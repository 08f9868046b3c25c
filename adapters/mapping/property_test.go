package mapping_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// oneColumn compiles a mapping of table t whose column c has cc.
func oneColumn(t interface{ Fatal(...any) }, cc mapping.ColumnConfig) *mapping.TableMap {
	m, err := mapping.Compile(mapping.Config{Tables: map[string]mapping.TableConfig{
		"t": {Columns: map[string]mapping.ColumnConfig{"c": cc}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return m.Table("t")
}

// roundTrip checks that system -> collection -> system is the identity on
// every system value the mapping accepts, and collection -> system ->
// collection on every collection value it accepts. valid values must be
// accepted.
func roundTrip(t *rapid.T, tm *mapping.TableMap, sys, coll *rapid.Generator[crdt.Value], validSys, validColl bool) {
	field, _ := tm.Field("c")
	v := sys.Draw(t, "system")
	got, err := tm.ToCollection(crdt.Row{"c": v})
	switch {
	case err != nil && validSys:
		t.Fatalf("ToCollection(%v) refused a valid value: %v", v, err)
	case err == nil:
		back, err := tm.ToSystem(got)
		if err != nil {
			t.Fatalf("ToSystem(%v) of ToCollection(%v): %v", got, v, err)
		}
		if !crdt.Equal(back["c"], v) {
			t.Fatalf("system %v -> collection %v -> system %v", v, got[field], back["c"])
		}
	}
	c := coll.Draw(t, "collection")
	sysRow, err := tm.ToSystem(crdt.Row{field: c})
	switch {
	case err != nil && validColl:
		t.Fatalf("ToSystem(%v) refused a valid value: %v", c, err)
	case err == nil:
		again, err := tm.ToCollection(sysRow)
		if err != nil {
			t.Fatalf("ToCollection(%v) of ToSystem(%v): %v", sysRow, c, err)
		}
		if !crdt.Equal(again[field], c) {
			t.Fatalf("collection %v -> system %v -> collection %v", c, sysRow["c"], again[field])
		}
	}
}

var (
	anyInt  = rapid.Map(rapid.Int64(), crdt.Int)
	anyText = rapid.Map(rapid.OneOf(rapid.String(), rapid.StringMatching(`-?[0-9]{0,20}(\.[0-9]{0,20})?`)), crdt.String)
	anyTime = rapid.Custom(func(t *rapid.T) crdt.Value {
		sec := rapid.Int64Range(-62135596800, 253402300799).Draw(t, "sec") // years 1 to 9999
		nsec := rapid.SampledFrom([]int64{0, 0, int64(time.Millisecond), 999_999_999}).Draw(t, "nsec")
		return crdt.TimeUnix(sec, nsec*rapid.Int64Range(0, 1).Draw(t, "frac"))
	})
	anyBool = rapid.Map(rapid.Bool(), crdt.Bool)
)

// orNull draws null now and then.
func orNull(g *rapid.Generator[crdt.Value]) *rapid.Generator[crdt.Value] {
	return rapid.OneOf(g, g, g, rapid.Just(crdt.Null()))
}

func TestConversionsRoundTrip(t *testing.T) {
	layouts := []string{"2006-01-02 15:04:05", "2006-01-02", time.RFC3339Nano, "02/01/2006 15:04"}
	type conv struct {
		name      string
		sys, coll *rapid.Generator[crdt.Value]
		validSys  bool // every drawn system value must be accepted
		validColl bool
	}
	convs := []conv{
		{"int", rapid.OneOf(rapid.Map(rapid.Int64(), func(i int64) crdt.Value { return crdt.String(strconv.FormatInt(i, 10)) }), anyText), anyInt, false, true},
		{"text", anyInt, anyText, true, false},
		{"cents", anyInt, anyText, true, false},
		{"decimal:0", anyInt, anyText, true, false},
		{"decimal:4", anyInt, anyText, true, false},
		{"decimal:18", anyInt, anyText, true, false},
		{"time:unix", rapid.Map(rapid.Int64Range(-62135596800, 253402300799), crdt.Int), anyTime, true, false},
		{"time:unixms", rapid.Map(rapid.Int64Range(-62135596800000, 253402300799999), crdt.Int), anyTime, true, false},
	}
	for _, lit := range [][2]string{{"Y", "N"}, {"1", "0"}, {"yes", "no"}} {
		convs = append(convs, conv{"bool:" + lit[0] + "/" + lit[1],
			rapid.OneOf(rapid.Map(rapid.SampledFrom(lit[:]), crdt.String), anyText), anyBool, false, true})
	}
	for _, l := range layouts {
		convs = append(convs, conv{"time:" + l,
			rapid.OneOf(rapid.Map(anyTime, func(v crdt.Value) crdt.Value { return crdt.String(v.AsTime().Format(l)) }), anyText),
			anyTime, false, false})
	}
	for _, c := range convs {
		t.Run(c.name, func(t *testing.T) {
			tm := oneColumn(t, mapping.ColumnConfig{Field: "f", Convert: c.name})
			rapid.Check(t, func(t *rapid.T) {
				roundTrip(t, tm, orNull(c.sys), orNull(c.coll), c.validSys, c.validColl)
			})
		})
	}
}

// TestDecimalForms pins the decimal text of the edge values.
func TestDecimalForms(t *testing.T) {
	for _, c := range []struct {
		conv string
		in   int64
		want string
	}{
		{"cents", 0, "0.00"},
		{"cents", 5, "0.05"},
		{"cents", -5, "-0.05"},
		{"cents", 1234, "12.34"},
		{"cents", -9223372036854775808, "-92233720368547758.08"},
		{"decimal:0", -7, "-7"},
		{"decimal:3", 1000, "1.000"},
	} {
		tm := oneColumn(t, mapping.ColumnConfig{Convert: c.conv})
		got, err := tm.ToCollection(crdt.Row{"c": crdt.Int(c.in)})
		if err != nil || !crdt.Equal(got["c"], crdt.String(c.want)) {
			t.Errorf("%s(%d) = %v, %v, want %q", c.conv, c.in, got["c"], err, c.want)
		}
	}
	for _, bad := range []string{"-0.00", "01.00", "1.0", "1.000", "+1.00", "1,00", ".50", "1.", "92233720368547758.08"} {
		tm := oneColumn(t, mapping.ColumnConfig{Convert: "cents"})
		if got, err := tm.ToSystem(crdt.Row{"c": crdt.String(bad)}); err == nil {
			t.Errorf("cents accepted %q as %v", bad, got["c"])
		}
	}
}

func TestValueMapRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		word := rapid.StringMatching(`[A-Za-z ]{0,6}`)
		keys := rapid.SliceOfNDistinct(word, 0, 8, rapid.ID[string]).Draw(t, "keys")
		vals := rapid.SliceOfNDistinct(word, len(keys), len(keys), rapid.ID[string]).Draw(t, "values")
		values := map[string]string{}
		for i, k := range keys {
			values[k] = vals[i]
		}
		tm := oneColumn(t, mapping.ColumnConfig{Field: "f", Values: values})
		named := append(append([]string{}, keys...), vals...)
		var text *rapid.Generator[crdt.Value]
		if len(named) > 0 {
			text = rapid.Map(rapid.OneOf(rapid.SampledFrom(named), word), crdt.String)
		} else {
			text = rapid.Map(word, crdt.String)
		}
		roundTrip(t, tm, orNull(text), orNull(text), false, false)
		// Every named value is accepted on its side.
		for k, v := range values {
			got, err := tm.ToCollection(crdt.Row{"c": crdt.String(k)})
			if err != nil || !crdt.Equal(got["f"], crdt.String(v)) {
				t.Fatalf("%q -> %v, %v, want %q", k, got["f"], err, v)
			}
		}
	})
}

func TestValueMapWithText(t *testing.T) {
	tm := oneColumn(t, mapping.ColumnConfig{Convert: "text", Values: map[string]string{"1": "Active", "2": "On Hold"}})
	rapid.Check(t, func(t *rapid.T) {
		roundTrip(t, tm, orNull(rapid.OneOf(anyInt, rapid.Map(rapid.Int64Range(0, 3), crdt.Int))),
			orNull(rapid.OneOf(anyText, rapid.Map(rapid.SampledFrom([]string{"Active", "On Hold", "1", "3"}), crdt.String))), true, false)
	})
}

func TestCompileRejectsNonBijective(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		word := rapid.StringMatching(`[A-Za-z]{1,6}`)
		keys := rapid.SliceOfNDistinct(word, 2, 8, rapid.ID[string]).Draw(t, "keys")
		values := map[string]string{}
		for i, k := range keys {
			values[k] = fmt.Sprintf("v%d", i)
		}
		a := rapid.IntRange(0, len(keys)-1).Draw(t, "a")
		b := rapid.IntRange(0, len(keys)-1).Filter(func(b int) bool { return b != a }).Draw(t, "b")
		values[keys[b]] = values[keys[a]]
		_, err := mapping.Compile(mapping.Config{Tables: map[string]mapping.TableConfig{
			"Account": {Columns: map[string]mapping.ColumnConfig{"Status": {Values: values}}},
		}})
		if err == nil {
			t.Fatalf("Compile accepted %v", values)
		}
		lo, hi := keys[a], keys[b]
		if hi < lo {
			lo, hi = hi, lo
		}
		want := fmt.Sprintf("mapping.tables.Account.columns.Status.values: %q and %q both map to %q", lo, hi, values[lo])
		if err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
	})
}

func TestFullNameRoundTrip(t *testing.T) {
	tm := compileYAML(t, crmYAML).Table("Account")
	rapid.Check(t, func(t *rapid.T) {
		words := rapid.SliceOfN(rapid.StringMatching(`[A-Za-zé'-]{1,8}`), 1, 4).Draw(t, "words")
		full := strings.Join(words, " ")
		coll, err := tm.ToCollection(crdt.Row{"FullName": crdt.String(full)})
		if err != nil {
			t.Fatal(err)
		}
		if !crdt.Equal(coll["first_name"], crdt.String(words[0])) {
			t.Fatalf("first_name %v, want %q", coll["first_name"], words[0])
		}
		sys, err := tm.ToSystem(coll)
		if err != nil {
			t.Fatal(err)
		}
		if !crdt.Equal(sys["FullName"], crdt.String(full)) {
			t.Fatalf("%q -> %v -> %v", full, coll, sys["FullName"])
		}
	})
}
