package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// PostgreSQL in the checker: some sidecars sit beside a database of one
// throwaway PostgreSQL server (pgtest: initdb in a temporary directory, a
// free port, run as the postgres user when the checker runs as root),
// which the schedule stops (fast shutdown) and starts again while the
// sidecars run. The clients write the same random workload through their
// own pgx connections; tags is jsonb or text[] (a seeded choice per
// database), both lists under the orset policy.

// checkDialect is how the clients and the checker write and read one kind
// of database. The statements number their parameters $1, $2, ...
type checkDialect struct {
	name, schema string
	// fromJSON makes a set from parameter p, a JSON array of strings;
	// single a set of the one element p; add and remove add p to (remove
	// it from) the row's tags; has tells whether the row's tags hold p.
	fromJSON, single, add, remove, has func(p string) string
	// empty is the empty set; tags reads the column as a JSON array.
	empty, tags string
	// placeholder turns $n into the driver's form.
	placeholder func(q string) string
}

var sqliteDialect = checkDialect{
	name:     "sqlite",
	schema:   `CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, a TEXT, b TEXT, n INTEGER, tags JSON)`,
	fromJSON: func(p string) string { return p },
	single:   func(p string) string { return `json_array(` + p + `)` },
	add: func(p string) string {
		return `(SELECT json_group_array(value) FROM (SELECT value FROM json_each(coalesce(items.tags, '[]')) UNION SELECT ` + p + `))`
	},
	remove: func(p string) string {
		return `(SELECT json_group_array(value) FROM json_each(coalesce(items.tags, '[]')) WHERE value != ` + p + `)`
	},
	has: func(p string) string {
		return `EXISTS (SELECT 1 FROM json_each(coalesce(items.tags, '[]')) WHERE value = ` + p + `)`
	},
	empty:       `'[]'`,
	tags:        `CAST(tags AS TEXT)`,
	placeholder: func(q string) string { return strings.ReplaceAll(q, "$", "?") },
}

var jsonbDialect = checkDialect{
	name:     "postgres (jsonb tags)",
	schema:   `CREATE TABLE IF NOT EXISTS items (id bigint PRIMARY KEY, a text, b text, n bigint, tags jsonb)`,
	fromJSON: func(p string) string { return p + `::text::jsonb` },
	single:   func(p string) string { return `jsonb_build_array(` + p + `::text)` },
	add: func(p string) string {
		return `(coalesce(items.tags, '[]'::jsonb) - ` + p + `::text) || jsonb_build_array(` + p + `::text)`
	},
	remove: func(p string) string { return `coalesce(items.tags, '[]'::jsonb) - ` + p + `::text` },
	has: func(p string) string {
		return `coalesce(items.tags, '[]'::jsonb) @> jsonb_build_array(` + p + `::text)`
	},
	empty:       `'[]'::jsonb`,
	tags:        `tags::text`,
	placeholder: func(q string) string { return q },
}

var arrayDialect = checkDialect{
	name:     "postgres (text[] tags)",
	schema:   `CREATE TABLE IF NOT EXISTS items (id bigint PRIMARY KEY, a text, b text, n bigint, tags text[])`,
	fromJSON: func(p string) string { return `ARRAY(SELECT jsonb_array_elements_text(` + p + `::text::jsonb))` },
	single:   func(p string) string { return `ARRAY[` + p + `::text]` },
	add: func(p string) string {
		return `array_append(array_remove(coalesce(items.tags, '{}'), ` + p + `::text), ` + p + `::text)`
	},
	remove:      func(p string) string { return `array_remove(coalesce(items.tags, '{}'), ` + p + `::text)` },
	has:         func(p string) string { return p + `::text = ANY(coalesce(items.tags, '{}'))` },
	empty:       `'{}'::text[]`,
	tags:        `to_jsonb(tags)::text`,
	placeholder: func(q string) string { return q },
}

func (d *checkDialect) postgres() bool { return d != &sqliteDialect }

// q returns statement s in the driver's placeholder form.
func (d *checkDialect) q(s string) string { return d.placeholder(s) }

