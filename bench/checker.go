package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// The randomized checker: one seeded schedule of SQL clients, API writers
// and sidecar restarts against a cluster of sidecars beside SQLite
// databases, then a quiesce and a check of every system against the others
// and against an oracle built from the writes the clients saw committed.

// CheckOptions configure one checker schedule.
type CheckOptions struct {
	// Seed makes the schedule: the same seed makes the same choices (the
	// interleaving with the sidecars' own goroutines still varies).
	Seed uint64
	// Nodes is the number of sidecars (default 3).
	Nodes int
	// Writers is the number of SQL clients per database (default 2), each
	// on its own connection.
	Writers int
	// Duration is how long the clients write (default 2s).
	Duration time.Duration
	// Restarts is the number of sidecar restarts during the writes
	// (default 2); each stops one sidecar while its database keeps taking
	// writes, and starts it again.
	Restarts int
	// Dir holds databases and stores (default: a temporary directory,
	// removed afterwards unless the check fails).
	Dir string
	// Logger receives the sidecars' logs (default: discarded).
	Logger *slog.Logger
	// Binary, when set, is the lattice binary: each sidecar then runs as
	// a child process (lattice agent), and a restart kills it with SIGKILL
	// or stops it with SIGTERM (a seeded choice). Without it the sidecars
	// run in this process and restarts are clean stops.
	Binary string
}

// CheckResult is what a schedule did.
type CheckResult struct {
	Seed      uint64  `json:"seed"`
	Writes    int64   `json:"writes"`    // statements and API writes attempted
	Committed int64   `json:"committed"` // of which the client saw committed
	Restarts  int     `json:"restarts"`
	Kills     int     `json:"kills"` // restarts by SIGKILL
	Rows      int     `json:"rows"`  // rows in each system at the end
	Seconds   float64 `json:"seconds"`
}

// checkSchema is the table the checker syncs. Keys 1..sharedKeys are
// written by every client; the others belong to one writer each.
const checkSchema = `CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, a TEXT, b TEXT, n INTEGER)`

const (
	sharedKeys  = 16
	writerSpace = 100000
	apiSpace    = 900000
)

// cell is one field's committed values, for the oracle.
type cell map[string]bool

// ledger is what clients saw committed.
type ledger struct {
	mu sync.Mutex
	// own is the exact state of keys written by one client only: nil
	// means deleted (or never written).
	own map[int64]map[string]string
	// uncertain keys had a write whose outcome the client could not tell
	// (an API call that failed in transit).
	uncertain map[int64]bool
	// shared holds, per shared key and field, every value committed, and
	// whether a delete or an insert was committed.
	shared  map[int64]map[string]cell
	deleted map[int64]bool
}

func newLedger() *ledger {
	return &ledger{own: map[int64]map[string]string{}, uncertain: map[int64]bool{},
		shared: map[int64]map[string]cell{}, deleted: map[int64]bool{}}
}

func (l *ledger) setOwn(id int64, row map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.own[id] = row
}

func (l *ledger) sharedWrite(id int64, fields map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.shared[id]
	if m == nil {
		m = map[string]cell{}
		l.shared[id] = m
	}
	for f, v := range fields {
		if m[f] == nil {
			m[f] = cell{}
		}
		m[f][v] = true
	}
}

