package sidecar

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigExample(t *testing.T) {
	p := writeFile(t, "lattice.yaml", `
node: crm
data: /var/lib/lattice/crm
bind: 0.0.0.0:7946
advertise: 10.0.0.5:7946
join: [10.0.0.6:7946]
cluster: acme-prod
api:
  addr: 127.0.0.1:7070
adapter:
  kind: sqlite
  dsn: /tmp/crm.db
collections:
  customers:
    key: [id]
    key_types: [int]
    deletes: lww
    fields:
      status: lww
      phone: {prefer: [crm, erp]}
      tags: orset
      last_seen_at: {policy: max, type: time}
`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := c.Schema()
	if err != nil {
		t.Fatal(err)
	}
	col, err := s.Collection("customers")
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"status": "lww", "phone": "prefer[crm,erp]", "tags": "orset", "last_seen_at": "max", "other": "lww"} {
		if got := col.Policy(f).String(); got != want {
			t.Errorf("policy of %s = %s, want %s", f, got, want)
		}
	}
	if c.MaxClockOffset != crdt.DefaultMaxOffset || c.Apply.BatchSize != 500 || c.API.MaxBodyBytes != 1<<20 {
		t.Errorf("defaults not filled: %+v", c)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	base := func() Config { return Config{Node: "a", Data: "/tmp/x"} }
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"missing node", func(c *Config) { c.Node = "" }, "config node: missing"},
		{"bad node", func(c *Config) { c.Node = "a b" }, "config node"},
		{"missing data", func(c *Config) { c.Data = "" }, "config data: missing"},
		{"bad bind", func(c *Config) { c.Bind = "nope" }, "config bind"},
		{"advertise not ip", func(c *Config) { c.Advertise = "example.com:7946" }, "config advertise"},
		{"bad join", func(c *Config) { c.Join = []string{"10.0.0.1"} }, "config join[0]"},
		{"negative offset", func(c *Config) { c.MaxClockOffset = -time.Second }, "config max_clock_offset"},
		{"half tls", func(c *Config) { c.API.TLS.Cert = "x" }, "config api.tls"},
		{"unknown adapter", func(c *Config) { c.Adapter.Kind = "oracle" }, "config adapter.kind"},
		{"adapter not in this binary", func(c *Config) { c.Adapter.Kind = "mysql" }, "unknown adapter \"mysql\""},
		{"sqlite without dsn", func(c *Config) { c.Adapter.Kind = "sqlite" }, "config adapter.dsn"},
		{"bad policy", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Fields: map[string]FieldConfig{"f": {Policy: "newest"}}}}
		}, "config collections.t.fields.f"},
		{"prefer without list", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Fields: map[string]FieldConfig{"f": {Policy: "prefer"}}}}
		}, "prefer needs a source list"},
		{"bad field type", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Fields: map[string]FieldConfig{"f": {Type: "decimal"}}}}
		}, "config collections.t.fields.f.type"},
		{"key types count", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Key: []string{"a", "b"}, KeyTypes: []string{"int"}}}
		}, "config collections.t.key_types"},
		{"deletes", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Deletes: "keep"}}
		}, "config collections.t.deletes"},
		{"orset key column", func(c *Config) {
			c.Collections = map[string]CollectionConfig{"t": {Key: []string{"id"}, Fields: map[string]FieldConfig{"id": {Policy: "orset"}}}}
		}, "key column"},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, "config log.level"},
		{"allowed host with a port", func(c *Config) { c.API.AllowedHosts = []string{"lattice.example.com:7070"} }, "config api.allowed_hosts"},
		{"allowed host as a URL", func(c *Config) { c.API.AllowedHosts = []string{"https://lattice.example.com"} }, "config api.allowed_hosts"},
		{"empty allowed host", func(c *Config) { c.API.AllowedHosts = []string{""} }, "config api.allowed_hosts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigRejectsUnknownKeys(t *testing.T) {
	p := writeFile(t, "bad.yaml", "node: a\ndata: /tmp\napi:\n  adress: 127.0.0.1:1\n")
	_, err := LoadConfig(p)
	if err == nil || !strings.Contains(err.Error(), "adress") {
		t.Fatalf("LoadConfig = %v, want an error naming the unknown key", err)
	}
}

