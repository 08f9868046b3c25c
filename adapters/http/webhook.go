package http

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	nethttp "net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
)

// Webhooks: the system announces a change by a signed request to the
// sidecar (POST /v1/webhooks), which passes it to Adapter.Webhook. A create
// or an update wakes capture for an immediate poll; a delete makes capture
// read the record and, when the server answers 404, report the delete at
// once instead of at the next reconciliation. Webhooks only hurry capture:
// polls and reconciliation go on at their intervals, so a webhook that
// never arrives costs time, not changes.
//
// A request is authenticated before anything else is read: the signature
// header holds "sha256=" and the hex HMAC-SHA256, under the shared secret,
// of the timestamp header's value (unix seconds), a dot and the raw body.
// A timestamp further than the window from now is refused, and so is a
// signature already accepted within the window (a replay). Only an
// authenticated request can wake capture, and many of them while capture
// is busy wake it once.

// WebhookConfig enables the webhook receiver.
type WebhookConfig struct {
	// SecretFile holds the secret shared with the sender; it must be
	// private to its owner (chmod 600).
	SecretFile string `yaml:"secret_file"`
	// Window is how far a request's timestamp may be from the sidecar's
	// clock, either way, and how long an accepted signature is remembered
	// to refuse its replay (default 5m).
	Window time.Duration `yaml:"window"`
	// SignatureHeader and TimestampHeader name the headers the sender
	// signs with (defaults X-Lattice-Signature, X-Lattice-Timestamp).
	SignatureHeader string `yaml:"signature_header"`
	TimestampHeader string `yaml:"timestamp_header"`
}

// The defaults of WebhookConfig.
const (
	DefaultWebhookWindow          = 5 * time.Minute
	DefaultWebhookSignatureHeader = "X-Lattice-Signature"
	DefaultWebhookTimestampHeader = "X-Lattice-Timestamp"
)

// WebhookEvent is the body of a webhook request: one change of one record.
// Collection is the collection's name in the adapter's config, ID the
// record's ID (a JSON string, or a number for int IDs), Action one of
// create, update and delete.
type WebhookEvent struct {
	Collection string          `json:"collection"`
	ID         json.RawMessage `json:"id"`
	Action     string          `json:"action"`
}

// maxSeenSignatures bounds the signatures remembered within the window;
// past it, further requests are refused until older ones expire (the
// changes they announce are still polled).
const maxSeenSignatures = 100_000

// maxPendingDeletes bounds the deletes announced and not yet confirmed;
// past it, further ones wait for reconciliation.
const maxPendingDeletes = 10_000

func (w *WebhookConfig) fill() error {
	if w == nil {
		return nil
	}
	if w.SecretFile == "" {
		return errors.WithHint(keyErr("webhooks.secret_file", "missing"),
			"a file private to its owner holding the secret the sender signs with, e.g. openssl rand -hex 32 > /etc/lattice/crm.hook && chmod 600 /etc/lattice/crm.hook")
	}
	if w.Window < 0 {
		return keyErr("webhooks.window", "negative duration %s", w.Window)
	}
	if w.Window == 0 {
		w.Window = DefaultWebhookWindow
	}
	if w.Window < time.Second {
		return errors.WithHint(keyErr("webhooks.window", "%s is under a second", w.Window), "timestamps are in seconds; e.g. window: 5m")
	}
	if w.SignatureHeader == "" {
		w.SignatureHeader = DefaultWebhookSignatureHeader
	}
	if w.TimestampHeader == "" {
		w.TimestampHeader = DefaultWebhookTimestampHeader
	}
	if strings.EqualFold(w.SignatureHeader, w.TimestampHeader) {
		return errors.WithHint(keyErr("webhooks.signature_header", "same as timestamp_header"), "two different headers")
	}
	return nil
}

// WebhookStats counts webhook requests, for tests and metrics.
type WebhookStats struct {
	// Accepted counts authenticated events, Ignored those of them for a
	// collection the adapter does not sync.
	Accepted, Ignored int64
	// Refused counts requests that failed authentication, Malformed
	// authenticated ones whose body could not be read.
	Refused, Malformed int64
	// Wakes counts the immediate polls webhooks caused (one may stand for
	// many events); Deletes the deletes they reported.
	Wakes, Deletes int64
}

