package gossip_test

import (
	"context"
	"fmt"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

// Two nodes on an in-memory network: a write at one reaches the other.
func Example() {
	net := gossiptest.NewNetwork(1)
	key, _ := gossip.GenerateKey()
	start := func(name string) (*gossip.Node, *gossiptest.MemReplica) {
		cfg := gossip.DefaultConfig()
		cfg.Name = name
		cfg.Keys = [][]byte{key}
		cfg.Label = "example"
		cfg.Transport = net.NewTransport(name)
		rep := gossiptest.NewMemReplica(crdt.MustSchema(), crdt.ReplicaID(len(name)), name)
		n, err := gossip.New(cfg, rep)
		if err != nil {
			panic(err)
		}
		return n, rep
	}
	crm, crmData := start("crm")
	defer crm.Close()
	erp, erpData := start("erp-1")
	defer erp.Close()
	if _, err := erp.Join(context.Background(), []string{crm.Addr()}); err != nil {
		panic(err)
	}

	d, _ := crmData.Put("customers", crdt.StringKey("c1"), crdt.Row{"phone": crdt.String("555-0100")})
	crm.Broadcast(d)

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if r := erpData.Get("customers", crdt.StringKey("c1")); r != nil {
			v, _, _ := r.Get(nil, "phone")
			fmt.Println("erp-1 sees phone", v.AsString())
			break
		}
	}
	// Output: erp-1 sees phone 555-0100
}
