package http

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"golang.org/x/time/rate"
)

// maxBody bounds a response body the adapter reads.
const maxBody = 64 << 20

// client sends the API's requests within the request budget, retrying
// those that fail for the system's state.
type client struct {
	cfg   *Config
	http  *nethttp.Client
	creds credentials
	conn  Connector // nil: none
	// hidden names the query parameters whose values errors do not show:
	// those the config sends with every list request (query:), where an
	// API key may sit.
	hidden map[string]bool
	budget *rate.Limiter
	clk    clock.Clock
	// slots holds a token for each request in flight, at most
	// Concurrency; breaker is the system's circuit.
	slots   chan struct{}
	breaker *breaker

	mu     sync.Mutex
	byCode map[int]int64 // responses by status code; 0 counts transport errors
	waits  atomic.Int64  // requests that waited for the budget
	// slotWaits counts requests that waited for a concurrency slot.
	slotWaits atomic.Int64
}

// Stats counts the adapter's requests, for metrics.
type Stats struct {
	// Requests counts responses by HTTP status code; code 0 counts
	// requests that got no response (connection refused, timeout).
	Requests map[int]int64
	// BudgetWaits counts requests that waited for the request budget.
	BudgetWaits int64
	// Logins counts the login requests that returned a token
	// (auth.login).
	Logins int64
}

// response is a read response.
type response struct {
	code   int
	body   []byte
	header nethttp.Header
}

// statusError is a response the adapter does not take as success.
type statusError struct {
	method, url string
	code        int
	body        []byte
}

func (e *statusError) Error() string {
	msg := strings.TrimSpace(string(e.body))
	if len(msg) > 500 {
		msg = msg[:500] + "..."
	}
	return e.method + " " + e.url + ": " + strconv.Itoa(e.code) + " " + nethttp.StatusText(e.code) + ": " + msg
}

