package bench

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

func strp(s string) *string { return &s }

func TestSetText(t *testing.T) {
	for _, tt := range []struct {
		in   *string
		want string // "<nil>" for nil
	}{
		{nil, "<nil>"},
		{strp(`[]`), "<nil>"},
		{strp(`["b","a"]`), "a,b"},
		{strp(`["a","a"]`), "a,a"},
		{strp(`not json`), "!not json"},
	} {
		got := "<nil>"
		if p := setText(tt.in); p != nil {
			got = *p
		}
		if got != tt.want {
			t.Errorf("setText(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The oracle's set checks: an element no client added fails; an element
// whose only client last added it must be present, and one it last removed
// absent; an own row's tags are exactly what its client last saw.
func TestLedgerCheckSets(t *testing.T) {
	const tagRow = tagKeyFirst
	const own = writerSpace + 1
	l := newLedger()
	l.setOp(0, tagRow, "red", true, false, false)
	l.setOp(0, tagRow, "u1-1", true, true, false)
	l.setOp(0, tagRow, "u1-2", true, true, false)
	l.setOp(0, tagRow, "u1-2", false, true, false)
	l.setOwn(0, own, map[string]string{"a": "x", "b": "y", "tags": "blue,red"})
	l.setOwn(0, own, map[string]string{"a": "x", "b": "y", "tags": "red"})
	table := func(tags, ownTags string) map[int64]checkRow {
		return map[int64]checkRow{
			tagRow: {nil, nil, nil, setText(strp(tags))},
			own:    {strp("x"), strp("y"), nil, setText(strp(ownTags))},
		}
	}
	for _, tt := range []struct {
		name, tags, ownTags string
		want                string // "" for no error
	}{
		{"as committed", `["u1-1","red"]`, `["red"]`, ""},
		{"element nobody added", `["red","u1-1","green"]`, `["red"]`, `holds "green", which no client added`},
		{"added element lost", `["red"]`, `["red"]`, `element "u1-1" present false, want true`},
		{"remove lost", `["red","u1-1","u1-2"]`, `["red"]`, `element "u1-2" present true, want false`},
		{"own remove lost", `["red","u1-1"]`, `["blue","red"]`, "holds x|y|null|blue,red"},
		{"own add lost", `["red","u1-1"]`, `[]`, "holds x|y|null|null"},
	} {
		err := l.check(table(tt.tags, tt.ownTags))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

// Writes a client made between the copy of its database and the
// replacement of the file leave the exact check.
func TestLedgerWindow(t *testing.T) {
	l := newLedger()
	l.setOwn(1, writerSpace+1, map[string]string{"a": "old", "b": "b"})
	l.setWindow(1, true)
	l.setOwn(1, writerSpace+1, map[string]string{"a": "new", "b": "b"})
	l.setOwn(0, 2*writerSpace+1, map[string]string{"a": "other", "b": "b"})
	l.setOp(1, tagKeyFirst, "u1-1", true, true, false)
	l.setWindow(1, false)
	final := map[int64]checkRow{
		writerSpace + 1:   {strp("old"), strp("b"), nil, nil},
		2*writerSpace + 1: {strp("lost"), strp("b"), nil, nil},
	}
	err := l.check(final)
	if err == nil || !strings.Contains(err.Error(), "row 200001 holds lost|b") {
		t.Fatalf("got %v, want only row 200001 reported", err)
	}
	if strings.Contains(err.Error(), "100001") || strings.Contains(err.Error(), "u1-1") {
		t.Fatalf("got %v: a write made in the window was checked", err)
	}
}

func TestCheckWriteCounts(t *testing.T) {
	nodes := []*checkNode{{name: "n1"}, {name: "n2"}}
	counts := []writeCounts{{Users: 100, Lattice: 130}, {Users: 20, Lattice: 90}}
	// Each may apply up to 120 user writes + 10 API writes.
	applied, bound, err := checkWriteCounts(nodes, counts, 10, []uint64{50, 50}, []int{0, 0}, 0)
	if err != nil {
		t.Fatalf("130 and 90 rows within a bound of 130: %v", err)
	}
	if applied[0] != 130 || applied[1] != 90 || bound[0] != 130 || bound[1] != 130 {
		t.Fatalf("applied %v, bound %v; want [130 90], [130 130]", applied, bound)
	}
	counts[1].Lattice = 131
	if _, _, err := checkWriteCounts(nodes, counts, 10, []uint64{50, 50}, []int{0, 0}, 0); err == nil || !strings.Contains(err.Error(), "n2's sidecar wrote 131 rows") {
		t.Fatalf("got %v, want n2 over its bound", err)
	}
	// A replacement allows every record once more, a SIGKILL a batch.
	if _, _, err := checkWriteCounts(nodes, counts, 10, []uint64{50, 1}, []int{0, 0}, 1); err != nil {
		t.Fatalf("with a replacement: %v", err)
	}
	if _, _, err := checkWriteCounts(nodes, counts, 10, []uint64{50, 0}, []int{0, 1}, 0); err != nil {
		t.Fatalf("with a SIGKILL: %v", err)
	}
}

// A client's statements on its own rows find them as its last writes left
// them, in every kind of database, until something else writes over them:
// then the ledger counts each statement that found its row overwritten.
func TestClientFindsOwnRowsOverwritten(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := openCheckDB(filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testOverwrites(t, &checkDB{db: db, dialect: &sqliteDialect})
	})
	for _, dl := range []*checkDialect{&jsonbDialect, &arrayDialect} {
		t.Run(dl.name, func(t *testing.T) {
			srv := pgtest.Start(t, pgtest.Options{})
			dsn, err := srv.CreateDB(context.Background(), "c")
			if err != nil {
				t.Fatal(err)
			}
			db, err := openCheckPostgres(dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			testOverwrites(t, &checkDB{db: db, dialect: dl})
		})
	}
}

func testOverwrites(t *testing.T, d *checkDB) {
	ctx := context.Background()
	q := d.dialect
	if _, err := d.db.ExecContext(ctx, q.schema); err != nil {
		t.Fatal(err)
	}
	for id := tagKeyFirst; id <= tagKeyLast; id++ {
		if _, err := d.db.ExecContext(ctx, q.q(`INSERT INTO items (id, tags) VALUES ($1, `+q.empty+`)`), id); err != nil {
			t.Fatal(err)
		}
	}
	for id := lwwKeyFirst; id <= lwwKeyLast; id++ {
		if _, err := d.db.ExecContext(ctx, q.q(`INSERT INTO items (id, a, b) VALUES ($1, 'init', 'init')`), id); err != nil {
			t.Fatal(err)
		}
	}
	run := func(overwrite bool) int {
		if _, err := d.db.ExecContext(ctx, q.q(`DELETE FROM items WHERE id > $1`), lwwKeyLast); err != nil {
			t.Fatal(err)
		}
		l := newLedger()
		c := &sqlClient{node: 0, w: 1, rng: rand.New(rand.NewPCG(1, 2)), l: l, mine: map[int64]map[string]string{}, uniq: map[int64][]string{}}
		for i := range 400 {
			if err := c.write(ctx, d); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if overwrite && i%20 == 19 {
				// An apply of older states: the client's rows gone, the
				// tag rows emptied.
				for _, s := range []string{`DELETE FROM items WHERE id > $1`, `UPDATE items SET tags = ` + q.empty + ` WHERE id <= $1`} {
					if _, err := d.db.ExecContext(ctx, q.q(s), lwwKeyLast); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return l.overwritten[0]
	}
	if n := run(false); n != 0 {
		t.Errorf("%d statements found their rows overwritten, nothing wrote over them", n)
	}
	if n := run(true); n == 0 {
		t.Error("no statement found its rows overwritten")
	}
}

// A statement that finds a key or element other than its client's last
// write left it is counted once, and not at all when that write's outcome
// was uncertain: the client cannot know what the row holds.
func TestOverwritesOfUncertainWritesNotCounted(t *testing.T) {
	l := newLedger()
	l.setOp(0, tagKeyFirst, "u1-0", true, true, true) // the connection was lost at commit
	l.overwrote(0, tagKeyFirst, "u1-0")
	l.setUncertain(writerSpace)
	l.overwrote(0, writerSpace, "")
	if n := l.overwritten[0]; n != 0 {
		t.Fatalf("%d overwrites counted of writes whose outcome was uncertain", n)
	}
	l.setOp(0, tagKeyFirst, "u1-1", true, true, false)
	l.overwrote(0, tagKeyFirst, "u1-1")
	l.overwrote(0, tagKeyFirst, "u1-1")
	l.setOwn(0, writerSpace+1, map[string]string{"a": "x"})
	l.overwrote(0, writerSpace+1, "")
	l.overwrote(0, writerSpace+1, "")
	if n := l.overwritten[0]; n != 2 {
		t.Fatalf("%d overwrites counted, want 2 (one per key or element)", n)
	}
	if !l.uncertain[writerSpace+1] || !l.uncertainElems[tagKeyFirst]["u1-1"] {
		t.Fatal("an overwritten key or element is not left out of the exact check")
	}
}

// Last-writer-wins, as the clients' clocks bound each update's stamp: a
// value is allowed when some update that may have written it ended no
// earlier than the latest start of an update its client saw committed.
func TestLWWAllows(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	w := func(v string, from, to float64, certain bool) lwwWrite {
		return lwwWrite{value: v, start: at(from), end: at(to), certain: certain}
	}
	for _, c := range []struct {
		name   string
		writes []lwwWrite
		got    string
		want   bool
	}{
		{"the last update", []lwwWrite{w("x", 1, 2, true), w("y", 10, 11, true)}, "y", true},
		{"an older update", []lwwWrite{w("x", 1, 2, true), w("y", 10, 11, true)}, "x", false},
		{"concurrent updates, either", []lwwWrite{w("x", 1, 5, true), w("y", 3, 4, true)}, "x", true},
		{"concurrent updates, the other", []lwwWrite{w("x", 1, 5, true), w("y", 3, 4, true)}, "y", true},
		{"within the slack", []lwwWrite{w("x", 1, 2, true), w("y", 3.5, 4, true)}, "x", true},
		{"past the slack", []lwwWrite{w("x", 1, 2, true), w("y", 5, 6, true)}, "x", false},
		{"an update that may not have committed does not hide", []lwwWrite{w("x", 1, 2, true), w("y", 10, 11, false)}, "x", true},
		{"and may win", []lwwWrite{w("x", 1, 2, true), w("y", 10, 11, false)}, "y", true},
		{"a value no one wrote", []lwwWrite{w("x", 1, 2, true)}, "z", false},
	} {
		if got := lwwAllows(c.writes, c.got); got != c.want {
			t.Errorf("%s: lwwAllows = %v, want %v", c.name, got, c.want)
		}
	}
}
