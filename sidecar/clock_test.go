package sidecar

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lattice-crdt/lattice/clock"
)

// Retries back off by doubling from the first wait up to the maximum, start
// again from the first after a success, and end at once when the agent
// stops. In a synctest bubble the waits are exact.
func TestBackoffDoublesUpToMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := backoff{first: 100 * time.Millisecond, max: 500 * time.Millisecond}
		var got []time.Duration
		for range 5 {
			start := time.Now()
			if !b.wait(t.Context(), clock.Real{}) {
				t.Fatal("wait ended early")
			}
			got = append(got, time.Since(start))
		}
		b.reset()
		start := time.Now()
		b.wait(t.Context(), clock.Real{})
		got = append(got, time.Since(start))
		want := []time.Duration{100, 200, 400, 500, 500, 100}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if !slices.Equal(got, want) {
			t.Fatalf("waits %v, want %v", got, want)
		}

		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(30*time.Millisecond, cancel)
		start = time.Now()
		if b.wait(ctx, clock.Real{}) {
			t.Fatal("wait passed although the agent stopped")
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Fatalf("a stopped wait took %v, want 30ms", d)
		}
	})
}

// A loop failing for less than ready.fail_after leaves the agent ready; at
// fail_after it is not; capture running without an error for a second, or
// a finished batch, ends the run of failures.
func TestReadinessFailAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &Agent{clock: clock.Real{}, adp: silentAdapter{}}
		a.cfg.Ready.FailAfter = time.Minute
		a.ready.Store(true)
		a.setState(&a.captureSt, "capturing", nil)
		a.setState(&a.applySt, "idle", nil)

		a.setState(&a.captureSt, "retrying", errors.New("system down"))
		time.Sleep(time.Minute - time.Millisecond)
		if !a.Ready() {
			t.Fatalf("not ready %v after the first failure, under fail_after", time.Minute-time.Millisecond)
		}
		a.setState(&a.captureSt, "retrying", errors.New("system down"))
		time.Sleep(time.Millisecond)
		if a.Ready() || !slices.Equal(a.failing(time.Now()), []string{"capture"}) {
			t.Fatalf("ready %v, failing %v at fail_after; want capture failing", a.Ready(), a.failing(time.Now()))
		}
		// Capture runs again: still failing until it has run a second
		// without an error.
		a.setState(&a.captureSt, "capturing", nil)
		time.Sleep(captureStable - time.Millisecond)
		if a.Ready() {
			t.Fatal("ready before capture ran a second without an error")
		}
		time.Sleep(time.Millisecond)
		if !a.Ready() {
			t.Fatalf("not ready after capture ran %v without an error: failing %v", captureStable, a.failing(time.Now()))
		}

		// Apply: a finished batch ends the run at once.
		a.setState(&a.applySt, "retrying", errors.New("system down"))
		time.Sleep(2 * time.Minute)
		if a.Ready() {
			t.Fatal("ready while apply fails past fail_after")
		}
		a.markBatch(&a.applySt)
		if !a.Ready() {
			t.Fatalf("not ready after a finished batch: failing %v", a.failing(time.Now()))
		}
	})
}

// The catalog is looked at every adapter.catalog_interval, and at once when
// the adapter reports a change, one look at a time.
func TestCatalogPeriodicRefreshSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		changed := make(chan struct{}, 1)
		type look struct {
			at       time.Duration
			periodic bool
		}
		var mu sync.Mutex
		var looks []look
		seen := func() []look {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(looks)
		}
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			everyTick(ctx, clock.Real{}, time.Minute, changed, func(periodic bool) {
				mu.Lock()
				looks = append(looks, look{time.Since(start), periodic})
				mu.Unlock()
			})
		}()
		time.Sleep(time.Minute - time.Millisecond)
		synctest.Wait()
		if got := seen(); len(got) != 0 {
			t.Fatalf("looks before the interval: %v", got)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		changed <- struct{}{}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		time.Sleep(50 * time.Second)
		synctest.Wait()
		cancel()
		<-done
		want := []look{{time.Minute, true}, {time.Minute, false}, {2 * time.Minute, true}}
		if got := seen(); !slices.Equal(got, want) {
			t.Fatalf("looks %v, want %v", got, want)
		}
	})
}
