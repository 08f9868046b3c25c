package crdttest

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Config sets up a simulation. The zero value of a field means its default
// (see DefaultConfig), except for the rates, where zero means never.
type Config struct {
	// Seed makes the run reproducible: the same Config gives the same run.
	Seed uint64
	// Replicas is the number of replicas (default 3).
	Replicas int
	// Keys is the number of records per collection that operations pick
	// from (default 3).
	Keys int
	// Ops is the number of local operations attempted (default 60).
	Ops int

	// Net is how the network misbehaves.
	Net NetConfig
	// FlushRate is the probability per step that a replica sends its
	// outbox (its pending deltas, joined into one) to every peer.
	FlushRate float64
	// PartitionRate is the probability per step that a healed network splits
	// in two; HealRate that a split one heals.
	PartitionRate, HealRate float64
	// CrashRate is the probability per step that a replica crashes and
	// restarts: it loses its outbox and its messages in flight, keeps its
	// state and restores its clock from the persisted upper bound.
	CrashRate float64
	// SyncRate is the probability per step of a full-state exchange between
	// two connected replicas, a stand-in for anti-entropy.
	SyncRate float64
	// JumpRate is the probability per step that a replica's physical clock
	// steps to a new offset within MaxSkew (backwards as often as forwards).
	JumpRate float64
	// MaxSkew bounds how far each physical clock is from true time
	// (default 100 ms).
	MaxSkew time.Duration
	// MaxOffset is each clock's maximum offset (default
	// crdt.DefaultMaxOffset); remote stamps further ahead are refused.
	MaxOffset time.Duration
	// StepTime bounds how much true time passes per step (default 5 ms).
	StepTime time.Duration

	// Schema holds the collections; default: DefaultSchema.
	Schema *crdt.Schema
	// Collections lists the collections operations write to; default: every
	// collection of Schema, and "notes", which it does not list (all LWW).
	Collections []string

	// ReplicaIDs, if set, are the replicas' IDs (one per replica, distinct,
	// non-zero); by default they are drawn from Seed. Scripts set small ones
	// so that output reads well.
	ReplicaIDs []crdt.ReplicaID

	// Trace, if set, receives one line per event, for debugging a seed.
	Trace func(line string)
}

// DefaultConfig returns a configuration with moderate faults of every kind.
func DefaultConfig(seed uint64) Config {
	return Config{
		Seed:          seed,
		Replicas:      3,
		Keys:          3,
		Ops:           60,
		Net:           NetConfig{DropRate: 0.2, DupRate: 0.1, MaxDelay: 3},
		FlushRate:     0.4,
		PartitionRate: 0.03,
		HealRate:      0.1,
		CrashRate:     0.02,
		SyncRate:      0.05,
		JumpRate:      0.02,
	}
}

// RandomConfig returns a configuration whose fault rates, sizes and clock
// skews are drawn from seed, so that many seeds cover many kinds of runs:
// lossless and very lossy networks, long partitions, frequent crashes,
// clocks so far apart that remote stamps get refused.
func RandomConfig(seed uint64) Config {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
	return Config{
		Seed:          seed,
		Replicas:      2 + rng.IntN(3),
		Keys:          1 + rng.IntN(3),
		Ops:           20 + rng.IntN(60),
		Net:           NetConfig{DropRate: pick(0, 0.1, 0.3, 0.6), DupRate: pick(0, 0.1, 0.3), MaxDelay: rng.IntN(5)},
		FlushRate:     pick(0.2, 0.5, 1),
		PartitionRate: pick(0, 0.02, 0.1),
		HealRate:      pick(0.05, 0.2),
		CrashRate:     pick(0, 0.02, 0.1),
		SyncRate:      pick(0, 0.02, 0.1),
		JumpRate:      pick(0, 0.02, 0.1),
		MaxSkew:       time.Duration(pick(0, 10, 100, 400)) * time.Millisecond,
		StepTime:      time.Duration(pick(1, 5, 50)) * time.Millisecond,
	}
}

