package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A sidecar whose data directory is lost (a disk replaced, the directory
// moved aside) restarts beside its database, which still holds the rows as
// they were when it stopped. Meanwhile the cluster wrote a newer value. The
// stale row must not come back as a fresh local change and overwrite the
// newer value: with the default initial_sync (cluster) the node bootstraps
// from its peers first and its database takes the cluster's state.
func TestStoreLostBesideStaleDatabase(t *testing.T) {
	c, nodes := startSQLiteCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n1, n3 := nodes[0], nodes[2]
	if _, err := n1.db.ExecContext(ctx, `INSERT INTO items (id, name, status) VALUES (1, 'Acme', 'Active'), (2, 'Beta', 'Active')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "rows in every database", func() (bool, string) {
		return sqliteSettled(ctx, c, nodes)
	})

	n3.kill()
	if err := os.RemoveAll(filepath.Join(n3.dir, "store")); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.db.ExecContext(ctx, `UPDATE items SET status = 'newer-in-cluster' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.db.ExecContext(ctx, `DELETE FROM items WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the change at n2", func() (bool, string) {
		rows, err := readItems(ctx, nodes[1].db, "id = 1")
		if err != nil || len(rows) != 1 || rows[0].Status == nil {
			return false, "no row 1"
		}
		return *rows[0].Status == "newer-in-cluster", *rows[0].Status
	})

	n3.restart(60 * time.Second)
	waitFor(t, 60*time.Second, "databases identical", func() (bool, string) {
		return sqliteSettled(ctx, c, nodes)
	})
	for _, n := range nodes {
		rows, err := readItems(ctx, n.db, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].ID != 1 || rows[0].Status == nil || *rows[0].Status != "newer-in-cluster" {
			t.Fatalf("%s holds %s, want only row 1 with status newer-in-cluster (the stale copy won)", n.name, jsonString(rows))
		}
	}
}
