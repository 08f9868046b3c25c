// Package demo runs three Lattice sidecars in one process, each beside its
// own SQLite database: a CRM, an ERP and a web shop whose schemas differ
// (table and column names, status values, keys each database generates,
// columns of their own), each mapped to one collection by its sidecar's
// mapping. It plays the classic failures of two one-way syncs against
// them: the same field changed on two sides at once, different fields of
// one row changed on two sides, a set changed on three sides, a delete
// racing an update, and records created in two systems under keys only
// they know (the ID map). It shows what each database held, in its own
// terms, which value won and why, how many writes each database received,
// and checks after every step that the three databases hold the same
// customers (read with SQL and compared in collection terms), each the
// customers its own sidecar's merged state holds.
//
// Every change is made the way a user would make it: with SQL, directly in a
// database file. Lattice captures it there, and writes merged state back.
package demo

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)

// Options configure a demo run.
type Options struct {
	// Dir holds the databases and stores; empty means a new temporary
	// directory, removed afterwards.
	Dir string
	// Out receives the narrative.
	Out io.Writer
	// Logger receives the agents' logs (default: discarded).
	Logger *slog.Logger
	// Timeout bounds each wait for convergence (default 15s).
	Timeout time.Duration
	// Keep keeps the cluster up after the scenes, until ctx is done, so
	// that a user can look at it (the consoles, the databases, the API).
	Keep bool
	// Ready, if set, is called with the consoles' addresses once the
	// scenes are done and the cluster is kept (Keep).
	Ready func(consoles []string)
}

// shape is how one system holds customers: its own table, column names,
// status values and keys. The three differ, as a real CRM, ERP and web
// shop do; each sidecar maps its shape to the cluster's collection
// "customers" (name, status, phone, address, tags, keyed by an ID map).
type shape struct {
	table string
	// key, name, status, phone, address and tags are the system's columns
	// for the collection's fields.
	key, name, status, phone, address, tags string
	// statuses maps the collection's status values to the system's (nil:
	// the same).
	statuses map[string]string
	// create makes the table and the triggers that count every write it
	// receives (countWrites).
	create string
	// mapping is what the system's sidecar is configured with.
	mapping mapping.TableConfig
}

// shapes are the three systems' shapes, by system name.
var shapes = map[string]shape{
	"crm": {
		table: "Account", key: "AccountId", name: "Name", status: "Status", phone: "Phone", address: "BillingStreet", tags: "Tags",
		statuses: map[string]string{"Prospect": "P", "Active": "A", "On Hold": "H", "Churned": "C"},
		create: `
CREATE TABLE IF NOT EXISTS Account (
	AccountId     INTEGER PRIMARY KEY AUTOINCREMENT,
	Name          TEXT NOT NULL,
	Status        TEXT,             -- P, A, H, C
	Phone         TEXT,
	BillingStreet TEXT,
	Tags          JSON,
	OwnerId       TEXT NOT NULL     -- the CRM's own: never synced
);
` + countWrites("Account", "AccountId"),
		mapping: mapping.TableConfig{
			Collection: "customers",
			Key:        mapping.KeyConfig{IDMap: "crm"},
			Columns: map[string]mapping.ColumnConfig{
				"AccountId":     {Field: "id"},
				"Name":          {Field: "name"},
				"Status":        {Field: "status", Values: map[string]string{"P": "Prospect", "A": "Active", "H": "On Hold", "C": "Churned"}},
				"Phone":         {Field: "phone"},
				"BillingStreet": {Field: "address"},
				"Tags":          {Field: "tags"},
				"OwnerId":       {Local: true, Default: "integration"},
			},
		},
	},
	"erp": {
		table: "customers", key: "id", name: "name", status: "status", phone: "phone_number", address: "address", tags: "tags",
		create: `
CREATE TABLE IF NOT EXISTS customers (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	name         TEXT NOT NULL,
	status       TEXT,                          -- Prospect, Active, On Hold, Churned
	phone_number TEXT,
	address      TEXT,
	tags         JSON,
	credit_limit INTEGER NOT NULL DEFAULT 5000  -- the ERP's own: never synced
);
` + countWrites("customers", "id"),
		mapping: mapping.TableConfig{
			Key: mapping.KeyConfig{IDMap: "erp"},
			Columns: map[string]mapping.ColumnConfig{
				"phone_number": {Field: "phone"},
				"credit_limit": {Local: true},
			},
		},
	},
	"web": {
		table: "clients", key: "uuid", name: "display_name", status: "state", phone: "phone", address: "street", tags: "labels",
		statuses: map[string]string{"Prospect": "lead", "Active": "active", "On Hold": "paused", "Churned": "gone"},
		create: `
CREATE TABLE IF NOT EXISTS clients (
	uuid         TEXT PRIMARY KEY NOT NULL DEFAULT (lower(hex(randomblob(8)))),
	display_name TEXT NOT NULL,
	state        TEXT,              -- lead, active, paused, gone
	phone        TEXT,
	street       TEXT,
	labels       JSON
);
` + countWrites("clients", "uuid"),
		mapping: mapping.TableConfig{
			Collection: "customers",
			Key:        mapping.KeyConfig{IDMap: "web"},
			Columns: map[string]mapping.ColumnConfig{
				"uuid":         {Field: "id"},
				"display_name": {Field: "name"},
				"state":        {Field: "status", Values: map[string]string{"lead": "Prospect", "active": "Active", "paused": "On Hold", "gone": "Churned"}},
				"street":       {Field: "address"},
				"labels":       {Field: "tags"},
			},
		},
	},
}

