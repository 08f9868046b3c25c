package http

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"maps"
	nethttp "net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"golang.org/x/time/rate"
)

// Adapter syncs the collections of one JSON REST API.
type Adapter struct {
	cfg    *Config
	colls  []*Collection // sorted by name
	byName map[string]*Collection
	c      *client
	st     *state
	log    *slog.Logger
	clk    clock.Clock

	seq atomic.Int64 // the last sequence number handed out
	// seqMu guards reserved, the greatest sequence number the state file
	// has reserved (nextSeq).
	seqMu    sync.Mutex
	reserved int64

	// applyMu serialises Apply with the reads of capture (polls,
	// reconciliation's listing, the deletes webhooks announce) and with
	// Head: a listing must not miss a record an apply creates while it
	// runs, a poll must see the echoes of every write before it, and each
	// takes its sequence number under it, so that positions follow the
	// order of what the API holds.
	applyMu sync.Mutex

	skipped   atomic.Int64             // records capture could not decode
	skippedBy map[string]*atomic.Int64 // the same by collection
	polls     polls                    // capture's last successful polls, for metrics

	hooks *hooks // the webhook receiver; nil without webhooks
}

// Open opens the adapter for cfg (LoadConfig or ParseConfig), creating its
// state file when missing.
func Open(ctx context.Context, cfg *Config, log *slog.Logger, clk clock.Clock) (*Adapter, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	creds, err := authenticator(cfg.Auth, clk)
	if err != nil {
		return nil, err
	}
	hk, err := newHooks(cfg.Webhooks, clk)
	if err != nil {
		return nil, err
	}
	st, err := openState(ctx, cfg.statePath())
	if err != nil {
		return nil, err
	}
	a := &Adapter{cfg: cfg, byName: map[string]*Collection{}, st: st, log: log, clk: clk, hooks: hk, skippedBy: map[string]*atomic.Int64{},
		polls: polls{opened: clk.Now(), at: map[string]time.Time{}, mark: map[string]int64{}}}
	for _, name := range slices.Sorted(maps.Keys(cfg.Collections)) {
		a.colls = append(a.colls, cfg.Collections[name])
		a.byName[name] = cfg.Collections[name]
		a.skippedBy[name] = new(atomic.Int64)
	}
	tr, err := transport(cfg)
	if err != nil {
		_ = st.close()
		return nil, err
	}
	a.c = &client{cfg: cfg, http: &nethttp.Client{Timeout: cfg.Timeout, Transport: tr, CheckRedirect: a.checkRedirect}, creds: creds, conn: cfg.conn, hidden: hiddenParams(cfg),
		budget: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst), clk: clk, byCode: map[int]int64{},
		slots: make(chan struct{}, cfg.Concurrency), breaker: newBreaker(cfg.Circuit, clk)}
	if l, ok := creds.(*login); ok {
		l.c = a.c
	}
	seq, err := st.lastSeq(ctx)
	if err != nil {
		_ = st.close()
		return nil, err
	}
	a.seq.Store(seq)
	a.reserved = seq
	return a, nil
}

// hiddenParams returns the query parameters the collections send with
// every list request (query:), whose values errors do not show.
func hiddenParams(cfg *Config) map[string]bool {
	out := map[string]bool{}
	for _, col := range cfg.Collections {
		for k := range col.Query {
			out[k] = true
		}
	}
	return out
}

// seqBlock is how many sequence numbers nextSeq reserves at a time.
const seqBlock = 1000

// nextSeq hands out the next sequence number: of a capture batch, of a
// Head, of an Apply's position. Numbers are reserved in the state file in
// blocks before they are handed out, so that none is handed out twice,
// across restarts too: the positions Apply returned, and the rows it kept
// at them, stay behind every later capture's number.
func (a *Adapter) nextSeq(ctx context.Context) (int64, error) {
	a.seqMu.Lock()
	defer a.seqMu.Unlock()
	n := a.seq.Load() + 1
	if n > a.reserved {
		if err := a.st.reserve(ctx, n+seqBlock); err != nil {
			return 0, err
		}
		a.reserved = n + seqBlock
	}
	a.seq.Store(n)
	return n, nil
}

// Stats returns the adapter's request counters.
func (a *Adapter) Stats() Stats { return a.c.stats() }

