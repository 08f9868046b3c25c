package http

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/sidecar"
)

// PocketBase sends the webhooks itself, from the shipped pb_hooks files
// (webhooks/pocketbase): with an hour between polls and between
// reconciliations, a record created, updated and deleted in PocketBase
// reaches the other node's SQLite table within moments, through the
// sidecar's POST /v1/webhooks.
func TestIntegrationWebhookPocketBase(t *testing.T) {
	hooks, err := filepath.Abs(filepath.Join("webhooks", "pocketbase"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secret := secretFile(t, 0o600)
	// The sidecar's API address, chosen before PocketBase starts, since
	// PocketBase reads where to send from its environment.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := l.Addr().String()
	_ = l.Close()
	t.Setenv("LATTICE_WEBHOOK_URL", "http://"+apiAddr+"/v1/webhooks")
	t.Setenv("LATTICE_WEBHOOK_SECRET_FILE", secret)
	t.Setenv("LATTICE_WEBHOOK_COLLECTIONS", "contacts")
	pb := apitest.StartPocketBase(t, apitest.PocketBaseOptions{HooksDir: hooks})
	pb.CreateCollection("contacts", apitest.Field{"name": "name", "type": "text"}, apitest.Field{"name": "email", "type": "text"})
	// Made before the sidecar listens: its webhook fails, and the
	// snapshot takes the record.
	pb.Do("POST", "/api/collections/contacts/records", map[string]any{"id": "aaaaaaaaaaaaaaa", "name": "Ann", "email": "ann@x"}, 200, nil)

	pwFile := writeSecret(t, apitest.PocketBasePassword)
	apiCfg := filepath.Join(dir, "crm-api.yaml")
	y := fmt.Sprintf(`preset: pocketbase
base_url: %s
auth: {login: {identity: %s, password_file: %s}}
rate: 50
burst: 5
poll_interval: 1h
reconcile: 1h
webhooks: {secret_file: %s}
collections:
  contacts:
    columns: {name: string, email: string}
`, pb.URL, apitest.PocketBaseEmail, pwFile, secret)
	if err := os.WriteFile(apiCfg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(apiCfg)
	if err != nil {
		t.Fatal(err)
	}
	crmAdapter, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "web.db")
	db := sqliteContacts(t, dbPath)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	start := func(name, addr string, join []string, ad sidecar.AdapterConfig, opts sidecar.Options) *sidecar.Agent {
		opts.Logger = log
		a, err := sidecar.Start(context.Background(), sidecar.Config{
			Node: name, Data: filepath.Join(dir, name+"-store"), Bind: "127.0.0.1:0", Join: join,
			API: sidecar.APIConfig{Addr: addr}, Adapter: ad,
		}, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		waitFor(t, name+" ready", a.Ready)
		return a
	}
	crm := start("crm", apiAddr, nil, sidecar.AdapterConfig{Kind: Kind, DSN: apiCfg}, sidecar.Options{Adapter: crmAdapter})
	start("web", "127.0.0.1:0", []string{crm.Node().Addr()}, sidecar.AdapterConfig{Kind: "sqlite", DSN: dbPath, PollInterval: 5 * time.Millisecond}, sidecar.Options{})
	dbRow := func(id string) string {
		var out string
		if err := db.QueryRow(`SELECT name || '|' || email FROM contacts WHERE id = ?`, id).Scan(&out); err != nil {
			return "<none>"
		}
		return out
	}
	waitFor(t, "the snapshot in SQLite", func() bool { return dbRow("aaaaaaaaaaaaaaa") == "Ann|ann@x" })
	// The login, the snapshot's two reads, then capture's first poll.
	waitFor(t, "crm's first poll", func() bool { return requests(crmAdapter) >= 4 })
	arrives := func(id, want string, start time.Time) {
		t.Helper()
		waitFor(t, id+" = "+want+" in SQLite", func() bool { return dbRow(id) == want })
		t.Logf("%s = %s in SQLite %s after the write in PocketBase", id, want, time.Since(start).Round(time.Millisecond))
	}

	start1 := time.Now()
	pb.Do("PATCH", "/api/collections/contacts/records/aaaaaaaaaaaaaaa", map[string]any{"name": "Ann B"}, 200, nil)
	arrives("aaaaaaaaaaaaaaa", "Ann B|ann@x", start1)
	start1 = time.Now()
	pb.Do("POST", "/api/collections/contacts/records", map[string]any{"id": "ccccccccccccccc", "name": "Cy", "email": "cy@x"}, 200, nil)
	arrives("ccccccccccccccc", "Cy|cy@x", start1)
	start1 = time.Now()
	pb.Do("DELETE", "/api/collections/contacts/records/ccccccccccccccc", nil, 204, nil)
	arrives("ccccccccccccccc", "<none>", start1)

	// Two updates of one record within one second, the second after the
	// first arrived: each event is its own request, and neither is taken
	// for a replay of the other.
	for {
		now := time.Now()
		if now.Nanosecond() < 200e6 {
			break
		}
		time.Sleep(time.Until(now.Truncate(time.Second).Add(time.Second)))
	}
	start1 = time.Now()
	pb.Do("PATCH", "/api/collections/contacts/records/aaaaaaaaaaaaaaa", map[string]any{"name": "Ann C"}, 200, nil)
	arrives("aaaaaaaaaaaaaaa", "Ann C|ann@x", start1)
	pb.Do("PATCH", "/api/collections/contacts/records/aaaaaaaaaaaaaaa", map[string]any{"name": "Ann D"}, 200, nil)
	if time.Now().Truncate(time.Second).Equal(start1.Truncate(time.Second)) {
		arrives("aaaaaaaaaaaaaaa", "Ann D|ann@x", start1)
	} else {
		t.Log("the second update fell in the next second")
	}

	s := crmAdapter.WebhookStats()
	if s.Refused != 0 || s.Malformed != 0 || s.Deletes != 1 || s.Wakes < 3 {
		t.Errorf("webhook stats %+v, want none refused, 1 delete, at least 3 wakes", s)
	}
	if strings.Contains(pb.Log(), "lattice webhook refused") {
		t.Errorf("PocketBase logged a refusal:\n%s", pb.Log())
	}
	t.Logf("webhook stats %+v, requests %v", s, crmAdapter.Stats().Requests)
}
