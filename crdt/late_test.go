package crdt

import "testing"

// A change stamped with its commit time may be older than writes merged
// before it was captured: it loses to them, whichever side deleted.
func TestLateOrigin(t *testing.T) {
	c := diffFromCollection()
	row := Row{"status": String("Active"), "phone": String("100")}
	insert, _ := Diff(c, nil, row, Origin{Stamp: st(10, 1)})
	base := Join(c, nil, insert)

	t.Run("an older delete loses to a newer update", func(t *testing.T) {
		upd, _ := Diff(c, base, Row{"status": String("Churned")}, Origin{Stamp: st(30, 2)})
		merged := Join(c, base, upd)
		if _, err := Delete(merged, Origin{Stamp: st(20, 1)}); err == nil {
			t.Fatal("a delete older than the record without Late was accepted")
		}
		d, err := Delete(merged, Origin{Stamp: st(20, 1), Late: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := Join(c, merged, d); !got.Exists() || got.View(c)["status"].AsString() != "Churned" {
			t.Fatalf("after the late delete: %v, want the update kept", got.View(c))
		}
	})
	t.Run("an older update does not undo a newer delete", func(t *testing.T) {
		del, _ := Delete(base, Origin{Stamp: st(30, 2)})
		merged := Join(c, base, del)
		d, err := DiffFrom(c, merged, row, Row{"status": String("Churned"), "phone": String("100")}, Origin{Stamp: st(20, 1), Late: true})
		if err != nil {
			t.Fatal(err)
		}
		if d != nil && !d.Reset.IsZero() {
			t.Fatalf("the late update re-inserts (Reset %s) a record deleted after it", d.Reset)
		}
		if got := Join(c, merged, d); got.Exists() {
			t.Fatalf("after the late update: %v, want the record deleted", got.View(c))
		}
	})
	t.Run("a late write newer than everything is an ordinary write", func(t *testing.T) {
		d, err := DiffFrom(c, base, row, Row{"status": String("Churned"), "phone": String("100")}, Origin{Stamp: st(40, 1), Late: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := Join(c, base, d); got.View(c)["status"].AsString() != "Churned" {
			t.Fatalf("after the late update: %v", got.View(c))
		}
	})
}

// Floor is above the writes the row shows, the delete a missing row shows,
// and every stamp of the replica itself; not above writes the row does not
// show.
func TestFloor(t *testing.T) {
	c := diffFromCollection()
	ins, _ := Diff(c, nil, Row{"status": String("Prospect"), "phone": String("100"), "tags": mustList(t, "b", "a")}, Origin{Stamp: st(10, 1)})
	r := Join(c, nil, ins)
	remote, _ := Diff(c, r, Row{"status": String("Active")}, Origin{Stamp: st(20, 2)})
	r = Join(c, r, remote)
	for _, tc := range []struct {
		name    string
		seen    Row
		replica ReplicaID
		want    Stamp
	}{
		{"the row shows the remote write", Row{"status": String("Active"), "phone": String("100")}, 3, st(20, 2)},
		{"the row shows older values only", Row{"status": String("Prospect"), "phone": String("100")}, 3, st(10, 1)},
		{"a set in another order", Row{"status": String("Prospect"), "tags": mustList(t, "a", "b")}, 3, st(10, 1)},
		{"own stamps count whatever the row shows", Row{"status": String("Prospect")}, 2, st(20, 2)},
		{"the row shows nothing the record holds", Row{"status": String("Lost")}, 3, Stamp{}},
		{"no row reported: everything", nil, 3, st(20, 2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Floor(c, tc.seen, tc.replica); got != tc.want {
				t.Fatalf("Floor = %s, want %s", got, tc.want)
			}
		})
	}
	del, _ := Delete(r, Origin{Stamp: st(30, 2)})
	gone := Join(c, r, del)
	if got := gone.Floor(c, nil, 3); got != st(30, 2) {
		t.Fatalf("Floor of a deleted record for a new row = %s, want the delete %s", got, st(30, 2))
	}
}
