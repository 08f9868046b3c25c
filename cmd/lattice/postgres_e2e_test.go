package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// The PostgreSQL end-to-end test: three throwaway PostgreSQL servers, each
// with a sidecar process beside it. A counting trigger in each database
// records every write its customers table receives, with who made it: a
// user, or Lattice's apply, whose session has set up a replication origin
// (pg_replication_origin_session_is_setup). The trigger is a plain AFTER
// ROW trigger, which fires in the apply session too: setting up an origin
// does not change session_replication_role.

const pgSchema = `
CREATE TABLE customers (
	id      int PRIMARY KEY,
	name    text,
	status  text,
	phone   text,
	address text,
	tags    text[]
);
CREATE TABLE customer_writes (
	seq        bigserial PRIMARY KEY,
	id         int NOT NULL,
	op         text NOT NULL,
	by_lattice bool NOT NULL,
	state      jsonb,
	lsn        pg_lsn NOT NULL DEFAULT pg_current_wal_insert_lsn() -- before the commit
);
CREATE FUNCTION count_customer_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO customer_writes(id, op, by_lattice) VALUES (OLD.id, TG_OP, pg_replication_origin_session_is_setup());
	ELSE
		INSERT INTO customer_writes(id, op, by_lattice, state) VALUES (NEW.id, TG_OP, pg_replication_origin_session_is_setup(), to_jsonb(NEW));
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER count_customer_write AFTER INSERT OR UPDATE OR DELETE ON customers
	FOR EACH ROW EXECUTE FUNCTION count_customer_write();
`

const customersCollections = `  customers:
    key: [id]
    fields:
      status: lww
      tags: orset`

// pgRow is one customers row in canonical form.
type pgRow struct {
	ID      int64    `json:"id"`
	Name    *string  `json:"name"`
	Status  *string  `json:"status"`
	Phone   *string  `json:"phone"`
	Address *string  `json:"address"`
	Tags    []string `json:"tags"`
}

func (r *pgRow) key() int64 { return r.ID }

func (r *pgRow) canon() string {
	if r == nil {
		return "(absent)"
	}
	c := *r
	c.Tags = canonTags(r.Tags)
	return jsonString(c)
}

// pgConn is a connection that reconnects after a failure (the server may
// have been restarted). It is used by one goroutine.
type pgConn struct {
	dsn string
	c   *pgx.Conn
}

func (p *pgConn) get(ctx context.Context) (*pgx.Conn, error) {
	if p.c != nil && !p.c.IsClosed() {
		return p.c, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, p.dsn)
	if err != nil {
		return nil, err
	}
	p.c = c
	return c, nil
}

