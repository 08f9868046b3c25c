package http

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

func TestConfigPocketBasePreset(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
preset: pocketbase
base_url: http://127.0.0.1:8090
auth:
  login: {identity: admin@example.com, password_file: /etc/lattice/pb.pw}
collections:
  contacts:
    columns: {name: string, age: int}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collections["contacts"]
	l := cfg.Auth.Login
	if c.Path != "/api/collections/contacts/records" || c.Records != "items" || c.idKind != crdt.KindString || !c.clientIDs ||
		c.IDLength != 15 || c.Updated != "updated" || c.stampUpdated || c.SinceParam != "filter" ||
		c.SinceValue != "updated >= '{since}'" || c.SortValue != "updated,id" || c.OrderParam != "" ||
		c.PageParam != "page" || c.LimitParam != "perPage" || c.Update.Method != "PATCH" || c.Update.Path != c.Path+"/{id}" ||
		l.Path != "/api/collections/_superusers/auth-with-password" || l.IdentityField != "identity" || l.Format != "{token}" ||
		cfg.Auth.Header != "Authorization" {
		t.Fatalf("preset not filled: %+v %+v", c, l)
	}
	a := &Adapter{cfg: cfg}
	got := a.listURL(c, true, time.Date(2026, 12, 3, 13, 41, 9, 16e6, time.UTC).UnixMilli(), 2)
	want := "http://127.0.0.1:8090/api/collections/contacts/records?filter=updated+%3E%3D+%272026-12-03+13%3A41%3A09.016Z%27" +
		"&page=2&perPage=100&skipTotal=1&sort=updated%2Cid"
	if got != want {
		t.Fatalf("list URL %s, want %s", got, want)
	}
	u, err := c.parseUpdated(json.RawMessage(`"2026-12-03 13:41:09.016Z"`))
	if err != nil || u != time.Date(2026, 12, 3, 13, 41, 9, 16e6, time.UTC).UnixMilli() {
		t.Fatalf("parseUpdated = %d, %v", u, err)
	}
	if _, err := c.parseUpdated(json.RawMessage(`"2026-12-03T13:41:09Z"`)); err == nil {
		t.Fatal("parseUpdated took another format")
	}
	// PocketBase's default ID pattern, [a-z0-9]{15}.
	re := regexp.MustCompile(`^[a-z0-9]{15}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := c.mintID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("minted %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}

func TestConfigPocketBaseKeys(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
base_url: http://x
auth: {header: X-API-Key, header_file: /k}
collections:
  c:
    updated: modified
    updated_format: "layout:02/01/2006 15:04:05.000"
    since_param: q
    since_value: "{updated}>{since}"
    query: {fields: "id,modified,a"}
    paging: offset
    offset_param: o
    limit_param: l
    id_kind: string
    client_ids: true
    id_length: 12
    id_alphabet: ABC
    columns: {a: int}
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Collections["c"]
	a := &Adapter{cfg: cfg}
	got := a.listURL(c, true, time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC).UnixMilli(), 1)
	want := "http://x/c?fields=id%2Cmodified%2Ca&l=100&o=0&q=modified%3E02%2F01%2F2026+03%3A04%3A05.006"
	if got != want {
		t.Fatalf("list URL %s, want %s", got, want)
	}
	if id := c.mintID(); !regexp.MustCompile(`^[ABC]{12}$`).MatchString(id) {
		t.Fatalf("minted %q", id)
	}
	// The defaults: 20 hex characters, as before the keys existed.
	cfg, err = ParseConfig([]byte("base_url: http://x\npreset: json-server\ncollections: {c: {columns: {a: int}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if id := cfg.Collections["c"].mintID(); !regexp.MustCompile(`^[0-9a-f]{20}$`).MatchString(id) {
		t.Fatalf("minted %q", id)
	}
}

func TestConfigNewKeyErrors(t *testing.T) {
	const pb = "base_url: http://x\npreset: pocketbase\n"
	const cols = "collections: {c: {columns: {a: int}}}\n"
	for _, tc := range []struct{ yaml, key string }{
		{pb + "collections: {c: {since_value: updated, columns: {a: int}}}", "config collections.c.since_value"},
		{pb + "collections: {c: {id_length: 4, columns: {a: int}}}", "config collections.c.id_length"},
		{pb + "collections: {c: {id_alphabet: a, columns: {a: int}}}", "config collections.c.id_alphabet"},
		{pb + "collections: {c: {id_alphabet: abca, columns: {a: int}}}", "config collections.c.id_alphabet"},
		{pb + "collections: {c: {updated_format: 'layout:15:04', columns: {a: int}}}", "config collections.c.updated_format"},
		{pb + "collections: {c: {updated_format: iso, columns: {a: int}}}", "config collections.c.updated_format"},
		{pb + "auth: {bearer_file: /t, header_file: /h}\n" + cols, "config auth"},
		{pb + "auth: {bearer_file: /t, login: {identity: a, password_file: /p}}\n" + cols, "config auth"},
		{pb + "auth: {header: 'X Key', header_file: /h}\n" + cols, "config auth.header"},
		{pb + "auth: {header: X-Key, user: u, password_file: /p}\n" + cols, "config auth.header"},
		{pb + "auth: {login: {password_file: /p}}\n" + cols, "config auth.login.identity"},
		{pb + "auth: {login: {identity: a}}\n" + cols, "config auth.login.password_file"},
		{pb + "auth: {login: {identity: a, password_file: /p, format: 'Token'}}\n" + cols, "config auth.login.format"},
		{pb + "auth: {login: {identity: a, password_file: /p, path: login}}\n" + cols, "config auth.login.path"},
		{"base_url: http://x\npreset: json-server\nauth: {login: {identity: a, password_file: /p}}\n" + cols, "config auth.login.path"},
		{pb + "auth: {login: {identity: a, password_file: /p, tokn: t}}\n" + cols, "tokn"},
	} {
		_, err := ParseConfig([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.key)
		}
	}
}

func TestConfigHeaderFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("k-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got atomic.Value
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		got.Store(r.Header.Get("X-Api-Key") + "|" + r.Header.Get("Authorization"))
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(srv.Close)
	cfg, err := ParseConfig(fmt.Appendf(nil, `
base_url: %s
preset: json-server
state: %s
auth: {header: X-API-Key, header_file: %s}
collections: {c: {columns: {a: int}}}
`, srv.URL, filepath.Join(t.TempDir(), "s.db"), p))
	if err != nil {
		t.Fatal(err)
	}
	a := openAdapter(t, cfg)
	if _, err := a.Head(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "k-123|" {
		t.Fatalf("headers %q, want the key in X-API-Key only", got.Load())
	}
}

// fakeLogin is an API with a login: tokens are unsigned JWTs whose exp is
// life after the login, and revoked ones are refused with 401.
type fakeLogin struct {
	clk     *offsetClock
	life    time.Duration
	logins  atomic.Int64
	refuse  atomic.Bool // refuse every token, fresh or not
	revoked atomic.Value
	used    atomic.Value
}

func (f *fakeLogin) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	if r.URL.Path == "/login" {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if body["user"] != "sync" || body["pw"] != "s3cret" {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"message":"Failed to authenticate."}`))
			return
		}
		n := f.logins.Add(1)
		claims := fmt.Sprintf(`{"exp":%d,"n":%d}`, f.clk.Now().Add(f.life).Unix(), n)
		tok := "e30." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".sig"
		_, _ = fmt.Fprintf(w, `{"data":{"token":%q}}`, tok)
		return
	}
	h := r.Header.Get("Authorization")
	f.used.Store(h)
	if f.refuse.Load() || h == f.revoked.Load() || !strings.HasPrefix(h, "Token e30.") {
		w.WriteHeader(401)
		return
	}
	_, _ = w.Write([]byte("[]"))
}

