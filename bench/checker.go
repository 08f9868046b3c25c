package bench

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/sidecar"
)

// The randomized checker: one seeded schedule of SQL clients, API writers,
// sidecar restarts and PostgreSQL restarts against a cluster of sidecars
// beside SQLite and PostgreSQL databases, then a quiesce and a check of
// every system against the others and against an oracle built from the
// writes the clients saw committed.

// PostgresSeeded as CheckOptions.Postgres lets each schedule's seed choose
// how many sidecars sit beside PostgreSQL: one or two, always leaving one
// beside SQLite.
const PostgresSeeded = -1

// CheckNodes is the number of sidecars a schedule runs by default.
const CheckNodes = 3

// CheckOptions configure one checker schedule.
type CheckOptions struct {
	// Seed makes the schedule: the same seed makes the same choices (the
	// interleaving with the sidecars' own goroutines still varies).
	Seed uint64
	// Nodes is the number of sidecars (default CheckNodes).
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
	// TagInserts lets the clients create the tag rows (by adding an
	// element to a row that does not exist yet), concurrently in every
	// database, in every schedule. Without it they do so in a seeded half
	// of the schedules (CheckResult.TagInserts); in the others the rows
	// are created in one database and reach the others before the clients
	// start. Such concurrent inserts once lost elements: an insert's row
	// was diffed against the merged state, so it removed the elements
	// other systems had added (crdt.DiffInsert).
	TagInserts bool
	// Postgres is the number of sidecars beside a PostgreSQL database
	// instead of a SQLite one (which ones is a seeded choice), or
	// PostgresSeeded. The databases belong to one throwaway server
	// (pgtest), started with the binaries PostgresBinaries names.
	Postgres         int
	PostgresBinaries pgtest.Binaries
	// PostgresRestarts is the number of times the server is stopped (fast
	// shutdown) and started again during the writes (default 1 with
	// Postgres; negative for none).
	PostgresRestarts int
	// Partitions is the number of times one sidecar is cut off from the
	// others for up to a second during the writes (checknet.go): each
	// sidecar then runs in a network namespace of its own, which needs
	// Binary, root and the ip command (CanPartition).
	Partitions int
	// Restore replaces one SQLite database file by an older copy of
	// itself once in every schedule, while its sidecar runs
	// (checkrestore.go). Without it, a seeded half of the schedules that
	// have a SQLite database do so.
	Restore bool
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
	Seed      uint64 `json:"seed"`
	Writes    int64  `json:"writes"`    // statements and API writes attempted
	Committed int64  `json:"committed"` // of which the client saw committed
	Restarts  int    `json:"restarts"`
	Kills     int    `json:"kills"` // restarts by SIGKILL
	// Postgres is the number of systems that were PostgreSQL databases,
	// PostgresRestarts the number of times their server restarted.
	Postgres         int `json:"postgres"`
	PostgresRestarts int `json:"postgres_restarts"`
	// Overwritten is, per system, the statements of its clients that
	// found their own row or set element overwritten by an apply before
	// capture took their write (a failure, but where a database file was
	// replaced by an older copy).
	Overwritten []int `json:"overwritten"`
	// Respawns is the number of sidecars started again after they could
	// not start (their PostgreSQL server restarting).
	Respawns int `json:"respawns"`
	// Partitions is the number of times a sidecar was cut off.
	Partitions int `json:"partitions"`
	// Restored is the number of database files replaced by an older copy
	// (0 when the schedule left it out, or when the node's clients had
	// written nothing captured since the copy); Settled tells whether
	// their writes since the copy were all captured before it.
	Restored int  `json:"restored"`
	Settled  bool `json:"settled"`
	// TagInserts tells whether the clients created the tag rows
	// concurrently (CheckOptions.TagInserts).
	TagInserts bool `json:"tag_inserts"`
	Rows       int  `json:"rows"` // rows in each system at the end
	// Applied is, per system, the rows its sidecar wrote into it; Bound
	// what the changes made allow (checkWriteCounts).
	Applied []int64 `json:"applied"`
	Bound   []int64 `json:"bound"`
	Seconds float64 `json:"seconds"`
}

