package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The demo passes: its own checks compare the three databases with each
// other and with their sidecars' merged states, and count writes.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), Options{Dir: t.TempDir(), Out: &out}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "No update war.") {
		t.Fatalf("the demo did not report its write counts:\n%s", out.String())
	}
}

// The update-war check allows what the design allows and nothing more.
func TestWriteCountCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    writeCount
		war  bool
	}{
		{"each change once", writeCount{fromUsers: 3, fromLattice: 11, elsewhere: 11, captured: 3}, false},
		// web in a run that the first version of this check failed: one
		// merged value written back after it crossed web's own change.
		{"one write-back", writeCount{fromUsers: 1, fromLattice: 12, elsewhere: 11, captured: 1}, false},
		{"a write-back per change elsewhere", writeCount{fromUsers: 3, fromLattice: 22, elsewhere: 11, captured: 3}, false},
		{"more writes than the design allows", writeCount{fromUsers: 3, fromLattice: 23, elsewhere: 11, captured: 3}, true},
		{"own writes captured back", writeCount{fromUsers: 3, fromLattice: 11, elsewhere: 11, captured: 4}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.w.system = "web"
			if err := tc.w.check(); (err != nil) != tc.war {
				t.Fatalf("check() = %v, want war %v", err, tc.war)
			}
		})
	}
}
