package sqlite_test

import (
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
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
