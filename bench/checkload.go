package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
)

// The checker's clients and its oracle: what the clients saw committed,
// and the check of the final table against it.

// The checker syncs one table, items (checkDialect.schema). Keys
// 1..sharedKeys are written by every client, keys tagKeyFirst..tagKeyLast
// (never deleted) take every SQL client's set operations on tags, keys
// lwwKeyFirst..lwwKeyLast (created before the clients start, never
// deleted) take every SQL client's updates of a and b, and the others
// belong to one writer each. tags is a set under the orset policy
// (see checkNode.config): a JSON array in SQLite, jsonb or text[] in
// PostgreSQL.

const (
	sharedKeys  = 16
	tagKeyFirst = sharedKeys + 1
	tagKeyLast  = sharedKeys + 8
	lwwKeyFirst = tagKeyLast + 1
	lwwKeyLast  = tagKeyLast + 8
	writerSpace = 100000
	apiSpace    = 900000
)

// isTagKey reports whether id is one of the shared keys written only by
// set operations on tags.
func isTagKey(id int64) bool { return id >= tagKeyFirst && id <= tagKeyLast }

// isLWWKey reports whether id is one of the shared keys whose fields only
// updates write.
func isLWWKey(id int64) bool { return id >= lwwKeyFirst && id <= lwwKeyLast }

// colors are the set elements every client adds and removes.
var colors = []string{"red", "green", "blue", "amber", "violet"}

// checkDB is one node's database as its SQL clients reach it. A
// replacement of the file (restoreBackup) swaps the pool: the old one
// still reaches the old file.
type checkDB struct {
	// mu is held shared by a client for one statement and what it records
	// of it, and exclusively while the file is replaced, so that no client
	// writes into the file being replaced or records a write made to it
	// after the replacement window closed.
	mu      sync.RWMutex
	db      *sql.DB
	dialect *checkDialect
}

// cell is one field's committed values, for the oracle.
type cell map[string]bool

// ledger is what clients saw committed.
type ledger struct {
	mu sync.Mutex
	// own is the exact state of keys written by one client only: nil
	// means deleted (or never written). Fields a, b and tags (the set,
	// canonical: setText).
	own map[int64]map[string]string
	// ownAt is when each own key's last write committed (since start),
	// for failure reports.
	ownAt map[int64]time.Duration
	start time.Time
	// uncertain keys had a write whose outcome the client could not tell
	// (an API call that failed in transit), or one committed into a
	// database between the copy and the replacement of its file, which
	// the replacement may have undone.
	uncertain map[int64]bool
	// lww holds, per LWW key and field, the updates that may have set it.
	lww map[int64]map[string][]lwwWrite
	// shared holds, per shared key and field, every value committed, and
	// whether a delete or an insert was committed.
	shared  map[int64]map[string]cell
	deleted map[int64]bool
	// added holds, per tag key, every element a client committed an add
	// of; unique holds, per tag key, the elements only one client ever
	// adds or removes, and whether its last committed operation was an add.
	added  map[int64]cell
	unique map[int64]map[string]bool
	// uncertainElems are unique elements whose last operation was made
	// between a copy and the replacement of its database file.
	uncertainElems map[int64]cell
	// window marks the nodes whose database has a copy that will replace
	// it: their clients' writes until then are uncertain.
	window map[int]bool
	// overwritten counts, per node, the statements of its clients that
	// found a row (or a set element) of their own other than their last
	// committed write left it: an apply wrote over a write of theirs that
	// capture had not taken yet (sidecar/doc.go, "Hazards"). What such a
	// statement meant to do may be lost: its key (or element) is left out
	// of the exact check.
	overwritten map[int]int
}

func newLedger() *ledger {
	return &ledger{own: map[int64]map[string]string{}, ownAt: map[int64]time.Duration{}, start: time.Now(), uncertain: map[int64]bool{},
		shared: map[int64]map[string]cell{}, deleted: map[int64]bool{},
		added: map[int64]cell{}, unique: map[int64]map[string]bool{}, uncertainElems: map[int64]cell{},
		window: map[int]bool{}, overwritten: map[int]int{}, lww: map[int64]map[string][]lwwWrite{}}
}

