package postgres

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Apply writes rows in one transaction on a session whose replication origin
// is the adapter's, so that Capture drops the transaction. Rows are upserted
// (INSERT ... ON CONFLICT (primary key) DO UPDATE, skipped when nothing
// differs) and deleted by primary key, each statement pipelined in one round
// trip. Values travel as text and are cast to the column's type by the
// server, so that every value reaches the column exactly as its text form
// says.
//
// A write the server rejects fails the call with an adapters.RowError
// naming it, and nothing of the batch is written: every server error counts
// as the write's own (a value of the wrong kind, a constraint, an unknown
// column, an index row too large, a privilege, a user's trigger raising),
// except the classes that say the server cannot take writes now (see
// unavailableClass), which are marked adapters.ErrUnavailable, as are
// errors that are not the server's (a lost connection). An error the server
// raises at commit (a deferred constraint or trigger) names no write.
//
// The position returned is the server's WAL insert position read after the
// transaction committed. Cursors are the ends of commit records, so every
// transaction that committed before the Apply's ends at or before it, and
// every transaction that commits after the read ends after it.
//
// Apply does not write over a user's change that capture has not taken.
// Its transaction writes the rows first, which locks those that exist: a
// user's transaction that changes one of them from then on waits for the
// Apply. Before it commits, it writes a marker (a logical decoding
// message, on a session of its own) and waits until capture's stream has
// decoded it (at most SyncWait): every transaction that committed before
// the marker has been decoded by then, and the stream has noted the
// records each user's transaction changed. If users changed some of the
// Apply's records after since (without since: after the acknowledged
// position), the transaction rolls back and runs again without those
// writes, which Apply defers (Applied.Deferred): the engine applies the
// merged state once capture has taken the change. The stream notes only
// the transactions it decodes, from the cursor Capture was given, and
// forgets them once acknowledged: since must be at or after both, as the
// engine's capture cursor is. A stream that does not reach the marker in
// time (far behind) defers every write, and the next Apply first waits
// for it to catch up holding no row; so does an Apply while no stream
// runs, which fails as unavailable if none comes. Without since and
// without a stream, Apply writes unchecked. The check costs each Apply a
// round trip to write the marker and the time the stream takes to receive
// it.
func (a *Adapter) Apply(ctx context.Context, writes []adapters.Write, since []byte) (adapters.Applied, error) {
	pos, generated, deferred, err := a.applyAll(ctx, writes, since)
	return adapters.Applied{Position: pos, Generated: generated, Deferred: deferred}, err
}

