package sidecar

import (
	"net/http"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
)

// webhook receives a webhook request from the system (POST /v1/webhooks)
// and passes its headers and raw body to the adapter
// (adapters.WebhookReceiver), which authenticates it by its signature: the
// API token does not apply, since the sending system cannot hold it. The
// body is bounded by api.max_body_bytes before it is read. The answer says
// no more than its status: 204 accepted, 401 not authenticated, 400 an
// authenticated body the adapter cannot read, 404 no webhook receiver, 413
// too large.
func (a *Agent) webhook(w http.ResponseWriter, r *http.Request) {
	recv, ok := a.adp.(adapters.WebhookReceiver)
	if !ok {
		a.m.webhooks.WithLabelValues("no_receiver").Inc()
		writeError(w, http.StatusNotFound, errors.New("no webhook receiver"),
			"webhooks need an adapter that receives them, configured to (docs/http.md, Webhooks)")
		return
	}
	body, ok := a.readRaw(w, r)
	if !ok {
		a.m.webhooks.WithLabelValues("malformed").Inc()
		return
	}
	err := recv.Webhook(r.Header, body)
	switch {
	case err == nil:
		a.m.webhooks.WithLabelValues("accepted").Inc()
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, adapters.ErrNoWebhooks):
		a.m.webhooks.WithLabelValues("no_receiver").Inc()
		writeError(w, http.StatusNotFound, errors.New("no webhook receiver"),
			"webhooks need an adapter that receives them, configured to (docs/http.md, Webhooks)")
	case errors.Is(err, adapters.ErrWebhookRefused):
		a.m.webhooks.WithLabelValues("refused").Inc()
		writeError(w, http.StatusUnauthorized, errors.New("webhook refused"), "")
	case errors.Is(err, adapters.ErrWebhookMalformed):
		a.m.webhooks.WithLabelValues("malformed").Inc()
		writeError(w, http.StatusBadRequest, errors.New("webhook malformed"), "")
	default:
		a.log.Warn("webhook", "err", err)
		a.m.webhooks.WithLabelValues("failed").Inc()
		writeError(w, http.StatusInternalServerError, errors.New("webhook failed"), "")
	}
}

// webhookResults are the values of lattice_webhooks_total's result.
var webhookResults = []string{"accepted", "refused", "malformed", "no_receiver", "failed"}
