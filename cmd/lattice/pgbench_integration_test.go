package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// pgbenchCollections puts the counter policy on the three balances: each
// pgbench transaction adds its delta to one account, one teller and one
// branch, and the history row records the delta.
const pgbenchCollections = `  pgbench_accounts:
    fields: {abalance: counter}
  pgbench_tellers:
    fields: {tbalance: counter}
  pgbench_branches:
    fields: {bbalance: counter}`

// pgbenchTables are the tables pgbench uses, and the column each is ordered
// by when compared.
var pgbenchTables = []struct{ name, order string }{
	{"pgbench_accounts", "aid"},
	{"pgbench_tellers", "tid"},
	{"pgbench_branches", "bid"},
	{"pgbench_history", "id"},
}

// pgbenchBinary finds pgbench next to the server binaries, else on PATH.
func pgbenchBinary(t *testing.T, bin pgtest.Binaries) string {
	t.Helper()
	if p := filepath.Join(bin.Dir, "pgbench"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	t.Fatalf("no pgbench in %s or on PATH (Debian: apt-get install postgresql-contrib or postgresql-client)", bin.Dir)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func runPgbench(t *testing.T, ctx context.Context, pgbench, dsn string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, pgbench, append(args, dsn)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pgbench %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tableDigest reads a whole table with SQL and returns its row count and an
// md5 of its rows in key order.
func tableDigest(ctx context.Context, dsn, table, order string) (int64, string, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, "", err
	}
	defer c.Close(context.Background())
	var n int64
	var sum *string
	q := fmt.Sprintf(`SELECT count(*), md5(string_agg(t::text, E'\n' ORDER BY %s)) FROM %s t`, order, table)
	if err := c.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
		return 0, "", err
	}
	if sum == nil {
		return n, "", nil
	}
	return n, *sum, nil
}

type pgbenchSums struct{ accounts, tellers, branches, delta, history int64 }

func readPgbenchSums(ctx context.Context, dsn string) (pgbenchSums, error) {
	var s pgbenchSums
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return s, err
	}
	defer c.Close(context.Background())
	err = c.QueryRow(ctx, `SELECT (SELECT COALESCE(sum(abalance), 0) FROM pgbench_accounts),
		(SELECT COALESCE(sum(tbalance), 0) FROM pgbench_tellers), (SELECT COALESCE(sum(bbalance), 0) FROM pgbench_branches),
		(SELECT COALESCE(sum(delta), 0) FROM pgbench_history), (SELECT count(*) FROM pgbench_history)`).
		Scan(&s.accounts, &s.tellers, &s.branches, &s.delta, &s.history)
	return s, err
}

// TestIntegrationPgbenchCounters runs pgbench (TPC-B) against two
// PostgreSQL servers at once, each with a sidecar beside it and the counter
// policy on the balances. pgbench -i fills one; the other has the schema
// only and receives the rows through Lattice. After both runs stop and the
// sidecars settle, every table is identical in both databases (read with
// SQL) and the balances add up: sum(abalance) = sum(tbalance) =
// sum(bbalance) = sum(delta) of the replicated history. Under lww the
// concurrent updates of the one branch row overwrite each other and the
// sums fall far apart.
func TestIntegrationPgbenchCounters(t *testing.T) {
	bin := pgtest.Require(t)
	pgbench := pgbenchBinary(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srvs := startPostgresServers(t, ctx, bin, 2)
	c := newCluster(t, pgbenchCollections)
	var dsns []string
	for i, s := range srvs {
		dsn, err := s.CreateDB(ctx, "bench")
		if err != nil {
			t.Fatal(err)
		}
		steps := "dtgp" // drop, tables, data, primary keys
		if i > 0 {
			steps = "dtp" // the schema only
		}
		runPgbench(t, ctx, pgbench, dsn, "-i", "-I", steps, "-s", "1", "-q")
		if err := s.Exec(ctx, "bench", `ALTER TABLE pgbench_history ADD COLUMN id uuid PRIMARY KEY DEFAULT gen_random_uuid()`); err != nil {
			t.Fatal(err)
		}
		dsns = append(dsns, dsn)
		c.add(string(rune('a'+i)), fmt.Sprintf("  kind: postgres\n  dsn: %s\n  tables: [pgbench_accounts, pgbench_tellers, pgbench_branches, pgbench_history]", dsn))
	}
	c.startAll(5 * time.Minute) // a snapshots 100,000 accounts: minutes under -race

	// The second database receives the 100000 accounts of the first.
	waitFor(t, 5*time.Minute, "initial rows in b", func() (bool, string) {
		n, _, err := tableDigest(ctx, dsns[1], "pgbench_accounts", "aid")
		return err == nil && n == 100000, fmt.Sprintf("%d accounts (%v)", n, err)
	})

	// pgbench against both at once.
	outs := make([]string, len(dsns))
	var wg sync.WaitGroup
	for i, dsn := range dsns {
		wg.Go(func() { outs[i] = runPgbench(t, ctx, pgbench, dsn, "-n", "-T", "5", "-c", "2", "-j", "2") })
	}
	wg.Wait()
	var txns int64
	re := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	for i, out := range outs {
		m := re.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("pgbench on %c printed no transaction count:\n%s", 'a'+i, out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		t.Logf("pgbench on %c: %d transactions", 'a'+i, n)
		txns += n
	}

	// Quiesced: every table identical in both databases.
	waitFor(t, 2*time.Minute, "identical tables", func() (bool, string) {
		if ok, why := c.clusterSettled(); !ok {
			return false, why
		}
		for _, tb := range pgbenchTables {
			na, da, err := tableDigest(ctx, dsns[0], tb.name, tb.order)
			if err != nil {
				return false, err.Error()
			}
			nb, db, err := tableDigest(ctx, dsns[1], tb.name, tb.order)
			if err != nil {
				return false, err.Error()
			}
			if na != nb || da != db {
				return false, fmt.Sprintf("%s: a has %d rows (%s), b %d (%s)", tb.name, na, da, nb, db)
			}
		}
		return true, ""
	})
	for i, dsn := range dsns {
		s, err := readPgbenchSums(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("pgbench sums on %c: sum(abalance)=%d sum(tbalance)=%d sum(bbalance)=%d sum(delta)=%d history rows=%d, transactions=%d\n",
			'a'+i, s.accounts, s.tellers, s.branches, s.delta, s.history, txns)
		if s.accounts != s.delta || s.tellers != s.delta || s.branches != s.delta {
			t.Errorf("%c: balances do not add up: abalance %d, tbalance %d, bbalance %d, delta %d", 'a'+i, s.accounts, s.tellers, s.branches, s.delta)
		}
		if s.history != txns {
			t.Errorf("%c: %d history rows, want one per transaction (%d)", 'a'+i, s.history, txns)
		}
	}
	c.checkLogs()
}
