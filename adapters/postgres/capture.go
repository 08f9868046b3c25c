package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Capture streams the changes committed after cursor from the replication
// slot to sink, in batches that end on commits, until ctx is done, the
// adapter is closed, the server fails or sink fails. A batch's cursor is the
// WAL position just after the commit record of its last transaction.
// Transactions whose commit lies before cursor, which the server may send
// again after a restart, are skipped, and so are transactions that carry the
// adapter's replication origin (its own Apply). A nil cursor starts at the
// slot's confirmed position. A cursor before the position this adapter
// acknowledged, or ahead of the server's WAL, fails with ErrCursor (and
// adapters.ErrCursor). Updates and deletes carry the old row when the server
// sends it whole (replica identity full).
//
// Capture reports the acknowledged position (see Ack) to the server every
// StatusInterval; while nothing is pending it reports the server's own WAL
// position, so that an idle slot does not hold back WAL.
func (a *Adapter) Capture(ctx context.Context, cursor []byte, sink adapters.Sink) error {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return err
	}
	defer done()
	var start lsn
	if len(cursor) > 0 {
		if start, err = decodeCursor(cursor); err != nil {
			return err
		}
	}
	if acked := lsn(a.acked.Load()); len(cursor) > 0 && start < acked {
		return cursorError(errors.WithHint(errors.Newf("postgres: cursor %s is before the acknowledged position %s, "+
			"which the replication slot has discarded", start, acked), "take a new snapshot"))
	}
	cat, err := a.refresh(ctx)
	if err != nil {
		return err
	}
	if err := a.checkCapture(ctx, cat, start); err != nil {
		return err
	}
	a.ackAtLeast(start)

	conn, err := pgconn.ConnectConfig(ctx, a.replCfg)
	if err != nil {
		return errors.Wrapf(classify(err), "open replication connection to %s", a.where())
	}
	defer conn.Close(context.Background())
	// messages: Apply's markers (see syncCheck) arrive as logical decoding
	// messages.
	args := []string{"proto_version '1'", "publication_names '" + a.cfg.Publication + "'", "messages 'true'"}
	if a.version >= 160000 {
		// The server drops every transaction that carries any origin; the
		// client-side check below stays as a second guard.
		args = append(args, "origin 'none'")
	}
	err = pglogrepl.StartReplication(ctx, conn, a.cfg.Slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return errors.WithHint(errors.Mark(errors.Wrapf(err, "start replication from slot %s", a.cfg.Slot), ErrSlotInUse),
				"another sidecar (or a stale connection) streams from this slot; give each sidecar its own node name or slot")
		}
		return errors.Wrapf(classify(err), "start replication from slot %s at %s", a.cfg.Slot, start)
	}
	a.log.Info("capture started", "slot", a.cfg.Slot, "cursor", start)
	a.dec.streaming(1)
	defer a.dec.streaming(-1)
	s := &stream{a: a, conn: conn, sink: sink, cat: cat, start: start, delivered: start, rels: map[uint32]*relation{}}
	return s.run(ctx)
}

func (a *Adapter) checkCapture(ctx context.Context, cat *catalog, start lsn) error {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return err
	}
	head, err := a.walInsert(ctx, conn)
	if err != nil {
		return err
	}
	if start > head {
		return cursorError(errors.WithHint(errors.Newf("postgres: cursor %s is ahead of the server's WAL (%s)", start, head),
			"the cursor is from another server, or this server was restored from a backup: take a new snapshot"))
	}
	if err := a.checkSlot(ctx, conn, true); err != nil {
		if errors.Is(err, ErrSlotMissing) || errors.Is(err, ErrSlotInvalidated) {
			// The changes the slot held are gone: only a new snapshot,
			// reconciled with the merged state, can go on.
			return cursorError(err)
		}
		return err
	}
	return checkPublication(ctx, conn, a.cfg.Publication, cat)
}

// walInsert returns the server's current WAL insert position: every
// transaction committed so far ends at or before it.
func (a *Adapter) walInsert(ctx context.Context, conn *pgx.Conn) (lsn, error) {
	var text string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, errors.Wrapf(classify(err), "read the WAL position of %s", a.where())
	}
	l, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, errors.Wrapf(err, "parse WAL position %q", text)
	}
	return lsn(l), nil
}

