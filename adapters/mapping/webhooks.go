package mapping

import (
	"net/http"

	"github.com/lattice-crdt/lattice/adapters"
)

// Webhook passes a webhook request to the system's adapter
// (adapters.WebhookReceiver); a system without webhooks refuses it with
// adapters.ErrNoWebhooks. An event names the system's own collection and
// record ID, which the system's adapter reads: the mapping does not
// translate it.
func (w *Adapter) Webhook(header http.Header, body []byte) error {
	if r, ok := w.inner.(adapters.WebhookReceiver); ok {
		return r.Webhook(header, body)
	}
	return adapters.ErrNoWebhooks
}

var _ adapters.WebhookReceiver = (*Adapter)(nil)