func (a *Adapter) applyAll(ctx context.Context, writes []adapters.Write, sinceCursor []byte) ([]byte, map[int]crdt.Key, []int, error) {
	if len(writes) == 0 {
		pos, err := a.Head(ctx)
		return pos, nil, nil, err
	}
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	defer done()
	// Whether, and after which position, to look for users' changes the
	// merged rows miss: after since; without since, after the acknowledged
	// position while capture streams; not at all otherwise.
	var since lsn
	check := len(sinceCursor) > 0
	if check {
		if since, err = decodeCursor(sinceCursor); err != nil {
			return nil, nil, nil, err
		}
	} else if a.dec.running() {
		check, since = true, lsn(a.acked.Load())
	}
	a.applyMu.Lock()
	defer a.applyMu.Unlock()

	// The ID map: created by the first write with a NewKey; deletes drop
	// their pairs once it exists; a NewKey it holds updates its record.
	conn, err := a.applyConn(ctx)
	if err != nil {
		return nil, nil, nil, errors.Mark(err, adapters.ErrUnavailable)
	}
	mapping, err := a.ensureIDMap(ctx, conn, slices.ContainsFunc(writes, func(w adapters.Write) bool { return w.NewKey != "" }))
	if err != nil {
		return nil, nil, nil, a.applyError(conn, adapters.Write{}, len(writes), err)
	}
	mapped := map[int]crdt.Key{}
	if mapping {
		if mapped, err = a.mappedKeys(ctx, conn, writes); err != nil {
			return nil, nil, nil, err
		}
	}
	// The record each write changes, as capture names it; none for a
	// record a NewKey inserts, which no one else can have changed.
	var ids []crdt.ID
	if check {
		ids = make([]crdt.ID, len(writes))
		for i, w := range writes {
			if k, ok := mapped[i]; ok {
				ids[i] = crdt.MakeID(w.Collection, k)
			} else if w.Key != "" {
				ids[i] = crdt.MakeID(w.Collection, w.Key)
			}
		}
	}

	refreshed := false
	build := func() ([]stmt, error) {
		stmts := make([]stmt, len(writes))
		for i, w := range writes {
			st, err := a.mappedStatement(ctx, w, mapped[i], mapping, &refreshed)
			if err != nil {
				return nil, err
			}
			stmts[i] = st
		}
		return stmts, nil
	}
	stmts, err := build()
	if err != nil {
		return nil, nil, nil, err
	}
	// live holds the indexes of the writes not deferred. Without a
	// stream, or with one that did not reach the last marker in time, the
	// Apply first waits for capture to catch up holding no row (up to
	// catchUpWaits times SyncWait), so that its transaction does not lock
	// users' rows only to wait in vain; if capture does not, every write
	// is deferred, or without a stream the Apply is unavailable. The
	// writes the stream already knows users changed after since are
	// deferred at once.
	var live, deferred []int
	if check && (!a.dec.running() || a.dec.isStalled()) {
		switch err := a.catchUp(ctx, catchUpWaits*a.cfg.SyncWait); {
		case errors.Is(err, errBehind):
			for i := range writes {
				deferred = append(deferred, i)
			}
		case err != nil:
			return nil, nil, nil, err
		}
	}
	if check && len(deferred) == 0 {
		deferred = a.dec.after(since, ids)
	}
	for i := range writes {
		if !slices.Contains(deferred, i) {
			live = append(live, i)
		}
	}
	// deferAll ends an Apply that writes nothing: its position is the
	// server's head.
	deferAll := func() ([]byte, map[int]crdt.Key, []int, error) {
		slices.Sort(deferred)
		a.log.Debug("apply deferred every write", "writes", len(writes))
		cur, err := a.Head(ctx)
		return cur, nil, deferred, err
	}
	if len(live) == 0 {
		return deferAll()
	}
	for attempt, rounds := 1, 0; ; {
		var keys []crdt.ID
		if check {
			keys = pick(ids, live)
		}
		pos, generated, err := a.applyOnce(ctx, pick(stmts, live), pick(writes, live), keys, since, rounds >= maxSyncRounds)
		var late *lateError
		switch {
		case errors.As(err, &late):
			// Users changed some of these records after since: the
			// transaction rolled back, and runs again without them.
			rounds++
			for _, j := range late.idx {
				deferred = append(deferred, live[j])
			}
			live = slices.DeleteFunc(live, func(i int) bool { return slices.Contains(deferred, i) })
			if len(live) > 0 {
				continue
			}
			return deferAll()
		case err == nil:
			out := map[int]crdt.Key{}
			for j, k := range generated {
				out[live[j]] = k
			}
			for i, k := range mapped {
				if !slices.Contains(deferred, i) {
					out[i] = k
				}
			}
			if len(out) == 0 {
				out = nil
			}
			slices.Sort(deferred)
			if len(deferred) > 0 {
				a.log.Debug("apply deferred writes to records users changed", "deferred", len(deferred), "writes", len(writes))
			}
			return encodeCursor(pos), out, deferred, nil
		case staleSchema(err) && !refreshed:
			// A table or column changed since the catalog was read: read it
			// again and rebuild the statements once.
			refreshed = true
			if _, rerr := a.refresh(ctx); rerr != nil {
				return nil, nil, nil, errors.CombineErrors(err, rerr)
			}
			if stmts, err = build(); err != nil {
				return nil, nil, nil, err
			}
			continue
		case !retryable(err) || attempt >= maxApplyAttempts:
			return nil, nil, nil, err
		}
		// A deadlock with the users' transactions, or a serialization
		// failure, rolled the whole transaction back: run it again.
		a.log.Debug("apply retried", "attempt", attempt, "err", err.Error())
		t := a.cfg.Clock.NewTimer(time.Duration(attempt*attempt) * 5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, nil, err
		case <-t.C():
		}
		attempt++
	}
}