// Head returns the server's current WAL insert position as a cursor: every
// transaction committed before the call ends at or before it.
func (a *Adapter) Head(ctx context.Context) ([]byte, error) {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	l, err := a.walInsert(ctx, conn)
	if err != nil {
		return nil, err
	}
	return encodeCursor(l), nil
}

// ackAtLeast raises the acknowledged position to l and reports whether it
// moved.
func (a *Adapter) ackAtLeast(l lsn) bool {
	for {
		cur := a.acked.Load()
		if uint64(l) <= cur {
			return false
		}
		if a.acked.CompareAndSwap(cur, uint64(l)) {
			return true
		}
	}
}

// stream is one replication session.
type stream struct {
	a     *Adapter
	conn  *pgconn.PgConn
	sink  adapters.Sink
	cat   *catalog
	start lsn
	rels  map[uint32]*relation

	inTxn      bool
	txnSkip    bool // committed before the start cursor: delivered before
	txnOurs    bool // carries our origin: written by Apply
	txnChanges []adapters.Change

	batch    []adapters.Change
	batchLSN lsn // end of the commit record of the batch's last transaction
	batchDue time.Time

	delivered  lsn // cursor of the last batch sink accepted
	idle       lsn // every transaction committed at or below it was delivered or dropped
	nextStatus time.Time

	wait      context.Context // of the current receive; Ack cancels it through a.wake
	waitUntil time.Time       // its deadline
}

func (s *stream) run(ctx context.Context) error {
	defer s.endWait()
	cfg := &s.a.cfg
	s.nextStatus = time.Now() // report the start position at once
	for {
		now := time.Now()
		if s.a.ackNudge.Swap(false) || !now.Before(s.nextStatus) {
			if err := s.sendStatus(ctx); err != nil {
				return err
			}
		}
		if len(s.batch) > 0 && !now.Before(s.batchDue) {
			if err := s.deliver(ctx); err != nil {
				return err
			}
			continue
		}
		deadline := s.nextStatus
		if len(s.batch) > 0 && s.batchDue.Before(deadline) {
			deadline = s.batchDue
		}
		msg, err := s.receive(ctx, deadline)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) || errors.Is(err, context.Canceled) {
				continue
			}
			return errors.Wrapf(classify(err), "receive from slot %s", cfg.Slot)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handleCopyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return errors.Wrapf(classify(pgconn.ErrorResponseToPgError(m)), "replication from slot %s", cfg.Slot)
		case *pgproto3.CopyDone:
			return errors.Newf("postgres: server ended replication from slot %s", cfg.Slot)
		}
	}
}

// receive waits for the next message until deadline. An Ack interrupts the
// wait so that its position reaches the server promptly. The wait's context
// serves every receive until its deadline changes or it ends, not one
// message each.
func (s *stream) receive(ctx context.Context, deadline time.Time) (pgproto3.BackendMessage, error) {
	if s.wait == nil || s.wait.Err() != nil || !deadline.Equal(s.waitUntil) {
		s.endWait()
		var cancel context.CancelFunc
		s.wait, cancel = context.WithDeadline(ctx, deadline)
		s.waitUntil = deadline
		s.a.wakeMu.Lock()
		s.a.wake = cancel
		s.a.wakeMu.Unlock()
	}
	if s.a.ackNudge.Load() {
		s.endWait()
		return nil, context.Canceled
	}
	return s.conn.ReceiveMessage(s.wait)
}

// endWait cancels the context of the current wait, if any.
func (s *stream) endWait() {
	s.a.wakeMu.Lock()
	if s.a.wake != nil {
		s.a.wake()
		s.a.wake = nil
	}
	s.a.wakeMu.Unlock()
	s.wait = nil
}

