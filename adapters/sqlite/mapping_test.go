package sqlite_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestMappingRefused checks that Open refuses natural keys and local
// columns the tables cannot have, naming every problem.
func TestMappingRefused(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people(id INTEGER PRIMARY KEY, email TEXT NOT NULL, nick TEXT, rank INTEGER NOT NULL)`,
		`CREATE UNIQUE INDEX people_email ON people(email)`,
		`CREATE UNIQUE INDEX people_nick ON people(nick)`,
		`CREATE TABLE coded(code TEXT NOT NULL, email TEXT NOT NULL, PRIMARY KEY (code))`,
		`CREATE UNIQUE INDEX coded_email ON coded(email)`,
		`CREATE TABLE partial(id INTEGER PRIMARY KEY, email TEXT NOT NULL)`,
		`CREATE UNIQUE INDEX partial_email ON partial(email) WHERE id > 0`)
	for _, tt := range []struct {
		name  string
		keys  map[string][]string
		local map[string]map[string]crdt.Value
		want  []string
	}{
		{"unknown table", map[string][]string{"nobody": {"email"}}, nil,
			[]string{"table nobody has a natural key or local columns but is not synced"}},
		{"unknown local column", nil, map[string]map[string]crdt.Value{"people": {"nope": crdt.Int(1)}},
			[]string{"table people has no column nope to keep local"}},
		{"unknown local table", nil, map[string]map[string]crdt.Value{"nobody": {"x": crdt.Null()}},
			[]string{"table nobody has a natural key or local columns but is not synced"}},
		{"no unique index", map[string][]string{"people": {"email", "nick"}}, map[string]map[string]crdt.Value{"people": {"rank": crdt.Int(1)}},
			[]string{`table people has no unique index over its natural key (email, nick): create one, as CREATE UNIQUE INDEX "people_email_nick" ON "people"("email", "nick")`}},
		{"partial index", map[string][]string{"partial": {"email"}}, nil,
			[]string{"table partial has no unique index over its natural key (email)"}},
		{"nullable natural key", map[string][]string{"people": {"nick"}}, map[string]map[string]crdt.Value{"people": {"rank": crdt.Int(1)}},
			[]string{"table people: natural key column nick is not NOT NULL"}},
		{"NOT NULL local without value", map[string][]string{"people": {"email"}}, map[string]map[string]crdt.Value{"people": {"rank": crdt.Null()}},
			[]string{"table people: local column rank is NOT NULL without a default"}},
		{"local value of the wrong type", map[string][]string{"people": {"email"}}, map[string]map[string]crdt.Value{"people": {"rank": crdt.String("high")}},
			[]string{"table people: local column rank cannot hold"}},
		{"primary key without default", map[string][]string{"coded": {"email"}}, nil,
			[]string{"table coded: primary key column code has no default"}},
		{"local primary key without natural key", nil, map[string]map[string]crdt.Value{"coded": {"code": crdt.Null()}},
			[]string{"table coded: column code is in the primary key"}},
		{"local natural key", map[string][]string{"people": {"email"}}, map[string]map[string]crdt.Value{"people": {"email": crdt.Null(), "rank": crdt.Int(1)}},
			[]string{"table people: column email is both local and in the natural key"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config()
			cfg.Keys, cfg.Local = tt.keys, tt.local
			a, err := sqlite.Open(f.ctx, cfg)
			if err == nil {
				a.Close()
				t.Fatalf("open succeeded")
			}
			if !errors.Is(err, sqlite.ErrNotInstallable) {
				t.Errorf("error %v is not ErrNotInstallable", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if hint := errors.FlattenHints(err); !strings.Contains(hint, "unique index") {
				t.Errorf("no hint in %+v", err)
			}
		})
	}
	// The same tables open with a mapping they can have.
	cfg := f.config()
	cfg.Keys = map[string][]string{"people": {"email"}}
	cfg.Local = map[string]map[string]crdt.Value{"people": {"rank": crdt.Int(3), "nick": crdt.Null()}}
	f.open(cfg)
}

// TestNaturalKeyComposite checks a natural key of two columns, listed in
// another order than its unique index's: Tables reports them in the
// config's order, Apply upserts by them, a change of one of them is
// captured as a delete and an insert, and an update of the primary key
// alone as an update that changes no synced column.
func TestNaturalKeyComposite(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE members(id INTEGER PRIMARY KEY, email TEXT NOT NULL, org TEXT NOT NULL, role TEXT, seen INTEGER)`,
		`CREATE UNIQUE INDEX members_email_org ON members(email, org)`)
	cfg := f.config()
	cfg.Keys = map[string][]string{"members": {"org", "email"}}
	cfg.Local = map[string]map[string]crdt.Value{"members": {"seen": crdt.Int(0)}}
	a := f.open(cfg)
	tables, err := a.Tables(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	members := tables[slices.IndexFunc(tables, func(t adapters.Table) bool { return t.Name == "members" })]
	var cols []string
	for _, c := range members.Columns {
		cols = append(cols, c.Name)
	}
	if got := strings.Join(members.Key, ",") + " " + strings.Join(cols, ","); got != "org,email email,org,role" {
		t.Errorf("key and columns %s, want org,email email,org,role", got)
	}
	_, cursor := f.snapshot(a)
	fl := f.follow(a, cursor)

	key := func(org, email string) crdt.Key {
		k, err := crdt.MakeKey(crdt.String(org), crdt.String(email))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	row := func(org, email, role string) crdt.Row {
		return crdt.Row{"org": crdt.String(org), "email": crdt.String(email), "role": crdt.String(role)}
	}
	for _, role := range []string{"admin", "owner"} {
		w := adapters.Write{Collection: "members", Key: key("acme", "ann@x"), Row: row("acme", "ann@x", role)}
		if _, err := a.Apply(f.ctx, []adapters.Write{w}, nil); err != nil {
			t.Fatalf("apply: %+v", err)
		}
	}
	var n, seen int
	var role string
	if err := f.user.QueryRowContext(f.ctx, `SELECT count(*), max(role), max(seen) FROM members`).Scan(&n, &role, &seen); err != nil {
		t.Fatal(err)
	}
	if n != 1 || role != "owner" || seen != 0 {
		t.Errorf("after two applies: %d rows, role %s, seen %d; want 1 row, owner, 0", n, role, seen)
	}
	f.exec(`UPDATE members SET org = 'globex' WHERE email = 'ann@x'`,
		`UPDATE members SET id = id + 100 WHERE email = 'ann@x'`)
	got := fl.sync()
	want := []string{
		"delete " + key("acme", "ann@x").String(),
		"insert " + key("globex", "ann@x").String() + " email=\"ann@x\" org=\"globex\" role=\"owner\"",
		"update " + key("globex", "ann@x").String() + " email=\"ann@x\" org=\"globex\" role=\"owner\" from email=\"ann@x\" org=\"globex\" role=\"owner\"",
	}
	var have []string
	for _, c := range got {
		switch {
		case c.Row == nil:
			have = append(have, "delete "+c.Key.String())
		case c.Old == nil:
			have = append(have, "insert "+c.Key.String()+" "+rowString(c.Row))
		default:
			have = append(have, "update "+c.Key.String()+" "+rowString(c.Row)+" from "+rowString(c.Old))
		}
	}
	if !slices.Equal(have, want) {
		t.Errorf("captured\n  %s\nwant\n  %s", strings.Join(have, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestNaturalKeyOverOldLog checks the log rows written before a table had
// its natural key, by triggers that watched the primary key: an update of
// the natural key there is one update row, which capture splits into the
// delete of the old key and the insert of the new one, and after which
// Apply defers writes to both keys.
func TestNaturalKeyOverOldLog(t *testing.T) {
	f := newFixture(t,
		`CREATE TABLE people(id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT)`,
		`CREATE UNIQUE INDEX people_email ON people(email)`,
		`INSERT INTO people(email, name) VALUES('ann@x', 'Ann')`)
	a, err := sqlite.Open(f.ctx, f.config())
	if err != nil {
		t.Fatal(err)
	}
	_, cursor := f.snapshot(a)
	a.Close()
	f.exec(`UPDATE people SET email = 'anne@x' WHERE email = 'ann@x'`)

	cfg := f.config()
	cfg.Keys = map[string][]string{"people": {"email"}}
	a = f.open(cfg)
	writes := []adapters.Write{
		{Collection: "people", Key: crdt.StringKey("ann@x"), Row: crdt.Row{"email": crdt.String("ann@x"), "name": crdt.String("merged")}},
		{Collection: "people", Key: crdt.StringKey("anne@x"), Row: crdt.Row{"email": crdt.String("anne@x"), "name": crdt.String("merged")}},
		{Collection: "people", Key: crdt.StringKey("bob@x"), Row: crdt.Row{"email": crdt.String("bob@x"), "name": crdt.String("Bob")}},
	}
	res, err := a.Apply(f.ctx, writes, cursor)
	if err != nil {
		t.Fatalf("apply: %+v", err)
	}
	if !slices.Equal(res.Deferred, []int{0, 1}) {
		t.Errorf("apply deferred %v, want [0 1]: both keys of the moved record", res.Deferred)
	}
	got := f.follow(a, cursor).sync()
	if len(got) != 2 || got[0].Key != crdt.StringKey("ann@x") || got[0].Row != nil ||
		got[1].Key != crdt.StringKey("anne@x") || got[1].Old != nil || !got[1].Insert ||
		rowString(got[1].Row) != `email="anne@x" name="Ann"` {
		for _, c := range got {
			t.Logf("captured %s row %s old %s insert %v", c.Key, rowString(c.Row), rowString(c.Old), c.Insert)
		}
		t.Errorf("captured %d changes, want the delete of ann@x and the insert of anne@x", len(got))
	}
}
