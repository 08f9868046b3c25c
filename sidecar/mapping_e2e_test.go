package sidecar

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	_ "modernc.org/sqlite"
)

// mappedSystem is one of three systems whose schemas differ, beside its
// sidecar, read with SQL and translated to collection terms by the test
// itself (not by the mapping under test).
type mappedSystem struct {
	name string
	db   *sql.DB
	cfg  Config
	a    *Agent
	// customers and orders are queries giving, per row, the columns of
	// mappedCustomer and mappedOrder in the system's own terms; orders
	// name the customer an order references by the customer's name (from
	// a join on the system's own keys).
	customers, orders string
	// statuses maps the system's status values to the collection's.
	statuses map[string]string
	// cents says the system holds order totals as integer cents.
	cents bool
	// writes counts the rows the test wrote here as a user.
	writes int
}

// mappedCustomer and mappedOrder are rows in collection terms, without
// keys: names are unique, and an order names its customer.
type mappedCustomer struct{ name, status, phone, tags string }

type mappedOrder struct{ title, customer, total string }

func (s *mappedSystem) start(t *testing.T) {
	t.Helper()
	a, err := Start(context.Background(), s.cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	s.a = a
	t.Cleanup(func() { _ = a.Close() })
	waitFor(t, 15*time.Second, s.name+" ready", a.Ready)
}

// exec runs a user's statement and counts the rows it wrote.
func (s *mappedSystem) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	res, err := s.db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %s: %v", s.name, q, err)
	}
	n, _ := res.RowsAffected()
	s.writes += int(n)
}

// text runs a query that returns one text value.
func (s *mappedSystem) text(t *testing.T, q string, args ...any) string {
	t.Helper()
	var v string
	if err := s.db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %s: %v", s.name, q, err)
	}
	return v
}

// tables reads the system's customers and orders in collection terms,
// sorted by name and title.
func (s *mappedSystem) tables() ([]mappedCustomer, []mappedOrder, error) {
	rows, err := s.db.Query(s.customers)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.name, err)
	}
	var cs []mappedCustomer
	for rows.Next() {
		var c mappedCustomer
		if err := rows.Scan(&c.name, &c.status, &c.phone, &c.tags); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if v, ok := s.statuses[c.status]; ok {
			c.status = v
		}
		if c.tags, err = setOf(c.tags); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("%s: customer %s: %w", s.name, c.name, err)
		}
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = s.db.Query(s.orders)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s.name, err)
	}
	defer rows.Close()
	var ords []mappedOrder
	for rows.Next() {
		var o mappedOrder
		if err := rows.Scan(&o.title, &o.customer, &o.total); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.name, err)
		}
		if s.cents {
			c, err := strconv.ParseInt(o.total, 10, 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: order %s: total %q: %w", s.name, o.title, o.total, err)
			}
			o.total = fmt.Sprintf("%d.%02d", c/100, c%100)
		}
		ords = append(ords, o)
	}
	slices.SortFunc(cs, func(a, b mappedCustomer) int { return strings.Compare(a.name, b.name) })
	slices.SortFunc(ords, func(a, b mappedOrder) int { return strings.Compare(a.title, b.title) })
	return cs, ords, rows.Err()
}

// setOf renders a JSON array of strings (a SQLite JSON column, or a
// PostgreSQL array through array_to_json) as its sorted elements.
func setOf(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return "", fmt.Errorf("tags %q: %w", s, err)
	}
	slices.Sort(l)
	return strings.Join(slices.Compact(l), ","), nil
}

func (c mappedCustomer) String() string {
	return fmt.Sprintf("%s|%s|%s|[%s]", c.name, c.status, c.phone, c.tags)
}

func (o mappedOrder) String() string { return fmt.Sprintf("%s->%s|%s", o.title, o.customer, o.total) }

func joinRows[T fmt.Stringer](rows []T) string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.String()
	}
	return strings.Join(out, " ")
}

// mappedCluster is the three systems: a CRM and a web shop in SQLite, an
// ERP in PostgreSQL.
type mappedCluster struct {
	systems []*mappedSystem
	crm     *mappedSystem
	erp     *mappedSystem
	web     *mappedSystem
}

