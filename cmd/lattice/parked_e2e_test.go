package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

// refuseBadSQL makes a database refuse items whose name starts with "bad":
// Lattice's apply of such a row fails, and the record is parked.
const refuseBadSQL = `CREATE TRIGGER refuse_bad BEFORE INSERT ON items WHEN NEW.name LIKE 'bad%'
	BEGIN SELECT RAISE(ABORT, 'items named bad... are refused here'); END`

// startParkingCluster starts n SQLite agents; the last one's database
// refuses items named bad... (refuseBadSQL).
func startParkingCluster(t *testing.T, n int) (*cluster, []*sqliteNode) {
	t.Helper()
	c := newCluster(t, itemsCollections)
	var nodes []*sqliteNode
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%d", i)
		path := filepath.Join(c.dir, name+".db")
		db := openSQLite(t, path)
		if _, err := db.Exec(itemsSchema); err != nil {
			t.Fatal(err)
		}
		if i == n {
			if _, err := db.Exec(refuseBadSQL); err != nil {
				t.Fatal(err)
			}
		}
		a := c.add(name, fmt.Sprintf("  kind: sqlite\n  dsn: %s\n  tables: [items]\n  poll_interval: 5ms", path))
		nodes = append(nodes, &sqliteNode{agent: a, dbPath: path, db: db})
	}
	c.startAll(60 * time.Second)
	return c, nodes
}

// itemName returns the name of item id in db, or "(absent)".
func itemName(db *sql.DB, id int) (string, error) {
	var name sql.NullString
	err := db.QueryRow(`SELECT name FROM items WHERE id = ?`, id).Scan(&name)
	if err == sql.ErrNoRows {
		return "(absent)", nil
	}
	return name.String, err
}

// waitParked waits until node a lists want parked records.
func waitParked(t *testing.T, a *agent, want int) sidecar.ParkedList {
	t.Helper()
	var l sidecar.ParkedList
	waitFor(t, 30*time.Second, fmt.Sprintf("%d parked on %s", want, a.name), func() (bool, string) {
		l = sidecar.ParkedList{}
		if err := a.apiClient().Do(context.Background(), "GET", "/v1/parked", nil, &l); err != nil {
			return false, err.Error()
		}
		return l.Total == want, fmt.Sprintf("%d parked", l.Total)
	})
	return l
}

// The parked and members commands against a live cluster: a row the
// database refuses is listed with its error, a skip leaves the database
// as it is, and a retry after the fix writes the row.
func TestParkedAndMembersCommands(t *testing.T) {
	c, nodes := startParkingCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	// auth puts the connection flags after the command words and before
	// the command's own flags and arguments.
	auth := func(a *agent, args ...string) []string {
		words := 1
		if args[0] == "parked" && len(args) > 1 {
			words = 2
		}
		out := append([]string{}, args[:words]...)
		out = append(out, "--api", a.api, "--token-file", c.tokenFile)
		return append(out, args[words:]...)
	}
	if out, errOut, code := cli(t, nil, auth(n1.agent, "put", "items", "1", "name=bad-one")...); code != 0 {
		t.Fatalf("put: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := cli(t, nil, auth(n1.agent, "put", "items", "2", "name=bad-two")...); code != 0 {
		t.Fatalf("put: %d %s %s", code, out, errOut)
	}
	l := waitParked(t, n2.agent, 2)

	runCLICases(t, n2.agent, []cliCase{
		{name: "list", args: auth(n2.agent, "parked", "list"), wantOut: []string{"collection", "items", "items named bad... are refused here", "1", "2"}, wantNoData: true},
		{name: "list json", args: auth(n2.agent, "parked", "list", "--json"), wantOut: []string{`"total": 2`, `"reason"`}, wantNoData: true},
		{name: "no subcommand", args: []string{"parked"}, wantCode: 2, wantErr: []string{"list, retry or skip"}},
		{name: "unknown subcommand", args: []string{"parked", "drop"}, wantCode: 2, wantErr: []string{`unknown parked subcommand "drop"`}},
		{name: "retry needs a record", args: auth(n2.agent, "parked", "retry"), wantCode: 2, wantErr: []string{"COLLECTION KEY, or --all"}, wantNoData: true},
		{name: "flags after arguments", args: append([]string{"parked", "retry", "items", "9", "--all"}, auth(n2.agent, "x")[1:]...),
			wantCode: 2, wantErr: []string{"not both"}, wantNoData: true},
		{name: "skip stale seq", args: auth(n2.agent, "parked", "skip", "--seq", fmt.Sprint(l.Parked[1].Seq+1000), "items", "2"),
			wantCode: 1, wantErr: []string{"(409)", "read the current error before skipping"}},
		{name: "members", args: auth(n2.agent, "members"), wantOut: []string{"n2 (this node)", "n1", "alive", sidecar.Version}, wantNoData: true},
		{name: "members json", args: auth(n1.agent, "members", "--json"), wantOut: []string{`"node": "n1"`, `"name": "n2"`}, wantNoData: true},
	})

	// Skip 2: n2's database keeps no row, n1 keeps its own.
	if out, errOut, code := cli(t, nil, auth(n2.agent, "parked", "skip", "--seq", fmt.Sprint(l.Parked[1].Seq), "items", "2")...); code != 0 || !strings.Contains(out, "skipped items/2") {
		t.Fatalf("skip: %d %s %s", code, out, errOut)
	}
	waitParked(t, n2.agent, 1)
	if name, err := itemName(n2.db, 2); err != nil || name != "(absent)" {
		t.Fatalf("n2 item 2 = %q, %v; want absent after the skip", name, err)
	}
	if name, err := itemName(n1.db, 2); err != nil || name != "bad-two" {
		t.Fatalf("n1 item 2 = %q, %v; want bad-two", name, err)
	}

	// Fix the database and retry 1.
	if _, err := n2.db.Exec(`DROP TRIGGER refuse_bad`); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := cli(t, nil, auth(n2.agent, "parked", "retry", "items", "1")...); code != 0 || !strings.Contains(out, "1 queued") {
		t.Fatalf("retry: %d %s %s", code, out, errOut)
	}
	waitFor(t, 30*time.Second, "item 1 in n2's database", func() (bool, string) {
		name, err := itemName(n2.db, 1)
		return err == nil && name == "bad-one", fmt.Sprintf("%q %v", name, err)
	})
	waitParked(t, n2.agent, 0)
	if out, _, code := cli(t, nil, auth(n2.agent, "parked", "retry", "--all")...); code != 0 || !strings.Contains(out, "0 queued") {
		t.Fatalf("retry --all: %d %s", code, out)
	}
	if out, _, code := cli(t, nil, auth(n2.agent, "parked", "list")...); code != 0 || !strings.Contains(out, "no parked records") {
		t.Fatalf("list after: %d %s", code, out)
	}
	var st sidecar.Status
	if err := n2.apiClient().Do(context.Background(), "GET", "/v1/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(st.Parked)
	if len(st.Parked) != 0 {
		t.Fatalf("status lists parked %s", raw)
	}
	c.stopAll(30 * time.Second)
}