// countWrites returns the table and the triggers that count every write
// table receives, from users and from Lattice alike, by its key column.
func countWrites(table, key string) string {
	out := "CREATE TABLE IF NOT EXISTS demo_writes (seq INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT, op TEXT);\n"
	for _, t := range []struct{ op, row string }{{"insert", "NEW"}, {"update", "NEW"}, {"delete", "OLD"}} {
		out += fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS demo_count_%s AFTER %s ON %s BEGIN INSERT INTO demo_writes (k, op) VALUES (%s.%s, '%s'); END;\n",
			t.op, strings.ToUpper(t.op), table, t.row, key, t.op)
	}
	return out
}

// sys returns the system's own value for a collection status.
func (sh shape) sys(status string) string {
	if v, ok := sh.statuses[status]; ok {
		return v
	}
	return status
}

// coll returns the collection's status for a system value.
func (sh shape) coll(status string) string {
	for c, v := range sh.statuses {
		if v == status {
			return c
		}
	}
	return status
}

type system struct {
	name  string
	shape shape
	path  string
	db    *sql.DB
	agent *sidecar.Agent
	// userWrites counts the rows the demo changed here as a user.
	userWrites int
}

type runner struct {
	opts      Options
	tokenFile string
	out       io.Writer
	systems   []*system
	byName    map[string]*system
	replica   map[crdt.ReplicaID]string
}

// Run plays the demo. It returns an error if the databases do not end
// identical to each other and to their sidecars' merged states, or on an
// update war: a sidecar capturing more changes than its users made, or a
// database receiving more writes than the changes made elsewhere allow
// (writeCount.check).
func Run(ctx context.Context, opts Options) (err error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Dir == "" {
		dir, err := os.MkdirTemp("", "lattice-demo-")
		if err != nil {
			return errors.Wrap(err, "create demo directory")
		}
		defer os.RemoveAll(dir)
		opts.Dir = dir
	}
	r := &runner{opts: opts, out: opts.Out, byName: map[string]*system{}, replica: map[crdt.ReplicaID]string{}}
	defer r.close()
	start := time.Now()
	if err := r.setup(ctx); err != nil {
		return err
	}
	steps := []func(context.Context) error{r.sameField, r.differentFields, r.tags, r.deleteVsUpdate, r.newRecords}
	for i, step := range steps {
		fmt.Fprintf(r.out, "\n%d. ", i+1)
		if err := step(ctx); err != nil {
			return err
		}
	}
	if err := r.finish(ctx); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "\nDone in %s.\n", time.Since(start).Round(10*time.Millisecond))
	if !opts.Keep {
		fmt.Fprintln(r.out, "Run 'lattice demo --keep' to keep the cluster up and look at it in the web console.")
		return nil
	}
	var consoles []string
	fmt.Fprintln(r.out, "\nThe cluster stays up. Open a console in a browser and log in with the token in")
	fmt.Fprintf(r.out, "%s:\n", r.tokenFile)
	for _, s := range r.systems {
		u := "http://" + s.agent.APIAddr() + "/ui/"
		consoles = append(consoles, u)
		fmt.Fprintf(r.out, "  %-4s %s\n", s.name, u)
	}
	fmt.Fprintln(r.out, "Change the databases with sqlite3 and watch the changes flow. Press Ctrl-C to stop.")
	if opts.Ready != nil {
		opts.Ready(consoles)
	}
	<-ctx.Done()
	fmt.Fprintln(r.out, "Stopping.")
	return nil
}