// Tables returns the configured collections: the ID as the key, generated
// by the system (or by the adapter, for client IDs), and the declared
// columns, all nullable.
func (a *Adapter) Tables(context.Context) ([]adapters.Table, error) {
	out := make([]adapters.Table, 0, len(a.colls))
	for _, col := range a.colls {
		t := adapters.Table{Name: col.name, Key: []string{col.ID}}
		for i, c := range col.columns {
			t.Columns = append(t.Columns, adapters.Column{Name: c.name, Kind: c.kind, Type: c.kind.String(),
				Nullable: i > 0, Generated: i == 0})
		}
		out = append(out, t)
	}
	return out, nil
}

// Skipped returns how many listed records capture could not decode.
func (a *Adapter) Skipped() int64 { return a.skipped.Load() }

// walk reads col's records updated at or after m's high-water mark less
// the overlap, in (updated-at, ID) order, and calls f with each one m has
// not seen, advancing m. It pages by restarting the filter at the last
// updated-at read, so that records that move to the end while it reads are
// read again rather than shifting others out of its pages; it follows the
// API's next page (page number, offset, cursor or link) only while a page
// ends on the updated-at it started from, so that a cursor's guarantees,
// whatever the API makes them, are never needed. The high-water mark never
// passes the adapter's clock by more than the overlap: a record stamped
// ahead of it (a client's clock, wrong) would otherwise put every later
// change of other records behind the mark, never to be polled.
func (a *Adapter) walk(ctx context.Context, col *Collection, m *mark, f func(record) error) error {
	overlap := a.cfg.Overlap.Milliseconds()
	since := max(m.Updated-overlap, 0)
	limit := a.clk.Now().UnixMilli() + overlap
	if m.Seen == nil {
		m.Seen = map[string]int64{}
	}
	for p := a.pages(col, true, since); p.more(); {
		recs, err := p.next(ctx)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if u, ok := m.Seen[r.id]; ok && u == r.updated {
				continue
			}
			m.Seen[r.id] = r.updated
			u := r.updated
			if u > limit {
				a.log.Warn("http adapter: a record's updated-at is ahead of this clock; the high-water mark stays behind it",
					"collection", col.name, "id", r.id, "updated", col.formatUpdated(r.updated), "ahead", time.Duration(u-limit+overlap)*time.Millisecond)
				u = limit
			}
			if u > m.Updated || u == m.Updated && idLess(col, m.ID, r.id) {
				m.Updated, m.ID = u, r.id
			}
			if err := f(r); err != nil {
				return err
			}
		}
		if len(recs) > 0 && p.more() {
			if last := recs[len(recs)-1].updated; last > since {
				since = last
				p = a.pages(col, true, since)
			}
		}
	}
	for id, u := range m.Seen {
		if u < m.Updated-overlap {
			delete(m.Seen, id)
		}
	}
	return nil
}

// idLess orders IDs as the API sorts them: numerically for int IDs.
func idLess(col *Collection, a, b string) bool {
	if col.idKind == crdt.KindInt {
		x, _ := strconv.ParseInt(a, 10, 64)
		y, _ := strconv.ParseInt(b, 10, 64)
		return x < y
	}
	return a < b
}

