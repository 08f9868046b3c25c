package sidecar

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// failAfter sets ready.fail_after, and retries capture and apply often.
func failAfter(d time.Duration) func(*Config) {
	return func(c *Config) {
		c.Ready.FailAfter = d
		c.Apply.MaxBackoff = 50 * time.Millisecond
	}
}

// readyz returns /readyz's code and the loops it names.
func readyz(t *testing.T, a *Agent) (int, []string) {
	t.Helper()
	r := do(t, a, "GET", "/readyz", "", "")
	var body struct {
		Failing []string `json:"failing"`
	}
	if r.code != 200 {
		if err := json.Unmarshal([]byte(r.body), &body); err != nil {
			t.Fatalf("readyz body %q: %v", r.body, err)
		}
	}
	return r.code, body.Failing
}

// Capture failing for longer than ready.fail_after (here: any failure)
// makes /readyz 503 naming it, and status names the loop, its last error
// and since when; once the system is back, the agent is ready again.
func TestReadyzReportsFailingCapture(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "a", nil, time.Millisecond, failAfter(time.Nanosecond))
	n.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Active', NULL, NULL)`)
	waitFor(t, 10*time.Second, "the row captured", func() bool { return n.a.Digest().Count == 1 })
	if code, _ := readyz(t, n.a); code != 200 {
		t.Fatalf("readyz = %d before the failure, want 200", code)
	}
	n.db.Close()
	if err := os.Remove(n.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "readyz 503 naming capture", func() bool {
		code, failing := readyz(t, n.a)
		return code == 503 && slices.Contains(failing, "capture")
	})
	st := n.a.Status()
	c := st.Adapter.Capture
	if st.Ready || !slices.Contains(st.Failing, "capture") || c == nil ||
		!strings.Contains(c.Error, "was deleted while the agent ran") || c.FailingSince.IsZero() || c.FailingSince.After(time.Now()) {
		t.Fatalf("status = ready %v failing %v capture %+v; want not ready, capture failing with its error and since when", st.Ready, st.Failing, c)
	}
	if n.a.Ready() {
		t.Fatal("Ready() = true while capture fails")
	}
	if v := gaugeValue(t, n.a, "lattice_loop_failing_seconds", "capture"); v <= 0 {
		t.Errorf("lattice_loop_failing_seconds{loop=capture} = %v while capture fails", v)
	}
	if v := gaugeValue(t, n.a, "lattice_ready", ""); v != 0 {
		t.Errorf("lattice_ready = %v while capture fails", v)
	}

	n.reopenDB(t)
	n.exec(t, customersDDL)
	// The agent may open the new file before the table exists in it: the
	// row arrives when the table does.
	var code int
	deadline := time.Now().Add(20 * time.Second)
	for code, _ = readyz(t, n.a); code != 200 || !n.a.Ready() || n.table(customersRows) != "1|Acme|Active"; code, _ = readyz(t, n.a) {
		if time.Now().After(deadline) {
			st, _ := json.Marshal(n.a.Status())
			t.Fatalf("20s after the database is back: readyz %d, table %q, status %s", code, n.table(customersRows), st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st = n.a.Status()
	if len(st.Failing) != 0 || st.Adapter.Capture.Error != "" || !st.Adapter.Capture.FailingSince.IsZero() {
		t.Fatalf("status after recovery: failing %v capture %+v; want healthy", st.Failing, st.Adapter.Capture)
	}
	if v := gaugeValue(t, n.a, "lattice_loop_failing_seconds", "capture"); v != 0 {
		t.Errorf("lattice_loop_failing_seconds{loop=capture} = %v after recovery", v)
	}
	if v := gaugeValue(t, n.a, "lattice_ready", ""); v != 1 {
		t.Errorf("lattice_ready = %v after recovery", v)
	}
}

// A failure shorter than ready.fail_after is reported in status but does
// not make the agent unready.
func TestReadyzToleratesShortFailures(t *testing.T) {
	n := startSQLiteNode(t, t.TempDir(), "a", nil, time.Millisecond, failAfter(time.Hour))
	n.db.Close()
	if err := os.Remove(n.path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "status reports the failing capture", func() bool {
		c := n.a.Status().Adapter.Capture
		return c != nil && !c.FailingSince.IsZero() && strings.Contains(c.Error, "deleted")
	})
	if code, failing := readyz(t, n.a); code != 200 || !n.a.Ready() || len(n.a.Status().Failing) != 0 {
		t.Fatalf("readyz = %d %v, Ready() = %v; want ready while the failure is shorter than fail_after", code, failing, n.a.Ready())
	}
}
