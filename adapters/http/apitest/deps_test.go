package apitest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNotInTheBinary checks that the lattice binary depends neither on
// this package nor on PocketBase.
func TestNotInTheBinary(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list the packages with: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "github.com/lattice-crdt/lattice/cmd/lattice").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasSuffix(p, "/apitest") || strings.Contains(p, "/apitest/") || strings.HasPrefix(p, "github.com/pocketbase/") {
			t.Errorf("the lattice binary depends on %s", p)
		}
	}
}
