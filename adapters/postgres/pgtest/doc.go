// Package pgtest starts throwaway PostgreSQL servers for tests: a fresh data
// directory per server (initdb with trust authentication), a free TCP port on
// 127.0.0.1, wal_level=logical and enough replication slots and WAL senders
// for logical replication, fsync off. Servers can be stopped, killed with
// SIGKILL and started again on the same data and port, which is what restart
// tests need.
//
// Integration tests call Start, which skips the test unless
// LATTICE_INTEGRATION=1 is set, and also skips when no PostgreSQL binaries
// are installed unless LATTICE_REQUIRE_INTEGRATION=1 turns that skip into a
// failure (so that CI cannot pass by skipping).
//
// Binaries are looked for in PGTEST_BINDIR, then in the directory that
// pg_config --bindir names, then in /usr/lib/postgresql/<version>/bin (the
// newest version first). PostgreSQL refuses to run as root: when the test runs
// as root, initdb and postgres run as the "postgres" OS user, and the server's
// directories are owned by that user.
//
// Invariants: a Server owns its process and its directory. Close (registered
// with t.Cleanup by Start) stops the process and waits for it, then removes
// the directory. If the test binary dies, the kernel kills the postmaster
// (Pdeathsig), whose children then exit on their own; only the temporary
// directory may be left behind.
//
// Trade-offs: a server costs an initdb and a start, about 0.6 s on two cores
// with PostgreSQL 15 (a restart on the same data about 30 ms), and three
// servers started concurrently take one to two seconds. Tests that share a
// server use one database each (CreateDB), about 0.1 s.
package pgtest
