package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// The SQLite end-to-end test: three `lattice agent` processes, each beside
// its own SQLite file, written to at once through the files (as their
// applications would) and through the agents' APIs, with one agent killed
// with SIGKILL and restarted while its database keeps taking writes.

const itemsSchema = `
CREATE TABLE IF NOT EXISTS items (
	id     INTEGER PRIMARY KEY,
	name   TEXT,
	status TEXT,
	c1     TEXT,
	c2     TEXT,
	c3     TEXT,
	tags   JSON
)`

// countingSQL records every write the items table receives, from its users
// and from Lattice alike; by_lattice tells them apart by the marker row the
// adapter holds inside its apply transactions (see adapters/sqlite). It is
// created once the adapter has installed its tables.
const countingSQL = `
CREATE TABLE IF NOT EXISTS item_writes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER, op TEXT, by_lattice INTEGER);
CREATE TRIGGER IF NOT EXISTS count_items_ins AFTER INSERT ON items BEGIN
	INSERT INTO item_writes(id, op, by_lattice) VALUES (NEW.id, 'insert', EXISTS (SELECT 1 FROM _lattice_apply)); END;
CREATE TRIGGER IF NOT EXISTS count_items_upd AFTER UPDATE ON items BEGIN
	INSERT INTO item_writes(id, op, by_lattice) VALUES (NEW.id, 'update', EXISTS (SELECT 1 FROM _lattice_apply)); END;
CREATE TRIGGER IF NOT EXISTS count_items_del AFTER DELETE ON items BEGIN
	INSERT INTO item_writes(id, op, by_lattice) VALUES (OLD.id, 'delete', EXISTS (SELECT 1 FROM _lattice_apply)); END;
`

// itemsCollections is the collections section of every agent's config:
// tags is an add-wins set kept in a JSON column; the rest are lww.
const itemsCollections = `  items:
    key: [id]
    fields:
      status: lww
      tags: orset`

// Key ranges. Shared rows 1..20 are updated from every side and never
// deleted; 21..30 are updated and deleted from every side. Unique rows are
// written by one writer only: node i's SQL writer uses i*1e6+k, its API
// writer i*1e6+500000+k.
const (
	sharedA    = 20
	sharedB    = 30
	apiOffset  = 500_000
	nodeStride = 1_000_000
)

// row is one items row, compared in canonical form: tags sorted, an empty
// set and NULL alike (an OR-set without elements).
type row struct {
	ID     int64    `json:"id"`
	Name   *string  `json:"name"`
	Status *string  `json:"status"`
	C1     *string  `json:"c1"`
	C2     *string  `json:"c2"`
	C3     *string  `json:"c3"`
	Tags   []string `json:"tags"`
}

func (r *row) canon() string {
	if r == nil {
		return "(absent)"
	}
	c := *r
	c.Tags = canonTags(r.Tags)
	return jsonString(c)
}

func (r *row) key() int64 { return r.ID }

func (r *row) col(i int) **string {
	switch i {
	case 1:
		return &r.C1
	case 2:
		return &r.C2
	default:
		return &r.C3
	}
}

func strp(s string) *string { return &s }

func openSQLite(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	t.Cleanup(func() { db.Close() })
	return db
}

