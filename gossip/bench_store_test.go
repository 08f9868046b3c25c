package gossip_test

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// storeReplica is the thin wrapper that makes a *store.Store a
// gossip.Replica: Merge reports the store's rejections (clock offset,
// unknown collection) as errors next to the changed fragments.
type storeReplica struct {
	*store.Store
	source string
}

var _ gossip.Replica = storeReplica{}

func (s storeReplica) Merge(d *crdt.Delta) (*crdt.Delta, error) {
	res, err := s.Store.Merge(d)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, r := range res.Rejected {
		errs = append(errs, r.Err)
	}
	return res.Changed, errors.Join(errs...)
}

func (s storeReplica) write(keys []crdt.Key, value string) (*crdt.Delta, error) {
	changes := make([]store.Change, len(keys))
	for i, k := range keys {
		changes[i] = store.Change{Collection: "items", Key: k, Row: crdt.Row{"v": crdt.String(value)}}
	}
	res, err := s.Local(s.source, changes, nil)
	if err != nil {
		return nil, err
	}
	return res.Delta, nil
}

// BenchmarkThroughputStore is BenchmarkThroughput with each node on a
// durable Badger store (fsync on every commit); local changes are written
// 100 per transaction, as an adapter delivers a captured batch.
func BenchmarkThroughputStore(b *testing.B) {
	throughput(b, func(i int) writer {
		s, err := store.Open(b.TempDir(), benchSchema, store.DefaultOptions())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return storeReplica{Store: s, source: fmt.Sprint("b", i)}
	}, 100)
}
