package sidecar

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/crdt"
)

// contact is a record of the contacts collection in collection terms,
// without its key: names are unique.
type contact struct{ name, email, phone, status string }

func (c contact) String() string { return c.name + "|" + c.email + "|" + c.phone + "|" + c.status }

// apiSystem is one system of the HTTP end-to-end test beside its sidecar.
// rows reads the system with its own client (SQL, or plain GETs of the
// API), translated to collection terms in the test itself, not by the
// mapping under test, and gives each record's key in the system, by name.
type apiSystem struct {
	name   string
	cfg    Config
	a      *Agent
	rows   func() ([]contact, map[string]string, error)
	writes int // the records the test wrote here as a user
}

func (s *apiSystem) start(t *testing.T) {
	t.Helper()
	a, err := Start(context.Background(), s.cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	s.a = a
	t.Cleanup(func() { _ = a.Close() })
	waitFor(t, 30*time.Second, s.name+" ready", a.Ready)
}

// sqlContacts reads contacts with q, which gives per row the system's key
// and the columns of contact in the system's own terms; statuses maps the
// system's status values to the collection's.
func sqlContacts(db *sql.DB, q string, statuses map[string]string) func() ([]contact, map[string]string, error) {
	return func() ([]contact, map[string]string, error) {
		rows, err := db.Query(q)
		if err != nil {
			return nil, nil, err
		}
		defer rows.Close()
		var cs []contact
		keys := map[string]string{}
		for rows.Next() {
			var key string
			var c contact
			if err := rows.Scan(&key, &c.name, &c.email, &c.phone, &c.status); err != nil {
				return nil, nil, err
			}
			if v, ok := statuses[c.status]; ok {
				c.status = v
			}
			cs = append(cs, c)
			keys[c.name] = key
		}
		slices.SortFunc(cs, func(a, b contact) int { return strings.Compare(a.name, b.name) })
		return cs, keys, rows.Err()
	}
}

// countingProxy is a reverse proxy in front of an API server that records
// when each request arrived, and counts the requests it could not pass on
// (the server down).
type countingProxy struct {
	URL     string
	mu      sync.Mutex
	at      []time.Time
	refused int
}

func startCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorHandler = func(w nethttp.ResponseWriter, _ *nethttp.Request, _ error) {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		w.WriteHeader(nethttp.StatusBadGateway)
	}
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		p.mu.Lock()
		p.at = append(p.at, time.Now())
		p.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// refusals returns the number of requests the server was not there for.
func (p *countingProxy) refusals() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// busiest returns the number of requests in the busiest window of one
// second that starts at a request, the total, and the mean rate.
func (p *countingProxy) busiest() (most, total int, rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at := p.at
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < time.Second; j++ {
			n++
		}
		most = max(most, n)
	}
	if len(at) > 1 {
		rate = float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
	}
	return most, len(at), rate
}

// apiCluster is a CRM in PocketBase, an ERP in PostgreSQL and a web app in
// SQLite, each beside its sidecar, each with its own schema and keys.
type apiCluster struct {
	systems       []*apiSystem
	crm, erp, web *apiSystem
	pb            *apitest.PocketBase
	proxy         *countingProxy
	erpDB, webDB  *sql.DB
	rate, burst   int
}

// The CRM's budget: requests per second and burst.
const (
	pbRate  = 20
	pbBurst = 2
)

