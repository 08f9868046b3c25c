package mapping_test

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
)

// receiver is an adapter that receives webhooks and keeps their bodies.
type receiver struct {
	adapters.Adapter
	got []string
}

func (r *receiver) Webhook(_ http.Header, body []byte) error {
	r.got = append(r.got, string(body))
	return nil
}

// The mapped adapter passes webhooks to the system's adapter untranslated,
// and refuses them when the system's adapter receives none.
func TestWebhookPassesThrough(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sys.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE sys (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	open, _ := adapters.Lookup("sqlite")
	inner, err := open(context.Background(), adapters.Options{DSN: path, Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	m, err := mapping.Compile(mapping.Config{Tables: map[string]mapping.TableConfig{"sys": {Collection: "notes"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := mapping.New(inner, m, nil).(adapters.WebhookReceiver).Webhook(nil, []byte(`{}`)); !errors.Is(err, adapters.ErrNoWebhooks) {
		t.Fatalf("Webhook over an adapter without webhooks: %v", err)
	}
	r := &receiver{Adapter: inner}
	if err := mapping.New(r, m, nil).(adapters.WebhookReceiver).Webhook(nil, []byte(`{"id":"1"}`)); err != nil || len(r.got) != 1 || r.got[0] != `{"id":"1"}` {
		t.Fatalf("Webhook = %v, received %q", err, r.got)
	}
}
