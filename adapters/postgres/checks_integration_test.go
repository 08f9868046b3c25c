package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"github.com/lattice-crdt/lattice/crdt"
)

// checkErr checks that err is marked want, mentions every string in
// mention, and carries a hint containing hint.
func checkErr(t *testing.T, err, want error, hint string, mention ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	t.Logf("error: %v\nhints: %q", err, errors.GetAllHints(err))
	if !errors.Is(err, want) {
		t.Errorf("error is not %v: %+v", want, err)
	}
	for _, m := range mention {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error does not mention %q: %v", m, err)
		}
	}
	if !strings.Contains(strings.Join(errors.GetAllHints(err), "\n"), hint) {
		t.Errorf("hints %q do not contain %q", errors.GetAllHints(err), hint)
	}
}

// TestIntegrationStartupChecks: Open refuses what it cannot sync, naming
// the table and column and saying how to fix it.
func TestIntegrationStartupChecks(t *testing.T) {
	srv := sharedServer(t)
	tests := []struct {
		name    string
		setup   string
		role    string // connect as this role (created by setup) instead of the superuser
		mutate  func(*Config)
		want    error
		hint    string
		mention []string
	}{
		{name: "table without primary key", setup: `CREATE TABLE ok (id int PRIMARY KEY); CREATE TABLE nokey (a int, b text)`,
			want: ErrNoPrimaryKey, hint: "ADD PRIMARY KEY", mention: []string{"nokey"}},
		{name: "unsupported types", setup: `CREATE TABLE shapes (id int PRIMARY KEY, p point, r int4range, m int[][])`,
			want: ErrUnsupportedType, hint: "supported:", mention: []string{"table shapes column p: unsupported type point", "column r", "int4range"}},
		{name: "json key", setup: `CREATE TABLE docs (k jsonb PRIMARY KEY)`,
			want: ErrUnsupportedType, hint: "key columns of scalar types", mention: []string{"docs", "key column k"}},
		{name: "replica identity nothing, kept", setup: `CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t REPLICA IDENTITY NOTHING`,
			mutate: func(c *Config) { c.ReplicaIdentity = IdentityKeep },
			want:   ErrReplicaIdentity, hint: "REPLICA IDENTITY DEFAULT", mention: []string{"table t", "NOTHING"}},
		{name: "listed table missing", setup: `CREATE TABLE a (id int PRIMARY KEY)`,
			mutate: func(c *Config) { c.Tables = []string{"a", "nosuch", "other.x"} },
			want:   ErrNoTable, hint: "adapter.tables", mention: []string{"public.nosuch", "other.x"}},
		{name: "role without replication", role: "norepl",
			setup: `CREATE ROLE norepl LOGIN; CREATE TABLE t (id int PRIMARY KEY); ALTER TABLE t OWNER TO norepl`,
			want:  ErrPrivilege, hint: "REPLICATION", mention: []string{"REPLICATION attribute", "replication origins"}},
		{name: "role without table privileges", role: "nogrant",
			setup: `CREATE ROLE nogrant LOGIN REPLICATION; CREATE TABLE t (id int PRIMARY KEY);
				GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text), pg_replication_origin_create(text) TO nogrant`,
			want: ErrPrivilege, hint: "GRANT SELECT, INSERT, UPDATE, DELETE", mention: []string{"table t: missing SELECT, INSERT, UPDATE, DELETE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, dsn := newDB(t, srv)
			if err := srv.Exec(context.Background(), name, tc.setup); err != nil {
				t.Fatal(err)
			}
			if tc.role != "" {
				dsn = srv.DSNAs(tc.role, name)
			}
			cfg := testConfig(t, dsn, name)
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			a, err := Open(ctxT(t), cfg)
			if err == nil {
				a.Close()
			}
			checkErr(t, err, tc.want, tc.hint, tc.mention...)
		})
	}
}

