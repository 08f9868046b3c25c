package mapping_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"go.yaml.in/yaml/v3"
)

// crmYAML maps the CRM's Account table to the ERP's customers collection.
const crmYAML = `
tables:
  Account:
    collection: customers
    key: {natural: [Email]}
    columns:
      AccountId: {local: true}
      Email: {field: email}
      Name: {field: name}
      Phone: {field: phone_number}
      Status:
        field: status
        values: {A: Active, H: On Hold}
      Vip: {field: vip, convert: bool:Y/N}
      Balance: {field: balance, convert: cents}
      Owner: {local: true, default: sales}
      FullName: {to_system: "[fields.first_name, fields.last_name].filter(s, s != null && s != '').join(' ')"}
    fields:
      first_name: {from: "row.FullName.split(' ', 2)[0]"}
      last_name: {from: "row.FullName.contains(' ') ? row.FullName.split(' ', 2)[1] : ''"}
`

func compileYAML(t testing.TB, doc string) *mapping.Map {
	t.Helper()
	var cfg mapping.Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Compile(cfg)
	if err != nil {
		t.Fatalf("compile: %v (hint: %s)", err, errors.FlattenHints(err))
	}
	return m
}

func accountTable() adapters.Table {
	return adapters.Table{
		Name: "Account",
		Key:  []string{"Email"},
		Columns: []adapters.Column{
			{Name: "AccountId", Kind: crdt.KindInt, Generated: true},
			{Name: "Email", Kind: crdt.KindString},
			{Name: "Name", Kind: crdt.KindString, Nullable: true},
			{Name: "Phone", Kind: crdt.KindString, Nullable: true},
			{Name: "Status", Kind: crdt.KindString, Nullable: true},
			{Name: "Vip", Kind: crdt.KindString, Nullable: true},
			{Name: "Balance", Kind: crdt.KindInt, Nullable: true},
			{Name: "Owner", Kind: crdt.KindString},
			{Name: "FullName", Kind: crdt.KindString, Nullable: true},
			{Name: "Notes", Kind: crdt.KindString, Nullable: true},
		},
	}
}

func TestAccountRoundTrip(t *testing.T) {
	m := compileYAML(t, crmYAML)
	tm := m.Table("Account")
	if tm == nil || m.ByCollection("customers") != tm || m.Table("Order") != nil {
		t.Fatal("tables not found by name and collection")
	}
	sys := crdt.Row{
		"Email":    crdt.String("ann@example.com"),
		"Name":     crdt.String("Ann"),
		"Phone":    crdt.String("555"),
		"Status":   crdt.String("H"),
		"Vip":      crdt.String("Y"),
		"Balance":  crdt.Int(-1205),
		"FullName": crdt.String("Ann Lee Smith"),
		"Notes":    crdt.Null(),
	}
	got, err := tm.ToCollection(sys)
	if err != nil {
		t.Fatal(err)
	}
	want := crdt.Row{
		"email":        crdt.String("ann@example.com"),
		"name":         crdt.String("Ann"),
		"phone_number": crdt.String("555"),
		"status":       crdt.String("On Hold"),
		"vip":          crdt.Bool(true),
		"balance":      crdt.String("-12.05"),
		"first_name":   crdt.String("Ann"),
		"last_name":    crdt.String("Lee Smith"),
		"Notes":        crdt.Null(),
	}
	assertRow(t, got, want)
	back, err := tm.ToSystem(got)
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, back, sys)
}

func TestDescribe(t *testing.T) {
	tm := compileYAML(t, crmYAML).Table("Account")
	got, err := tm.Describe(accountTable())
	if err != nil {
		t.Fatalf("%v (hint: %s)", err, errors.FlattenHints(err))
	}
	var cols []string
	for _, c := range got.Columns {
		cols = append(cols, c.Name+":"+c.Kind.String())
	}
	want := "email:string name:string phone_number:string status:string vip:bool balance:string Notes:string first_name:string last_name:string"
	if g := strings.Join(cols, " "); g != want || got.Name != "customers" || strings.Join(got.Key, ",") != "email" {
		t.Errorf("Describe = %s key %v columns\n%s, want customers key email columns\n%s", got.Name, got.Key, g, want)
	}
}

