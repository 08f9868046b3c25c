package engine

import (
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// Join.systemWins per mode, on live and deleted records, with the kinds a
// newest field takes.
func TestJoinSystemWins(t *testing.T) {
	c := crdt.MustCollection("c", []string{"id"}, nil)
	at := func(sec int64) crdt.Value { return crdt.Time(time.Unix(sec, 0)) }
	stamp := func(ms int64) crdt.Origin {
		return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: ms * int64(time.Millisecond)}, Replica: 2}, Source: "n2"}
	}
	live := func(row crdt.Row) *crdt.Record {
		d, err := crdt.Diff(c, nil, row, stamp(1000))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	deletedAt := func(ms int64) *crdt.Record {
		d, err := crdt.Delete(live(crdt.Row{"x": crdt.String("a")}), stamp(ms))
		if err != nil {
			t.Fatal(err)
		}
		return crdt.Join(c, live(crdt.Row{"x": crdt.String("a")}), d)
	}
	newest := Join{Mode: JoinNewest, Field: "at"}
	for _, tt := range []struct {
		name   string
		join   Join
		merged *crdt.Record
		row    crdt.Row
		want   bool
	}{
		{"cluster never", Join{}, live(crdt.Row{"at": at(1)}), crdt.Row{"at": at(9)}, false},
		{"system always", Join{Mode: JoinSystem}, live(crdt.Row{"at": at(9)}), crdt.Row{"at": at(1)}, true},
		{"newest: newer time", newest, live(crdt.Row{"at": at(1)}), crdt.Row{"at": at(2)}, true},
		{"newest: older time", newest, live(crdt.Row{"at": at(2)}), crdt.Row{"at": at(1)}, false},
		{"newest: equal time", newest, live(crdt.Row{"at": at(2)}), crdt.Row{"at": at(2)}, false},
		{"newest: numbers", newest, live(crdt.Row{"at": crdt.Int(9)}), crdt.Row{"at": crdt.Int(10)}, true},
		{"newest: ISO text", newest, live(crdt.Row{"at": crdt.String("2026-01-09")}), crdt.Row{"at": crdt.String("2026-01-10")}, true},
		{"newest: kinds differ", newest, live(crdt.Row{"at": crdt.Int(1)}), crdt.Row{"at": crdt.String("2")}, false},
		{"newest: system null", newest, live(crdt.Row{"at": at(1)}), crdt.Row{"at": crdt.Null()}, false},
		{"newest: system lacks the field", newest, live(crdt.Row{"at": at(1)}), crdt.Row{"x": crdt.String("b")}, false},
		{"newest: merged null", newest, live(crdt.Row{"x": crdt.String("a")}), crdt.Row{"at": at(1)}, true},
		{"newest: after the delete", newest, deletedAt(5000), crdt.Row{"at": at(6)}, true},
		{"newest: before the delete", newest, deletedAt(5000), crdt.Row{"at": at(4)}, false},
		{"newest: deleted, not a time", newest, deletedAt(5000), crdt.Row{"at": crdt.Int(1 << 40)}, false},
	} {
		if got := tt.join.systemWins(c, tt.merged, tt.row); got != tt.want {
			t.Errorf("%s: systemWins = %v, want %v", tt.name, got, tt.want)
		}
	}
}