func TestReadToken(t *testing.T) {
	short := writeFile(t, "short", "abc\n")
	if _, err := (&APIConfig{TokenFile: short}).ReadToken(); err == nil {
		t.Fatal("short token accepted")
	}
	good := writeFile(t, "good", "  0123456789abcdef0123  \n")
	tok, err := (&APIConfig{TokenFile: good}).ReadToken()
	if err != nil || tok != "0123456789abcdef0123" {
		t.Fatalf("ReadToken = %q, %v", tok, err)
	}
	if _, err := (&APIConfig{TokenFile: "/nonexistent/token"}).ReadToken(); err == nil {
		t.Fatal("missing token file accepted")
	}
}

// Secrets in files that other users may open are refused, with a hint
// that fixes the mode; an inline token has the same minimum length.
func TestSecretFilesMustBePrivate(t *testing.T) {
	open := func(name, body string) string {
		p := writeFile(t, name, body)
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := open("api.token", "0123456789abcdef0123\n")
	if _, err := (&APIConfig{TokenFile: token}).ReadToken(); err == nil || !strings.Contains(err.Error(), "config api.token_file") ||
		!strings.Contains(strings.Join(errors.GetAllHints(err), ";"), "chmod 600 "+token) {
		t.Fatalf("ReadToken of a 0644 file = %v, hints %q", err, errors.GetAllHints(err))
	}
	if err := os.Chmod(token, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := (&APIConfig{TokenFile: token}).ReadToken(); err == nil {
		t.Fatal("a token file its group may read was accepted")
	}
	if err := os.Chmod(token, 0o400); err != nil {
		t.Fatal(err)
	}
	if tok, err := (&APIConfig{TokenFile: token}).ReadToken(); err != nil || tok != "0123456789abcdef0123" {
		t.Fatalf("ReadToken of a 0400 file = %q, %v", tok, err)
	}

	dsn := open("dsn", "postgres://u:secret@localhost/db\n")
	if _, err := (&AdapterConfig{DSNFile: dsn}).ReadDSN(); err == nil || !strings.Contains(err.Error(), "config adapter.dsn_file") {
		t.Fatalf("ReadDSN of a 0644 file = %v", err)
	}
	if err := os.Chmod(dsn, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := (&AdapterConfig{DSNFile: dsn}).ReadDSN(); err != nil || got != "postgres://u:secret@localhost/db" {
		t.Fatalf("ReadDSN = %q, %v", got, err)
	}

	// The gossip key file, checked when the agent starts.
	key := open("gossip.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	_, err := Start(t.Context(), Config{Node: "k", Data: filepath.Join(t.TempDir(), "d"), Bind: "127.0.0.1:0",
		KeyFile: key, API: APIConfig{Addr: "off"}}, Options{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "config key_file") ||
		!strings.Contains(strings.Join(errors.GetAllHints(err), ";"), "chmod 600 "+key) {
		t.Fatalf("Start with a 0644 key file = %v", err)
	}

	for _, c := range []Config{
		{Node: "a", Data: "/tmp/x", API: APIConfig{Token: "short"}},
		{Node: "a", Data: "/tmp/x", Adapter: AdapterConfig{Kind: "sqlite", DSN: "a.db", DSNFile: dsn}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", c)
		}
	}
	c := Config{Node: "a", Data: "/tmp/x", Adapter: AdapterConfig{Kind: "sqlite", DSNFile: dsn}}
	if err := c.Validate(); err != nil {
		t.Fatalf("dsn_file alone: %v", err)
	}
}

func TestDSNHasPassword(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://lattice:s3cret@db/crm":                 true,
		"postgres://lattice@db/crm?password=s3cret":        true,
		"host=db user=lattice password=s3cret":             true,
		"postgres://lattice@db/crm?sslmode=require":        false,
		"host=db user=lattice dbname=crm":                  false,
		"/var/lib/app/crm.db":                              false,
		"file:/var/lib/app/crm.db?_pragma=foreign_keys(1)": false,
	} {
		if got := DSNHasPassword(dsn); got != want {
			t.Errorf("DSNHasPassword(%q) = %v, want %v", dsn, got, want)
		}
	}
}