func TestLocalAndKeys(t *testing.T) {
	m := compileYAML(t, crmYAML)
	local := m.Local()
	if len(local) != 1 || len(local["Account"]) != 2 || !crdt.Equal(local["Account"]["Owner"], crdt.String("sales")) || !local["Account"]["AccountId"].IsNull() {
		t.Errorf("Local() = %v", local)
	}
	if nk := m.NaturalKeys(); len(nk) != 1 || strings.Join(nk["Account"], ",") != "Email" {
		t.Errorf("NaturalKeys() = %v", nk)
	}
	tm := m.Table("Account")
	for _, c := range []struct {
		column, field string
		ok            bool
	}{
		{"Phone", "phone_number", true},
		{"Notes", "Notes", true},
		{"Owner", "", false},
		{"FullName", "", false},
	} {
		if f, ok := tm.Field(c.column); f != c.field || ok != c.ok {
			t.Errorf("Field(%s) = %q, %v, want %q, %v", c.column, f, ok, c.field, c.ok)
		}
	}
	for _, c := range []struct {
		field, column string
		ok            bool
	}{
		{"phone_number", "Phone", true},
		{"Notes", "Notes", true},
		{"Phone", "", false},
		{"first_name", "", false},
	} {
		if col, ok := tm.Column(c.field); col != c.column || ok != c.ok {
			t.Errorf("Column(%s) = %q, %v, want %q, %v", c.field, col, ok, c.column, c.ok)
		}
	}
}

func TestLocalDefaults(t *testing.T) {
	local := compileYAML(t, `
tables:
  t:
    columns:
      n: {local: true, default: 0}
      b: {local: true, default: true}
      f: {local: true, default: 1.5}
      d: {local: true, default: 2026-12-03}
      s: {local: true, default: "x"}
      z: {local: true, default: null}
`).Local()["t"]
	want := crdt.Row{
		"n": crdt.Int(0), "b": crdt.Bool(true), "f": crdt.Float(1.5),
		"d": crdt.Time(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)), "s": crdt.String("x"), "z": crdt.Null(),
	}
	assertRow(t, local, want)
}

func TestMissingAndNull(t *testing.T) {
	tm := compileYAML(t, crmYAML).Table("Account")
	// An update that did not report FullName leaves its fields missing.
	got, err := tm.ToCollection(crdt.Row{"Email": crdt.String("a@b"), "Status": crdt.Null()})
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, got, crdt.Row{"email": crdt.String("a@b"), "status": crdt.Null()})
	// Null inputs only give null fields.
	got, err = tm.ToCollection(crdt.Row{"FullName": crdt.Null()})
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, got, crdt.Row{"first_name": crdt.Null(), "last_name": crdt.Null()})
	// On apply, a missing field reads as null, which the expression sees
	// unless all it reads is null.
	back, err := tm.ToSystem(crdt.Row{"email": crdt.String("a@b"), "first_name": crdt.String("Ann")})
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, back, crdt.Row{"Email": crdt.String("a@b"), "FullName": crdt.String("Ann")})
	back, err = tm.ToSystem(crdt.Row{"email": crdt.String("a@b"), "last_name": crdt.Null()})
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, back, crdt.Row{"Email": crdt.String("a@b"), "FullName": crdt.Null()})
}

func TestTimeConversion(t *testing.T) {
	m := compileYAML(t, `
tables:
  events:
    columns:
      at: {convert: "time:2006-01-02 15:04:05"}
      ms: {convert: "time:unixms"}
`)
	tm := m.Table("events")
	got, err := tm.ToCollection(crdt.Row{"at": crdt.String("2026-12-03 10:00:01"), "ms": crdt.Int(-1)})
	if err != nil {
		t.Fatal(err)
	}
	assertRow(t, got, crdt.Row{
		"at": crdt.Time(time.Date(2026, 12, 3, 10, 0, 1, 0, time.UTC)),
		"ms": crdt.Time(time.Unix(0, -int64(time.Millisecond))),
	})
}

func assertRow(t *testing.T, got, want crdt.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !crdt.Equal(g, w) {
			t.Errorf("%s = %v, want %v (row %v)", k, g, w, got)
		}
	}
}

// TestDocExample compiles the example of docs/mapping.md and describes the
// CRM table with it.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/mapping.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/mapping.md")
	}
	var node struct {
		Mapping mapping.Config `yaml:"mapping"`
	}
	dec := yaml.NewDecoder(strings.NewReader(block))
	dec.KnownFields(true)
	if err := dec.Decode(&node); err != nil {
		t.Fatal(err)
	}
	m, err := mapping.Compile(node.Mapping)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Table("Account").Describe(accountTable()); err != nil {
		t.Fatal(err)
	}
}