// startAPICluster starts PocketBase with a contacts collection holding
// seed, PostgreSQL and SQLite with their own shapes of it, and the three
// sidecars, each with its mapping; the CRM's sidecar reaches PocketBase
// through a counting proxy.
func startAPICluster(t *testing.T, seed []contact) *apiCluster {
	t.Helper()
	pb := apitest.StartPocketBase(t, apitest.PocketBaseOptions{})
	srv := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	dir := t.TempDir()

	// The CRM: PocketBase checks emails, phone lengths and statuses, and
	// mints its own IDs.
	pb.CreateCollection("contacts",
		apitest.Field{"name": "name", "type": "text", "required": true},
		apitest.Field{"name": "email", "type": "email"},
		apitest.Field{"name": "phone", "type": "text", "max": 20},
		apitest.Field{"name": "status", "type": "select", "values": []string{"lead", "customer", "churned"}, "maxSelect": 1})
	for _, c := range seed {
		pb.Do("POST", "/api/collections/contacts/records", pbRecord(c), 200, nil)
	}
	proxy := startCountingProxy(t, pb.URL)

	// The ERP: keys from an identity, other column names, one-letter states.
	if err := srv.Exec(ctx, "postgres", `
CREATE TABLE customers (
	customer_no  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	full_name    text NOT NULL,
	email        text,
	phone_number text,
	state        text CHECK (state IN ('L', 'C', 'X'))
)`); err != nil {
		t.Fatal(err)
	}
	erpDB, err := sql.Open("pgx", srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { erpDB.Close() })

	// The web app: text keys from a default, its own words for states.
	webPath := filepath.Join(dir, "web.db")
	webDB, err := sql.Open("sqlite", "file:"+webPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { webDB.Close() })
	if _, err := webDB.Exec(`
CREATE TABLE clients (
	uuid         TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(8)))),
	display_name TEXT NOT NULL,
	mail         TEXT,
	tel          TEXT,
	stage        TEXT
)`); err != nil {
		t.Fatal(err)
	}

	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pb.password", apitest.PocketBasePassword)
	apiCfg := write("crm-api.yaml", fmt.Sprintf(`preset: pocketbase
base_url: %s
auth: {login: {identity: %s, password_file: %s}}
rate: %d
burst: %d
poll_interval: 200ms
overlap: 2s
reconcile: 2s
collections:
  contacts:
    columns: {name: string, email: string, phone: string, status: string}
`, proxy.URL, apitest.PocketBaseEmail, pw, pbRate, pbBurst))

	erpStatuses := map[string]string{"L": "lead", "C": "customer", "X": "churned"}
	webStatuses := map[string]string{"prospect": "lead", "client": "customer", "lost": "churned"}
	c := &apiCluster{pb: pb, proxy: proxy, erpDB: erpDB, webDB: webDB, rate: pbRate, burst: pbBurst,
		crm: &apiSystem{name: "crm", rows: func() ([]contact, map[string]string, error) { return pbContacts(pb) }},
		erp: &apiSystem{name: "erp", rows: sqlContacts(erpDB, `SELECT customer_no::text, full_name,
			COALESCE(email, ''), COALESCE(phone_number, ''), COALESCE(state, '') FROM customers`, erpStatuses)},
		web: &apiSystem{name: "web", rows: sqlContacts(webDB, `SELECT uuid, display_name,
			COALESCE(mail, ''), COALESCE(tel, ''), COALESCE(stage, '') FROM clients`, webStatuses)},
	}
	c.systems = []*apiSystem{c.crm, c.erp, c.web}

	crmMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"contacts": {Key: mapping.KeyConfig{IDMap: "crm"}},
	}}
	erpMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"customers": {
			Collection: "contacts",
			Key:        mapping.KeyConfig{IDMap: "erp"},
			Columns: map[string]mapping.ColumnConfig{
				"customer_no":  {Field: "id"},
				"full_name":    {Field: "name"},
				"phone_number": {Field: "phone"},
				"state":        {Field: "status", Values: erpStatuses},
			},
		},
	}}
	webMap := mapping.Config{Tables: map[string]mapping.TableConfig{
		"clients": {
			Collection: "contacts",
			Key:        mapping.KeyConfig{IDMap: "web"},
			Columns: map[string]mapping.ColumnConfig{
				"uuid":         {Field: "id"},
				"display_name": {Field: "name"},
				"mail":         {Field: "email"},
				"tel":          {Field: "phone"},
				"stage":        {Field: "status", Values: webStatuses},
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
			Apply:       ApplyConfig{MaxBackoff: time.Second},
			Collections: map[string]CollectionConfig{"contacts": {}},
			Mapping:     m,
		}
	}
	c.crm.cfg = base("crm", AdapterConfig{Kind: AdapterHTTP, DSN: apiCfg}, crmMap)
	c.erp.cfg = base("erp", AdapterConfig{Kind: AdapterPostgres, DSN: srv.DSN("postgres"), Tables: []string{"customers"}}, erpMap)
	c.web.cfg = base("web", AdapterConfig{Kind: AdapterSQLite, DSN: webPath, Tables: []string{"clients"}, PollInterval: 5 * time.Millisecond}, webMap)
	var join []string
	for _, s := range c.systems {
		s.cfg.Join = slices.Clone(join)
		s.start(t)
		join = append(join, s.a.Node().Addr())
	}
	return c
}

// pbRecord is a contact as PocketBase takes it.
func pbRecord(c contact) map[string]any {
	return map[string]any{"name": c.name, "email": c.email, "phone": c.phone, "status": c.status}
}

// pbContacts reads PocketBase's contacts with a plain GET, as the
// superuser, straight from the server (not through the sidecar's proxy).
func pbContacts(pb *apitest.PocketBase) ([]contact, map[string]string, error) {
	req, err := nethttp.NewRequest("GET", pb.URL+"/api/collections/contacts/records?perPage=1000&skipTotal=1", nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", pb.Token())
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != 200 {
		return nil, nil, fmt.Errorf("GET contacts: %s: %s", resp.Status, b)
	}
	var out struct {
		Items []struct{ ID, Name, Email, Phone, Status string }
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, nil, err
	}
	var cs []contact
	keys := map[string]string{}
	for _, r := range out.Items {
		cs = append(cs, contact{r.Name, r.Email, r.Phone, r.Status})
		keys[r.Name] = r.ID
	}
	slices.SortFunc(cs, func(a, b contact) int { return strings.Compare(a.name, b.name) })
	return cs, keys, nil
}

// pbWrite changes PocketBase's record of the contact named name as a user
// of the CRM would: PATCH with fields, or DELETE when fields is nil.
func (c *apiCluster) pbWrite(t *testing.T, name string, fields map[string]any) {
	t.Helper()
	_, keys, err := pbContacts(c.pb)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := keys[name]
	if !ok {
		t.Fatalf("crm holds no %s", name)
	}
	if fields == nil {
		c.pb.Do("DELETE", "/api/collections/contacts/records/"+id, nil, 204, nil)
	} else {
		c.pb.Do("PATCH", "/api/collections/contacts/records/"+id, fields, 200, nil)
	}
	c.crm.writes++
}

// exec runs a user's statement in db and counts the rows it wrote for s.
func (s *apiSystem) exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %s: %v", s.name, q, err)
	}
	n, _ := res.RowsAffected()
	s.writes += int(n)
}

