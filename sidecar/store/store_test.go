package store

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string // substring naming the option; "" for valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"zero fills", func(o *Options) { *o = Options{} }, ""},
		{"memtable", func(o *Options) { o.MemTableSize = 1000 }, "MemTableSize"},
		{"memtables", func(o *Options) { o.NumMemtables = -1 }, "NumMemtables"},
		{"block cache", func(o *Options) { o.BlockCacheSize = -1 }, "BlockCacheSize"},
		{"index cache", func(o *Options) { o.IndexCacheSize = -1 }, "IndexCacheSize"},
		{"vlog size", func(o *Options) { o.ValueLogFileSize = 4 << 30 }, "ValueLogFileSize"},
		{"threshold", func(o *Options) { o.ValueThreshold = 2 << 20 }, "ValueThreshold"},
		{"threshold vs memtable", func(o *Options) { o.MemTableSize = 2 << 20; o.ValueThreshold = 1 << 20 }, "ValueThreshold"},
		{"one compactor", func(o *Options) { o.NumCompactors = 1 }, "NumCompactors"},
		{"l0", func(o *Options) { o.NumLevelZeroTables = -2 }, "NumLevelZeroTables"},
		{"gc interval", func(o *Options) { o.GCInterval = -time.Second }, "GCInterval"},
		{"gc ratio", func(o *Options) { o.GCDiscardRatio = 1.5 }, "GCDiscardRatio"},
		{"batch", func(o *Options) { o.MaxBatchBytes = 100 }, "MaxBatchBytes"},
		{"limits", func(o *Options) { o.Limits = crdt.Limits{MaxDepth: 3} }, "Limits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate accepted a bad %s", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
			if err == nil && (o.Physical == nil || o.Logger == nil || o.MemTableSize == 0) {
				t.Fatalf("Validate left defaults unset: %+v", o)
			}
		})
	}
}

func TestOpenIdentity(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, nil)
	id := s.ReplicaID()
	if id == 0 {
		t.Fatal("zero replica id")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openDir(t, dir, nil)
	if got := s.ReplicaID(); got != id {
		t.Fatalf("replica id after reopen = %s, want %s", got, id)
	}
	_ = s.Close()
	other := openDir(t, t.TempDir(), nil)
	defer other.Close()
	if other.ReplicaID() == id {
		t.Fatal("two stores share a replica id")
	}
}

func TestOpenLockedInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, nil)
	_, err := Open(dir, nil, testOptions(t))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if hints := errors.GetAllHints(err); len(hints) == 0 || !strings.Contains(hints[0], "another lattice process") {
		t.Fatalf("no hint in %v", hints)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir, nil)
	_ = s.Close()
}

func TestOpenNewerFormat(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, nil)
	_ = s.Close()
	rawUpdate(t, dir, func(txn *badger.Txn) error { return txn.Set(keyFormat, encodeUint(formatVersion+1)) })
	_, err := Open(dir, nil, testOptions(t))
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("Open = %v, want ErrNewerFormat", err)
	}
	if len(errors.GetAllHints(err)) == 0 {
		t.Fatal("no hint")
	}
}

