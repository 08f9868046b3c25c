package mapping_test

import (
	"fmt"
	"slices"

	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"go.yaml.in/yaml/v3"
)

// The CRM's Account table holds the ERP's customers collection.
func Example() {
	const doc = `
tables:
  Account:
    collection: customers
    columns:
      AccountId: {field: id}
      Name: {field: name}
      Phone: {field: phone_number}
      Status: {field: status, values: {A: Active, H: On Hold}}
`
	var cfg mapping.Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		fmt.Println(err)
		return
	}
	m, err := mapping.Compile(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	account := m.Table("Account")
	row, err := account.ToCollection(crdt.Row{
		"AccountId": crdt.Int(7),
		"Name":      crdt.String("Ann"),
		"Phone":     crdt.String("555 0101"),
		"Status":    crdt.String("H"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	printRow(account.Collection(), row)
	back, err := account.ToSystem(row)
	if err != nil {
		fmt.Println(err)
		return
	}
	printRow(account.Table(), back)
	// Output:
	// customers: id=7 name="Ann" phone_number="555 0101" status="On Hold"
	// Account: AccountId=7 Name="Ann" Phone="555 0101" Status="H"
}

func printRow(name string, row crdt.Row) {
	keys := make([]string, 0, len(row))
	for k := range row {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Print(name, ":")
	for _, k := range keys {
		fmt.Printf(" %s=%v", k, row[k])
	}
	fmt.Println()
}
