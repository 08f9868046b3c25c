package store

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A child process of the crash and lock tests runs its part and exits.
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role))
	}
	goleak.VerifyTestMain(m)
}

// helperEnv names the role of a child process started by a test.
const helperEnv = "LATTICE_STORE_HELPER"

func runHelper(role string) int {
	switch role {
	case "crash":
		return crashChild()
	case "lock":
		return lockChild()
	}
	os.Stderr.WriteString("unknown helper role " + role + "\n")
	return 2
}

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testOptions are small, fast options for tests.
func testOptions(t testing.TB) Options {
	o := DefaultOptions()
	o.Logger = testLogger(t)
	o.MemTableSize = 4 << 20
	o.BlockCacheSize = 1 << 20
	o.IndexCacheSize = 1 << 20
	o.ValueThreshold = 64 << 10
	o.ValueLogFileSize = 16 << 20
	o.NumCompactors = 2
	o.GCInterval = 0
	o.SyncWrites = false
	return o
}

func openMem(t testing.TB, schema *crdt.Schema, mod ...func(*Options)) *Store {
	t.Helper()
	o := testOptions(t)
	o.InMemory = true
	for _, f := range mod {
		f(&o)
	}
	s, err := Open("", schema, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openDir(t testing.TB, dir string, schema *crdt.Schema, mod ...func(*Options)) *Store {
	t.Helper()
	o := testOptions(t)
	for _, f := range mod {
		f(&o)
	}
	s, err := Open(dir, schema, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return s
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("condition not met within %s", timeout)
		case <-tick.C:
		}
	}
}
