package sidecar

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// statusKeys lists the key paths of a JSON document: "a.b" for objects,
// "a[].b" for the objects in arrays.
func statusKeys(prefix string, v any, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			statusKeys(p, e, out)
		}
	case []any:
		for _, e := range v {
			statusKeys(prefix+"[]", e, out)
		}
	}
}

// The status document's keys are the documented ones, all snake_case: no
// Go struct is marshalled as it is ("Lag": 10091236), and durations say
// their unit.
func TestStatusKeys(t *testing.T) {
	dir := t.TempDir()
	a := startSQLiteNode(t, dir, "a", nil, time.Millisecond)
	b := startSQLiteNode(t, dir, "b", []string{a.a.Node().Addr()}, time.Millisecond)
	a.exec(t, `INSERT INTO customers VALUES (1, 'Acme', 'Active', NULL, NULL)`)
	converged(t, 1, "Acme|Active||", a, b)

	r := do(t, b.a, "GET", "/v1/status", "", "")
	if r.code != 200 {
		t.Fatalf("GET /v1/status = %d %s", r.code, r.body)
	}
	var doc any
	if err := json.Unmarshal([]byte(r.body), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	statusKeys("", doc, got)

	required := []string{
		"node", "replica", "version", "ready", "time", "digest", "records", "pending_apply", "schema_fingerprint",
		"members", "members[].name", "members[].replica", "members[].addr", "members[].api_addr", "members[].version", "members[].state",
		"members[].schema_fingerprint", "members[].lag_ms", "members[].queued_deltas", "members[].connected",
		"adapter", "adapter.kind",
		"adapter.capture", "adapter.capture.state", "adapter.capture.since",
		"adapter.apply", "adapter.apply.state", "adapter.apply.since",
		"gossip",
	}
	for _, k := range []string{"members", "deltas_sent", "fragments_sent", "deltas_received", "fragments_received",
		"fragments_merged", "fragments_relayed", "fragments_dropped", "fragments_rejected", "bytes_in", "bytes_out",
		"syncs", "sync_failures", "syncs_refused", "sync_records_sent", "sync_records_received", "sync_bytes",
		"bootstraps", "bootstrap_records", "bootstrap_bytes", "bootstraps_served", "decode_errors", "rejected_peers",
		"handshakes_over_cap", "handshake_timeouts", "handshakes_malformed", "handshakes_unauthenticated", "handshakes_refused",
		"schema_mismatches", "merge_errors", "name_conflicts"} {
		required = append(required, "gossip."+k)
	}
	optional := []string{
		"failing", "parked", "parked[].collection", "parked[].key", "parked[].reason", "parked[].at",
		"members[].schema_mismatch", "members[].last_contact",
		"adapter.verify", "adapter.verify.state", "adapter.verify.since",
		"verify", "verify.at", "verify.seconds", "verify.rows", "verify.drift_records", "verify.repaired", "verify.repair",
		"verify.system_digest", "verify.system_rows",
	}
	for _, loop := range []string{"capture", "apply", "verify"} {
		for _, k := range []string{"error", "failing_since", "retries", "last_batch"} {
			optional = append(optional, "adapter."+loop+"."+k)
		}
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for k := range got {
		for _, part := range strings.Split(strings.ReplaceAll(k, "[]", ""), ".") {
			if !snake.MatchString(part) {
				t.Errorf("key %q is not snake_case", k)
			}
		}
		if !slices.Contains(required, k) && !slices.Contains(optional, k) {
			t.Errorf("undocumented key %q", k)
		}
	}
	for _, k := range required {
		if !got[k] {
			t.Errorf("missing key %q", k)
		}
	}
	// A peer's replica ID stands next to its name.
	var st Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		t.Fatal(err)
	}
	if want := a.a.store.ReplicaID().String(); len(st.Members) != 1 || st.Members[0].Name != "a" || st.Members[0].Replica != want {
		t.Errorf("b's members = %+v, want a with replica %s", st.Members, want)
	}
	if t.Failed() {
		t.Logf("status: %s", r.body)
	}
}
