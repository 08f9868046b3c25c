package http

import (
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

// A json-server sidecar and a SQLite sidecar whose tables each mint their
// own keys, joined by ID maps: records created on either side reach the
// other under a key the other generates (json-server: the adapter's client
// ID, recorded in its state file; SQLite: AUTOINCREMENT), and updates and
// deletes follow through the maps; the API server stopped mid-run and a
// record it rejects change nothing of that.
func TestIntegrationEndToEndIDMaps(t *testing.T) {
	var st stamper
	s := startJSONServer(t, map[string][]map[string]any{"contacts": {contact("a", "Ann", "ann@x", 30, st.next("a"))}})
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	apiCfg := write("crm-api.yaml", fmt.Sprintf(`preset: json-server
base_url: %s
rate: 50
burst: 5
poll_interval: 50ms
overlap: 1s
reconcile: 200ms
collections:
  contacts:
    columns: {name: string, email: string, age: int}
`, s.URL))
	dbPath := filepath.Join(dir, "web.db")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE people (pid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, email TEXT, age INTEGER)`); err != nil {
		t.Fatal(err)
	}
	start := func(name, yaml string) *sidecar.Agent {
		cfg, err := sidecar.LoadConfig(write(name+".yaml", yaml))
		if err != nil {
			t.Fatal(err)
		}
		a, err := sidecar.Start(t.Context(), cfg, sidecar.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		waitFor(t, name+" ready", a.Ready)
		return a
	}
	crm := start("crm", fmt.Sprintf(`node: crm
data: %s
bind: 127.0.0.1:0
api: {addr: 127.0.0.1:0}
adapter: {kind: http, dsn: %s}
apply: {max_backoff: 1s}
mapping:
  tables:
    contacts: {key: {id_map: crm}}
`, filepath.Join(dir, "crm-store"), apiCfg))
	start("web", fmt.Sprintf(`node: web
data: %s
bind: 127.0.0.1:0
api: {addr: 127.0.0.1:0}
join: [%s]
adapter: {kind: sqlite, dsn: %s, poll_interval: 5ms}
mapping:
  tables:
    people:
      collection: contacts
      key: {id_map: web}
      columns: {pid: {field: id}}
`, filepath.Join(dir, "web-store"), crm.Node().Addr(), dbPath))

	// Each system's records as sorted "name|email|age" lines: the keys
	// differ by design.
	apiRows := func() string {
		var out []string
		for _, r := range s.Records("contacts") {
			out = append(out, fmt.Sprintf("%v|%v|%v", r["name"], r["email"], r["age"]))
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	dbRows := func() string {
		rows, err := db.Query(`SELECT name, email, age FROM people`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var name, email string
			var age int
			if err := rows.Scan(&name, &email, &age); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s|%s|%d", name, email, age))
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	equal := func(want string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for apiRows() != want || dbRows() != want {
			if time.Now().After(deadline) {
				t.Fatalf("want both systems to hold\n%s\napi:\n%s\nsqlite:\n%s", want, apiRows(), dbRows())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	equal("Ann|ann@x|30")
	if _, err := db.Exec(`INSERT INTO people (name, email, age) VALUES ('Web', 'w@x', 5)`); err != nil {
		t.Fatal(err)
	}
	equal("Ann|ann@x|30\nWeb|w@x|5")
	// The web record got a client ID in the API; an update there reaches
	// SQLite through both maps.
	var webID string
	for id, r := range s.Records("contacts") {
		if r["name"] == "Web" {
			webID = id
		}
	}
	s.Do("PUT", "/contacts/"+webID, contact(webID, "Web B", "w@x", 6, st.next(webID)), 200, nil)
	if _, err := db.Exec(`UPDATE people SET age = 31 WHERE name = 'Ann'`); err != nil {
		t.Fatal(err)
	}
	equal("Ann|ann@x|31\nWeb B|w@x|6")
	s.Do("DELETE", "/contacts/"+webID, nil, 200, nil)
	if _, err := db.Exec(`DELETE FROM people WHERE name = 'Ann'`); err != nil {
		t.Fatal(err)
	}
	equal("")

	// The API server stops while SQLite's users write: the writes wait and
	// arrive once it is back, nothing lost.
	s.Stop()
	if _, err := db.Exec(`INSERT INTO people (name, email, age) VALUES ('Down', 'd@x', 1), ('Down 2', 'd2@x', 2)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE people SET age = 3 WHERE name = 'Down 2'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "writes queued for the API", func() bool { return crm.Store().PendingLen() > 0 })
	s.Start()
	equal("Down 2|d2@x|3\nDown|d@x|1")

	// A record the API rejects is parked with the server's message; the
	// others flow.
	if _, err := db.Exec(`INSERT INTO people (name, email, age) VALUES ('Bad', 'no-at-sign', 9), ('Good', 'g@x', 4)`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the rejected record parked", func() bool { return crm.Store().ParkedLen() == 1 })
	parked, err := crm.Store().Parked(0)
	if err != nil || len(parked) != 1 || !strings.Contains(parked[0].Reason, "email: must contain @") {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for apiRows() != "Down 2|d2@x|3\nDown|d@x|1\nGood|g@x|4" {
		if time.Now().After(deadline) {
			t.Fatalf("api holds\n%s", apiRows())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