// converge waits until every sidecar is ready with nothing to apply and
// nothing parked, the three databases hold the same customers and orders
// in collection terms, and the replicas' digests are equal. It returns
// the tables, as the CRM holds them.
func (c *mappedCluster) converge(t *testing.T, what string) ([]mappedCustomer, []mappedOrder) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		cs, ords, why := c.compare()
		if why == "" {
			return cs, ords
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the systems did not converge: %s", what, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// compare returns the first system's tables, and why the systems differ
// ("" when they agree).
func (c *mappedCluster) compare() ([]mappedCustomer, []mappedOrder, string) {
	for _, s := range c.systems {
		if !s.a.Ready() {
			return nil, nil, s.name + " is not ready"
		}
		if n := s.a.Store().PendingLen(); n > 0 {
			return nil, nil, fmt.Sprintf("%s has %d records to apply", s.name, n)
		}
		if n := s.a.Store().ParkedLen(); n > 0 {
			p, _ := s.a.Store().Parked(5)
			return nil, nil, fmt.Sprintf("%s parked %d records: %+v", s.name, n, p)
		}
	}
	var cs0 []mappedCustomer
	var os0 []mappedOrder
	for i, s := range c.systems {
		cs, ords, err := s.tables()
		if err != nil {
			return nil, nil, err.Error()
		}
		if i == 0 {
			cs0, os0 = cs, ords
			continue
		}
		if a, b := joinRows(cs0), joinRows(cs); a != b {
			return nil, nil, fmt.Sprintf("customers differ:\n%s: %s\n%s: %s", c.systems[0].name, a, s.name, b)
		}
		if a, b := joinRows(os0), joinRows(ords); a != b {
			return nil, nil, fmt.Sprintf("orders differ:\n%s: %s\n%s: %s", c.systems[0].name, a, s.name, b)
		}
	}
	for _, s := range c.systems[1:] {
		if s.a.Digest() != c.systems[0].a.Digest() {
			return nil, nil, fmt.Sprintf("the digests of %s and %s differ", s.name, c.systems[0].name)
		}
	}
	return cs0, os0, ""
}

func customerNamed(cs []mappedCustomer, name string) (mappedCustomer, bool) {
	i := slices.IndexFunc(cs, func(c mappedCustomer) bool { return c.name == name })
	if i < 0 {
		return mappedCustomer{}, false
	}
	return cs[i], true
}

// startMappedCluster creates the three databases, each in its own shape,
// seeds the CRM, and starts the three sidecars, each with its mapping.
func startMappedCluster(t *testing.T) *mappedCluster {
	t.Helper()
	srv := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	dir := t.TempDir()

	sqliteDB := func(name, schema string) (*sql.DB, string) {
		path := filepath.Join(dir, name+".db")
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if _, err := db.Exec(schema); err != nil {
			t.Fatal(err)
		}
		return db, path
	}

	// The CRM: Accounts with their own status codes and integer keys,
	// Opportunities with amounts in cents.
	crmDB, crmPath := sqliteDB("crm", `
CREATE TABLE Account (
	AccountId INTEGER PRIMARY KEY AUTOINCREMENT,
	Name      TEXT NOT NULL UNIQUE,
	Status    TEXT CHECK (Status IN ('A', 'H')),
	Phone     TEXT,
	Tags      JSON,
	OwnerId   TEXT NOT NULL
);
CREATE TABLE Opportunity (
	OppId      INTEGER PRIMARY KEY AUTOINCREMENT,
	Title      TEXT NOT NULL UNIQUE,
	AccountRef INTEGER,
	Amount     INTEGER NOT NULL
);`)
	// The ERP: PostgreSQL identities, numeric totals, text[] tags.
	if err := srv.Exec(ctx, "postgres", `
CREATE TABLE customers (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name         text NOT NULL UNIQUE,
	status       text CHECK (status IN ('Active', 'On Hold')),
	phone_number text,
	tags         text[],
	credit_limit integer NOT NULL DEFAULT 5000
);
CREATE TABLE orders (
	id          bigserial PRIMARY KEY,
	reference   text NOT NULL UNIQUE,
	customer_id bigint,
	total       numeric(12, 2) NOT NULL
);`); err != nil {
		t.Fatal(err)
	}
	erpDB, err := sql.Open("pgx", srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { erpDB.Close() })
	// The web shop: text keys from a default, its own status words.
	webDB, webPath := sqliteDB("web", `
CREATE TABLE clients (
	uuid         TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(8)))),
	display_name TEXT NOT NULL UNIQUE,
	state        TEXT,
	phone        TEXT,
	labels       JSON
);
CREATE TABLE purchases (
	uuid        TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(8)))),
	label       TEXT NOT NULL UNIQUE,
	client_uuid TEXT,
	amount      TEXT NOT NULL
);`)

	c := &mappedCluster{
		crm: &mappedSystem{name: "crm", db: crmDB,
			customers: `SELECT Name, COALESCE(Status, ''), COALESCE(Phone, ''), COALESCE(Tags, '') FROM Account`,
			orders: `SELECT o.Title, COALESCE(a.Name, ''), CAST(o.Amount AS TEXT)
				FROM Opportunity o LEFT JOIN Account a ON a.AccountId = o.AccountRef`,
			statuses: map[string]string{"A": "Active", "H": "On Hold"},
			cents:    true,
		},
		erp: &mappedSystem{name: "erp", db: erpDB,
			customers: `SELECT name, COALESCE(status, ''), COALESCE(phone_number, ''), COALESCE(array_to_json(tags)::text, '') FROM customers`,
			orders: `SELECT o.reference, COALESCE(c.name, ''), o.total::text
				FROM orders o LEFT JOIN customers c ON c.id = o.customer_id`,
		},
		web: &mappedSystem{name: "web", db: webDB,
			customers: `SELECT display_name, COALESCE(state, ''), COALESCE(phone, ''), COALESCE(labels, '') FROM clients`,
			orders: `SELECT p.label, COALESCE(c.display_name, ''), p.amount
				FROM purchases p LEFT JOIN clients c ON c.uuid = p.client_uuid`,
			statuses: map[string]string{"active": "Active", "paused": "On Hold"},
		},
	}
	c.systems = []*mappedSystem{c.crm, c.erp, c.web}

	// The CRM holds the customers and one opportunity before Lattice
	// starts.
	c.crm.exec(t, `INSERT INTO Account (Name, Status, Phone, Tags, OwnerId) VALUES
		('Acme', 'A', '+1 555 0100', '["trial"]', 'ann'),
		('Globex', 'A', '+1 555 0200', NULL, 'bob'),
		('Initech', 'H', '+1 555 0300', '["eu","trial"]', 'ann'),
		('Umbrella', 'A', '+1 555 0400', '["emea"]', 'cy')`)
	c.crm.exec(t, `INSERT INTO Opportunity (Title, AccountRef, Amount) VALUES ('Acme renewal', (SELECT AccountId FROM Account WHERE Name = 'Acme'), 125000)`)

	collections := map[string]CollectionConfig{
		"customers": {Fields: map[string]FieldConfig{"tags": {Policy: "orset"}}},
		"orders":    {},
	}
	crmMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"Account": {
			Collection: "customers",
			Key:        mapping.KeyConfig{IDMap: "crm"},
			Columns: map[string]mapping.ColumnConfig{
				"AccountId": {Field: "id"},
				"Name":      {Field: "name"},
				"Status":    {Field: "status", Values: map[string]string{"A": "Active", "H": "On Hold"}},
				"Phone":     {Field: "phone"},
				"Tags":      {Field: "tags"},
				"OwnerId":   {Local: true, Default: "integration"},
			},
		},
		"Opportunity": {
			Collection: "orders",
			Key:        mapping.KeyConfig{IDMap: "crm"},
			Columns: map[string]mapping.ColumnConfig{
				"OppId":      {Field: "id"},
				"Title":      {Field: "title"},
				"AccountRef": {Field: "customer", References: "customers"},
				"Amount":     {Field: "total", Convert: "cents"},
			},
		},
	}}
	erpMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"customers": {
			Key: mapping.KeyConfig{IDMap: "erp"},
			Columns: map[string]mapping.ColumnConfig{
				"phone_number": {Field: "phone"},
				"credit_limit": {Local: true},
			},
		},
		"orders": {
			Key: mapping.KeyConfig{IDMap: "erp"},
			Columns: map[string]mapping.ColumnConfig{
				"reference":   {Field: "title"},
				"customer_id": {Field: "customer", References: "customers"},
			},
		},
	}}
	webMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"clients": {
			Collection: "customers",
			Key:        mapping.KeyConfig{IDMap: "web"},
			Columns: map[string]mapping.ColumnConfig{
				"uuid":         {Field: "id"},
				"display_name": {Field: "name"},
				"state":        {Field: "status", Values: map[string]string{"active": "Active", "paused": "On Hold"}},
				"labels":       {Field: "tags"},
			},
		},
		"purchases": {
			Collection: "orders",
			Key:        mapping.KeyConfig{IDMap: "web"},
			Columns: map[string]mapping.ColumnConfig{
				"uuid":        {Field: "id"},
				"label":       {Field: "title"},
				"client_uuid": {Field: "customer", References: "customers"},
				"amount":      {Field: "total"},
			},
		},
	}}
	base := func(name string, adapter AdapterConfig, m mapping.Config) Config {
		return Config{
			Node:        name,
			Data:        filepath.Join(dir, name+"-store"),
			Bind:        "127.0.0.1:0",
			API:         APIConfig{Addr: "127.0.0.1:0"},
			Adapter:     adapter,
			Collections: maps.Clone(collections),
			Mapping:     m,
		}
	}
	c.crm.cfg = base("crm", AdapterConfig{Kind: AdapterSQLite, DSN: crmPath, Tables: []string{"Account", "Opportunity"}, PollInterval: 5 * time.Millisecond}, crmMap)
	c.erp.cfg = base("erp", AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Tables: []string{"customers", "orders"}}, erpMap)
	c.web.cfg = base("web", AdapterConfig{Kind: AdapterSQLite, DSN: webPath, Tables: []string{"clients", "purchases"}, PollInterval: 5 * time.Millisecond}, webMap)
	var join []string
	for _, s := range c.systems {
		s.cfg.Join = slices.Clone(join)
		s.start(t)
		join = append(join, s.a.Node().Addr())
	}
	return c
}