// rawUpdate changes a closed store's directory with Badger directly.
func rawUpdate(t *testing.T, dir string, fn func(txn *badger.Txn) error) {
	t.Helper()
	o := testOptions(t)
	db, err := badger.Open(o.badger(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptData(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	key := crdt.IntKey(1)
	id := crdt.MakeID("people", key)
	for _, tc := range []struct {
		name   string
		value  func(good []byte) []byte
		atOpen bool
	}{
		{"truncated header", func([]byte) []byte { return []byte{recordValueVersion, 1, 2} }, true},
		{"unknown version", func(g []byte) []byte { b := slices.Clone(g); b[0] = 9; return b }, true},
		{"bad record body", func(g []byte) []byte { return append(slices.Clone(g[:recordHeaderLen]), 0xc1, 0xc1) }, false},
		{"truncated body", func(g []byte) []byte { return slices.Clone(g[:len(g)-3]) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := newPeer(7, "crm", schema, ft.now)
			s := openDir(t, dir, schema, func(o *Options) { o.Physical = ft.now })
			mustMerge(t, s, p.write("people", key, crdt.Row{"name": str("ada")}))
			_ = s.Close()
			rawUpdate(t, dir, func(txn *badger.Txn) error {
				item, err := txn.Get(recordKey(id))
				if err != nil {
					return err
				}
				good, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				return txn.Set(recordKey(id), tc.value(good))
			})
			s, err := Open(dir, schema, testOptions(t))
			if tc.atOpen {
				if !IsCorrupt(err) || !strings.Contains(err.Error(), "record/people/1") {
					t.Fatalf("Open = %v, want a corrupt error naming record/people/1", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			_, err = s.Get("people", key)
			if !IsCorrupt(err) || !strings.Contains(err.Error(), "record/people/1") {
				t.Fatalf("Get = %v, want a corrupt error naming record/people/1", err)
			}
			if _, err := s.Check(); !IsCorrupt(err) {
				t.Fatalf("Check = %v, want corrupt", err)
			}
			res, err := s.Merge(p.write("people", key, crdt.Row{"name": str("bob")}))
			if err != nil || len(res.Rejected) != 1 || !IsCorrupt(res.Rejected[0].Err) {
				t.Fatalf("Merge into corrupt record = %+v, %v; want one corrupt rejection", res, err)
			}
		})
	}
}

func TestMergeBasics(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	s := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	a := newPeer(1, "crm", schema, ft.now)
	k1, k2 := crdt.IntKey(1), crdt.IntKey(2)

	d := joinAll(
		a.write("people", k1, crdt.Row{"name": str("ada"), "seen": num(5)}),
		a.setOps("people", k1, "tags", []crdt.Value{str("x"), str("y")}, nil),
		a.write("people", k2, crdt.Row{"name": str("bob")}),
	)
	res := mustMerge(t, s, d)
	if len(res.Rejected) != 0 || res.Changed.Len() != 3 || len(res.Effects) != 2 {
		t.Fatalf("first merge: changed %d, effects %d, rejected %v", res.Changed.Len(), len(res.Effects), res.Rejected)
	}
	for _, id := range []crdt.ID{crdt.MakeID("people", k1), crdt.MakeID("people", k2)} {
		_, k, _ := id.Split()
		if got := mustGet(t, s, "people", k); !crdt.EqualRecords(got, a.state[id]) {
			t.Fatalf("%s: stored %+v, want %+v", id, got, a.state[id])
		}
	}
	if n := s.PendingLen(); n != 2 {
		t.Fatalf("pending %d, want 2", n)
	}
	// The same delta again changes nothing.
	res = mustMerge(t, s, d)
	if res.Changed.Len() != 0 || len(res.Effects) != 0 {
		t.Fatalf("re-merge: changed %d, effects %d", res.Changed.Len(), len(res.Effects))
	}
	// A hidden change (a newer but lower max, which a later delete could
	// reveal) changes state but not the view: no effect.
	st := crdt.Stamp{TS: crdt.Timestamp{Wall: ft.now() + 1}, Replica: 2}
	hidden := &crdt.Delta{}
	hidden.Add("people", k1, &crdt.Record{Written: st, Fields: []crdt.Field{{Name: "seen", Reg: []crdt.Write{{Stamp: st, Value: num(3)}}}}})
	res = mustMerge(t, s, hidden)
	if res.Changed.Len() != 1 || len(res.Effects) != 0 {
		t.Fatalf("hidden change: changed %d, effects %d", res.Changed.Len(), len(res.Effects))
	}
	if fp := recomputeDigest(t, s); fp != s.Digest() || fp.Count != 2 {
		t.Fatalf("digest %s, recomputed %s", s.Digest(), fp)
	}
	if st := s.Stats(); st.Merges != 3 || st.Records != 2 || st.Pending != 2 || st.FragmentsMerged != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMergeRejects(t *testing.T) {
	ft := newFakeTime()
	s := openMem(t, testSchema(true), func(o *Options) { o.Physical = ft.now })
	p := newPeer(3, "crm", testSchema(false), ft.now)
	ahead := newPeer(4, "erp", testSchema(false), func() int64 { return ft.now() + int64(time.Hour) })
	good := p.write("people", crdt.IntKey(1), crdt.Row{"name": str("ada")})
	future := ahead.write("people", crdt.IntKey(2), crdt.Row{"name": str("eve")})
	unknown := p.write("orders", crdt.IntKey(3), crdt.Row{"total": num(5)})
	before := s.Clock().Last()
	res := mustMerge(t, s, joinAll(future, good, unknown))
	if res.Changed.Len() != 1 || len(res.Rejected) != 2 {
		t.Fatalf("changed %d, rejected %v", res.Changed.Len(), res.Rejected)
	}
	for _, r := range res.Rejected {
		switch r.Collection {
		case "people":
			if !crdt.IsClockOffsetError(r.Err) {
				t.Fatalf("future fragment rejected with %v", r.Err)
			}
		case "orders":
			if !errors.Is(r.Err, crdt.ErrUnknownCollection) {
				t.Fatalf("unknown collection rejected with %v", r.Err)
			}
		}
	}
	if last := s.Clock().Last(); last.Wall > ft.now()+int64(time.Second) || last.Less(before) {
		t.Fatalf("clock moved to %s", last)
	}
	if r := mustGet(t, s, "people", crdt.IntKey(2)); r != nil {
		t.Fatalf("future record stored: %+v", r)
	}
	if st := s.Stats(); st.FragmentsRejected != 2 || st.ClockRejections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLocalEqualRowWritesOnlyCursor(t *testing.T) {
	schema := testSchema(false)
	s := openMem(t, schema)
	key := crdt.IntKey(1)
	row := crdt.Row{"id": num(1), "name": str("ada"), "tags": mustList(str("b"), str("a"))}
	res := mustLocal(t, s, "crm", []Change{{Collection: "people", Key: key, Row: row, Full: true, Captured: true}},
		&Cursor{Name: "sqlite", Value: []byte("1")})
	if res.Delta.Len() != 1 || len(res.Effects) != 0 {
		t.Fatalf("first capture: delta %d, effects %d", res.Delta.Len(), len(res.Effects))
	}
	seq := s.Seq()
	before := dump(t, s)
	res = mustLocal(t, s, "crm", []Change{{Collection: "people", Key: key, Row: row, Full: true, Captured: true}},
		&Cursor{Name: "sqlite", Value: []byte("2")})
	if res.Delta.Len() != 0 || len(res.Effects) != 0 || len(res.Failed) != 0 {
		t.Fatalf("equal capture: delta %d, effects %d, failed %v", res.Delta.Len(), len(res.Effects), res.Failed)
	}
	after := dump(t, s)
	diff := diffKeys(before, after)
	if len(diff) != 1 || diff[0] != string(cursorKey("sqlite")) {
		t.Fatalf("equal capture changed keys %q, want only the cursor", diff)
	}
	if got, _ := s.Cursor("sqlite"); string(got) != "2" {
		t.Fatalf("cursor %q", got)
	}
	if s.Seq() != seq {
		t.Fatalf("seq moved from %d to %d", seq, s.Seq())
	}
}

func mustList(vs ...crdt.Value) crdt.Value {
	l, err := crdt.List(vs...)
	if err != nil {
		panic(err)
	}
	return l
}

// dump returns every key and value of the store.
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().KeyCopy(nil))] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffKeys(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestLocalCapturedCorrection(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	s := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	key := crdt.IntKey(1)
	crm := newPeer(5, "crm", schema, ft.now)
	mustMerge(t, s, crm.write("people", key, crdt.Row{"name": str("ada"), "phone": str("111"), "seen": num(10)}))
	drain(t, s)

	// The local system is "erp": its phone ranks below crm's and its seen
	// is below the max. Both are kept at the merged values, and the record
	// is queued so that the system is corrected.
	row := crdt.Row{"id": num(1), "name": str("ada"), "phone": str("222"), "seen": num(3)}
	res := mustLocal(t, s, "erp", []Change{{Collection: "people", Key: key, Row: row, Full: true, Captured: true}}, nil)
	if len(res.Effects) != 1 {
		t.Fatalf("effects %d, want a correction", len(res.Effects))
	}
	view := res.Effects[0].Record.View(mustCol(schema, "people"))
	if !crdt.Equal(view["phone"], str("111")) || !crdt.Equal(view["seen"], num(10)) {
		t.Fatalf("correction view %v", view)
	}
	p := mustPending(t, s)
	if len(p) != 1 || !crdt.EqualRecords(p[0].Record, res.Effects[0].Record) {
		t.Fatalf("pending %+v", p)
	}

	// A captured change the policies accept in full queues nothing.
	drain(t, s)
	row = crdt.Row{"id": num(1), "name": str("bea"), "phone": str("111"), "seen": num(11)}
	res = mustLocal(t, s, "erp", []Change{{Collection: "people", Key: key, Row: row, Full: true, Captured: true}}, nil)
	if len(res.Effects) != 0 || res.Delta.Len() != 1 || s.PendingLen() != 0 {
		t.Fatalf("accepted capture: effects %d, delta %d, pending %d", len(res.Effects), res.Delta.Len(), s.PendingLen())
	}
}

func mustCol(s *crdt.Schema, name string) *crdt.Collection {
	c, err := s.Collection(name)
	if err != nil {
		panic(err)
	}
	return c
}

// drain acknowledges the whole queue.
func drain(t testing.TB, s *Store) {
	t.Helper()
	if err := s.AckPending(mustPending(t, s)); err != nil {
		t.Fatal(err)
	}
	if n := s.PendingLen(); n != 0 {
		t.Fatalf("pending %d after drain", n)
	}
}

func TestLocalAPI(t *testing.T) {
	schema := testSchema(true)
	s := openMem(t, schema)
	c := mustCol(schema, "people")
	k1, k2 := crdt.IntKey(1), crdt.IntKey(2)
	changes := []Change{
		{Collection: "people", Key: k1, Row: crdt.Row{"name": str("ada"), "city": str("oslo")}},
		{Collection: "people", Key: k1, Add: map[string][]crdt.Value{"tags": {str("x"), str("y")}}},
		{Collection: "nope", Key: k1, Row: crdt.Row{"a": num(1)}},                                // unknown collection
		{Collection: "people", Key: "\xff", Row: crdt.Row{"a": num(1)}},                          // bad key
		{Collection: "people", Key: k2, Add: map[string][]crdt.Value{"name": {str("x")}}},        // not an orset
		{Collection: "people", Key: k2, Delete: true, Add: map[string][]crdt.Value{"tags": nil}}, // delete with set ops
		{Collection: "people", Key: k2, Row: crdt.Row{"name": str("bob")}},
	}
	res := mustLocal(t, s, "api", changes, &Cursor{Name: "api", Value: []byte("c1")})
	var failed []int
	for _, f := range res.Failed {
		failed = append(failed, f.Index)
	}
	if !slices.Equal(failed, []int{2, 3, 4, 5}) {
		t.Fatalf("failed %v, want [2 3 4 5]: %v", failed, res.Failed)
	}
	wantErr := []error{crdt.ErrUnknownCollection, crdt.ErrInvalidKey, crdt.ErrPolicy, crdt.ErrPolicy}
	for i, f := range res.Failed {
		if !errors.Is(f.Err, wantErr[i]) {
			t.Fatalf("change %d failed with %v, want %v", f.Index, f.Err, wantErr[i])
		}
	}
	if len(res.Effects) != 2 || res.Delta.Len() != 3 || s.PendingLen() != 2 {
		t.Fatalf("effects %d, delta %d, pending %d", len(res.Effects), res.Delta.Len(), s.PendingLen())
	}
	if got, _ := s.Cursor("api"); string(got) != "c1" {
		t.Fatalf("cursor %q", got)
	}
	view := mustGet(t, s, "people", k1).View(c)
	if !crdt.Equal(view["name"], str("ada")) || !crdt.Equal(view["tags"], mustList(str("x"), str("y"))) {
		t.Fatalf("view %v", view)
	}
	// A full row nulls the fields it lacks (those whose policy lets null
	// win); remove takes an element out.
	res = mustLocal(t, s, "api", []Change{
		{Collection: "people", Key: k1, Row: crdt.Row{"name": str("ada")}, Full: true,
			Remove: map[string][]crdt.Value{"tags": {str("x")}}},
		{Collection: "people", Key: k2, Delete: true},
	}, nil)
	if len(res.Failed) != 0 || len(res.Effects) != 2 {
		t.Fatalf("second batch: failed %v, effects %d", res.Failed, len(res.Effects))
	}
	view = mustGet(t, s, "people", k1).View(c)
	if len(view) != 2 || !crdt.Equal(view["tags"], mustList(str("y"))) {
		t.Fatalf("view after full row %v", view)
	}
	if r := mustGet(t, s, "people", k2); r == nil || r.Exists() {
		t.Fatalf("k2 after delete: %+v", r)
	}
	if scan, err := s.Scan("people", "", 0); err != nil || len(scan) != 2 {
		t.Fatalf("scan %v %v", scan, err)
	}
	if s.Seq() != 2 {
		t.Fatalf("seq %d, want 2", s.Seq())
	}
}

func TestLocalDeltasReproduceState(t *testing.T) {
	schema := testSchema(false)
	s := openMem(t, schema)
	other := openMem(t, schema)
	var deltas []*crdt.Delta
	for i := range 20 {
		k := crdt.IntKey(int64(i % 4))
		ch := Change{Collection: "people", Key: k, Row: crdt.Row{"name": str("n" + strconvI(i)), "seen": num(int64(i % 7))}}
		if i%5 == 4 {
			ch = Change{Collection: "people", Key: k, Delete: true}
		}
		if i%3 == 2 {
			ch = Change{Collection: "people", Key: k, Add: map[string][]crdt.Value{"tags": {num(int64(i))}},
				Remove: map[string][]crdt.Value{"tags": {num(int64(i - 3))}}}
		}
		res := mustLocal(t, s, "api", []Change{ch}, nil)
		deltas = append(deltas, res.Delta)
	}
	mustMerge(t, other, joinAll(deltas...))
	if s.Digest() != other.Digest() {
		t.Fatalf("digest %s, merged elsewhere %s", s.Digest(), other.Digest())
	}
}

func strconvI(i int) string { return string(rune('a'+i%26)) + string(rune('a'+i/26)) }

func TestAckRespectsRequeue(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	s := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	p := newPeer(9, "crm", schema, ft.now)
	k := crdt.IntKey(1)
	mustMerge(t, s, p.write("people", k, crdt.Row{"name": str("v1")}))
	first := mustPending(t, s)
	// The record changes while the apply of v1 is in flight.
	mustMerge(t, s, p.write("people", k, crdt.Row{"name": str("v2")}))
	second := mustPending(t, s)
	if len(first) != 1 || len(second) != 1 || second[0].Seq <= first[0].Seq {
		t.Fatalf("pending %+v then %+v", first, second)
	}
	if err := s.AckPending(first); err != nil {
		t.Fatal(err)
	}
	if n := s.PendingLen(); n != 1 {
		t.Fatalf("stale ack removed the entry: pending %d", n)
	}
	got := mustPending(t, s)
	if v, _, _ := got[0].Record.Get(mustCol(schema, "people"), "name"); !crdt.Equal(v, str("v2")) {
		t.Fatalf("pending record %v, want v2", v)
	}
	if err := s.AckPending(got); err != nil {
		t.Fatal(err)
	}
	if n := s.PendingLen(); n != 0 {
		t.Fatalf("pending %d after ack", n)
	}
	if err := s.AckPending(got); err != nil { // again: no-op
		t.Fatal(err)
	}
	if n := s.PendingLen(); n != 0 {
		t.Fatalf("pending %d after second ack", n)
	}
	// Changed again after the ack: queued again.
	mustMerge(t, s, p.write("people", k, crdt.Row{"name": str("v3")}))
	if n := s.PendingLen(); n != 1 {
		t.Fatalf("pending %d after v3", n)
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestParkAndRequeue(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	s := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	p := newPeer(9, "crm", schema, ft.now)
	for i := range 3 {
		mustMerge(t, s, p.write("people", crdt.IntKey(int64(i)), crdt.Row{"name": str("x")}))
	}
	pend := mustPending(t, s)
	if err := s.Park(pend[1], "type mismatch"); err != nil {
		t.Fatal(err)
	}
	if s.PendingLen() != 2 {
		t.Fatalf("pending %d", s.PendingLen())
	}
	parked, err := s.Parked(0)
	if err != nil || len(parked) != 1 || parked[0].Reason != "type mismatch" || parked[0].Key != crdt.IntKey(1) || parked[0].Record == nil {
		t.Fatalf("parked %+v, %v", parked, err)
	}
	// Parking a stale entry does nothing.
	if err := s.Park(pend[1], "again"); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Parked != 1 || st.Pending != 2 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Requeue([]crdt.ID{parked[0].ID(), crdt.MakeID("people", crdt.IntKey(0))}); err != nil {
		t.Fatal(err)
	}
	if s.PendingLen() != 3 || s.Stats().Parked != 0 {
		t.Fatalf("after requeue: pending %d, parked %d", s.PendingLen(), s.Stats().Parked)
	}
	pend = mustPending(t, s)
	if pend[2].Key != crdt.IntKey(1) {
		t.Fatalf("requeued entry not last: %+v", pend)
	}
	// A parked record that changes leaves the parked list.
	if err := s.Park(pend[2], "bad"); err != nil {
		t.Fatal(err)
	}
	mustMerge(t, s, p.write("people", crdt.IntKey(1), crdt.Row{"name": str("y")}))
	if st := s.Stats(); st.Parked != 0 || st.Pending != 3 {
		t.Fatalf("after change of a parked record: %+v", st)
	}
	// Enqueue moves records to the back and skips unknown ones.
	if err := s.Enqueue([]crdt.ID{crdt.MakeID("people", crdt.IntKey(0)), crdt.MakeID("people", crdt.IntKey(99))}); err != nil {
		t.Fatal(err)
	}
	pend = mustPending(t, s)
	if len(pend) != 3 || pend[2].Key != crdt.IntKey(0) {
		t.Fatalf("after enqueue %+v", pend)
	}
	if err := s.Enqueue([]crdt.ID{"bad"}); err == nil {
		t.Fatal("Enqueue accepted a malformed id")
	}
	if _, err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	schema := testSchema(false)
	dir := t.TempDir()
	ft := newFakeTime()
	s := openDir(t, dir, schema, func(o *Options) { o.Physical = ft.now; o.SyncWrites = true })
	p := newPeer(11, "crm", schema, ft.now)
	for i := range 50 {
		mustMerge(t, s, p.write("people", crdt.IntKey(int64(i)), crdt.Row{"name": str("x"), "seen": num(int64(i))}))
	}
	mustLocal(t, s, "erp", []Change{{Collection: "people", Key: crdt.IntKey(1), Row: crdt.Row{"name": str("local")}}},
		&Cursor{Name: "pg", Value: []byte("lsn/1")})
	pend := mustPending(t, s)
	if err := s.AckPending(pend[:10]); err != nil {
		t.Fatal(err)
	}
	if err := s.Park(pend[20], "nope"); err != nil {
		t.Fatal(err)
	}
	want := struct {
		id      crdt.ReplicaID
		seq     uint64
		digest  crdt.Fingerprint
		pending []Pending
		parked  []Parked
		last    crdt.Timestamp
		records *crdt.Delta
	}{s.ReplicaID(), s.Seq(), s.Digest(), mustPending(t, s), nil, s.Clock().Last(), nil}
	want.parked, _ = s.Parked(0)
	want.records, _ = s.ReadRange("", "", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The physical clock went back an hour while the process was down.
	ft.advance(-time.Hour)
	s = openDir(t, dir, schema, func(o *Options) { o.Physical = ft.now })
	defer s.Close()
	if s.ReplicaID() != want.id || s.Seq() != want.seq || s.Digest() != want.digest {
		t.Fatalf("reopened: id %s seq %d digest %s; want %s %d %s", s.ReplicaID(), s.Seq(), s.Digest(), want.id, want.seq, want.digest)
	}
	if now := s.Clock().Now(); !want.last.Less(now) {
		t.Fatalf("clock went back: Now %s after a bound of %s", now, want.last)
	}
	if cur, _ := s.Cursor("pg"); string(cur) != "lsn/1" {
		t.Fatalf("cursor %q", cur)
	}
	gotPending := mustPending(t, s)
	if len(gotPending) != len(want.pending) || s.PendingLen() != len(want.pending) {
		t.Fatalf("pending %d (len %d), want %d", len(gotPending), s.PendingLen(), len(want.pending))
	}
	for i := range gotPending {
		if gotPending[i].Seq != want.pending[i].Seq || gotPending[i].Key != want.pending[i].Key {
			t.Fatalf("pending[%d] = %+v, want %+v", i, gotPending[i], want.pending[i])
		}
	}
	parked, _ := s.Parked(0)
	if len(parked) != 1 || parked[0].Key != want.parked[0].Key || parked[0].Reason != "nope" {
		t.Fatalf("parked %+v", parked)
	}
	records, _ := s.ReadRange("", "", 0)
	if records.Len() != want.records.Len() {
		t.Fatalf("records %d, want %d", records.Len(), want.records.Len())
	}
	for i, f := range records.Fragments {
		if !crdt.EqualRecords(f.Record, want.records.Fragments[i].Record) {
			t.Fatalf("record %d differs after reopen", i)
		}
	}
	if fp := recomputeDigest(t, s); fp != want.digest {
		t.Fatalf("recomputed digest %s, want %s", fp, want.digest)
	}
	// A local write after the reopen is stamped after everything stored.
	res := mustLocal(t, s, "erp", []Change{{Collection: "people", Key: crdt.IntKey(2), Row: crdt.Row{"name": str("z")}}}, nil)
	if st := res.Delta.MaxStamp(); !want.last.Less(st.TS) {
		t.Fatalf("new stamp %s not after the old bound %s", st, want.last)
	}
	if s.Seq() != want.seq+1 {
		t.Fatalf("seq %d, want %d", s.Seq(), want.seq+1)
	}
}

func TestReadsAndRanges(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	s := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	p := newPeer(12, "crm", schema, ft.now)
	var ds []*crdt.Delta
	for i := range 30 {
		ds = append(ds, p.write("people", crdt.IntKey(int64(i)), crdt.Row{"name": str("x")}))
		ds = append(ds, p.write("things", crdt.StringKey(string(rune('a'+i%26))+"k"), crdt.Row{"n": num(int64(i))}))
	}
	mustMerge(t, s, joinAll(ds...))
	scan, err := s.Scan("people", crdt.IntKey(9), 5)
	if err != nil || len(scan) != 5 || scan[0].Key != crdt.IntKey(10) || scan[4].Key != crdt.IntKey(14) {
		t.Fatalf("scan %+v %v", scan, err)
	}
	all, _ := s.Scan("people", "", 0)
	if len(all) != 30 {
		t.Fatalf("scan all %d", len(all))
	}
	lo, hi := crdt.MakeID("people", crdt.IntKey(5)), crdt.MakeID("people", crdt.IntKey(25))
	rr, err := s.ReadRange(lo, hi, 0)
	if err != nil || rr.Len() != 20 {
		t.Fatalf("range %d %v", rr.Len(), err)
	}
	var fp crdt.Fingerprint
	var ids []crdt.ID
	s.Ascend(lo, hi, func(id crdt.ID, h crdt.Hash) bool {
		fp = fp.Add(h)
		ids = append(ids, id)
		return true
	})
	if fp != s.Fingerprint(lo, hi) || len(ids) != 20 {
		t.Fatalf("ascend %s (%d), fingerprint %s", fp, len(ids), s.Fingerprint(lo, hi))
	}
	recs, err := s.Records(append(ids[:3:3], crdt.MakeID("people", crdt.IntKey(1000))))
	if err != nil || recs.Len() != 3 {
		t.Fatalf("records %d %v", recs.Len(), err)
	}
	cuts := s.Split("", "", 4)
	if len(cuts) != 3 {
		t.Fatalf("split %v", cuts)
	}
	total := crdt.Fingerprint{}
	bounds := append(append([]crdt.ID{""}, cuts...), "")
	for i := 0; i+1 < len(bounds); i++ {
		total = total.Combine(s.Fingerprint(bounds[i], bounds[i+1]))
	}
	if total != s.Digest() {
		t.Fatalf("parts combine to %s, digest %s", total, s.Digest())
	}
	limited, _ := s.ReadRange("", "", 7)
	if limited.Len() != 7 || !bytes.Equal([]byte(limited.Fragments[0].Collection), []byte("people")) {
		t.Fatalf("limited range %d", limited.Len())
	}
}

func TestSplitBatches(t *testing.T) {
	schema := testSchema(false)
	ft := newFakeTime()
	p := newPeer(13, "crm", schema, ft.now)
	var ds []*crdt.Delta
	for i := range 2000 {
		ds = append(ds, p.write("people", crdt.IntKey(int64(i)), crdt.Row{"name": str(strings.Repeat("x", 100)), "seen": num(int64(i))}))
	}
	d := joinAll(ds...)
	small := openMem(t, schema, func(o *Options) { o.Physical = ft.now; o.MaxBatchBytes = 16 << 10 })
	big := openMem(t, schema, func(o *Options) { o.Physical = ft.now })
	mustMerge(t, small, d)
	mustMerge(t, big, d)
	if st := small.Stats(); st.Splits < 10 {
		t.Fatalf("splits %d, want many", st.Splits)
	}
	if big.Stats().Splits != 0 {
		t.Fatalf("big store split")
	}
	if small.Digest() != big.Digest() || small.PendingLen() != 2000 {
		t.Fatalf("digests %s %s, pending %d", small.Digest(), big.Digest(), small.PendingLen())
	}
	if _, err := small.Check(); err != nil {
		t.Fatal(err)
	}
	// A split Local batch puts the cursor in its last part.
	var changes []Change
	for i := range 500 {
		changes = append(changes, Change{Collection: "people", Key: crdt.IntKey(int64(i)), Row: crdt.Row{"name": str(strings.Repeat("y", 100))}})
	}
	splits := small.Stats().Splits
	res := mustLocal(t, small, "api", changes, &Cursor{Name: "c", Value: []byte("9")})
	if st := small.Stats(); res.Delta.Len() != 500 || st.LocalTxns != 1 || st.Splits == splits {
		t.Fatalf("local delta %d, %d local txns, %d splits before and %d after", res.Delta.Len(), st.LocalTxns, splits, st.Splits)
	}
	if got, _ := small.Cursor("c"); string(got) != "9" {
		t.Fatalf("cursor %q after the split batch", got)
	}
	// A split batch that fails after its first parts committed leaves the
	// cursor where it was: its last record, in key order, fits in no part.
	for i := range changes {
		changes[i].Row = crdt.Row{"name": str(strings.Repeat("z", 100))}
	}
	changes = append(changes, Change{Collection: "people", Key: crdt.IntKey(1 << 40), Row: crdt.Row{"name": str(strings.Repeat("z", 32<<10))}})
	if _, err := small.Local("api", changes, &Cursor{Name: "c", Value: []byte("10")}); err == nil {
		t.Fatal("Local stored a record larger than a transaction")
	}
	if v := mustGet(t, small, "people", crdt.IntKey(0)).View(mustCol(schema, "people")); !crdt.Equal(v["name"], changes[0].Row["name"]) {
		t.Fatalf("first part of the failed batch not committed: %v", v)
	}
	if got, _ := small.Cursor("c"); string(got) != "9" {
		t.Fatalf("cursor %q after a batch that failed in its last part, want 9", got)
	}
	if _, err := small.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestClosed(t *testing.T) {
	s := openMem(t, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Merge(&crdt.Delta{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Merge after Close: %v", err)
	}
	if _, err := s.Get("a", crdt.IntKey(1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.Local("x", nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Local after Close: %v", err)
	}
	if err := s.AckPending(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("AckPending after Close: %v", err)
	}
}

func TestGCLoopStops(t *testing.T) {
	s := openDir(t, t.TempDir(), nil, func(o *Options) { o.GCInterval = time.Millisecond })
	waitFor(t, 10*time.Second, func() bool { return s.Stats().GCRuns >= 2 })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// goleak in TestMain checks that the loop is gone.
}