// barrierSchema is a table synced beside items, into which the checker
// writes one row per PostgreSQL database once the clients have stopped:
// capture delivers a database's transactions in commit order, so once every
// system holds that row, capture has taken every client write made there
// before it. (PostgreSQL's slot reports the position capture reached
// only every 10 s when idle, and equal tables alone do not prove it: an
// apply may have written an older state over writes not captured yet.)
const barrierSchema = `CREATE TABLE IF NOT EXISTS check_barrier (id bigint PRIMARY KEY, v text)`

// pgCountTriggers count every row written into items, one row of
// check_writes each: by the sidecar's applies, which run on a session set
// up with the adapter's replication origin
// (pg_replication_origin_session_is_setup; adapters/postgres/doc.go, "Echo
// suppression"), or by users. Inserting a row per write, rather than
// updating one counter row, keeps the counters from serializing the
// clients and the applies (and from deadlocking them). check_writes is not
// published: capture never sees it.
var pgCountTriggers = []string{
	`CREATE TABLE IF NOT EXISTS check_writes (lattice boolean NOT NULL)`,
	`CREATE OR REPLACE FUNCTION check_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN ` +
		`INSERT INTO check_writes VALUES (pg_replication_origin_session_is_setup()); RETURN NULL; END $$`,
	`CREATE OR REPLACE TRIGGER check_count AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION check_count()`,
}

const pgReadCounts = `SELECT count(*) FILTER (WHERE NOT lattice), count(*) FILTER (WHERE lattice) FROM check_writes`

// maybeCommitted reports whether a statement that failed with err may have
// committed all the same: its connection broke (a server restart) after
// the statement was sent, before its outcome came back. An error the
// server returned, or one before anything was sent, means it did not.
func maybeCommitted(d *checkDialect, err error) bool {
	if err == nil || !d.postgres() {
		return false
	}
	var pgErr *pgconn.PgError
	return !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err)
}

// checkServer is the checker's PostgreSQL server, holding one database
// per node beside it.
type checkServer struct {
	srv *pgtest.Server
}

// startCheckServer starts a server with PostgreSQL's binaries bin. With
// a bridge address (checknet.go), it also listens there and lets the
// bridge's /24 in.
func startCheckServer(ctx context.Context, bin pgtest.Binaries, bridge string) (*checkServer, error) {
	o := pgtest.Options{}
	if bridge != "" {
		o.Settings = map[string]string{"listen_addresses": "127.0.0.1," + bridge}
	}
	srv, err := pgtest.New(ctx, bin, o)
	if err != nil {
		return nil, errors.Wrap(err, "start postgresql")
	}
	s := &checkServer{srv: srv}
	if bridge != "" {
		hba, err := os.OpenFile(filepath.Join(srv.Dir(), "data", "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			_, err = fmt.Fprintf(hba, "host all all %s/24 trust\n", bridge)
			err = errors.CombineErrors(err, hba.Close())
		}
		if err == nil {
			err = srv.Exec(ctx, "postgres", `SELECT pg_reload_conf()`)
		}
		if err != nil {
			_ = srv.Close()
			return nil, errors.Wrap(err, "let the sidecars' namespaces reach postgresql")
		}
	}
	return s, nil
}

// createDB creates node's database and returns its DSN.
func (s *checkServer) createDB(ctx context.Context, node string) (string, error) {
	dsn, err := s.srv.CreateDB(ctx, node)
	return dsn, errors.Wrapf(err, "create database %s", node)
}

// restart stops the server (fast shutdown: sessions are disconnected,
// transactions in progress roll back) and starts it again on the same port.
func (s *checkServer) restart(ctx context.Context, down func() bool) error {
	if err := s.srv.Stop(ctx); err != nil {
		return errors.Wrap(err, "stop postgresql")
	}
	if !down() {
		return ctx.Err()
	}
	return errors.Wrap(s.srv.Start(ctx), "start postgresql again")
}

func (s *checkServer) close() error { return s.srv.Close() }

// openCheckPostgres opens a pool to dsn for the clients.
func openCheckPostgres(dsn string) (*sql.DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, errors.Wrapf(err, "open %s", dsn)
	}
	return db, nil
}

// describeDialects names each node's database kind, for reports.
func describeDialects(dbs []*checkDB) string {
	var parts []string
	for i, d := range dbs {
		parts = append(parts, fmt.Sprintf("n%d %s", i+1, d.dialect.name))
	}
	return strings.Join(parts, ", ")
}