// overwrote records that a statement of a client of node found its own
// key id (or, with elem, that element of tag key id) other than the
// client's last committed write left it. A key (or element) already
// uncertain is not counted: a write whose outcome its client could not
// tell (a connection lost at commit), or a replaced database file, leaves
// the client's knowledge of it stale, and so does the statement that
// found it overwritten.
func (l *ledger) overwrote(node int, id int64, elem string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if elem == "" {
		if !l.uncertain[id] {
			l.overwritten[node]++
		}
		l.uncertain[id] = true
		return
	}
	if l.uncertainElems[id] == nil {
		l.uncertainElems[id] = cell{}
	}
	if !l.uncertainElems[id][elem] {
		l.overwritten[node]++
	}
	l.uncertainElems[id][elem] = true
}

// lwwWrite is an update of a field of an LWW key to value, which its client
// sent at start and saw return at end; certain when the client saw it
// committed, into a database whose file no older copy replaced later.
type lwwWrite struct {
	value      string
	start, end time.Time
	certain    bool
}

// setLWW records an update of field f of LWW key id by a client of node.
func (l *ledger) setLWW(node int, id int64, f, v string, start, end time.Time, certain bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lww[id] == nil {
		l.lww[id] = map[string][]lwwWrite{}
	}
	l.lww[id][f] = append(l.lww[id][f], lwwWrite{value: v, start: start, end: end, certain: certain && !l.window[node]})
}

// lwwSlack is how far a change's stamp may lie outside the times its
// client read around the statement: stamps are commit times (SQLite's to
// the millisecond), raised by logical ticks within one millisecond above
// what the writer saw.
const lwwSlack = 2 * time.Millisecond

// lwwAllows reports whether a field of an LWW key may end holding got
// under last-writer-wins. Each update is stamped with its commit time,
// taken while its statement ran (the row exists everywhere and is never
// deleted, so no update is an insert or a re-insert, whose stamps follow
// other rules: crdt, Floor and "Records and deletes"); the newest stamp
// wins. A certain update that started after another ended (by more than
// lwwSlack) has the newer stamp: got is allowed only if some update that
// may have written it ended no earlier than the latest start of a certain
// update.
func lwwAllows(writes []lwwWrite, got string) bool {
	var latest time.Time
	for _, w := range writes {
		if s := w.start.Truncate(time.Millisecond); w.certain && s.After(latest) {
			latest = s
		}
	}
	for _, w := range writes {
		if w.value == got && !w.end.Add(lwwSlack).Before(latest) {
			return true
		}
	}
	return false
}

// lwwExplain lists an LWW field's updates, for a failure.
func lwwExplain(writes []lwwWrite, start time.Time) string {
	var b strings.Builder
	for _, w := range writes {
		kind := "maybe"
		if w.certain {
			kind = "certain"
		}
		fmt.Fprintf(&b, " %s %s [%s, %s]", kind, w.value, w.start.Sub(start).Round(time.Microsecond), w.end.Sub(start).Round(time.Microsecond))
	}
	return b.String()
}