// tables reads every system; each map gives a system's records by name
// and its keys by name.
func (c *apiCluster) tables() ([][]contact, []map[string]string, error) {
	var all [][]contact
	var keys []map[string]string
	for _, s := range c.systems {
		cs, ks, err := s.rows()
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.name, err)
		}
		all = append(all, cs)
		keys = append(keys, ks)
	}
	return all, keys, nil
}

// compare returns the CRM's contacts and each system's keys by name, and
// why the systems differ ("" when every sidecar is ready with nothing to
// apply and nothing parked, the three systems hold the same contacts in
// collection terms, and the replicas' digests are equal).
func (c *apiCluster) compare() ([]contact, []map[string]string, string) {
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
	all, keys, err := c.tables()
	if err != nil {
		return nil, nil, err.Error()
	}
	for i, cs := range all[1:] {
		if a, b := joinRows(all[0]), joinRows(cs); a != b {
			return nil, nil, fmt.Sprintf("contacts differ:\n%s: %s\n%s: %s", c.systems[0].name, a, c.systems[i+1].name, b)
		}
	}
	for _, s := range c.systems[1:] {
		if s.a.Digest() != c.systems[0].a.Digest() {
			return nil, nil, fmt.Sprintf("the digests of %s and %s differ", s.name, c.systems[0].name)
		}
	}
	return all[0], keys, ""
}

