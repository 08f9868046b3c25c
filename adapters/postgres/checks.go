package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/clock"
)

// checkServer checks the server version and settings and the role's
// attributes, adding what is wrong to p.
func (a *Adapter) checkServer(ctx context.Context, conn *pgx.Conn, p *problems) error {
	var version, maxSlots, maxSenders int
	var walLevel, encoding string
	var super, repl, originSetup, originCreate bool
	err := conn.QueryRow(ctx, `
		SELECT current_setting('server_version_num')::int, current_setting('wal_level'),
		       current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
		       current_setting('server_encoding'), r.rolsuper, r.rolreplication,
		       has_function_privilege('pg_replication_origin_session_setup(text)', 'EXECUTE'),
		       has_function_privilege('pg_replication_origin_create(text)', 'EXECUTE')
		FROM pg_roles r WHERE r.rolname = current_user`).
		Scan(&version, &walLevel, &maxSlots, &maxSenders, &encoding, &super, &repl, &originSetup, &originCreate)
	if err != nil {
		return errors.Wrapf(err, "read server settings of %s", a.where())
	}
	a.version = version
	checkVersion(version, p)
	if walLevel != "logical" {
		p.add(ErrWALLevel, "set wal_level = logical in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL",
			"wal_level is %s, logical decoding needs logical", walLevel)
	}
	if maxSlots < 1 || maxSenders < 1 {
		p.add(ErrServerSettings, "raise max_replication_slots and max_wal_senders (one of each per sidecar) and restart PostgreSQL",
			"max_replication_slots is %d and max_wal_senders is %d: capture needs at least one of each", maxSlots, maxSenders)
	}
	if encoding != "UTF8" {
		p.add(ErrServerSettings, "create the database with ENCODING 'UTF8'",
			"server encoding is %s: the adapter reads text as UTF-8", encoding)
	}
	if !super && !repl {
		p.add(ErrPrivilege, "ALTER ROLE <role> REPLICATION (or connect as a superuser)",
			"role %s lacks the REPLICATION attribute needed to stream changes", a.connCfg.User)
	}
	if !originSetup || !originCreate {
		p.add(ErrPrivilege, "GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text), pg_replication_origin_create(text) TO <role>",
			"role %s may not use replication origins, which tag the adapter's own writes", a.connCfg.User)
	}
	return nil
}

// checkVersion adds a problem if version (server_version_num) is older than
// MinVersion.
func checkVersion(version int, p *problems) {
	if version < MinVersion*10000 {
		p.add(ErrVersion, "upgrade PostgreSQL",
			"server version %d.%d is older than %d, the oldest the adapter supports", version/10000, version%10000/100, MinVersion)
	}
}

// checkSlot checks the replication slot: it must be a logical pgoutput slot
// of this database that PostgreSQL has not invalidated; forCapture also
// requires that no other session streams from it, after waiting up to
// slotWait for the session of a capture that just ended. A missing slot is
// ErrSlotMissing.
func (a *Adapter) checkSlot(ctx context.Context, conn *pgx.Conn, forCapture bool) error {
	slot := a.cfg.Slot
	var plugin, database, walStatus *string
	var activePID *int32
	var cur string
	err := conn.QueryRow(ctx, `
		SELECT s.plugin, s.database, s.wal_status, s.active_pid, current_database()
		FROM pg_replication_slots s WHERE s.slot_name = $1`, slot).Scan(&plugin, &database, &walStatus, &activePID, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return errors.WithHint(errors.Mark(errors.Newf("postgres: replication slot %s does not exist", slot), ErrSlotMissing),
			"the slot is created by the initial snapshot; if it was dropped, changes made since are lost to capture: "+
				"the sidecar takes a new snapshot and reconciles it with the merged state by initial_sync (docs/verify.md)")
	}
	if err != nil {
		return errors.Wrapf(err, "read replication slot %s", slot)
	}
	switch {
	case plugin == nil || *plugin != "pgoutput" || database == nil || *database != cur:
		return errors.WithHint(errors.Mark(errors.Newf("postgres: replication slot %s exists but is not a pgoutput slot of database %s", slot, cur), ErrSlotInUse),
			"choose another slot name (adapter.slot) or drop the slot")
	case walStatus != nil && *walStatus == "lost":
		return errors.WithHint(errors.Mark(errors.Newf("postgres: replication slot %s was invalidated: PostgreSQL removed WAL it still needed", slot), ErrSlotInvalidated),
			"changes made while the sidecar was away are lost to capture: the sidecar takes a new snapshot, which replaces "+
				"the slot, and reconciles it with the merged state by initial_sync (docs/verify.md); "+
				"raise max_slot_wal_keep_size to avoid it")
	case forCapture && activePID != nil:
		// The session of a capture that just ended takes a moment to exit.
		pid, err := waitSlotFree(ctx, a.cfg.Clock, conn, slot, a.slotWait)
		if err != nil {
			return err
		}
		if pid != 0 {
			return errors.WithHint(errors.Mark(errors.Newf("postgres: replication slot %s is in use by process %d", slot, pid), ErrSlotInUse),
				"another sidecar (or a stale connection) streams from this slot; give each sidecar its own node name or slot")
		}
	}
	return nil
}

// slotFreeWait bounds how long capture waits for a slot's previous session
// to let go of it.
const slotFreeWait = 5 * time.Second

