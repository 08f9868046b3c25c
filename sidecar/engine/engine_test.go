package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestEngine runs the scripts in testdata: each drives one engine over an
// in-memory store (memStore, which carries out a Ready's durable part as
// store.Commit does) through the interleavings behind a hazard of
// sidecar/doc.go. Commands:
//
//	init replica=R now=MS [strict]   a new engine; the clock reads MS;
//	  [join=MODE[:FIELD]]              snapshot rows decided by Join
//	now ms=MS                        set the clock
//	catalog                          the adapter's tables, one a line:
//	  TABLE key=COL,... COL:KIND ...   (prints what the new catalog gains)
//	unknown                          the names capture lines use that the
//	  <capture lines>                  catalog lacks (Catalog.Unknown)
//	capture [prev=P cursor=C]        step a captured batch (no cursor: a
//	  <capture lines>                  snapshot batch)
//	api                              step API writes
//	  COLL/KEY [delete] F=V ...
//	remote replica=R ts=MS           merge a peer's change stamped MS
//	  COLL/KEY [delete] F=V ...
//	applying ids=COLL/KEY,...        an apply starts (Positions.Applying)
//	applied pos=P ids=COLL/KEY,...   it committed at P (Positions.AppliedAt)
//	pending                          the apply queue, in order
//	ack COLL/KEY seq=N               acknowledge an apply that read entry N
//	state                            every record's view, stamps and queue
//
// A capture line is COLL/KEY [delete] F=V ... [old.F=V ...] [committed=MS];
// values are integers, null, or strings. Stamps print as MS[+logical]@R.
func TestEngine(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var h *harness
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd == "init" {
				h = newHarness(t, td)
				return ""
			}
			if h == nil {
				td.Fatalf(t, "init first")
			}
			out, err := h.run(t, td)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

const ms = int64(time.Millisecond)

type memRecord struct {
	coll   string
	key    crdt.Key
	rec    *crdt.Record
	queued uint64
	parked bool
}

// memStore is the store as a step sees it, in memory.
type memStore struct {
	schema *crdt.Schema
	recs   map[crdt.ID]*memRecord
	qseq   uint64
}

func (m *memStore) Collection(name string) (*crdt.Collection, error) {
	return m.schema.Collection(name)
}

func (m *memStore) Read(ids []crdt.ID, out []Stored) error {
	for i, id := range ids {
		if r := m.recs[id]; r != nil {
			out[i] = Stored{Record: r.rec, Queued: r.queued != 0, Parked: r.parked}
		}
	}
	return nil
}

func (m *memStore) get(coll string, key crdt.Key) *memRecord {
	id := crdt.MakeID(coll, key)
	r := m.recs[id]
	if r == nil {
		r = &memRecord{coll: coll, key: key}
		m.recs[id] = r
	}
	return r
}

func (m *memStore) enqueue(r *memRecord) {
	m.qseq++
	r.queued, r.parked = m.qseq, false
}

// commit carries out the durable part of rd, as store.Commit does.
func (m *memStore) commit(rd *Ready) {
	for _, w := range rd.Writes {
		r := m.get(w.Collection, w.Key)
		r.rec = w.Record
		if w.Queue {
			m.enqueue(r)
		}
	}
}

type harness struct {
	now   int64
	clock *crdt.Clock
	store *memStore
	eng   *Engine
	cfg   CatalogConfig
}

func newHarness(t *testing.T, td *datadriven.TestData) *harness {
	h := &harness{store: &memStore{schema: crdt.MustSchema(), recs: map[crdt.ID]*memRecord{}}}
	var replica, now int
	td.ScanArgs(t, "replica", &replica)
	td.ScanArgs(t, "now", &now)
	h.now = int64(now) * ms
	h.clock = crdt.NewClock(func() int64 { return h.now }, time.Second)
	h.cfg.Strict = td.HasArg("strict")
	cat, err := NewCatalog(h.cfg, h.store.schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Replica: crdt.ReplicaID(replica), Source: "n" + strconv.Itoa(replica), Clock: h.clock}
	if td.HasArg("join") {
		mode, field, _ := strings.Cut(strArg(td, "join"), ":")
		p.Join = Join{Mode: mode, Field: field}
	}
	h.eng = New(p, cat)
	return h
}

func (h *harness) run(t *testing.T, td *datadriven.TestData) (string, error) {
	var out strings.Builder
	switch td.Cmd {
	case "now":
		var v int
		td.ScanArgs(t, "ms", &v)
		h.now = int64(v) * ms
	case "catalog":
		var tables []adapters.Table
		for _, line := range lines(td.Input) {
			tables = append(tables, parseTable(t, td, line))
		}
		cat, err := NewCatalog(h.cfg, h.store.schema, tables)
		if err != nil {
			return "", err
		}
		newTables, newColumns := h.eng.SetCatalog(cat)
		fmt.Fprintf(&out, "new tables: %v\nnew columns: %v\n", newTables, newColumns)
	case "unknown":
		var changes []adapters.Change
		for _, line := range lines(td.Input) {
			changes = append(changes, parseCapture(t, td, line))
		}
		fmt.Fprintf(&out, "%v\n", h.eng.Catalog().Unknown(changes))
	case "capture":
		var b adapters.Batch
		for _, line := range lines(td.Input) {
			b.Changes = append(b.Changes, parseCapture(t, td, line))
		}
		var prev []byte
		var cursor *Cursor
		if td.HasArg("cursor") {
			prev = []byte(strArg(td, "prev"))
			cursor = &Cursor{Name: "capture", Value: []byte(strArg(td, "cursor"))}
		}
		rd, err := h.eng.Capture(h.store, b, prev, cursor)
		if err != nil {
			return "", err
		}
		h.store.commit(rd)
		h.eng.Advance(rd)
		printReady(&out, h.store.schema, rd)
	case "api":
		var changes []Change
		for _, line := range lines(td.Input) {
			coll, key, delete, row, _, _ := parseLine(t, td, line)
			changes = append(changes, Change{Collection: coll, Key: key, Row: row, Delete: delete})
		}
		rd, err := h.eng.Local(h.store, changes, nil)
		if err != nil {
			return "", err
		}
		h.store.commit(rd)
		printReady(&out, h.store.schema, rd)
	case "remote":
		var replica, ts int
		td.ScanArgs(t, "replica", &replica)
		td.ScanArgs(t, "ts", &ts)
		o := crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: int64(ts) * ms}, Replica: crdt.ReplicaID(replica)}, Source: "n" + strconv.Itoa(replica)}
		for _, line := range lines(td.Input) {
			coll, key, delete, row, _, _ := parseLine(t, td, line)
			c, err := h.store.schema.Collection(coll)
			if err != nil {
				return "", err
			}
			r := h.store.get(coll, key)
			var d *crdt.Record
			if delete {
				d, err = crdt.Delete(r.rec, o)
			} else {
				d, err = crdt.Diff(c, r.rec, row, o)
			}
			if err != nil {
				return "", err
			}
			next, changed := crdt.Merge(c, r.rec, d)
			// As store.Merge: a change of the visible state queues the
			// record for apply.
			visible := fmt.Sprint(view(c, r.rec)) != fmt.Sprint(view(c, next))
			r.rec = next
			if visible {
				h.store.enqueue(r)
			}
			fmt.Fprintf(&out, "merged %s/%s changed=%v queued=%v\n", coll, key, changed, visible)
		}
	case "applying":
		h.eng.Positions().Applying(idsArg(td))
	case "applied":
		h.eng.Positions().AppliedAt(idsArg(td), []byte(strArg(td, "pos")))
	case "pending":
		recs := h.sorted()
		slices.SortFunc(recs, func(a, b *memRecord) int { return int(a.queued) - int(b.queued) })
		for _, r := range recs {
			if r.queued != 0 {
				fmt.Fprintf(&out, "%d: %s/%s\n", r.queued, r.coll, r.key)
			}
		}
	case "ack":
		var seq int
		td.ScanArgs(t, "seq", &seq)
		coll, key, _, _, _, _ := parseLine(t, td, td.CmdArgs[0].Key)
		r := h.store.get(coll, key)
		// As store.AckPending: the entry goes only if it is the one the
		// apply read; a later change moved the record to the back.
		if r.queued == uint64(seq) {
			r.queued = 0
			fmt.Fprintf(&out, "settled %s/%s\n", coll, key)
		} else {
			fmt.Fprintf(&out, "still queued %s/%s at %d\n", coll, key, r.queued)
		}
	case "state":
		for _, r := range h.sorted() {
			c, _ := h.store.schema.Collection(r.coll)
			fmt.Fprintf(&out, "%s/%s %s", r.coll, r.key, describe(c, r.rec))
			if r.queued != 0 {
				fmt.Fprintf(&out, " (queued %d)", r.queued)
			}
			out.WriteString("\n")
		}
	default:
		td.Fatalf(t, "unknown command %s", td.Cmd)
	}
	return out.String(), nil
}

