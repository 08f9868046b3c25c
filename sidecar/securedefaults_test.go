package sidecar

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
)

// An API that other machines may reach is refused without a token, unless
// api.insecure_no_token says so (and then the agent warns); loopback needs
// no token.
func TestAPIWithoutATokenOnANetworkAddressIsRefused(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "lattice.example.com:0"} {
		cfg := Config{Node: "n", Data: filepath.Join(t.TempDir(), "d"), Bind: "127.0.0.1:0", API: APIConfig{Addr: addr}}
		err := cfg.Validate()
		if !errors.Is(err, ErrInsecureAPI) || !strings.Contains(err.Error(), "config api.addr") ||
			!strings.Contains(errors.FlattenHints(err), "api.insecure_no_token: true") || !strings.Contains(errors.FlattenHints(err), "api.token_file") {
			t.Errorf("api.addr %s without a token: Validate = %v (hint %q), want ErrInsecureAPI naming api.addr with a hint", addr, err, errors.FlattenHints(err))
		}
	}
	for _, api := range []APIConfig{
		{Addr: "127.0.0.1:0"}, {Addr: "localhost:0"}, {Addr: "[::1]:0"}, {Addr: "127.0.0.2:7070"}, {Addr: "off"},
		{Addr: "0.0.0.0:0", Token: "0123456789abcdef"}, {Addr: "0.0.0.0:0", InsecureNoToken: true},
	} {
		cfg := Config{Node: "n", Data: filepath.Join(t.TempDir(), "d"), Bind: "127.0.0.1:0", API: api}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%+v: %v", api, err)
		}
	}

	// Started for real: it serves, and says it is open.
	var log syncBuffer
	cfg := Config{Node: "open", Data: filepath.Join(t.TempDir(), "d"), Bind: "127.0.0.1:0",
		API: APIConfig{Addr: "0.0.0.0:0", InsecureNoToken: true}}
	a, err := Start(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	}()
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "without a token") {
		t.Errorf("no warning about the open API:\n%s", log.String())
	}
}

// One minimum length (16) and one character rule for a token, however it
// is given: inline in the config or in a token file (LATTICE_TOKEN and the
// client's --token-file are held to the same by cmd/lattice's tests).
func TestTokenRulesAreTheSameEverywhere(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		token string
		want  string // "" accepts
	}{
		{"short", "fifteen-chars-x", "shorter than 16 characters"},
		{"16", "sixteen-chars-xx", ""},
		{"space inside", "sixteen chars xx", "holds a space"},
		{"two lines", "first-line-token\nsecond-line-token", "holds a space"},
		{"non-ascii", "sixteen-chärs-xx", "non-ASCII"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inline := Config{Node: "n", Data: "/tmp/x", API: APIConfig{Token: tc.token}}
			fromFile := APIConfig{TokenFile: file(tc.name, tc.token+"\n")}
			_, fileErr := fromFile.ReadToken()
			for _, r := range []struct {
				how string
				err error
			}{{"config api.token", inline.Validate()}, {"config api.token_file", fileErr}, {"LATTICE_TOKEN", CheckToken(tc.token, "LATTICE_TOKEN")}} {
				switch {
				case tc.want == "" && r.err != nil:
					t.Errorf("%s: %v", r.how, r.err)
				case tc.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.want) || !strings.Contains(r.err.Error(), r.how)):
					t.Errorf("%s: %v, want an error naming %s that says %q", r.how, r.err, r.how, tc.want)
				case tc.want != "" && !strings.Contains(errors.FlattenHints(r.err), "/dev/urandom"):
					t.Errorf("%s: hint %q does not say how to make a token", r.how, errors.FlattenHints(r.err))
				}
			}
		})
	}
}

// The Bearer scheme is matched without regard to case, as RFC 7235 says;
// the token itself is exact.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	const token = "case-test-token-0123456789"
	a := startAgent(t, func(c *Config) { c.API.Token = token })
	for header, want := range map[string]int{
		"Bearer " + token:                  200,
		"bearer " + token:                  200,
		"BEARER " + token:                  200,
		"bEaReR   " + token:                200,
		"Bearer " + strings.ToUpper(token): 401,
		"Bearer" + token:                   401,
		"Basic " + token:                   401,
		"Bearer " + token + "x":            401,
		"Bearer":                           401,
		"":                                 401,
		"Token " + token:                   401,
		"Bearer " + token[:len(token)-1]:   401,
		// Leading white space is not part of a field value (RFC 9110).
		" Bearer " + token:                   200,
		"Bearer\t" + token:                   401,
		"Bearer " + token + " " + token[:4]:  401,
		"Bearer  " + token + "\x00":          401,
		"bearer " + strings.TrimSpace(token): 200,
	} {
		req, err := http.NewRequest("GET", "http://"+a.APIAddr()+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header["Authorization"] = []string{header}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// net/http refuses to send a header with a NUL.
			if strings.ContainsRune(header, 0) {
				continue
			}
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Authorization %q: %d, want %d", header, resp.StatusCode, want)
		}
	}
}

// A config file that holds a secret inline (api.token, a DSN with a
// password) is a secret file: refused while others may open it, with the
// same chmod hint as the key, token and DSN files.
func TestConfigWithAnInlineSecretMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, key string }{
		{"token", "node: a\ndata: /tmp/a\napi:\n  token: 0123456789abcdef01\n", "api.token"},
		{"dsn", "node: a\ndata: /tmp/a\nadapter:\n  kind: postgres\n  dsn: postgres://u:pw@db/x\n", "adapter.dsn"},
	} {
		p := filepath.Join(dir, tc.name+".yaml")
		if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig(p)
		if err == nil || !strings.Contains(err.Error(), "config "+tc.key) || !strings.Contains(err.Error(), "open to other users") ||
			!strings.Contains(errors.FlattenHints(err), "chmod 600 "+p) {
			t.Errorf("%s: LoadConfig of a 0644 file = %v (hints %q)", tc.name, err, errors.FlattenHints(err))
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadConfig(p); err != nil {
			t.Errorf("%s: LoadConfig of a 0600 file: %v", tc.name, err)
		}
	}
	// Without a secret inside, a config may be readable by all.
	p := filepath.Join(dir, "plain.yaml")
	if err := os.WriteFile(p, []byte("node: a\ndata: /tmp/a\napi:\n  token_file: /etc/lattice/api.token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(p); err != nil {
		t.Errorf("a config without secrets: %v", err)
	}
}