func (r *runner) close() {
	for _, s := range r.systems {
		if s.agent != nil {
			_ = s.agent.Close()
		}
		if s.db != nil {
			_ = s.db.Close()
		}
	}
}

func (r *runner) setup(ctx context.Context) error {
	fmt.Fprintln(r.out, "Lattice demo: a CRM, an ERP and a web shop, each with its own SQLite database and its own")
	fmt.Fprintln(r.out, "sidecar. Their schemas differ as real ones do: table and column names, status values, and")
	fmt.Fprintln(r.out, "keys each system generates itself. Each sidecar maps its own schema to one collection.")
	fmt.Fprintln(r.out, "Every change below is made with SQL directly in one database, as its users would.")
	names := []string{"crm", "erp", "web"}
	for _, name := range names {
		s := &system{name: name, shape: shapes[name], path: filepath.Join(r.opts.Dir, name+".db")}
		db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return errors.Wrapf(err, "open %s", s.path)
		}
		s.db = db
		if _, err := db.ExecContext(ctx, s.shape.create); err != nil {
			return errors.Wrapf(err, "create tables in %s", s.path)
		}
		r.systems = append(r.systems, s)
		r.byName[name] = s
	}
	// The CRM already holds the customer base; the other two start empty.
	crm := r.byName["crm"]
	seed := []string{
		`INSERT INTO Account (Name, Status, Phone, BillingStreet, Tags, OwnerId) VALUES ('Acme Corp', 'P', '+1 555 0100', '1 Main St',   '["trial"]',       'ann')`,
		`INSERT INTO Account (Name, Status, Phone, BillingStreet, Tags, OwnerId) VALUES ('Globex',    'A', '+1 555 0200', '2 Oak Ave',   NULL,              'bob')`,
		`INSERT INTO Account (Name, Status, Phone, BillingStreet, Tags, OwnerId) VALUES ('Initech',   'A', '+1 555 0300', '3 Elm Rd',    '["eu","trial"]',  'ann')`,
		`INSERT INTO Account (Name, Status, Phone, BillingStreet, Tags, OwnerId) VALUES ('Umbrella',  'A', '+1 555 0400', '4 Pine Blvd', '["emea"]',        'cy')`,
	}
	for _, q := range seed {
		if err := r.exec(ctx, crm, q); err != nil {
			return err
		}
	}
	// One gossip key for the three sidecars, as a real cluster would have.
	key, err := gossip.GenerateKey()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(r.opts.Dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(gossip.EncodeKey(key)+"\n"), 0o600); err != nil {
		return errors.Wrap(err, "write the demo's gossip key")
	}
	// One API token for the three, as a real cluster would have: the
	// consoles ask for it.
	tok := make([]byte, 24)
	_, _ = rand.Read(tok) // crypto/rand.Read never fails (Go 1.24+)
	r.tokenFile = filepath.Join(r.opts.Dir, "api.token")
	if err := os.WriteFile(r.tokenFile, []byte(base64.RawURLEncoding.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return errors.Wrap(err, "write the demo's API token")
	}
	// Each sidecar binds a free port and joins the ones started before it.
	var join []string
	for _, s := range r.systems {
		cfg := sidecar.Config{
			Node:    s.name,
			Data:    filepath.Join(r.opts.Dir, s.name+"-store"),
			Bind:    "127.0.0.1:0",
			Join:    slices.Clone(join),
			Cluster: "lattice-demo",
			KeyFile: keyFile,
			API:     sidecar.APIConfig{Addr: "127.0.0.1:0", TokenFile: r.tokenFile},
			Adapter: sidecar.AdapterConfig{Kind: sidecar.AdapterSQLite, DSN: s.path, Tables: []string{s.shape.table}, PollInterval: 5 * time.Millisecond},
			Collections: map[string]sidecar.CollectionConfig{
				"customers": {Fields: map[string]sidecar.FieldConfig{"tags": {Policy: "orset"}}},
			},
			Mapping: mapping.Config{Tables: map[string]mapping.TableConfig{s.shape.table: s.shape.mapping}},
		}
		a, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: r.opts.Logger})
		if err != nil {
			return errors.Wrapf(err, "start the %s sidecar", s.name)
		}
		s.agent = a
		r.replica[a.Store().ReplicaID()] = s.name
		join = append(join, a.Node().Addr())
	}
	for _, s := range r.systems {
		fmt.Fprintf(r.out, "  %-4s %-9s %s  (sidecar API and console http://%s/ui/)\n", s.name, s.shape.table, s.path, s.agent.APIAddr())
	}
	fmt.Fprintln(r.out, "\nAt first only crm holds the customers; Lattice copies them to erp and web, where each")
	fmt.Fprintln(r.out, "gets a key its database generates (the sidecars keep an ID map), in each system's own terms:")
	if err := r.converge(ctx); err != nil {
		return err
	}
	return r.show(ctx, nil)
}

