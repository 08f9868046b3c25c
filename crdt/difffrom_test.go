package crdt

import (
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func diffFromCollection() *Collection {
	return MustCollection("customers", []string{"id"}, map[string]Policy{
		"tags": {Kind: ORSet},
		"seen": {Kind: Max},
	})
}

func st(wall int64, r ReplicaID) Stamp { return Stamp{TS: Timestamp{Wall: wall}, Replica: r} }

func mustList(t interface{ Fatal(...any) }, vs ...string) Value {
	out := make([]Value, len(vs))
	for i, v := range vs {
		out[i] = String(v)
	}
	l, err := List(out...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A user changes one field while a newer value of another field has been
// merged but not yet written into the user's system: the stale value the
// captured row carries must not overwrite the newer one.
func TestDiffFromKeepsConcurrentRemoteWrite(t *testing.T) {
	c := diffFromCollection()
	base, _ := Diff(c, nil, Row{"status": String("Prospect"), "phone": String("100")}, Origin{Stamp: st(1, 1)})
	merged := Join(c, nil, base)
	remote, _ := Diff(c, merged, Row{"status": String("Active")}, Origin{Stamp: st(2, 2)})
	merged = Join(c, merged, remote)

	old := Row{"status": String("Prospect"), "phone": String("100")}
	row := Row{"status": String("Prospect"), "phone": String("200")}
	d, err := DiffFrom(c, merged, old, row, Origin{Stamp: st(3, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got := Join(c, merged, d).View(c)
	if got["status"].AsString() != "Active" || got["phone"].AsString() != "200" {
		t.Fatalf("view = %v, want status Active (remote) and phone 200 (local)", got)
	}
	// Plain Diff, which does not know the old row, loses the remote write:
	// the reason DiffFrom exists.
	d2, _ := Diff(c, merged, row, Origin{Stamp: st(3, 1)})
	if Join(c, merged, d2).View(c)["status"].AsString() != "Prospect" {
		t.Fatal("Diff no longer overwrites with the captured row; revisit DiffFrom's doc")
	}
}

// Set changes are relative to the set the user started from.
func TestDiffFromSetIntent(t *testing.T) {
	c := diffFromCollection()
	base, _ := Diff(c, nil, Row{"tags": mustList(t, "eu", "trial")}, Origin{Stamp: st(1, 1)})
	merged := Join(c, nil, base)
	// Elsewhere, priority was added and eu removed.
	remote, _ := SetOps(c, merged, "tags", []Value{String("priority")}, []Value{String("eu")}, Origin{Stamp: st(2, 2)})
	merged = Join(c, merged, remote)
	// Here the user, still seeing [eu trial], adds vip and removes trial.
	d, err := DiffFrom(c, merged, Row{"tags": mustList(t, "eu", "trial")}, Row{"tags": mustList(t, "eu", "vip")}, Origin{Stamp: st(3, 1)})
	if err != nil {
		t.Fatal(err)
	}
	got := Join(c, merged, d).View(c)["tags"]
	if want := mustList(t, "priority", "vip"); !Equal(got, want) {
		t.Fatalf("tags = %v, want %v", got, want)
	}
}

func TestDiffFromFallsBackToDiff(t *testing.T) {
	c := diffFromCollection()
	row := Row{"status": String("Active"), "tags": mustList(t, "a")}
	// No old row (an insert): like Diff.
	d1, err := DiffFrom(c, nil, nil, row, Origin{Stamp: st(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := Diff(c, nil, row, Origin{Stamp: st(1, 1)})
	if !EqualRecords(d1, d2) {
		t.Fatalf("DiffFrom(nil old) = %v, Diff = %v", d1, d2)
	}
	// The record was deleted here while the system updated it: the update
	// brings back the whole row the system holds.
	merged := Join(c, nil, d1)
	del, _ := Delete(merged, Origin{Stamp: st(2, 2)})
	merged = Join(c, merged, del)
	upd := Row{"status": String("Active"), "tags": mustList(t, "a"), "phone": String("9")}
	d3, err := DiffFrom(c, merged, row, upd, Origin{Stamp: st(3, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := Join(c, merged, d3).View(c); len(got) != 3 {
		t.Fatalf("update after a concurrent delete = %v, want the whole row", got)
	}
	// A deleted row is a delete, old or not.
	d4, err := DiffFrom(c, merged, row, nil, Origin{Stamp: st(3, 1)})
	if err != nil || d4 != nil {
		t.Fatalf("DiffFrom of a delete on a deleted record = %v, %v; want nothing", d4, err)
	}
}

// Property: for a change from old to row, fields the change did not touch
// keep their merged values, touched lww fields take the row's value, and
// touched set elements follow the change's adds and removes.
func TestDiffFromProperty(t *testing.T) {
	c := diffFromCollection()
	names := []string{"a", "b", "c"}
	elems := []string{"x", "y", "z", "w"}
	rapid.Check(t, func(t *rapid.T) {
		genRow := func(label string) Row {
			r := Row{}
			for _, n := range names {
				if rapid.Bool().Draw(t, label+n) {
					r[n] = String(rapid.SampledFrom([]string{"1", "2", "3"}).Draw(t, label+n+"v"))
				} else {
					r[n] = Null()
				}
			}
			var tags []string
			for _, e := range elems {
				if rapid.Bool().Draw(t, label+"tag"+e) {
					tags = append(tags, e)
				}
			}
			r["tags"] = mustList(t, tags...)
			return r
		}
		// The merged state: an initial row, then a concurrent change from
		// another replica that this system has not seen yet.
		initial := genRow("init")
		d0, err := Diff(c, nil, initial, Origin{Stamp: st(1, 1)})
		if err != nil {
			t.Fatal(err)
		}
		merged := Join(c, nil, d0)
		remote := genRow("remote")
		dr, err := Diff(c, merged, remote, Origin{Stamp: st(2, 2)})
		if err != nil {
			t.Fatal(err)
		}
		merged = Join(c, merged, dr)
		view := merged.View(c)
		// The user's change, from the initial row.
		row := genRow("user")
		d, err := DiffFrom(c, merged, initial, row, Origin{Stamp: st(3, 1)})
		if err != nil {
			t.Fatal(err)
		}
		got := Join(c, merged, d).View(c)
		for _, n := range names {
			want := view[n]
			if !Equal(initial[n], row[n]) {
				want = row[n]
			}
			if !Equal(got[n], want) {
				t.Fatalf("field %s = %v, want %v (initial %v, remote-merged %v, user %v)", n, got[n], want, initial[n], view[n], row[n])
			}
		}
		in := func(v Value, s string) bool {
			return slices.ContainsFunc(v.AsList(), func(e Value) bool { return e.AsString() == s })
		}
		for _, e := range elems {
			added := !in(initial["tags"], e) && in(row["tags"], e)
			removed := in(initial["tags"], e) && !in(row["tags"], e)
			want := in(view["tags"], e)
			if added {
				want = true
			}
			if removed {
				want = false
			}
			if in(got["tags"], e) != want {
				t.Fatalf("element %s present = %v, want %v", e, in(got["tags"], e), want)
			}
		}
	})
}

// The same key inserted in two systems at once, each with a set: whichever
// insert a replica merges first, both sets' elements survive, because an
// inserting user saw no element to remove. Under Diff the second insert
// captured removed the first one's elements when that had arrived first.
func TestDiffInsertKeepsConcurrentElements(t *testing.T) {
	c := diffFromCollection()
	insA, err := DiffInsert(c, nil, Row{"tags": mustList(t, "x")}, Origin{Stamp: st(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	want := mustList(t, "x", "y")
	// B merged A's insert before its own user's insert was captured.
	merged := Join(c, nil, insA)
	insB, err := DiffInsert(c, merged, Row{"tags": mustList(t, "y")}, Origin{Stamp: st(2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := Join(c, merged, insB).View(c)["tags"]; !Equal(got, want) {
		t.Fatalf("A's insert merged first: tags = %v, want %v", got, want)
	}
	// B captured its insert first, then merged A's.
	insB2, err := DiffInsert(c, nil, Row{"tags": mustList(t, "y")}, Origin{Stamp: st(2, 2)})
	if err != nil {
		t.Fatal(err)
	}
	if got := Join(c, Join(c, nil, insB2), insA).View(c)["tags"]; !Equal(got, want) {
		t.Fatalf("B's insert captured first: tags = %v, want %v", got, want)
	}
	// Diff, for an insert, depends on the order: the reason DiffInsert exists.
	d, _ := Diff(c, merged, Row{"tags": mustList(t, "y")}, Origin{Stamp: st(2, 2)})
	if got := Join(c, merged, d).View(c)["tags"]; Equal(got, want) {
		t.Fatal("Diff of an insert keeps the merged elements now; revisit DiffInsert's doc")
	}
}
