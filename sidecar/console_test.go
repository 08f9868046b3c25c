package sidecar

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

const consoleToken = "console-test-token-0123456789"

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so that tests see where each answer points.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, a *Agent) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: "http://" + a.APIAddr(), c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, form url.Values, header ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, string(out)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) login(token string) *http.Response {
	resp, _ := b.do("POST", "/ui/login", url.Values{"token": {token}, "next": {"/ui/parked"}})
	return resp
}

// The console asks for the token, keeps a session in an HttpOnly,
// SameSite=Strict cookie, sends the security headers and serves every page.
func TestConsoleLoginAndPages(t *testing.T) {
	a := startAgent(t, func(c *Config) { customersConfig(c); c.API.Token = consoleToken })
	b := newBrowser(t, a)

	resp, _ := b.do("GET", "/ui/", nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/ui/login") {
		t.Fatalf("GET /ui/ without a session = %d %s, want a redirect to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := b.do("GET", "/ui/login", nil)
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
	} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
	if !strings.Contains(body, `name="token"`) {
		t.Fatalf("login page lacks the token field:\n%s", body)
	}
	if resp := b.login("wrong-token-wrong-token"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", resp.StatusCode)
	}
	resp = b.login(consoleToken)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/parked" {
		t.Fatalf("login = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Path != "/ui" || strings.Contains(ck[0].Value, consoleToken) {
		t.Fatalf("session cookie = %+v", ck)
	}

	c, _ := NewClient(a.APIAddr(), consoleToken, "")
	if _, err := c.Put(context.Background(), "customers", "7", map[string]any{"name": "<script>alert(1)</script>", "tags": []string{"vip"}}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/ui/":                      `id="members"`,
		"/ui/node":                  "This node has no adapter",
		"/ui/parked":                `id="none-parked"`,
		"/ui/drift":                 `id="drift-unavailable"`,
		"/ui/conflicts":             `id="no-conflicts"`,
		"/ui/collections":           `<b>orset</b>`,
		"/ui/collections/customers": `href="/ui/records/customers/7"`,
		"/ui/records/customers/7":   `&#34;&lt;script&gt;alert(1)&lt;/script&gt;&#34;`,
		"/ui/static/console.css":    "--accent",
	} {
		resp, body := b.do("GET", path, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s = %d, lacks %q:\n%.2000s", path, resp.StatusCode, want, body)
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("GET %s shows a value unescaped", path)
		}
	}
	if resp, _ := b.do("GET", "/ui/records/customers/8", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing record page = %d, want 404", resp.StatusCode)
	}

	// Actions need the session's CSRF token and the console's origin.
	_, page := b.do("GET", "/ui/parked", nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	if resp, _ := b.do("POST", "/ui/parked/retry", url.Values{"all": {"1"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry without CSRF = %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/parked/retry", url.Values{"all": {"1"}, "csrf": {m[1]}}, "Origin", "http://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry from another origin = %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/parked/retry", url.Values{"all": {"1"}, "csrf": {m[1]}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("retry with CSRF = %d, want 303", resp.StatusCode)
	}
	if resp, _ := b.do("POST", "/ui/parked/retry", url.Values{"all": {"1"}, "csrf": {m[1]}, "x": {strings.Repeat("a", 20000)}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized form = %d, want 400", resp.StatusCode)
	}

	// Logging out ends the session.
	if resp, _ := b.do("POST", "/ui/logout", url.Values{"csrf": {m[1]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout = %d", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/node", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout GET /ui/node = %d, want a redirect to the login", resp.StatusCode)
	}
	// A session cookie from another browser is not a token for the API.
	if got := do(t, a, "GET", "/v1/status", "", ""); got.code != http.StatusUnauthorized {
		t.Errorf("API without token = %d", got.code)
	}
}

// Without a token the console opens without a login, and still wants its
// CSRF token for actions.
func TestConsoleWithoutToken(t *testing.T) {
	a := startAgent(t, customersConfig)
	b := newBrowser(t, a)
	resp, body := b.do("GET", "/ui/", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="members"`) || strings.Contains(body, "Log out") {
		t.Fatalf("GET /ui/ = %d\n%.1500s", resp.StatusCode, body)
	}
	if resp, _ := b.do("POST", "/ui/parked/retry", url.Values{"all": {"1"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry without CSRF = %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.do("GET", "/ui/", nil, "Host", "evil.example"); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("rebound host = %d, want 421", resp.StatusCode)
	}
}

// The Parked page shows a refused record with the system's error; Skip
// (through its confirmation page) and Retry work as forms.
func TestConsoleParkedActions(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "sys", nil, time.Millisecond)
	n.exec(t, `CREATE TRIGGER refuse BEFORE INSERT ON customers WHEN NEW.name LIKE 'bad%'
		BEGIN SELECT RAISE(ABORT, 'names starting with bad are refused'); END`)
	c, _ := NewClient(n.a.APIAddr(), "", "")
	for i, name := range []string{"bad1", "bad2"} {
		if _, err := c.Put(context.Background(), "customers", itoa(i+1), map[string]any{"name": name}); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, n.a)
	var page string
	waitFor(t, 15*time.Second, "two parked rows on the page", func() bool {
		_, page = b.do("GET", "/ui/parked", nil)
		return strings.Count(page, `class="parked-row"`) == 2
	})
	if !strings.Contains(page, "names starting with bad are refused") || !strings.Contains(page, `name=&#34;bad1&#34;`) {
		t.Fatalf("parked page lacks the error or the row:\n%s", page)
	}
	csrf := csrfRE.FindStringSubmatch(page)[1]
	skipLink := regexp.MustCompile(`href="(/ui/parked/skip\?collection=customers&amp;key=2&amp;seq=\d+)"`).FindStringSubmatch(page)
	if skipLink == nil {
		t.Fatalf("no skip link for customers/2:\n%s", page)
	}
	resp, confirm := b.do("GET", strings.ReplaceAll(skipLink[1], "&amp;", "&"), nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(confirm, "Nothing is lost") {
		t.Fatalf("skip confirmation = %d\n%s", resp.StatusCode, confirm)
	}
	seq := regexp.MustCompile(`name="seq" value="(\d+)"`).FindStringSubmatch(confirm)[1]
	if resp, _ := b.do("POST", "/ui/parked/skip", url.Values{"csrf": {csrf}, "collection": {"customers"}, "key": {"2"}, "seq": {seq + "0"}}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("skip with another seq = %d, want 409", resp.StatusCode)
	}
	resp, _ = b.do("POST", "/ui/parked/skip", url.Values{"csrf": {csrf}, "collection": {"customers"}, "key": {"2"}, "seq": {seq}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/parked?done=skipped" {
		t.Fatalf("skip = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	n.exec(t, `DROP TRIGGER refuse`)
	resp, _ = b.do("POST", "/ui/parked/retry", url.Values{"csrf": {csrf}, "collection": {"customers"}, "key": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry = %d", resp.StatusCode)
	}
	waitFor(t, 15*time.Second, "row 1 applied", func() bool { return n.row(t, 1) == "bad1|||" })
	if got := n.row(t, 2); got != "<none>" {
		t.Fatalf("row 2 = %q, want none after the skip", got)
	}
	_, page = b.do("GET", "/ui/parked?done=skipped", nil)
	if !strings.Contains(page, `id="none-parked"`) || !strings.Contains(page, "The record was skipped") {
		t.Fatalf("parked page after the actions:\n%s", page)
	}
}

// api.no_console turns the console off; the JSON API stays.
func TestConsoleOff(t *testing.T) {
	a := startAgent(t, func(c *Config) { customersConfig(c); c.API.NoConsole = true })
	if got := do(t, a, "GET", "/ui/", "", ""); got.code != http.StatusNotFound || !strings.Contains(got.body, "no route") {
		t.Fatalf("GET /ui/ with no_console = %d %s, want the API's 404", got.code, got.body)
	}
	if got := do(t, a, "GET", "/v1/status", "", ""); got.code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d", got.code)
	}
}

// The drift page runs a report-only verification pass and lists what it
// found; the page and this node's page then show the last pass.
func TestConsoleDriftPage(t *testing.T) {
	_, b := driftPair(t, func(c *Config) { c.Verify.Disabled = true })
	br := newBrowser(t, b.a)
	_, page := br.do("GET", "/ui/drift", nil)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `id="verify-now"`) {
		t.Fatalf("drift page lacks the verify button:\n%s", page)
	}
	resp, page := br.do("POST", "/ui/drift/verify", url.Values{"csrf": {m[1]}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("verify now = %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`<b>3</b> drift records`, `href="/ui/records/customers/1"`, "differs", "&#34;drifted&#34;",
		"missing_in_system", "not_in_merged_state", `id="drift-records"`} {
		if !strings.Contains(page, want) {
			t.Errorf("verify result lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("the result of an action reloads itself")
	}
	if got := b.customers(t); got != "1=Acme|drifted| 3=Gamma|v1| 99=Stray|x|" {
		t.Fatalf("a report-only pass from the console changed the database: %s", got)
	}
	_, page = br.do("GET", "/ui/node", nil)
	if !strings.Contains(page, `id="verify-row"`) || !strings.Contains(page, "3 drift records") {
		t.Errorf("node page lacks the last pass:\n%s", page)
	}
}

// The conflict log page lists a conflict with both values and the rule,
// filters it, and resolves it with the lost value from the record's page.
func TestConsoleConflictsPage(t *testing.T) {
	a := startAgent(t, customersConfig)
	if r := do(t, a, "PUT", "/v1/records/customers/1", "", `{"name": "Ann"}`); r.code != 200 {
		t.Fatalf("PUT: %d %s", r.code, r.body)
	}
	base, err := a.Store().Get("customers", crdt.IntKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, a, "PATCH", "/v1/records/customers/1", "", `{"name": "Bob"}`); r.code != 200 {
		t.Fatalf("PATCH: %d %s", r.code, r.body)
	}
	// A peer that saw only Ann writes Carl, a little later.
	col, _ := a.schema.Collection("customers")
	at := a.Store().Clock().Now()
	at.Wall += 1e6
	d, err := crdt.Diff(col, base, crdt.Row{"name": crdt.String("Carl")}, crdt.Origin{Stamp: crdt.Stamp{TS: at, Replica: 99}})
	if err != nil {
		t.Fatal(err)
	}
	remote := &crdt.Delta{}
	remote.Add("customers", crdt.IntKey(1), d)
	if _, err := (replica{a}).Merge(remote); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, a)
	_, page := b.do("GET", "/ui/conflicts", nil)
	for _, want := range []string{`class="conflict"`, `href="/ui/records/customers/1"`, "&#34;Carl&#34;", "&#34;Bob&#34;", "<b>lww</b>", "keep the lost value"} {
		if !strings.Contains(page, want) {
			t.Fatalf("conflicts page lacks %q:\n%s", want, page)
		}
	}
	if _, page := b.do("GET", "/ui/conflicts?collection=customers&field=status", nil); !strings.Contains(page, `id="no-conflicts"`) {
		t.Fatalf("a filter that matches nothing still lists:\n%s", page)
	}
	_, rec := b.do("GET", "/ui/records/customers/1", nil)
	if !strings.Contains(rec, `id="record-conflicts"`) {
		t.Fatalf("record page lacks its conflicts:\n%s", rec)
	}
	id := regexp.MustCompile(`name="id" value="(\d+)"`).FindStringSubmatch(rec)[1]
	csrf := csrfRE.FindStringSubmatch(rec)[1]
	resp, _ := b.do("POST", "/ui/conflicts/resolve", url.Values{"csrf": {csrf}, "id": {id}, "use": {"loser"}, "back": {"/ui/records/customers/1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/records/customers/1" {
		t.Fatalf("resolve = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if r := do(t, a, "GET", "/v1/records/customers/1", "", ""); !strings.Contains(r.body, `"name":"Bob"`) {
		t.Fatalf("after resolving with the lost value: %s", r.body)
	}
	_, page = b.do("GET", "/ui/conflicts", nil)
	if !strings.Contains(page, "resolved</span> by n1") {
		t.Fatalf("conflicts page after resolve:\n%s", page)
	}
}
