package http

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/crdt"
)

// startPocketBase starts a PocketBase with a contacts collection (name,
// email, age and the autodate fields created and updated).
func startPocketBase(t *testing.T) *apitest.PocketBase {
	t.Helper()
	p := apitest.StartPocketBase(t, apitest.PocketBaseOptions{})
	p.CreateCollection("contacts",
		apitest.Field{"name": "name", "type": "text"},
		apitest.Field{"name": "email", "type": "email"},
		apitest.Field{"name": "age", "type": "number"})
	return p
}

// pbConfig returns the config of the contacts collection of p, logging in
// as its superuser with the password in the returned file.
func pbConfig(t *testing.T, p *apitest.PocketBase, extra string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pb.pw")
	if err := os.WriteFile(pwFile, []byte(p.Password()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := fmt.Sprintf(`
preset: pocketbase
base_url: %s
state: %s
rate: 1000
burst: 100
retries: 2
backoff: 20ms
poll_interval: 30ms
overlap: 1s
reconcile: 150ms
auth:
  login: {identity: %s, password_file: %s}
%s
collections:
  contacts:
    columns: {name: string, email: string, age: int}
`, p.URL, filepath.Join(dir, "state.db"), apitest.PocketBaseEmail, pwFile, extra)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, pwFile
}

// pbWriter writes records as a user of PocketBase does, never twice to one
// record within a millisecond: PocketBase stamps updated in milliseconds,
// and two writes in one would look like one to any poller.
type pbWriter struct {
	p    *apitest.PocketBase
	mu   sync.Mutex
	last map[string]int64 // the time of the last response by record
}

func (w *pbWriter) write(method, id string, body map[string]any) map[string]any {
	w.mu.Lock()
	last := w.last[id]
	w.mu.Unlock()
	for time.Now().UnixMilli() <= last {
		time.Sleep(100 * time.Microsecond)
	}
	var rec map[string]any
	path := "/api/collections/contacts/records"
	if method != "POST" {
		path += "/" + id
	}
	w.p.Do(method, path, body, 200, &rec)
	w.mu.Lock()
	if w.last == nil {
		w.last = map[string]int64{}
	}
	w.last[rec["id"].(string)] = time.Now().UnixMilli()
	w.mu.Unlock()
	return rec
}

func pbContact(name, email string, age int) map[string]any {
	return map[string]any{"name": name, "email": email, "age": age}
}

func TestIntegrationPocketBaseCaptureConcurrent(t *testing.T) {
	p := startPocketBase(t)
	w := &pbWriter{p: p}
	seeds := map[string]bool{}
	for i := range 5 {
		seeds[w.write("POST", "", pbContact("seed", fmt.Sprintf("s%d@x.io", i), i))["id"].(string)] = true
	}
	cfg, _ := pbConfig(t, p, "")
	cfg.Collections["contacts"].PageSize = 7 // several pages per poll
	a := openAdapter(t, cfg)
	ctx := context.Background()
	var snap collector
	cur, err := a.Snapshot(ctx, snap.sink)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(snap.all()); n != 5 {
		t.Fatalf("snapshot: %d rows, want 5", n)
	}
	var c collector
	capture(t, a, cur, &c)

	// Four clients write at once: creates (IDs minted by the server) and
	// updates of their own records, while capture polls.
	var wg sync.WaitGroup
	for wr := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(wr), 1))
			var mine []string
			for i := range 30 {
				if len(mine) == 0 || r.IntN(3) == 0 {
					rec := w.write("POST", "", pbContact("new", fmt.Sprintf("w%d-%d@x.io", wr, i), i))
					mine = append(mine, rec["id"].(string))
					continue
				}
				id := mine[r.IntN(len(mine))]
				w.write("PATCH", id, pbContact(fmt.Sprintf("v%d", i), id+"@x.io", i))
			}
		}()
	}
	wg.Wait()
	server := p.Records("contacts")
	var missing string
	defer func() {
		if t.Failed() {
			t.Log(missing)
		}
	}()
	waitFor(t, "capture to reach the server's state", func() bool {
		latest := c.latest()
		for id, rec := range server {
			if !seeds[id] && !sameRow(latest[crdt.StringKey(id)], rec) {
				missing = fmt.Sprintf("%s: captured %v, server %v", id, latest[crdt.StringKey(id)], rec)
				return false
			}
		}
		return true
	})
	// Nothing doubled: each (record, updated) reported once; the seed
	// records, unchanged, only by the snapshot.
	seen := map[string]bool{}
	for _, ch := range c.all() {
		k := ch.Key.String() + "@" + ch.Committed.String()
		if seen[k] {
			t.Errorf("change %s reported twice: %v", k, ch.Row)
		}
		seen[k] = true
		if ch.Committed.IsZero() {
			t.Errorf("change %s without a commit time", ch.Key)
		}
		if id, _ := cfg.Collections["contacts"].idText(ch.Key); seeds[id] {
			t.Errorf("unchanged seed record %s captured", ch.Key)
		}
	}
	t.Logf("%d records, %d changes captured, requests %v, logins %d", len(server), len(c.all()), a.Stats().Requests, a.Stats().Logins)
}