// converge waits until compare finds the systems equal and returns the
// contacts and each system's keys by name.
func (c *apiCluster) converge(t *testing.T, what string) ([]contact, []map[string]string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cs, keys, why := c.compare()
		if why == "" {
			return cs, keys
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the systems did not converge: %s", what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contactNamed(cs []contact, name string) (contact, bool) {
	i := slices.IndexFunc(cs, func(c contact) bool { return c.name == name })
	if i < 0 {
		return contact{}, false
	}
	return cs[i], true
}

// The keys each system generates: PocketBase's 15 characters of [a-z0-9],
// PostgreSQL's identity, the web app's default of 16 hex digits.
var systemKey = map[string]*regexp.Regexp{
	"crm": regexp.MustCompile(`^[a-z0-9]{15}$`),
	"erp": regexp.MustCompile(`^[1-9][0-9]*$`),
	"web": regexp.MustCompile(`^[0-9a-f]{16}$`),
}

// checkKeys checks that every system holds every contact under a key of
// its own kind, and that the contacts named in origin (name: the system it
// was created in) are known in every replica under the collection key
// minted from their key in that system, <system>:<key>.
func (c *apiCluster) checkKeys(t *testing.T, keys []map[string]string, origin map[string]string) {
	t.Helper()
	for i, s := range c.systems {
		for name, k := range keys[i] {
			if !systemKey[s.name].MatchString(k) {
				t.Errorf("%s holds %s under the key %q, not one it generated", s.name, name, k)
			}
		}
	}
	for name, from := range origin {
		i := slices.IndexFunc(c.systems, func(s *apiSystem) bool { return s.name == from })
		key := crdt.StringKey(from + ":" + keys[i][name])
		for _, s := range c.systems {
			r, err := s.a.Store().Get("contacts", key)
			if err != nil {
				t.Fatal(err)
			}
			coll, err := s.a.Store().Schema().Collection("contacts")
			if err != nil {
				t.Fatal(err)
			}
			if v, _, ok := r.Get(coll, "name"); !ok || v.Text() != name {
				t.Errorf("%s's replica holds %s under %s, want %s", s.name, r.View(coll), key, name)
			}
		}
	}
}

// A CRM reached through PocketBase's API, an ERP in PostgreSQL and a web
// app in SQLite, whose schemas, status values and keys all differ (and
// each mints its own keys), stay equal through their sidecars' mappings
// and ID maps: conflicting and concurrent edits, deletes and creates on
// every side, the API server stopped mid-run, a record the API rejects.
// After each step the three systems are read with their own clients (SQL;
// plain GETs of the API) and compared in collection terms; all the while a
// counting proxy in front of PocketBase checks that the CRM's sidecar
// keeps to its request budget.
func TestIntegrationHTTPPocketBasePostgresSQLite(t *testing.T) {
	c := startAPICluster(t, []contact{
		{"Ann", "ann@example.com", "+1 555 0100", "lead"},
		{"Bob", "bob@example.com", "+1 555 0200", "customer"},
		{"Cy", "cy@example.com", "+1 555 0300", "customer"},
		{"Dee", "dee@example.com", "+1 555 0400", "churned"},
	})
	crm, erp, web := c.crm, c.erp, c.web
	crm.writes = 4

	// The CRM's contacts reach the ERP and the web app, each under a key
	// that system generated.
	cs, keys := c.converge(t, "initial copy")
	if got, want := joinRows(cs), "Ann|ann@example.com|+1 555 0100|lead Bob|bob@example.com|+1 555 0200|customer "+
		"Cy|cy@example.com|+1 555 0300|customer Dee|dee@example.com|+1 555 0400|churned"; got != want {
		t.Fatalf("contacts after the initial copy:\n got %s\nwant %s", got, want)
	}
	c.checkKeys(t, keys, map[string]string{"Ann": "crm", "Dee": "crm"})

	// One field changed in the CRM and the ERP at once: the write committed
	// last wins (each is stamped with its system's commit time), the same
	// everywhere.
	c.pbWrite(t, "Ann", map[string]any{"status": "customer"})
	erp.exec(t, c.erpDB, `UPDATE customers SET state = 'X' WHERE full_name = 'Ann'`)
	cs, _ = c.converge(t, "a conflict on one field")
	if ann, _ := contactNamed(cs, "Ann"); ann.status != "churned" {
		t.Fatalf("Ann's status is %q, want the ERP's churned, committed last", ann.status)
	}

	// Different fields of one record changed in the CRM and the ERP: both
	// kept.
	c.pbWrite(t, "Bob", map[string]any{"phone": "+1 555 0299"})
	erp.exec(t, c.erpDB, `UPDATE customers SET email = 'bob@globex.example' WHERE full_name = 'Bob'`)
	cs, _ = c.converge(t, "different fields")
	if bob, _ := contactNamed(cs, "Bob"); bob.String() != "Bob|bob@globex.example|+1 555 0299|customer" {
		t.Fatalf("Bob is %s, want both changes", bob)
	}

	// Deletes both ways: one in the CRM (found by reconciliation), one in
	// the ERP.
	c.pbWrite(t, "Cy", nil)
	erp.exec(t, c.erpDB, `DELETE FROM customers WHERE full_name = 'Dee'`)
	cs, _ = c.converge(t, "deletes")
	for _, name := range []string{"Cy", "Dee"} {
		if _, ok := contactNamed(cs, name); ok {
			t.Fatalf("%s is still there after its delete", name)
		}
	}

	// A record created in each system, under a key each one generates
	// (PocketBase's ID, the ERP's identity, the web app's default), known
	// to every replica under the key minted from its first system's.
	c.pb.Do("POST", "/api/collections/contacts/records", pbRecord(contact{"Eve", "eve@example.com", "+1 555 0500", "lead"}), 200, nil)
	crm.writes++
	erp.exec(t, c.erpDB, `INSERT INTO customers (full_name, email, phone_number, state) VALUES ('Finn', 'finn@example.com', '+1 555 0600', 'C')`)
	web.exec(t, c.webDB, `INSERT INTO clients (display_name, mail, tel, stage) VALUES ('Gus', 'gus@example.com', '+1 555 0700', 'prospect')`)
	cs, keys = c.converge(t, "records created in each system")
	for _, name := range []string{"Eve", "Finn", "Gus"} {
		if _, ok := contactNamed(cs, name); !ok {
			t.Fatalf("%s is missing", name)
		}
	}
	c.checkKeys(t, keys, map[string]string{"Eve": "crm", "Finn": "erp", "Gus": "web"})

	// Updates of records created elsewhere follow the ID maps.
	c.pbWrite(t, "Finn", map[string]any{"phone": "+1 555 0601"})
	web.exec(t, c.webDB, `UPDATE clients SET stage = 'client' WHERE display_name = 'Eve'`)
	erp.exec(t, c.erpDB, `UPDATE customers SET state = 'X' WHERE full_name = 'Gus'`)
	cs, _ = c.converge(t, "updates through the ID maps")
	if got := joinRows(cs); !strings.Contains(got, "Eve|eve@example.com|+1 555 0500|customer") ||
		!strings.Contains(got, "Finn|finn@example.com|+1 555 0601|customer") || !strings.Contains(got, "Gus|gus@example.com|+1 555 0700|churned") {
		t.Fatalf("contacts after updates through the ID maps: %s", got)
	}

	// The API server stops while the ERP's users write: the writes wait,
	// and land once it is back. Nothing is lost.
	c.pb.Stop()
	refused := c.proxy.refusals()
	erp.exec(t, c.erpDB, `INSERT INTO customers (full_name, email, phone_number, state) VALUES ('Hal', 'hal@example.com', '+1 555 0800', 'L')`)
	erp.exec(t, c.erpDB, `UPDATE customers SET phone_number = '+1 555 0101' WHERE full_name = 'Ann'`)
	erp.exec(t, c.erpDB, `DELETE FROM customers WHERE full_name = 'Eve'`)
	waitFor(t, 30*time.Second, "the writes queued for the stopped API, found down", func() bool {
		return crm.a.Store().PendingLen() >= 3 && c.proxy.refusals() > refused
	})
	c.pb.Start()
	cs, _ = c.converge(t, "the API server back")
	if got := joinRows(cs); !strings.Contains(got, "Hal|hal@example.com|+1 555 0800|lead") ||
		!strings.Contains(got, "Ann|ann@example.com|+1 555 0101|") || strings.Contains(got, "Eve|") {
		t.Fatalf("contacts after the API server's restart: %s", got)
	}

	// A record PocketBase rejects (not an email) is parked with the
	// server's message; the record written with it flows. Fixed in the
	// ERP, it flows too.
	erp.exec(t, c.erpDB, `INSERT INTO customers (full_name, email, phone_number, state) VALUES
		('Ivy', 'ivy at example', '+1 555 0900', 'L'), ('Jo', 'jo@example.com', '+1 555 1000', 'C')`)
	waitFor(t, 30*time.Second, "the rejected record parked", func() bool { return crm.a.Store().ParkedLen() == 1 })
	parked, err := crm.a.Store().Parked(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || !strings.Contains(parked[0].Reason, "400") || !strings.Contains(parked[0].Reason, "validation_is_email") {
		t.Fatalf("parked %+v, want the record with PocketBase's message", parked)
	}
	t.Logf("parked: %s", parked[0].Reason)
	waitFor(t, 30*time.Second, "Jo in every system, Ivy in the ERP and the web app", func() bool {
		all, _, err := c.tables()
		if err != nil {
			return false
		}
		for i, s := range c.systems {
			_, jo := contactNamed(all[i], "Jo")
			_, ivy := contactNamed(all[i], "Ivy")
			if !jo || ivy != (s != crm) {
				return false
			}
		}
		return true
	})
	erp.exec(t, c.erpDB, `UPDATE customers SET email = 'ivy@example.com' WHERE full_name = 'Ivy'`)
	cs, keys = c.converge(t, "the rejected record fixed")
	if ivy, _ := contactNamed(cs, "Ivy"); ivy.String() != "Ivy|ivy@example.com|+1 555 0900|lead" {
		t.Fatalf("Ivy is %q after the fix", ivy)
	}
	c.checkKeys(t, keys, map[string]string{"Finn": "erp", "Gus": "web", "Hal": "erp", "Ivy": "erp", "Jo": "erp"})
	t.Logf("contacts: %s", joinRows(cs))

	// No sidecar captured more changes than its users made: the writes
	// Lattice applied never came back as changes.
	for _, s := range c.systems {
		if got := s.a.Store().Stats().LocalChanges; got > uint64(s.writes) {
			t.Errorf("%s's sidecar captured %d changes, its users wrote %d records", s.name, got, s.writes)
		}
	}
	// The CRM's sidecar kept to its budget all along.
	most, total, rate := c.proxy.busiest()
	if most > c.rate+c.burst {
		t.Errorf("%d requests within one second at PocketBase's door, budget %d/s with a burst of %d", most, c.rate, c.burst)
	}
	t.Logf("%d requests at PocketBase's door, %.2f/s on average, at most %d within a second (budget %d/s, burst %d)",
		total, rate, most, c.rate, c.burst)
}