// TestIntegrationLeastPrivilege: a role with exactly the documented
// privileges (not a superuser) can snapshot, capture and apply.
func TestIntegrationLeastPrivilege(t *testing.T) {
	srv := sharedServer(t)
	name, _ := newDB(t, srv)
	role := "app_" + name
	err := srv.Exec(context.Background(), name, fmt.Sprintf(`
		CREATE ROLE %[1]s LOGIN REPLICATION;
		GRANT CREATE ON DATABASE %[2]s TO %[1]s;
		GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text), pg_replication_origin_create(text) TO %[1]s;
		CREATE TABLE accounts (id uuid PRIMARY KEY, owner text, balance numeric(12,2));
		ALTER TABLE accounts OWNER TO %[1]s;
		INSERT INTO accounts VALUES ('00000000-0000-0000-0000-000000000001', 'ada', 10.50)`, role, name))
	if err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSNAs(role, name)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)
	snap := &recorder{}
	cursor, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	if got := snap.changes(); len(got) != 1 || !crdt.Equal(got[0].Row["balance"], crdt.String("10.50")) {
		t.Fatalf("snapshot: %v", got)
	}
	rec := &recorder{a: a, ack: true}
	capture(t, a, cursor, rec.sink)
	key := crdt.StringKey("00000000-0000-0000-0000-000000000002")
	if _, err := a.Apply(ctx, []adapters.Write{{Collection: "accounts", Key: key, Row: crdt.Row{
		"id": crdt.String("00000000-0000-0000-0000-000000000002"), "owner": crdt.String("bob"), "balance": crdt.String("1"),
	}}}, nil); err != nil {
		t.Fatalf("apply: %+v", err)
	}
	app := connect(t, dsn)
	exec(t, app, `UPDATE accounts SET balance = balance + 1`)
	waitFor(t, 10*time.Second, "the update of both rows", func() bool { return len(rec.changes()) >= 2 })
	got := rec.changes()
	if len(got) != 2 || !crdt.Equal(got[1].Row["balance"], crdt.String("2.00")) {
		t.Fatalf("captured %v", got)
	}
}

// TestIntegrationWALLevel: a server without logical decoding is refused
// with the setting to change.
func TestIntegrationWALLevel(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_level": "replica"}})
	dsn, err := srv.CreateDB(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(context.Background(), "app", `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctxT(t), testConfig(t, dsn, "walcheck"))
	if err == nil {
		a.Close()
	}
	checkErr(t, err, ErrWALLevel, "wal_level = logical", "wal_level is replica")
}

// TestIntegrationSlotInvalidated: when PostgreSQL drops WAL the slot still
// needs, the adapter refuses to capture from it and says how to recover; a
// new snapshot recovers.
func TestIntegrationSlotInvalidated(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	dsn, err := srv.CreateDB(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	cfg := testConfig(t, dsn, "invalid")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := open(t, cfg)
	cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
	if err != nil {
		t.Fatalf("snapshot: %+v", err)
	}
	a.Close()
	// The sidecar is away while WAL moves on past the limit.
	waitFor(t, 30*time.Second, "the slot to be invalidated", func() bool {
		exec(t, app, `INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g ON CONFLICT (id) DO UPDATE SET v = t.v || 'x'`)
		exec(t, app, `SELECT pg_switch_wal()`)
		exec(t, app, `CHECKPOINT`)
		var status *string
		if err := app.QueryRow(ctx, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&status); err != nil {
			t.Fatal(err)
		}
		return status != nil && *status == "lost"
	})
	// Open reports it in the log; capture from the old cursor fails with
	// the remedy.
	a2 := open(t, cfg)
	err = a2.Capture(ctx, cursor, func(context.Context, adapters.Batch) error { return nil })
	checkErr(t, err, ErrSlotInvalidated, "initial_sync", "invalidated")
	if !errors.Is(err, adapters.ErrCursor) {
		t.Fatalf("capture from an invalidated slot: %v, want adapters.ErrCursor (the engine takes a new snapshot)", err)
	}

	// Recovery: the engine drops its cursor and takes a new snapshot, which
	// replaces the slot.
	snap := &recorder{}
	cursor, err = a2.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatalf("new snapshot: %+v", err)
	}
	if n := len(snap.changes()); n != 100 {
		t.Fatalf("new snapshot has %d rows, want 100", n)
	}
	rec := &recorder{a: a2, ack: true}
	capture(t, a2, cursor, rec.sink)
	exec(t, app, `INSERT INTO t VALUES (1000, 'after')`)
	waitFor(t, 10*time.Second, "capture after recovery", func() bool { return len(rec.changes()) == 1 })
}