var pbID = regexp.MustCompile(`^[a-z0-9]{15}$`)

func TestIntegrationPocketBaseApplyEchoDeletes(t *testing.T) {
	p := startPocketBase(t)
	w := &pbWriter{p: p}
	ids := map[string]string{}
	for _, n := range []string{"Ann", "Bob", "Cy"} {
		ids[n] = w.write("POST", "", pbContact(n, strings.ToLower(n)+"@x.io", 30))["id"].(string)
	}
	cfg, _ := pbConfig(t, p, "")
	a := openAdapter(t, cfg)
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	capture(t, a, cur, &c)

	row := func(name, email string, age int64) crdt.Row {
		return crdt.Row{"name": crdt.String(name), "email": crdt.String(email), "age": crdt.Int(age)}
	}
	const eve = "eeeeeeeeeeeeeee" // a record that Lattice knows and the server lacks
	writes := []adapters.Write{
		{Collection: "contacts", NewKey: crdt.StringKey("crm:1"), Row: row("Dee", "dee@x.io", 20)},
		{Collection: "contacts", Key: crdt.StringKey(ids["Ann"]), Row: withID(ids["Ann"], row("Ann B", "ann@x.io", 31))},
		{Collection: "contacts", Key: crdt.StringKey(ids["Bob"])},
		{Collection: "contacts", Key: crdt.StringKey(eve), Row: withID(eve, row("Eve", "eve@x.io", 25))},
	}
	res, err := a.Apply(ctx, writes, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, ok := res.Generated[0]
	if !ok || len(res.Generated) != 1 {
		t.Fatalf("Generated = %v, want one key for write 0", res.Generated)
	}
	genID, _ := cfg.Collections["contacts"].idText(gen)
	if !pbID.MatchString(genID) {
		t.Fatalf("minted ID %q does not fit PocketBase's pattern", genID)
	}
	// Applied again (idempotent): the same record, no second one; the
	// delete of a record already gone is done.
	res2, err := a.Apply(ctx, writes, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Generated[0] != gen {
		t.Fatalf("second apply generated %s, want %s", res2.Generated[0], gen)
	}
	recs := p.Records("contacts")
	if len(recs) != 4 || recs[genID]["name"] != "Dee" || recs[ids["Ann"]]["name"] != "Ann B" || recs[ids["Bob"]] != nil ||
		recs[eve]["name"] != "Eve" {
		t.Fatalf("server holds %v", recs)
	}
	m, err := a.IDMap(ctx, "contacts")
	if err != nil || len(m) != 1 || m[gen] != crdt.StringKey("crm:1") {
		t.Fatalf("IDMap = %v, %v", m, err)
	}

	// A user deletes Cy and writes Ann: both reported (Cy by
	// reconciliation), and none of the adapter's own writes.
	p.Do("DELETE", "/api/collections/contacts/records/"+ids["Cy"], nil, 204, nil)
	w.write("PATCH", ids["Ann"], pbContact("Ann C", "ann@x.io", 32))
	waitFor(t, "the user's delete and update", func() bool {
		l := c.latest()
		r, deleted := l[crdt.StringKey(ids["Cy"])]
		return deleted && r == nil && l[crdt.StringKey(ids["Ann"])]["name"].AsString() == "Ann C"
	})
	for _, ch := range c.all() {
		switch {
		case ch.Key == gen, ch.Key == crdt.StringKey(ids["Bob"]), ch.Key == crdt.StringKey(eve):
			t.Errorf("own write captured: %s %v", ch.Key, ch.Row)
		case ch.Key == crdt.StringKey(ids["Ann"]) && ch.Row["name"].AsString() != "Ann C":
			t.Errorf("own write captured: %s %v", ch.Key, ch.Row)
		}
	}
}

func TestIntegrationPocketBaseRejectedRecordParked(t *testing.T) {
	p := startPocketBase(t)
	ann := (&pbWriter{p: p}).write("POST", "", pbContact("Ann", "ann@x.io", 30))["id"].(string)
	cfg, _ := pbConfig(t, p, "")
	a := openAdapter(t, cfg)
	ctx := context.Background()
	row := func(name, email string) crdt.Row {
		return crdt.Row{"name": crdt.String(name), "email": crdt.String(email), "age": crdt.Int(1)}
	}
	const bad, ok = "badbadbadbadbad", "okokokokokokoko"
	_, err := a.Apply(ctx, []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey(ann), Row: withID(ann, row("Ann 2", "ann@x.io"))},
		{Collection: "contacts", Key: crdt.StringKey(bad), Row: withID(bad, row("Bad", "no-at-sign"))},
		{Collection: "contacts", Key: crdt.StringKey(ok), Row: withID(ok, row("Ok", "ok@x.io"))},
	}, nil)
	re, isRow := adapters.RowErrorOf(err)
	if !isRow || !errors.Is(err, adapters.ErrBadRow) || re.Key != crdt.StringKey(bad) {
		t.Fatalf("Apply: %v, want a bad row naming %s", err, bad)
	}
	// PocketBase's 400 names the field and the rule.
	if !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "Must be a valid email address") {
		t.Fatalf("error %q lacks the server's message", err)
	}
	if errors.Is(err, adapters.ErrUnavailable) {
		t.Fatal("a rejected record must not mark the system unavailable")
	}
	if _, err := a.Apply(ctx, []adapters.Write{
		{Collection: "contacts", Key: crdt.StringKey(ann), Row: withID(ann, row("Ann 2", "ann@x.io"))},
		{Collection: "contacts", Key: crdt.StringKey(ok), Row: withID(ok, row("Ok", "ok@x.io"))},
	}, nil); err != nil {
		t.Fatal(err)
	}
	recs := p.Records("contacts")
	if recs[ann]["name"] != "Ann 2" || recs[ok]["name"] != "Ok" || recs[bad] != nil {
		t.Fatalf("server holds %v", recs)
	}
}