// shown returns a request URL as errors show it, the values of the hidden
// query parameters replaced.
func (c *client) shown(u string) string {
	if len(c.hidden) == 0 {
		return u
	}
	p, err := neturl.Parse(u)
	if err != nil || p.RawQuery == "" {
		return u
	}
	q := p.Query()
	changed := false
	for k := range q {
		if c.hidden[k] {
			q[k] = []string{"REDACTED"}
			changed = true
		}
	}
	if !changed {
		return u
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// retryable reports whether a status means the system cannot serve now:
// 429, a 5xx, or a 4xx that says so (408 Request Timeout, 423 Locked, 425
// Too Early).
func retryable(code int) bool {
	switch code {
	case nethttp.StatusTooManyRequests, nethttp.StatusRequestTimeout, nethttp.StatusLocked, nethttp.StatusTooEarly:
		return true
	}
	return code >= 500
}

// isGone reports whether a status says the record does not exist: 404, or
// 410 Gone.
func isGone(code int) bool { return code == nethttp.StatusNotFound || code == nethttp.StatusGone }

// do sends a request with body (nil: none) and returns the response of a
// 2xx, or a *statusError for another status that is not retryable. Retryable
// failures are retried Retries times with backoff, then reported marked
// adapters.ErrUnavailable. With a login, a 401 or 403 logs in again once and
// sends the request again; a refusal of the fresh token is reported marked
// adapters.ErrUnavailable.
func (c *client) do(ctx context.Context, method, url string, body []byte) (response, error) {
	return c.send(ctx, method, url, body, true)
}

// send is do, with the credentials when authed (not for the login itself).
func (c *client) send(ctx context.Context, method, url string, body []byte, authed bool) (response, error) {
	var last error
	relogged := false
	for attempt := 0; ; attempt++ {
		var name, value string
		var gen int64
		if authed {
			var err error
			if name, value, gen, err = c.creds.header(ctx); err != nil {
				return response{}, err
			}
		}
		// After the credentials: a login sends a request of its own, which
		// the circuit must see first.
		probe, err := c.breaker.allow()
		if err != nil {
			if last != nil {
				err = errors.WithSecondaryError(err, last)
			}
			return response{}, err
		}
		r, retryAfter, err := c.once(ctx, method, url, body, name, value)
		c.breaker.record(classifyAttempt(ctx, err, probe || attempt >= c.cfg.Retries), probe)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		var se *statusError
		if authed && errors.As(err, &se) && (se.code == nethttp.StatusUnauthorized || se.code == nethttp.StatusForbidden) &&
			c.creds.rejected(gen) {
			if !relogged {
				relogged = true
				attempt--
				continue
			}
			return response{}, errors.Mark(errors.WithHint(err,
				"the API refuses the token of a fresh login: check that auth.login's account may use the collections; the writes wait and are retried"),
				adapters.ErrUnavailable)
		}
		if errors.As(err, &se) && !retryable(se.code) {
			return response{}, err
		}
		last = err
		if attempt >= c.cfg.Retries {
			break
		}
		wait := c.cfg.Backoff << attempt
		wait = wait/2 + rand.N(wait/2+1) // jitter
		if retryAfter > 0 {
			wait = retryAfter
		}
		wait = min(wait, c.cfg.MaxBackoff)
		t := c.clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, ctx.Err()
		case <-t.C():
		}
	}
	return response{}, errors.Mark(errors.WithHint(errors.Wrapf(last, "http adapter: %d attempts", c.cfg.Retries+1),
		"the API is down, overloaded or refuses the credentials; the writes wait and are retried"), adapters.ErrUnavailable)
}

// once sends one request and returns the wait a Retry-After header asks
// for.
func (c *client) once(ctx context.Context, method, url string, body []byte, hname, hvalue string) (response, time.Duration, error) {
	if c.budget.Tokens() < 1 {
		c.waits.Add(1)
	}
	if err := c.budget.Wait(ctx); err != nil {
		return response{}, 0, err
	}
	release, err := c.slot(ctx)
	if err != nil {
		return response{}, 0, err
	}
	defer release()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := nethttp.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return response{}, 0, errors.Wrap(err, "http adapter: request")
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if hname != "" {
		req.Header.Set(hname, hvalue)
	}
	shown := c.shown(url)
	if c.conn != nil {
		if err := c.conn.Prepare(req); err != nil {
			return response{}, 0, errors.Wrapf(err, "http adapter: %s %s: connector %s", method, shown, c.cfg.Connector)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.count(0)
		var ue *neturl.Error
		if errors.As(err, &ue) {
			ue.URL = shown
		}
		return response{}, 0, errors.Wrapf(err, "http adapter: %s %s", method, shown)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	c.count(resp.StatusCode)
	if err != nil {
		return response{}, 0, errors.Wrapf(err, "http adapter: %s %s: read response", method, shown)
	}
	if len(b) > maxBody {
		return response{}, 0, errors.WithHint(errors.Newf("http adapter: %s %s: the response is larger than %d MiB", method, shown, maxBody>>20),
			"lower the collection's page_size")
	}
	if resp.StatusCode/100 != 2 {
		return response{}, retryAfter(resp.Header.Get("Retry-After"), c.clk.Now()),
			&statusError{method: method, url: shown, code: resp.StatusCode, body: b}
	}
	return response{code: resp.StatusCode, body: b, header: resp.Header}, 0, nil
}

// slot waits for one of the Concurrency slots of requests in flight and
// returns its release.
func (c *client) slot(ctx context.Context) (func(), error) {
	select {
	case c.slots <- struct{}{}:
	default:
		c.slotWaits.Add(1)
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func() { <-c.slots }, nil
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := nethttp.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func (c *client) count(code int) {
	c.mu.Lock()
	c.byCode[code]++
	c.mu.Unlock()
}

func (c *client) stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[int]int64, len(c.byCode))
	for k, v := range c.byCode {
		m[k] = v
	}
	s := Stats{Requests: m, BudgetWaits: c.waits.Load()}
	if l, ok := c.creds.(*login); ok {
		s.Logins = l.logins.Load()
	}
	return s
}
