package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// soloWithData starts an API-only agent from a config file with extra
// top-level keys, and writes one record through the CLI, so that the store
// holds unflushed data.
func soloWithData(t *testing.T, extra string) (*cluster, *agent) {
	t.Helper()
	c := newCluster(t, "")
	a := c.add("solo", "")
	cfg := filepath.Join(a.dir, "solo.yaml")
	body := fmt.Sprintf("node: solo\ndata: %s\nbind: %s\ncluster: lattice-e2e\nkey_file: %s\napi:\n  addr: %s\n  token_file: %s\n%s",
		filepath.Join(a.dir, "store"), a.gossip, c.keyFile, a.api, c.tokenFile, extra)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a.args = []string{"--config", cfg}
	a.start(30 * time.Second)
	if _, errOut, code := cli(t, nil, "put", "--api", a.api, "--token-file", c.tokenFile, "notes", "n-1", "text=hello"); code != 0 {
		t.Fatalf("put: exit %d\n%s", code, errOut)
	}
	return c, a
}

// An agent whose data directory vanishes stops within a few seconds with
// a clear error and a non-zero exit status, instead of hanging on a store
// that retries its flushes forever.
func TestAgentStopsWhenDataDirVanishes(t *testing.T) {
	_, a := soloWithData(t, "")
	if err := os.RemoveAll(filepath.Join(a.dir, "store")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if code := a.awaitExit(15 * time.Second); code == 0 {
		t.Fatalf("exit status 0 after the data directory vanished, want non-zero\n%s", a.logTail(20))
	}
	log := a.logSinceStart()
	for _, want := range []string{"was deleted while the store was open", "hint:"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, a.logTail(20))
		}
	}
	t.Logf("exited %s after the directory vanished", time.Since(start).Round(time.Millisecond))
}

// SIGTERM ends the process within shutdown_timeout even when the store
// cannot close (its directory is gone, so Badger retries its flush
// forever), with a non-zero exit status that says so.
func TestSIGTERMEndsAgentWithHungStore(t *testing.T) {
	_, a := soloWithData(t, "shutdown_timeout: 2s\n")
	if err := os.RemoveAll(filepath.Join(a.dir, "store")); err != nil {
		t.Fatal(err)
	}
	a.terminate()
	start := time.Now()
	if code := a.awaitExit(15 * time.Second); code == 0 {
		t.Fatalf("exit status 0, want non-zero\n%s", a.logTail(20))
	}
	log := a.logSinceStart()
	// The store check may notice the directory first, in the instant
	// between its removal and the signal: either way the process ends.
	if !strings.Contains(log, "shutdown did not finish within shutdown_timeout (2s)") &&
		!strings.Contains(log, "was deleted while the store was open") {
		t.Errorf("log says neither why shutdown was cut short nor that the store failed:\n%s", a.logTail(20))
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
}
