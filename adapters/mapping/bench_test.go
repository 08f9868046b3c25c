package mapping_test

import (
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// benchYAML maps a 10-column table: four renames, a value map, a
// conversion, four columns as they are.
const benchYAML = `
tables:
  Account:
    collection: customers
    columns:
      AccountId: {field: id}
      Name: {field: name}
      Phone: {field: phone_number}
      City: {field: city}
      Status: {field: status, values: {A: Active, H: On Hold, C: Closed}}
      Balance: {field: balance, convert: cents}
`

// benchCELYAML adds an expression pair: FullName <-> first_name, last_name.
const benchCELYAML = benchYAML + `
      FullName: {to_system: "[fields.first_name, fields.last_name].filter(s, s != null && s != '').join(' ')"}
    fields:
      first_name: {from: "row.FullName.split(' ', 2)[0]"}
      last_name: {from: "row.FullName.contains(' ') ? row.FullName.split(' ', 2)[1] : ''"}
`

func benchRow() crdt.Row {
	return crdt.Row{
		"AccountId": crdt.Int(42),
		"Name":      crdt.String("Ann"),
		"Phone":     crdt.String("+41 44 555 01 01"),
		"City":      crdt.String("Zurich"),
		"Status":    crdt.String("H"),
		"Balance":   crdt.Int(123456),
		"Email":     crdt.String("ann@example.com"),
		"Zip":       crdt.String("8001"),
		"Country":   crdt.String("CH"),
		"Notes":     crdt.Null(),
	}
}

// BenchmarkMapping reports the cost of translating a row per field, on
// capture (ToCollection) and on apply (ToSystem), without and with a CEL
// expression pair.
func BenchmarkMapping(b *testing.B) {
	for _, c := range []struct {
		name string
		yaml string
		cel  bool
	}{{"plain", benchYAML, false}, {"cel", benchCELYAML, true}} {
		tm := compileYAML(b, c.yaml).Table("Account")
		sys := benchRow()
		if c.cel {
			sys["FullName"] = crdt.String("Ann Lee")
		}
		coll, err := tm.ToCollection(sys)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/ToCollection", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tm.ToCollection(sys); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sys)), "ns/field")
		})
		b.Run(c.name+"/ToSystem", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tm.ToSystem(coll); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(coll)), "ns/field")
		})
	}
}