// exec runs one statement; on an error the connection is dropped, so that
// the next call reconnects.
func (p *pgConn) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	c, err := p.get(ctx)
	if err != nil {
		return 0, errors.Mark(err, errNotSent)
	}
	tag, err := c.Exec(ctx, sql, args...)
	if err != nil {
		p.close()
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (p *pgConn) close() {
	if p.c != nil {
		_ = p.c.Close(context.Background())
		p.c = nil
	}
}

// errNotSent marks a statement that never reached the server.
var errNotSent = errors.New("statement not sent: no connection")

// pgNode is a server, its database and the agent beside it.
type pgNode struct {
	*agent
	srv  *pgtest.Server
	dsn  string
	read *pgConn // the test goroutine's own
}

func (n *pgNode) rows(ctx context.Context) ([]*pgRow, error) {
	c, err := n.read.get(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := c.Query(ctx, `SELECT id, name, status, phone, address, tags FROM customers ORDER BY id`)
	if err != nil {
		n.read.close()
		return nil, err
	}
	defer rs.Close()
	var out []*pgRow
	for rs.Next() {
		var r pgRow
		if err := rs.Scan(&r.ID, &r.Name, &r.Status, &r.Phone, &r.Address, &r.Tags); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	if err := rs.Err(); err != nil {
		n.read.close()
		return nil, err
	}
	return out, nil
}

// write is one row of customer_writes.
type write struct {
	seq       int64
	id        int64
	op        string
	byLattice bool
	state     *pgRow // nil for a delete
}

func (n *pgNode) writes(ctx context.Context, after int64) ([]write, error) {
	c, err := n.read.get(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := c.Query(ctx, `SELECT seq, id, op, by_lattice, state FROM customer_writes WHERE seq > $1 ORDER BY seq`, after)
	if err != nil {
		n.read.close()
		return nil, err
	}
	defer rs.Close()
	var out []write
	for rs.Next() {
		var w write
		var state []byte
		if err := rs.Scan(&w.seq, &w.id, &w.op, &w.byLattice, &state); err != nil {
			return nil, err
		}
		if state != nil {
			w.state = &pgRow{}
			if err := json.Unmarshal(state, w.state); err != nil {
				return nil, errors.Wrapf(err, "decode state %s", state)
			}
		}
		out = append(out, w)
	}
	return out, rs.Err()
}

func (n *pgNode) lastWrite(ctx context.Context) int64 {
	c, err := n.read.get(ctx)
	if err != nil {
		n.t.Fatal(err)
	}
	var seq int64
	if err := c.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM customer_writes`).Scan(&seq); err != nil {
		n.t.Fatal(err)
	}
	return seq
}

// startPostgresServers starts n throwaway PostgreSQL servers at once,
// closed (with their log tails shown on failure) when the test ends.
func startPostgresServers(t *testing.T, ctx context.Context, bin pgtest.Binaries, n int) []*pgtest.Server {
	t.Helper()
	srvs := make([]*pgtest.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range srvs {
		wg.Go(func() { srvs[i], errs[i] = pgtest.New(ctx, bin, pgtest.Options{}) })
	}
	wg.Wait()
	for i, s := range srvs {
		if s != nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("--- postgres %d log, last 30 lines:\n%s", i+1, s.LogTail(30))
				}
				if err := s.Close(); err != nil {
					t.Errorf("close postgresql: %v", err)
				}
			})
		}
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("start postgresql: %v", err)
		}
	}
	return srvs
}

// startPostgresCluster starts three servers at once, creates the database
// in each (seeding the first), and starts the three agents.
func startPostgresCluster(t *testing.T, seed string) (*cluster, []*pgNode) {
	t.Helper()
	bin := pgtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srvs := startPostgresServers(t, ctx, bin, 3)
	c := newCluster(t, customersCollections)
	var nodes []*pgNode
	for i, s := range srvs {
		dsn, err := s.CreateDB(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, "app", pgSchema); err != nil {
			t.Fatal(err)
		}
		if i == 0 && seed != "" {
			if err := s.Exec(ctx, "app", seed); err != nil {
				t.Fatal(err)
			}
		}
		name := string(rune('A' + i))
		a := c.add(strings.ToLower(name), fmt.Sprintf("  kind: postgres\n  dsn: %s\n  tables: [customers]", dsn))
		n := &pgNode{agent: a, srv: s, dsn: dsn, read: &pgConn{dsn: dsn}}
		t.Cleanup(n.read.close)
		nodes = append(nodes, n)
	}
	c.startAll(90 * time.Second)
	return c, nodes
}

// captured reports whether the agent has captured every write users made to
// its database: its slot's confirmed position, which follows what the agent
// acknowledged, has passed the last of them.
func (n *pgNode) captured(ctx context.Context) (bool, error) {
	c, err := n.read.get(ctx)
	if err != nil {
		return false, err
	}
	var ok bool
	err = c.QueryRow(ctx, `SELECT confirmed_flush_lsn >= COALESCE((SELECT MAX(lsn) FROM customer_writes WHERE NOT by_lattice), '0/0')
		FROM pg_replication_slots WHERE slot_name = $1`, "lattice_"+n.name).Scan(&ok)
	if err != nil {
		n.read.close()
		return false, err
	}
	return ok, nil
}

// pgSettled reports whether every agent has captured its users' writes and
// the cluster settled with identical tables. Without the first condition a
// write not yet captured can look settled: Apply may have overwritten it in
// its own database, and no other database has it yet.
func pgSettled(ctx context.Context, c *cluster, nodes []*pgNode) (bool, string) {
	for _, n := range nodes {
		if ok, err := n.captured(ctx); err != nil || !ok {
			return false, fmt.Sprintf("%s has not captured its users' last write (%v)", n.name, err)
		}
	}
	return settledTables(c, func(i int) ([]*pgRow, error) { return nodes[i].rows(ctx) })
}

// concurrently runs one statement in each of several databases at once:
// each on its own connection, opened beforehand, all released together.
// stmt is a user's statement that touches one row.
type stmt struct {
	id  int64
	sql string
}

// concurrently runs each node's statements at once, each on its own
// connection, and returns, per node, how many of its statements touched
// each row: a delete or update that finds the row already gone (Lattice
// brought another side's delete first) writes nothing.
func concurrently(t *testing.T, nodes []*pgNode, stmts map[int][]stmt) map[int]map[int64]int {
	t.Helper()
	ctx := context.Background()
	type job struct {
		node int
		conn *pgx.Conn
		stmt stmt
	}
	var jobs []job
	for i, list := range stmts {
		for _, s := range list {
			c, err := pgx.Connect(ctx, nodes[i].dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			jobs = append(jobs, job{i, c, s})
		}
	}
	release := make(chan struct{})
	errs := make([]error, len(jobs))
	affected := make([]int64, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			<-release
			tag, err := j.conn.Exec(ctx, j.stmt.sql)
			errs[i], affected[i] = err, tag.RowsAffected()
		})
	}
	close(release)
	wg.Wait()
	touched := map[int]map[int64]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", jobs[i].stmt.sql, err)
		}
		if touched[jobs[i].node] == nil {
			touched[jobs[i].node] = map[int64]int{}
		}
		if affected[i] > 0 {
			touched[jobs[i].node][jobs[i].stmt.id]++
		}
	}
	return touched
}

// users returns how many user writes of row id each node's statements made.
func users(touched map[int]map[int64]int, nodes int, id int64) []int {
	out := make([]int, nodes)
	for d := range out {
		out[d] = touched[d][id]
	}
	return out
}

// candidates ranks the states a row may pass through in merge order: a
// state with a higher rank (component-wise, for fields merged separately)
// is what merging more writes gives. Lattice only ever writes the merged
// state, and a replica's merged state only grows, so the states Lattice
// writes into one database must climb strictly: a state written twice, or
// a step back, is an update war.
type candidates map[string][]int

func above(a, b []int) bool {
	ge, gt := true, false
	for i := range a {
		ge = ge && a[i] >= b[i]
		gt = gt || a[i] > b[i]
	}
	return ge && gt
}

// rowHistory checks one row's writes in every database: users made exactly
// user[d] writes in database d, the writes by Lattice climb through the
// candidates, the database ends in final, and every database whose users
// did not write final received it from Lattice exactly once.
func rowHistory(t *testing.T, nodes []*pgNode, logs [][]write, id int64, user []int, cand candidates, final string) {
	t.Helper()
	for d, n := range nodes {
		var hist []string
		users, userFinal := 0, false
		var prev []int
		last := "(never written)"
		finalByLattice := 0
		for _, w := range logs[d] {
			if w.id != id {
				continue
			}
			st := w.state.canon()
			last = st
			if !w.byLattice {
				users++
				userFinal = userFinal || st == final
				hist = append(hist, "user "+w.op)
				continue
			}
			hist = append(hist, "lattice "+w.op)
			if st == final {
				finalByLattice++
			}
			rank, ok := cand[st]
			if !ok {
				t.Errorf("row %d in %s: Lattice wrote %s, which no merge of the writes made gives", id, n.name, st)
				continue
			}
			if prev != nil && !above(rank, prev) {
				t.Errorf("row %d in %s: Lattice wrote %s after a state at least as merged: an update war", id, n.name, st)
			}
			prev = rank
		}
		if users != user[d] {
			t.Errorf("row %d in %s: %d writes by users, want %d", id, n.name, users, user[d])
		}
		if last != final {
			t.Errorf("row %d in %s: last write left %s, want %s", id, n.name, last, final)
		}
		if !userFinal && finalByLattice != 1 {
			t.Errorf("row %d in %s: the winning state was written by Lattice %d times, want once", id, n.name, finalByLattice)
		}
		t.Logf("row %d in %s: %s", id, n.name, strings.Join(hist, ", "))
	}
}

func TestIntegrationPostgresEndToEnd(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	seed := `INSERT INTO customers VALUES
		(1, 'Acme',     'Prospect', '+1 555 0101', '1 Main St', '{trial}'),
		(2, 'Globex',   'Active',   '+1 555 0102', '2 Oak Ave', NULL),
		(3, 'Initech',  'Active',   '+1 555 0103', '3 Elm Rd',  '{eu}'),
		(4, 'Umbrella', 'Active',   '+1 555 0104', '4 Pine Ct', NULL),
		(7, 'Hooli',    'Active',   NULL, NULL, NULL),
		(8, 'Vehement', 'Active',   NULL, NULL, NULL),
		(9, 'Massive',  'Active',   NULL, NULL, NULL),
		(10, 'Wonka',   'Active',   NULL, NULL, NULL)`
	c, nodes := startPostgresCluster(t, seed)
	waitFor(t, 60*time.Second, "the seed rows in every database", func() (bool, string) {
		if ok, why := pgSettled(ctx, c, nodes); !ok {
			return false, why
		}
		rows, err := nodes[2].rows(ctx)
		if err != nil || len(rows) != 8 {
			return false, fmt.Sprintf("c holds %d rows (%v)", len(rows), err)
		}
		return true, ""
	})
	t.Logf("three servers and agents up and seeded in %s", time.Since(start).Round(time.Millisecond))
	a, b, cc := nodes[0], nodes[1], nodes[2]

	t.Run("conflicts", func(t *testing.T) {
		marks := make([]int64, 3)
		for i, n := range nodes {
			marks[i] = n.lastWrite(ctx)
		}
		// All at once, each in its own database:
		//   row 1: a sets status Active, b sets it On Hold (one field, two sides);
		//   row 2: a changes the phone, c the address (two fields of one row);
		//   row 3: b deletes it while c updates it;
		//   row 4: a and b both delete it;
		//   row 100: a and b insert it with different values.
		touched := concurrently(t, nodes, map[int][]stmt{
			0: {
				{1, `UPDATE customers SET status = 'Active' WHERE id = 1`},
				{2, `UPDATE customers SET phone = '+1 555 9999' WHERE id = 2`},
				{4, `DELETE FROM customers WHERE id = 4`},
				{100, `INSERT INTO customers VALUES (100, 'Newco from a', 'Active', '+1 555 1000', '100 A St', NULL)
					ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status, phone = excluded.phone, address = excluded.address`},
			},
			1: {
				{1, `UPDATE customers SET status = 'On Hold' WHERE id = 1`},
				{3, `DELETE FROM customers WHERE id = 3`},
				{4, `DELETE FROM customers WHERE id = 4`},
				{100, `INSERT INTO customers VALUES (100, 'Newco from b', 'Prospect', '+1 555 2000', '100 B St', NULL)
					ON CONFLICT (id) DO UPDATE SET name = excluded.name, status = excluded.status, phone = excluded.phone, address = excluded.address`},
			},
			2: {
				{2, `UPDATE customers SET address = '9 New Rd' WHERE id = 2`},
				{3, `UPDATE customers SET status = 'Churned' WHERE id = 3`},
			},
		})
		// Usually every statement touches its row, but a delete may reach
		// another database before that database's own statement runs: the
		// statement then writes nothing, and the users wrote less there.
		if got, want := users(touched, 3, 1), []int{1, 1, 0}; !slices.Equal(got, want) {
			t.Fatalf("row 1: users wrote %v, want %v (no statement deletes row 1)", got, want)
		}
		waitFor(t, 60*time.Second, "convergence", func() (bool, string) { return pgSettled(ctx, c, nodes) })
		final, err := a.rows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[int64]*pgRow{}
		for _, r := range final {
			byID[r.ID] = r
		}
		logs := make([][]write, 3)
		for i, n := range nodes {
			if logs[i], err = n.writes(ctx, marks[i]); err != nil {
				t.Fatal(err)
			}
		}
		row := func(id int64, name, status, phone, address string, tags ...string) *pgRow {
			r := &pgRow{ID: id, Name: strp(name), Status: strp(status), Phone: strp(phone), Address: strp(address), Tags: tags}
			return r
		}

		// Row 1, one field from two sides. The later stamp wins everywhere.
		// Usually: the loser's database gets 1 user write and 1 write of the
		// winner; the winner's 1 user write and nothing from Lattice; c one
		// write of the winner (two if the loser's change reached c first and
		// was applied before the winner's arrived). No database is written
		// the same state twice.
		st1 := byID[1]
		if st1 == nil || st1.Status == nil || (*st1.Status != "Active" && *st1.Status != "On Hold") {
			t.Fatalf("row 1 ended %s, want status Active or On Hold", st1.canon())
		}
		active, onHold := row(1, "Acme", "Active", "+1 555 0101", "1 Main St", "trial"), row(1, "Acme", "On Hold", "+1 555 0101", "1 Main St", "trial")
		cand := candidates{active.canon(): {1}, onHold.canon(): {2}}
		if *st1.Status == "Active" {
			cand = candidates{onHold.canon(): {1}, active.canon(): {2}}
		}
		rowHistory(t, nodes, logs, 1, users(touched, 3, 1), cand, st1.canon())

		// Row 2, two fields from two sides: both changes survive. a and c
		// each get their own write and one of the other's; b one write of
		// the merged row (two if the changes arrive apart).
		phone := row(2, "Globex", "Active", "+1 555 9999", "2 Oak Ave")
		addr := row(2, "Globex", "Active", "+1 555 0102", "9 New Rd")
		both := row(2, "Globex", "Active", "+1 555 9999", "9 New Rd")
		rowHistory(t, nodes, logs, 2, users(touched, 3, 2), candidates{phone.canon(): {1, 0}, addr.canon(): {0, 1}, both.canon(): {1, 1}}, both.canon())

		// Row 3, a delete racing an update: the later stamp wins. If the
		// update wins it restores the whole row (the record's other fields
		// come back with it); if the delete wins the row is gone everywhere.
		updated := row(3, "Initech", "Churned", "+1 555 0103", "3 Elm Rd", "eu")
		gone := (*pgRow)(nil).canon()
		cand3 := candidates{updated.canon(): {1}, gone: {2}}
		if byID[3] != nil {
			cand3 = candidates{gone: {1}, updated.canon(): {2}}
		}
		rowHistory(t, nodes, logs, 3, users(touched, 3, 3), cand3, byID[3].canon())
		t.Logf("row 3: %s won", map[bool]string{true: "the update", false: "the delete"}[byID[3] != nil])

		// Row 4, deleted on two sides: exactly one delete reaches c, none
		// reaches a or b (deleting an absent row writes nothing), unless one
		// side's delete arrived before the other's own statement ran: then
		// that side's users wrote nothing, and Lattice deleted the row there.
		rowHistory(t, nodes, logs, 4, users(touched, 3, 4), candidates{gone: {1}}, gone)

		// Row 100, inserted on two sides: one whole row wins.
		fromA := row(100, "Newco from a", "Active", "+1 555 1000", "100 A St")
		fromB := row(100, "Newco from b", "Prospect", "+1 555 2000", "100 B St")
		cand100 := candidates{fromA.canon(): {1}, fromB.canon(): {2}}
		if byID[100].canon() == fromA.canon() {
			cand100 = candidates{fromB.canon(): {1}, fromA.canon(): {2}}
		} else if byID[100].canon() != fromB.canon() {
			t.Errorf("row 100 ended %s, want one of the two inserted rows", byID[100].canon())
		}
		rowHistory(t, nodes, logs, 100, users(touched, 3, 100), cand100, byID[100].canon())
		checkQuiet(t, c, pgWriteCounts(t, nodes))
	})
	if t.Failed() {
		return
	}

	t.Run("restarts", func(t *testing.T) {
		testPostgresRestarts(t, c, nodes, a, b, cc)
	})

	c.stopAll(60 * time.Second)
	c.checkLogs()
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// pgWriteCounts returns a function that renders the number of writes each
// database has recorded.
func pgWriteCounts(t *testing.T, nodes []*pgNode) func() string {
	return func() string {
		var out []string
		for _, n := range nodes {
			out = append(out, fmt.Sprintf("%s %d", n.name, n.lastWrite(context.Background())))
		}
		return strings.Join(out, ", ")
	}
}

// pgWriter inserts rows of its own into one database, and updates the
// status of the shared rows 7..10, until stopped. Its name is its node's
// number.
type pgWriter struct {
	writeStats
	node   int
	conn   *pgConn
	rnd    *rand.Rand
	next   int64
	mu     sync.Mutex
	acked  map[int64]string // id -> name of inserts that committed
	maybe  map[int64]string // inserts whose outcome is unknown
	shared atomic.Int64     // acknowledged updates of shared rows
}

func (w *pgWriter) step(ctx context.Context) {
	if w.rnd.IntN(5) == 0 {
		id := 7 + w.rnd.IntN(4)
		_, err := w.conn.exec(ctx, `UPDATE customers SET status = $1 WHERE id = $2`, fmt.Sprintf("w%d-%d", w.node, w.next), id)
		if err == nil {
			w.shared.Add(1)
		} else {
			w.fail(err)
		}
		return
	}
	w.next++
	id := int64(w.node)*100_000 + w.next
	name := fmt.Sprintf("row %d of %d", w.next, w.node)
	_, err := w.conn.exec(ctx, `INSERT INTO customers(id, name, status) VALUES ($1, $2, 'new')`, id, name)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.acked[id] = name
		w.acks.Add(1)
	case errors.Is(err, errNotSent):
		w.fail(err)
	default:
		w.maybe[id] = name
		w.fail(err)
	}
}

// testPostgresRestarts: users insert rows of their own into each database
// while b's PostgreSQL is restarted and c's sidecar is killed with SIGKILL
// and started again. Every acknowledged insert ends in every database,
// once: its own database recorded one write by its user and none by
// Lattice, each other database one insert by Lattice and nothing else.
func testPostgresRestarts(t *testing.T, c *cluster, nodes []*pgNode, a, b, cc *pgNode) {
	ctx := context.Background()
	marks := make([]int64, 3)
	for i, n := range nodes {
		marks[i] = n.lastWrite(ctx)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	var writers []*pgWriter
	for i, n := range nodes {
		w := &pgWriter{writeStats: writeStats{name: strconv.Itoa(i + 1)}, node: i + 1, conn: &pgConn{dsn: n.dsn},
			rnd: rand.New(rand.NewPCG(seed, uint64(i))), acked: map[int64]string{}, maybe: map[int64]string{}}
		writers = append(writers, w)
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range writers {
		runPaced(wctx, &wg, 10*time.Millisecond, w.step)
	}
	defer func() {
		stop()
		wg.Wait()
		for _, w := range writers {
			w.conn.close()
		}
	}()
	start := time.Now()
	waitAcks(t, 90*time.Second, "inserts on every side", writers, 100)

	t.Logf("restarting b's PostgreSQL after %s", time.Since(start).Round(time.Millisecond))
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	if err := b.srv.Restart(rctx); err != nil {
		cancel()
		t.Fatalf("restart b's postgresql: %v", err)
	}
	cancel()
	waitAcks(t, 90*time.Second, "inserts on every side after b's PostgreSQL restarted", writers, 100)

	t.Logf("SIGKILL c's sidecar after %s", time.Since(start).Round(time.Millisecond))
	cc.kill()
	waitAcks(t, 90*time.Second, "inserts while c's sidecar is down", writers, 100)
	cc.restart(60 * time.Second)
	t.Logf("c's sidecar back after %s", time.Since(start).Round(time.Millisecond))
	waitAcks(t, 90*time.Second, "inserts after c's sidecar restarted", writers, 100)
	stop()
	wg.Wait()
	var acked, maybe int
	for _, w := range writers {
		acked += len(w.acked)
		maybe += len(w.maybe)
	}
	t.Logf("writers stopped after %s: %d inserts acknowledged, %d with unknown outcome", time.Since(start).Round(time.Millisecond), acked, maybe)
	waitFor(t, 90*time.Second, "convergence", func() (bool, string) { return pgSettled(ctx, c, nodes) })
	t.Logf("converged after %s", time.Since(start).Round(time.Millisecond))

	final, err := a.rows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]*pgRow{}
	for _, r := range final {
		byID[r.ID] = r
	}
	logs := make([][]write, 3)
	for i, n := range nodes {
		if logs[i], err = n.writes(ctx, marks[i]); err != nil {
			t.Fatal(err)
		}
	}
	// counts[d][id] = {user writes, lattice writes} in database d.
	counts := make([]map[int64][2]int, 3)
	for d := range nodes {
		counts[d] = map[int64][2]int{}
		for _, w := range logs[d] {
			k := counts[d][w.id]
			if w.byLattice {
				k[1]++
				if w.op != "INSERT" && w.id >= 100_000 {
					t.Errorf("%s: Lattice made a %s of row %d; its rows are only inserted", nodes[d].name, w.op, w.id)
				}
			} else {
				k[0]++
			}
			counts[d][w.id] = k
		}
	}
	lost, bad := 0, 0
	for wi, w := range writers {
		check := func(id int64, name string, mustExist bool) {
			r := byID[id]
			if r == nil {
				if mustExist {
					lost++
					if lost <= 10 {
						t.Errorf("acknowledged insert %d (into %s) is missing", id, nodes[wi].name)
					}
				}
				for d := range nodes {
					if k := counts[d][id]; k != [2]int{} {
						t.Errorf("row %d is absent but %s recorded %d user and %d Lattice writes", id, nodes[d].name, k[0], k[1])
					}
				}
				return
			}
			if r.Name == nil || *r.Name != name {
				t.Errorf("row %d: name %v, want %q", id, r.Name, name)
			}
			for d := range nodes {
				want := [2]int{0, 1}
				if d == wi {
					want = [2]int{1, 0}
				}
				if k := counts[d][id]; k != want {
					bad++
					if bad <= 10 {
						t.Errorf("row %d (inserted into %s): %s recorded %d user and %d Lattice writes, want %d and %d",
							id, nodes[wi].name, nodes[d].name, k[0], k[1], want[0], want[1])
					}
				}
			}
		}
		for id, name := range w.acked {
			check(id, name, true)
		}
		for id, name := range w.maybe {
			check(id, name, false)
		}
	}
	if lost+bad > 0 {
		t.Errorf("%d acknowledged inserts lost, %d rows written a wrong number of times", lost, bad)
	}
	// The shared rows: users updated each a few dozen times from three
	// sides; Lattice may write each database at most once per change made
	// (by anyone) and usually far less, as changes arrive together.
	for id := int64(7); id <= 10; id++ {
		userTotal := 0
		for d := range nodes {
			userTotal += counts[d][id][0]
		}
		for d := range nodes {
			if k := counts[d][id]; k[1] > userTotal {
				t.Errorf("row %d: %s received %d writes from Lattice for %d changes", id, nodes[d].name, k[1], userTotal)
			}
		}
	}
	for _, r := range final {
		if r.ID >= 100_000 {
			w := writers[r.ID/100_000-1]
			if _, ok := w.acked[r.ID]; !ok {
				if _, ok := w.maybe[r.ID]; !ok {
					t.Errorf("row %d exists but was never inserted", r.ID)
				}
			}
		}
	}
	checkQuiet(t, c, pgWriteCounts(t, nodes))
}