// DefaultSchema is the schema simulations use unless told otherwise: one
// collection, "items", with a field of every policy (l: lww, p: prefer
// [r1, r0], s: orset, x: max, n: min, c: counter); other fields are LWW. Replicas are
// named r0, r1, ..., so r2 and later rank last for p.
func DefaultSchema() *crdt.Schema {
	items := crdt.MustCollection("items", []string{"id"}, map[string]crdt.Policy{
		"l": {Kind: crdt.LWW},
		"p": {Kind: crdt.Prefer, Prefer: []string{"r1", "r0"}},
		"s": {Kind: crdt.ORSet},
		"x": {Kind: crdt.Max},
		"n": {Kind: crdt.Min},
		"c": {Kind: crdt.Counter},
	})
	return crdt.MustSchema(items)
}

func (c *Config) fill() error {
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.Keys == 0 {
		c.Keys = 3
	}
	if c.Ops == 0 {
		c.Ops = 60
	}
	if c.MaxOffset == 0 {
		c.MaxOffset = crdt.DefaultMaxOffset
	}
	if c.StepTime == 0 {
		c.StepTime = 5 * time.Millisecond
	}
	if c.Schema == nil {
		c.Schema = DefaultSchema()
	}
	if c.Collections == nil {
		for _, col := range c.Schema.Collections() {
			c.Collections = append(c.Collections, col.Name)
		}
		if !c.Schema.Strict {
			c.Collections = append(c.Collections, "notes")
		}
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 64:
		return errors.Newf("crdttest: replicas %d out of range 1..64", c.Replicas)
	case c.Keys < 1:
		return errors.Newf("crdttest: keys %d must be positive", c.Keys)
	case c.Ops < 0:
		return errors.Newf("crdttest: ops %d must not be negative", c.Ops)
	case c.MaxSkew < 0 || c.StepTime < 0:
		return errors.New("crdttest: max_skew and step_time must not be negative")
	case len(c.Collections) == 0:
		return errors.New("crdttest: no collections to write to")
	}
	for _, r := range []float64{c.Net.DropRate, c.Net.DupRate, c.FlushRate, c.PartitionRate, c.HealRate, c.CrashRate, c.SyncRate, c.JumpRate} {
		if r < 0 || r > 1 {
			return errors.Newf("crdttest: rate %v out of range 0..1", r)
		}
	}
	if c.ReplicaIDs != nil {
		if len(c.ReplicaIDs) != c.Replicas {
			return errors.Newf("crdttest: %d replica ids for %d replicas", len(c.ReplicaIDs), c.Replicas)
		}
		seen := map[crdt.ReplicaID]bool{}
		for _, id := range c.ReplicaIDs {
			if id == 0 || seen[id] {
				return errors.Newf("crdttest: replica id %s zero or repeated", id)
			}
			seen[id] = true
		}
	}
	for _, name := range c.Collections {
		if _, err := c.Schema.Collection(name); err != nil {
			return errors.Wrapf(err, "crdttest: collection %s", name)
		}
	}
	return nil
}

// Result counts what happened in a run.
type Result struct {
	Seed       uint64
	Steps      int
	Ops        int // operations that produced a delta
	Noops      int // operations that produced none (echoes, unchanged rows)
	Crashes    int
	Partitions int
	Syncs      int
	Rejected   int // messages refused because of clock offset
	Records    int // records compared at the end
	Net        NetStats
	// Digest is the XOR of the hashes of every record at the end, equal on
	// every replica.
	Digest crdt.Fingerprint
}

func (r Result) String() string {
	return fmt.Sprintf("seed %d: %d steps, %d ops (%d no-ops), %d crashes, %d partitions, %d syncs, %d rejected, %d records; net %+v",
		r.Seed, r.Steps, r.Ops, r.Noops, r.Crashes, r.Partitions, r.Syncs, r.Rejected, r.Records, r.Net)
}

// message is what replicas send each other: an encoded delta, and, for the
// oracle only, the operations it carries.
type message struct {
	payload []byte
	ops     []int
}

type replica struct {
	index     int
	name      string
	id        crdt.ReplicaID
	skew      int64
	clock     *crdt.Clock
	persisted crdt.Timestamp // Clock.Last as of the last state change
	state     map[crdt.ID]*crdt.Record
	known     map[int]bool // operations whose effects the state holds
	outbox    *crdt.Delta
	outOps    []int
}

