package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
)

func TestConfigValidate(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.DSN = "postgres://lattice@localhost/crm"
		c.Node = "crm-1"
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantKey string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"key=value dsn", func(c *Config) { c.DSN = "host=localhost dbname=crm" }, ""},
		{"no dsn", func(c *Config) { c.DSN = "" }, "dsn"},
		{"bad dsn", func(c *Config) { c.DSN = "postgres://%zz" }, "dsn"},
		{"no node, no names", func(c *Config) { c.Node = "" }, "slot"},
		{"no node, all names", func(c *Config) { c.Node, c.Slot, c.Publication, c.Origin = "", "s", "p", "o" }, ""},
		{"bad slot", func(c *Config) { c.Slot = "Has-Dash" }, "slot"},
		{"long publication", func(c *Config) { c.Publication = strings.Repeat("p", 64) }, "publication"},
		{"bad origin", func(c *Config) { c.Origin = "o'x" }, "origin"},
		{"empty schema", func(c *Config) { c.Schemas = []string{""} }, "schemas"},
		{"bad table", func(c *Config) { c.Tables = []string{"a.b.c"} }, "tables"},
		{"trailing dot", func(c *Config) { c.Tables = []string{"a."} }, "tables"},
		{"bad identity", func(c *Config) { c.ReplicaIdentity = "nothing" }, "replica_identity"},
		{"status too fast", func(c *Config) { c.StatusInterval = time.Microsecond }, "status_interval"},
		{"negative batch", func(c *Config) { c.BatchSize = -1 }, "batch_size"},
		{"negative wait", func(c *Config) { c.BatchWait = -time.Second }, "batch_wait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got valid, want an error naming %s", tc.wantKey)
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.wantKey+":") {
				t.Fatalf("got %v, want an ErrConfig naming %s", err, tc.wantKey)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{DSN: "postgres://localhost/x", Node: "CRM East.1"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := "lattice_crm_east_1"
	if c.Slot != want || c.Publication != want || c.Origin != want {
		t.Errorf("names %q %q %q, want %q", c.Slot, c.Publication, c.Origin, want)
	}
	if len(c.Schemas) != 1 || c.Schemas[0] != "public" || c.BatchSize != 1000 || c.StatusInterval != 10*time.Second ||
		c.ReplicaIdentity != IdentityFull || c.Logger == nil {
		t.Errorf("defaults not filled: %+v", c)
	}
	long := Config{DSN: "postgres://localhost/x", Node: strings.Repeat("n", 100)}
	if err := long.Validate(); err != nil || len(long.Slot) != 63 {
		t.Errorf("long node: slot %q (%d), err %v; want 63 characters", long.Slot, len(long.Slot), err)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, tc := range []struct {
		v  int
		ok bool
	}{{130012, false}, {140000, true}, {150020, true}, {170002, true}} {
		var p problems
		checkVersion(tc.v, &p)
		err := p.err()
		if (err == nil) != tc.ok {
			t.Errorf("version %d: err %v, want ok %v", tc.v, err, tc.ok)
		}
		if err != nil && (!errors.Is(err, ErrVersion) || len(errors.GetAllHints(err)) == 0) {
			t.Errorf("version %d: %v is not ErrVersion with a hint", tc.v, err)
		}
	}
}

func TestProblemsCombine(t *testing.T) {
	var p problems
	p.add(ErrNoPrimaryKey, "add a key", "table a has no primary key")
	p.add(ErrUnsupportedType, "change the type", "table b column c: unsupported type point")
	p.add(ErrNoPrimaryKey, "add a key", "table d has no primary key")
	err := p.err()
	for _, want := range []error{ErrNoPrimaryKey, ErrUnsupportedType} {
		if !errors.Is(err, want) {
			t.Errorf("%v is not %v", err, want)
		}
	}
	if hints := errors.GetAllHints(err); len(hints) != 2 {
		t.Errorf("hints %q, want 2 distinct", hints)
	}
	for _, s := range []string{"3 problems", "table a", "table b column c", "table d"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q does not mention %q", err, s)
		}
	}
}
