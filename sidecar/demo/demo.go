// Package demo runs three Lattice sidecars in one process, each beside its
// own SQLite database, and plays the classic failures of two one-way syncs
// against them: the same field changed on two sides at once, different
// fields of one row changed on two sides, a set changed on three sides, and
// a delete racing an update. It shows what each database held before and
// after, which value won and why, how many writes each database received,
// and checks after every step that the three databases hold the same rows,
// each the rows its own sidecar's merged state holds.
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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
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

const schemaSQL = `
CREATE TABLE IF NOT EXISTS customers (
	id      INTEGER PRIMARY KEY,
	name    TEXT NOT NULL,
	status  TEXT,
	phone   TEXT,
	address TEXT,
	tags    JSON
);
-- Counts every write the table receives, from users and from Lattice alike.
CREATE TABLE IF NOT EXISTS demo_writes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER, op TEXT);
CREATE TRIGGER IF NOT EXISTS demo_count_insert AFTER INSERT ON customers BEGIN INSERT INTO demo_writes (id, op) VALUES (NEW.id, 'insert'); END;
CREATE TRIGGER IF NOT EXISTS demo_count_update AFTER UPDATE ON customers BEGIN INSERT INTO demo_writes (id, op) VALUES (NEW.id, 'update'); END;
CREATE TRIGGER IF NOT EXISTS demo_count_delete AFTER DELETE ON customers BEGIN INSERT INTO demo_writes (id, op) VALUES (OLD.id, 'delete'); END;
`

type system struct {
	name  string
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
	steps := []func(context.Context) error{r.sameField, r.differentFields, r.tags, r.deleteVsUpdate}
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
	fmt.Fprintln(r.out, "Lattice demo: three systems, each with its own SQLite database and its own sidecar.")
	fmt.Fprintln(r.out, "Every change below is made with SQL directly in one database, as its users would.")
	names := []string{"crm", "erp", "web"}
	for _, name := range names {
		s := &system{name: name, path: filepath.Join(r.opts.Dir, name+".db")}
		db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err != nil {
			return errors.Wrapf(err, "open %s", s.path)
		}
		s.db = db
		if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
			return errors.Wrapf(err, "create tables in %s", s.path)
		}
		r.systems = append(r.systems, s)
		r.byName[name] = s
	}
	// The CRM already holds the customer base; the other two start empty.
	crm := r.byName["crm"]
	seed := []string{
		`INSERT INTO customers VALUES (1, 'Acme Corp',   'Prospect', '+1 555 0100', '1 Main St',    '["trial"]')`,
		`INSERT INTO customers VALUES (2, 'Globex',      'Active',   '+1 555 0200', '2 Oak Ave',    NULL)`,
		`INSERT INTO customers VALUES (3, 'Initech',     'Active',   '+1 555 0300', '3 Elm Rd',     '["eu","trial"]')`,
		`INSERT INTO customers VALUES (4, 'Umbrella',    'Active',   '+1 555 0400', '4 Pine Blvd',  '["emea"]')`,
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
			Adapter: sidecar.AdapterConfig{Kind: sidecar.AdapterSQLite, DSN: s.path, Tables: []string{"customers"}, PollInterval: 5 * time.Millisecond},
			Collections: map[string]sidecar.CollectionConfig{
				"customers": {Fields: map[string]sidecar.FieldConfig{"tags": {Policy: "orset"}}},
			},
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
		fmt.Fprintf(r.out, "  %-4s %s  (sidecar API and console http://%s/ui/)\n", s.name, s.path, s.agent.APIAddr())
	}
	fmt.Fprintln(r.out, "\nAt first only crm holds the customers; Lattice copies them to erp and web:")
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

// row is one customer as a database holds it.
type row struct {
	id                                 int64
	name, status, phone, address, tags string
}

func (w row) String() string {
	return fmt.Sprintf("%-2d %-10s %-9s %-12s %-12s %s", w.id, w.name, w.status, w.phone, w.address, w.tags)
}

func (r *runner) rows(ctx context.Context, s *system) ([]row, error) {
	rs, err := s.db.QueryContext(ctx, `SELECT id, name, COALESCE(status,''), COALESCE(phone,''), COALESCE(address,''), COALESCE(tags,'') FROM customers ORDER BY id`)
	if err != nil {
		return nil, errors.Wrapf(err, "read %s", s.name)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var w row
		if err := rs.Scan(&w.id, &w.name, &w.status, &w.phone, &w.address, &w.tags); err != nil {
			return nil, errors.Wrapf(err, "read %s", s.name)
		}
		out = append(out, w)
	}
	return out, rs.Err()
}

