package bench

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/cockroachdb/errors"
)

// Each winning change is written into each system once: the checker counts
// every row written into each database, with triggers of its own, apart
// from the sidecar's applies (which run with the adapter's marker row) and
// its users' writes, and bounds the applies by the changes that can cause
// one.

// writeCounts are a database's write counters (countTriggers): rows its
// users wrote, and rows its sidecar's applies wrote.
type writeCounts struct{ Users, Lattice int64 }

func (c writeCounts) add(d writeCounts) writeCounts {
	return writeCounts{c.Users + d.Users, c.Lattice + d.Lattice}
}

func (c writeCounts) sub(d writeCounts) writeCounts {
	return writeCounts{c.Users - d.Users, c.Lattice - d.Lattice}
}

// countTriggers count every row written into items, in check_writes: by
// the sidecar's applies, which run with the adapter's marker row in
// _lattice_apply (adapters/sqlite/doc.go, "Echo suppression"), or by
// users. The writes of a transaction that rolls back are not counted.
var countTriggers = []string{
	`CREATE TABLE IF NOT EXISTS check_writes (users INTEGER NOT NULL, lattice INTEGER NOT NULL)`,
	`INSERT INTO check_writes SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM check_writes)`,
}

func init() {
	for _, op := range []string{"INSERT", "UPDATE", "DELETE"} {
		countTriggers = append(countTriggers, `CREATE TRIGGER IF NOT EXISTS check_count_`+op+` AFTER `+op+` ON items BEGIN `+
			`UPDATE check_writes SET lattice = lattice + 1 WHERE EXISTS (SELECT 1 FROM _lattice_apply); `+
			`UPDATE check_writes SET users = users + 1 WHERE NOT EXISTS (SELECT 1 FROM _lattice_apply); END`)
	}
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// counts reads the database's write counters (countTriggers or
// pgCountTriggers).
func (d *checkDB) counts(ctx context.Context) (writeCounts, error) {
	if !d.dialect.postgres() {
		return readCounts(ctx, d.db)
	}
	var c writeCounts
	err := d.db.QueryRowContext(ctx, pgReadCounts).Scan(&c.Users, &c.Lattice)
	return c, errors.Wrap(err, "read write counts")
}

func readCounts(ctx context.Context, db querier) (writeCounts, error) {
	var c writeCounts
	err := db.QueryRowContext(ctx, `SELECT users, lattice FROM check_writes`).Scan(&c.Users, &c.Lattice)
	return c, errors.Wrap(err, "read write counts")
}

// applyBatch is the most records one apply transaction writes
// (apply.batch_size's default).
const applyBatch = 500

// checkWriteCounts checks that no sidecar wrote more rows into its
// database than the changes made allow, and returns, per node, the rows
// applied and the bound. Every apply writes a record the sidecar queued,
// and a record is queued (once, however often before its apply) by:
//
//   - a change made elsewhere reaching this store: a user's row written in
//     another database, or an API write on any sidecar (the sidecar that
//     took it queues it for its own system too);
//   - a change captured here that crossed an apply (the write-back of the
//     merged state): at most one per row the users here wrote;
//   - a snapshot after the file was replaced, which writes into the new
//     file at most every record the store holds;
//   - a SIGKILL between an apply's commit and its dequeue: that batch is
//     written again.
//
// A deferred apply (lattice_apply_deferred_total) writes nothing; its
// retry is the one write. So applied <= users' writes in every database +
// API writes + records per replacement + applyBatch per SIGKILL. The
// counts come from the databases, not from lattice_apply_rows_total, which
// starts from zero at each restart. A loop of applies captured back, or
// re-applies of records nothing changed, would exceed it.
func checkWriteCounts(nodes []*checkNode, counts []writeCounts, api int64, records []uint64, kills []int, restored int) (applied, bound []int64, err error) {
	var users int64
	for _, c := range counts {
		users += c.Users
	}
	for i, c := range counts {
		b := users + api + int64(restored)*int64(records[i]) + int64(kills[i])*applyBatch
		applied, bound = append(applied, c.Lattice), append(bound, b)
		if c.Lattice > b {
			err = errors.Join(err, errors.Newf("%s's sidecar wrote %d rows into its database; the changes made allow %d "+
				"(%d user writes in all databases, %d API writes, %d records, %d SIGKILLs)", nodes[i].name, c.Lattice, b, users, api, records[i], kills[i]))
		}
	}
	return applied, bound, err
}

// WriteSummary is the applied rows per system against their bounds.
func WriteSummary(applied, bound []int64) string {
	s := ""
	for i := range applied {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d/%d", applied[i], bound[i])
	}
	return s
}
