package store

import (
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/lattice-crdt/lattice/crdt"
)

const (
	benchFields       = 5
	benchBatchRecords = 10_000
)

// benchRecord returns a record of five LWW fields written at one stamp, as a
// captured row becomes.
func benchRecord(i int64, st crdt.Stamp, gen int64) *crdt.Record {
	w := func(v crdt.Value) []crdt.Write { return []crdt.Write{{Stamp: st, Value: v}} }
	return &crdt.Record{Written: st, Fields: []crdt.Field{
		{Name: "age", Reg: w(crdt.Int(20 + (i+gen)%60))},
		{Name: "email", Reg: w(crdt.String("user" + strconv.FormatInt(i, 10) + "-" + strconv.FormatInt(gen, 10) + "@example.com"))},
		{Name: "name", Reg: w(crdt.String("name-" + strconv.FormatInt(i*7+gen, 10)))},
		{Name: "score", Reg: w(crdt.Float(float64(i%1000) / 7))},
		{Name: "updated", Reg: w(crdt.TimeUnix(1_700_000_000+i+gen, 0))},
	}}
}

// benchDeltas returns the deltas that write generation gen of records
// [0, n) of collection "bench" in batches of benchBatchRecords, the records
// of a batch in random order.
func benchDeltas(n int, gen int64, wall int64) []*crdt.Delta {
	r := rand.New(rand.NewPCG(uint64(n), uint64(gen)))
	perm := r.Perm(n)
	var out []*crdt.Delta
	for lo := 0; lo < n; lo += benchBatchRecords {
		d := &crdt.Delta{Fragments: make([]crdt.Fragment, 0, benchBatchRecords)}
		for _, i := range perm[lo:min(lo+benchBatchRecords, n)] {
			st := crdt.Stamp{TS: crdt.Timestamp{Wall: wall + int64(i)}, Replica: crdt.ReplicaID(1000 + gen)}
			d.Add("bench", crdt.IntKey(int64(i)), benchRecord(int64(i), st, gen))
		}
		out = append(out, d)
	}
	return out
}

func benchOptions(b *testing.B) Options {
	o := DefaultOptions()
	o.Logger = slog.New(slog.DiscardHandler)
	o.GCInterval = 0
	if testing.Verbose() {
		o.Logger = testLogger(b)
	}
	return o
}

// rawBatch is the record keys and values the store wrote for a delta.
type rawBatch struct{ keys, values [][]byte }