// waitSlotFree polls until no session streams from the slot, or wait has
// passed; it returns the pid still using it then, or 0.
func waitSlotFree(ctx context.Context, clk clock.Clock, conn *pgx.Conn, slot string, wait time.Duration) (int32, error) {
	deadline := clk.Now().Add(wait)
	for {
		var pid *int32
		if err := conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&pid); err != nil {
			return 0, errors.Wrapf(err, "read replication slot %s", slot)
		}
		if pid == nil {
			return 0, nil
		}
		if clk.Now().After(deadline) {
			return *pid, nil
		}
		t := clk.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C():
		}
	}
}

// ensureOrigin creates the replication origin if it does not exist.
func ensureOrigin(ctx context.Context, conn *pgx.Conn, origin string) error {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)`, origin).Scan(&exists); err != nil {
		return errors.Wrapf(classify(err), "look up replication origin %s", origin)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, `SELECT pg_replication_origin_create($1)`, origin)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil // created concurrently
	}
	if err != nil {
		return errors.Wrapf(classify(err), "create replication origin %s", origin)
	}
	return nil
}

// publicationState reads a publication: whether it exists, whether it
// publishes inserts, updates, deletes and truncates, and its tables.
func publicationState(ctx context.Context, conn *pgx.Conn, pub string) (exists, complete bool, tables [][2]string, err error) {
	var ins, upd, del, trunc bool
	err = conn.QueryRow(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`, pub).
		Scan(&ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil, nil
	}
	if err != nil {
		return false, false, nil, errors.Wrapf(err, "read publication %s", pub)
	}
	rows, err := conn.Query(ctx, `SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1`, pub)
	if err != nil {
		return false, false, nil, errors.Wrapf(err, "read tables of publication %s", pub)
	}
	defer rows.Close()
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			return false, false, nil, errors.Wrapf(err, "read tables of publication %s", pub)
		}
		tables = append(tables, [2]string{s, n})
	}
	if err := rows.Err(); err != nil {
		return false, false, nil, errors.Wrapf(err, "read tables of publication %s", pub)
	}
	return true, ins && upd && del && trunc, tables, nil
}

// missingFromPublication lists the synced tables the publication lacks.
func missingFromPublication(cat *catalog, tables [][2]string) []string {
	var missing []string
	for _, t := range cat.tables {
		if !slices.Contains(tables, [2]string{t.Schema, t.Name}) {
			missing = append(missing, t.Collection)
		}
	}
	return missing
}

// ensurePublication creates the publication for the synced tables if it does
// not exist. With reset (only while no slot depends on it, as in Snapshot)
// an existing publication that does not match is recreated.
func ensurePublication(ctx context.Context, conn *pgx.Conn, pub string, cat *catalog, reset bool) error {
	exists, complete, tables, err := publicationState(ctx, conn, pub)
	if err != nil {
		return err
	}
	if exists && (!reset || complete && len(tables) == len(cat.tables) && len(missingFromPublication(cat, tables)) == 0) {
		return nil
	}
	ident := pgx.Identifier{pub}.Sanitize()
	if exists {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION "+ident); err != nil {
			return errors.Wrapf(classify(err), "drop publication %s to recreate it", pub)
		}
	}
	sql := "CREATE PUBLICATION " + ident
	if len(cat.tables) > 0 {
		names := make([]string, len(cat.tables))
		for i, t := range cat.tables {
			names[i] = t.qualified()
		}
		sql += " FOR TABLE " + strings.Join(names, ", ")
	}
	sql += " WITH (publish = 'insert, update, delete, truncate')"
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" {
			return nil // created concurrently
		}
		return errors.Wrapf(classify(err), "create publication %s", pub)
	}
	return nil
}

// checkPublication checks, before capture, that the publication covers every
// synced table and publishes every kind of change.
func checkPublication(ctx context.Context, conn *pgx.Conn, pub string, cat *catalog) error {
	exists, complete, tables, err := publicationState(ctx, conn, pub)
	if err != nil {
		return err
	}
	hint := "tables added after the snapshot need one: reset Lattice's cursor for this adapter so that it takes a new snapshot, " +
		"which recreates the publication"
	if !exists {
		return errors.WithHint(errors.Mark(errors.Newf("postgres: publication %s does not exist", pub), ErrPublication), hint)
	}
	if !complete {
		return errors.WithHint(errors.Mark(errors.Newf("postgres: publication %s does not publish inserts, updates, deletes and truncates", pub), ErrPublication),
			"ALTER PUBLICATION "+pub+" SET (publish = 'insert, update, delete, truncate')")
	}
	if missing := missingFromPublication(cat, tables); len(missing) > 0 {
		return errors.WithHint(errors.Mark(errors.Newf("postgres: publication %s does not cover table(s) %s", pub, strings.Join(missing, ", ")), ErrPublication), hint)
	}
	return nil
}

// setFullIdentity sets REPLICA IDENTITY FULL on the synced tables that do
// not have it, when the configuration asks for it.
func (a *Adapter) setFullIdentity(ctx context.Context, conn *pgx.Conn, cat *catalog) error {
	if a.cfg.ReplicaIdentity != IdentityFull {
		return nil
	}
	for _, t := range cat.tables {
		if t.ReplIdent == 'f' {
			continue
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE "+t.qualified()+" REPLICA IDENTITY FULL"); err != nil {
			return errors.WithHint(errors.Wrapf(classify(err), "set replica identity full on %s", t.Collection),
				"the adapter's role must own the synced tables; or set adapter.replica_identity: keep "+
					"(updates may then leave out unchanged out-of-line values)")
		}
		t.ReplIdent = 'f'
		a.log.Info("replica identity set to full", "table", t.Collection)
	}
	return nil
}
