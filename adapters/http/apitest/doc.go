// Package apitest starts real API servers for the integration tests of the
// http adapter and of the packages that use it (sidecar, cmd/lattice,
// bench): json-server, and PocketBase. It is test support: the lattice
// binary never imports it.
//
// Integration tests call StartJSONServer or StartPocketBase, which skip the
// test unless LATTICE_INTEGRATION=1 is set, and also skip when what the
// server needs is missing (Node.js and npm for json-server; a Go command
// that can fetch the toolchain PocketBase needs) unless
// LATTICE_REQUIRE_INTEGRATION=1 turns that skip into a failure (so that CI
// cannot pass by skipping).
//
// json-server is installed with npm into the user's cache directory once.
// PocketBase is built from the module in the pocketbase directory next to
// this file: its own module, because PocketBase needs a newer Go than
// Lattice and must never become a dependency of the lattice binary. The
// build runs the go command with GOTOOLCHAIN set to PocketBaseToolchain
// (the go command fetches that toolchain through the module proxy) and
// keeps the binary in the user's cache directory under a hash of the
// module's go.mod, go.sum and main.go; a file lock makes test processes
// that start at once build it once.
//
// Invariants: a server owns its process and its temporary directory; the
// t.Cleanup its starter registers stops the process and waits for it. On
// Linux a server is killed when the test process dies (Pdeathsig).
//
// Trade-offs: a cold PocketBase build (toolchain download, PocketBase's
// dependencies, no Go build cache) takes minutes (10.5 on a busy two-core
// machine), so `make pocketbase` builds it outside the tests' timeout; a
// cached binary costs nothing, and a PocketBase start with a fresh data
// directory and a superuser takes about half a second.
package apitest
