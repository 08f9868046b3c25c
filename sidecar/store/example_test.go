package store_test

import (
	"fmt"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/store"
)

// A captured row becomes a delta to broadcast and the merged state; the
// adapter cursor is stored with it.
func Example() {
	schema := crdt.MustSchema(crdt.MustCollection("customers", []string{"id"}, map[string]crdt.Policy{
		"tags": {Kind: crdt.ORSet},
	}))
	opts := store.DefaultOptions()
	opts.InMemory = true
	s, err := store.Open("", schema, opts)
	if err != nil {
		panic(err)
	}
	defer s.Close()

	key := crdt.IntKey(42)
	tags, _ := crdt.List(crdt.String("vip"))
	res, err := s.Local("crm", []store.Change{{
		Collection: "customers", Key: key, Full: true, Captured: true,
		Row: crdt.Row{"id": crdt.Int(42), "name": crdt.String("Ada"), "tags": tags},
	}}, &store.Cursor{Name: "sqlite", Value: []byte("seq:17")})
	if err != nil {
		panic(err)
	}
	fmt.Println("fragments to send:", res.Delta.Len(), "queued for apply:", len(res.Effects))

	rec, _ := s.Get("customers", key)
	c, _ := schema.Collection("customers")
	view := rec.View(c)
	fmt.Println(view["name"], view["tags"])
	cur, _ := s.Cursor("sqlite")
	fmt.Println(string(cur))
	// Output:
	// fragments to send: 1 queued for apply: 0
	// "Ada" ["vip"]
	// seq:17
}
