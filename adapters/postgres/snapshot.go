package postgres

import (
	"context"
	"encoding/binary"
	"regexp"
	"slices"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// ErrCursor marks cursors the adapter cannot continue capture from: not a
// WAL position, ahead of the server's WAL, or before the position the
// adapter acknowledged. Such errors are marked adapters.ErrCursor too.
var ErrCursor = errors.New("postgres: bad cursor")

// cursorError marks err with ErrCursor and adapters.ErrCursor.
func cursorError(err error) error {
	return errors.Mark(errors.Mark(err, ErrCursor), adapters.ErrCursor)
}

// encodeCursor encodes a WAL position as the adapter's cursor: 8 bytes, big
// endian, so that cursors compare as byte strings the way LSNs compare.
func encodeCursor(l lsn) []byte { return binary.BigEndian.AppendUint64(nil, uint64(l)) }

func decodeCursor(b []byte) (lsn, error) {
	if len(b) != 8 {
		return 0, cursorError(errors.Newf("postgres: cursor of %d bytes, want 8 (a WAL position)", len(b)))
	}
	return lsn(binary.BigEndian.Uint64(b)), nil
}

var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// Snapshot (re)creates the replication slot, exporting the snapshot at which
// the slot becomes consistent, reads every synced table in a REPEATABLE
// READ transaction that imports that snapshot, and returns the slot's
// consistent point as the cursor: every transaction committed before it is
// in the snapshot, every one after it is streamed by Capture.
//
// The engine calls Snapshot only when it holds no cursor, so nothing depends
// on an existing slot: Snapshot drops it (a leftover of an interrupted
// snapshot, or of an earlier life) and recreates the publication if its
// tables differ from the synced ones. Snapshot batches carry no cursor;
// only the returned cursor may be stored.
//
// Creating the slot waits for transactions running at that moment to end.
func (a *Adapter) Snapshot(ctx context.Context, sink adapters.Sink) ([]byte, error) {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	cat, err := a.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.resetSlot(ctx, cat); err != nil {
		return nil, err
	}

	rconn, err := pgconn.ConnectConfig(ctx, a.replCfg)
	if err != nil {
		return nil, errors.Wrapf(classify(err), "open replication connection to %s", a.where())
	}
	defer rconn.Close(context.Background())
	res, err := pglogrepl.CreateReplicationSlot(ctx, rconn, a.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, errors.Wrapf(classify(err), "create replication slot %s", a.cfg.Slot)
	}
	consistent, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, errors.Wrapf(err, "parse consistent point of slot %s", a.cfg.Slot)
	}
	if !snapshotName.MatchString(res.SnapshotName) {
		return nil, errors.Newf("postgres: unexpected snapshot name %q", res.SnapshotName)
	}
	a.log.Info("replication slot created", "slot", a.cfg.Slot, "consistent_point", res.ConsistentPoint)

	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, errors.Wrap(err, "begin snapshot transaction")
	}
	// The exported snapshot lives until the replication connection runs its
	// next command, which it does not do before this import.
	if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+res.SnapshotName+"'"); err != nil {
		return nil, errors.Wrap(err, "import the slot's snapshot")
	}
	rows := 0
	for _, t := range cat.tables {
		n, err := a.snapshotTable(ctx, conn.PgConn(), t, sink)
		if err != nil {
			return nil, err
		}
		rows += n
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return nil, errors.Wrap(err, "end snapshot transaction")
	}
	a.log.Info("snapshot done", "tables", len(cat.tables), "rows", rows, "cursor", lsn(consistent))
	return encodeCursor(lsn(consistent)), nil
}

var _ adapters.TableReader = (*Adapter)(nil)