// Three systems whose schemas differ in every way a mapping covers (table
// and column names, status values, keys each database generates, cents
// against decimals, a JSON column against a text[], references between
// tables) stay in sync through their sidecars' mappings. After each step
// the three databases are read with SQL and compared in collection terms,
// with the references followed by each system's own keys.
func TestIntegrationMappedSystemsConverge(t *testing.T) {
	c := startMappedCluster(t)
	crm, erp, web := c.crm, c.erp, c.web

	// The CRM's customers and its opportunity reach the ERP and the web
	// shop, each under a key that database generated, and the order points
	// at Acme in each.
	cs, ords := c.converge(t, "initial copy")
	if got, want := joinRows(cs), "Acme|Active|+1 555 0100|[trial] Globex|Active|+1 555 0200|[] Initech|On Hold|+1 555 0300|[eu,trial] Umbrella|Active|+1 555 0400|[emea]"; got != want {
		t.Fatalf("customers after the initial copy:\n got %s\nwant %s", got, want)
	}
	if got, want := joinRows(ords), "Acme renewal->Acme|1250.00"; got != want {
		t.Fatalf("orders after the initial copy: got %s, want %s", got, want)
	}
	if got := erp.text(t, `SELECT credit_limit::text FROM customers WHERE name = 'Acme'`); got != "5000" {
		t.Errorf("erp's local credit_limit of Acme is %s, want its default 5000", got)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{16}$`)
	if got := web.text(t, `SELECT uuid FROM clients WHERE display_name = 'Acme'`); !uuid.MatchString(got) {
		t.Errorf("web's key of Acme is %q, not one its default generated", got)
	}

	// One field changed in two systems: one value wins everywhere.
	crm.exec(t, `UPDATE Account SET Status = 'H' WHERE Name = 'Acme'`)
	erp.exec(t, `UPDATE customers SET status = 'Active' WHERE name = 'Acme'`)
	cs, _ = c.converge(t, "a conflict on one field")
	if acme, _ := customerNamed(cs, "Acme"); acme.status != "Active" && acme.status != "On Hold" {
		t.Fatalf("Acme's status is %q, neither of the two written", acme.status)
	}

	// Different fields of one record changed in two systems: both kept.
	crm.exec(t, `UPDATE Account SET Phone = '+1 555 0299' WHERE Name = 'Globex'`)
	web.exec(t, `UPDATE clients SET state = 'paused' WHERE display_name = 'Globex'`)
	cs, _ = c.converge(t, "different fields")
	if got, _ := customerNamed(cs, "Globex"); got.String() != "Globex|On Hold|+1 555 0299|[]" {
		t.Fatalf("Globex is %s, want both changes", got)
	}

	// A set changed in three systems: each add and each remove is kept.
	crm.exec(t, `UPDATE Account SET Tags = '["eu","vip"]' WHERE Name = 'Initech'`)
	erp.exec(t, `UPDATE customers SET tags = array_append(tags, 'priority') WHERE name = 'Initech'`)
	web.exec(t, `UPDATE clients SET labels = '["trial"]' WHERE display_name = 'Initech'`)
	cs, _ = c.converge(t, "set fields")
	if got, _ := customerNamed(cs, "Initech"); got.tags != "priority,vip" {
		t.Fatalf("Initech's tags are [%s], want [priority,vip]", got.tags)
	}

	// A delete made after an update that its user saw: the delete wins.
	// (Commit times order changes in different systems only to the
	// coarsest clock among them, SQLite's millisecond: a delete made in
	// the CRM within the millisecond of an update committed in the ERP,
	// unseen, may lose to it.)
	erp.exec(t, `UPDATE customers SET phone_number = '+1 555 0499' WHERE name = 'Umbrella'`)
	waitFor(t, 15*time.Second, "the update at crm", func() bool {
		return crm.text(t, `SELECT COALESCE(Phone, '') FROM Account WHERE Name = 'Umbrella'`) == "+1 555 0499"
	})
	crm.exec(t, `DELETE FROM Account WHERE Name = 'Umbrella'`)
	cs, _ = c.converge(t, "a delete after an update")
	if _, ok := customerNamed(cs, "Umbrella"); ok {
		t.Fatal("Umbrella is still there after its delete")
	}

	// An update committed after a delete it did not see: the update wins,
	// and the ERP, whose user deleted the row, gets it back whole. The web
	// shop's sidecar is down meanwhile, so its user cannot have seen the
	// delete.
	if err := web.a.Close(); err != nil {
		t.Fatal(err)
	}
	erp.exec(t, `DELETE FROM customers WHERE name = 'Globex'`)
	waitFor(t, 15*time.Second, "the delete at crm", func() bool {
		return crm.text(t, `SELECT CAST(count(*) AS TEXT) FROM Account WHERE Name = 'Globex'`) == "0"
	})
	web.exec(t, `UPDATE clients SET phone = '+1 555 0222' WHERE display_name = 'Globex'`)
	web.start(t)
	cs, _ = c.converge(t, "an update after a delete")
	if got, _ := customerNamed(cs, "Globex"); got.String() != "Globex|On Hold|+1 555 0222|[]" {
		t.Fatalf("Globex is %q after the update that won over the delete, want it whole with the new phone", got)
	}

	// A record created in each system, under a key each database
	// generates; a customer and its order created in one transaction.
	crm.exec(t, `INSERT INTO Account (Name, Status, Phone, OwnerId) VALUES ('Wayne', 'A', '+1 555 0700', 'dan')`)
	erp.exec(t, `INSERT INTO customers (name, status, phone_number, tags) VALUES ('Hooli', 'On Hold', '+1 555 0500', '{b2b}')`)
	web.exec(t, `INSERT INTO clients (display_name, state, phone, labels) VALUES ('Stark', 'active', '+1 555 0600', '["b2b","eu"]')`)
	tx, err := crm.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO Account (Name, Status, OwnerId) VALUES ('Cyberdyne', 'A', 'ann')`,
		`INSERT INTO Opportunity (Title, AccountRef, Amount) VALUES ('Cyberdyne pilot', (SELECT AccountId FROM Account WHERE Name = 'Cyberdyne'), 990005)`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
		crm.writes++
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	cs, _ = c.converge(t, "records created in each system")
	for _, name := range []string{"Wayne", "Hooli", "Stark", "Cyberdyne"} {
		if _, ok := customerNamed(cs, name); !ok {
			t.Fatalf("%s is missing", name)
		}
	}
	if got := web.text(t, `SELECT uuid FROM clients WHERE display_name = 'Hooli'`); !uuid.MatchString(got) {
		t.Errorf("web's key of Hooli is %q, not one its default generated", got)
	}
	// The ERP's identity generated the keys of the rows it received; each
	// sidecar recorded them in its ID map.
	if got := erp.text(t, `SELECT CAST(count(*) AS TEXT) FROM customers WHERE id IS NULL`); got != "0" {
		t.Fatalf("%s ERP customers without a key", got)
	}

	// Orders created in one system for customers created in others, and an
	// order moved to another customer: each reference points at the right
	// customer in every system, under that system's own key.
	web.exec(t, `INSERT INTO purchases (label, client_uuid, amount) VALUES ('Hooli starter', (SELECT uuid FROM clients WHERE display_name = 'Hooli'), '49.90')`)
	erp.exec(t, `INSERT INTO orders (reference, customer_id, total) VALUES ('Stark armour', (SELECT id FROM customers WHERE name = 'Stark'), 1000000.01)`)
	crm.exec(t, `INSERT INTO Opportunity (Title, AccountRef, Amount) VALUES ('Wayne tower', (SELECT AccountId FROM Account WHERE Name = 'Hooli'), 7)`)
	_, ords = c.converge(t, "orders for customers from elsewhere")
	want := "Acme renewal->Acme|1250.00 Cyberdyne pilot->Cyberdyne|9900.05 Hooli starter->Hooli|49.90 Stark armour->Stark|1000000.01 Wayne tower->Hooli|0.07"
	if got := joinRows(ords); got != want {
		t.Fatalf("orders:\n got %s\nwant %s", got, want)
	}
	erp.exec(t, `UPDATE orders SET customer_id = (SELECT id FROM customers WHERE name = 'Wayne') WHERE reference = 'Wayne tower'`)
	web.exec(t, `UPDATE purchases SET client_uuid = (SELECT uuid FROM clients WHERE display_name = 'Stark') WHERE label = 'Hooli starter'`)
	_, ords = c.converge(t, "orders moved to other customers")
	want = "Acme renewal->Acme|1250.00 Cyberdyne pilot->Cyberdyne|9900.05 Hooli starter->Stark|49.90 Stark armour->Stark|1000000.01 Wayne tower->Wayne|0.07"
	if got := joinRows(ords); got != want {
		t.Fatalf("orders after the moves:\n got %s\nwant %s", got, want)
	}

	// No sidecar captured more changes than its users made: the writes
	// Lattice applied never came back as changes.
	for _, s := range c.systems {
		if got := s.a.Store().Stats().LocalChanges; got > uint64(s.writes) {
			t.Errorf("%s's sidecar captured %d changes, its users wrote %d rows", s.name, got, s.writes)
		}
	}
}

// An order whose customer was deleted keeps syncing: its amount changes in
// one system and reaches the others. A system that applies the order after
// it dropped the customer writes its reference as null (it has no
// customer to point at); the others keep the dangling key their users
// left. Both read as "no customer".
func TestIntegrationMappedOrderOfDeletedCustomer(t *testing.T) {
	c := startMappedCluster(t)
	c.erp.exec(t, `INSERT INTO customers (name, status) VALUES ('Hooli', 'Active')`)
	c.converge(t, "a customer")
	c.web.exec(t, `INSERT INTO purchases (label, client_uuid, amount) VALUES ('Hooli starter', (SELECT uuid FROM clients WHERE display_name = 'Hooli'), '49.90')`)
	c.converge(t, "its order")
	c.erp.exec(t, `DELETE FROM customers WHERE name = 'Hooli'`)
	c.converge(t, "the customer deleted")
	c.web.exec(t, `UPDATE purchases SET amount = '59.90' WHERE label = 'Hooli starter'`)
	_, ords := c.converge(t, "the order changed")
	if got := joinRows(ords); !strings.Contains(got, "Hooli starter->|59.90") {
		t.Fatalf("orders = %s, want Hooli starter without a customer at 59.90", got)
	}
}
