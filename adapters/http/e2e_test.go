package http

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/lattice-crdt/lattice/adapters/sqlite" // the other node's adapter
	"github.com/lattice-crdt/lattice/sidecar"
)

// Two sidecars, one over json-server's API and one over a SQLite database,
// keep the contacts equal: records created, updated and deleted on either
// side, deletes in the API found by reconciliation. The systems' tables are
// compared at the end.
func TestIntegrationEndToEndWithSQLite(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	_, db := apiBesideSQLite(t, s.URL, "", "")

	// The two tables as "id|name|email|age" lines, sorted by ID.
	apiRows := func() string {
		var out []string
		recs := s.Records("contacts")
		for _, id := range slices.Sorted(maps.Keys(recs)) {
			r := recs[id]
			out = append(out, fmt.Sprintf("%s|%v|%v|%v", id, r["name"], r["email"], r["age"]))
		}
		return strings.Join(out, "\n")
	}
	dbRows := func() string {
		rows, err := db.Query(`SELECT id, name, email, age FROM contacts ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id, name, email string
			var age int
			if err := rows.Scan(&id, &name, &email, &age); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s|%s|%s|%d", id, name, email, age))
		}
		return strings.Join(out, "\n")
	}
	equal := func(want string) {
		t.Helper()
		waitFor(t, "both systems to hold\n"+want, func() bool { return apiRows() == want && dbRows() == want })
	}
	equal("a|Ann|ann@x|30")

	if _, err := db.Exec(`INSERT INTO contacts VALUES ('w1', 'Web', 'w@x', 5)`); err != nil {
		t.Fatal(err)
	}
	s.Do("POST", "/contacts", contact("c1", "Crm", "c@x", 7, st.next("c1")), 201, nil)
	equal("a|Ann|ann@x|30\nc1|Crm|c@x|7\nw1|Web|w@x|5")

	s.Do("PUT", "/contacts/a", contact("a", "Ann B", "ann@x", 31, st.next("a")), 200, nil)
	if _, err := db.Exec(`UPDATE contacts SET age = 6 WHERE id = 'w1'`); err != nil {
		t.Fatal(err)
	}
	equal("a|Ann B|ann@x|31\nc1|Crm|c@x|7\nw1|Web|w@x|6")

	s.Do("DELETE", "/contacts/c1", nil, 200, nil)
	if _, err := db.Exec(`DELETE FROM contacts WHERE id = 'a'`); err != nil {
		t.Fatal(err)
	}
	equal("w1|Web|w@x|6")
}

// With range_reads, verification reads the API's records: a change the
// polls cannot see (an updated-at older than the overlap behind the
// newest change, as a write that commits late has) is found as drift and,
// with repair capture, taken as the API's change and carried into the
// other system. A pass that finds nothing reads each record once.
func TestIntegrationVerifyAPI(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {
		contact("a", "Ann", "ann@x", 30, st.next("a")), contact("b", "Bob", "bob@x", 40, st.next("b")),
		contact("c", "Cy", "cy@x", 50, st.next("c")),
	}})
	crm, db := apiBesideSQLite(t, s.URL, "range_reads: true\n", "    page_size: 2\n")
	dbRow := func(id string) string {
		var name, email string
		var age int
		if err := db.QueryRow(`SELECT name, email, age FROM contacts WHERE id = ?`, id).Scan(&name, &email, &age); err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%s|%s|%d", name, email, age)
	}
	waitFor(t, "the web app to hold the API's records", func() bool { return dbRow("c") == "Cy|cy@x|50" })

	rep, err := crm.Verify(context.Background(), sidecar.RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriftRecords != 0 || rep.Rows != 3 {
		t.Fatalf("a pass over equal systems read %d rows and found %d drifted, want 3 and 0: %+v", rep.Rows, rep.DriftRecords, rep.Drift)
	}

	// A write stamped 10 s in the past: behind the polls' window.
	late := contact("b", "Bob", "bob@late", 41, time.Now().Add(-10*time.Second).UnixMilli())
	s.Do("PUT", "/contacts/b", late, 200, nil)
	// A barrier the polls do see: once the web app holds it, the polls have
	// read past the late write.
	s.Do("PUT", "/contacts/a", contact("a", "Ann", "ann@barrier", 30, st.next("a")), 200, nil)
	waitFor(t, "the barrier", func() bool { return dbRow("a") == "Ann|ann@barrier|30" })
	if got := dbRow("b"); got != "Bob|bob@x|40" {
		t.Fatalf("the polls took the late write: web holds b as %s", got)
	}
	rep, err = crm.Verify(context.Background(), sidecar.RepairCapture, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriftRecords != 1 || len(rep.Drift) != 1 || rep.Drift[0].Key != "b" {
		t.Fatalf("drift %d %+v, want record b", rep.DriftRecords, rep.Drift)
	}
	waitFor(t, "the late write in the web app", func() bool { return dbRow("b") == "Bob|bob@late|41" })
	rep, err = crm.Verify(context.Background(), sidecar.RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriftRecords != 0 {
		t.Fatalf("after the repair: %d drifted: %+v", rep.DriftRecords, rep.Drift)
	}
}

// apiBesideSQLite starts two sidecars: crm over the json-server at base
// (its contacts; extra and collExtra add lines to the adapter's config and
// to the collection's), and web over a new SQLite database holding the
// same table, which it returns. Verification passes run only when a test
// asks for them.
func apiBesideSQLite(t *testing.T, base, extra, collExtra string) (*sidecar.Agent, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	apiCfg := filepath.Join(dir, "crm-api.yaml")
	y := fmt.Sprintf(`preset: json-server
base_url: %s
rate: 50
burst: 5
poll_interval: 50ms
overlap: 1s
reconcile: 200ms
%scollections:
  contacts:
%s    columns: {name: string, email: string, age: int}
`, base, extra, collExtra)
	if err := os.WriteFile(apiCfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "web.db")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT, email TEXT, age INTEGER)`); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	start := func(name string, join []string, ad sidecar.AdapterConfig) *sidecar.Agent {
		cfg := sidecar.Config{
			Node: name, Data: filepath.Join(dir, name+"-store"), Bind: "127.0.0.1:0", Join: join,
			API: sidecar.APIConfig{Addr: "127.0.0.1:0"}, Adapter: ad,
		}
		cfg.Verify.Interval = time.Hour
		a, err := sidecar.Start(context.Background(), cfg, sidecar.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		waitFor(t, name+" ready", a.Ready)
		return a
	}
	crm := start("crm", nil, sidecar.AdapterConfig{Kind: Kind, DSN: apiCfg})
	start("web", []string{crm.Node().Addr()}, sidecar.AdapterConfig{Kind: "sqlite", DSN: dbPath, PollInterval: 5 * time.Millisecond})
	return crm, db
}