// readItems returns the rows of the items table that match where (every
// row when it is empty), in key order.
func readItems(ctx context.Context, db *sql.DB, where string, args ...any) ([]*row, error) {
	if where != "" {
		where = "WHERE " + where
	}
	rs, err := db.QueryContext(ctx, `SELECT id, name, status, c1, c2, c3, tags FROM items `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*row
	for rs.Next() {
		var r row
		var tags sql.NullString
		if err := rs.Scan(&r.ID, &r.Name, &r.Status, &r.C1, &r.C2, &r.C3, &tags); err != nil {
			return nil, err
		}
		if tags.Valid {
			if err := json.Unmarshal([]byte(tags.String), &r.Tags); err != nil {
				return nil, fmt.Errorf("row %d: tags %q: %v", r.ID, tags.String, err)
			}
		}
		out = append(out, &r)
	}
	return out, rs.Err()
}

// rowFromAPI converts the row of an API record.
func rowFromAPI(rec *sidecar.Record) (*row, error) {
	var r row
	for f, raw := range rec.Row {
		var err error
		switch f {
		case "id":
			err = json.Unmarshal(raw, &r.ID)
		case "name":
			err = json.Unmarshal(raw, &r.Name)
		case "status":
			err = json.Unmarshal(raw, &r.Status)
		case "c1":
			err = json.Unmarshal(raw, &r.C1)
		case "c2":
			err = json.Unmarshal(raw, &r.C2)
		case "c3":
			err = json.Unmarshal(raw, &r.C3)
		case "tags":
			err = json.Unmarshal(raw, &r.Tags)
		default:
			err = fmt.Errorf("unexpected field")
		}
		if err != nil {
			return nil, fmt.Errorf("field %s = %s: %v", f, raw, err)
		}
	}
	return &r, nil
}

// uniqEntry is what is known of a row written by one writer only: its last
// acknowledged state (nil: absent) and the states of attempts whose outcome
// is unknown (the request failed in a way that does not say whether it
// committed). The writer stops using a row after such an attempt.
type uniqEntry struct {
	acked *row
	maybe []*row
}

// sharedEntry is what is known of a shared row (1..30).
type sharedEntry struct {
	status map[string]bool // every status value written (acknowledged or not)
	// cLast[i] is the last acknowledged value node i's SQL writer put in
	// column c<i> (only it writes that column of rows 1..20); cMaybe holds
	// values of attempts with unknown outcome since then.
	cLast  [4]*string
	cMaybe [4][]string
	// Tags: present were added (acknowledged) and not removed; removed were
	// removed (acknowledged) by their adder; maybe had an attempt with
	// unknown outcome.
	present, removed, maybe map[string]bool
	// written lists every value written to each column (rows 21..30).
	written map[string]map[string]bool
}

type ledger struct {
	mu     sync.Mutex
	uniq   map[int64]*uniqEntry
	shared map[int64]*sharedEntry
	faults []string // impossible observations made while writing
}

func newLedger() *ledger {
	l := &ledger{uniq: map[int64]*uniqEntry{}, shared: map[int64]*sharedEntry{}}
	for id := int64(1); id <= sharedB; id++ {
		e := &sharedEntry{status: map[string]bool{"seed": true}, present: map[string]bool{}, removed: map[string]bool{},
			maybe: map[string]bool{}, written: map[string]map[string]bool{}}
		if id <= sharedA {
			e.present["seed"] = true
		}
		for _, f := range []string{"name", "status", "c1", "c2", "c3"} {
			e.written[f] = map[string]bool{}
		}
		e.written["name"][fmt.Sprintf("shared-%d", id)] = true
		e.written["status"]["seed"] = true
		l.shared[id] = e
	}
	return l
}

func (l *ledger) fault(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faults = append(l.faults, fmt.Sprintf(format, args...))
}

// outcome classifies a write's error: acknowledged, not done (it never
// reached the system), or unknown.
type outcome int

const (
	acked outcome = iota
	notDone
	unknown
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return acked
	case errors.Is(err, syscall.ECONNREFUSED):
		return notDone
	default:
		return unknown
	}
}

// writer is one source of writes: a node's SQL file or its API. Its name
// is s<node> or a<node>.
type writer struct {
	writeStats
	node   int
	viaAPI bool
	l      *ledger
	rnd    *rand.Rand
	db     *sql.DB
	api    *sidecar.Client
	seq    int
	next   int64   // next unique key suffix
	live   []int64 // own unique rows known to exist
	myTags map[int64][]string
	// rows counts the rows acknowledged SQL writes changed; unsure those of
	// SQL writes with unknown outcome.
	rows, unsure atomic.Int64
}