// converge waits until the three databases hold the same rows, each the
// rows its own sidecar's merged state holds, the three replicas have the
// same digest, and no sidecar has anything left to apply. Equal digests
// alone would say nothing about the databases.
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

// checkTables compares the customers table of every database with the
// first database's and with its own sidecar's merged state. It returns ""
// when all agree, else what differs.
func (r *runner) checkTables(ctx context.Context) (string, error) {
	var first []row
	for i, s := range r.systems {
		rows, err := r.rows(ctx, s)
		if err != nil {
			return "", err
		}
		merged, err := r.storeRows(s)
		if err != nil {
			return "", err
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
// in the form rows reads them from a database.
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
		vals, err := f.Key.Values()
		if err != nil || len(vals) != 1 || vals[0].Kind() != crdt.KindInt {
			return nil, errors.Newf("%s holds customer key %s, not one integer", s.name, f.Key)
		}
		text := func(field string) string {
			if v, ok := view[field]; ok {
				return v.Text()
			}
			return ""
		}
		w := row{id: vals[0].AsInt(), name: text("name"), status: text("status"), phone: text("phone"), address: text("address")}
		if v, ok := view["tags"]; ok {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			w.tags = string(b)
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	return out, nil
}

// diffRows describes the first difference between two customer lists ("" if
// none). Tags compare as sets: a database keeps a set in any order.
func diffRows(a, b []row) string {
	for i := 0; i < len(a) || i < len(b); i++ {
		switch {
		case i >= len(a):
			return fmt.Sprintf("customer %d is missing from the first", b[i].id)
		case i >= len(b):
			return fmt.Sprintf("customer %d is missing from the second", a[i].id)
		case a[i].id != b[i].id:
			return fmt.Sprintf("customer %d is where customer %d is", a[i].id, b[i].id)
		}
		x, y := a[i], b[i]
		x.tags, y.tags = setText(x.tags), setText(y.tags)
		if x != y {
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

// show prints the customers table, once if all databases agree, else per
// database. Only ids in focus are shown, or all when focus is nil.
func (r *runner) show(ctx context.Context, focus []int64) error {
	var all [][]row
	for _, s := range r.systems {
		rows, err := r.rows(ctx, s)
		if err != nil {
			return err
		}
		all = append(all, rows)
	}
	header := fmt.Sprintf("%-2s %-10s %-9s %-12s %-12s %s", "id", "name", "status", "phone", "address", "tags")
	print := func(prefix string, rows []row) {
		for _, w := range rows {
			if focus == nil || slices.Contains(focus, w.id) {
				fmt.Fprintf(r.out, "%s%s\n", prefix, w)
			}
		}
	}
	if slices.EqualFunc(all[1:], all[:len(all)-1], func(a, b []row) bool { return slices.Equal(a, b) }) {
		fmt.Fprintf(r.out, "   all three  %s\n", header)
		print("              ", all[0])
		return nil
	}
	fmt.Fprintf(r.out, "   %-10s %s\n", "", header)
	for i, s := range r.systems {
		print(fmt.Sprintf("   %-10s ", s.name), all[i])
	}
	return nil
}

// meta returns who wrote a field's visible value and when, read from the
// crm sidecar's merged state.
func (r *runner) meta(collection string, id int64, field string) (string, time.Time, bool) {
	a := r.systems[0].agent
	col, err := a.Store().Schema().Collection(collection)
	if err != nil {
		return "", time.Time{}, false
	}
	rec, err := a.Store().Get(collection, crdt.IntKey(id))
	if err != nil || rec == nil {
		return "", time.Time{}, false
	}
	_, m, ok := rec.Get(col, field)
	if !ok {
		return "", time.Time{}, false
	}
	return r.replica[m.Stamp.Replica], m.Stamp.TS.GoTime(), true
}

func (r *runner) sameField(ctx context.Context) error {
	fmt.Fprintln(r.out, "The same field changed in two systems at once")
	fmt.Fprintln(r.out, "   crm sets Acme's status to Active while erp sets it to On Hold.")
	fmt.Fprintln(r.out, "   Two one-way syncs would copy each value over the other, back and forth.")
	if err := r.exec(ctx, r.byName["crm"], `UPDATE customers SET status = 'Active' WHERE id = 1`); err != nil {
		return err
	}
	if err := r.exec(ctx, r.byName["erp"], `UPDATE customers SET status = 'On Hold' WHERE id = 1`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []int64{1}); err != nil {
		return err
	}
	if who, at, ok := r.meta("customers", 1, "status"); ok {
		fmt.Fprintf(r.out, "   Won: status = %q, committed in %s at %s: the change committed last wins (lww; within\n   one millisecond, the higher replica ID), however late each sidecar captured its own, in every database.\n",
			r.valueOf(ctx, 1, "status"), who, at.Format("15:04:05.000000"))
	}
	return nil
}

func (r *runner) differentFields(ctx context.Context) error {
	fmt.Fprintln(r.out, "Different fields of one row changed in two systems at once")
	fmt.Fprintln(r.out, "   crm changes Globex's phone while web changes its address.")
	fmt.Fprintln(r.out, "   A row-level sync would keep one row and lose the other change.")
	if err := r.exec(ctx, r.byName["crm"], `UPDATE customers SET phone = '+1 555 0299' WHERE id = 2`); err != nil {
		return err
	}
	if err := r.exec(ctx, r.byName["web"], `UPDATE customers SET address = '22 Birch Ln' WHERE id = 2`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []int64{2}); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "   Won: both. Lattice merges per field: phone from crm, address from web.")
	return nil
}

func (r *runner) tags(ctx context.Context) error {
	fmt.Fprintln(r.out, "Tags added and removed in three systems at once")
	fmt.Fprintln(r.out, `   Initech's tags are ["eu","trial"]. crm adds "vip" and removes "trial"; erp adds "priority"; web removes "eu".`)
	if err := r.exec(ctx, r.byName["crm"], `UPDATE customers SET tags = '["eu","vip"]' WHERE id = 3`); err != nil {
		return err
	}
	if err := r.exec(ctx, r.byName["erp"], `UPDATE customers SET tags = '["eu","priority","trial"]' WHERE id = 3`); err != nil {
		return err
	}
	if err := r.exec(ctx, r.byName["web"], `UPDATE customers SET tags = '["trial"]' WHERE id = 3`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	if err := r.show(ctx, []int64{3}); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "   Won: every intent. tags is an add-wins set: each add and each remove is kept, so tags = %s.\n", r.valueOf(ctx, 3, "tags"))
	return nil
}

func (r *runner) deleteVsUpdate(ctx context.Context) error {
	fmt.Fprintln(r.out, "A record deleted in one system while another updates it")
	fmt.Fprintln(r.out, "   erp marks Umbrella as Churned; a moment later, before the change arrives, crm deletes Umbrella.")
	if err := r.exec(ctx, r.byName["erp"], `UPDATE customers SET status = 'Churned' WHERE id = 4`); err != nil {
		return err
	}
	if err := r.exec(ctx, r.byName["crm"], `DELETE FROM customers WHERE id = 4`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	rows, err := r.rows(ctx, r.systems[0])
	if err != nil {
		return err
	}
	gone := !slices.ContainsFunc(rows, func(w row) bool { return w.id == 4 })
	if gone {
		fmt.Fprintln(r.out, "   Won: the delete. crm committed it after erp committed the update, so Umbrella is gone from")
		fmt.Fprintln(r.out, "   all three databases, even where the update was captured after the delete arrived.")
	} else {
		fmt.Fprintln(r.out, "   Won: the update. By the databases' commit times it is newer than the delete and was made")
		fmt.Fprintln(r.out, "   without seeing it, so it cancels the delete: Umbrella lives on, whole, with the update")
		fmt.Fprintln(r.out, "   applied, in all three databases.")
		if err := r.show(ctx, []int64{4}); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) valueOf(ctx context.Context, id int64, field string) string {
	var v sql.NullString
	_ = r.systems[0].db.QueryRowContext(ctx, `SELECT `+field+` FROM customers WHERE id = ?`, id).Scan(&v)
	return v.String
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
	if err := r.exec(ctx, r.byName["web"], `UPDATE customers SET status = 'Active' WHERE id = 2`); err != nil {
		return err
	}
	if err := r.converge(ctx); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "\nFinal state:")
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
	fmt.Fprintf(r.out, "\nAll three databases are identical (replica digest %s, %d records).\n", d.Hash.String()[:16], d.Count)
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