func (s *stream) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.Mark(errors.New("empty copy data message"), ErrProtocol)
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return errors.Mark(errors.Wrap(err, "keepalive"), ErrProtocol)
		}
		if !s.inTxn && len(s.batch) == 0 && lsn(ka.ServerWALEnd) > s.idle {
			s.idle = lsn(ka.ServerWALEnd)
		}
		if ka.ReplyRequested {
			return s.sendStatus(ctx)
		}
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return errors.Mark(errors.Wrap(err, "xlog data"), ErrProtocol)
		}
		return s.handleWAL(ctx, x.WALData)
	default:
		return errors.Mark(errors.Newf("unknown copy data message %q", data[0]), ErrProtocol)
	}
	return nil
}

func (s *stream) handleWAL(ctx context.Context, wal []byte) error {
	msg, err := decodeMessage(wal)
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *msgBegin:
		if s.inTxn {
			return errors.Mark(errors.New("begin inside a transaction"), ErrProtocol)
		}
		s.inTxn = true
		// The server's own rule: a transaction whose commit record starts
		// before the start position was delivered before.
		s.txnSkip = m.FinalLSN < s.start
		s.txnOurs = false
		s.txnChanges = nil
	case *msgOrigin:
		if m.Name == s.a.cfg.Origin {
			s.txnOurs = true
		}
	case *msgRelation:
		return s.relation(ctx, m)
	case *msgMessage:
		if m.Flags&1 == 0 {
			// Outside a transaction: everything committed before it has
			// been decoded.
			s.a.dec.commit(m.LSN, nil)
		}
	case *msgType:
	case *msgInsert:
		return s.change(m.RelID, m.New, nil, 0, false, true)
	case *msgUpdate:
		return s.change(m.RelID, m.New, m.Old, m.OldKind, false, false)
	case *msgDelete:
		return s.change(m.RelID, nil, m.Old, m.OldKind, true, false)
	case *msgTruncate:
		if !s.inTxn {
			return errors.Mark(errors.New("truncate outside a transaction"), ErrProtocol)
		}
		if s.txnSkip || s.txnOurs {
			return nil
		}
		var names []string
		for _, id := range m.RelIDs {
			if r := s.rels[id]; r != nil && r.table != nil {
				names = append(names, r.table.Collection)
			}
		}
		if len(names) > 0 {
			return errors.WithHint(errors.Mark(errors.Newf("postgres: table(s) %s truncated: a truncate does not say which rows it removed, "+
				"so capture cannot turn it into deletes", strings.Join(names, ", ")), ErrTruncate),
				"delete rows with DELETE rather than TRUNCATE on synced tables; to go on, reset Lattice's cursor for this adapter "+
					"so that it takes a new snapshot")
		}
	case *msgCommit:
		if !s.inTxn {
			return errors.Mark(errors.New("commit outside a transaction"), ErrProtocol)
		}
		s.inTxn = false
		changes := s.txnChanges
		s.txnChanges = nil
		// Before the batch is delivered (the sink may take long): Apply
		// waits for what is decoded, not for what is delivered.
		s.a.dec.commit(m.EndLSN, changes)
		switch {
		case s.txnSkip:
		case s.txnOurs || len(changes) == 0:
			if len(s.batch) == 0 && m.EndLSN > s.idle {
				s.idle = m.EndLSN
			}
		default:
			if m.CommitTime != 0 {
				at := commitTime(m.CommitTime)
				for i := range changes {
					changes[i].Committed = at
				}
			}
			if len(s.batch) == 0 {
				s.batchDue = time.Now().Add(s.a.cfg.BatchWait)
				s.batch = changes
			} else {
				s.batch = append(s.batch, changes...)
			}
			s.batchLSN = m.EndLSN
			if len(s.batch) >= s.a.cfg.BatchSize {
				return s.deliver(ctx)
			}
		}
	}
	return nil
}

// pgEpoch is PostgreSQL's epoch, 2000-01-01 UTC, in Unix microseconds.
const pgEpoch = 946_684_800_000_000

// commitTime converts a pgoutput commit timestamp (microseconds since
// PostgreSQL's epoch, by the server's clock) to a time.
func commitTime(us int64) time.Time { return time.UnixMicro(pgEpoch + us).UTC() }

