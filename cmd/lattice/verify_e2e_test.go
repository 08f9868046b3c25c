package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A write that bypasses capture (made inside the SQLite adapter's echo
// guard, as only Lattice's apply does) leaves a database different from the
// merged state: `lattice verify` reports it with the system's and the
// merged values and exits 1; `--repair` writes the merged state over it and
// exits 0; a later `verify` exits 0 and the databases are identical.
func TestVerifyCommandSQLite(t *testing.T) {
	c, nodes := startSQLiteCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n1, n2 := nodes[0], nodes[1]
	if _, err := n1.db.ExecContext(ctx, `INSERT INTO items (id, name, status) VALUES (1, 'Acme', 'Active'), (2, 'Beta', 'Active')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "rows in every database", func() (bool, string) { return sqliteSettled(ctx, c, nodes) })

	tx, err := n2.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT OR REPLACE INTO _lattice_apply(x) VALUES(1)`,
		`UPDATE items SET status = 'bypassed' WHERE id = 1`,
		`DELETE FROM items WHERE id = 2`,
		`DELETE FROM _lattice_apply`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	api := []string{"--api", n2.api, "--token-file", c.tokenFile}
	out, errOut, code := cli(t, nil, append([]string{"verify"}, api...)...)
	if code != 1 {
		t.Fatalf("verify with drift: exit %d, want 1\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"drift: 2 records", `items       1    differs`, `"bypassed"`, `"Active"`, "missing_in_system"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if out, errOut, code := cli(t, nil, append([]string{"verify", "--repair"}, api...)...); code != 0 {
		t.Fatalf("verify --repair: exit %d, want 0\n%s%s", code, out, errOut)
	}
	if out, errOut, code := cli(t, nil, append([]string{"verify"}, api...)...); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("verify after repair: exit %d, want 0\n%s%s", code, out, errOut)
	}
	waitFor(t, 30*time.Second, "databases identical", func() (bool, string) { return sqliteSettled(ctx, c, nodes) })
	rows, err := readItems(ctx, n2.db, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || *rows[0].Status != "Active" || *rows[1].Status != "Active" {
		t.Fatalf("n2 holds %s after the repair", jsonString(rows))
	}
}
