package clock_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/lattice-crdt/lattice/clock"
)

// Real reads a synctest bubble's fake time: Sleep waits exactly d, or
// ends when done closes.
func TestRealSleepInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := clock.Or(nil)
		start := c.Now()
		if !clock.Sleep(c, nil, time.Hour) {
			t.Fatal("Sleep ended early")
		}
		if d := clock.Since(c, start); d != time.Hour {
			t.Fatalf("slept %v, want 1h", d)
		}
		done := make(chan struct{})
		time.AfterFunc(time.Minute, func() { close(done) })
		if clock.Sleep(c, done, time.Hour) {
			t.Fatal("Sleep passed although done closed")
		}
		if d := clock.Since(c, start); d != time.Hour+time.Minute {
			t.Fatalf("done after %v, want 1h1m", d)
		}
	})
}
