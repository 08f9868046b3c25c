// Package gossiptest holds what tests and benchmarks of the gossip layer,
// and of anything built on it, need to run clusters in one process:
//
//   - MemReplica, an in-memory CRDT replica that implements gossip.Replica
//     with crdt.Join, a rangetree.Tree of record hashes and a hybrid
//     logical clock that refuses remote stamps too far ahead, as the store
//     does. It is a real replica, not a stand-in: it converges exactly as
//     the store does, only without durability.
//   - Network, an in-memory network of memberlist transports with fault
//     injection: deterministic partitions, packet loss, stream resets and
//     delay, drawn from a seeded generator.
//
// Neither starts goroutines of its own, except the timers that deliver
// delayed packets.
package gossiptest