func (r *runner) exec(ctx context.Context, s *system, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return errors.Wrapf(err, "%s: %s", s.name, q)
	}
	n, _ := res.RowsAffected()
	s.userWrites += int(n)
	return nil
}

// row is one customer: as a database holds it (local key and the system's
// own status value), or in collection terms (normal).
type row struct {
	key                                string
	name, status, phone, address, tags string
}

// normal returns the row in collection terms, without its local key: what
// the three databases must agree on.
func (w row) normal(sh shape) row {
	w.key = ""
	w.status = sh.coll(w.status)
	w.tags = setText(w.tags)
	return w
}

func (w row) String() string {
	return fmt.Sprintf("%-16s %-10s %-8s %-12s %-12s %s", w.key, w.name, w.status, w.phone, w.address, w.tags)
}

// rows reads a system's customers with SQL, in its own terms, sorted by
// name.
func (r *runner) rows(ctx context.Context, s *system) ([]row, error) {
	sh := s.shape
	q := fmt.Sprintf(`SELECT CAST(%s AS TEXT), %s, COALESCE(%s,''), COALESCE(%s,''), COALESCE(%s,''), COALESCE(%s,'') FROM %s ORDER BY %s`,
		sh.key, sh.name, sh.status, sh.phone, sh.address, sh.tags, sh.table, sh.name)
	rs, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, errors.Wrapf(err, "read %s", s.name)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var w row
		if err := rs.Scan(&w.key, &w.name, &w.status, &w.phone, &w.address, &w.tags); err != nil {
			return nil, errors.Wrapf(err, "read %s", s.name)
		}
		out = append(out, w)
	}
	return out, rs.Err()
}

// normalRows reads a system's customers in collection terms.
func (r *runner) normalRows(ctx context.Context, s *system) ([]row, error) {
	rows, err := r.rows(ctx, s)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		rows[i] = rows[i].normal(s.shape)
	}
	return rows, nil
}

