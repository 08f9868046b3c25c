package bench

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// TestChecker runs randomized checker schedules: LATTICE_CHECK_RUNS of
// them (default 2) from seed LATTICE_CHECK_SEED (default: the time), with
// the parts LATTICE_CHECK_WITH lists (restore, tag-inserts; see
// CheckOptions). A failure names its seed; LATTICE_CHECK_SEED=N
// LATTICE_CHECK_RUNS=1 reruns it.
func TestChecker(t *testing.T) {
	runChecker(t, CheckOptions{Duration: 1500 * time.Millisecond})
}

// TestCheckerPostgres runs checker schedules with sidecars beside
// PostgreSQL databases of a throwaway server that restarts during each
// (LATTICE_CHECK_POSTGRES of them, default: one or two, a seeded choice),
// with the environment of TestChecker.
func TestCheckerPostgres(t *testing.T) {
	o := CheckOptions{Duration: 1500 * time.Millisecond, Postgres: PostgresSeeded, PostgresBinaries: pgtest.Require(t)}
	if s := os.Getenv("LATTICE_CHECK_POSTGRES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		o.Postgres = n
	}
	if s := os.Getenv("LATTICE_CHECK_POSTGRES_RESTARTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		o.PostgresRestarts = n
	}
	runChecker(t, o)
}

// runChecker runs the schedules of o that the environment asks for.
func runChecker(t *testing.T, o CheckOptions) {
	runs, seed := 2, uint64(time.Now().UnixNano())
	for w := range strings.SplitSeq(os.Getenv("LATTICE_CHECK_WITH"), ",") {
		switch w {
		case "":
		case "restore":
			o.Restore = true
		case "tag-inserts":
			o.TagInserts = true
		default:
			t.Fatalf("LATTICE_CHECK_WITH: %q is not a part of the checker", w)
		}
	}
	if s := os.Getenv("LATTICE_CHECK_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		runs = n
	}
	if s := os.Getenv("LATTICE_CHECK_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	for i := range runs {
		o.Seed = seed + uint64(i)
		res, err := Check(context.Background(), o)
		if err != nil {
			t.Fatalf("%+v", err)
		}
		t.Logf("seed %d: %d writes (%d committed), %d beside PostgreSQL, %d PostgreSQL restarts, %d restarts, %d files restored, %d rows, rows applied/allowed %s, own rows found overwritten %v, %.1fs",
			res.Seed, res.Writes, res.Committed, res.Postgres, res.PostgresRestarts, res.Restarts, res.Restored, res.Rows, WriteSummary(res.Applied, res.Bound), res.Overwritten, res.Seconds)
	}
}