// pick returns the elements of s at the indexes idx.
func pick[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = s[i]
	}
	return out
}

// maxSyncRounds bounds the runs of one Apply transaction that find users'
// changes to their records: the last defers every write it holds.
const maxSyncRounds = 3

// catchUpWaits is how many times SyncWait an Apply waits, holding no row,
// for a capture stream that is missing or behind (see applyAll).
const catchUpWaits = 5

// lateError rolls back an Apply transaction whose writes idx (indexes of
// its writes) change records that users changed after since.
type lateError struct{ idx []int }

func (e *lateError) Error() string {
	return strconv.Itoa(len(e.idx)) + " writes to records with changes capture has not merged"
}

// staleSchema reports whether err says a table or column the statements
// name does not exist (any more).
func staleSchema(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42703" || pgErr.Code == "42P01")
}

// maxApplyAttempts bounds the runs of one Apply transaction that fails on
// deadlocks or serialization failures.
const maxApplyAttempts = 8

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if _, bad := adapters.RowErrorOf(err); bad || !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40P01", "40001", "55P03": // deadlock, serialization failure, lock not available
		return true
	}
	return false
}

// stmt is the SQL and text arguments of one write.
type stmt struct {
	sql  string
	args []any
	// generates is the table of a write with a NewKey that the statement
	// inserts: it returns the key the server generated (newRowStatement).
	generates *table
}

// applyOnce runs the writes in one transaction and returns the WAL insert
// position read after it committed, and the keys generated for writes with
// a NewKey, by write index.
//
// With keys (the record of each write, or none), the transaction checks
// before it commits that no user changed those records after since
// (syncCheck); if some did, it rolls back and returns a *lateError naming
// them (all of its writes if last).
func (a *Adapter) applyOnce(ctx context.Context, stmts []stmt, writes []adapters.Write, keys []crdt.ID, since lsn, last bool) (lsn, map[int]crdt.Key, error) {
	conn, err := a.applyConn(ctx)
	if err != nil {
		// No session to apply on: nothing here concerns a write.
		return 0, nil, errors.Mark(err, adapters.ErrUnavailable)
	}
	b := &pgx.Batch{}
	for i, st := range stmts {
		name, err := a.prepare(ctx, conn, st.sql)
		if err != nil {
			return 0, nil, a.applyError(conn, writes[i], len(writes), err)
		}
		b.Queue(name, st.args...)
	}
	generated := map[int]crdt.Key{}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		br := tx.SendBatch(ctx, b)
		for i := range writes {
			if t := stmts[i].generates; t != nil {
				texts := make([]string, len(t.Key))
				dst := make([]any, len(texts))
				for j := range texts {
					dst[j] = &texts[j]
				}
				if err := br.QueryRow().Scan(dst...); err != nil {
					_ = br.Close()
					return writeError(writes[i], err)
				}
				k, err := decodeKey(t, texts)
				if err != nil {
					_ = br.Close()
					return adapters.BadRow(writes[i].Collection, writes[i].NewKey, errors.Wrap(err, "generated key"))
				}
				generated[i] = k
				continue
			}
			if _, err := br.Exec(); err != nil {
				_ = br.Close()
				return writeError(writes[i], err)
			}
		}
		if err := br.Close(); err != nil || keys == nil {
			return err
		}
		return a.syncCheck(ctx, keys, since, last)
	})
	var late *lateError
	if errors.As(err, &late) {
		return 0, nil, late
	}
	if err != nil {
		return 0, nil, a.applyError(conn, adapters.Write{}, len(writes), err)
	}
	// After the commit: a transaction that committed before it ends at or
	// before this position. Should the read fail, the writes are in, and
	// the engine's retry writes them again (Apply is idempotent).
	pos, err := a.walInsert(ctx, conn)
	if err != nil {
		return 0, nil, a.applyError(conn, adapters.Write{}, len(writes), err)
	}
	return pos, generated, nil
}