// checkEvent is one seeded action of a schedule: a restart, or the copy or
// the replacement of a database file.
type checkEvent struct {
	at   time.Duration
	kind string // restart, pgrestart, partition, copy, restore
	node int
	down time.Duration // restart
	kill bool          // restart
}

// Check runs one schedule and checks its outcome. An error names the seed;
// CheckOptions.Seed reruns it.
func Check(ctx context.Context, o CheckOptions) (res CheckResult, err error) {
	if o.Nodes == 0 {
		o.Nodes = CheckNodes
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
	if o.Nodes < 2 || o.Postgres > o.Nodes {
		return res, errors.Newf("checker: %d nodes, %d beside PostgreSQL", o.Nodes, o.Postgres)
	}
	if o.Partitions > 0 && o.Binary == "" {
		return res, errors.New("checker: partitions need the sidecars as child processes (Binary)")
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
	} else if err = os.MkdirAll(dir, 0o755); err != nil {
		return res, errors.Wrap(err, "create directory")
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
	// Which nodes sit beside PostgreSQL, and with which tags column.
	pgNodes := map[int]*checkDialect{}
	if pg := o.Postgres; pg != 0 {
		if pg == PostgresSeeded {
			pg = 1 + rng.IntN(min(2, o.Nodes-1))
		}
		for _, i := range rng.Perm(o.Nodes)[:pg] {
			pgNodes[i] = []*checkDialect{&jsonbDialect, &arrayDialect}[rng.IntN(2)]
		}
		if o.PostgresRestarts == 0 {
			o.PostgresRestarts = 1
		}
	}
	res.Postgres = len(pgNodes)
	// The parts a seeded half of the schedules run (or all, if asked).
	tagInserts := rng.IntN(2) == 0 || o.TagInserts
	restore := rng.IntN(2) == 0 || o.Restore
	res.TagInserts = tagInserts
	var net *checkNet
	bridge := ""
	if o.Partitions > 0 {
		if net, err = newCheckNet(o.Nodes); err != nil {
			return res, errors.Wrap(err, "set up network namespaces")
		}
		defer net.close()
		bridge = net.host
	}
	var srv *checkServer
	if len(pgNodes) > 0 {
		if srv, err = startCheckServer(ctx, o.PostgresBinaries, bridge); err != nil {
			return res, err
		}
		defer func() {
			if cerr := srv.close(); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}

	nodes := make([]*checkNode, o.Nodes)
	defer func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.stop(false)
			}
		}
	}()
	dbs := make([]*checkDB, o.Nodes)
	defer func() {
		for _, d := range dbs {
			if d != nil && d.db != nil {
				_ = d.db.Close()
			}
		}
	}()
	for i := range nodes {
		n, err := newCheckNode(dir, fmt.Sprintf("n%d", i+1), o.Binary, o.Logger)
		if err != nil {
			return res, err
		}
		nodes[i] = n
		if net != nil {
			if err := n.inNamespace(net.ns[i], net.ips[i]); err != nil {
				return res, err
			}
		}
		d := &checkDB{dialect: &sqliteDialect}
		if dl := pgNodes[i]; dl != nil {
			var dsn string
			if dsn, err = srv.createDB(ctx, n.name); err != nil {
				return res, err
			}
			// The sidecar reaches the server from its namespace.
			n.pg = dsn
			if net != nil {
				n.pg = strings.Replace(dsn, "@127.0.0.1:", "@"+bridge+":", 1)
			}
			d.dialect = dl
			d.db, err = openCheckPostgres(dsn)
		} else {
			d.db, err = openCheckDB(n.path)
		}
		if err != nil {
			return res, err
		}
		dbs[i] = d
		for _, q := range []string{d.dialect.schema, barrierSchema} {
			if _, err := d.db.ExecContext(ctx, q); err != nil {
				return res, errors.Wrapf(err, "create tables in %s's database", n.name)
			}
		}
		if d.dialect.postgres() {
			for _, q := range pgCountTriggers {
				if _, err := d.db.ExecContext(ctx, q); err != nil {
					return res, errors.Wrapf(err, "install write counters in %s's database", n.name)
				}
			}
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
	// The write counters' triggers read the adapter's apply marker table,
	// which exists once the sidecars run.
	for i, d := range dbs {
		if d.dialect.postgres() {
			continue
		}
		for _, q := range countTriggers {
			if _, err := d.db.ExecContext(ctx, q); err != nil {
				return res, errors.Wrapf(err, "install write counters in %s", nodes[i].path)
			}
		}
	}

	// The LWW rows, and the tag rows unless the clients create them,
	// exist everywhere before the clients start.
	q0 := dbs[0].dialect
	lwwStart := time.Now()
	for id := lwwKeyFirst; id <= lwwKeyLast; id++ {
		if _, err := dbs[0].db.ExecContext(ctx, q0.q(`INSERT INTO items (id, a, b) VALUES ($1, 'init', 'init')`), id); err != nil {
			return res, errors.Wrap(err, "create the LWW rows")
		}
	}
	lwwEnd := time.Now()
	first := lwwKeyFirst
	if !tagInserts {
		first = tagKeyFirst
		for id := tagKeyFirst; id <= tagKeyLast; id++ {
			if _, err := dbs[0].db.ExecContext(ctx, q0.q(`INSERT INTO items (id, tags) VALUES ($1, `+q0.empty+`)`), id); err != nil {
				return res, errors.Wrap(err, "create the tag rows")
			}
		}
	}
	err = waitUntil(ctx, 60*time.Second, func() (bool, string) {
		for i, d := range dbs {
			var n int
			if err := d.db.QueryRowContext(ctx, d.dialect.q(`SELECT count(*) FROM items WHERE id BETWEEN $1 AND $2`), first, lwwKeyLast).Scan(&n); err != nil {
				return false, err.Error()
			}
			if n < lwwKeyLast-first+1 {
				return false, fmt.Sprintf("%s holds %d of the %d rows created before the writes", nodes[i].name, n, lwwKeyLast-first+1)
			}
		}
		return true, ""
	})
	if err != nil {
		return res, err
	}
	// The schedule: restarts at seeded moments, one in each part of the
	// duration, and a copy of one database that replaces it later.
	var events []checkEvent
	for r := range o.Restarts {
		at := time.Duration(rng.Int64N(int64(o.Duration)/int64(o.Restarts))) + time.Duration(r)*o.Duration/time.Duration(o.Restarts)
		events = append(events, checkEvent{at: at, kind: "restart", node: rng.IntN(len(nodes)),
			down: time.Duration(rng.Int64N(int64(300 * time.Millisecond))), kill: o.Binary != "" && rng.IntN(2) == 0})
	}
	if len(pgNodes) > 0 {
		for r := range max(o.PostgresRestarts, 0) {
			part := o.Duration / time.Duration(o.PostgresRestarts)
			events = append(events, checkEvent{at: time.Duration(r)*part + time.Duration(rng.Int64N(int64(part))), kind: "pgrestart",
				down: time.Duration(rng.Int64N(int64(300 * time.Millisecond)))})
		}
	}
	for r := range o.Partitions {
		part := o.Duration / time.Duration(o.Partitions)
		events = append(events, checkEvent{at: time.Duration(r)*part + time.Duration(rng.Int64N(int64(part))), kind: "partition",
			node: rng.IntN(len(nodes)), down: 200*time.Millisecond + time.Duration(rng.Int64N(int64(800*time.Millisecond)))})
	}
	settle := rng.IntN(2) == 0
	var sqlite []int
	for i := range nodes {
		if pgNodes[i] == nil {
			sqlite = append(sqlite, i)
		}
	}
	if restore && len(sqlite) > 0 {
		node := sqlite[rng.IntN(len(sqlite))]
		copyAt := o.Duration/20 + time.Duration(rng.Int64N(int64(o.Duration*3/10)))
		restoreAt := copyAt + o.Duration/5 + time.Duration(rng.Int64N(int64(o.Duration/4)))
		events = append(events, checkEvent{at: copyAt, kind: "copy", node: node}, checkEvent{at: restoreAt, kind: "restore", node: node})
	}
	slices.SortStableFunc(events, func(a, b checkEvent) int { return cmp.Compare(a.at, b.at) })

	l := newLedger()
	l.start = start
	for id := int64(lwwKeyFirst); id <= lwwKeyLast; id++ {
		l.setLWW(0, id, "a", "init", lwwStart, lwwEnd, true)
		l.setLWW(0, id, "b", "init", lwwStart, lwwEnd, true)
	}
	var writes, committed, apiWrites atomic.Int64
	wctx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var wg sync.WaitGroup
	for i := range nodes {
		for w := range o.Writers {
			seed := rng.Uint64()
			id := int64(i*o.Writers + w + 1)
			wg.Go(func() {
				sqlWriter(wctx, dbs[i], i, id, rand.New(rand.NewPCG(seed, uint64(id))), l, &writes, &committed)
			})
		}
		seed := rng.Uint64()
		wg.Go(func() {
			apiWriter(wctx, nodes[i], int64(i+1), rand.New(rand.NewPCG(seed, 7)), l, &writes, &committed, &apiWrites)
		})
	}
	// The events run one at a time, in order: a replacement waits for its
	// node to be up.
	lost := make([]writeCounts, len(nodes)) // counted in replaced files
	replaced := make([]bool, len(nodes))
	eventErr := make(chan error, 1)
	wg.Go(func() {
		var b *backup
		defer func() {
			if b != nil {
				l.setWindow(b.node, false)
			}
		}()
		for _, e := range events {
			if !sleepUntil(wctx, start.Add(e.at)) {
				return
			}
			n := nodes[e.node]
			var err error
			switch e.kind {
			case "restart":
				if err = restart(ctx, n, joins[e.node], e.down, e.kill); err == nil {
					res.Restarts++
					if e.kill {
						res.Kills++
					}
				}
			case "pgrestart":
				err = srv.restart(ctx, func() bool { return sleepUntil(ctx, time.Now().Add(e.down)) })
				if err == nil {
					res.PostgresRestarts++
				}
			case "partition":
				if err = net.cut(e.node, true); err == nil {
					sleepUntil(ctx, time.Now().Add(e.down))
					if err = net.cut(e.node, false); err == nil {
						res.Partitions++
					}
				}
			case "copy":
				if !settle {
					// Writes from now on may be lost: those the sidecar
					// has not captured when the file is replaced.
					l.setWindow(e.node, true)
				}
				b, err = takeBackup(ctx, dbs[e.node], e.node, filepath.Join(dir, n.name+"-copy.db"))
			case "restore":
				var r restored
				r, err = restoreBackup(ctx, n, len(nodes)-1, dbs[e.node], b, settle)
				l.setWindow(e.node, false)
				if r.replaced {
					replaced[e.node] = true
					res.Restored++
					res.Settled = settle
					lost[e.node] = lost[e.node].add(r.before.sub(b.counts))
				}
				b = nil
			}
			if err != nil {
				eventErr <- errors.Wrapf(err, "%s of %s at %s", e.kind, n.name, e.at)
				return
			}
		}
	})
	wg.Wait()
	select {
	case err := <-eventErr:
		return res, err
	default:
	}
	res.Writes, res.Committed = writes.Load(), committed.Load()
	for i, d := range dbs {
		if d.dialect.postgres() {
			// A connection the pool kept across a PostgreSQL restart fails
			// once ("terminating connection due to administrator
			// command"); the next attempt takes a fresh one.
			err := waitUntil(ctx, 30*time.Second, func() (bool, string) {
				_, err := d.db.ExecContext(ctx, `INSERT INTO check_barrier (id, v) VALUES ($1, 'end') ON CONFLICT (id) DO NOTHING`, i)
				if err != nil {
					return false, err.Error()
				}
				return true, ""
			})
			if err != nil {
				return res, errors.Wrapf(err, "write the capture barrier into %s's database", nodes[i].name)
			}
		}
	}

	// Quiesce: every sidecar ready, captured up to its log's head, replicas
	// equal, nothing to apply, and every database holding the same table.
	var final []map[int64]checkRow
	var records []uint64
	// After a partition long enough for the sides to declare each other
	// dead, they meet again through the gossip layer's reconnect loop
	// (every 10 s), which has taken up to a minute on the 2-core machine.
	quiesce := 60 * time.Second
	if o.Partitions > 0 {
		quiesce = 120 * time.Second
	}
	err = waitUntil(ctx, quiesce, func() (bool, string) {
		if ok, why := checkReady(ctx, nodes); !ok {
			return false, why
		}
		var first string
		records = records[:0]
		for i, n := range nodes {
			st, err := n.status(ctx)
			if err != nil {
				return false, err.Error()
			}
			if i == 0 {
				first = st.Digest
			}
			records = append(records, st.Records)
			// SQLite's change log tells how far capture is; every
			// PostgreSQL database's barrier row, once everywhere, that
			// capture took every write made there before it.
			var barriers int
			if err := dbs[i].db.QueryRowContext(ctx, `SELECT count(*) FROM check_barrier`).Scan(&barriers); err != nil {
				return false, err.Error()
			}
			if barriers < len(pgNodes) {
				return false, fmt.Sprintf("%s holds %d of %d capture barriers", n.name, barriers, len(pgNodes))
			}
			if !dbs[i].dialect.postgres() {
				last, acked, err := captureState(ctx, dbs[i].db)
				if err != nil {
					return false, err.Error()
				}
				if last > acked {
					return false, fmt.Sprintf("%s captured %d of %d", n.name, acked, last)
				}
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
		return res, errors.Wrapf(err, "quiesce (%s; schedule %s)", describeDialects(dbs), describe(events, settle))
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
	// A client of a replaced file acts on rows older than its writes;
	// elsewhere, finding its own row overwritten means an apply wrote over
	// a write capture had not taken.
	var overwritten []string
	for i := range nodes {
		ov := l.overwritten[i]
		res.Overwritten = append(res.Overwritten, ov)
		if ov > 0 && !replaced[i] {
			overwritten = append(overwritten, fmt.Sprintf("%d in %s's %s database", ov, nodes[i].name, dbs[i].dialect.name))
		}
	}
	if len(overwritten) > 0 {
		return res, errors.Newf("%s; schedule %s: client statements found their own rows overwritten by applies before capture took their writes: %s",
			describeDialects(dbs), describe(events, settle), strings.Join(overwritten, ", "))
	}
	if err := l.check(final[0]); err != nil {
		return res, errors.Wrapf(err, "%s; schedule %s", describeDialects(dbs), describe(events, settle))
	}
	counts := make([]writeCounts, len(nodes))
	for i, d := range dbs {
		c, err := d.counts(ctx)
		if err != nil {
			return res, err
		}
		counts[i] = c.add(lost[i])
	}
	kills := make([]int, len(nodes))
	for _, e := range events {
		if e.kind == "restart" && e.kill {
			kills[e.node]++
		}
	}
	if res.Applied, res.Bound, err = checkWriteCounts(nodes, counts, apiWrites.Load(), records, kills, res.Restored); err != nil {
		return res, err
	}
	for _, n := range nodes {
		n.mu.Lock()
		res.Respawns += n.respawns
		n.mu.Unlock()
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// describe lists a schedule's events, for failure reports.
func describe(events []checkEvent, settle bool) string {
	var parts []string
	for _, e := range events {
		s := fmt.Sprintf("%s n%d at %s", e.kind, e.node+1, e.at.Round(time.Millisecond))
		switch e.kind {
		case "pgrestart":
			s = fmt.Sprintf("postgresql restart at %s (down %s)", e.at.Round(time.Millisecond), e.down.Round(time.Millisecond))
		case "partition":
			s = fmt.Sprintf("n%d cut off at %s for %s", e.node+1, e.at.Round(time.Millisecond), e.down.Round(time.Millisecond))
		}
		switch {
		case e.kind == "restart" && e.kill:
			s += " (SIGKILL)"
		case e.kind == "restore" && settle:
			s += " (writes since the copy captured first)"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
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