// readRaw reads back the record values a store holds for the records of d.
func readRaw(b *testing.B, s *Store, d *crdt.Delta) rawBatch {
	var rb rawBatch
	err := s.db.View(func(txn *badger.Txn) error {
		for _, f := range d.Fragments {
			k := recordKey(crdt.MakeID(f.Collection, f.Key))
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			rb.keys = append(rb.keys, k)
			rb.values = append(rb.values, v)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return rb
}

// writeRaw writes a batch with a Badger WriteBatch: the baseline.
func writeRaw(b *testing.B, db *badger.DB, rb rawBatch) {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for i := range rb.keys {
		if err := wb.Set(rb.keys[i], rb.values[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		b.Fatal(err)
	}
}

func median(d []float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkStoreMerge merges 200k field updates (40k records of 5 fields in
// 10k-record batches) and, batch by batch in the same round, writes the
// record values the store wrote for the batch with a raw Badger WriteBatch
// under the same options (SyncWrites included), flushed like a Merge returns:
// durable. fields/s is the merge throughput, ratio the raw write time over
// the merge time (medians over the rounds). "insert" merges into an empty
// store; "update" merges newer versions of the records the store holds (and
// has applied).
func BenchmarkStoreMerge(b *testing.B) {
	const records = 200_000 / benchFields
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, mode := range []string{"insert", "update"} {
		b.Run(mode, func(b *testing.B) {
			initial := benchDeltas(records, 1, wall)
			deltas := initial
			if mode == "update" {
				deltas = benchDeltas(records, 2, wall+int64(time.Minute))
			}
			var rates, ratios []float64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				opts := benchOptions(b)
				opts.Physical = func() int64 { return wall + int64(time.Hour) }
				s, err := Open(b.TempDir(), nil, opts)
				if err != nil {
					b.Fatal(err)
				}
				db, err := badger.Open(opts.badger(b.TempDir()))
				if err != nil {
					b.Fatal(err)
				}
				if mode == "update" {
					for _, d := range initial {
						if _, err := s.Merge(d); err != nil {
							b.Fatal(err)
						}
						writeRaw(b, db, readRaw(b, s, d))
					}
					drainAll(b, s)
				}
				var mergeDur, rawDur time.Duration
				for _, d := range deltas {
					b.StartTimer()
					start := time.Now()
					res, err := s.Merge(d)
					mergeDur += time.Since(start)
					b.StopTimer()
					if err != nil {
						b.Fatal(err)
					}
					if len(res.Effects) != d.Len() {
						b.Fatalf("effects %d of %d", len(res.Effects), d.Len())
					}
					raw := readRaw(b, s, d)
					b.StartTimer()
					start = time.Now()
					writeRaw(b, db, raw)
					rawDur += time.Since(start)
					b.StopTimer()
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				rates = append(rates, float64(records*benchFields)/mergeDur.Seconds())
				ratios = append(ratios, rawDur.Seconds()/mergeDur.Seconds())
			}
			b.ReportMetric(median(rates), "fields/s")
			b.ReportMetric(median(ratios), "ratio")
		})
	}
}

func drainAll(b testing.TB, s *Store) {
	for s.PendingLen() > 0 {
		p, err := s.Pending(10_000)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.AckPending(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreLocal records captured full rows of 5 fields, each changing
// every field of a record the store holds, in batches of 1,000 with a
// cursor: the diff, stamp, join and write path. fields/s counts changed
// fields.
func BenchmarkStoreLocal(b *testing.B) {
	const records, batch = 20_000, 1_000
	opts := benchOptions(b)
	s, err := Open(b.TempDir(), nil, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	wall := time.Now().UnixNano() - int64(time.Hour)
	for _, d := range benchDeltas(records, 1, wall) {
		if _, err := s.Merge(d); err != nil {
			b.Fatal(err)
		}
	}
	drainAll(b, s)
	c := mustCol(crdt.MustSchema(), "bench")
	rows := func(gen int64) [][]Change {
		var out [][]Change
		r := rand.New(rand.NewPCG(7, uint64(gen)))
		perm := r.Perm(records)
		for lo := 0; lo < records; lo += batch {
			var chs []Change
			for _, i := range perm[lo : lo+batch] {
				row := benchRecord(int64(i), crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 1}, gen).View(c)
				row["id"] = crdt.Int(int64(i))
				chs = append(chs, Change{Collection: "bench", Key: crdt.IntKey(int64(i)), Row: row, Full: true, Captured: true})
			}
			out = append(out, chs)
		}
		return out
	}
	var rates []float64
	gen := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		gen++
		batches := rows(gen)
		b.StartTimer()
		start := time.Now()
		changed := 0
		for i, chs := range batches {
			res, err := s.Local("node", chs, &Cursor{Name: "bench", Value: []byte(strconv.Itoa(i))})
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Failed) > 0 {
				b.Fatal(res.Failed[0])
			}
			for _, f := range res.Delta.Fragments {
				changed += len(f.Record.Fields)
			}
		}
		if changed < records*(benchFields-1) {
			b.Fatalf("only %d fields changed", changed)
		}
		rates = append(rates, float64(changed)/time.Since(start).Seconds())
	}
	b.ReportMetric(median(rates), "fields/s")
}

// BenchmarkStoreMemory fills a store with 1M records of 5 fields and reports
// the bytes on disk per record (after Close, which flushes the memtables);
// the Go heap in use (after GC) with the reopened store, which is the steady
// footprint of a replica holding them (heap-MB), and right after the fill,
// which adds Badger's transient write buffers (fill-heap-MB); and the time to
// reopen it, which rebuilds the range tree. LATTICE_STORE_MEMORY_RECORDS
// changes the number of records.
func BenchmarkStoreMemory(b *testing.B) {
	records := 1_000_000
	if v := os.Getenv("LATTICE_STORE_MEMORY_RECORDS"); v != "" {
		records, _ = strconv.Atoi(v)
	}
	wall := time.Now().UnixNano() - int64(time.Hour)
	for b.Loop() {
		dir := b.TempDir()
		opts := benchOptions(b)
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		s, err := Open(dir, nil, opts)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for lo := 0; lo < records; lo += benchBatchRecords {
			d := &crdt.Delta{}
			for i := lo; i < min(lo+benchBatchRecords, records); i++ {
				st := crdt.Stamp{TS: crdt.Timestamp{Wall: wall + int64(i)}, Replica: 99}
				d.Add("bench", crdt.IntKey(int64(i)), benchRecord(int64(i), st, 1))
			}
			if _, err := s.Merge(d); err != nil {
				b.Fatal(err)
			}
		}
		fill := time.Since(start)
		drainAll(b, s)
		heap := heapMB(base)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		size := dirSize(b, dir)

		start = time.Now()
		s, err = Open(dir, nil, opts)
		if err != nil {
			b.Fatal(err)
		}
		reopen := time.Since(start)
		reopenHeap := heapMB(base)
		if s.Digest().Count != uint64(records) {
			b.Fatalf("reopened with %d records", s.Digest().Count)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(size)/float64(records), "bytes/record")
		b.ReportMetric(reopenHeap, "heap-MB")
		b.ReportMetric(heap, "fill-heap-MB")
		b.ReportMetric(reopen.Seconds(), "reopen-s")
		b.ReportMetric(float64(records*benchFields)/fill.Seconds(), "fill-fields/s")
	}
}

// heapMB returns the heap in use above base after a GC, in MiB.
func heapMB(base runtime.MemStats) float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(int64(m.HeapAlloc)-int64(base.HeapAlloc)) / (1 << 20)
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkLimitCheck measures what the size-limit check adds to the write
// path. The check is the only difference between crdt.EncodeRecord, which
// Local and Merge call, and crdt.AppendRecord; both encode the same records
// in the same run, interleaved with Local batches of API writes of those
// records, so that the cost is also given as a share of a Local per record.
// ratio is EncodeRecord's time over AppendRecord's (the baseline without the
// check); local-% is the check's share of Local's time per record.
func BenchmarkLimitCheck(b *testing.B) {
	const n = 1_000
	s, err := Open(b.TempDir(), nil, benchOptions(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := mustCol(crdt.MustSchema(), "bench")
	lim := crdt.DefaultLimits()
	st := crdt.Stamp{TS: crdt.Timestamp{Wall: 1}, Replica: 1}
	recs := make([]*crdt.Record, n)
	for i := range recs {
		recs[i] = benchRecord(int64(i), st, 0)
	}
	var buf []byte
	timeEncode := func(checked bool) time.Duration {
		start := time.Now()
		for _, r := range recs {
			if checked {
				if buf, err = crdt.EncodeRecord(buf[:0], r, lim); err != nil {
					b.Fatal(err)
				}
			} else {
				buf = crdt.AppendRecord(buf[:0], r)
			}
		}
		return time.Since(start)
	}
	var ratios, checkNs, localShare []float64
	gen := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		gen++
		chs := make([]Change, n)
		for i := range chs {
			chs[i] = Change{Collection: "bench", Key: crdt.IntKey(int64(i)), Row: benchRecord(int64(i), st, gen).View(c)}
		}
		start := time.Now()
		res, err := s.Local("node", chs, nil)
		if err != nil || len(res.Failed) > 0 {
			b.Fatal(err, res)
		}
		local := time.Since(start)
		drainAll(b, s)
		// Interleaved, the better of two of each: the figures are small
		// and the machine is shared.
		plain := min(timeEncode(false), timeEncode(false))
		checked := min(timeEncode(true), timeEncode(true))
		extra := max(checked-plain, 0)
		ratios = append(ratios, float64(checked)/float64(plain))
		checkNs = append(checkNs, float64(extra.Nanoseconds())/n)
		localShare = append(localShare, 100*float64(extra)/float64(local))
	}
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(checkNs), "check-ns/record")
	b.ReportMetric(median(localShare), "local-%")
}

// benchUpdates returns the deltas that write generation gen of records
// [0, n) over generation gen-1: each write knows the one it replaces
// (Prev), as a write made after reading it does, unless concurrent, when
// it knows nothing and every field of every record conflicts.
func benchUpdates(n int, gen, wall int64, concurrent bool) []*crdt.Delta {
	ds := benchDeltas(n, gen, wall+gen*int64(time.Minute))
	for _, d := range ds {
		for _, f := range d.Fragments {
			i, _ := f.Key.Values()
			prev := crdt.Stamp{TS: crdt.Timestamp{Wall: wall + (gen-1)*int64(time.Minute) + i[0].AsInt()}, Replica: crdt.ReplicaID(1000 + gen - 1)}
			for j := range f.Record.Fields {
				if concurrent {
					// An older write, from another replica, that
					// knew nothing of the field: it loses, and is
					// logged.
					w := &f.Record.Fields[j].Reg[0]
					w.Stamp.TS.Wall = prev.TS.Wall - 1
					w.Stamp.Replica = crdt.ReplicaID(2000 + gen)
				} else {
					f.Record.Fields[j].Reg[0].Prev = prev
				}
			}
			if concurrent {
				f.Record.Written = crdt.Stamp{TS: crdt.Timestamp{Wall: prev.TS.Wall - 1}, Replica: crdt.ReplicaID(2000 + gen)}
			}
		}
	}
	return ds
}

// BenchmarkMergeConflictLog merges updates of 20k records of 5 fields into
// two stores that hold their previous versions, one with the conflict log
// and one without, batch by batch in the same run (each batch into both, in
// alternating order, so that both see the same machine). "causal" updates
// knew what they replace (nothing to log; the cost is detection);
// "concurrent" ones are older writes that knew nothing (every field lost,
// and is logged: five conflicts per record). fields/s is the rate with the
// log, ratio the rate with the log over the rate without (medians over the
// rounds; target >= 0.95 for causal updates).
func BenchmarkMergeConflictLog(b *testing.B) {
	const records = 20_000
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, mode := range []string{"causal", "concurrent"} {
		b.Run(mode, func(b *testing.B) {
			initial := benchDeltas(records, 1, wall+int64(time.Minute))
			updates := benchUpdates(records, 2, wall, mode == "concurrent")
			var rates, ratios []float64
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				var dur [2]time.Duration
				logged := 0
				// Two sub-rounds: the store with the log is opened and
				// loaded first in one, second in the other, so that
				// the order's effect (background compaction of the
				// first store's load) cancels out.
				for sub := range 2 {
					var stores [2]*Store // stores[0] has the log
					for j := range stores {
						k := (j + sub) % 2
						opts := benchOptions(b)
						opts.Physical = func() int64 { return wall + int64(time.Hour) }
						opts.NoConflictLog = k == 1
						opts.SyncWrites = false
						s, err := Open(b.TempDir(), nil, opts)
						if err != nil {
							b.Fatal(err)
						}
						for _, d := range initial {
							if _, err := s.Merge(d); err != nil {
								b.Fatal(err)
							}
						}
						drainAll(b, s)
						stores[k] = s
					}
					for i, d := range updates {
						for j := range 2 {
							k := (i + j) % 2
							b.StartTimer()
							start := time.Now()
							res, err := stores[k].Merge(d)
							dur[k] += time.Since(start)
							b.StopTimer()
							if err != nil {
								b.Fatal(err)
							}
							if k == 0 {
								logged += len(res.Conflicts)
							}
						}
					}
					for _, s := range stores {
						if err := s.Close(); err != nil {
							b.Fatal(err)
						}
					}
				}
				if want := map[string]int{"causal": 0, "concurrent": 2 * records * benchFields}[mode]; logged != want {
					b.Fatalf("logged %d conflicts, want %d", logged, want)
				}
				b.StartTimer()
				rates = append(rates, float64(2*records*benchFields)/dur[0].Seconds())
				ratios = append(ratios, dur[1].Seconds()/dur[0].Seconds())
			}
			b.ReportMetric(median(rates), "fields/s")
			b.ReportMetric(median(ratios), "ratio")
		})
	}
}
