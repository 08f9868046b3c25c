package apitest

import (
	"net"
	"os"
	"testing"
)

const (
	// EnvIntegration must be 1 for the integration tests to run.
	EnvIntegration = "LATTICE_INTEGRATION"
	// EnvRequire set to 1 turns a skip for a missing prerequisite into a
	// failure.
	EnvRequire = "LATTICE_REQUIRE_INTEGRATION"
)

// requireIntegration skips t unless LATTICE_INTEGRATION=1.
func requireIntegration(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvIntegration) != "1" {
		t.Skipf("integration test: set %s=1 to run it", EnvIntegration)
	}
}

// missing skips t for a missing prerequisite, or fails it under
// LATTICE_REQUIRE_INTEGRATION=1.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf(EnvRequire+"=1 but: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