func (h *harness) sorted() []*memRecord {
	var recs []*memRecord
	for _, r := range h.store.recs {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(a, b *memRecord) int {
		return strings.Compare(string(crdt.MakeID(a.coll, a.key)), string(crdt.MakeID(b.coll, b.key)))
	})
	return recs
}

func printReady(out *strings.Builder, schema *crdt.Schema, rd *Ready) {
	for _, w := range rd.Writes {
		fmt.Fprintf(out, "write %s/%s changed=%v queue=%v\n", w.Collection, w.Key, w.Changed, w.Queue)
	}
	for _, f := range rd.Broadcast.Fragments {
		c, _ := schema.Collection(f.Collection)
		fmt.Fprintf(out, "broadcast %s/%s %s\n", f.Collection, f.Key, describeDelta(c, f.Record))
	}
	for _, e := range rd.Effects {
		fmt.Fprintf(out, "apply %s/%s\n", e.Collection, e.Key)
	}
	if rd.Cursor != nil {
		fmt.Fprintf(out, "cursor %s\n", rd.Cursor.Value)
	}
	if rd.Ack != nil {
		fmt.Fprintf(out, "ack %s\n", rd.Ack)
	}
	for _, f := range rd.Failed {
		fmt.Fprintf(out, "failed %s\n", f.Error())
	}
	for _, s := range rd.Skipped {
		fmt.Fprintf(out, "skipped %s: %v\n", s.Collection, s.Err)
	}
	if rd.JoinKept+rd.JoinTaken > 0 {
		fmt.Fprintf(out, "join kept=%d taken=%d\n", rd.JoinKept, rd.JoinTaken)
	}
	if len(rd.Writes)+len(rd.Broadcast.Fragments)+len(rd.Failed)+len(rd.Skipped) == 0 {
		out.WriteString("nothing to write\n")
	}
}