// converge waits until the three databases hold the same customers (in
// collection terms), each the customers its own sidecar's merged state
// holds, the three replicas have the same digest, and no sidecar has
// anything left to apply. Equal digests alone would say nothing about the
// databases.
func (r *runner) converge(ctx context.Context) error {
	deadline := time.Now().Add(r.opts.Timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		same, why, err := r.converged(ctx)
		if err != nil {
			return err
		}
		if same {
			return nil
		}
		last = why
		if time.Now().After(deadline) {
			return errors.Newf("the databases did not converge within %s: %s", r.opts.Timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (r *runner) converged(ctx context.Context) (bool, string, error) {
	for _, s := range r.systems {
		if !s.agent.Ready() {
			return false, s.name + " is not ready", nil
		}
		if n := s.agent.Store().PendingLen(); n > 0 {
			return false, fmt.Sprintf("%s has %d records to apply", s.name, n), nil
		}
	}
	why, err := r.checkTables(ctx)
	if err != nil || why != "" {
		return false, why, err
	}
	first := r.systems[0]
	for _, s := range r.systems[1:] {
		if s.agent.Digest() != first.agent.Digest() {
			return false, fmt.Sprintf("the replica digests of %s and %s differ", s.name, first.name), nil
		}
	}
	return true, "", nil
}

// checkTables compares the customers of every database, in collection
// terms, with the first database's and with its own sidecar's merged
// state. Names are unique in the demo, so a record the ID map lost or
// doubled shows as a missing or extra name. It returns "" when all agree,
// else what differs.
func (r *runner) checkTables(ctx context.Context) (string, error) {
	var first []row
	for i, s := range r.systems {
		rows, err := r.normalRows(ctx, s)
		if err != nil {
			return "", err
		}
		merged, err := r.storeRows(s)
		if err != nil {
			return "", err
		}
		for i := range merged {
			merged[i].key = ""
		}
		if d := diffRows(rows, merged); d != "" {
			return fmt.Sprintf("%s's database and its sidecar's merged state differ: %s", s.name, d), nil
		}
		if i == 0 {
			first = rows
			continue
		}
		if d := diffRows(rows, first); d != "" {
			return fmt.Sprintf("the databases of %s and %s differ: %s", s.name, r.systems[0].name, d), nil
		}
	}
	return "", nil
}

// storeRows returns the customers as a sidecar's merged state holds them,
// in collection terms with their collection keys, sorted by name.
func (r *runner) storeRows(s *system) ([]row, error) {
	st := s.agent.Store()
	col, err := st.Schema().Collection("customers")
	if err != nil {
		return nil, err
	}
	var ids []crdt.ID
	st.Ascend("", "", func(id crdt.ID, _ crdt.Hash) bool {
		ids = append(ids, id)
		return true
	})
	d, err := st.Records(ids)
	if err != nil {
		return nil, errors.Wrapf(err, "read %s's merged state", s.name)
	}
	var out []row
	for _, f := range d.Fragments {
		view := f.Record.View(col)
		if f.Collection != "customers" || view == nil {
			continue
		}
		text := func(field string) string {
			if v, ok := view[field]; ok {
				return v.Text()
			}
			return ""
		}
		w := row{key: f.Key.String(), name: text("name"), status: text("status"), phone: text("phone"), address: text("address")}
		if v, ok := view["tags"]; ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			w.tags = setText(string(b))
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b row) int { return cmp.Compare(a.name, b.name) })
	return out, nil
}

// diffRows describes the first difference between two customer lists in
// collection terms, sorted by name ("" if none).
func diffRows(a, b []row) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return fmt.Sprintf("%s is missing from the first", b[i].name)
		case i >= len(b):
			return fmt.Sprintf("%s is missing from the second", a[i].name)
		case a[i].name != b[i].name:
			return fmt.Sprintf("%s is where %s is", a[i].name, b[i].name)
		}
		if a[i] != b[i] {
			return fmt.Sprintf("[%s] vs [%s]", strings.Join(strings.Fields(a[i].String()), " "), strings.Join(strings.Fields(b[i].String()), " "))
		}
	}
	return ""
}

// setText is a tags column as a sorted set ("" for none); text that is not
// a JSON array of strings stays as it is.
func setText(s string) string {
	var l []string
	if s == "" || json.Unmarshal([]byte(s), &l) != nil {
		return s
	}
	if len(l) == 0 {
		return ""
	}
	slices.Sort(l)
	return strings.Join(slices.Compact(l), ",")
}

// show prints each database's customers in its own terms: its table, its
// column names, its keys and its status values. Only the names in focus
// are shown, or all when focus is nil.
func (r *runner) show(ctx context.Context, focus []string) error {
	for _, s := range r.systems {
		rows, err := r.rows(ctx, s)
		if err != nil {
			return err
		}
		sh := s.shape
		fmt.Fprintf(r.out, "   %-4s %-9s %-16s %-12s %-8s %-12s %-13s %s\n", s.name, sh.table, sh.key, sh.name, sh.status, sh.phone, sh.address, sh.tags)
		for _, w := range rows {
			if focus == nil || slices.Contains(focus, w.name) {
				fmt.Fprintf(r.out, "   %-14s %-16s %-12s %-8s %-12s %-13s %s\n", "", w.key, w.name, w.status, w.phone, w.address, w.tags)
			}
		}
	}
	return nil
}