// Sim is a deterministic simulation of replicas exchanging deltas over a
// Network. Run drives it randomly; tests and scripts can drive it step by
// step with its methods. It is not safe for concurrent use.
type Sim struct {
	cfg   Config
	rng   *rand.Rand
	net   *Network[message]
	reps  []*replica
	now   int64 // true time, ns
	ops   []*Op
	byRec map[crdt.ID][]*Op
	res   Result
}

const epoch = int64(1_700_000_000_000_000_000)

// New returns a simulation with every replica empty and the network healed.
func New(cfg Config) (*Sim, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Sim{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x1a771ce)),
		now:   epoch,
		byRec: map[crdt.ID][]*Op{},
		res:   Result{Seed: cfg.Seed},
	}
	s.net = NewNetwork[message](s.rng, cfg.Replicas, cfg.Net)
	ids := map[crdt.ReplicaID]bool{}
	for i := range cfg.Replicas {
		r := &replica{index: i, name: fmt.Sprintf("r%d", i), state: map[crdt.ID]*crdt.Record{}, known: map[int]bool{}}
		for r.id == 0 || ids[r.id] {
			r.id = crdt.ReplicaID(s.rng.Uint64())
		}
		if cfg.ReplicaIDs != nil {
			r.id = cfg.ReplicaIDs[i]
		}
		ids[r.id] = true
		r.skew = s.drawSkew()
		r.clock = s.newClock(r)
		s.reps = append(s.reps, r)
	}
	return s, nil
}

func (s *Sim) drawSkew() int64 {
	if s.cfg.MaxSkew == 0 {
		return 0
	}
	return s.rng.Int64N(2*int64(s.cfg.MaxSkew)+1) - int64(s.cfg.MaxSkew)
}

func (s *Sim) newClock(r *replica) *crdt.Clock {
	return crdt.NewClock(func() int64 { return s.now + r.skew }, s.cfg.MaxOffset)
}

func (s *Sim) tracef(format string, args ...any) {
	if s.cfg.Trace != nil {
		s.cfg.Trace(fmt.Sprintf("%8.3fms ", float64(s.now-epoch)/1e6) + fmt.Sprintf(format, args...))
	}
}

// Run simulates cfg.Ops random operations with faults, then heals the
// network, delivers everything, runs a full exchange and checks that every
// replica holds the same records and that they match the oracle. It returns
// an error naming the seed at the first violation.
func Run(cfg Config) (Result, error) {
	s, err := New(cfg)
	if err != nil {
		return Result{}, err
	}
	for s.res.Ops+s.res.Noops < s.cfg.Ops {
		if err := s.Step(); err != nil {
			return s.res, s.fail(err)
		}
	}
	if err := s.Converge(); err != nil {
		return s.res, s.fail(err)
	}
	return s.Result(), nil
}

func (s *Sim) fail(err error) error {
	return errors.Wrapf(err, "seed %d (step %d)", s.cfg.Seed, s.res.Steps)
}

// Result returns the counters so far.
func (s *Sim) Result() Result {
	r := s.res
	r.Net = s.net.Stats()
	return r
}

// Replicas returns the number of replicas.
func (s *Sim) Replicas() int { return len(s.reps) }

