package postgres

import (
	"slices"
	"testing"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationHashRange: the hash the server computes for a key range
// equals the hash of the same rows read with their row hashes, bounds and
// limits included; ranges combine (XOR of row hashes); a change to any
// column, a null written over an empty string, an inserted or a deleted
// row changes the hash of its range and of no other, and undoing the
// change restores it.
func TestIntegrationHashRange(t *testing.T) {
	srv := sharedServer(t)
	_, dsn := newDB(t, srv)
	ctx := ctxT(t)
	app := connect(t, dsn)
	exec(t, app, `CREATE TABLE pairs (tenant text, n bigint, note text, qty numeric, tags text[], PRIMARY KEY (tenant, n))`)
	exec(t, app, `INSERT INTO pairs SELECT tenant, n, tenant || n, n * 1.5, ARRAY['x', tenant]
		FROM unnest(ARRAY['a', 'B', 'ab', 'é', 'a b']) tenant, generate_series(-3, 16) n`)
	a := open(t, testConfig(t, dsn, "hashrange"))
	const total = 100

	all, err := a.ReadRange(ctx, "pairs", "", 1000)
	if err != nil {
		t.Fatalf("read range: %+v", err)
	}
	if len(all) != total {
		t.Fatalf("read %d rows, want %d", len(all), total)
	}
	hash := func(after, through crdt.Key, limit int) adapters.RangeHash {
		t.Helper()
		h, err := a.HashRange(ctx, "pairs", after, through, limit)
		if err != nil {
			t.Fatalf("hash range (%s, %s] limit %d: %+v", after, through, limit, err)
		}
		return h
	}
	read := func(after, through crdt.Key, limit int) ([]adapters.Change, adapters.RangeHash) {
		t.Helper()
		rows, h, err := a.ReadHashedRange(ctx, "pairs", after, through, limit)
		if err != nil {
			t.Fatalf("read hashed range (%s, %s] limit %d: %+v", after, through, limit, err)
		}
		return rows, h
	}
	key := func(i int) crdt.Key { return all[i].Key }

	for _, c := range []struct {
		name           string
		after, through crdt.Key
		limit          int
		from, to       int // the rows all[from:to] are the range
	}{
		{"whole table", "", "", 1000, 0, total},
		{"limit", "", "", 7, 0, 7},
		{"after", key(9), "", 1000, 10, total},
		{"through", "", key(41), 1000, 0, 42},
		{"after and through", key(9), key(41), 1000, 10, 42},
		{"both and limit", key(9), key(41), 5, 10, 15},
		{"one row", key(9), key(10), 1000, 10, 11},
		{"empty", key(10), key(10), 1000, 11, 11},
		{"after the last", key(total - 1), "", 1000, total, total},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, rh := read(c.after, c.through, c.limit)
			if len(rows) != c.to-c.from {
				t.Fatalf("read %d rows, want %d", len(rows), c.to-c.from)
			}
			for i, r := range rows {
				if r.Key != all[c.from+i].Key {
					t.Fatalf("row %d has key %s, want %s", i, r.Key, all[c.from+i].Key)
				}
			}
			h := hash(c.after, c.through, c.limit)
			if h != rh {
				t.Fatalf("HashRange %+v, ReadHashedRange %+v", h, rh)
			}
			want := adapters.RangeHash{}
			if c.to > c.from {
				want.Rows, want.Last = c.to-c.from, key(c.to-1)
			}
			if h.Rows != want.Rows || h.Last != want.Last {
				t.Fatalf("hash of %d rows ending at %s, want %d ending at %s", h.Rows, h.Last, want.Rows, want.Last)
			}
			if (h.Sum == [16]byte{}) != (h.Rows == 0) {
				t.Fatalf("sum %x for %d rows", h.Sum, h.Rows)
			}
		})
	}
	if got, want := hash("", key(41), 1000).Combine(hash(key(41), "", 1000)), hash("", "", 1000); got != want {
		t.Fatalf("combined hash %+v, want the whole table's %+v", got, want)
	}

	// Three ranges; each change must show in its own range only.
	type span struct{ after, through crdt.Key }
	spans := []span{{"", key(29)}, {key(29), key(59)}, {key(59), ""}}
	hashes := func() []adapters.RangeHash {
		var out []adapters.RangeHash
		for _, s := range spans {
			out = append(out, hash(s.after, s.through, 1000))
		}
		return out
	}
	base := hashes()
	for _, c := range []struct {
		name         string
		change, undo string
	}{
		{"text column", `UPDATE pairs SET note = 'changed' WHERE tenant = 'B' AND n = 0`, `UPDATE pairs SET note = 'B0' WHERE tenant = 'B' AND n = 0`},
		{"empty text", `UPDATE pairs SET note = '' WHERE tenant = 'ab' AND n = 3`, `UPDATE pairs SET note = 'ab3' WHERE tenant = 'ab' AND n = 3`},
		{"numeric scale", `UPDATE pairs SET qty = 3.00 WHERE tenant = 'é' AND n = 2`, `UPDATE pairs SET qty = 3.0 WHERE tenant = 'é' AND n = 2`},
		{"array element", `UPDATE pairs SET tags = ARRAY['x', 'y'] WHERE tenant = 'a b' AND n = 16`, `UPDATE pairs SET tags = ARRAY['x', 'a b'] WHERE tenant = 'a b' AND n = 16`},
		{"insert", `INSERT INTO pairs VALUES ('ab', 100, NULL, NULL, NULL)`, `DELETE FROM pairs WHERE tenant = 'ab' AND n = 100`},
		{"delete", `DELETE FROM pairs WHERE tenant = 'a' AND n = 5`, `INSERT INTO pairs VALUES ('a', 5, 'a5', 7.5, ARRAY['x', 'a'])`},
	} {
		t.Run(c.name, func(t *testing.T) {
			exec(t, app, c.change)
			got := hashes()
			changed := 0
			for i := range spans {
				if got[i] != base[i] {
					changed++
				}
			}
			if changed != 1 {
				t.Fatalf("%d ranges changed their hash, want 1\nbefore %+v\nafter  %+v", changed, base, got)
			}
			exec(t, app, c.undo)
			if got := hashes(); !slices.Equal(got, base) {
				t.Fatalf("after undoing the change: %+v, want %+v", got, base)
			}
		})
	}
	exec(t, app, `UPDATE pairs SET note = '' WHERE tenant = 'a' AND n = 1`)
	empty := hash("", "", 1000)
	exec(t, app, `UPDATE pairs SET note = NULL WHERE tenant = 'a' AND n = 1`)
	if hash("", "", 1000) == empty {
		t.Fatal("a null and an empty string hash alike")
	}
	if _, err := a.HashRange(ctx, "pairs", "", "", 0); err == nil {
		t.Fatal("HashRange with limit 0 succeeded")
	}
	if _, err := a.HashRange(ctx, "nosuch", "", "", 10); err == nil {
		t.Fatal("HashRange of an unknown table succeeded")
	}
}