// record returns the collection key of a customer, read from the crm
// sidecar's merged state.
func (r *runner) record(name string) (crdt.Key, bool) {
	rows, err := r.storeRows(r.systems[0])
	if err != nil {
		return "", false
	}
	for _, w := range rows {
		if w.name == name {
			k, err := crdt.ParseKeyText(w.key, []crdt.Kind{crdt.KindString})
			return k, err == nil
		}
	}
	return "", false
}

// meta returns who wrote a field's visible value and when, read from the
// crm sidecar's merged state.
func (r *runner) meta(name, field string) (string, time.Time, bool) {
	a := r.systems[0].agent
	col, err := a.Store().Schema().Collection("customers")
	if err != nil {
		return "", time.Time{}, false
	}
	k, ok := r.record(name)
	if !ok {
		return "", time.Time{}, false
	}
	rec, err := a.Store().Get("customers", k)
	if err != nil || rec == nil {
		return "", time.Time{}, false
	}
	_, m, ok := rec.Get(col, field)
	if !ok {
		return "", time.Time{}, false
	}
	return r.replica[m.Stamp.Replica], m.Stamp.TS.GoTime(), true
}

// update runs an UPDATE of one customer, by name, in a system's own terms:
// set maps the system's columns to values.
func (r *runner) update(ctx context.Context, s *system, name string, set map[string]string) error {
	cols := slices.Sorted(maps.Keys(set))
	assign := make([]string, len(cols))
	args := make([]any, 0, len(cols)+1)
	for i, c := range cols {
		assign[i] = c + " = ?"
		args = append(args, set[c])
	}
	args = append(args, name)
	return r.exec(ctx, s, fmt.Sprintf(`UPDATE %s SET %s WHERE %s = ?`, s.shape.table, strings.Join(assign, ", "), s.shape.name), args...)
}

func (r *runner) sameField(ctx context.Context) error {
	crm, erp := r.byName["crm"], r.byName["erp"]
	fmt.Fprintln(r.out, "The same field changed in two systems at once")
	fmt.Fprintln(r.out, "   crm sets Acme's Status to 'A' (Active) while erp sets its status to 'On Hold'.")
	fmt.Fprintln(r.out, "   Two one-way syncs would copy each value over the other, back and forth.")
	if err := r.update(ctx, crm, "Acme Corp", map[string]string{crm.shape.status: crm.shape.sys("Active")}); err != nil {
		return err
	}
	if err := r.update(ctx, erp, "Acme Corp", map[string]string{erp.shape.status: erp.shape.sys("On Hold")}); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []string{"Acme Corp"}); err != nil {
		return err
	}
	if who, at, ok := r.meta("Acme Corp", "status"); ok {
		fmt.Fprintf(r.out, "   Won: status %q, committed in %s at %s: the change committed last wins (lww; within\n   one millisecond, the higher replica ID), in every database, each in its own status values.\n",
			r.valueOf(ctx, "Acme Corp", "status"), who, at.Format("15:04:05.000000"))
	}
	return nil
}

func (r *runner) differentFields(ctx context.Context) error {
	crm, web := r.byName["crm"], r.byName["web"]
	fmt.Fprintln(r.out, "Different fields of one row changed in two systems at once")
	fmt.Fprintln(r.out, "   crm changes Globex's Phone while web changes its street.")
	fmt.Fprintln(r.out, "   A row-level sync would keep one row and lose the other change.")
	if err := r.update(ctx, crm, "Globex", map[string]string{crm.shape.phone: "+1 555 0299"}); err != nil {
		return err
	}
	if err := r.update(ctx, web, "Globex", map[string]string{web.shape.address: "22 Birch Ln"}); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []string{"Globex"}); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "   Won: both. Lattice merges per field: the phone from crm, the address from web, each")
	fmt.Fprintln(r.out, "   written into every database under that database's own column name.")
	return nil
}