// Check runs one schedule and checks its outcome. An error names the seed;
// CheckOptions.Seed reruns it.
func Check(ctx context.Context, o CheckOptions) (res CheckResult, err error) {
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Writers == 0 {
		o.Writers = 2
	}
	if o.Duration == 0 {
		o.Duration = 2 * time.Second
	}
	if o.Restarts == 0 {
		o.Restarts = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	res.Seed = o.Seed
	start := time.Now()
	dir, owns := o.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "lattice-check-"); err != nil {
			return res, errors.Wrap(err, "create directory")
		}
		owns = true
	}
	defer func() {
		if err != nil {
			err = errors.WithHint(errors.Wrapf(err, "checker seed %d", o.Seed),
				fmt.Sprintf("rerun it with -seed %d; the databases and stores are in %s", o.Seed, dir))
		} else if owns {
			_ = os.RemoveAll(dir)
		}
	}()
	rng := rand.New(rand.NewPCG(o.Seed, 0x1a771ce))

	nodes := make([]*checkNode, o.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.stop(false)
			}
		}
	}()
	dbs := make([]*sql.DB, o.Nodes)
	defer func() {
		for _, db := range dbs {
			if db != nil {
				_ = db.Close()
			}
		}
	}()
	for i := range nodes {
		n, err := newCheckNode(dir, fmt.Sprintf("n%d", i+1), o.Binary, o.Logger)
		if err != nil {
			return res, err
		}
		nodes[i] = n
		db, err := openCheckDB(n.path)
		if err != nil {
			return res, err
		}
		dbs[i] = db
		if _, err := db.ExecContext(ctx, checkSchema); err != nil {
			return res, errors.Wrapf(err, "create items in %s", n.path)
		}
	}
	// Every node joins the others: a restarted one finds whoever is up.
	joins := make([][]string, len(nodes))
	for i := range nodes {
		for j, m := range nodes {
			if j != i {
				joins[i] = append(joins[i], m.gossip)
			}
		}
		if err := nodes[i].start(ctx, joins[i]); err != nil {
			return res, err
		}
	}
	if err := waitUntil(ctx, 60*time.Second, func() (bool, string) { return checkReady(ctx, nodes) }); err != nil {
		return res, err
	}

	l := newLedger()
	var writes, committed atomic.Int64
	wctx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	for i := range nodes {
		for w := range o.Writers {
			seed := rng.Uint64()
			id := int64(i*o.Writers + w + 1)
			wg.Go(func() {
				sqlWriter(wctx, dbs[i], id, rand.New(rand.NewPCG(seed, uint64(id))), l, &writes, &committed)
			})
		}
		seed := rng.Uint64()
		wg.Go(func() { apiWriter(wctx, nodes[i], int64(i+1), rand.New(rand.NewPCG(seed, 7)), l, &writes, &committed) })
	}
	// Restarts, at seeded moments, of any node but the first (the seed
	// the others join through).
	restartErr := make(chan error, 1)
	wg.Go(func() {
		for r := range o.Restarts {
			at := time.Duration(rng.Int64N(int64(o.Duration)/int64(o.Restarts))) + time.Duration(r)*o.Duration/time.Duration(o.Restarts)
			if !sleepUntil(wctx, start.Add(at)) {
				return
			}
			i := rng.IntN(len(nodes))
			down := time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
			kill := o.Binary != "" && rng.IntN(2) == 0
			if err := restart(ctx, nodes[i], joins[i], down, kill); err != nil {
				restartErr <- err
				return
			}
			res.Restarts++
			if kill {
				res.Kills++
			}
		}
	})
	wg.Wait()
	select {
	case err := <-restartErr:
		return res, err
	default:
	}
	res.Writes, res.Committed = writes.Load(), committed.Load()

	// Quiesce: every sidecar ready, captured up to its log's head, replicas
	// equal, nothing to apply, and every database holding the same table.
	var final []map[int64][3]*string
	err = waitUntil(ctx, 60*time.Second, func() (bool, string) {
		if ok, why := checkReady(ctx, nodes); !ok {
			return false, why
		}
		var first string
		for i, n := range nodes {
			st, err := n.status(ctx)
			if err != nil {
				return false, err.Error()
			}
			if i == 0 {
				first = st.Digest
			}
			var acked, last int64
			if err := dbs[i].QueryRowContext(ctx, `SELECT (SELECT v FROM _lattice_meta WHERE k='acked'), (SELECT COALESCE(MAX(seq), 0) FROM _lattice_log)`).Scan(&acked, &last); err != nil {
				return false, err.Error()
			}
			if last > acked {
				return false, fmt.Sprintf("%s captured %d of %d", n.name, acked, last)
			}
			if st.Digest != first {
				return false, n.name + " digest differs"
			}
			if st.Pending > 0 || len(st.Parked) > 0 {
				return false, fmt.Sprintf("%s has %d to apply, %d parked", n.name, st.Pending, len(st.Parked))
			}
		}
		final = final[:0]
		for i := range nodes {
			t, err := readCheckTable(ctx, dbs[i])
			if err != nil {
				return false, err.Error()
			}
			final = append(final, t)
		}
		for i := 1; i < len(final); i++ {
			if d := diffCheckTables(final[0], final[i]); d != "" {
				return false, fmt.Sprintf("%s and %s differ: %s", nodes[0].name, nodes[i].name, d)
			}
		}
		return true, ""
	})
	if err != nil {
		return res, errors.Wrap(err, "quiesce")
	}
	res.Rows = len(final[0])
	for _, n := range nodes {
		rep, err := n.client.Verify(ctx, sidecar.RepairReport)
		if err != nil {
			return res, errors.Wrapf(err, "verify %s", n.name)
		}
		if rep.DriftRecords > 0 {
			return res, errors.Newf("%s: %d records drift from the merged state: %+v", n.name, rep.DriftRecords, rep.Drift[0])
		}
	}
	if err := l.check(final[0]); err != nil {
		return res, err
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func openCheckDB(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, errors.Wrapf(err, "open %s", path)
	}
	return db, nil
}