func (s *stream) deliver(ctx context.Context) error {
	b := adapters.Batch{Changes: s.batch, Cursor: encodeCursor(s.batchLSN)}
	s.batch = nil
	if err := s.sink(ctx, b); err != nil {
		return err
	}
	s.delivered = s.batchLSN
	return nil
}

// sendStatus reports the flush position: the acknowledged cursor, or, when
// everything delivered is acknowledged, the idle position if it is further.
func (s *stream) sendStatus(ctx context.Context) error {
	acked := lsn(s.a.acked.Load())
	flush := acked
	if s.delivered <= acked && s.idle > flush {
		flush = s.idle
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(flush),
		WALFlushPosition: pglogrepl.LSN(flush),
		WALApplyPosition: pglogrepl.LSN(flush),
	})
	if err != nil {
		return errors.Wrapf(err, "send standby status to slot %s", s.a.cfg.Slot)
	}
	s.nextStatus = time.Now().Add(s.a.cfg.StatusInterval)
	return nil
}

// relation is a table as the stream describes it.
type relation struct {
	table *table // nil: not synced, its changes are ignored
	cols  []relCol
}

type relCol struct {
	name string
	typ  pgType
}

func (s *stream) relation(ctx context.Context, m *msgRelation) error {
	// The catalog as last refreshed: a table created while capture runs is
	// in the publication once a refresh found it (publishNew), so the latest
	// catalog has it. A table a user added to the publication themselves (in the
	// transaction that created it, so that no row is missed) may be
	// unknown yet: a refresh maps it.
	if cat := s.a.catalog(); cat != nil {
		s.cat = cat
	}
	t := s.cat.byName[[2]string{m.Namespace, m.Name}]
	if t == nil {
		cat, err := s.a.refresh(ctx)
		if err != nil {
			return err
		}
		s.cat = cat
		if t = cat.byName[[2]string{m.Namespace, m.Name}]; t != nil {
			s.a.notifyCatalog()
		}
	}
	if t == nil {
		s.rels[m.RelID] = &relation{}
		return nil
	}
	r := &relation{table: t}
	for _, c := range m.Columns {
		typ, err := s.a.resolveType(ctx, c.TypeOID)
		if err != nil {
			return err
		}
		if typ.Scalar == scalarNone {
			return errors.WithHint(errors.Mark(errors.Newf("postgres: table %s column %s: unsupported type %s", t.Collection, c.Name, typ.Name), ErrUnsupportedType),
				unsupportedHint)
		}
		r.cols = append(r.cols, relCol{name: c.Name, typ: typ})
	}
	for _, k := range t.Key {
		if !slices.ContainsFunc(r.cols, func(c relCol) bool { return c.name == k }) {
			return errors.WithHint(errors.Mark(errors.Newf("postgres: table %s: key column %s is gone from the table", t.Collection, k), ErrSchemaChange),
				"a record's key cannot change: restore the column, or sync the table under a new name and reset Lattice's cursor")
		}
	}
	prev := s.rels[m.RelID]
	var before []relCol
	if prev != nil && prev.table != nil {
		before = prev.cols
	} else {
		for _, c := range t.all {
			before = append(before, relCol{name: c.Name, typ: c.Type})
		}
	}
	for _, c := range r.cols {
		i := slices.IndexFunc(before, func(b relCol) bool { return b.name == c.name })
		switch {
		case i < 0:
			s.a.log.Info("column added: captured from now on", "table", t.Collection, "column", c.name, "type", c.typ.Name)
		case before[i].typ.OID != c.typ.OID:
			s.a.log.Info("column type changed", "table", t.Collection, "column", c.name, "from", before[i].typ.Name, "to", c.typ.Name)
		}
	}
	for _, b := range before {
		if !slices.ContainsFunc(r.cols, func(c relCol) bool { return c.name == b.name }) {
			s.a.log.Warn("column dropped: no longer captured; the other systems keep their values", "table", t.Collection, "column", b.name)
		}
	}
	if !sameColumns(r.cols, t.all) {
		s.a.notifyCatalog() // the catalog is behind the stream: Tables catches up
	}
	s.rels[m.RelID] = r
	return nil
}

