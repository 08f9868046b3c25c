package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationTablesCreatedWhileRunning: a table created while capture
// runs is added to the publication by the next Tables call, and its
// changes are captured from then on; with adapter.tables set, only listed
// tables are. A new table that cannot be synced (no primary key) is left
// out without failing Tables or capture, and joins once it has a key. A
// column added while running is captured, and CatalogChanged says so.
func TestIntegrationTablesCreatedWhileRunning(t *testing.T) {
	srv := sharedServer(t)
	_, dsn := newDB(t, srv)
	ctx := ctxT(t)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE t (id int PRIMARY KEY, v text)`)

	all := open(t, testConfig(t, dsn, "catall"))
	listedCfg := testConfig(t, dsn, "catlisted")
	listedCfg.Tables = []string{"t"}
	listed := open(t, listedCfg)
	recs := map[*Adapter]*recorder{}
	for _, a := range []*Adapter{all, listed} {
		cursor, err := a.Snapshot(ctx, func(context.Context, adapters.Batch) error { return nil })
		if err != nil {
			t.Fatalf("snapshot: %+v", err)
		}
		recs[a] = &recorder{a: a, ack: true}
		capture(t, a, cursor, recs[a].sink)
	}
	names := func(a *Adapter) []string {
		t.Helper()
		ts, err := a.Tables(ctx)
		if err != nil {
			t.Fatalf("tables: %+v", err)
		}
		var out []string
		for _, tb := range ts {
			out = append(out, tb.Name)
		}
		return out
	}
	published := func(pub string) []string {
		t.Helper()
		rows, err := app.Query(ctx, `SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, pub)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		return out
	}
	colls := func(r *recorder) map[string][]crdt.Row {
		out := map[string][]crdt.Row{}
		for _, c := range r.changes() {
			out[c.Collection] = append(out[c.Collection], c.Row)
		}
		return out
	}

	exec(t, app, `CREATE TABLE extra (id int PRIMARY KEY, name text)`)
	exec(t, app, `CREATE TABLE nokey (a int)`)
	if got, want := names(all), []string{"extra", "t"}; !slices.Equal(got, want) {
		t.Fatalf("tables without adapter.tables: %v, want %v (nokey left out)", got, want)
	}
	if got, want := names(listed), []string{"t"}; !slices.Equal(got, want) {
		t.Fatalf("tables with adapter.tables [t]: %v, want %v", got, want)
	}
	if got, want := published("lattice_catall"), []string{"extra", "t"}; !slices.Equal(got, want) {
		t.Fatalf("publication without adapter.tables: %v, want %v", got, want)
	}
	if got, want := published("lattice_catlisted"), []string{"t"}; !slices.Equal(got, want) {
		t.Fatalf("publication with adapter.tables [t]: %v, want %v", got, want)
	}

	exec(t, app, `INSERT INTO extra VALUES (1, 'one')`)
	exec(t, app, `INSERT INTO t VALUES (1, 'after')`)
	for a, r := range recs {
		waitFor(t, 10*time.Second, "the insert into t captured by "+a.cfg.Node, func() bool { return len(colls(r)["t"]) == 1 })
	}
	if got := colls(recs[all])["extra"]; len(got) != 1 || !crdt.Equal(got[0]["name"], crdt.String("one")) {
		t.Fatalf("%s captured %v from extra, want the row (1, one)", all.cfg.Node, got)
	}
	if got := colls(recs[listed])["extra"]; len(got) != 0 {
		t.Fatalf("%s captured %v from extra, which adapter.tables leaves out", listed.cfg.Node, got)
	}

	// A key makes nokey syncable: it joins at the next look.
	exec(t, app, `ALTER TABLE nokey ADD PRIMARY KEY (a)`)
	if got, want := names(all), []string{"extra", "nokey", "t"}; !slices.Equal(got, want) {
		t.Fatalf("tables after nokey got a key: %v, want %v", got, want)
	}
	exec(t, app, `INSERT INTO nokey VALUES (7)`)
	waitFor(t, 10*time.Second, "the insert into nokey captured", func() bool { return len(colls(recs[all])["nokey"]) == 1 })

	// A table the user adds to the publication before any refresh found
	// it: capture maps it on its first change, with no Tables call.
	exec(t, app, `CREATE TABLE early (id int PRIMARY KEY)`)
	exec(t, app, `ALTER PUBLICATION lattice_catall ADD TABLE early`)
	exec(t, app, `INSERT INTO early VALUES (1)`)
	waitFor(t, 10*time.Second, "the row of a table the user published captured", func() bool { return len(colls(recs[all])["early"]) == 1 })

	// A column added while running: captured, and signalled.
	select {
	case <-all.CatalogChanged():
	default:
	}
	exec(t, app, `ALTER TABLE extra ADD COLUMN email text`)
	exec(t, app, `INSERT INTO extra VALUES (2, 'two', 'two@example.com')`)
	waitFor(t, 10*time.Second, "the second insert into extra captured", func() bool { return len(colls(recs[all])["extra"]) == 2 })
	if got := colls(recs[all])["extra"][1]; !crdt.Equal(got["email"], crdt.String("two@example.com")) {
		t.Fatalf("captured %v, want email two@example.com", got)
	}
	select {
	case <-all.CatalogChanged():
	case <-time.After(10 * time.Second):
		t.Fatal("CatalogChanged did not signal the new column")
	}
	ts, err := all.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(ts, func(tb adapters.Table) bool { return tb.Name == "extra" }); i < 0 || len(ts[i].Columns) != 3 || len(ts) != 4 {
		t.Fatalf("tables after the new column: %+v", ts)
	}
}
