// Package bench measures Lattice clusters end to end. It launches sidecars
// in one process on loopback, each beside its own SQLite database
// (StartCluster), its own PostgreSQL database (StartPostgresCluster), or
// with its HTTP API as the system, drives workloads against them the way
// users would, with SQL in the databases themselves or through the API, and
// reports what it measured.
//
// Scenarios:
//
//   - End to end: one change at a time, the time from its commit in one
//     system to the changed row being visible in another: capture, store,
//     gossip, merge and apply. Each sample waits for the whole cluster to
//     converge before the next, so samples do not overlap.
//
//   - Throughput: every node's system takes inserts as fast as it can for a
//     while; the rate is the rows (and field updates) converged in every
//     system per second, from the first write to convergence.
//
//   - The randomized checker (Check; `lattice bench --check N`): seeded
//     schedules of SQL clients, API writers, sidecar restarts (SIGKILL or
//     SIGTERM), PostgreSQL restarts and network partitions (as root:
//     checknet.go) against three sidecars beside SQLite databases and, with
//     CheckOptions.Postgres, databases of a throwaway PostgreSQL server
//     (checkpg.go), then a quiesce and checks: every database's table
//     identical (read with SQL), no drift, an oracle built from what the
//     clients saw committed (the exact state of single-writer keys, tags
//     included; a committed value for shared ones; for the rows only updates
//     write, what last-writer-wins allows by the times the clients read around
//     their statements (lwwAllows); for the orset column tags,
//     every element added by some client, and every element only one client
//     adds and removes present exactly when its last operation was an add),
//     and the rows each sidecar applied bounded by the changes that allow them
//     (checkWriteCounts: each winning change is written into each system once,
//     plus one write-back per local change that crossed an apply), and no
//     client statement finding its own row overwritten by an apply before
//     capture took its write.
//     A seeded half of the schedules replaces a SQLite file by an older copy
//     of itself while its sidecar runs (checkrestore.go), and a seeded half
//     lets the clients create the tag rows concurrently; CheckOptions.Restore
//     and TagInserts put them in every schedule (docs/verify.md).
//
// The Go benchmarks here (BenchmarkEndToEnd, BenchmarkSQLiteThroughput,
// BenchmarkPostgresPropagation) report their figures with b.ReportMetric;
// Run and Report give `lattice bench` the same scenarios as a table, JSON
// and an SVG plot. Timings on a shared machine are noisy: compare against a
// baseline taken in the same run, and quote medians.
package bench
