package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

const conflictsSchema = `CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, status TEXT)`

type nameRow struct {
	ID     int64
	Name   *string
	Status *string
}

func (r *nameRow) key() int64 { return r.ID }
func (r *nameRow) canon() string {
	s := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		return *p
	}
	return fmt.Sprintf("%d %s %s", r.ID, s(r.Name), s(r.Status))
}

func readNames(ctx context.Context, db *sql.DB) ([]*nameRow, error) {
	rs, err := db.QueryContext(ctx, `SELECT id, name, status FROM items ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*nameRow
	for rs.Next() {
		var r nameRow
		if err := rs.Scan(&r.ID, &r.Name, &r.Status); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	return out, rs.Err()
}

func (a *agent) conflicts(t *testing.T) []sidecar.ConflictJSON {
	t.Helper()
	var page sidecar.ConflictPage
	if err := a.apiClient().Do(context.Background(), "GET", "/v1/conflicts?collection=items", nil, &page); err != nil {
		t.Fatalf("%s: GET /v1/conflicts: %v", a.name, err)
	}
	return page.Conflicts
}

// TestConflictsEndToEnd: three sidecars beside three SQLite files. Two
// systems change one row's name while their sidecars cannot see each other
// (b is stopped); every sidecar logs that decision once, with both values;
// a later write made after reading the winner is not logged; and
// `lattice resolve --loser` on one sidecar makes the losing value win in
// every database (compared with SQL), the conflict marked resolved by it.
func TestConflictsEndToEnd(t *testing.T) {
	ctx := context.Background()
	c := newCluster(t, "  items:\n    key: [id]")
	var dbs []*sql.DB
	for _, name := range []string{"a", "b", "c"} {
		path := filepath.Join(t.TempDir(), name+".db")
		db := openSQLite(t, path)
		if _, err := db.Exec(conflictsSchema); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, db)
		c.add(name, fmt.Sprintf("  kind: sqlite\n  dsn: %s\n  tables: [items]\n  poll_interval: 5ms", path))
	}
	a, b, cc := c.agents[0], c.agents[1], c.agents[2]
	c.startAll(60 * time.Second)
	settled := func(what string, want func(rows []*nameRow) bool) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			if ok, why := settledTables(c, func(i int) ([]*nameRow, error) { return readNames(ctx, dbs[i]) }); !ok {
				return false, why
			}
			rows, err := readNames(ctx, dbs[0])
			if err != nil {
				return false, err.Error()
			}
			return want(rows), fmt.Sprintf("rows %v", rows)
		})
	}
	name := func(rows []*nameRow) string {
		if len(rows) != 1 || rows[0].Name == nil {
			return ""
		}
		return *rows[0].Name
	}
	exec := func(i int, q string) {
		t.Helper()
		if _, err := dbs[i].Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	exec(0, `INSERT INTO items VALUES (1, 'base', 'new')`)
	settled("the row everywhere", func(rows []*nameRow) bool { return name(rows) == "base" })

	// a and b change the name without seeing each other's change.
	b.stop(30 * time.Second)
	exec(0, `UPDATE items SET name = 'from-a' WHERE id = 1`)
	waitFor(t, 30*time.Second, "c has a's name", func() (bool, string) {
		rows, err := readNames(ctx, dbs[2])
		return err == nil && name(rows) == "from-a", fmt.Sprintf("%v %v", rows, err)
	})
	exec(1, `UPDATE items SET name = 'from-b' WHERE id = 1`)
	b.start(60 * time.Second)
	settled("b's later name everywhere", func(rows []*nameRow) bool { return name(rows) == "from-b" })

	// a and c, which held a's name when b's arrived, logged the decision
	// once, with both values. b logs it only if a's write reached it
	// before its own change was captured: otherwise b never chose
	// between the two (a's write, older, is not sent once b's has won).
	byNode := map[string]sidecar.ConflictJSON{}
	for _, n := range c.agents {
		cs := n.conflicts(t)
		if len(cs) == 0 && n == b {
			continue
		}
		if len(cs) != 1 {
			t.Fatalf("%s logged %d conflicts, want 1: %+v", n.name, len(cs), cs)
		}
		cf := cs[0]
		if cf.Field != "name" || cf.Rule != "lww" || string(cf.Winner.Value) != `"from-b"` || string(cf.Loser.Value) != `"from-a"` {
			t.Fatalf("%s: conflict %+v, want name: from-b over from-a by lww", n.name, cf)
		}
		if cf.Winner.Node != "b" || cf.Loser.Node != "a" {
			t.Errorf("%s: conflict names nodes %q over %q, want b over a", n.name, cf.Winner.Node, cf.Loser.Node)
		}
		byNode[n.name] = cf
	}
	if v, err := a.metric("lattice_conflicts_total"); err != nil || v != 1 {
		t.Errorf("a: lattice_conflicts_total = %v, %v; want 1", v, err)
	}

	// A write made after reading the winner is no conflict.
	exec(2, `UPDATE items SET status = 'seen', name = 'from-c' WHERE id = 1`)
	settled("c's name everywhere", func(rows []*nameRow) bool { return name(rows) == "from-c" })
	for _, n := range c.agents {
		if cs := n.conflicts(t); len(cs) > 1 || (n != b && len(cs) != 1) {
			t.Fatalf("%s: a causal overwrite was logged: %+v", n.name, cs)
		}
	}

	// The override: a's losing value, re-asserted on cc, wins everywhere.
	id := byNode["c"].ID
	out, errOut, code := cli(t, nil, "resolve", "--api", cc.api, "--token-file", c.tokenFile,
		"--loser", fmt.Sprint(id), "items", "1", "name")
	if code != 0 || !strings.Contains(out, "resolved") {
		t.Fatalf("lattice resolve: exit %d\n%s%s", code, out, errOut)
	}
	settled("the override everywhere", func(rows []*nameRow) bool { return name(rows) == "from-a" })
	cs := cc.conflicts(t)
	if len(cs) != 1 || cs[0].Resolved == nil || cs[0].Resolved.By != "c" || string(cs[0].Resolved.Value) != `"from-a"` {
		t.Fatalf("c: conflict after resolve %+v, want it resolved by c with from-a", cs)
	}
	out, errOut, code = cli(t, nil, "conflicts", "--api", cc.api, "--token-file", c.tokenFile)
	if code != 0 || !strings.Contains(out, `"from-a" by c`) {
		t.Fatalf("lattice conflicts: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("lattice conflicts on c:\n%s", out)
	for _, n := range []*agent{a, b} {
		if cs := n.conflicts(t); len(cs) > 1 || (n == a && len(cs) != 1) {
			t.Fatalf("%s: the override was logged as a conflict: %+v", n.name, cs)
		}
	}
	c.checkLogs()
}
