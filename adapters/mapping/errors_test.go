package mapping_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"go.yaml.in/yaml/v3"
)

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"values not bijective", `{Account: {columns: {Status: {values: {A: Active, X: Active}}}}}`,
			`mapping.tables.Account.columns.Status.values: "A" and "X" both map to "Active"`},
		{"unknown conversion", `{Account: {columns: {Status: {convert: float}}}}`,
			`mapping.tables.Account.columns.Status.convert: unknown conversion "float"`},
		{"bool literals equal", `{Account: {columns: {Vip: {convert: "bool:Y/Y"}}}}`,
			`mapping.tables.Account.columns.Vip.convert: bool:Y/Y: want bool:<true>/<false>`},
		{"decimal digits", `{Account: {columns: {Amount: {convert: "decimal:19"}}}}`,
			`mapping.tables.Account.columns.Amount.convert: decimal:19: the number of digits`},
		{"time layout without a date", `{Account: {columns: {At: {convert: "time:15:04"}}}}`,
			`mapping.tables.Account.columns.At.convert: time:15:04: the layout does not render a date`},
		{"values with a conversion to bool", `{Account: {columns: {Vip: {convert: "bool:Y/N", values: {Y: y}}}}}`,
			`mapping.tables.Account.columns.Vip.values: values with convert bool:Y/N, which gives bool values`},
		{"local and mapped", `{Account: {columns: {Owner: {local: true, field: owner}}}}`,
			`mapping.tables.Account.columns.Owner: column Owner is both local and mapped`},
		{"default without local", `{Account: {columns: {Owner: {default: x}}}}`,
			`mapping.tables.Account.columns.Owner.default: default on a column that is not local`},
		{"to_system and field", `{Account: {columns: {FullName: {field: f, to_system: "fields.a"}}}}`,
			`mapping.tables.Account.columns.FullName.to_system: column FullName has both to_system and a field mapping`},
		{"field twice by columns", `{Account: {columns: {Phone: {field: phone}, Mobile: {field: phone}}}}`,
			`mapping.tables.Account.columns.Phone.field: columns Mobile and Phone both map to field phone`},
		{"field by column and expression", `{Account: {columns: {Phone: {field: phone}}, fields: {phone: {from: "row.Mobile"}}}}`,
			`mapping.tables.Account.fields.phone: field phone is also the field of column Phone`},
		{"two tables one collection", `{Account: {collection: customers}, Client: {collection: customers}}`,
			`mapping.tables.Client.collection: tables Account and Client both map to collection customers`},
		{"natural and id_map", `{Account: {key: {natural: [Email], id_map: crm}}}`,
			`mapping.tables.Account.key: both natural and id_map`},
		{"id_map with colon", `{Account: {key: {id_map: "crm:x"}}}`,
			`mapping.tables.Account.key.id_map: id_map prefix "crm:x" contains ':'`},
		{"natural key converted", `{Account: {key: {natural: [Email]}, columns: {Email: {convert: int}}}}`,
			`mapping.tables.Account.key.natural: key column Email is local, value-mapped, converted, computed or a reference`},
		{"expression syntax", `{Account: {fields: {first: {from: "row.FullName.split(' '"}}}}`,
			`mapping.tables.Account.fields.first.from: ERROR`},
		{"expression reads row whole", `{Account: {fields: {n: {from: "row.size()"}}}}`,
			`mapping.tables.Account.fields.n.from: row is read other than by a constant name`},
		{"expression type mismatch", `{Account: {fields: {n: {from: "row.A.size()", type: string}}}}`,
			`mapping.tables.Account.fields.n.type: the expression gives int, not string`},
		{"expression type unknown", `{Account: {fields: {n: {from: "row.A"}}}}`,
			`mapping.tables.Account.fields.n.type: the expression's type is dyn`},
		{"expression reads a local column", `{Account: {columns: {Owner: {local: true}}, fields: {o: {from: "row.Owner", type: string}}}}`,
			`mapping.tables.Account.fields.o.from: the expression reads local column Owner`},
		{"to_system does not compile", `{Account: {columns: {FullName: {to_system: "fields.a +"}}}}`,
			`mapping.tables.Account.columns.FullName.to_system: ERROR`},
		{"default not a scalar", `{Account: {columns: {Owner: {local: true, default: [1]}}}}`,
			`mapping.tables.Account.columns.Owner.default: a default of type []interface {} is not a scalar`},
		{"empty column name", `{Account: {columns: {"": {field: x}}}}`,
			`mapping.tables.Account.columns.: empty column name`},
		{"reference with values", `{Order: {columns: {customer_id: {references: customers, values: {a: b}}}}}`,
			`mapping.tables.Order.columns.customer_id.references: reference column customer_id has values or convert`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tables map[string]mapping.TableConfig
			if err := yaml.Unmarshal([]byte(c.yaml), &tables); err != nil {
				t.Fatal(err)
			}
			_, err := mapping.Compile(mapping.Config{Tables: tables})
			if err == nil {
				t.Fatalf("Compile accepted it, want error %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want prefix %q", err, c.want)
			}
			if len(errors.GetAllHints(err)) == 0 {
				t.Errorf("error %q has no hint", err)
			}
		})
	}
}

func TestDescribeErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml, want string
	}{
		{"unknown column", `{Account: {columns: {Fax: {field: fax}}}}`,
			`mapping.tables.Account.columns.Fax: table Account has no column Fax`},
		{"expression reads an unknown column", `{Account: {fields: {n: {from: "row.Fax", type: string}}}}`,
			`mapping.tables.Account.fields.n.from: table Account has no column Fax`},
		{"conversion of the wrong kind", `{Account: {columns: {Phone: {convert: cents}}}}`,
			`mapping.tables.Account.columns.Phone.convert: convert cents takes int values, column Phone holds string`},
		{"value map on integers", `{Account: {columns: {Balance: {values: {"1": one}}}}}`,
			`mapping.tables.Account.columns.Balance.values: column Balance holds int values`},
		{"field produced by a renamed and an unlisted column", `{Account: {columns: {Phone: {field: Notes}}}}`,
			`mapping.tables.Account: field Notes is produced by column Notes and by column Phone`},
		{"computed field named like an unlisted column", `{Account: {fields: {Notes: {from: "row.Name", type: string}}}}`,
			`mapping.tables.Account.fields.Notes: field Notes is produced by an expression and by column Notes`},
		{"to_system reads an unknown field", `{Account: {columns: {FullName: {to_system: "fields.first"}}}}`,
			`mapping.tables.Account.columns.FullName.to_system: collection Account has no field first`},
		{"to_system of the wrong kind", `{Account: {columns: {FullName: {to_system: "fields.Name.size()"}}}}`,
			`mapping.tables.Account.columns.FullName.to_system: the expression gives int, column FullName holds string`},
		{"key column local", `{Account: {columns: {Email: {local: true}}}}`,
			`mapping.tables.Account.columns.Email: key column Email is local`},
		{"natural key not the table's key", `{Account: {key: {natural: [Name]}}}`,
			`mapping.tables.Account.key.natural: table Account is keyed by [Email], not by the natural key [Name]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var tables map[string]mapping.TableConfig
			if err := yaml.Unmarshal([]byte(c.yaml), &tables); err != nil {
				t.Fatal(err)
			}
			m, err := mapping.Compile(mapping.Config{Tables: tables})
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			_, err = m.Table("Account").Describe(accountTable())
			if err == nil {
				t.Fatalf("Describe accepted it, want error %q", c.want)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q, want prefix %q", err, c.want)
			}
		})
	}
}

func TestRowErrors(t *testing.T) {
	tm := compileYAML(t, crmYAML).Table("Account")
	for _, c := range []struct {
		name   string
		toColl bool
		row    crdt.Row
		want   string
	}{
		{"value colliding with a mapped value", true, crdt.Row{"Status": crdt.String("Active")},
			`table Account column Status value "Active": "Active" is not in the value map but is the collection value of "A"`},
		{"value map on an integer", true, crdt.Row{"Status": crdt.Int(1)},
			`table Account column Status value 1: a value map applies to text, got int 1`},
		{"conversion refuses", true, crdt.Row{"Vip": crdt.String("maybe")},
			`table Account column Vip value "maybe": want "Y" or "N", got "maybe"`},
		{"conversion of the wrong kind", true, crdt.Row{"Balance": crdt.String("1.00")},
			`table Account column Balance value "1.00": want int, got string "1.00"`},
		{"expression fails", true, crdt.Row{"FullName": crdt.Int(3)},
			`table Account field first_name: evaluate row.FullName.split(' ', 2)[0]: no such overload`},
		{"collection value colliding", false, crdt.Row{"status": crdt.String("A")},
			`table Account column Status value "A": "A" is not in the value map but is the system value of "Active"`},
		{"decimal text refused", false, crdt.Row{"balance": crdt.String("12.3")},
			`table Account column Balance value "12.3": "12.3" is not a decimal with 2 digits after the point`},
		{"expression fails on apply", false, crdt.Row{"first_name": crdt.Int(1), "last_name": crdt.String("Lee")},
			`table Account column FullName: evaluate`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if c.toColl {
				_, err = tm.ToCollection(c.row)
			} else {
				_, err = tm.ToSystem(c.row)
			}
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %v, want prefix %q", err, c.want)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	tm := compileYAML(t, `
tables:
  t:
    fields:
      n: {from: "[1,2,3,4,5,6,7,8,9,10].map(a, [1,2,3,4,5,6,7,8,9,10].map(b, [1,2,3,4,5,6,7,8,9,10].map(c, a*b*c + row.x.size()))).size()", type: int}
`).Table("t")
	_, err := tm.ToCollection(crdt.Row{"x": crdt.String("abc")})
	if err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Errorf("error %v, want the cost limit exceeded", err)
	}
}

func TestDescribeIDMapKeeps(t *testing.T) {
	m := compileYAML(t, `
tables:
  orders:
    key: {id_map: erp}
    columns:
      customer_id: {references: customers}
      id: {field: order_id}
`)
	tm := m.Table("orders")
	got, err := tm.Describe(adapters.Table{Name: "orders", Key: []string{"id"}, Columns: []adapters.Column{
		{Name: "id", Kind: crdt.KindInt, Generated: true},
		{Name: "customer_id", Kind: crdt.KindInt},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if tm.IDMap() != "erp" || got.Key[0] != "order_id" || tm.References()["customer_id"] != "customers" {
		t.Errorf("IDMap %q key %v references %v", tm.IDMap(), got.Key, tm.References())
	}
}