// listAll reads every record of col, by ID.
func (a *Adapter) listAll(ctx context.Context, col *Collection) ([]record, error) {
	var out []record
	for p := a.pages(col, false, 0); p.more(); {
		recs, err := p.next(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func (a *Adapter) change(col *Collection, r record, snapshot bool) (adapters.Change, error) {
	k, err := col.key(r.id)
	if err != nil {
		return adapters.Change{}, err
	}
	ch := adapters.Change{Collection: col.name, Key: k, Row: r.row}
	if r.deleted {
		ch.Row = nil
	}
	if !snapshot && r.updated > 0 {
		ch.Committed = time.UnixMilli(r.updated)
	}
	return ch, nil
}

// Snapshot reads every record: first in capture order from the start, so
// that changes made while it reads are read too and its high-water mark
// is past them, then a listing by ID for the records that carry no
// updated-at or that the first read missed. The known records are those
// either read found, so that a record reported and deleted before the
// listing is found gone by reconciliation.
func (a *Adapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	seq, err := a.nextSeq(ctx)
	if err != nil {
		return nil, err
	}
	marks := map[string]*mark{}
	for _, col := range a.colls {
		m := &mark{}
		var batch []adapters.Change
		seen := map[string]bool{}
		ids := map[string]int64{} // the known records, with their updated-at
		rows := map[string][]byte{}
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			b := batch
			batch = nil
			return sink(ctx, adapters.Batch{Changes: b})
		}
		add := func(r record) error {
			seen[r.id] = true
			ids[r.id] = r.updated
			if r.deleted {
				return nil
			}
			if b := col.lastOf(r.id, r.row); b != nil {
				rows[r.id] = b
			}
			ch, err := a.change(col, r, true)
			if err != nil {
				return err
			}
			batch = append(batch, ch)
			if len(batch) >= 500 {
				return flush()
			}
			return nil
		}
		if err := a.walk(ctx, col, m, add); err != nil {
			return nil, err
		}
		all, err := a.listAll(ctx, col)
		if err != nil {
			return nil, err
		}
		for _, r := range all {
			ids[r.id] = r.updated
			if !seen[r.id] {
				if err := add(r); err != nil {
					return nil, err
				}
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
		if err := a.st.addKnown(ctx, col.name, seq, ids); err != nil {
			return nil, err
		}
		if err := a.st.putLast(ctx, col.name, seq, rows); err != nil {
			return nil, err
		}
		marks[col.name] = m
	}
	if err := a.st.putMarks(ctx, seq, marks); err != nil {
		return nil, err
	}
	return a.st.cursor(seq), nil
}

// Head returns a cursor past every change the API holds now: the latest
// stored marks, advanced by reading what changed since.
func (a *Adapter) Head(ctx context.Context) ([]byte, error) {
	// Reads and applies take turns, each reserving its sequence number
	// while it holds the lock, so that cursors and positions follow the
	// order in which they read and wrote: a change committed after Head
	// returns is read by a poll with a greater number.
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	seq, err := a.nextSeq(ctx)
	if err != nil {
		return nil, err
	}
	marks := map[string]*mark{}
	if last, err := a.st.maxSeq(ctx); err != nil {
		return nil, err
	} else if last > 0 {
		if marks, err = a.st.marks(ctx, last); err != nil {
			return nil, err
		}
	}
	for _, col := range a.colls {
		m := marks[col.name]
		if m == nil {
			m = &mark{}
			marks[col.name] = m
		}
		if err := a.walk(ctx, col, m, func(record) error { return nil }); err != nil {
			return nil, err
		}
	}
	if err := a.st.putMarks(ctx, seq, marks); err != nil {
		return nil, err
	}
	return a.st.cursor(seq), nil
}

// Capture polls every PollInterval for records changed after the cursor's
// marks, skipping the adapter's own writes, and every Reconcile lists
// every record to report those deleted on the server. A webhook wakes it
// for a poll at once, and the deletes webhooks announced are confirmed
// and reported after that poll.
func (a *Adapter) Capture(ctx context.Context, cursor []byte, sink adapters.Sink) error {
	seq, err := a.st.seqOf(cursor)
	if err != nil {
		return err
	}
	marks, err := a.st.marks(ctx, seq)
	if err != nil {
		return err
	}
	if err := a.st.rewind(ctx, seq); err != nil {
		return err
	}
	lastReconcile := a.clk.Now()
	for {
		if err := a.poll(ctx, marks, sink); err != nil {
			return err
		}
		if err := a.announcedDeletes(ctx, marks, sink); err != nil {
			return err
		}
		if a.clk.Now().Sub(lastReconcile) >= a.cfg.Reconcile {
			if err := a.reconcile(ctx, marks, sink); err != nil {
				return err
			}
			lastReconcile = a.clk.Now()
		}
		t := a.clk.NewTimer(a.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		case <-a.hooks.woken():
			t.Stop()
			a.hooks.wakes.Add(1)
		}
	}
}

// poll reads what changed after marks and sends it as one batch.
func (a *Adapter) poll(ctx context.Context, marks map[string]*mark, sink adapters.Sink) error {
	seq, changes, known, rows, err := a.read(ctx, marks)
	if err != nil || len(changes) == 0 {
		return err
	}
	if err := a.st.putMarks(ctx, seq, marks); err != nil {
		return err
	}
	if err := sink(ctx, adapters.Batch{Changes: changes, Cursor: a.st.cursor(seq)}); err != nil {
		return err
	}
	for name, recs := range known {
		if err := a.st.addKnown(ctx, name, seq, recs); err != nil {
			return err
		}
		if err := a.st.putLast(ctx, name, seq, rows[name]); err != nil {
			return err
		}
	}
	return nil
}

// read reads what changed after marks, advancing them, and returns the
// sequence number of its batch, the changes, and their updated-at and rows
// (Collection.lastOf) by collection and ID. Each change's Old is the row
// the adapter last captured or wrote. It excludes Apply while it reads, so
// that every record it reads that an apply wrote has its echo recorded,
// and reserves its number meanwhile, so that a change committed after an
// Apply returns (or Head does) comes in a batch after its position.
func (a *Adapter) read(ctx context.Context, marks map[string]*mark) (int64, []adapters.Change, map[string]map[string]int64, map[string]map[string][]byte, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	seq, err := a.nextSeq(ctx)
	if err != nil {
		return 0, nil, nil, nil, err
	}
	var changes []adapters.Change
	known := map[string]map[string]int64{}
	rows := map[string]map[string][]byte{}
	for _, col := range a.colls {
		m := marks[col.name]
		if m == nil {
			m = &mark{}
			marks[col.name] = m
		}
		echo, err := a.st.echoes(ctx, col.name)
		if err != nil {
			return 0, nil, nil, nil, err
		}
		err = a.walk(ctx, col, m, func(r record) error {
			delete(m.Gone, r.id) // made again
			if echo[r.id][r.updated] {
				return nil
			}
			ch, err := a.change(col, r, false)
			if err != nil {
				return err
			}
			// A record read twice in one poll (changed while it pages) has
			// the first read's row as the second's Old.
			last, ok := rows[col.name][r.id]
			if !ok {
				if last, err = a.st.lastRow(ctx, col.name, r.id, seq); err != nil {
					return err
				}
			}
			ch.Old = col.oldOf(last)
			changes = append(changes, ch)
			if known[col.name] == nil {
				known[col.name] = map[string]int64{}
				rows[col.name] = map[string][]byte{}
			}
			known[col.name][r.id] = r.updated
			if r.deleted {
				// No last row: a record brought back is diffed whole.
				rows[col.name][r.id] = nil
			} else if b := col.lastOf(r.id, r.row); b != nil {
				rows[col.name][r.id] = b
			}
			return nil
		})
		if err != nil {
			return 0, nil, nil, nil, err
		}
		a.polls.done(col.name, a.clk.Now(), m.Updated)
		if err := a.st.forgetEchoes(ctx, col.name, m.Updated-a.cfg.Overlap.Milliseconds()); err != nil {
			return 0, nil, nil, nil, err
		}
	}
	return seq, changes, known, rows, nil
}

// reconcile lists every record and reports the known records the listing
// lacks, each confirmed gone by a read of its own, as deletes; and the
// records it holds that capture never reported (no updated-at, or a write
// that committed later than the overlap covers) as changes.
func (a *Adapter) reconcile(ctx context.Context, marks map[string]*mark, sink adapters.Sink) error {
	var seq int64
	var changes []adapters.Change
	gone, found := map[string][]string{}, map[string]map[string]int64{}
	rows := map[string]map[string][]byte{}
	// Applies wait while the listing runs, not while the sink does.
	err := func() error {
		a.applyMu.Lock()
		defer a.applyMu.Unlock()
		var err error
		if seq, err = a.nextSeq(ctx); err != nil {
			return err
		}
		for _, col := range a.colls {
			known, err := a.st.known(ctx, col.name)
			if err != nil {
				return err
			}
			all, err := a.listAll(ctx, col)
			if err != nil {
				return err
			}
			listed := map[string]bool{}
			m := marks[col.name]
			if m == nil {
				m = &mark{}
				marks[col.name] = m
			}
			for id := range m.Gone {
				if _, ok := known[id]; !ok {
					delete(m.Gone, id) // acknowledged, and forgotten
				}
			}
			for _, r := range all {
				listed[r.id] = true
				delete(m.Gone, r.id)
				// A record updated within the window is the polls' to report.
				if _, ok := known[r.id]; !ok && !r.deleted && (r.updated == 0 || r.updated < m.Updated-a.cfg.Overlap.Milliseconds()) {
					ch, err := a.change(col, r, false)
					if err != nil {
						return err
					}
					changes = append(changes, ch)
					if found[col.name] == nil {
						found[col.name] = map[string]int64{}
						rows[col.name] = map[string][]byte{}
					}
					found[col.name][r.id] = r.updated
					if b := col.lastOf(r.id, r.row); b != nil {
						rows[col.name][r.id] = b
					}
				}
			}
			var missing []string
			for _, id := range slices.Sorted(maps.Keys(known)) {
				if !listed[id] && !m.Gone[id] {
					missing = append(missing, id)
				}
			}
			ch, g, err := a.confirmGone(ctx, col, missing)
			if err != nil {
				return err
			}
			changes = append(changes, ch...)
			if len(g) > 0 {
				gone[col.name] = g
			}
		}
		return nil
	}()
	if err != nil {
		return err
	}
	return a.report(ctx, seq, marks, changes, found, rows, gone, sink)
}

// confirmGone reads each of ids, records of col the adapter knows, and
// returns a delete for each the server answers 404 for, and their IDs.
// The caller holds applyMu, so that no apply writes them meanwhile.
func (a *Adapter) confirmGone(ctx context.Context, col *Collection, ids []string) ([]adapters.Change, []string, error) {
	var changes []adapters.Change
	var gone []string
	for _, id := range ids {
		_, err := a.c.do(ctx, nethttp.MethodGet, a.recordURL(col, col.Update.Path, id), nil)
		var se *statusError
		if errors.As(err, &se) && isGone(se.code) {
			k, err := col.key(id)
			if err != nil {
				return nil, nil, err
			}
			changes = append(changes, adapters.Change{Collection: col.name, Key: k})
			gone = append(gone, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return changes, gone, nil
}

// report sends changes as one batch at capture position seq, with marks
// that hold gone (the deletes reported, known until an Ack covers them),
// and then records the records found (now known, by collection and ID
// with their updated-at, and their rows, Collection.lastOf). Nothing to
// send records nothing.
func (a *Adapter) report(ctx context.Context, seq int64, marks map[string]*mark, changes []adapters.Change,
	found map[string]map[string]int64, rows map[string]map[string][]byte, gone map[string][]string, sink adapters.Sink) error {
	if len(changes) == 0 {
		return nil
	}
	// The deletes stay known until an Ack covers them: the marks say they
	// were reported, so that a capture from this cursor on does not report
	// them again, and one from an earlier cursor does.
	for name, ids := range gone {
		m := marks[name]
		if m == nil {
			m = &mark{}
			marks[name] = m
		}
		if m.Gone == nil {
			m.Gone = map[string]bool{}
		}
		for _, id := range ids {
			m.Gone[id] = true
		}
	}
	if err := a.st.putMarks(ctx, seq, marks); err != nil {
		return err
	}
	if err := sink(ctx, adapters.Batch{Changes: changes, Cursor: a.st.cursor(seq)}); err != nil {
		return err
	}
	for name, recs := range found {
		if err := a.st.addKnown(ctx, name, seq, recs); err != nil {
			return err
		}
		if err := a.st.putLast(ctx, name, seq, rows[name]); err != nil {
			return err
		}
	}
	for name, ids := range gone {
		deleted := make(map[string][]byte, len(ids))
		for _, id := range ids {
			deleted[id] = nil
		}
		if err := a.st.putLast(ctx, name, seq, deleted); err != nil {
			return err
		}
	}
	return nil
}

// recordURL fills a path template with a record's ID.
func (a *Adapter) recordURL(col *Collection, tmpl, id string) string {
	return a.cfg.BaseURL + strings.ReplaceAll(tmpl, "{id}", url.PathEscape(id))
}

// Ack discards the capture positions before cursor, and forgets the
// records whose deletes it covers: until then a capture from an earlier
// cursor reports them again.
func (a *Adapter) Ack(ctx context.Context, cursor []byte) error {
	seq, err := a.st.seqOf(cursor)
	if err != nil {
		return err
	}
	return a.st.ack(ctx, seq)
}

// Apply writes each record in order, one request each: a delete, an update
// (or a create with the record's ID where the server lacks it and takes
// client IDs), or a create for a Write.NewKey. An API has no transactions:
// the writes before a failing one stay written, which the engine's retry
// makes harmless since every write is idempotent. A record the API rejects
// (400, 422, or another 4xx but for auth and rate limits) fails with a
// RowError carrying the server's message; a system that cannot serve
// (5xx, 429, 401, 403, no connection) after the retries fails marked
// adapters.ErrUnavailable.
func (a *Adapter) Apply(ctx context.Context, writes []adapters.Write, _ []byte) (adapters.Applied, error) {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	// The writes' position, taken first: the rows they leave are the
	// records' rows from it on (state.lastRow).
	pos, err := a.nextSeq(ctx)
	if err != nil {
		return adapters.Applied{}, errors.Mark(err, adapters.ErrUnavailable)
	}
	var out adapters.Applied
	for i, w := range writes {
		col := a.byName[w.Collection]
		name := w.Key
		if w.NewKey != "" {
			name = w.NewKey
		}
		if col == nil {
			return out, adapters.BadRow(w.Collection, name, errors.Newf("http adapter: unknown collection %s", w.Collection))
		}
		if w.NewKey == "" && *a.cfg.ReadBeforeWrite {
			newer, err := a.changedSince(ctx, col, w.Key)
			if err != nil {
				return out, a.classify(col, name, err)
			}
			if newer {
				out.Deferred = append(out.Deferred, i)
				continue
			}
		}
		gen, err := a.apply(ctx, col, w, pos)
		if errors.Is(err, errGone) {
			out.Deferred = append(out.Deferred, i)
			continue
		}
		if err != nil {
			return out, a.classify(col, name, err)
		}
		if gen != "" {
			if out.Generated == nil {
				out.Generated = map[int]crdt.Key{}
			}
			out.Generated[i] = gen
		}
	}
	// A number of its own: every batch read before the apply has a smaller
	// one, every batch read after it a greater one.
	out.Position = a.st.cursor(pos)
	return out, nil
}

// errGone is an update of a record the adapter knows and the server no
// longer holds: a delete capture has not reported yet. Apply defers the
// write rather than bring the record back.
var errGone = errors.New("http adapter: record deleted on the server, not yet captured")

// changedSince reports whether the server holds a change to the record
// that capture has not taken yet: a version newer than the one capture
// last took or Apply last wrote, or, for a record the adapter knows, none
// at all (a delete that reconciliation has not reported). Writing the
// merged row over it would lose that change (or bring the deleted record
// back), so the write waits until capture has taken it. A record the
// adapter does not know has no such change. A change made between this
// read and the write is not seen.
func (a *Adapter) changedSince(ctx context.Context, col *Collection, key crdt.Key) (bool, error) {
	id, err := col.idText(key)
	if err != nil {
		return false, adapters.BadRow(col.name, key, err)
	}
	last, ok, err := a.st.knownAt(ctx, col.name, id)
	if err != nil || !ok {
		return false, err
	}
	r, err := a.c.do(ctx, nethttp.MethodGet, a.recordURL(col, col.Update.Path, id), nil)
	var se *statusError
	if errors.As(err, &se) && se.code == nethttp.StatusNotFound {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	rec, err := col.decodeResponse(r.body)
	if err != nil {
		return false, adapters.BadRow(col.name, key, errors.Wrapf(err, "http adapter: read %s %s before writing it", col.name, id))
	}
	return rec.updated > last, nil
}

// classify marks a write's error: a rejected record is a bad row, and a
// system that cannot serve is unavailable.
func (a *Adapter) classify(col *Collection, key crdt.Key, err error) error {
	// A 5xx or 429 that outlasted the retries is the system's state, not
	// the record's: the write waits, it is never parked.
	if errors.Is(err, adapters.ErrUnavailable) {
		return err
	}
	var se *statusError
	if errors.As(err, &se) {
		switch se.code {
		case nethttp.StatusUnauthorized, nethttp.StatusForbidden:
			return errors.Mark(errors.WithHint(err, "check the adapter's auth credentials"), adapters.ErrUnavailable)
		default:
			return adapters.BadRow(col.name, key, err)
		}
	}
	return err
}

// apply performs one write and returns the key the API or the adapter
// generated for a NewKey.
func (a *Adapter) apply(ctx context.Context, col *Collection, w adapters.Write, pos int64) (crdt.Key, error) {
	if w.NewKey != "" {
		return a.create(ctx, col, w, pos)
	}
	id, err := col.idText(w.Key)
	if err != nil {
		return "", adapters.BadRow(col.name, w.Key, err)
	}
	if w.Row == nil && col.Deleted != nil && col.Deleted.Apply == "soft" {
		return "", a.softDelete(ctx, col, id, pos)
	}
	if w.Row == nil {
		_, err := a.c.do(ctx, col.Delete.Method, a.recordURL(col, col.Delete.Path, id), nil)
		var se *statusError
		if err != nil && !(errors.As(err, &se) && isGone(se.code)) {
			return "", err
		}
		return "", a.st.deleted(ctx, col.name, id, pos)
	}
	if rk, err := crdt.MakeKey(w.Row[col.ID]); err != nil || rk != w.Key {
		return "", adapters.BadRow(col.name, w.Key, errors.Newf("row's %s %s disagrees with the write's key", col.ID, w.Row[col.ID]))
	}
	return "", a.upsert(ctx, col, w.Key, id, w.Row, pos)
}

// upsert writes row as record id: an update, or a create with the ID when
// the server lacks a record the adapter does not know and takes client
// IDs. A record the adapter knows that the server lacks is errGone.
func (a *Adapter) upsert(ctx context.Context, col *Collection, name crdt.Key, id string, row crdt.Row, pos int64) error {
	stamp := a.clk.Now().UnixMilli()
	body, err := col.body(row, id, stamp, nil)
	if err != nil {
		return adapters.BadRow(col.name, name, err)
	}
	update := body
	if col.Update.Body == "changed" {
		only, err := a.changed(ctx, col, id, row, pos)
		if err != nil {
			return err
		}
		if only != nil {
			if update, err = col.body(row, id, stamp, only); err != nil {
				return adapters.BadRow(col.name, name, err)
			}
		}
	}
	r, err := a.c.do(ctx, col.Update.Method, a.recordURL(col, col.Update.Path, id), update)
	var se *statusError
	if errors.As(err, &se) && se.code == nethttp.StatusNotFound {
		if _, known, kerr := a.st.knownAt(ctx, col.name, id); kerr != nil {
			return kerr
		} else if known {
			return errGone
		}
		if !col.clientIDs {
			return errors.Wrap(err, "the record no longer exists on the server, which mints IDs itself")
		}
		r, err = a.c.do(ctx, col.Create.Method, a.cfg.BaseURL+col.Create.Path, body)
		if errors.As(err, &se) {
			// A user made the record between the two requests: the
			// create finds its ID taken (json-server answers 500). Write
			// it instead.
			if r2, uerr := a.c.do(ctx, col.Update.Method, a.recordURL(col, col.Update.Path, id), update); uerr == nil {
				r, err = r2, nil
			}
		}
	}
	if err != nil {
		return err
	}
	return a.st.wrote(ctx, col.name, id, pos, a.updatedOf(col, r.body, stamp), col.written(id, r.body, row))
}

// changed returns the declared fields of row that differ from the record's
// row as the adapter last captured or wrote it: what an update with body
// changed sends. It returns nil (send them all) when the adapter knows no
// earlier row, or when no field differs: the write then repairs a record
// the server holds otherwise than the adapter last saw.
func (a *Adapter) changed(ctx context.Context, col *Collection, id string, row crdt.Row, pos int64) (map[string]bool, error) {
	b, err := a.st.lastRow(ctx, col.name, id, pos+1)
	if err != nil {
		return nil, err
	}
	last := col.oldOf(b)
	if last == nil {
		return nil, nil
	}
	only := map[string]bool{}
	for _, c := range col.columns[1:] {
		if !crdt.Equal(c.value(row), last[c.name]) {
			only[c.name] = true
		}
	}
	if len(only) == 0 {
		return nil, nil
	}
	return only, nil
}

// updatedOf returns the updated-at of a write's response, or stamp when
// the response does not say.
func (a *Adapter) updatedOf(col *Collection, body []byte, stamp int64) int64 {
	if b, err := col.fromAPI(body); err == nil {
		body = b
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) == nil {
		if raw, ok := obj[col.Updated]; ok {
			if u, err := col.parseUpdated(raw); err == nil {
				return u
			}
		}
	}
	return stamp
}

// create inserts a record first seen elsewhere and records its pair in
// the ID map. With client IDs it first records the ID it will send (an
// intent), so that a create repeated after a crash finds the record it may
// have made and writes it again instead of making a second one. Without
// them, the server's ID is known only from the response: a crash between
// the response and the recording of the pair leaves a record the map does
// not name, and the repeated create makes a second one.
func (a *Adapter) create(ctx context.Context, col *Collection, w adapters.Write, pos int64) (crdt.Key, error) {
	if v, ok := w.Row[col.ID]; ok && !v.IsNull() {
		return "", adapters.BadRow(col.name, w.NewKey, errors.Newf("a record first seen elsewhere gets its %s here, and the row sets it to %s", col.ID, v))
	}
	key := []byte(w.NewKey)
	if id, ok, err := a.st.mapped(ctx, col.name, key); err != nil {
		return "", err
	} else if ok {
		if err := a.upsert(ctx, col, w.NewKey, id, w.Row, pos); err != nil {
			return "", err
		}
		return col.key(id)
	}
	stamp := a.clk.Now().UnixMilli()
	var id string
	var body []byte
	var resp response
	var err error
	if col.clientIDs {
		minted := col.mintID()
		if id, err = a.st.intent(ctx, col.name, key, minted); err != nil {
			return "", err
		}
		if body, err = col.body(w.Row, id, stamp, nil); err != nil {
			return "", adapters.BadRow(col.name, w.NewKey, err)
		}
		// A fresh intent's ID is new to the server: create at once. An
		// intent an earlier attempt left may have made the record: write
		// it, and create it only when the server lacks it.
		if id == minted {
			resp, err = a.c.do(ctx, col.Create.Method, a.cfg.BaseURL+col.Create.Path, body)
			// A create the client sent again (its response was lost) finds
			// the record the first one made: write it instead.
			var se *statusError
			if errors.As(err, &se) && se.code/100 == 4 && !retryable(se.code) {
				if r, uerr := a.c.do(ctx, col.Update.Method, a.recordURL(col, col.Update.Path, id), body); uerr == nil {
					resp, err = r, nil
				}
			}
		} else {
			resp, err = a.c.do(ctx, col.Update.Method, a.recordURL(col, col.Update.Path, id), body)
			var se *statusError
			if errors.As(err, &se) && se.code == nethttp.StatusNotFound {
				resp, err = a.c.do(ctx, col.Create.Method, a.cfg.BaseURL+col.Create.Path, body)
			}
		}
		if err != nil {
			return "", err
		}
	} else {
		if body, err = col.body(w.Row, "", stamp, nil); err != nil {
			return "", adapters.BadRow(col.name, w.NewKey, err)
		}
		if resp, err = a.c.do(ctx, col.Create.Method, a.cfg.BaseURL+col.Create.Path, body); err != nil {
			return "", err
		}
		r, err := col.decodeResponse(resp.body)
		if err == nil {
			_, err = col.key(r.id)
		}
		if err != nil {
			// The server made a record the adapter cannot name: a retry
			// would make another. The write is set aside, not retried.
			return "", adapters.BadRow(col.name, w.NewKey, errors.WithHint(
				errors.Wrapf(err, "http adapter: create in %s answered %d, and its response names no record", col.name, resp.code),
				"the API may now hold a record that Lattice does not know: look for it there before the parked write is retried, since a retry creates the record again"))
		}
		id = r.id
	}
	k, err := col.key(id)
	if err != nil {
		return "", err
	}
	if err := a.st.created(ctx, col.name, id, key, pos, a.updatedOf(col, resp.body, stamp), col.written(id, resp.body, w.Row)); err != nil {
		return "", err
	}
	return k, nil
}

// lastOf encodes a record's row as the state keeps it (state.lastRow): as
// the API's record, declared fields and ID; nil if it cannot (a row read
// from the API always can).
func (col *Collection) lastOf(id string, row crdt.Row) []byte {
	b, err := col.encode(row, id, 0)
	if err != nil {
		return nil
	}
	return b
}

// written returns the row a write left on the server, encoded as the
// state keeps it: the record the response holds, or the row sent when the
// response holds none.
func (col *Collection) written(id string, body []byte, sent crdt.Row) []byte {
	if r, err := col.decodeResponse(body); err == nil && r.id == id {
		return col.lastOf(id, r.row)
	}
	return col.lastOf(id, sent)
}

// oldOf decodes a row the state keeps; nil when there is none (or it no
// longer fits the declared fields).
func (col *Collection) oldOf(b []byte) crdt.Row {
	if b == nil {
		return nil
	}
	r, err := col.decodeRecord(b)
	if err != nil {
		return nil
	}
	return r.row
}

// mintID returns a new random ID: IDLength characters of IDAlphabet, each
// drawn uniformly (bytes that would favour the first characters are
// drawn again).
func (col *Collection) mintID() string {
	n := len(col.IDAlphabet)
	limit := 256 - 256%n
	out := make([]byte, 0, col.IDLength)
	buf := make([]byte, col.IDLength+8)
	for len(out) < col.IDLength {
		_, _ = rand.Read(buf)
		for _, b := range buf {
			if int(b) < limit && len(out) < col.IDLength {
				out = append(out, col.IDAlphabet[int(b)%n])
			}
		}
	}
	return string(out)
}

// IDMap returns the pairs recorded for table: server ID to collection key.
func (a *Adapter) IDMap(ctx context.Context, table string) (map[crdt.Key]crdt.Key, error) {
	col := a.byName[table]
	if col == nil {
		return nil, nil
	}
	m, err := a.st.idMap(ctx, table)
	if err != nil {
		return nil, err
	}
	out := make(map[crdt.Key]crdt.Key, len(m))
	for id, key := range m {
		k, err := col.key(id)
		if err != nil {
			return nil, err
		}
		out[k] = crdt.Key(key)
	}
	return out, nil
}

// Close closes the state file.
func (a *Adapter) Close() error { return a.st.close() }

var (
	_ adapters.Adapter         = (*Adapter)(nil)
	_ adapters.IDMapper        = (*Adapter)(nil)
	_ adapters.WebhookReceiver = (*Adapter)(nil)
)