// hooks is the adapter's webhook receiver; nil when webhooks are off.
type hooks struct {
	cfg    *WebhookConfig
	secret []byte
	clk    clock.Clock
	wake   chan struct{} // capacity 1: events coalesce

	mu      sync.Mutex
	seen    map[string]time.Time           // accepted signatures, by when they may be forgotten
	pruned  time.Time                      // when seen was last pruned
	deletes map[string]map[string]struct{} // announced deletes by collection and ID

	accepted, ignored, refused, malformed, wakes, deleted atomic.Int64
}

func newHooks(cfg *WebhookConfig, clk clock.Clock) (*hooks, error) {
	if cfg == nil {
		return nil, nil
	}
	s, err := readSecret(cfg.SecretFile, "webhooks.secret_file")
	if err != nil {
		return nil, err
	}
	return &hooks{cfg: cfg, secret: []byte(s), clk: clk, wake: make(chan struct{}, 1),
		seen: map[string]time.Time{}, deletes: map[string]map[string]struct{}{}}, nil
}

// errRefused is every authentication failure: its text says no more than
// that, so that a sender learns nothing of why.
var errRefused = errors.Mark(errors.New("http adapter: webhook refused"), adapters.ErrWebhookRefused)

// Webhook authenticates a webhook request and takes its event
// (adapters.WebhookReceiver).
func (a *Adapter) Webhook(header nethttp.Header, body []byte) error {
	h := a.hooks
	if h == nil {
		return adapters.ErrNoWebhooks
	}
	if err := h.verify(header, body); err != nil {
		h.refused.Add(1)
		return err
	}
	ev, err := decodeEvent(body)
	if err != nil {
		h.malformed.Add(1)
		return errors.Mark(errors.Wrap(err, "http adapter: webhook"), adapters.ErrWebhookMalformed)
	}
	col := a.byName[ev.Collection]
	if col == nil {
		h.accepted.Add(1)
		h.ignored.Add(1)
		a.log.Debug("http adapter: webhook for a collection not synced, ignored", "collection", ev.Collection)
		return nil
	}
	if ev.Action == "delete" {
		id, err := eventID(ev.ID)
		if err == nil {
			_, err = col.key(id)
		}
		if err != nil {
			h.malformed.Add(1)
			return errors.Mark(errors.Wrap(err, "http adapter: webhook: id"), adapters.ErrWebhookMalformed)
		}
		h.mu.Lock()
		n := 0
		for _, ids := range h.deletes {
			n += len(ids)
		}
		if n < maxPendingDeletes {
			if h.deletes[col.name] == nil {
				h.deletes[col.name] = map[string]struct{}{}
			}
			h.deletes[col.name][id] = struct{}{}
		}
		h.mu.Unlock()
	}
	h.accepted.Add(1)
	select {
	case h.wake <- struct{}{}:
	default: // a wake is pending already: it covers this event
	}
	return nil
}