func (r *runner) tags(ctx context.Context) error {
	fmt.Fprintln(r.out, "Tags added and removed in three systems at once")
	fmt.Fprintln(r.out, `   Initech's tags are ["eu","trial"]. crm adds "vip" and removes "trial"; erp adds "priority"; web removes "eu".`)
	for name, tags := range map[string]string{"crm": `["eu","vip"]`, "erp": `["eu","priority","trial"]`, "web": `["trial"]`} {
		s := r.byName[name]
		if err := r.update(ctx, s, "Initech", map[string]string{s.shape.tags: tags}); err != nil {
			return err
		}
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []string{"Initech"}); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "   Won: every intent. The tags are an add-wins set: each add and each remove is kept, so\n   the tags are %s.\n", r.valueOf(ctx, "Initech", "tags"))
	return nil
}

func (r *runner) deleteVsUpdate(ctx context.Context) error {
	crm, erp := r.byName["crm"], r.byName["erp"]
	fmt.Fprintln(r.out, "A record deleted in one system while another updates it")
	fmt.Fprintln(r.out, "   erp marks Umbrella as Churned; a moment later, before the change arrives, crm deletes Umbrella.")
	if err := r.update(ctx, erp, "Umbrella", map[string]string{erp.shape.status: erp.shape.sys("Churned")}); err != nil {
		return err
	}
	if err := r.exec(ctx, crm, `DELETE FROM Account WHERE Name = 'Umbrella'`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	rows, err := r.normalRows(ctx, r.systems[0])
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(rows, func(w row) bool { return w.name == "Umbrella" }) {
		fmt.Fprintln(r.out, "   Won: the delete. crm committed it after erp committed the update, so Umbrella is gone from")
		fmt.Fprintln(r.out, "   all three databases, even where the update was captured after the delete arrived.")
		return nil
	}
	fmt.Fprintln(r.out, "   Won: the update. By the databases' commit times it is newer than the delete and was made")
	fmt.Fprintln(r.out, "   without seeing it, so it cancels the delete: Umbrella lives on, whole, with the update")
	fmt.Fprintln(r.out, "   applied, in all three databases.")
	return r.show(ctx, []string{"Umbrella"})
}

func (r *runner) newRecords(ctx context.Context) error {
	erp, web := r.byName["erp"], r.byName["web"]
	fmt.Fprintln(r.out, "A new customer created in each of two systems, each with a key only that system knows")
	fmt.Fprintln(r.out, "   erp inserts Hooli (its id is generated by erp); web inserts Stark (its uuid generated by web).")
	if err := r.exec(ctx, erp, `INSERT INTO customers (name, status, phone_number, address) VALUES ('Hooli', 'Prospect', '+1 555 0500', '5 Cedar Ct')`); err != nil {
		return err
	}
	if err := r.exec(ctx, web, `INSERT INTO clients (display_name, state, phone, street, labels) VALUES ('Stark', 'active', '+1 555 0600', '6 Ash Way', '["b2b"]')`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []string{"Hooli", "Stark"}); err != nil {
		return err
	}
	for _, name := range []string{"Hooli", "Stark"} {
		if k, ok := r.record(name); ok {
			fmt.Fprintf(r.out, "   %s is record %s in the cluster;", name, k)
			for _, s := range r.systems {
				rows, err := r.rows(ctx, s)
				if err != nil {
					return err
				}
				for _, w := range rows {
					if w.name == name {
						fmt.Fprintf(r.out, " %s %s %s", s.name, s.shape.key, w.key)
					}
				}
			}
			fmt.Fprintln(r.out, ".")
		}
	}
	fmt.Fprintln(r.out, "   Each database generated its own key for the new rows, and each sidecar recorded it in its")
	fmt.Fprintln(r.out, "   ID map in the same transaction as the insert.")
	var owner string
	var limit int
	if err := r.byName["crm"].db.QueryRowContext(ctx, `SELECT OwnerId FROM Account WHERE Name = 'Stark'`).Scan(&owner); err != nil {
		return errors.Wrap(err, "read crm's OwnerId")
	}
	if err := r.byName["erp"].db.QueryRowContext(ctx, `SELECT credit_limit FROM customers WHERE name = 'Stark'`).Scan(&limit); err != nil {
		return errors.Wrap(err, "read erp's credit_limit")
	}
	fmt.Fprintf(r.out, "   Columns only one system has stay its own: crm gave Stark OwnerId %q (the mapping's\n   default), erp a credit_limit of %d (the column's default).\n", owner, limit)
	return nil
}

// valueOf returns a field of a customer in collection terms, as crm's
// database holds it.
func (r *runner) valueOf(ctx context.Context, name, field string) string {
	rows, _ := r.normalRows(ctx, r.systems[0])
	for _, w := range rows {
		if w.name != name {
			continue
		}
		switch field {
		case "status":
			return w.status
		case "tags":
			return "[" + w.tags + "]"
		}
	}
	return ""
}

// writes returns how many writes a database's customers table received.
func (r *runner) writes(ctx context.Context, s *system) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM demo_writes`).Scan(&n)
	return n, errors.Wrapf(err, "count writes in %s", s.name)
}

func (r *runner) finish(ctx context.Context) error {
	// A last change on one side is the barrier: once it has reached every
	// database, anything still bouncing between the systems would show up in
	// the write counts.
	if err := r.exec(ctx, r.byName["web"], `UPDATE clients SET state = 'active' WHERE display_name = 'Globex'`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "\nFinal state, each database in its own terms:")
	if err := r.show(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "\nWrites each database received, and changes each sidecar captured from it:")
	fmt.Fprintf(r.out, "   %-4s %12s %14s %24s %10s\n", "db", "from users", "from Lattice", "changes made elsewhere", "captured")
	total := 0
	for _, s := range r.systems {
		total += s.userWrites
	}
	var wars []error
	for _, s := range r.systems {
		n, err := r.writes(ctx, s)
		if err != nil {
			return err
		}
		w := writeCount{
			system:      s.name,
			fromUsers:   s.userWrites,
			fromLattice: n - s.userWrites,
			elsewhere:   total - s.userWrites,
			captured:    int(s.agent.Store().Stats().LocalChanges),
		}
		fmt.Fprintf(r.out, "   %-4s %12d %14d %24d %10d\n", w.system, w.fromUsers, w.fromLattice, w.elsewhere, w.captured)
		if err := w.check(); err != nil {
			wars = append(wars, err)
		}
	}
	if err := errors.Join(wars...); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "   Each change made elsewhere reaches a database once. Where it crossed a change made")
	fmt.Fprintln(r.out, "   in that database before the sidecar captured it, the merged value is written back")
	fmt.Fprintln(r.out, "   once more, so no database needs more writes than twice the changes made elsewhere.")
	fmt.Fprintln(r.out, "   No sidecar captured more changes than its users made: Lattice's own writes were")
	fmt.Fprintln(r.out, "   never captured back as new changes. No update war.")
	d := r.systems[0].agent.Digest()
	fmt.Fprintf(r.out, "\nAll three databases hold the same customers, each in its own schema\n(replica digest %s, %d records).\n", d.Hash.String()[:16], d.Count)
	return nil
}

// writeCount is what one database received and what its sidecar captured
// from it over a demo run.
type writeCount struct {
	system string
	// fromUsers and fromLattice count the rows written in the database by
	// its users and by its sidecar's applies.
	fromUsers, fromLattice int
	// elsewhere counts the rows written by users of the other databases.
	elsewhere int
	// captured counts the changes the sidecar took from its database that
	// changed the merged state.
	captured int
}

// check fails on what only an update war produces. The design allows each
// change made elsewhere to be written into a database once, plus one
// write-back of the merged value when it crossed a change this database's
// users made before capture saw it (the apply overwrote that change, and
// the merged record is written again). A write of Lattice's own captured
// back as a change is a loop whatever the counts.
func (w writeCount) check() error {
	if w.captured > w.fromUsers {
		return errors.Newf("update war: %s's sidecar captured %d changes but its users made %d: Lattice's own writes came back as changes",
			w.system, w.captured, w.fromUsers)
	}
	if allowed := 2 * w.elsewhere; w.fromLattice > allowed {
		return errors.Newf("update war: %s received %d writes from Lattice for %d changes made elsewhere (at most %d: each once, and one write-back of the merged value each)",
			w.system, w.fromLattice, w.elsewhere, allowed)
	}
	return nil
}