// Step advances true time and performs random events: usually a local
// operation, plus outbox flushes, message deliveries, partitions and heals,
// crashes, clock jumps and full-state exchanges at the configured rates.
func (s *Sim) Step() error {
	s.res.Steps++
	s.Tick(time.Duration(s.rng.Int64N(int64(s.cfg.StepTime) + 1)))
	if s.rng.Float64() < s.cfg.JumpRate {
		r := s.reps[s.rng.IntN(len(s.reps))]
		r.skew = s.drawSkew()
		s.tracef("%s physical clock jumps to offset %s", r.name, time.Duration(r.skew))
	}
	if s.net.Partitioned() {
		if s.rng.Float64() < s.cfg.HealRate {
			s.Heal()
		}
	} else if s.rng.Float64() < s.cfg.PartitionRate {
		s.net.RandomPartition()
		s.res.Partitions++
		s.tracef("partition %v", s.net.group)
	}
	if s.rng.Float64() < s.cfg.CrashRate {
		s.Crash(s.rng.IntN(len(s.reps)))
	}
	if s.rng.IntN(4) != 0 {
		if err := s.randomOp(); err != nil {
			return err
		}
	}
	for _, r := range s.reps {
		if s.rng.Float64() < s.cfg.FlushRate {
			if err := s.Flush(r.index); err != nil {
				return err
			}
		}
	}
	if err := s.Deliver(); err != nil {
		return err
	}
	if len(s.reps) > 1 && s.rng.Float64() < s.cfg.SyncRate {
		a, b := s.rng.IntN(len(s.reps)), s.rng.IntN(len(s.reps)-1)
		if b >= a {
			b++
		}
		if s.net.Connected(a, b) {
			if err := s.Sync(a, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tick advances true time.
func (s *Sim) Tick(d time.Duration) { s.now += int64(d) }

// Heal reconnects every replica.
func (s *Sim) Heal() {
	if s.net.Partitioned() {
		s.tracef("heal")
	}
	s.net.Heal()
}

// Partition splits the replicas into the given groups (and the rest).
func (s *Sim) Partition(groups ...[]int) {
	s.net.Partition(groups...)
	s.res.Partitions++
	s.tracef("partition %v", s.net.group)
}

// Crash crashes replica i and restarts it at once: its outbox and its
// messages in flight are lost, its state survives, and its new clock is
// forwarded to the persisted upper bound, as a store must do on start.
func (s *Sim) Crash(i int) {
	r := s.reps[i]
	s.res.Crashes++
	r.outbox, r.outOps = nil, nil
	s.net.Crash(i)
	r.skew = s.drawSkew()
	r.clock = s.newClock(r)
	r.clock.Forward(r.persisted)
	s.tracef("%s crashes and restarts at %s (physical offset %s)", r.name, r.persisted, time.Duration(r.skew))
}

// persist records the clock bound that a store writes with the state.
func (r *replica) persist() { r.persisted = r.clock.Last() }

// Flush sends replica i's outbox to every peer as one delta, usually
// normalized by JoinDeltas (one fragment per record), sometimes as it is.
func (s *Sim) Flush(i int) error {
	r := s.reps[i]
	if r.outbox.Len() == 0 {
		return nil
	}
	d := r.outbox
	if s.rng.IntN(4) != 0 {
		var err error
		if d, err = crdt.JoinDeltas(s.cfg.Schema, d, nil); err != nil {
			return errors.Wrapf(err, "%s joins its outbox", r.name)
		}
	}
	m := message{payload: crdt.EncodeDelta(d), ops: r.outOps}
	s.tracef("%s sends %d fragments (ops %v)", r.name, r.outbox.Len(), r.outOps)
	r.outbox, r.outOps = nil, nil
	for _, p := range s.reps {
		if p != r {
			s.net.Send(r.index, p.index, m)
		}
	}
	return nil
}

// Deliver advances the network by one tick and merges what arrives.
func (s *Sim) Deliver() error {
	for _, d := range s.net.Tick() {
		if err := s.receive(s.reps[d.To], d.From, d.Msg); err != nil {
			return err
		}
	}
	return nil
}

// receive decodes and merges a message as a sidecar would: forward the clock
// past every stamp in it (refusing it if they are too far ahead), then join
// each fragment into its record.
func (s *Sim) receive(r *replica, from int, m message) error {
	d, err := crdt.DecodeDelta(m.payload, crdt.DefaultLimits())
	if err != nil {
		return errors.Wrapf(err, "%s decodes a message from r%d", r.name, from)
	}
	if _, err := r.clock.Update(d.MaxStamp().TS); err != nil {
		if !crdt.IsClockOffsetError(err) {
			return errors.Wrapf(err, "%s updates its clock", r.name)
		}
		s.res.Rejected++
		s.tracef("%s refuses a message from r%d: %v", r.name, from, err)
		return nil
	}
	for _, f := range d.Fragments {
		c, err := s.cfg.Schema.Collection(f.Collection)
		if err != nil {
			return err
		}
		id := crdt.MakeID(f.Collection, f.Key)
		r.state[id] = crdt.Join(c, r.state[id], f.Record)
	}
	for _, op := range m.ops {
		r.known[op] = true
	}
	r.persist()
	s.tracef("%s merges %d fragments from r%d (ops %v)", r.name, d.Len(), from, m.ops)
	return nil
}

// fullState returns a message with every record of r.
func (s *Sim) fullState(r *replica) message {
	d := &crdt.Delta{}
	for _, id := range slices.Sorted(maps.Keys(r.state)) {
		c, k, _ := id.Split()
		d.Add(c, k, r.state[id])
	}
	return message{payload: crdt.EncodeDelta(d), ops: slices.Sorted(maps.Keys(r.known))}
}

// Sync runs a full-state exchange between replicas a and b, both ways, as
// anti-entropy would (reliably, unless a clock refuses the other's stamps).
func (s *Sim) Sync(a, b int) error {
	s.res.Syncs++
	ma, mb := s.fullState(s.reps[a]), s.fullState(s.reps[b])
	s.tracef("sync r%d <-> r%d", a, b)
	if err := s.receive(s.reps[b], a, ma); err != nil {
		return err
	}
	return s.receive(s.reps[a], b, mb)
}

// Converge ends a run: heal the network, deliver everything in flight, let
// enough time pass that no stamp is ahead of any physical clock, run full
// exchanges through replica 0, and check that every replica holds the same
// records and that they match the oracle.
func (s *Sim) Converge() error {
	s.Heal()
	for _, r := range s.reps {
		if err := s.Flush(r.index); err != nil {
			return err
		}
	}
	for _, d := range s.net.Drain() {
		if err := s.receive(s.reps[d.To], d.From, d.Msg); err != nil {
			return err
		}
	}
	// Let true time pass until no replica's physical clock is behind any
	// stamp handed out, so that no clock refuses another's stamps.
	var hi int64
	lo := int64(math.MaxInt64)
	for _, r := range s.reps {
		hi = max(hi, r.clock.Last().Wall)
		lo = min(lo, s.now+r.skew)
	}
	if hi >= lo {
		s.Tick(time.Duration(hi-lo) + time.Millisecond)
	}
	for i := 1; i < len(s.reps); i++ {
		if err := s.Sync(0, i); err != nil {
			return err
		}
	}
	for i := 1; i < len(s.reps); i++ {
		if err := s.Sync(0, i); err != nil {
			return err
		}
	}
	for _, r := range s.reps {
		if len(r.known) != len(s.ops) {
			return errors.Newf("%s knows %d of %d operations after the full exchange", r.name, len(r.known), len(s.ops))
		}
	}
	return s.Check()
}

// Check verifies every replica's records against the oracle for the
// operations that replica knows, and, when all replicas know the same
// operations, that their records are equal.
func (s *Sim) Check() error {
	ids := map[crdt.ID]bool{}
	for id := range s.byRec {
		ids[id] = true
	}
	for _, r := range s.reps {
		for id := range r.state {
			ids[id] = true
		}
	}
	sorted := slices.Sorted(maps.Keys(ids))
	same := true
	for _, r := range s.reps[1:] {
		same = same && maps.Equal(r.known, s.reps[0].known)
	}
	var digest crdt.Fingerprint
	for _, id := range sorted {
		for _, r := range s.reps {
			if err := s.checkRecord(r, id); err != nil {
				return err
			}
		}
		if !same {
			continue
		}
		r0 := s.reps[0].state[id]
		for _, r := range s.reps[1:] {
			if !crdt.EqualRecords(r0, r.state[id]) {
				return errors.Newf("%s diverges:\n r0: %s\n %s: %s", id, r0, r.name, r.state[id])
			}
		}
		if !r0.IsEmpty() {
			digest = digest.Add(crdt.HashRecord(id, crdt.AppendRecord(nil, r0)))
		}
	}
	s.res.Records = len(sorted)
	s.res.Digest = digest
	return nil
}

func (s *Sim) collection(id crdt.ID) (*crdt.Collection, error) {
	name, _, err := id.Split()
	if err != nil {
		return nil, err
	}
	return s.cfg.Schema.Collection(name)
}

// checkRecord compares a replica's record with the oracle's view for the
// operations the replica knows: existence, visible row, and the stamp and
// source of every visible register write.
func (s *Sim) checkRecord(r *replica, id crdt.ID) error {
	c, err := s.collection(id)
	if err != nil {
		return err
	}
	rec := r.state[id]
	want := view(c, s.byRec[id], func(op int) bool { return r.known[op] })
	if rec.Exists() != want.exists {
		return errors.Newf("%s at %s: exists=%v, oracle says %v\n state %s%s", id, r.name, rec.Exists(), want.exists, rec, s.history(id))
	}
	got, wantRow := rec.View(c), want.row(c)
	if !equalRows(got, wantRow) {
		return errors.Newf("%s at %s: view %s, oracle says %s\n state %s%s", id, r.name, FormatRow(got), FormatRow(wantRow), rec, s.history(id))
	}
	for f := range wantRow {
		if !c.Policy(f).IsRegister() {
			continue
		}
		_, meta, _ := rec.Get(c, f)
		w, _ := want.visible(f)
		if meta.Stamp != w.Stamp || meta.Source != w.Source {
			return errors.Newf("%s at %s: field %s written at %s by %q, oracle says %s by %q\n state %s%s",
				id, r.name, f, meta.Stamp, meta.Source, w.Stamp, w.Source, rec, s.history(id))
		}
	}
	return nil
}

func equalRows(a, b crdt.Row) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for f, v := range a {
		w, ok := b[f]
		if !ok || !crdt.Equal(v, w) {
			return false
		}
	}
	return true
}

// FormatRow renders a row with sorted field names, or "<none>" for nil.
func FormatRow(r crdt.Row) string {
	if r == nil {
		return "<none>"
	}
	parts := make([]string, 0, len(r))
	for _, f := range slices.Sorted(maps.Keys(r)) {
		parts = append(parts, f+"="+r[f].String())
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// history renders the operations on a record, for failure messages.
func (s *Sim) history(id crdt.ID) string {
	var b strings.Builder
	b.WriteString("\n history:")
	for _, op := range s.byRec[id] {
		b.WriteString("\n  ")
		b.WriteString(s.FormatOp(op))
	}
	return b.String()
}

// String renders the operation with its absolute stamp.
func (op *Op) String() string { return op.format(crdt.Stamp.String) }

// FormatStamp renders a stamp for people: milliseconds of true time since
// the start of the simulation (as the stamping clock saw it), the logical
// counter if any, and the replica's name.
func (s *Sim) FormatStamp(st crdt.Stamp) string {
	if st.IsZero() {
		return "0"
	}
	out := strconv.FormatFloat(float64(st.TS.Wall-epoch)/1e6, 'f', -1, 64) + "ms"
	if st.TS.Logical > 0 {
		out += "+" + strconv.FormatUint(uint64(st.TS.Logical), 10)
	}
	for _, r := range s.reps {
		if r.id == st.Replica {
			return out + "@" + r.name
		}
	}
	return out + "@" + st.Replica.String()
}

// FormatOp renders an operation with FormatStamp.
func (s *Sim) FormatOp(op *Op) string { return op.format(s.FormatStamp) }

func (op *Op) format(stamp func(crdt.Stamp) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "op %d by r%d at %s:", op.ID, op.Replica, stamp(op.Stamp))
	if op.Delete {
		b.WriteString(" delete")
	}
	for _, w := range op.Writes {
		fmt.Fprintf(&b, " %s=%s", w.Field, w.Value)
	}
	for _, e := range op.Sets {
		sign := "-"
		if e.Add {
			sign = "+"
		}
		fmt.Fprintf(&b, " %s%s%s", e.Field, sign, e.Elem)
		if len(e.Observed) > 0 {
			fmt.Fprintf(&b, "(observed %v)", e.Observed)
		}
	}
	return b.String()
}