func stamp(s crdt.Stamp) string {
	out := strconv.FormatInt(s.TS.Wall/ms, 10)
	if s.TS.Logical != 0 {
		out += "+" + strconv.FormatUint(uint64(s.TS.Logical), 10)
	}
	return out + "@" + strconv.FormatUint(uint64(s.Replica), 10)
}

func view(c *crdt.Collection, r *crdt.Record) crdt.Row {
	if !r.Exists() {
		return nil
	}
	return r.View(c)
}

// describe prints a merged record: its visible fields with their stamps.
func describe(c *crdt.Collection, r *crdt.Record) string {
	if r == nil {
		return "absent"
	}
	if !r.Exists() {
		return "deleted@" + stamp(r.MaxStamp())
	}
	var parts []string
	for _, f := range r.Fields {
		if v, meta, ok := r.Get(c, f.Name); ok {
			parts = append(parts, f.Name+"="+v.String()+"@"+stamp(meta.Stamp))
		}
	}
	return strings.Join(parts, " ")
}

// describeDelta prints a delta: a deletion, or the fields it writes.
func describeDelta(c *crdt.Collection, d *crdt.Record) string {
	if !d.Exists() {
		return "delete@" + stamp(d.MaxStamp())
	}
	return describe(c, d)
}

func lines(input string) []string {
	var out []string
	for _, l := range strings.Split(input, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func strArg(td *datadriven.TestData, key string) string {
	if a, ok := td.Arg(key); ok && len(a.Vals) > 0 {
		return a.Vals[0]
	}
	return ""
}

func idsArg(td *datadriven.TestData) []crdt.ID {
	a, _ := td.Arg("ids")
	var ids []crdt.ID
	for _, v := range a.Vals {
		coll, k, _ := strings.Cut(v, "/")
		ids = append(ids, crdt.MakeID(coll, parseKey(k)))
	}
	return ids
}

func parseKey(s string) crdt.Key {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return crdt.IntKey(i)
	}
	return crdt.StringKey(s)
}

func parseValue(s string) crdt.Value {
	if s == "null" {
		return crdt.Null()
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return crdt.Int(i)
	}
	return crdt.String(s)
}

// parseLine parses COLL/KEY [delete] F=V ... [old.F=V ...] [committed=MS].
func parseLine(t *testing.T, td *datadriven.TestData, line string) (coll string, key crdt.Key, delete bool, row, old crdt.Row, committed int64) {
	fields := strings.Fields(line)
	coll, k, ok := strings.Cut(fields[0], "/")
	if !ok {
		td.Fatalf(t, "%q: want COLL/KEY first", line)
	}
	key = parseKey(k)
	row = crdt.Row{}
	for _, f := range fields[1:] {
		if f == "delete" {
			delete = true
			continue
		}
		name, v, ok := strings.Cut(f, "=")
		if !ok {
			td.Fatalf(t, "%q: want F=V, got %q", line, f)
		}
		switch {
		case name == "committed":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				td.Fatalf(t, "%q: committed=%q", line, v)
			}
			committed = n * ms
		case strings.HasPrefix(name, "old."):
			if old == nil {
				old = crdt.Row{}
			}
			old[strings.TrimPrefix(name, "old.")] = parseValue(v)
		default:
			row[name] = parseValue(v)
		}
	}
	if delete {
		row = nil
	}
	return coll, key, delete, row, old, committed
}

func parseCapture(t *testing.T, td *datadriven.TestData, line string) adapters.Change {
	coll, key, _, row, old, committed := parseLine(t, td, line)
	c := adapters.Change{Collection: coll, Key: key, Row: row, Old: old}
	if committed != 0 {
		c.Committed = time.Unix(0, committed)
	}
	return c
}

// parseTable parses TABLE key=COL,... COL:KIND ...
func parseTable(t *testing.T, td *datadriven.TestData, line string) adapters.Table {
	fields := strings.Fields(line)
	tab := adapters.Table{Name: fields[0]}
	for _, f := range fields[1:] {
		if k, ok := strings.CutPrefix(f, "key="); ok {
			tab.Key = strings.Split(k, ",")
			continue
		}
		name, kind, ok := strings.Cut(f, ":")
		if !ok {
			td.Fatalf(t, "%q: want COL:KIND, got %q", line, f)
		}
		k, err := crdt.ParseKind(kind)
		if err != nil {
			td.Fatalf(t, "%q: %v", line, err)
		}
		tab.Columns = append(tab.Columns, adapters.Column{Name: name, Kind: k, Nullable: true})
	}
	return tab
}