func checkReady(ctx context.Context, nodes []*checkNode) (bool, string) {
	for _, n := range nodes {
		if ok, why := n.ready(ctx, len(nodes)-1); !ok {
			return false, why
		}
	}
	return true, ""
}

// restart stops a sidecar (kill: SIGKILL), leaves it down for a while (its
// database keeps taking writes), and starts it again with its store.
func restart(ctx context.Context, n *checkNode, join []string, down time.Duration, kill bool) error {
	if err := n.stop(kill); err != nil {
		return errors.Wrapf(err, "stop %s", n.name)
	}
	if !sleepUntil(ctx, time.Now().Add(down)) {
		return ctx.Err()
	}
	return n.start(ctx, join)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Newf("timed out after %s: %s", timeout, why)
		}
		if !sleepUntil(ctx, time.Now().Add(10*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// sqlWriter writes random SQL through its own connection: inserts,
// updates, deletes and re-inserts of its own keys (whose state it knows
// exactly) and of the shared keys (the same fields written from every
// side at once).
func sqlWriter(ctx context.Context, db *sql.DB, w int64, rng *rand.Rand, l *ledger, writes, committed *atomic.Int64) {
	// Statements run to their end: one cancelled midway may have committed
	// without the client knowing, and the oracle needs to know. ctx only
	// ends the loop.
	stop := ctx
	ctx = context.WithoutCancel(ctx)
	mine := map[int64]map[string]string{}
	seq := 0
	val := func() string { seq++; return fmt.Sprintf("w%d-%d", w, seq) }
	for stop.Err() == nil {
		writes.Add(1)
		var err error
		switch op := rng.IntN(10); {
		case op < 5: // own key: insert, update, delete, re-insert
			id := w*writerSpace + int64(rng.IntN(30))
			row, exists := mine[id]
			switch {
			case !exists || row == nil:
				r := map[string]string{"a": val(), "b": val()}
				if _, err = db.ExecContext(ctx, `INSERT INTO items (id, a, b) VALUES (?, ?, ?)`, id, r["a"], r["b"]); err == nil {
					mine[id] = r
					l.setOwn(id, maps.Clone(r))
				}
			case rng.IntN(4) == 0:
				if _, err = db.ExecContext(ctx, `DELETE FROM items WHERE id = ?`, id); err == nil {
					mine[id] = nil
					l.setOwn(id, nil)
				}
			default:
				f := []string{"a", "b"}[rng.IntN(2)]
				v := val()
				if _, err = db.ExecContext(ctx, `UPDATE items SET `+f+` = ? WHERE id = ?`, v, id); err == nil {
					r := maps.Clone(row)
					r[f] = v
					mine[id] = r
					l.setOwn(id, maps.Clone(r))
				}
			}
		case op < 9: // shared key, one field, from every side at once
			id := int64(1 + rng.IntN(sharedKeys))
			f := []string{"a", "b"}[rng.IntN(2)]
			v := val()
			if _, err = db.ExecContext(ctx, `INSERT INTO items (id, `+f+`) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET `+f+` = excluded.`+f, id, v); err == nil {
				l.sharedWrite(id, map[string]string{f: v})
			}
		default: // shared delete
			id := int64(1 + rng.IntN(sharedKeys))
			if _, err = db.ExecContext(ctx, `DELETE FROM items WHERE id = ?`, id); err == nil {
				l.mu.Lock()
				l.deleted[id] = true
				l.mu.Unlock()
			}
		}
		if err == nil {
			committed.Add(1)
		}
	}
}

// apiWriter writes its own keys through a sidecar's API: whole records
// (PUT) and deletes. A failed call may or may not have committed: its key
// is then left out of the exact check.
func apiWriter(stop context.Context, n *checkNode, w int64, rng *rand.Rand, l *ledger, writes, committed *atomic.Int64) {
	ctx := context.WithoutCancel(stop)
	seq := 0
	for stop.Err() == nil {
		c := n.client
		var err error
		id := apiSpace + w*1000 + int64(rng.IntN(20))
		key := fmt.Sprint(id)
		writes.Add(1)
		seq++
		if rng.IntN(4) == 0 {
			err = c.Delete(ctx, "items", key)
			if err == nil {
				l.setOwn(id, nil)
			}
		} else {
			r := map[string]string{"a": fmt.Sprintf("api%d-%d", w, seq), "b": fmt.Sprintf("api%d-%d", w, seq)}
			_, err = c.Put(ctx, "items", key, map[string]any{"a": r["a"], "b": r["b"]})
			if err == nil {
				l.setOwn(id, r)
			}
		}
		if err == nil {
			committed.Add(1)
		} else {
			l.mu.Lock()
			l.uncertain[id] = true
			l.mu.Unlock()
		}
		if !sleepUntil(stop, time.Now().Add(time.Duration(rng.IntN(3))*time.Millisecond)) {
			return
		}
	}
}

func readCheckTable(ctx context.Context, db *sql.DB) (map[int64][3]*string, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, a, b, CAST(n AS TEXT) FROM items ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64][3]*string{}
	for rows.Next() {
		var id int64
		var r [3]*string
		if err := rows.Scan(&id, &r[0], &r[1], &r[2]); err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, rows.Err()
}

func show(r [3]*string) string {
	var parts []string
	for _, p := range r {
		if p == nil {
			parts = append(parts, "null")
		} else {
			parts = append(parts, *p)
		}
	}
	return strings.Join(parts, "|")
}

func diffCheckTables(a, b map[int64][3]*string) string {
	for _, id := range slices.Sorted(maps.Keys(a)) {
		rb, ok := b[id]
		if !ok {
			return fmt.Sprintf("row %d only in the first", id)
		}
		if show(a[id]) != show(rb) {
			return fmt.Sprintf("row %d: %s vs %s", id, show(a[id]), show(rb))
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			return fmt.Sprintf("row %d only in the second", id)
		}
	}
	return ""
}

// check compares the final table with what the clients saw committed:
// every key a single client owns holds exactly its last committed state (no
// committed write lost, none undone), and every shared field holds a value
// some client committed to it (nothing invented), or null.
func (l *ledger) check(final map[int64][3]*string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	for id, want := range l.own {
		if l.uncertain[id] {
			continue
		}
		got, ok := final[id]
		switch {
		case want == nil && ok:
			bad = append(bad, fmt.Sprintf("row %d was deleted, holds %s", id, show(got)))
		case want != nil && !ok:
			bad = append(bad, fmt.Sprintf("row %d lost: want %s|%s", id, want["a"], want["b"]))
		case want != nil && (got[0] == nil || got[1] == nil || *got[0] != want["a"] || *got[1] != want["b"]):
			bad = append(bad, fmt.Sprintf("row %d holds %s, want %s|%s", id, show(got), want["a"], want["b"]))
		}
	}
	for id, got := range final {
		if id > sharedKeys {
			if _, known := l.own[id]; !known && !l.uncertain[id] {
				bad = append(bad, fmt.Sprintf("row %d holds %s, no client wrote it", id, show(got)))
			}
			continue
		}
		for i, f := range []string{"a", "b"} {
			if got[i] != nil && !l.shared[id][f][*got[i]] {
				bad = append(bad, fmt.Sprintf("shared row %d field %s holds %q, which no client committed", id, f, *got[i]))
			}
		}
		if got[0] == nil && got[1] == nil && len(l.shared[id]) == 0 {
			bad = append(bad, fmt.Sprintf("shared row %d exists, no client wrote it", id))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errors.Newf("%d rows differ from the oracle: %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
	return nil
}