func TestIntegrationPocketBaseServerRestart(t *testing.T) {
	p := startPocketBase(t)
	w := &pbWriter{p: p}
	ann := w.write("POST", "", pbContact("Ann", "ann@x.io", 30))["id"].(string)
	cfg, _ := pbConfig(t, p, "")
	a := openAdapter(t, cfg)
	ctx := context.Background()
	cur, err := a.Snapshot(ctx, (&collector{}).sink)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	_, done := capture(t, a, cur, &c)
	p.Stop()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Capture with the server down returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Capture did not fail with the server down")
	}
	wr := []adapters.Write{{Collection: "contacts", Key: crdt.StringKey(ann),
		Row: crdt.Row{"id": crdt.String(ann), "name": crdt.String("Ann 2"), "email": crdt.String("ann@x.io"), "age": crdt.Int(31)}}}
	if _, err := a.Apply(ctx, wr, nil); !errors.Is(err, adapters.ErrUnavailable) || errors.Is(err, adapters.ErrBadRow) {
		t.Fatalf("Apply with the server down: %v, want ErrUnavailable", err)
	}
	p.Start()
	// The circuit opened while the server was down: writes wait until its
	// probe finds the server back, as the engine's retries do.
	waitFor(t, "the write to land after the restart", func() bool {
		_, err := a.Apply(ctx, wr, nil)
		if err != nil && !errors.Is(err, adapters.ErrUnavailable) {
			t.Fatalf("Apply after the restart: %v", err)
		}
		return err == nil
	})
	u := w.write("POST", "", pbContact("User", "u@x.io", 1))["id"].(string)
	var c2 collector
	capture(t, a, cur, &c2)
	waitFor(t, "the user's record after the restart", func() bool { return c2.latest()[crdt.StringKey(u)] != nil })
	if r, ok := c2.latest()[crdt.StringKey(ann)]; ok {
		t.Errorf("own write captured after the restart: %v", r)
	}
	if st := a.Stats(); st.Requests[0] < 1 || st.Logins != 1 {
		t.Errorf("stats %+v: want connection errors counted and one login (the token outlives a restart)", st)
	}
}