// ReadTables reads the rows of the named synced tables in one REPEATABLE
// READ transaction and sends them to sink: a table added to the publication
// while running (refresh) streams only the changes committed after; the
// rows written before are read here. Names not synced are skipped.
func (a *Adapter) ReadTables(ctx context.Context, names []string, sink adapters.Sink) error {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return err
	}
	defer done()
	cat := a.catalog()
	if cat == nil {
		return nil
	}
	var tables []*table
	for _, t := range cat.tables {
		if slices.Contains(names, t.Collection) {
			tables = append(tables, t)
		}
	}
	if len(tables) == 0 {
		return nil
	}
	conn, err := a.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return errors.Wrap(classify(err), "begin table read")
	}
	rows := 0
	for _, t := range tables {
		n, err := a.snapshotTable(ctx, conn.PgConn(), t, sink)
		if err != nil {
			return err
		}
		rows += n
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return errors.Wrap(classify(err), "end table read")
	}
	a.log.Info("rows of tables new to the publication read", "tables", len(tables), "rows", rows)
	return nil
}

// resetSlot drops the slot if it exists (it must not be in use) and makes
// the publication match the synced tables.
func (a *Adapter) resetSlot(ctx context.Context, cat *catalog) error {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return err
	}
	err = a.checkSlot(ctx, conn, true)
	switch {
	case errors.Is(err, ErrSlotMissing):
	case err == nil || errors.Is(err, ErrSlotInvalidated):
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, a.cfg.Slot); err != nil {
			return errors.Wrapf(classify(err), "drop replication slot %s before the snapshot", a.cfg.Slot)
		}
		a.log.Info("dropped replication slot for a new snapshot", "slot", a.cfg.Slot)
	default:
		return err
	}
	return ensurePublication(ctx, conn, a.cfg.Publication, cat, true)
}

func (a *Adapter) snapshotTable(ctx context.Context, conn *pgconn.PgConn, t *table, sink adapters.Sink) (int, error) {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	// Text results: the same codec reads the snapshot and the stream.
	rr := conn.ExecParams(ctx, "SELECT "+strings.Join(names, ", ")+" FROM "+t.qualified(), nil, nil, nil, nil)
	var batch []adapters.Change
	n := 0
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(t.Columns) {
			_, _ = rr.Close()
			return n, errors.AssertionFailedf("snapshot of %s: %d values for %d columns", t.Collection, len(vals), len(t.Columns))
		}
		row := make(crdt.Row, len(vals))
		for i, v := range vals {
			if v == nil {
				row[t.Columns[i].Name] = crdt.Null()
				continue
			}
			val, err := decodeText(t.Columns[i].Type, string(v))
			if err != nil {
				_, _ = rr.Close()
				return n, adapters.BadRow(t.Collection, "", errors.Wrapf(err, "column %s", t.Columns[i].Name))
			}
			row[t.Columns[i].Name] = val
		}
		key, err := keyOf(t.Collection, t.Key, row)
		if err != nil {
			_, _ = rr.Close()
			return n, err
		}
		batch = append(batch, adapters.Change{Collection: t.Collection, Key: key, Row: row})
		n++
		if len(batch) >= a.cfg.BatchSize {
			if err := sink(ctx, adapters.Batch{Changes: batch}); err != nil {
				_, _ = rr.Close()
				return n, err
			}
			batch = nil
		}
	}
	if _, err := rr.Close(); err != nil {
		return n, errors.Wrapf(err, "read table %s", t.Collection)
	}
	if len(batch) > 0 {
		if err := sink(ctx, adapters.Batch{Changes: batch}); err != nil {
			return n, err
		}
	}
	return n, nil
}

// keyOf builds a record key from the key columns of a row.
func keyOf(collection string, key []string, row crdt.Row) (crdt.Key, error) {
	vals := make([]crdt.Value, len(key))
	for i, k := range key {
		v, ok := row[k]
		if !ok || v.IsNull() {
			return "", adapters.BadRow(collection, "", errors.Newf("key column %s is missing or null", k))
		}
		vals[i] = v
	}
	k, err := crdt.MakeKey(vals...)
	if err != nil {
		return "", adapters.BadRow(collection, "", err)
	}
	return k, nil
}