// setOwn records the state a single-writer key has after a write
// committed in node's database.
func (l *ledger) setOwn(node int, id int64, row map[string]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.own[id] = row
	l.ownAt[id] = time.Since(l.start).Round(time.Millisecond)
	if node >= 0 && l.window[node] {
		l.uncertain[id] = true
	}
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

// setUncertain records a write to single-writer key id whose outcome its
// client could not tell.
func (l *ledger) setUncertain(id int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uncertain[id] = true
}

// setOp records a committed add (or remove) of elem to tag key id in
// node's database, or, with maybe, one whose outcome its client could not
// tell; unique elements are added and removed by one client only.
func (l *ledger) setOp(node int, id int64, elem string, add, unique, maybe bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add {
		if l.added[id] == nil {
			l.added[id] = cell{}
		}
		l.added[id][elem] = true
	}
	if !unique {
		return
	}
	if l.unique[id] == nil {
		l.unique[id] = map[string]bool{}
	}
	l.unique[id][elem] = add
	if l.window[node] || maybe {
		if l.uncertainElems[id] == nil {
			l.uncertainElems[id] = cell{}
		}
		l.uncertainElems[id][elem] = true
	}
}

// setWindow opens (or closes) node's replacement window.
func (l *ledger) setWindow(node int, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.window[node] = open
}

// sqlWriter writes random SQL through its own connection: inserts,
// updates, deletes and re-inserts of its own keys (whose state it knows
// exactly, tags included), the same fields of the shared keys written from
// every side at once, and elements added to and removed from the tags of
// the tag keys, by every client at once.
func sqlWriter(ctx context.Context, d *checkDB, node int, w int64, rng *rand.Rand, l *ledger, writes, committed *atomic.Int64) {
	// Statements run to their end: one cancelled midway may have committed
	// without the client knowing, and the oracle needs to know. ctx only
	// ends the loop.
	stop := ctx
	ctx = context.WithoutCancel(ctx)
	c := &sqlClient{node: node, w: w, rng: rng, l: l, mine: map[int64]map[string]string{}, uniq: map[int64][]string{}}
	for stop.Err() == nil {
		writes.Add(1)
		d.mu.RLock()
		err := c.write(ctx, d)
		d.mu.RUnlock()
		if err == nil {
			committed.Add(1)
		} else if d.dialect.postgres() && !sleepUntil(stop, time.Now().Add(5*time.Millisecond)) {
			// While the server restarts, every statement fails at once:
			// the pause keeps the client from spinning.
			return
		}
	}
}

// sqlClient is one SQL writer's state.
type sqlClient struct {
	node int
	w    int64
	rng  *rand.Rand
	l    *ledger
	seq  int
	// mine is what the client wrote to its own keys; uniq, per tag key,
	// the unique elements it added and has not removed.
	mine map[int64]map[string]string
	uniq map[int64][]string
}

func (c *sqlClient) val() string {
	c.seq++
	return fmt.Sprintf("w%d-%d", c.w, c.seq)
}

// tags returns a random set of colors as a JSON array in random order, and
// its canonical text.
func (c *sqlClient) tags() (string, string) {
	var l []string
	for _, t := range colors {
		if c.rng.IntN(2) == 0 {
			l = append(l, t)
		}
	}
	c.rng.Shuffle(len(l), func(i, j int) { l[i], l[j] = l[j], l[i] })
	b, _ := json.Marshal(append([]string{}, l...))
	return string(b), canonicalSet(l)
}

// write makes one random write; the caller holds the database's lock
// shared, so that what it records belongs with the file it wrote into. A
// write whose outcome the client cannot tell (maybeCommitted) is recorded
// as one that may have committed.
func (c *sqlClient) write(ctx context.Context, d *checkDB) error {
	var err error
	l, db, q := c.l, d.db, d.dialect
	// found tells whether the last statement committed changed a row: one
	// of the client's own rows that it expects there.
	found := true
	exec := func(stmt string, args ...any) bool {
		found = true
		var res sql.Result
		res, err = db.ExecContext(ctx, q.q(stmt), args...)
		if err != nil {
			return false
		}
		n, rerr := res.RowsAffected()
		found = rerr != nil || n > 0
		return true
	}
	maybe := func() bool { return maybeCommitted(q, err) }
	switch op := c.rng.IntN(22); {
	case op < 9: // own key: insert, update, delete, re-insert
		id := c.w*writerSpace + int64(c.rng.IntN(30))
		row, exists := c.mine[id]
		switch {
		case !exists || row == nil:
			t, set := c.tags()
			r := map[string]string{"a": c.val(), "b": c.val(), "tags": set}
			if exec(`INSERT INTO items (id, a, b, tags) VALUES ($1, $2, $3, `+q.fromJSON("$4")+`)`, id, r["a"], r["b"], t) {
				c.mine[id] = r
				l.setOwn(c.node, id, maps.Clone(r))
			} else if maybe() {
				l.setUncertain(id)
			}
		case c.rng.IntN(4) == 0:
			if exec(`DELETE FROM items WHERE id = $1`, id) {
				c.mine[id] = nil
				l.setOwn(c.node, id, nil)
				if !found {
					l.overwrote(c.node, id, "")
				}
			} else if maybe() {
				l.setUncertain(id)
			}
		case c.rng.IntN(3) == 0: // add or remove one element of tags
			e, add := colors[c.rng.IntN(len(colors))], c.rng.IntN(2) == 0
			set := q.remove("$2")
			if add {
				set = q.add("$2")
			}
			// The row holds e exactly when the client's last write left it
			// there.
			has := q.has("$2")
			if !slices.Contains(strings.Split(row["tags"], ","), e) {
				has = "NOT " + has
			}
			if exec(`UPDATE items SET tags = `+set+` WHERE id = $1 AND `+has, id, e) {
				r := maps.Clone(row)
				r["tags"] = setOp(r["tags"], e, add)
				c.mine[id] = r
				l.setOwn(c.node, id, maps.Clone(r))
				if !found {
					l.overwrote(c.node, id, "")
				}
			} else if maybe() {
				l.setUncertain(id)
			}
		default:
			f := []string{"a", "b"}[c.rng.IntN(2)]
			v := c.val()
			if exec(`UPDATE items SET `+f+` = $1 WHERE id = $2`, v, id) {
				r := maps.Clone(row)
				r[f] = v
				c.mine[id] = r
				l.setOwn(c.node, id, maps.Clone(r))
				if !found {
					l.overwrote(c.node, id, "")
				}
			} else if maybe() {
				l.setUncertain(id)
			}
		}
	case op < 16: // shared key, one field, from every side at once
		id := int64(1 + c.rng.IntN(sharedKeys))
		f := []string{"a", "b"}[c.rng.IntN(2)]
		v := c.val()
		if exec(`INSERT INTO items (id, `+f+`) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET `+f+` = excluded.`+f, id, v) || maybe() {
			l.sharedWrite(id, map[string]string{f: v})
		}
	case op < 19: // tag key: add or remove one element
		id := int64(tagKeyFirst + c.rng.IntN(tagKeyLast-tagKeyFirst+1))
		mine := c.uniq[id]
		addElem := `INSERT INTO items (id, tags) VALUES ($1, ` + q.single("$2") + `) ON CONFLICT (id) DO UPDATE SET tags = ` + q.add("$2")
		removeElem := `UPDATE items SET tags = ` + q.remove("$2") + ` WHERE id = $1`
		switch r := c.rng.IntN(4); {
		case r == 0: // add a unique element
			e := fmt.Sprintf("u%d-%d", c.w, c.seq)
			c.seq++
			if exec(addElem, id, e) || maybe() {
				c.uniq[id] = append(mine, e)
				l.setOp(c.node, id, e, true, true, err != nil)
			}
		case r == 1 && len(mine) > 0: // remove one of ours, which the row holds
			i := c.rng.IntN(len(mine))
			e := mine[i]
			if exec(removeElem+` AND `+q.has("$2"), id, e) || maybe() {
				c.uniq[id] = slices.Delete(mine, i, i+1)
				l.setOp(c.node, id, e, false, true, err != nil)
				if !found {
					l.overwrote(c.node, id, e)
				}
			}
		case r == 2:
			e := colors[c.rng.IntN(len(colors))]
			if exec(addElem, id, e) || maybe() {
				l.setOp(c.node, id, e, true, false, err != nil)
			}
		default:
			exec(removeElem, id, colors[c.rng.IntN(len(colors))])
		}
	case op < 21: // LWW key: update a or b, from every side at once
		id := int64(lwwKeyFirst + c.rng.IntN(lwwKeyLast-lwwKeyFirst+1))
		f := []string{"a", "b"}[c.rng.IntN(2)]
		v := c.val()
		start := time.Now()
		ok := exec(`UPDATE items SET `+f+` = $1 WHERE id = $2`, v, id)
		end := time.Now()
		switch {
		case ok && !found:
			// The row is never deleted: something took it away.
			l.overwrote(c.node, id, "")
		case ok || maybe():
			l.setLWW(c.node, id, f, v, start, end, ok)
		}
	default: // shared delete
		id := int64(1 + c.rng.IntN(sharedKeys))
		if exec(`DELETE FROM items WHERE id = $1`, id) || maybe() {
			l.mu.Lock()
			l.deleted[id] = true
			l.mu.Unlock()
		}
	}
	return err
}

// apiWriter writes its own keys through a sidecar's API: whole records
// (PUT) and deletes. A failed call may or may not have committed: its key
// is then left out of the exact check.
func apiWriter(stop context.Context, n *checkNode, w int64, rng *rand.Rand, l *ledger, writes, committed, apiWrites *atomic.Int64) {
	ctx := context.WithoutCancel(stop)
	seq := 0
	for stop.Err() == nil {
		c := n.client
		var err error
		id := apiSpace + w*1000 + int64(rng.IntN(20))
		key := fmt.Sprint(id)
		writes.Add(1)
		apiWrites.Add(1)
		seq++
		if rng.IntN(4) == 0 {
			err = c.Delete(ctx, "items", key)
			if err == nil {
				l.setOwn(-1, id, nil)
			}
		} else {
			r := map[string]string{"a": fmt.Sprintf("api%d-%d", w, seq), "b": fmt.Sprintf("api%d-%d", w, seq)}
			_, err = c.Put(ctx, "items", key, map[string]any{"a": r["a"], "b": r["b"]})
			if err == nil {
				l.setOwn(-1, id, r)
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

// checkRow is a row of items as read with SQL: a, b, n and tags, the set
// in canonical form (setText), nil for SQL NULL (and for an empty set).
type checkRow [4]*string

func readCheckTable(ctx context.Context, d *checkDB) (map[int64]checkRow, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, a, b, CAST(n AS TEXT), `+d.dialect.tags+` FROM items ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]checkRow{}
	for rows.Next() {
		var id int64
		var r checkRow
		if err := rows.Scan(&id, &r[0], &r[1], &r[2], &r[3]); err != nil {
			return nil, err
		}
		r[3] = setText(r[3])
		out[id] = r
	}
	return out, rows.Err()
}

// setText is a tags column as a set: its elements sorted and joined by
// commas; nil for NULL and for the empty array (both mean no elements).
// Text that is not a JSON array of strings is kept, behind a "!", so that
// it differs from every set.
func setText(s *string) *string {
	if s == nil {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(*s), &l); err != nil {
		bad := "!" + *s
		return &bad
	}
	if len(l) == 0 {
		return nil
	}
	c := canonicalSet(l)
	return &c
}

// setOp adds e to (or removes it from) a set in canonical form.
func setOp(set, e string, add bool) string {
	var l []string
	if set != "" {
		l = strings.Split(set, ",")
	}
	l = slices.DeleteFunc(l, func(x string) bool { return x == e })
	if add {
		l = append(l, e)
	}
	return canonicalSet(l)
}

// canonicalSet is a set's elements sorted and joined by commas (duplicates
// kept: a set column holding one twice is wrong).
func canonicalSet(l []string) string {
	l = slices.Clone(l)
	slices.Sort(l)
	return strings.Join(l, ",")
}

func show(r checkRow) string {
	var parts []string
	for _, p := range r {
		parts = append(parts, show1(p))
	}
	return strings.Join(parts, "|")
}

// show1 is a value as show prints it.
func show1(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

func diffCheckTables(a, b map[int64]checkRow) string {
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

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// check compares the final table with what the clients saw committed:
// every key a single client owns holds exactly its last committed state,
// tags included (no committed write lost, none undone), every shared
// field holds a value some client committed to it (nothing invented), or
// null; every element of a tag key's set was added to it by some client,
// and each element only one client adds and removes is there when that
// client's last committed operation on it was an add, and absent when it
// was a remove; and no row exists that no client wrote.
func (l *ledger) check(final map[int64]checkRow) error {
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
			bad = append(bad, fmt.Sprintf("row %d was deleted (at %s), holds %s", id, l.ownAt[id], show(got)))
		case want != nil && !ok:
			bad = append(bad, fmt.Sprintf("row %d lost: want %s|%s|%s (written at %s)", id, want["a"], want["b"], want["tags"], l.ownAt[id]))
		case want != nil && (got[0] == nil || got[1] == nil || *got[0] != want["a"] || *got[1] != want["b"] || str(got[3]) != want["tags"]):
			bad = append(bad, fmt.Sprintf("row %d holds %s, want %s|%s|null|%s (written at %s)", id, show(got), want["a"], want["b"], want["tags"], l.ownAt[id]))
		}
	}
	for id, got := range final {
		switch {
		case isTagKey(id):
			if got[0] != nil || got[1] != nil || got[2] != nil {
				bad = append(bad, fmt.Sprintf("tag row %d holds %s, no client wrote a, b or n", id, show(got)))
			}
			if got[3] == nil {
				continue
			}
			for e := range strings.SplitSeq(*got[3], ",") {
				if !l.added[id][e] {
					bad = append(bad, fmt.Sprintf("tag row %d holds %q, which no client added", id, e))
				}
			}
		case isLWWKey(id):
			if _, known := l.lww[id]; !known {
				bad = append(bad, fmt.Sprintf("LWW row %d holds %s, no client wrote it", id, show(got)))
			}
			if got[2] != nil || got[3] != nil {
				bad = append(bad, fmt.Sprintf("LWW row %d holds %s, no client wrote n or tags", id, show(got)))
			}
		case id > sharedKeys:
			if _, known := l.own[id]; !known && !l.uncertain[id] {
				bad = append(bad, fmt.Sprintf("row %d holds %s, no client wrote it", id, show(got)))
			}
		default:
			for i, f := range []string{"a", "b"} {
				if got[i] != nil && !l.shared[id][f][*got[i]] {
					bad = append(bad, fmt.Sprintf("shared row %d field %s holds %q, which no client committed", id, f, *got[i]))
				}
			}
			if got[2] != nil || got[3] != nil {
				bad = append(bad, fmt.Sprintf("shared row %d holds %s, no client wrote n or tags", id, show(got)))
			}
			if got[0] == nil && got[1] == nil && len(l.shared[id]) == 0 {
				bad = append(bad, fmt.Sprintf("shared row %d exists, no client wrote it", id))
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(l.lww)) {
		got, ok := final[id]
		if !ok {
			bad = append(bad, fmt.Sprintf("LWW row %d lost: no client deletes it", id))
			continue
		}
		for i, f := range []string{"a", "b"} {
			ws := l.lww[id][f]
			if got[i] == nil || !lwwAllows(ws, *got[i]) {
				bad = append(bad, fmt.Sprintf("LWW row %d field %s holds %s, which last-writer-wins does not allow; its updates:%s",
					id, f, show1(got[i]), lwwExplain(ws, l.start)))
			}
		}
	}
	for id, elems := range l.unique {
		var have []string
		if r, ok := final[id]; ok && r[3] != nil {
			have = strings.Split(*r[3], ",")
		}
		for e, present := range elems {
			if l.uncertainElems[id][e] {
				continue
			}
			if got := slices.Contains(have, e); got != present {
				bad = append(bad, fmt.Sprintf("tag row %d: element %q present %v, want %v (its only client's last operation)", id, e, got, present))
			}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errors.Newf("%d rows differ from the oracle: %s", len(bad), strings.Join(bad[:min(len(bad), 10)], "; "))
	}
	return nil
}