func TestIntegrationPocketBaseTokenRenewed(t *testing.T) {
	p := startPocketBase(t)
	p.SetTokenDuration(10 * time.Second) // PocketBase's least
	cfg, _ := pbConfig(t, p, "")
	a := openAdapter(t, cfg)
	ctx := context.Background()
	cur, err := a.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c collector
	capture(t, a, cur, &c)
	// A token of 10s is renewed 2.5s before it expires: capture's polls
	// never send an expired one.
	start := time.Now()
	waitFor(t, "a renewed token", func() bool { return a.Stats().Logins >= 2 })
	w := (&pbWriter{p: p}).write("POST", "", pbContact("After", "after@x.io", 1))["id"].(string)
	waitFor(t, "a record written after the renewal", func() bool { return c.latest()[crdt.StringKey(w)] != nil })
	st := a.Stats()
	if st.Requests[403] != 0 || st.Requests[401] != 0 {
		t.Errorf("requests %v: a token was refused; want it renewed before it expired", st.Requests)
	}
	t.Logf("renewed after %s, %d logins, requests %v", time.Since(start).Round(100*time.Millisecond), st.Logins, st.Requests)
}

func TestIntegrationPocketBaseReloginAfterRevocation(t *testing.T) {
	p := startPocketBase(t)
	ann := (&pbWriter{p: p}).write("POST", "", pbContact("Ann", "ann@x.io", 30))["id"].(string)
	cfg, pwFile := pbConfig(t, p, "")
	a := openAdapter(t, cfg)
	ctx := context.Background()
	write := func(name string) error {
		_, err := a.Apply(ctx, []adapters.Write{{Collection: "contacts", Key: crdt.StringKey(ann),
			Row: crdt.Row{"id": crdt.String(ann), "name": crdt.String(name), "email": crdt.String("ann@x.io"), "age": crdt.Int(31)}}}, nil)
		return err
	}
	if err := write("Ann 2"); err != nil {
		t.Fatal(err)
	}
	// A new password revokes the token: PocketBase then treats the request
	// as a guest's (403); the adapter logs in again with the password file,
	// which the operator has updated, and sends the request again.
	p.SetPassword("rotated-password-2")
	if err := os.WriteFile(pwFile, []byte("rotated-password-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write("Ann 3"); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Logins != 2 || st.Requests[403] != 1 {
		t.Fatalf("stats %+v: want a 403 and a second login", st)
	}
	if got := p.Records("contacts")[ann]["name"]; got != "Ann 3" {
		t.Fatalf("server holds %v", got)
	}
	// Revoked again, the password file not updated: the login fails, and
	// the system is unavailable (the writes wait), with a hint.
	p.SetPassword("rotated-password-3")
	err := write("Ann 4")
	if !errors.Is(err, adapters.ErrUnavailable) || errors.Is(err, adapters.ErrBadRow) {
		t.Fatalf("Apply with a stale password: %v, want ErrUnavailable", err)
	}
	if h := errors.FlattenHints(err); !strings.Contains(h, "auth.login.password_file") {
		t.Fatalf("hint %q does not name auth.login.password_file", h)
	}
	// The operator fixes the file: the next write logs in.
	if err := os.WriteFile(pwFile, []byte("rotated-password-3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := write("Ann 5"); err != nil {
		t.Fatal(err)
	}
	if got := p.Records("contacts")[ann]["name"]; got != "Ann 5" {
		t.Fatalf("server holds %v", got)
	}
}
