package crdt_test

import (
	"fmt"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/crdt/crdttest"
)

// A Clock takes its physical time as a function, so it can be driven by
// hand: Now never goes back, even when the physical clock does.
func ExampleClock() {
	physical := int64(1_000)
	c := crdt.NewClock(func() int64 { return physical }, 0)
	fmt.Println(c.Now())
	physical = 900 // the clock steps back
	fmt.Println(c.Now())
	// A remote timestamp moves the clock forward (Kulkarni's receive rule)...
	ts, err := c.Update(crdt.Timestamp{Wall: 1_500, Logical: 4})
	fmt.Println(ts, err)
	// ...unless it is too far ahead of the physical clock.
	_, err = c.Update(crdt.Timestamp{Wall: 900 + 2*int64(crdt.DefaultMaxOffset)})
	fmt.Println(crdt.IsClockOffsetError(err))
	// Persist Last with the state; Forward a new clock to it on restart.
	restarted := crdt.NewClock(func() int64 { return 0 }, 0)
	restarted.Forward(c.Last())
	fmt.Println(restarted.Now())
	// Output:
	// 1000,0
	// 1000,1
	// 1500,5 <nil>
	// true
	// 1500,6
}

// Diff turns a row observed in a system into the smallest delta; a row that
// equals the merged view yields nothing, which is what keeps sync loop-free.
func ExampleDiff() {
	c := crdt.MustCollection("customers", []string{"id"}, map[string]crdt.Policy{"tags": {Kind: crdt.ORSet}})
	crm := crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 1}, Source: "crm"}
	tags, _ := crdt.SetOf(crdt.String("vip"))
	d, _ := crdt.Diff(c, nil, crdt.Row{"id": crdt.Int(7), "status": crdt.String("active"), "tags": tags}, crm)
	merged := crdt.Join(c, nil, d)
	fmt.Println(crdttest.FormatRow(merged.View(c)))

	// The merged row, written into another system and read back: no delta.
	erp := crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: 2}, Replica: 2}, Source: "erp"}
	echo, _ := crdt.Diff(c, merged, merged.View(c), erp)
	fmt.Println(echo == nil)

	// A real change yields only the changed field.
	d, _ = crdt.Diff(c, merged, crdt.Row{"status": crdt.String("suspended"), "tags": tags}, erp)
	fmt.Println(len(d.Fields), d.Fields[0].Name)
	// Output:
	// {status="active" tags=["vip"]}
	// true
	// 1 status
}

// Join merges states in any order; concurrent writes to an LWW field are
// decided by stamp, and a delete loses to a later write.
func ExampleJoin() {
	c := crdt.MustCollection("customers", []string{"id"}, nil)
	at := func(wall int64, replica crdt.ReplicaID) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: replica}}
	}
	a, _ := crdt.Diff(c, nil, crdt.Row{"status": crdt.String("active")}, at(10, 1))
	b, _ := crdt.Diff(c, nil, crdt.Row{"status": crdt.String("closed")}, at(11, 2))
	del, _ := crdt.Delete(crdt.Join(c, nil, a), at(12, 1))
	late, _ := crdt.Diff(c, nil, crdt.Row{"status": crdt.String("reopened")}, at(13, 2))

	one := crdt.Join(c, crdt.Join(c, a, b), crdt.Join(c, del, late))
	two := crdt.Join(c, late, crdt.Join(c, del, crdt.Join(c, b, a)))
	fmt.Println(crdt.EqualRecords(one, two), crdttest.FormatRow(one.View(c)))
	fmt.Println(crdttest.FormatRow(crdt.Join(c, crdt.Join(c, a, b), del).View(c)))
	// Output:
	// true {status="reopened"}
	// <none>
}

// SetOps adds and removes OR-set elements; a remove only removes the adds it
// observed, so a concurrent add wins.
func ExampleSetOps() {
	c := crdt.MustCollection("posts", []string{"id"}, map[string]crdt.Policy{"tags": {Kind: crdt.ORSet}})
	at := func(wall int64, replica crdt.ReplicaID) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: replica}}
	}
	add, _ := crdt.SetOps(c, nil, "tags", []crdt.Value{crdt.String("go"), crdt.String("crdt")}, nil, at(1, 1))
	s := crdt.Join(c, nil, add)
	// Replica 1 removes "go" while replica 2, having seen the same state,
	// adds it again.
	rm, _ := crdt.SetOps(c, s, "tags", nil, []crdt.Value{crdt.String("go")}, at(2, 1))
	readd, _ := crdt.SetOps(c, s, "tags", []crdt.Value{crdt.String("go")}, nil, at(2, 2))
	fmt.Println(crdttest.FormatRow(crdt.Join(c, crdt.Join(c, s, rm), readd).View(c)))
	fmt.Println(crdttest.FormatRow(crdt.Join(c, s, rm).View(c)))
	// Output:
	// {tags=["crdt", "go"]}
	// {tags=["crdt"]}
}

// Keys are tuples in an order-preserving encoding: they compare as strings
// the way their tuples compare.
func ExampleMakeKey() {
	a := crdt.MustKey(crdt.String("acme"), crdt.Int(-5))
	b, _ := crdt.MakeKey(crdt.String("acme"), crdt.Int(7))
	c, _ := crdt.MakeKey(crdt.String("acme\x00"), crdt.Int(0))
	fmt.Println(a < b, b < c)
	vals, _ := b.Values()
	fmt.Println(vals, b)
	k, _ := crdt.ParseKeyText(`acme,7`, []crdt.Kind{crdt.KindString, crdt.KindInt})
	fmt.Println(k == b, crdt.MakeID("orders", k))
	// Output:
	// true true
	// ["acme" 7] acme,7
	// true orders/acme,7
}

// A key element holding a comma is escaped in the key's text form;
// JoinKeyText does the escaping and ParseKeyText undoes it.
func ExampleJoinKeyText() {
	text := crdt.JoinKeyText("a,b", `c\d`, "7")
	fmt.Println(text)
	k, err := crdt.ParseKeyText(text, []crdt.Kind{crdt.KindString, crdt.KindString, crdt.KindInt})
	vals, _ := k.Values()
	fmt.Println(vals, err)
	// Output:
	// a\,b,c\\d,7
	// ["a,b" "c\\d" 7] <nil>
}