// syncCheck runs inside an Apply transaction that has written its rows,
// holding their locks: a user's transaction that changes one of them now
// waits for this one, so every user's change the writes could have
// overwritten committed before the marker written next. Once capture's
// stream has decoded up to the marker, it has seen them all: the writes to
// records a user's transaction changed after since are returned in a
// *lateError (every write if last, or if the stream does not reach the
// marker within SyncWait). Without a stream that reaches it, the Apply
// cannot tell and fails as unavailable.
func (a *Adapter) syncCheck(ctx context.Context, keys []crdt.ID, since lsn, last bool) error {
	all := func() *lateError {
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		return &lateError{idx: idx}
	}
	switch err := a.catchUp(ctx, a.cfg.SyncWait); {
	case errors.Is(err, errBehind):
		return all()
	case err != nil:
		return err
	}
	late := a.dec.after(since, keys)
	if len(late) > 0 && last {
		return all()
	}
	if len(late) > 0 {
		return &lateError{idx: late}
	}
	return nil
}

// catchUp writes a marker and waits, up to wait, until capture's stream
// has decoded it. A stream still behind then is errBehind; no stream is an
// error marked adapters.ErrUnavailable.
func (a *Adapter) catchUp(ctx context.Context, wait time.Duration) error {
	m, err := a.marker(ctx)
	if err != nil {
		return errors.Mark(err, adapters.ErrUnavailable)
	}
	err = a.dec.await(ctx, m, wait)
	if errors.Is(err, errNoStream) {
		return errors.Mark(errors.WithHint(errors.Wrapf(err, "postgres: apply to %s waits for capture", a.where()),
			"Apply writes only once capture's stream shows which rows hold users' changes it has not taken; "+
				"it resumes when capture streams again"), adapters.ErrUnavailable)
	}
	return err
}

func (a *Adapter) applyError(conn *pgx.Conn, w adapters.Write, n int, err error) error {
	if conn.IsClosed() {
		a.apply, a.prepared = nil, nil
	}
	if w.Collection != "" {
		err = writeError(w, err)
	}
	if _, ok := adapters.RowErrorOf(err); ok {
		return err
	}
	err = errors.Wrapf(classify(err), "apply %d writes to %s", n, a.where())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || unavailableClass(pgErr.Code) {
		err = errors.Mark(err, adapters.ErrUnavailable)
	}
	return err
}

// prepare returns the name of the prepared statement for sql on the apply
// session, preparing it the first time. Prepared statements outlive the
// transactions that fail, unlike a statement cache that guesses.
func (a *Adapter) prepare(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	if name, ok := a.prepared[sql]; ok {
		return name, nil
	}
	name := "lattice_apply_" + strconv.Itoa(len(a.prepared))
	if _, err := conn.Prepare(ctx, name, sql); err != nil {
		return "", err
	}
	if a.prepared == nil {
		a.prepared = map[string]string{}
	}
	a.prepared[sql] = name
	return name, nil
}

// writeError marks a server error raised by one write's statement as that
// write's bad row, unless its class says the server cannot take writes now;
// errors that are not the server's are left to applyError.
func writeError(w adapters.Write, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !unavailableClass(pgErr.Code) {
		return adapters.BadRow(w.Collection, writeKey(w), err)
	}
	return err
}