// verify authenticates a request: a timestamp within the window, a
// signature of it and the body under the secret, not seen before.
func (h *hooks) verify(header nethttp.Header, body []byte) error {
	ts := header.Get(h.cfg.TimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errRefused
	}
	now := h.clk.Now()
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > h.cfg.Window || d < -h.cfg.Window {
		return errRefused
	}
	hexSig, ok := strings.CutPrefix(header.Get(h.cfg.SignatureHeader), "sha256=")
	if !ok {
		return errRefused
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return errRefused
	}
	want := Sign(h.secret, ts, body)
	if !hmac.Equal(got, want) {
		return errRefused
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// An expired signature kept a little longer is harmless: its
	// timestamp is outside the window.
	if now.Sub(h.pruned) >= time.Second || len(h.seen) >= maxSeenSignatures {
		for s, until := range h.seen {
			if now.After(until) {
				delete(h.seen, s)
			}
		}
		h.pruned = now
	}
	key := string(want)
	if _, replay := h.seen[key]; replay || len(h.seen) >= maxSeenSignatures {
		return errRefused
	}
	// Past at+window the timestamp itself is refused.
	h.seen[key] = at.Add(h.cfg.Window)
	return nil
}

// Sign returns the HMAC-SHA256 under secret of a webhook request's
// timestamp (its header's value, unix seconds), a dot and its body: the
// signature header carries "sha256=" and its hex.
func Sign(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// decodeEvent reads an event: one JSON object with a collection, an ID and
// a known action.
func decodeEvent(body []byte) (WebhookEvent, error) {
	var ev WebhookEvent
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&ev); err != nil {
		return ev, errors.Wrap(err, "event")
	}
	if d.More() {
		return ev, errors.New("event: more than one JSON value")
	}
	switch ev.Action {
	case "create", "update", "delete":
	default:
		return ev, errors.Newf("event: action %q is not create, update or delete", ev.Action)
	}
	if ev.Collection == "" {
		return ev, errors.New("event: no collection")
	}
	if len(ev.ID) == 0 {
		return ev, errors.New("event: no id")
	}
	return ev, nil
}

// eventID returns an event's ID as text: a JSON string, or an integer.
func eventID(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&n); err != nil {
		return "", errors.Newf("%s is not a string or a number", raw)
	}
	if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
		return "", errors.Newf("%s is not an integer", raw)
	}
	return n.String(), nil
}

// WebhookStats returns the webhook counters (zero without webhooks).
func (a *Adapter) WebhookStats() WebhookStats {
	h := a.hooks
	if h == nil {
		return WebhookStats{}
	}
	return WebhookStats{Accepted: h.accepted.Load(), Ignored: h.ignored.Load(), Refused: h.refused.Load(),
		Malformed: h.malformed.Load(), Wakes: h.wakes.Load(), Deletes: h.deleted.Load()}
}

// woken returns the channel that wakes capture for an immediate poll; nil
// (never ready) without webhooks.
func (h *hooks) woken() <-chan struct{} {
	if h == nil {
		return nil
	}
	return h.wake
}

// takeDeletes returns the announced deletes and forgets them.
func (h *hooks) takeDeletes() map[string]map[string]struct{} {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.deletes) == 0 {
		return nil
	}
	d := h.deletes
	h.deletes = map[string]map[string]struct{}{}
	return d
}

// giveBack returns deletes capture could not confirm, to try again.
func (h *hooks) giveBack(d map[string]map[string]struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for coll, ids := range d {
		if h.deletes[coll] == nil {
			h.deletes[coll] = map[string]struct{}{}
		}
		maps.Copy(h.deletes[coll], ids)
	}
}

// announcedDeletes confirms the deletes webhooks announced, as
// reconciliation confirms those a listing finds: a record the adapter
// knows and the server answers 404 for is reported deleted, in one batch,
// and forgotten once an Ack covers it. A record the adapter does not know
// (never captured, or deleted by the adapter's own apply, whose echo this
// is) is ignored, as is one already reported.
func (a *Adapter) announcedDeletes(ctx context.Context, marks map[string]*mark, sink adapters.Sink) error {
	d := a.hooks.takeDeletes()
	if len(d) == 0 {
		return nil
	}
	var seq int64
	var changes []adapters.Change
	gone := map[string][]string{}
	err := func() error {
		a.applyMu.Lock()
		defer a.applyMu.Unlock()
		var err error
		if seq, err = a.nextSeq(ctx); err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(d)) {
			col := a.byName[name]
			var ids []string
			for _, id := range slices.Sorted(maps.Keys(d[name])) {
				if m := marks[name]; m != nil && m.Gone[id] {
					continue // reported already
				}
				if _, ok, err := a.st.knownAt(ctx, name, id); err != nil {
					return err
				} else if ok {
					ids = append(ids, id)
				}
			}
			ch, g, err := a.confirmGone(ctx, col, ids)
			if err != nil {
				return err
			}
			changes = append(changes, ch...)
			if len(g) > 0 {
				gone[name] = g
			}
		}
		return nil
	}()
	if err != nil {
		a.hooks.giveBack(d)
		return err
	}
	if err := a.report(ctx, seq, marks, changes, nil, nil, gone, sink); err != nil {
		a.hooks.giveBack(d)
		return err
	}
	a.hooks.deleted.Add(int64(len(changes)))
	return nil
}
