package postgres

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationApplyErrorClasses: a server error raised by one write
// (a user's trigger, an index row too large, a missing privilege) names
// that write as a bad row, whatever its class; an error raised at commit
// names none and is not "unavailable"; a lost session is "unavailable".
// Nothing of a failed batch is written.
func TestIntegrationApplyErrorClasses(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `
		CREATE TABLE items (id bigint PRIMARY KEY, name text);
		CREATE INDEX items_name ON items (name);
		CREATE FUNCTION user_check() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'bad' THEN RAISE EXCEPTION 'name bad is not allowed here'; END IF;
			IF NEW.name = 'denied' THEN RAISE EXCEPTION insufficient_privilege USING MESSAGE = 'permission denied for this value'; END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER user_check BEFORE INSERT OR UPDATE ON items FOR EACH ROW EXECUTE FUNCTION user_check();
		CREATE FUNCTION at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
		CREATE CONSTRAINT TRIGGER at_commit AFTER INSERT OR UPDATE ON items DEFERRABLE INITIALLY DEFERRED
			FOR EACH ROW WHEN (NEW.name = 'late') EXECUTE FUNCTION at_commit();`)
	a := open(t, testConfig(t, dsn, name))
	ctx := ctxT(t)
	if _, err := a.Snapshot(ctx, (&recorder{}).sink); err != nil {
		t.Fatal(err)
	}
	write := func(id int64, n string) adapters.Write {
		return adapters.Write{Collection: "items", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "name": crdt.String(n)}}
	}
	// Random, so that compression leaves it over the btree's limit of
	// about 2.7 kB per index row.
	var huge strings.Builder
	r := rand.New(rand.NewPCG(1, 2))
	for range 9000 {
		huge.WriteByte(byte('!' + r.IntN(90)))
	}
	for _, tc := range []struct {
		name, value, code string
	}{
		{"user trigger", "bad", "P0001"},
		{"privilege", "denied", "42501"},
		{"index row too large", huge.String(), "54000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Apply(ctx, []adapters.Write{write(1, "ok1"), write(2, tc.value), write(3, "ok2")}, nil)
			re, ok := adapters.RowErrorOf(err)
			if !ok || !errors.Is(err, adapters.ErrBadRow) || re.Key != crdt.IntKey(2) || errors.Is(err, adapters.ErrUnavailable) {
				t.Fatalf("Apply = %+v, want a bad row naming key 2", err)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Apply = %v, want SQLSTATE %s", err, tc.code)
			}
			var n int
			if err := app.QueryRow(context.Background(), `SELECT count(*) FROM items`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows written by a failed batch (%v)", n, err)
			}
		})
	}

	_, err := a.Apply(ctx, []adapters.Write{write(1, "ok1"), write(2, "late")}, nil)
	if _, ok := adapters.RowErrorOf(err); err == nil || ok || errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("Apply failing at commit = %+v, want an error that names no write", err)
	}
	if _, err := a.Apply(ctx, []adapters.Write{write(1, "ok1"), write(3, "ok2")}, nil); err != nil {
		t.Fatalf("Apply of good rows: %+v", err)
	}

	// The apply session is terminated: the batch fails as unavailable and
	// a later one reconnects.
	exec(t, app, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	_, err = a.Apply(ctx, []adapters.Write{write(4, "after")}, nil)
	if err == nil {
		_, err = a.Apply(ctx, []adapters.Write{write(5, "after")}, nil)
	}
	if err != nil && !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("Apply on a terminated session = %+v, want unavailable", err)
	}
	if _, err := a.Apply(ctx, []adapters.Write{write(6, "after")}, nil); err != nil {
		t.Fatalf("Apply after reconnecting: %+v", err)
	}
	// The database refuses new sessions: the reconnect fails, unavailable.
	if err := srv.Exec(ctx, "postgres", `ALTER DATABASE `+name+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	exec(t, app, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	_, _ = a.Apply(ctx, []adapters.Write{write(7, "after")}, nil) // finds the session's end
	if _, err = a.Apply(ctx, []adapters.Write{write(7, "after")}, nil); err == nil || !errors.Is(err, adapters.ErrUnavailable) {
		t.Fatalf("Apply with no session possible = %+v, want unavailable", err)
	}
	if err := srv.Exec(ctx, "postgres", `ALTER DATABASE `+name+` ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, []adapters.Write{write(7, "after")}, nil); err != nil {
		t.Fatalf("Apply once sessions are allowed: %+v", err)
	}
	var names []string
	rows, err := app.Query(context.Background(), `SELECT name FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); !strings.HasPrefix(got, "ok1 ok2") || !strings.HasSuffix(got, "after") {
		t.Fatalf("items = %s", got)
	}
}
