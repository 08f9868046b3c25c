package postgres

import (
	"maps"
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationGeneratedKeys: Tables reports identities and defaults as
// generated, and writes with a NewKey insert under keys of every kind the
// server generates (a UUID default, an identity GENERATED ALWAYS, a
// serial), reported and mapped in their kinds.
func TestIntegrationGeneratedKeys(t *testing.T) {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE u (id uuid DEFAULT gen_random_uuid() PRIMARY KEY, name text);
		CREATE TABLE a (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL DEFAULT 'x');
		CREATE TABLE s (id bigserial PRIMARY KEY);
		CREATE TABLE p (id int PRIMARY KEY, name text)`)
	ctx := ctxT(t)
	ad := open(t, testConfig(t, dsn, name))
	tables, err := ad.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, tb := range tables {
		for _, c := range tb.Columns {
			if c.Generated {
				got[tb.Name+"."+c.Name] = true
			}
		}
	}
	if want := map[string]bool{"u.id": true, "a.id": true, "a.name": true, "s.id": true}; !maps.Equal(got, want) {
		t.Errorf("generated columns %v, want %v", got, want)
	}
	c := crdt.StringKey("c")
	res, err := ad.Apply(ctx, []adapters.Write{
		{Collection: "u", NewKey: c, Row: crdt.Row{"name": crdt.String("one")}},
		{Collection: "a", NewKey: c, Row: crdt.Row{"name": crdt.String("two")}},
		{Collection: "s", NewKey: c, Row: crdt.Row{}},
	}, nil)
	if err != nil {
		t.Fatalf("apply: %+v", err)
	}
	var uuid string
	if err := app.QueryRow(ctx, `SELECT id::text FROM u`).Scan(&uuid); err != nil {
		t.Fatal(err)
	}
	for i, want := range []crdt.Key{crdt.StringKey(uuid), crdt.IntKey(1), crdt.IntKey(1)} {
		if res.Generated[i] != want {
			t.Errorf("write %d: generated %s, want %s", i, res.Generated[i], want)
		}
		coll := []string{"u", "a", "s"}[i]
		m, err := ad.IDMap(ctx, coll)
		if err != nil || !maps.Equal(m, map[crdt.Key]crdt.Key{want: c}) {
			t.Errorf("id map of %s: %v (%v), want %s -> %s", coll, m, err, want, c)
		}
	}
	// A key the server does not generate cannot be left to it.
	_, err = ad.Apply(ctx, []adapters.Write{{Collection: "p", NewKey: c, Row: crdt.Row{"name": crdt.String("x")}}}, nil)
	if re, ok := adapters.RowErrorOf(err); !ok || re.Key != c {
		t.Errorf("new key in a table without a generated key: %v, want a RowError naming %s", err, c)
	}
}
