package sidecar

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Verification repair modes (verify.repair).
const (
	// RepairApply writes the merged state into the system.
	RepairApply = "apply"
	// RepairCapture takes the system's differing rows as local changes.
	RepairCapture = "capture"
	// RepairReport only reports.
	RepairReport = "report"
)

// VerifyConfig configures the periodic comparison of the system's rows with
// the merged state (docs/verify.md).
type VerifyConfig struct {
	// Disabled turns the periodic pass off; POST /v1/verify still runs one.
	Disabled bool `yaml:"disabled"`
	// Interval is the time between the end of one pass and the start of
	// the next (default 5m).
	Interval time.Duration `yaml:"interval"`
	// Repair is what a periodic pass does with drift: apply (default),
	// capture or report.
	Repair string `yaml:"repair"`
	// RowsPerSecond bounds how fast a periodic pass reads the system
	// (default 20000).
	RowsPerSecond int `yaml:"rows_per_second"`
	// RangeRows is the number of rows read and compared per key range
	// (default 1000).
	RangeRows int `yaml:"range_rows"`
	// Settle bounds how long a pass waits for capture to take in the
	// changes committed before it confirms a difference (default 10s).
	Settle time.Duration `yaml:"settle"`
}

func (v *VerifyConfig) fill() error {
	if v.Interval == 0 {
		v.Interval = 5 * time.Minute
	}
	if v.Interval < 0 {
		return keyErr("verify.interval", "must be positive")
	}
	switch v.Repair {
	case "":
		v.Repair = RepairApply
	case RepairApply, RepairCapture, RepairReport:
	default:
		return errors.WithHint(keyErr("verify.repair", "%q is not a mode", v.Repair), "use apply, capture or report")
	}
	if v.RowsPerSecond == 0 {
		v.RowsPerSecond = 20000
	}
	if v.RowsPerSecond < 0 {
		return keyErr("verify.rows_per_second", "must be positive")
	}
	if v.RangeRows == 0 {
		v.RangeRows = 1000
	}
	if v.RangeRows < 0 || v.RangeRows > 100000 {
		return keyErr("verify.range_rows", "must be in [1, 100000]")
	}
	if v.Settle == 0 {
		v.Settle = 10 * time.Second
	}
	if v.Settle < 0 {
		return keyErr("verify.settle", "must be positive")
	}
	return nil
}

// maxDriftListed bounds the drift records a report lists; the count covers
// them all.
const maxDriftListed = 1000

