package sidecar

import (
	"sync/atomic"
	"time"
)

// loopState is the state of a background loop (capture, apply) as status
// and readiness see it.
type loopState struct {
	// State is what the loop does: idle, snapshot, capturing, applying,
	// retrying.
	State string
	// Since is when State began.
	Since time.Time
	// Error is the last error of the current run of failures ("" when the
	// loop is healthy), FailingSince the time of its first error, and
	// Retries the number of errors in it.
	Error        string
	FailingSince time.Time
	Retries      int
	// LastBatch is when the loop last finished a batch.
	LastBatch time.Time
}

// captureStable is how long capture must run without an error, when it
// has nothing to capture, before a run of failures counts as over. A
// captured batch ends it at once.
const captureStable = time.Second

// failingSince returns when the loop's current run of failures began, or
// the zero time when it is healthy.
func (s *loopState) failingSince(now time.Time) time.Time {
	if s == nil || s.FailingSince.IsZero() {
		return time.Time{}
	}
	if s.State == "capturing" && now.Sub(s.Since) >= captureStable {
		return time.Time{}
	}
	return s.FailingSince
}

// setState records the loop's state and, with err, a failure.
func (a *Agent) setState(p *atomic.Pointer[loopState], state string, err error) {
	now := a.clock.Now()
	s := &loopState{State: state, Since: now}
	if old := p.Load(); old != nil {
		s.LastBatch = old.LastBatch
		if !old.failingSince(now).IsZero() {
			s.Error, s.FailingSince, s.Retries = old.Error, old.FailingSince, old.Retries
		}
		if old.State == state {
			s.Since = old.Since
		}
	}
	if err != nil {
		s.Error = err.Error()
		s.Retries++
		if s.FailingSince.IsZero() {
			s.FailingSince = now
		}
	}
	p.Store(s)
}

// markBatch records a finished batch: the loop works, whatever failed
// before.
func (a *Agent) markBatch(p *atomic.Pointer[loopState]) {
	s := *p.Load()
	s.LastBatch = a.clock.Now()
	s.Error, s.FailingSince, s.Retries = "", time.Time{}, 0
	p.Store(&s)
}

// recovered records that the loop did its work without an error.
func (a *Agent) recovered(p *atomic.Pointer[loopState]) {
	if s := p.Load(); s != nil && !s.FailingSince.IsZero() {
		c := *s
		c.Error, c.FailingSince, c.Retries = "", time.Time{}, 0
		p.Store(&c)
	}
}

// failing returns the loops that have been failing for longer than
// ready.fail_after: "capture", "apply".
func (a *Agent) failing(now time.Time) []string {
	if a.adp == nil {
		return nil
	}
	var out []string
	for _, l := range []struct {
		name string
		p    *atomic.Pointer[loopState]
	}{{"capture", &a.captureSt}, {"apply", &a.applySt}} {
		if since := l.p.Load().failingSince(now); !since.IsZero() && now.Sub(since) >= a.cfg.Ready.FailAfter {
			out = append(out, l.name)
		}
	}
	return out
}
