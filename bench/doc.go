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
//   - Throughput: every node's system takes inserts as fast as it can for a
//     while; the rate is the rows (and field updates) converged in every
//     system per second, from the first write to convergence.
//
// The Go benchmarks here (BenchmarkEndToEnd, BenchmarkSQLiteThroughput,
// BenchmarkPostgresPropagation) report their figures with b.ReportMetric;
// Run and Report give `lattice bench` the same scenarios as a table, JSON
// and an SVG plot. Timings on a shared machine are noisy: compare against a
// baseline taken in the same run, and quote medians.
package bench