// step makes one write, chosen at random, and records its outcome.
func (w *writer) step(ctx context.Context) {
	w.seq++
	p := w.rnd.IntN(100)
	switch {
	case p < 35:
		w.uniqInsert(ctx)
	case p < 50 && len(w.live) > 0:
		w.uniqUpdate(ctx)
	case p < 55 && len(w.live) > 0:
		w.uniqDelete(ctx)
	case p < 65:
		w.sharedStatus(ctx)
	case p < 73 && !w.viaAPI:
		w.sharedOwnColumn(ctx)
	case p < 83:
		w.tagAdd(ctx)
	case p < 89:
		w.tagRemove(ctx)
	case p < 95:
		w.sharedBUpdate(ctx)
	default:
		w.sharedBDelete(ctx)
	}
}

func (w *writer) done(o outcome, err error) {
	if o == acked {
		w.acks.Add(1)
	} else {
		w.fail(err)
	}
}

func (w *writer) exec(ctx context.Context, q string, args ...any) (int64, error) {
	res, err := w.db.ExecContext(ctx, q, args...)
	if err != nil {
		w.unsure.Add(1)
		return 0, err
	}
	n, err := res.RowsAffected()
	w.rows.Add(n)
	return n, err
}

func (w *writer) uniqInsert(ctx context.Context) {
	w.next++
	id := int64(w.node)*nodeStride + w.next
	if w.viaAPI {
		id += apiOffset
	}
	name := fmt.Sprintf("%s-row-%d", w.name, w.next)
	want := &row{ID: id, Name: strp(name), Status: strp("new")}
	var err error
	if w.viaAPI {
		_, err = w.api.Put(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"name": name, "status": "new"})
	} else {
		_, err = w.exec(ctx, `INSERT INTO items(id, name, status) VALUES(?, ?, ?)`, id, name, "new")
	}
	o := classify(err)
	w.l.mu.Lock()
	switch o {
	case acked:
		w.l.uniq[id] = &uniqEntry{acked: want}
		w.live = append(w.live, id)
	case unknown:
		w.l.uniq[id] = &uniqEntry{maybe: []*row{want}}
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

// pickLive returns one of the writer's live unique rows and removes it from
// the list (the caller puts it back when it stays usable).
func (w *writer) pickLive() int64 {
	i := w.rnd.IntN(len(w.live))
	id := w.live[i]
	w.live = slices.Delete(w.live, i, i+1)
	return id
}

func (w *writer) uniqUpdate(ctx context.Context) {
	id := w.pickLive()
	status := fmt.Sprintf("%s-upd-%d", w.name, w.seq)
	w.l.mu.Lock()
	want := *w.l.uniq[id].acked
	w.l.mu.Unlock()
	want.Status = strp(status)
	var err error
	if w.viaAPI {
		_, err = w.api.Patch(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"status": status})
	} else {
		var n int64
		n, err = w.exec(ctx, `UPDATE items SET status=? WHERE id=?`, status, id)
		if err == nil && n != 1 {
			w.l.fault("node %d: update of its own row %d found %d rows: the row vanished from its database", w.node, id, n)
		}
	}
	o := classify(err)
	w.l.mu.Lock()
	switch o {
	case acked:
		w.l.uniq[id].acked = &want
		w.live = append(w.live, id)
	case notDone:
		w.live = append(w.live, id)
	case unknown:
		w.l.uniq[id].maybe = append(w.l.uniq[id].maybe, &want)
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

func (w *writer) uniqDelete(ctx context.Context) {
	id := w.pickLive()
	var err error
	if w.viaAPI {
		err = w.api.Delete(ctx, "items", strconv.FormatInt(id, 10))
	} else {
		_, err = w.exec(ctx, `DELETE FROM items WHERE id=?`, id)
	}
	o := classify(err)
	w.l.mu.Lock()
	switch o {
	case acked:
		w.l.uniq[id].acked = nil
	case notDone:
		w.live = append(w.live, id)
	case unknown:
		w.l.uniq[id].maybe = append(w.l.uniq[id].maybe, nil)
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

// sharedStatus sets the status of a shared row: the same field from every
// side.
func (w *writer) sharedStatus(ctx context.Context) {
	id := 1 + w.rnd.Int64N(sharedA)
	v := fmt.Sprintf("%s-st-%d", w.name, w.seq)
	w.l.mu.Lock()
	w.l.shared[id].status[v] = true
	w.l.mu.Unlock()
	var err error
	if w.viaAPI {
		_, err = w.api.Patch(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"status": v})
	} else {
		_, err = w.exec(ctx, `UPDATE items SET status=? WHERE id=?`, v, id)
	}
	w.done(classify(err), err)
}

// sharedOwnColumn sets column c<node> of a shared row: different fields of
// one row from each side.
func (w *writer) sharedOwnColumn(ctx context.Context) {
	id := 1 + w.rnd.Int64N(sharedA)
	v := fmt.Sprintf("%s-c-%d", w.name, w.seq)
	n, err := w.exec(ctx, fmt.Sprintf(`UPDATE items SET c%d=? WHERE id=?`, w.node), v, id)
	if err == nil && n != 1 {
		w.l.fault("node %d: shared row %d missing from its database", w.node, id)
	}
	o := classify(err)
	w.l.mu.Lock()
	e := w.l.shared[id]
	switch o {
	case acked:
		e.cLast[w.node] = strp(v)
		e.cMaybe[w.node] = nil
	case unknown:
		e.cMaybe[w.node] = append(e.cMaybe[w.node], v)
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

// rmwTags changes a shared row's tags the way an application would: read
// the array, change it, write it back, in one transaction.
func (w *writer) rmwTags(ctx context.Context, id int64, change func([]string) ([]string, bool)) (bool, error) {
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var raw sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT tags FROM items WHERE id=?`, id).Scan(&raw); err != nil {
		return false, err
	}
	var tags []string
	if raw.Valid {
		if err := json.Unmarshal([]byte(raw.String), &tags); err != nil {
			return false, fmt.Errorf("row %d tags %q: %w", id, raw.String, err)
		}
	}
	out, ok := change(tags)
	if !ok {
		return false, nil
	}
	if out == nil {
		out = []string{}
	}
	b, _ := json.Marshal(out)
	if _, err := tx.ExecContext(ctx, `UPDATE items SET tags=? WHERE id=?`, string(b), id); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		w.unsure.Add(1)
		return false, err
	}
	w.rows.Add(1)
	return true, nil
}

func (w *writer) tagAdd(ctx context.Context) {
	id := 1 + w.rnd.Int64N(sharedA)
	e := fmt.Sprintf("%s-t-%d", w.name, w.seq)
	var err error
	if w.viaAPI {
		_, err = w.api.Patch(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"tags": map[string]any{"add": []string{e}}})
	} else {
		_, err = w.rmwTags(ctx, id, func(tags []string) ([]string, bool) { return append(tags, e), true })
	}
	o := classify(err)
	w.l.mu.Lock()
	switch o {
	case acked:
		w.l.shared[id].present[e] = true
		w.myTags[id] = append(w.myTags[id], e)
	case unknown:
		w.l.shared[id].maybe[e] = true
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

// tagRemove removes one of the elements this writer added (and that is
// still there) from a shared row's tags.
func (w *writer) tagRemove(ctx context.Context) {
	id := 1 + w.rnd.Int64N(sharedA)
	mine := w.myTags[id]
	if len(mine) == 0 {
		w.tagAdd(ctx)
		return
	}
	i := w.rnd.IntN(len(mine))
	e := mine[i]
	var err error
	did := true
	if w.viaAPI {
		_, err = w.api.Patch(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"tags": map[string]any{"remove": []string{e}}})
	} else {
		// An apply of an older merged state may have overwritten the
		// element for a moment (until the engine writes the row again):
		// remove only what the application sees.
		did, err = w.rmwTags(ctx, id, func(tags []string) ([]string, bool) {
			j := slices.Index(tags, e)
			if j < 0 {
				return nil, false
			}
			return slices.Delete(tags, j, j+1), true
		})
	}
	if err == nil && !did {
		return
	}
	o := classify(err)
	w.l.mu.Lock()
	s := w.l.shared[id]
	switch o {
	case acked:
		delete(s.present, e)
		s.removed[e] = true
		w.myTags[id] = slices.Delete(mine, i, i+1)
	case unknown:
		delete(s.present, e)
		s.maybe[e] = true
		w.myTags[id] = slices.Delete(mine, i, i+1)
	}
	w.l.mu.Unlock()
	w.done(o, err)
}

// sharedBUpdate writes status and the writer's own column of a row that
// others delete: an upsert, which re-inserts a deleted row.
func (w *writer) sharedBUpdate(ctx context.Context) {
	id := sharedA + 1 + w.rnd.Int64N(sharedB-sharedA)
	st := fmt.Sprintf("%s-b-%d", w.name, w.seq)
	col := fmt.Sprintf("c%d", w.node)
	w.l.mu.Lock()
	w.l.shared[id].written["status"][st] = true
	w.l.shared[id].written[col][st] = true
	w.l.mu.Unlock()
	var err error
	if w.viaAPI {
		_, err = w.api.Patch(ctx, "items", strconv.FormatInt(id, 10), map[string]any{"status": st, col: st})
	} else {
		_, err = w.exec(ctx, fmt.Sprintf(`INSERT INTO items(id, status, %[1]s) VALUES(?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET status=excluded.status, %[1]s=excluded.%[1]s`, col), id, st, st)
	}
	w.done(classify(err), err)
}

func (w *writer) sharedBDelete(ctx context.Context) {
	id := sharedA + 1 + w.rnd.Int64N(sharedB-sharedA)
	var err error
	if w.viaAPI {
		err = w.api.Delete(ctx, "items", strconv.FormatInt(id, 10))
	} else {
		_, err = w.exec(ctx, `DELETE FROM items WHERE id=?`, id)
	}
	w.done(classify(err), err)
}

// sqliteNode is an agent and its database.
type sqliteNode struct {
	*agent
	dbPath string
	db     *sql.DB
}

func startSQLiteCluster(t *testing.T, seed func(db *sql.DB)) (*cluster, []*sqliteNode) {
	t.Helper()
	c := newCluster(t, itemsCollections)
	var nodes []*sqliteNode
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("n%d", i)
		path := filepath.Join(c.dir, name+".db")
		db := openSQLite(t, path)
		if _, err := db.Exec(itemsSchema); err != nil {
			t.Fatal(err)
		}
		if i == 1 && seed != nil {
			seed(db)
		}
		a := c.add(name, fmt.Sprintf("  kind: sqlite\n  dsn: %s\n  tables: [items]\n  poll_interval: 5ms", path))
		nodes = append(nodes, &sqliteNode{agent: a, dbPath: path, db: db})
	}
	c.startAll(60 * time.Second)
	return c, nodes
}

// sqliteSettled reports whether the cluster has settled and the three
// databases hold identical tables, with capture caught up in each.
func sqliteSettled(ctx context.Context, c *cluster, nodes []*sqliteNode) (bool, string) {
	for _, n := range nodes {
		var acked, last int64
		if err := n.db.QueryRowContext(ctx, `SELECT (SELECT v FROM _lattice_meta WHERE k='acked'), (SELECT COALESCE(MAX(seq), 0) FROM _lattice_log)`).Scan(&acked, &last); err != nil {
			return false, fmt.Sprintf("%s log position: %v", n.name, err)
		}
		if last > acked {
			return false, fmt.Sprintf("%s has captured up to %d of %d logged changes", n.name, acked, last)
		}
	}
	return settledTables(c, func(i int) ([]*row, error) { return readItems(ctx, nodes[i].db, "") })
}

func TestEndToEndSQLite(t *testing.T) {
	start := time.Now()
	ctx := context.Background()
	seedSQL := func(db *sql.DB) {
		for id := 1; id <= sharedB; id++ {
			tags := `["seed"]`
			if id > sharedA {
				tags = `[]`
			}
			if _, err := db.Exec(`INSERT INTO items(id, name, status, tags) VALUES(?, ?, 'seed', ?)`, id, fmt.Sprintf("shared-%d", id), tags); err != nil {
				t.Fatal(err)
			}
		}
	}
	c, nodes := startSQLiteCluster(t, seedSQL)
	waitFor(t, 30*time.Second, "the seed rows in every database", func() (bool, string) {
		return sqliteSettled(ctx, c, nodes)
	})
	if rows, err := readItems(ctx, nodes[2].db, ""); err != nil || len(rows) != sharedB {
		t.Fatalf("n3 holds %d rows (%v), want the %d seeded in n1", len(rows), err, sharedB)
	}
	for _, n := range nodes {
		if _, err := n.db.Exec(countingSQL); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cluster up and seeded in %s", time.Since(start).Round(time.Millisecond))

	// Writers: for each node one through its SQLite file and one through its
	// API, paced (the pace bounds the load on a small machine; nothing
	// waits on it for correctness).
	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d", seed)
	l := newLedger()
	var writers []*writer
	for i, n := range nodes {
		for _, viaAPI := range []bool{false, true} {
			name := fmt.Sprintf("s%d", i+1)
			if viaAPI {
				name = fmt.Sprintf("a%d", i+1)
			}
			w := &writer{writeStats: writeStats{name: name}, node: i + 1, viaAPI: viaAPI, l: l,
				rnd: rand.New(rand.NewPCG(seed, uint64(2*i+btoi(viaAPI)))), myTags: map[int64][]string{}}
			if viaAPI {
				cl, err := sidecar.NewClient(n.api, c.token, "")
				if err != nil {
					t.Fatal(err)
				}
				cl.HTTP.Timeout = 10 * time.Second
				t.Cleanup(cl.HTTP.CloseIdleConnections)
				w.api = cl
			} else {
				w.db = openSQLite(t, n.dbPath)
			}
			writers = append(writers, w)
		}
	}
	wctx, stopWriters := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range writers {
		pace := 8 * time.Millisecond
		if w.viaAPI {
			pace = 16 * time.Millisecond
		}
		runPaced(wctx, &wg, pace, w.step)
	}
	defer func() { stopWriters(); wg.Wait() }()
	waitAcks(t, 60*time.Second, "writes on every side", writers, 100)

	victim := nodes[1]
	victimSQL := writers[2]
	t.Logf("SIGKILL %s after %s", victim.name, time.Since(start).Round(time.Millisecond))
	victim.kill()
	waitAcks(t, 60*time.Second, victim.name+"'s database taking writes while its agent is down", []*writer{victimSQL, writers[0], writers[4]}, 150)
	victim.restart(60 * time.Second)
	t.Logf("%s restarted and ready after %s", victim.name, time.Since(start).Round(time.Millisecond))
	waitAcks(t, 60*time.Second, "writes on every side after the restart", writers, 100)
	stopWriters()
	wg.Wait()

	var total, errs int64
	for _, w := range writers {
		total += w.acks.Load()
		errs += w.errs.Load()
	}
	t.Logf("writers stopped after %s: %d acknowledged writes, %d failed (the killed agent's API)", time.Since(start).Round(time.Millisecond), total, errs)
	waitFor(t, 60*time.Second, "convergence", func() (bool, string) { return sqliteSettled(ctx, c, nodes) })
	t.Logf("converged after %s", time.Since(start).Round(time.Millisecond))

	for _, f := range l.faults {
		t.Error(f)
	}
	final, err := readItems(ctx, nodes[0].db, "")
	if err != nil {
		t.Fatal(err)
	}
	checkLedger(t, l, final)
	checkMergedView(t, nodes, final)
	for i, n := range nodes {
		user, byLattice := sqliteWrites(t, n.db)
		w := writers[2*i]
		if user < w.rows.Load() || user > w.rows.Load()+w.unsure.Load() {
			t.Errorf("%s: its table counted %d user writes; its writer changed %d rows (%d unsure)", n.name, user, w.rows.Load(), w.unsure.Load())
		}
		t.Logf("%s: %d user writes, %d writes by Lattice", n.name, user, byLattice)
	}
	checkQuiet(t, c, func() string {
		var counts []string
		for _, n := range nodes {
			user, byLattice := sqliteWrites(t, n.db)
			counts = append(counts, fmt.Sprintf("%s %d+%d", n.name, user, byLattice))
		}
		return strings.Join(counts, ", ")
	})

	t.Run("cli", func(t *testing.T) { testCLI(t, c, nodes) })

	t.Logf("client commands checked after %s", time.Since(start).Round(time.Millisecond))
	c.stopAll(30 * time.Second)
	c.checkLogs()
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// sqliteWrites returns the writes the counting triggers saw, by users and
// by Lattice.
func sqliteWrites(t testing.TB, db *sql.DB) (user, byLattice int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT COALESCE(SUM(by_lattice = 0), 0), COALESCE(SUM(by_lattice = 1), 0) FROM item_writes`).Scan(&user, &byLattice); err != nil {
		t.Fatal(err)
	}
	return user, byLattice
}

// checkQuiet checks that a settled cluster stays still: while every agent
// completes two more anti-entropy sessions, no system receives a write, no
// agent produces a delta and the digests do not move. An update war, or
// an echo captured as a new change, never settles.
func checkQuiet(t *testing.T, c *cluster, writes func() string) {
	t.Helper()
	type snap struct {
		syncs  uint64
		local  float64
		digest string
	}
	take := func() []snap {
		var out []snap
		for _, a := range c.agents {
			s, err := a.status()
			if err != nil {
				t.Fatal(err)
			}
			local, err := a.metric("lattice_local_deltas_total")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, snap{syncs: s.Gossip.Syncs, local: local, digest: s.Digest})
		}
		return out
	}
	before, w0 := take(), writes()
	waitFor(t, 30*time.Second, "two anti-entropy sessions on every agent", func() (bool, string) {
		for i, a := range c.agents {
			s, err := a.status()
			if err != nil {
				return false, err.Error()
			}
			if s.Gossip.Syncs < before[i].syncs+2 {
				return false, fmt.Sprintf("%s: %d sessions", a.name, s.Gossip.Syncs-before[i].syncs)
			}
		}
		return true, ""
	})
	after, w1 := take(), writes()
	if w0 != w1 {
		t.Errorf("the systems kept receiving writes after convergence: %s, then %s", w0, w1)
	}
	for i, a := range c.agents {
		if after[i].local != before[i].local || after[i].digest != before[i].digest {
			t.Errorf("%s kept changing after convergence: local deltas %v -> %v, digest %s -> %s",
				a.name, before[i].local, after[i].local, before[i].digest, after[i].digest)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkLedger compares the final table with what the writers were told.
func checkLedger(t *testing.T, l *ledger, final []*row) {
	t.Helper()
	byID := map[int64]*row{}
	for _, r := range final {
		byID[r.ID] = r
	}
	lost, wrong := 0, 0
	// Unique rows: the last acknowledged state, or that of an attempt whose
	// outcome is unknown.
	for id, e := range l.uniq {
		got := byID[id].canon()
		ok := got == e.acked.canon()
		for _, m := range e.maybe {
			ok = ok || got == m.canon()
		}
		if !ok {
			if e.acked != nil && byID[id] == nil {
				lost++
			} else {
				wrong++
			}
			if lost+wrong <= 10 {
				t.Errorf("row %d: got %s, want %s (or one of %d unconfirmed attempts)", id, got, e.acked.canon(), len(e.maybe))
			}
		}
	}
	if lost+wrong > 0 {
		t.Errorf("%d acknowledged rows lost, %d with a value other than the last acknowledged, of %d unique rows", lost, wrong, len(l.uniq))
	}
	// No row comes from nowhere.
	for _, r := range final {
		if _, ok := l.uniq[r.ID]; !ok && l.shared[r.ID] == nil {
			t.Errorf("row %d exists but was never written", r.ID)
		}
	}
	for id := int64(1); id <= sharedB; id++ {
		e := l.shared[id]
		r := byID[id]
		if id <= sharedA {
			if r == nil {
				t.Errorf("shared row %d, never deleted, is missing", id)
				continue
			}
			if r.Name == nil || *r.Name != fmt.Sprintf("shared-%d", id) {
				t.Errorf("row %d name %v: only the seed wrote it", id, r.Name)
			}
			if r.Status == nil || !e.status[*r.Status] {
				t.Errorf("row %d status %v was never written", id, r.Status)
			}
			for i := 1; i <= 3; i++ {
				got := *r.col(i)
				ok := (got == nil && e.cLast[i] == nil) || (got != nil && e.cLast[i] != nil && *got == *e.cLast[i])
				if got != nil && slices.Contains(e.cMaybe[i], *got) {
					ok = true
				}
				if !ok {
					t.Errorf("row %d c%d = %v, want node %d's last acknowledged write %v", id, i, strOrNil(got), i, strOrNil(e.cLast[i]))
				}
			}
			tags := map[string]bool{}
			for _, x := range r.Tags {
				tags[x] = true
			}
			for x := range e.present {
				if !tags[x] && !e.maybe[x] {
					t.Errorf("row %d lost tag %q (added, never removed)", id, x)
				}
			}
			for x := range tags {
				if !e.present[x] && !e.maybe[x] {
					if e.removed[x] {
						t.Errorf("row %d has tag %q, which its adder removed", id, x)
					} else {
						t.Errorf("row %d has tag %q, which nobody added", id, x)
					}
				}
			}
			continue
		}
		if r == nil {
			continue
		}
		check := func(f string, v *string) {
			if v != nil && !e.written[f][*v] {
				t.Errorf("row %d %s = %q was never written", id, f, *v)
			}
		}
		check("name", r.Name)
		check("status", r.Status)
		check("c1", r.C1)
		check("c2", r.C2)
		check("c3", r.C3)
		if len(r.Tags) > 0 {
			t.Errorf("row %d has tags %v; nobody adds tags to rows %d..%d", id, r.Tags, sharedA+1, sharedB)
		}
	}
}

func strOrNil(s *string) string {
	if s == nil {
		return "NULL"
	}
	return strconv.Quote(*s)
}

// checkMergedView checks that every shared row, as each database holds it,
// equals the merged record that database's agent serves.
func checkMergedView(t *testing.T, nodes []*sqliteNode, final []*row) {
	t.Helper()
	byID := map[int64]*row{}
	for _, r := range final {
		byID[r.ID] = r
	}
	ctx := context.Background()
	for _, n := range nodes {
		cl := n.apiClient()
		for id := int64(1); id <= sharedB; id++ {
			rec, err := cl.Get(ctx, "items", strconv.FormatInt(id, 10))
			var got *row
			switch {
			case err == nil:
				if got, err = rowFromAPI(rec); err != nil {
					t.Errorf("%s record %d: %v", n.name, id, err)
					continue
				}
			case errors.Is(err, sidecar.ErrNotFound):
			default:
				t.Errorf("%s GET record %d: %v", n.name, id, err)
				continue
			}
			if want := byID[id]; got.canon() != want.canon() {
				t.Errorf("%s: record %d merged %s, databases hold %s", n.name, id, got.canon(), want.canon())
			}
		}
	}
}
