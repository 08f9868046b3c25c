package gossip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
)

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		c := DefaultConfig()
		c.Name = "crm"
		c.Keys = [][]byte{make([]byte, 32)}
		return c
	}
	for _, tc := range []struct {
		name    string
		mod     func(*Config)
		wantKey string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no name", func(c *Config) { c.Name = "" }, "name"},
		{"name with space", func(c *Config) { c.Name = "a b" }, "name"},
		{"bad bind", func(c *Config) { c.BindAddr = "nope" }, "bind"},
		{"bind host not ip", func(c *Config) { c.BindAddr = "localhost:7946" }, "bind"},
		{"advertise not ip", func(c *Config) { c.AdvertiseAddr = "example.com:7946" }, "advertise"},
		{"advertise ok", func(c *Config) { c.AdvertiseAddr = "10.0.0.5:7946" }, ""},
		{"short key", func(c *Config) { c.Keys = [][]byte{make([]byte, 7)} }, "key_file"},
		{"aes-256 key", func(c *Config) { c.Keys = [][]byte{make([]byte, 32)} }, ""},
		{"cleartext on every address", func(c *Config) { c.Keys = nil }, "key_file"},
		{"cleartext on an interface", func(c *Config) { c.Keys, c.BindAddr = nil, "10.0.0.5:7946" }, "key_file"},
		{"cleartext on every v6 address", func(c *Config) { c.Keys, c.BindAddr = nil, "[::]:7946" }, "key_file"},
		{"cleartext on loopback", func(c *Config) { c.Keys, c.BindAddr = nil, "127.0.0.1:7946" }, ""},
		{"cleartext on v6 loopback", func(c *Config) { c.Keys, c.BindAddr = nil, "[::1]:7946" }, ""},
		{"cleartext said insecure", func(c *Config) { c.Keys, c.Insecure = nil, true }, ""},
		{"long label", func(c *Config) { c.Label = strings.Repeat("l", 256) }, "cluster"},
		{"long api", func(c *Config) { c.APIAddr = strings.Repeat("a", 200) }, "api.addr"},
		{"negative fanout", func(c *Config) { c.Fanout = -1 }, "fanout"},
		{"zero fanout takes the default", func(c *Config) { c.Fanout = 0 }, ""},
		{"negative interval", func(c *Config) { c.SyncInterval = -time.Second }, "sync_interval"},
		{"no anti-entropy", func(c *Config) { c.SyncInterval = 0 }, ""},
		{"tiny messages", func(c *Config) { c.MaxMessageBytes = 1024 }, "max_message_bytes"},
		{"batch over half a message", func(c *Config) { c.MaxMessageBytes = 1 << 20; c.BatchBytes = 1 << 20 }, "batch_bytes"},
		{"long batch delay", func(c *Config) { c.BatchDelay = time.Minute }, "batch_delay"},
		{"negative retries", func(c *Config) { c.JoinRetries = -1 }, "join_retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.mod(&c)
			err := c.Validate()
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				if c.Fanout <= 0 || c.QueueLen <= 0 || c.Logger == nil || c.Schema == nil || c.IOTimeout <= 0 {
					t.Fatalf("defaults not filled: %+v", c)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "gossip config "+tc.wantKey+":") {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.wantKey)
			}
		})
	}
}

// The refusal of a cleartext network bind says how to make a key.
func TestCleartextRefusalSaysHowToMakeAKey(t *testing.T) {
	c := DefaultConfig()
	c.Name = "crm"
	err := c.Validate()
	if !errors.Is(err, ErrInsecure) {
		t.Fatalf("Validate = %v, want ErrInsecure", err)
	}
	if h := errors.FlattenHints(err); !strings.Contains(h, "lattice keygen") || !strings.Contains(h, "insecure: true") {
		t.Fatalf("hint %q does not say how to make a key or how to opt out", h)
	}
}

func TestLoadKeyFile(t *testing.T) {
	k1, k2 := mustKey(t), make([]byte, 16)
	for _, tc := range []struct {
		name    string
		content string
		want    int
		wantErr string
	}{
		{"one key", EncodeKey(k1) + "\n", 1, ""},
		{"primary and secondary with comments", "# rotation in progress\n" + EncodeKey(k1) + "\n\n  " + EncodeKey(k2) + "  \n", 2, ""},
		{"empty", "# nothing\n", 0, "holds no key"},
		{"not base64", "not base64!\n", 0, "line 1: not base64"},
		{"wrong size", EncodeKey(make([]byte, 20)) + "\n", 0, "line 1: key of 20 bytes"},
		{"duplicate", EncodeKey(k1) + "\n" + EncodeKey(k1) + "\n", 0, "line 2: same key as key 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gossip.key")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			keys, err := LoadKeyFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), EncodeKey(k1)) {
					t.Fatal("the error shows the key")
				}
				return
			}
			if err != nil || len(keys) != tc.want {
				t.Fatalf("LoadKeyFile = %d keys, %v; want %d", len(keys), err, tc.want)
			}
			if string(keys[0]) != string(k1) {
				t.Fatal("first key is not the primary")
			}
		})
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil || errors.FlattenHints(err) == "" {
		t.Fatalf("missing file: %v, want an error with a hint", err)
	}
}

func TestGenerateKey(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	if len(a) != 32 || string(a) == string(b) {
		t.Fatalf("keys %x %x", a, b)
	}
}