// offsetClock is the real clock moved forward by Advance; its timers are
// real.
type offsetClock struct {
	clock.Real
	off atomic.Int64
}

func (c *offsetClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

func TestLoginRenewsAndRetries(t *testing.T) {
	clk := &offsetClock{}
	f := &fakeLogin{clk: clk, life: time.Hour}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(fmt.Appendf(nil, `
base_url: %s
preset: json-server
retries: 1
backoff: 1ms
auth:
  login: {path: /login, identity: sync, password_file: %s, identity_field: user, password_field: pw, token_field: data.token, format: "Token {token}"}
collections: {c: {columns: {a: int}}}
`, srv.URL, pw))
	if err != nil {
		t.Fatal(err)
	}
	cfg.State = filepath.Join(t.TempDir(), "s.db")
	a, err := Open(context.Background(), cfg, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx := context.Background()
	get := func() error {
		_, err := a.c.do(ctx, "GET", srv.URL+"/c", nil)
		return err
	}
	for range 3 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.logins.Load(); n != 1 {
		t.Fatalf("%d logins, want one for three requests", n)
	}
	// A minute before expiry the token is renewed.
	clk.Advance(58 * time.Minute)
	_ = get()
	if n := f.logins.Load(); n != 1 {
		t.Fatalf("%d logins 2 minutes before expiry, want 1", n)
	}
	clk.Advance(time.Minute + time.Second)
	if err := get(); err != nil || f.logins.Load() != 2 {
		t.Fatalf("%v, %d logins 59s before expiry, want 2", err, f.logins.Load())
	}
	// A revoked token: one login more, and the request sent again.
	f.revoked.Store(f.used.Load())
	if err := get(); err != nil || f.logins.Load() != 3 {
		t.Fatalf("%v, %d logins after a revocation, want 3", err, f.logins.Load())
	}
	// A fresh token refused: unavailable, with a hint.
	f.refuse.Store(true)
	err = get()
	if !errors.Is(err, adapters.ErrUnavailable) || !strings.Contains(errors.FlattenHints(err), "fresh login") || f.logins.Load() != 4 {
		t.Fatalf("%v, %d logins with every token refused, want ErrUnavailable after one login", err, f.logins.Load())
	}
	// A refused login: unavailable, the hint names the password file.
	f.refuse.Store(false)
	if err := os.WriteFile(pw, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = get()
	if !errors.Is(err, adapters.ErrUnavailable) || !strings.Contains(errors.FlattenHints(err), "auth.login.password_file") {
		t.Fatalf("%v, want ErrUnavailable naming the password file", err)
	}
	if a.Stats().Logins != 4 {
		t.Fatalf("Stats.Logins = %d, want 4", a.Stats().Logins)
	}
}

func TestJWTExpiry(t *testing.T) {
	enc := func(s string) string { return "h." + base64.RawURLEncoding.EncodeToString([]byte(s)) + ".s" }
	if exp, ok := jwtExpiry(enc(`{"exp":1796391652,"id":"x"}`)); !ok || exp.Unix() != 1796391652 {
		t.Fatalf("exp %v %v", exp, ok)
	}
	for _, tok := range []string{"opaque", enc(`{"id":"x"}`), enc(`{"exp":"soon"}`), "a.!!.c", enc(`{"exp":0}`)} {
		if _, ok := jwtExpiry(tok); ok {
			t.Errorf("jwtExpiry(%q) found an expiry", tok)
		}
	}
}