// sameColumns reports whether a relation's columns are the catalog's, by
// name and type, in order.
func sameColumns(rel []relCol, cat []column) bool {
	return slices.EqualFunc(rel, cat, func(r relCol, c column) bool { return r.name == c.Name && r.typ.OID == c.Type.OID })
}

// resolveType resolves a type OID with the catalog connection.
func (a *Adapter) resolveType(ctx context.Context, oid uint32) (pgType, error) {
	if t, ok := builtinTypes[oid]; ok {
		return t, nil
	}
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return pgType{}, err
	}
	return a.types.resolve(ctx, conn, oid)
}

// change turns an insert, update or delete into changes of the current
// transaction.
func (s *stream) change(relID uint32, newTup, oldTup tuple, oldKind uint8, isDelete, insert bool) error {
	if !s.inTxn {
		return errors.Mark(errors.New("change outside a transaction"), ErrProtocol)
	}
	if s.txnSkip || s.txnOurs {
		return nil
	}
	r := s.rels[relID]
	if r == nil {
		return errors.Mark(errors.Newf("change for relation %d before its relation message", relID), ErrProtocol)
	}
	if r.table == nil {
		return nil
	}
	coll := r.table.Collection
	var oldKey crdt.Key
	var old crdt.Row // the whole old row: only with replica identity full
	if oldKind != 0 {
		// A key-only old tuple ('K') sends the other columns as nulls: only
		// its key is kept.
		o, err := r.decodeTuple("old tuple", oldTup)
		if err != nil {
			return err
		}
		r.table.strip(o)
		if oldKey, err = keyOf(coll, r.table.Key, o); err != nil {
			return err
		}
		if oldKind == 'O' {
			old = o
		}
	}
	if isDelete {
		if oldKind == 0 {
			return errors.Mark(errors.Newf("delete on %s without its key", coll), ErrProtocol)
		}
		s.txnChanges = append(s.txnChanges, adapters.Change{Collection: coll, Key: oldKey, Old: old})
		return nil
	}
	row, err := r.decodeTuple("tuple", newTup)
	if err != nil {
		return err
	}
	r.table.strip(row)
	for name, v := range old {
		if _, sent := row[name]; !sent {
			row[name] = v // unchanged, out of line: the old tuple has it
		}
	}
	key, err := keyOf(coll, r.table.Key, row)
	if err != nil {
		return err
	}
	if oldKind != 0 && oldKey != key {
		// The primary key changed: the old record is gone, and the new one
		// is inserted, with no row before it.
		s.txnChanges = append(s.txnChanges, adapters.Change{Collection: coll, Key: oldKey, Old: old})
		old, insert = nil, true
	}
	s.txnChanges = append(s.txnChanges, adapters.Change{Collection: coll, Key: key, Row: row, Old: old, Insert: insert})
	return nil
}

// decodeTuple decodes the columns of a tuple (what names it in errors). A
// column not sent ('u': a value stored out of line that the update did not
// change) is left out: the caller fills it in from the old row when the
// server sent one (replica identity full); otherwise its absence tells the
// engine that the field did not change.
func (r *relation) decodeTuple(what string, tup tuple) (crdt.Row, error) {
	coll := r.table.Collection
	if len(tup) != len(r.cols) {
		return nil, errors.Mark(errors.Newf("%s of %s has %d columns, relation has %d", what, coll, len(tup), len(r.cols)), ErrProtocol)
	}
	row := make(crdt.Row, len(tup))
	for i, c := range tup {
		name := r.cols[i].name
		switch c.Kind {
		case 'n':
			row[name] = crdt.Null()
		case 't':
			v, err := decodeText(r.cols[i].typ, string(c.Data))
			if err != nil {
				return nil, adapters.BadRow(coll, "", errors.Wrapf(err, "column %s", name))
			}
			row[name] = v
		case 'u':
		default:
			return nil, errors.Mark(errors.Newf("column %s of %s in binary format, which was not asked for", name, coll), ErrProtocol)
		}
	}
	return row, nil
}
