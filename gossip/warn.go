package gossip

import (
	"log/slog"
	"sync"
	"time"
)

// warnEvery is how often one kind of failed-stream warning is logged; the
// others in between are counted and reported with the next one.
const warnEvery = 10 * time.Second

// warnLimiter rate-limits warnings by key, so that a client opening
// streams in a loop cannot flood the log. Safe for concurrent use.
type warnLimiter struct {
	mu   sync.Mutex
	last map[string]warnState
}

type warnState struct {
	at         time.Time
	suppressed int
}

// warn logs msg unless a warning of the same key was logged within
// warnEvery.
func (w *warnLimiter) warn(log *slog.Logger, key, msg string, args ...any) {
	now := time.Now()
	w.mu.Lock()
	if w.last == nil {
		w.last = map[string]warnState{}
	}
	st, ok := w.last[key]
	if ok && now.Sub(st.at) < warnEvery {
		st.suppressed++
		w.last[key] = st
		w.mu.Unlock()
		return
	}
	if len(w.last) >= 1024 {
		// Many sources: forget the old ones rather than grow.
		for k, s := range w.last {
			if now.Sub(s.at) >= warnEvery {
				delete(w.last, k)
			}
		}
		if len(w.last) >= 1024 {
			w.mu.Unlock()
			return
		}
	}
	w.last[key] = warnState{at: now}
	w.mu.Unlock()
	if st.suppressed > 0 {
		args = append(args, "suppressed", st.suppressed)
	}
	log.Warn(msg, args...)
}