// VerifyReport is the result of one verification pass.
type VerifyReport struct {
	Node    string    `json:"node"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	// Repair is what the pass did with drift: apply, capture or report.
	Repair string `json:"repair"`
	// Rows counts the system's rows read; Records the merged records
	// compared with them; Ranges the key ranges compared, RangesDiffer
	// those whose fingerprints differed.
	Rows         int64 `json:"rows"`
	Records      int64 `json:"records"`
	Ranges       int64 `json:"ranges"`
	RangesDiffer int64 `json:"ranges_differ"`
	// RangesUnchanged counts the ranges found equal without reading their
	// rows: the system's hash of the range and the store's fingerprint of
	// it were those of the last pass that found it equal (adapters that
	// hash ranges, docs/verify.md). RowsUnchanged counts their rows, which
	// Rows leaves out.
	RangesUnchanged int64 `json:"ranges_unchanged"`
	RowsUnchanged   int64 `json:"rows_unchanged"`
	// DriftRecords counts the records whose system row differs from the
	// merged state after the pass waited for capture; Drift lists up to
	// 1000 of them.
	DriftRecords int     `json:"drift_records"`
	Drift        []Drift `json:"drift,omitempty"`
	// Repaired counts the drift records the pass repaired (queued for
	// apply, or taken as local changes).
	Repaired int `json:"repaired"`
	// SystemDigest is the digest of the system's rows in collection space
	// (SystemRows rows): equal on two nodes iff their systems hold the same
	// rows.
	SystemDigest string `json:"system_digest"`
	SystemRows   uint64 `json:"system_rows"`
}

// Drift is one record whose system row differs from the merged state.
type Drift struct {
	Collection string `json:"collection"`
	Key        string `json:"key"`
	// Kind is differs, missing_in_system (the merged record exists, the
	// system has no row) or not_in_merged_state (the system has a row of a
	// record the merged state does not hold or holds deleted).
	Kind   string       `json:"kind"`
	Fields []DriftField `json:"fields,omitempty"`
}

// DriftField is one differing field: its value in the system and in the
// merged state (null when absent).
type DriftField struct {
	Field  string          `json:"field"`
	System json.RawMessage `json:"system"`
	Merged json.RawMessage `json:"merged"`
}

// verifier is the agent's verification state.
type verifier struct {
	mu sync.Mutex // one pass at a time; guards memo
	// memo holds, per collection, the key ranges of the last pass, when the
	// adapter hashes ranges (adapters.RangeHasher).
	memo map[string]*rangeMemo
	last sync.Mutex // guards report
	rep  *VerifyReport

	drift    prometheus.Gauge
	duration prometheus.Histogram
	lastTime prometheus.Gauge
	rows     prometheus.Counter
	repaired prometheus.Counter
}

// newVerifier makes the verification metrics, and registers them when the
// agent verifies (its adapter reads by key range): an agent that cannot
// does not export them, so that no dashboard reads its zero drift as a
// verified system.
func newVerifier(reg *prometheus.Registry, verifies bool) *verifier {
	v := &verifier{
		memo: map[string]*rangeMemo{},
		drift: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "lattice", Name: "drift_records",
			Help: "Records whose system row differed from the merged state at the last verification pass."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "lattice", Name: "verify_duration_seconds",
			Help: "Duration of verification passes.", Buckets: []float64{.01, .1, .5, 1, 5, 15, 60, 300, 1800}}),
		lastTime: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "lattice", Name: "verify_last_timestamp_seconds",
			Help: "Unix time at which the last verification pass ended."}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "lattice", Name: "verify_rows_total",
			Help: "System rows read by verification passes."}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "lattice", Name: "verify_repaired_total",
			Help: "Drift records repaired by verification passes."}),
	}
	if verifies {
		reg.MustRegister(v.drift, v.duration, v.lastTime, v.rows, v.repaired)
	}
	return v
}

// LastVerify returns the report of the last verification pass, or nil.
func (a *Agent) LastVerify() *VerifyReport {
	a.ver.last.Lock()
	defer a.ver.last.Unlock()
	return a.ver.rep
}

// ErrNoVerify marks a verification that this agent cannot run: it has no
// adapter, or its adapter cannot read by key range.
var ErrNoVerify = errors.New("sidecar: verification not available")

// verifyLoop runs a paced pass every verify.interval once capture runs.
func (a *Agent) verifyLoop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-a.captureUp:
	}
	a.setState(&a.verifySt, "idle", nil)
	for clock.Sleep(a.clock, ctx.Done(), a.cfg.Verify.Interval) {
		a.setState(&a.verifySt, "verifying", nil)
		if _, err := a.Verify(ctx, a.cfg.Verify.Repair, true); err != nil {
			if ctx.Err() != nil {
				return
			}
			a.setState(&a.verifySt, "retrying", err)
			a.log.Warn("verification pass failed; the next one runs in verify.interval", "err", err)
			continue
		}
		a.markBatch(&a.verifySt)
		a.setState(&a.verifySt, "idle", nil)
	}
}

// Verify runs one verification pass: it reads the system's rows of every
// synced collection in key ranges and compares each range, fingerprints
// first, with the merged state's visible rows, through the mapping capture
// uses. A record on the apply queue (or parked) is not drift. Differences
// are confirmed once capture has taken in every change committed before the
// pass ended, then repaired by repair (apply, capture or report). paced
// bounds the rate at verify.rows_per_second.
func (a *Agent) Verify(ctx context.Context, repair string, paced bool) (*VerifyReport, error) {
	rr, ok := a.adp.(adapters.RangeReader)
	if a.adp == nil || !ok {
		return nil, errors.Mark(errors.WithHint(errors.New("this agent's system cannot be verified"),
			"verification needs an adapter that reads by key range (sqlite, postgres, http with range_reads: true)"), ErrNoVerify)
	}
	switch repair {
	case RepairApply, RepairCapture, RepairReport:
	default:
		return nil, errors.Newf("repair %q: use apply, capture or report", repair)
	}
	select {
	case <-a.captureUp:
	default:
		return nil, errors.New("capture has not started yet; verify once the agent is ready")
	}
	a.ver.mu.Lock()
	defer a.ver.mu.Unlock()
	start := a.clock.Now()
	rep := &VerifyReport{Node: a.cfg.Node, Started: start.UTC(), Repair: repair}
	p := &verifyPass{rep: rep, paced: paced}
	rh, hashes := a.adp.(adapters.RangeHasher)
	info := a.catalog()
	seen := map[string]bool{}
	for _, name := range info.Collections() {
		ci, err := info.Lookup(name)
		if err != nil || !ci.Synced {
			continue
		}
		col, err := a.schema.Collection(name)
		if err != nil {
			continue
		}
		if hashes {
			seen[name] = true
			err = a.verifyHashed(ctx, p, rh, ci, col)
		} else {
			err = a.verifyRead(ctx, p, rr, ci, col)
		}
		if err != nil {
			return nil, err
		}
	}
	maps.DeleteFunc(a.ver.memo, func(name string, _ *rangeMemo) bool { return !seen[name] })
	digest, cands := p.digest, p.cands
	rep.SystemDigest, rep.SystemRows = digest.Hash.String(), digest.Count
	drift, since, err := a.confirm(ctx, rr, cands)
	if err != nil {
		return nil, err
	}
	rep.DriftRecords = len(drift)
	for i := range drift {
		d := &drift[i]
		if i < maxDriftListed {
			rep.Drift = append(rep.Drift, d.Drift)
		}
		a.log.Warn("drift: the system's row differs from the merged state", "collection", d.Collection,
			"key", d.Key, "kind", d.Kind, "fields", fieldNames(d.Fields), "repair", repair)
	}
	if len(drift) > 0 && repair != RepairReport {
		n, err := a.repair(ctx, repair, drift, since)
		rep.Repaired = n
		a.ver.repaired.Add(float64(n))
		if err != nil {
			return nil, errors.Wrap(err, "verify: repair")
		}
	}
	rep.Seconds = clock.Since(a.clock, start).Seconds()
	a.ver.drift.Set(float64(len(drift)))
	a.ver.duration.Observe(rep.Seconds)
	a.ver.lastTime.Set(float64(a.clock.Now().UnixNano()) / 1e9)
	a.ver.last.Lock()
	a.ver.rep = rep
	a.ver.last.Unlock()
	a.log.Info("verification pass done", "rows", rep.Rows, "ranges", rep.Ranges, "ranges_differ", rep.RangesDiffer,
		"ranges_unchanged", rep.RangesUnchanged, "rows_unchanged", rep.RowsUnchanged,
		"drift_records", rep.DriftRecords, "repaired", rep.Repaired, "took", clock.Since(a.clock, start).Round(time.Millisecond))
	return rep, nil
}

// verifyPass is what one pass has found so far.
type verifyPass struct {
	rep    *VerifyReport
	paced  bool
	digest crdt.Fingerprint // of the system's rows in collection space
	cands  []crdt.ID        // records whose rows differ, to confirm
}

// verifyRead compares a collection's rows with the merged state in ranges
// of verify.range_rows rows, reading every row (adapters that do not hash
// ranges).
func (a *Agent) verifyRead(ctx context.Context, p *verifyPass, rr adapters.RangeReader, ci *engine.Mapping, col *crdt.Collection) error {
	name := ci.Name
	after := crdt.Key("")
	for {
		rows, err := rr.ReadRange(ctx, name, after, a.cfg.Verify.RangeRows)
		if err != nil {
			return errors.Wrapf(err, "verify: read %s", name)
		}
		full := len(rows) == a.cfg.Verify.RangeRows
		end := crdt.Key("")
		if full {
			end = rows[len(rows)-1].Key
		}
		if _, _, _, err := a.compareSpan(ctx, p, ci, col, rows, after, end); err != nil {
			return err
		}
		if !full {
			return nil
		}
		after = end
	}
}

// rangeMemo is what the last pass learnt of one collection's key ranges:
// consecutive ranges that cover the whole key space, each at most
// verify.range_rows rows when it was read, so that the memo holds one
// entry per range, never one per row.
type rangeMemo struct {
	// mapping is the mapping the ranges were compared under: under another
	// one (a column added, a type changed) equal rows may differ, so the
	// memo is forgotten. The schema is fixed for the agent's life.
	mapping *engine.Mapping
	ranges  []verifiedRange
}

// verifiedRange is one key range of a pass: the keys after those of the
// range before it ("" for the first) up to and including through ("" for
// the last range: no bound).
type verifiedRange struct {
	through crdt.Key
	// sys is the system's hash of the range's rows as the pass read them.
	sys adapters.RangeHash
	// equal says the pass found those rows equal to the merged state;
	// store is then the store's fingerprint of the records it compared
	// them with, and fp the fingerprint of the rows in collection space,
	// the range's part of the system digest.
	equal bool
	store crdt.Fingerprint
	fp    crdt.Fingerprint
}

// verifyHashed compares a collection's rows with the merged state in the
// key ranges of the last pass (rangeMemo). A range the last pass found
// equal is equal again without reading its rows when the store's
// fingerprint of it and the system's hash of it (computed by the system,
// adapters.RangeHasher) are both what they were then: the rows are those
// that equalled the records, and the records are those they equalled. Any
// other range is read with its hash, in pieces of at most
// verify.range_rows rows, and compared as verifyRead compares; its outer
// bounds stay, so that a change in one range costs a read of that range
// only.
func (a *Agent) verifyHashed(ctx context.Context, p *verifyPass, rh adapters.RangeHasher, ci *engine.Mapping, col *crdt.Collection) error {
	name, limit := ci.Name, a.cfg.Verify.RangeRows
	var ranges []verifiedRange
	if m := a.ver.memo[name]; m != nil && reflect.DeepEqual(m.mapping, ci) {
		ranges = m.ranges
	}
	if len(ranges) == 0 {
		ranges = []verifiedRange{{through: ""}}
	}
	out := make([]verifiedRange, 0, len(ranges))
	after := crdt.Key("")
	for _, r := range ranges {
		if r.equal {
			lo, hi := spanIDs(name, after, r.through)
			if a.store.Fingerprint(lo, hi) == r.store {
				// One more row than the range held: a row added is seen
				// in the count even if the limit would cut it off.
				h, err := rh.HashRange(ctx, name, after, r.through, r.sys.Rows+1)
				if err != nil {
					return errors.Wrapf(err, "verify: hash %s", name)
				}
				if h == r.sys {
					p.rep.Ranges++
					p.rep.RangesUnchanged++
					p.rep.RowsUnchanged += int64(h.Rows)
					p.rep.Records += int64(r.store.Count)
					p.digest = p.digest.Combine(r.fp)
					out = append(out, r)
					if !a.pace(ctx, p, h.Rows) {
						return ctx.Err()
					}
					after = r.through
					continue
				}
			}
		}
		for cur := after; ; {
			rows, h, err := rh.ReadHashedRange(ctx, name, cur, r.through, limit)
			if err != nil {
				return errors.Wrapf(err, "verify: read %s", name)
			}
			end := r.through
			if len(rows) == limit && h.Last != r.through {
				end = h.Last
			}
			equal, store, fp, err := a.compareSpan(ctx, p, ci, col, rows, cur, end)
			if err != nil {
				return err
			}
			out = append(out, verifiedRange{through: end, sys: h, equal: equal, store: store, fp: fp})
			if end == r.through {
				break
			}
			cur = end
		}
		after = r.through
	}
	a.ver.memo[name] = &rangeMemo{mapping: ci, ranges: coalesce(out, limit)}
	return nil
}

// coalesce joins neighbouring ranges that are both equal, or both not,
// while together they hold at most limit rows, so that ranges emptied by
// deletes do not pile up. Equal ranges join their hashes and fingerprints:
// each is a XOR over its rows or records.
func coalesce(rs []verifiedRange, limit int) []verifiedRange {
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].equal == r.equal && out[n-1].sys.Rows+r.sys.Rows <= limit {
			prev := &out[n-1]
			prev.through = r.through
			prev.sys = prev.sys.Combine(r.sys)
			prev.store = prev.store.Combine(r.store)
			prev.fp = prev.fp.Combine(r.fp)
			continue
		}
		out = append(out, r)
	}
	return out
}

// spanIDs returns the record IDs [lo, hi) of the keys of a collection after
// after ("" from the first) up to and including through ("" no bound).
func spanIDs(name string, after, through crdt.Key) (lo, hi crdt.ID) {
	lo = crdt.MakeID(name, after)
	if after != "" {
		lo += "\x00"
	}
	hi = crdt.ID(name + "\x01")
	if through != "" {
		hi = crdt.MakeID(name, through) + "\x00"
	}
	return lo, hi
}

// compareSpan compares the system's rows of the keys after after up to
// and including through ("" no bound) with the merged records of the same
// keys, and adds what it found to the pass. It reports whether they are
// equal, the store's fingerprint of the range taken before its records
// were read, and the fingerprint of the rows in collection space.
//
// The store's range tree is updated only after a commit, and a record's
// hash changes with every change of its state, so a fingerprint taken
// before the read is either that of the records read or one the tree no
// longer has by the next pass: it never stands for records that were not
// compared.
func (a *Agent) compareSpan(ctx context.Context, p *verifyPass, ci *engine.Mapping, col *crdt.Collection, rows []adapters.Change, after, through crdt.Key) (equal bool, store, fp crdt.Fingerprint, err error) {
	lo, hi := spanIDs(ci.Name, after, through)
	store = a.store.Fingerprint(lo, hi)
	merged, err := a.store.ReadRange(lo, hi, 0)
	if err != nil {
		return false, store, fp, err
	}
	p.rep.Ranges++
	p.rep.Rows += int64(len(rows))
	p.rep.Records += int64(merged.Len())
	differ, fp := compareRange(a.roundTrip, ci, col, rows, merged)
	p.digest = p.digest.Combine(fp)
	if len(differ) > 0 {
		p.rep.RangesDiffer++
		p.cands = append(p.cands, differ...)
	}
	a.ver.rows.Add(float64(len(rows)))
	if !a.pace(ctx, p, len(rows)) {
		return false, store, fp, ctx.Err()
	}
	return len(differ) == 0, store, fp, nil
}

// pace sleeps for n rows at verify.rows_per_second when the pass is paced;
// it returns false if ctx ended first.
func (a *Agent) pace(ctx context.Context, p *verifyPass, n int) bool {
	if !p.paced || n == 0 {
		return true
	}
	return clock.Sleep(a.clock, ctx.Done(), time.Duration(n)*time.Second/time.Duration(a.cfg.Verify.RowsPerSecond))
}

func fieldNames(fs []DriftField) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Field
	}
	return out
}

// drifted is a confirmed drift record with what repairs it.
type drifted struct {
	Drift
	id     crdt.ID
	key    crdt.Key
	system crdt.Row // the system's row in collection space (nil: none)
	known  bool     // the store holds the record (live or deleted)
}

// compareRange compares the system's rows of one key range with the
// merged records of the same range: fingerprints first, then record by
// record when they differ. It returns the IDs that differ and the
// fingerprint of the system's rows.
func compareRange(rt adapters.RoundTripper, ci *engine.Mapping, col *crdt.Collection, rows []adapters.Change, merged *crdt.Delta) ([]crdt.ID, crdt.Fingerprint) {
	var sysFP, mergedFP crdt.Fingerprint
	var buf []byte
	sys := make(map[crdt.Key]crdt.Hash, len(rows))
	for _, c := range rows {
		var h crdt.Hash
		h, buf = rowHash(buf, col.Name, c.Key, systemRow(ci, col, c.Row))
		sys[c.Key] = h
		sysFP = sysFP.Add(h)
	}
	mh := make(map[crdt.Key]crdt.Hash, merged.Len())
	for _, f := range merged.Fragments {
		if !f.Record.Exists() {
			continue
		}
		var h crdt.Hash
		h, buf = rowHash(buf, col.Name, f.Key, mergedRow(rt, ci, col, f.Record))
		mh[f.Key] = h
		mergedFP = mergedFP.Add(h)
	}
	if sysFP == mergedFP {
		return nil, sysFP
	}
	var differ []crdt.ID
	for k, h := range sys {
		if mh[k] != h {
			differ = append(differ, crdt.MakeID(col.Name, k))
		}
	}
	for k := range mh {
		if _, ok := sys[k]; !ok {
			differ = append(differ, crdt.MakeID(col.Name, k))
		}
	}
	slices.Sort(differ)
	return differ, sysFP
}

// systemRow is a system's row in collection space as verification compares
// it: key columns left out, mapped as capture maps it, normalized.
func systemRow(ci *engine.Mapping, col *crdt.Collection, row crdt.Row) crdt.Row {
	if row == nil {
		return nil
	}
	// stripKey copies the row: fromSystem may then change it in place.
	return normalRow(ci, col, ci.FromSystem(ci.StripKey(row)))
}

// mergedRow is a merged record's visible row as the system would hold it:
// only the fields that are columns of the system's table, normalized, and
// carried through the mapping and back where the adapter maps values (rt,
// nil when it does not), so that a value the mapping normalises once is
// not drift.
func mergedRow(rt adapters.RoundTripper, ci *engine.Mapping, col *crdt.Collection, r *crdt.Record) crdt.Row {
	view := r.View(col)
	if view == nil {
		return nil
	}
	if rt != nil {
		if back, err := rt.RoundTrip(col.Name, view); err == nil {
			view = back
		}
	}
	return normalRow(ci, col, view)
}

// normalRow drops nulls and empty lists (a missing field, a null and an
// empty set are one value), drops fields the system has no column for,
// and puts OR-set lists in set order.
func normalRow(ci *engine.Mapping, col *crdt.Collection, row crdt.Row) crdt.Row {
	out := make(crdt.Row, len(row))
	for f, v := range row {
		if _, ok := ci.Kinds[f]; !ok || slices.Contains(ci.Key, f) {
			continue
		}
		if v.IsNull() || (v.Kind() == crdt.KindList && len(v.AsList()) == 0) {
			continue
		}
		if v.Kind() == crdt.KindList && col.Policy(f).Kind == crdt.ORSet {
			if s, err := crdt.SetOf(v.AsList()...); err == nil {
				v = s
			}
		}
		out[f] = v
	}
	return out
}

// rowHash hashes a normalized row under its record ID (collection and
// key), the same on every node for the same row. buf is scratch space,
// returned for reuse.
func rowHash(buf []byte, collection string, key crdt.Key, row crdt.Row) (crdt.Hash, []byte) {
	b := append(buf[:0], collection...)
	b = append(b, 0)
	b = append(b, key...)
	b = append(b, 0)
	var names [16]string
	fields := names[:0]
	for f := range row {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
		b = row[f].AppendCanonical(b)
	}
	sum := sha256.Sum256(b)
	var h crdt.Hash
	copy(h[:], sum[:])
	return h, b
}

// confirm waits until capture has taken in every change committed before
// now (so that a user's write not yet captured is not taken for drift),
// then compares the candidates again, leaving out records on the apply
// queue or parked.
//
// It also returns the capture position the store held before the system's
// rows were read: a repair writes nothing over a change logged after it.
func (a *Agent) confirm(ctx context.Context, rr adapters.RangeReader, ids []crdt.ID) ([]drifted, []byte, error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	head, herr := a.adp.Head(ctx)
	deadline := a.clock.Now().Add(a.cfg.Verify.Settle)
	var since []byte
	for {
		cur, err := a.store.Cursor(a.cursorName)
		if err != nil {
			return nil, nil, err
		}
		since = cur
		if herr != nil || bytes.Compare(cur, head) >= 0 || a.clock.Now().After(deadline) {
			break
		}
		if !clock.Sleep(a.clock, ctx.Done(), 20*time.Millisecond) {
			return nil, nil, ctx.Err()
		}
	}
	queued, err := a.store.Queued(ids)
	if err != nil {
		return nil, nil, err
	}
	byColl := map[string][]crdt.Key{}
	for _, id := range ids {
		if queued[id] {
			continue
		}
		c, k, err := id.Split()
		if err != nil {
			return nil, nil, err
		}
		byColl[c] = append(byColl[c], k)
	}
	info := a.catalog()
	var out []drifted
	for _, name := range slices.Sorted(maps.Keys(byColl)) {
		keys := byColl[name]
		ci, err := info.Lookup(name)
		if err != nil {
			continue
		}
		col, err := a.schema.Collection(name)
		if err != nil {
			continue
		}
		rows, err := rr.ReadKeys(ctx, name, keys)
		if err != nil {
			return nil, nil, errors.Wrapf(err, "verify: read %s", name)
		}
		sys := map[crdt.Key]crdt.Row{}
		for _, c := range rows {
			sys[c.Key] = systemRow(ci, col, c.Row)
		}
		for _, k := range keys {
			rec, err := a.store.Get(name, k)
			if err != nil {
				return nil, nil, err
			}
			if d, ok := diffRecord(a.roundTrip, ci, col, k, sys[k], rec); ok {
				out = append(out, d)
			}
		}
	}
	// A record queued meanwhile is on its way into the system.
	ids = ids[:0]
	for _, d := range out {
		ids = append(ids, d.id)
	}
	if queued, err = a.store.Queued(ids); err != nil {
		return nil, nil, err
	}
	return slices.DeleteFunc(out, func(d drifted) bool { return queued[d.id] }), since, nil
}

// diffRecord compares a system row (nil: none) with a merged record.
func diffRecord(rt adapters.RoundTripper, ci *engine.Mapping, col *crdt.Collection, k crdt.Key, sys crdt.Row, rec *crdt.Record) (drifted, bool) {
	d := drifted{Drift: Drift{Collection: col.Name, Key: k.String()}, id: crdt.MakeID(col.Name, k), key: k, system: sys, known: rec != nil}
	merged := mergedRow(rt, ci, col, rec)
	switch {
	case sys == nil && merged == nil:
		return d, false
	case sys == nil:
		d.Kind = "missing_in_system"
	case merged == nil:
		d.Kind = "not_in_merged_state"
	default:
		d.Kind = "differs"
	}
	for _, f := range slices.Sorted(maps.Keys(ci.Kinds)) {
		if slices.Contains(ci.Key, f) {
			continue
		}
		sv, mv := sys[f], merged[f]
		if !crdt.Equal(sv, mv) {
			d.Fields = append(d.Fields, DriftField{Field: f, System: valueJSON(sv), Merged: valueJSON(mv)})
		}
	}
	if d.Kind == "differs" && len(d.Fields) == 0 {
		return d, false
	}
	return d, true
}

// valueJSON is a value as the API writes it (null when absent).
func valueJSON(v crdt.Value) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// repair repairs confirmed drift and returns how many records it repaired.
func (a *Agent) repair(ctx context.Context, mode string, drift []drifted, since []byte) (int, error) {
	switch mode {
	case RepairApply:
		// Records the store holds go through the apply queue, with their
		// apply positions, like any other. A row of a record the store
		// does not hold at all is deleted from the system directly: the
		// queue holds only records the store has.
		var known []crdt.ID
		var unknown []adapters.Write
		for _, d := range drift {
			if d.known {
				known = append(known, d.id)
			} else {
				unknown = append(unknown, adapters.Write{Collection: d.Collection, Key: d.key})
			}
		}
		if len(known) > 0 {
			if err := a.store.Enqueue(known); err != nil {
				return 0, err
			}
			a.wakeApply()
		}
		if len(unknown) > 0 {
			if err := a.applyDirect(ctx, unknown, since); err != nil {
				return len(known), err
			}
		}
		return len(drift), nil
	case RepairCapture:
		changes := make([]engine.Change, 0, len(drift))
		for _, d := range drift {
			ch := engine.Change{Collection: d.Collection, Key: d.key, Captured: true}
			if d.system == nil {
				ch.Delete = true
			} else {
				ch.Row, ch.Full = d.system, true
			}
			changes = append(changes, ch)
		}
		res, err := a.step(func(r engine.Reader) (*engine.Ready, error) { return a.eng.Local(r, changes, nil) })
		if err != nil {
			return 0, err
		}
		a.afterLocal(res, "verify")
		return len(drift) - len(res.Failed), nil
	}
	return 0, nil
}

// applyDirect writes deletes of records the store does not hold into the
// system, serialized with the apply loop and with their apply positions
// recorded like any apply's. since is the capture position the decision
// was made at.
func (a *Agent) applyDirect(ctx context.Context, writes []adapters.Write, since []byte) error {
	a.applyMu.Lock()
	defer a.applyMu.Unlock()
	// A record captured since the decision is the store's now, and goes
	// through the queue like any other. One that is still not is unchanged
	// in the system since, or changed by a user in rows of the log that no
	// acknowledgement has discarded (acks wait for applyMu): the adapter
	// defers it.
	writes = slices.DeleteFunc(slices.Clone(writes), func(w adapters.Write) bool {
		rec, err := a.store.Get(w.Collection, w.Key)
		return err != nil || rec != nil
	})
	if len(writes) == 0 {
		return nil
	}
	ids := make([]crdt.ID, len(writes))
	for i, w := range writes {
		ids[i] = crdt.MakeID(w.Collection, w.Key)
	}
	a.engMu.Lock()
	a.eng.Positions().Applying(ids)
	a.engMu.Unlock()
	res, err := a.adp.Apply(ctx, writes, since)
	if err != nil {
		return err
	}
	a.engMu.Lock()
	a.eng.Positions().AppliedAt(ids, res.Position)
	a.engMu.Unlock()
	// A deferred delete waits for capture to take the row's newer change;
	// if the row still differs then, the next pass finds it again.
	a.m.appliedRows.Add(float64(len(writes) - len(res.Deferred)))
	a.m.applyDeferred.Add(float64(len(res.Deferred)))
	return nil
}

// verifyRequest is the body of POST /v1/verify.
type verifyRequest struct {
	// Repair is report (default), apply or capture.
	Repair string `json:"repair"`
}

func decodeVerifyRequest(body []byte) (verifyRequest, error) {
	var req verifyRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			return req, errors.Wrap(err, "body")
		}
	}
	if req.Repair == "" {
		req.Repair = RepairReport
	}
	return req, nil
}

// VerifyStatus is the last verification pass as /v1/status and /v1/digest
// show it.
type VerifyStatus struct {
	At           time.Time `json:"at"`
	Seconds      float64   `json:"seconds"`
	Rows         int64     `json:"rows"`
	DriftRecords int       `json:"drift_records"`
	Repaired     int       `json:"repaired"`
	Repair       string    `json:"repair"`
	// SystemDigest is the digest of the system's rows in collection space
	// as the pass read them: equal on two nodes iff their systems hold the
	// same rows.
	SystemDigest string `json:"system_digest"`
	SystemRows   uint64 `json:"system_rows"`
}

func (a *Agent) verifyStatus() *VerifyStatus {
	if a.ver == nil {
		return nil
	}
	r := a.LastVerify()
	if r == nil {
		return nil
	}
	return &VerifyStatus{At: r.Started.Add(time.Duration(r.Seconds * float64(time.Second))), Seconds: r.Seconds, Rows: r.Rows,
		DriftRecords: r.DriftRecords, Repaired: r.Repaired, Repair: r.Repair, SystemDigest: r.SystemDigest, SystemRows: r.SystemRows}
}

// verifyHandler runs one pass: POST /v1/verify {"repair": "report"}.
func (a *Agent) verifyHandler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.API.MaxBodyBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, errors.Wrap(err, "read request body"), "")
		return
	}
	req, err := decodeVerifyRequest(b)
	if err != nil {
		writeError(w, http.StatusBadRequest, err, `send {"repair": "report"}, "apply" or "capture"`)
		return
	}
	switch req.Repair {
	case RepairReport, RepairApply, RepairCapture:
	default:
		writeError(w, http.StatusBadRequest, errors.Newf("repair %q is not a mode", req.Repair), "use report, apply or capture")
		return
	}
	rep, err := a.Verify(r.Context(), req.Repair, false)
	switch {
	case errors.Is(err, ErrNoVerify):
		writeError(w, http.StatusConflict, err, "")
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err, "")
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}
