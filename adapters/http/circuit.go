package http

import (
	"context"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
)

// CircuitConfig sets the circuit breaker that keeps the adapter from
// hammering an API that is down. After Failures consecutive failed
// attempts (a 5xx, no connection, or a 429 that outlasted the retries) the
// circuit opens: for Cooldown every request fails at once, marked
// adapters.ErrUnavailable, so that the engine's apply queue waits and
// capture restarts later, nothing dropped. Then one request goes through
// as a probe (half-open): its success closes the circuit, its failure
// opens it again for twice the cooldown, at most MaxCooldown.
type CircuitConfig struct {
	Failures    int           `yaml:"failures"`     // default 5
	Cooldown    time.Duration `yaml:"cooldown"`     // default 1s
	MaxCooldown time.Duration `yaml:"max_cooldown"` // default 1m
}

func (c *CircuitConfig) fill() error {
	if c.Failures < 0 {
		return errors.WithHint(keyErr("circuit.failures", "%d is negative", c.Failures), "e.g. failures: 5 (failed attempts in a row before the circuit opens)")
	}
	if c.Cooldown < 0 || c.MaxCooldown < 0 {
		return errors.WithHint(keyErr("circuit", "negative cooldown"), "e.g. cooldown: 1s, max_cooldown: 1m")
	}
	if c.Failures == 0 {
		c.Failures = 5
	}
	if c.Cooldown == 0 {
		c.Cooldown = time.Second
	}
	if c.MaxCooldown == 0 {
		c.MaxCooldown = max(time.Minute, c.Cooldown)
	}
	if c.MaxCooldown < c.Cooldown {
		return errors.WithHint(keyErr("circuit.max_cooldown", "%s is below cooldown %s", c.MaxCooldown, c.Cooldown),
			"max_cooldown caps the cooldown as it doubles")
	}
	return nil
}

// circuitState is the state of a circuit; its values are those of the
// lattice_http_circuit_state gauge.
type circuitState int

const (
	circuitClosed   circuitState = 0 // requests flow
	circuitHalfOpen circuitState = 1 // one probe is out
	circuitOpen     circuitState = 2 // requests fail at once
)

func (s circuitState) String() string {
	switch s {
	case circuitClosed:
		return "closed"
	case circuitHalfOpen:
		return "half-open"
	}
	return "open"
}

// outcome is what one attempt says of the system's availability.
type outcome int

const (
	outcomeUp        outcome = iota // the server answered (2xx, or a 4xx about the request)
	outcomeDown                     // a 5xx, no connection, or a final 429
	outcomeNeutral                  // a 429 that will be retried
	outcomeAbandoned                // the caller gave up (context ended)
)

// errCircuitOpen marks requests refused while the circuit is open.
var errCircuitOpen = errors.New("http adapter: circuit open")

// breaker is a circuit breaker. Its methods are safe for concurrent use.
type breaker struct {
	cfg CircuitConfig
	clk clock.Clock

	mu       sync.Mutex
	state    circuitState
	fails    int           // consecutive failed attempts
	until    time.Time     // while open: when a probe may go
	cooldown time.Duration // the next opening's cooldown
	opens    int64         // times opened
	refused  int64         // requests failed at once
}

func newBreaker(cfg CircuitConfig, clk clock.Clock) *breaker {
	return &breaker{cfg: cfg, clk: clk, cooldown: cfg.Cooldown}
}

// allow reports whether an attempt may go: nil, with probe true when it
// is the half-open circuit's one probe; or an error marked
// adapters.ErrUnavailable while the circuit is open or its probe is out.
func (b *breaker) allow() (probe bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case circuitClosed:
		return false, nil
	case circuitOpen:
		if !b.clk.Now().Before(b.until) {
			b.state = circuitHalfOpen
			return true, nil
		}
	}
	b.refused++
	wait := max(b.until.Sub(b.clk.Now()), 0)
	return false, errors.Mark(errors.WithHint(errors.Wrapf(errCircuitOpen, "after %d failed attempts in a row; next probe in %s", b.fails, wait.Round(time.Millisecond)),
		"the API is down or overloaded; the writes wait and are retried, nothing is dropped"), adapters.ErrUnavailable)
}

// record takes the outcome of an attempt that allow let go.
func (b *breaker) record(o outcome, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch o {
	case outcomeUp:
		b.state, b.fails, b.cooldown = circuitClosed, 0, b.cfg.Cooldown
	case outcomeDown:
		b.fails++
		switch {
		case probe:
			b.cooldown = min(b.cooldown*2, b.cfg.MaxCooldown)
			b.open()
		case b.state == circuitClosed && b.fails >= b.cfg.Failures:
			b.open()
		}
	case outcomeNeutral, outcomeAbandoned:
		if probe {
			// Nothing learnt: the next request probes.
			b.state, b.until = circuitOpen, b.clk.Now()
		}
	}
}

func (b *breaker) open() {
	b.state, b.until = circuitOpen, b.clk.Now().Add(b.cooldown)
	b.opens++
}

// snapshot returns the state and counters, for metrics.
func (b *breaker) snapshot() (state circuitState, opens, refused int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state, b.opens, b.refused
}

// classifyAttempt returns what an attempt's result says of the system;
// final is true when no retry follows it.
func classifyAttempt(ctx context.Context, err error, final bool) outcome {
	if err == nil {
		return outcomeUp
	}
	if ctx.Err() != nil {
		return outcomeAbandoned
	}
	var se *statusError
	if errors.As(err, &se) {
		switch {
		case se.code == 429 && !final:
			return outcomeNeutral
		case !retryable(se.code):
			return outcomeUp
		}
	}
	return outcomeDown
}

// fillBudget fills and checks the keys of the request budget and of the
// connection: concurrency, circuit and tls.
func (c *Config) fillBudget() error {
	if c.Concurrency < 0 {
		return errors.WithHint(keyErr("concurrency", "%d is negative", c.Concurrency), "e.g. concurrency: 4 (requests in flight at once)")
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if err := c.Circuit.fill(); err != nil {
		return err
	}
	return c.TLS.check(c.BaseURL)
}
