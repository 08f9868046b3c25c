package sidecar

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// bypass writes into a node's database inside the SQLite adapter's echo
// guard, as only Lattice's own apply does: capture never sees it.
func (n *sqliteNode) bypass(t *testing.T, stmts ...string) {
	t.Helper()
	tx, err := n.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // committed below
	for _, q := range append(append([]string{`INSERT OR REPLACE INTO _lattice_apply(x) VALUES(1)`}, stmts...), `DELETE FROM _lattice_apply`) {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// driftPair starts two nodes with three rows everywhere, then changes b's
// database behind capture's back: one field changed, one row deleted, one
// row the cluster never had.
func driftPair(t *testing.T, mods ...func(*Config)) (a, b *sqliteNode) {
	t.Helper()
	dir := t.TempDir()
	a = dated(t, dir, "a", nil, `(1, 'Acme', 'v1', ''), (2, 'Beta', 'v1', ''), (3, 'Gamma', 'v1', '')`)
	a.start(t)
	b = dated(t, dir, "b", []string{a.a.Node().Addr()}, "", mods...)
	b.start(t)
	customersEqual(t, "1=Acme|v1| 2=Beta|v1| 3=Gamma|v1|", a, b)
	b.bypass(t, `UPDATE customers SET status = 'drifted' WHERE id = 1`,
		`DELETE FROM customers WHERE id = 2`,
		`INSERT INTO customers (id, name, status) VALUES (99, 'Stray', 'x')`)
	if got := b.customers(t); got != "1=Acme|drifted| 3=Gamma|v1| 99=Stray|x|" {
		t.Fatalf("b holds %s after the bypassing writes", got)
	}
	return a, b
}

func driftKinds(rep *VerifyReport) string {
	var out []string
	for _, d := range rep.Drift {
		s := d.Key + ":" + d.Kind
		for _, f := range d.Fields {
			s += " " + f.Field + "=" + string(f.System) + "/" + string(f.Merged)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// A pass in report mode finds every kind of drift and names the fields,
// repairs nothing, and gives a system digest that differs from the peer's
// until the systems are equal again.
func TestVerifyReportsDrift(t *testing.T) {
	a, b := driftPair(t, func(c *Config) { c.Verify.Disabled = true })
	ctx := context.Background()
	rep, err := b.a.Verify(ctx, RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `1:differs status="drifted"/"v1"; 2:missing_in_system name=null/"Beta" status=null/"v1" updated_at=null/""; 99:not_in_merged_state name="Stray"/null status="x"/null`
	if got := driftKinds(rep); got != want || rep.DriftRecords != 3 || rep.Repaired != 0 {
		t.Fatalf("drift %s (%d records, %d repaired)\nwant %s", got, rep.DriftRecords, rep.Repaired, want)
	}
	if got := gauge(t, b.a, "lattice_drift_records"); got != 3 {
		t.Errorf("lattice_drift_records = %v, want 3", got)
	}
	ra, err := a.a.Verify(ctx, RepairReport, false)
	if err != nil {
		t.Fatal(err)
	}
	if ra.DriftRecords != 0 || ra.SystemDigest == rep.SystemDigest {
		t.Fatalf("a: %d drift records, system digest %s (b's %s)", ra.DriftRecords, ra.SystemDigest, rep.SystemDigest)
	}
	if got := b.customers(t); got != "1=Acme|drifted| 3=Gamma|v1| 99=Stray|x|" {
		t.Fatalf("a report-only pass changed b: %s", got)
	}
	// Repaired, the two systems have equal digests.
	if _, err := b.a.Verify(ctx, RepairApply, false); err != nil {
		t.Fatal(err)
	}
	customersEqual(t, "1=Acme|v1| 2=Beta|v1| 3=Gamma|v1|", a, b)
	ra, _ = a.a.Verify(ctx, RepairReport, false)
	rb, _ := b.a.Verify(ctx, RepairReport, false)
	if rb.DriftRecords != 0 || ra.SystemDigest != rb.SystemDigest || ra.SystemRows != 3 {
		t.Fatalf("after repair: b has %d drift records; system digests %s (%d rows) and %s", rb.DriftRecords, ra.SystemDigest, ra.SystemRows, rb.SystemDigest)
	}
}

// The periodic pass (repair: apply, the default) finds drift made behind
// capture's back and writes the merged state over it within one interval.
func TestVerifyRepairsDriftWithinInterval(t *testing.T) {
	a, b := driftPair(t, func(c *Config) { c.Verify.Interval = 300 * time.Millisecond })
	start := time.Now()
	customersEqual(t, "1=Acme|v1| 2=Beta|v1| 3=Gamma|v1|", a, b)
	t.Logf("repaired %s after the drift", time.Since(start).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "a pass with no drift", func() bool {
		r := b.a.LastVerify()
		return r != nil && r.DriftRecords == 0
	})
	st := b.a.Status()
	if st.Adapter.Verify == nil || st.Adapter.Verify.LastBatch.IsZero() || st.Verify == nil || st.Verify.DriftRecords != 0 {
		t.Fatalf("status: verify loop %+v, last pass %+v", st.Adapter.Verify, st.Verify)
	}
}

// With repair: capture, the system's rows win: the drift becomes local
// changes and reaches the peer.
func TestVerifyRepairCaptureTakesSystemRows(t *testing.T) {
	a, b := driftPair(t, func(c *Config) { c.Verify.Disabled = true })
	rep, err := b.a.Verify(context.Background(), RepairCapture, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 3 {
		t.Fatalf("repaired %d, want 3: %s", rep.Repaired, driftKinds(rep))
	}
	customersEqual(t, "1=Acme|drifted| 3=Gamma|v1| 99=Stray|x|", a, b)
}

// A user's write that capture has not taken in yet is not drift: the pass
// waits for capture before it confirms a difference.
func TestVerifyIgnoresUncapturedUserWrite(t *testing.T) {
	dir := t.TempDir()
	a := dated(t, dir, "a", nil, `(1, 'Acme', 'v1', '')`, func(c *Config) {
		c.Verify.Disabled = true
		c.Adapter.PollInterval = 300 * time.Millisecond
	})
	a.start(t)
	a.exec(t, `UPDATE customers SET status = 'v2' WHERE id = 1`)
	rep, err := a.a.Verify(context.Background(), RepairApply, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DriftRecords != 0 {
		t.Fatalf("drift %s", driftKinds(rep))
	}
	if got := a.customers(t); got != "1=Acme|v2|" {
		t.Fatalf("table %s", got)
	}
}

// gauge reads a gauge from an agent's registry.
func gauge(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// docs/metrics.md lists the verification metrics an agent that verifies
// exports, with their help text.
func TestVerifyMetricsDoc(t *testing.T) {
	a, _ := driftPair(t, func(c *Config) { c.Verify.Disabled = true })
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := a.a.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "lattice_drift") && !strings.HasPrefix(name, "lattice_verify") {
			continue
		}
		n++
		row := fmt.Sprintf("| `%s` | %s |  | %s |", name, strings.ToLower(mf.GetType().String()), mf.GetHelp())
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/metrics.md lacks %s", row)
		}
	}
	if n != 5 {
		t.Errorf("%d verification metrics exported, want 5", n)
	}
}