// unavailableClass reports whether a SQLSTATE belongs to a class that
// concerns the server or the session rather than the statement's rows:
// retrying the same writes later may succeed.
func unavailableClass(code string) bool {
	if len(code) < 2 {
		return true
	}
	switch code[:2] {
	case "08", // connection exception
		"28", // invalid authorization
		"3D", // invalid catalog name: the database is gone
		"25", // invalid transaction state (a failed transaction)
		"40", // transaction rollback: deadlock, serialization failure
		"53", // insufficient resources: disk full, out of memory, too many connections
		"55", // object not in prerequisite state: lock not available
		"57", // operator intervention: shutdown, statement timeout, cancel
		"58", // system error: I/O
		"XX": // internal error
		return true
	}
	return false
}

// applyConn returns the apply session, opening it and setting up the
// replication origin if needed. The caller holds applyMu.
func (a *Adapter) applyConn(ctx context.Context) (*pgx.Conn, error) {
	if a.apply != nil && !a.apply.IsClosed() {
		return a.apply, nil
	}
	// Statements are prepared by name (see prepare); anything else runs
	// unnamed, so that no statement cache can go stale when a pipelined
	// batch fails half-way.
	cfg := a.connCfg.Copy()
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := a.connectWith(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_session_setup($1::text)`, a.cfg.Origin); err != nil {
		_ = conn.Close(context.Background())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return nil, errors.WithHint(errors.Mark(errors.Wrapf(err, "set up replication origin %s", a.cfg.Origin), ErrOriginInUse),
				"another session applies with this origin: give each sidecar its own node name (or adapter.origin)")
		}
		return nil, errors.Wrapf(classify(err), "set up replication origin %s", a.cfg.Origin)
	}
	a.apply, a.prepared = conn, nil
	return conn, nil
}

// lookup finds the table of a write and checks that it has the row's
// columns, re-reading the catalog once per Apply if it does not (the table
// or column may have been created since).
func (a *Adapter) lookup(ctx context.Context, w adapters.Write, refreshed *bool) (*table, error) {
	for {
		t, err := tableOf(a.catalog(), w)
		if err == nil || *refreshed {
			return t, err
		}
		*refreshed = true
		if _, err := a.refresh(ctx); err != nil {
			return nil, err
		}
	}
}

// tableOf returns the table of a write, or a bad row if the catalog has no
// such table or the table lacks one of the row's columns.
func tableOf(cat *catalog, w adapters.Write) (*table, error) {
	t := cat.byColl[w.Collection]
	if t == nil {
		return nil, adapters.BadRow(w.Collection, writeKey(w), errors.Newf("unknown table %s", w.Collection))
	}
	for name := range w.Row {
		if t.column(name) == nil {
			return nil, adapters.BadRow(w.Collection, writeKey(w), errors.Newf("table %s has no column %s", w.Collection, name))
		}
	}
	return t, nil
}

// statement returns the SQL and text arguments of one write.
func (a *Adapter) statement(ctx context.Context, w adapters.Write, refreshed *bool) (string, []any, error) {
	t, err := a.lookup(ctx, w, refreshed)
	if err != nil {
		return "", nil, err
	}
	bad := func(err error) (string, []any, error) {
		return "", nil, adapters.BadRow(w.Collection, w.Key, err)
	}
	keyVals, err := w.Key.Values()
	if err != nil {
		return bad(err)
	}
	if len(keyVals) != len(t.Key) {
		return bad(errors.Newf("key has %d elements, table %s has %d key columns", len(keyVals), w.Collection, len(t.Key)))
	}
	arg := func(c *column, v crdt.Value) (any, error) {
		s, ok, err := encodeText(c.Type, v)
		if err != nil {
			return nil, errors.Wrapf(err, "column %s", c.Name)
		}
		if !ok {
			return nil, nil
		}
		return s, nil
	}

	if w.Row == nil {
		args := make([]any, len(t.Key))
		for i, k := range t.Key {
			if args[i], err = arg(t.column(k), keyVals[i]); err != nil {
				return bad(err)
			}
		}
		return t.deleteSQL, args, nil
	}
	args := make([]any, len(t.Columns))
	for i := range t.Columns {
		c := &t.Columns[i]
		v, inRow := w.Row[c.Name]
		if k := slices.Index(t.Key, c.Name); k >= 0 {
			switch {
			case !inRow:
				return bad(errors.Newf("key column %s is missing from the row", c.Name))
			case !crdt.Equal(v, keyVals[k]):
				return bad(errors.Newf("key column %s is %s in the row but %s in the key", c.Name, v, keyVals[k]))
			}
		}
		if args[i], err = arg(c, v); err != nil {
			return bad(err)
		}
	}
	for _, f := range t.fills {
		args = append(args, f.arg)
	}
	return t.upsertSQL, args, nil
}

// applySQL builds the statements Apply runs on the table: an upsert of a
// whole row, one parameter per column, that leaves a row already equal
// untouched, and a delete by key, one parameter per key column. Parameters
// are text, cast to the column's type. A table that fails the start-up
// checks (no key, a key column missing) gets none.
func (t *table) applySQL() (upsert, del string) {
	if len(t.Key) == 0 {
		return "", ""
	}
	cast := func(i int, c *column) string {
		return "$" + strconv.Itoa(i+1) + "::text::" + c.CastType
	}
	var sb strings.Builder
	sb.WriteString("DELETE FROM " + t.qualified() + " WHERE ")
	for i, k := range t.Key {
		c := t.column(k)
		if c == nil {
			return "", ""
		}
		if i > 0 {
			sb.WriteString(" AND ")
		}
		sb.WriteString(pgx.Identifier{k}.Sanitize() + " = " + cast(i, c))
	}
	del = sb.String()

	names := make([]string, len(t.Columns))
	params := make([]string, len(t.Columns))
	var sets, cur, excl []string
	for i := range t.Columns {
		c := &t.Columns[i]
		id := pgx.Identifier{c.Name}.Sanitize()
		names[i] = id
		params[i] = cast(i, c)
		if slices.Contains(t.Key, c.Name) {
			continue
		}
		sets = append(sets, id+" = EXCLUDED."+id)
		cmp := ""
		switch {
		case c.Type.Scalar == scalarJSON && c.Type.Array:
			cmp = "::jsonb[]"
		case c.Type.Scalar == scalarJSON:
			cmp = "::jsonb" // json has no equality operator
		}
		cur = append(cur, "cur."+id+cmp)
		excl = append(excl, "EXCLUDED."+id+cmp)
	}
	for i, f := range t.fills {
		names = append(names, pgx.Identifier{f.col.Name}.Sanitize())
		params = append(params, cast(len(t.Columns)+i, &f.col))
	}
	keys := make([]string, len(t.Key))
	for i, k := range t.Key {
		keys[i] = pgx.Identifier{k}.Sanitize()
	}
	sb.Reset()
	sb.WriteString("INSERT INTO " + t.qualified() + " AS cur (" + strings.Join(names, ", ") + ")")
	if t.identityAlways() {
		sb.WriteString(" OVERRIDING SYSTEM VALUE")
	}
	sb.WriteString(" VALUES (" + strings.Join(params, ", ") + ") ON CONFLICT (" + strings.Join(keys, ", ") + ")")
	if len(sets) == 0 {
		sb.WriteString(" DO NOTHING")
	} else {
		sb.WriteString(" DO UPDATE SET " + strings.Join(sets, ", ") +
			" WHERE (" + strings.Join(cur, ", ") + ") IS DISTINCT FROM (" + strings.Join(excl, ", ") + ")")
	}
	return sb.String(), del
}
