package gossip

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// Anti-entropy is range-based set reconciliation (Meyer, "Range-Based Set
// Reconciliation", 2023) over the replica's range fingerprints. The two
// sides take turns. A turn carries range entries, wants and records:
//
//   - A fingerprint entry for [lo, hi) is checked against the receiver's
//     own fingerprint of the range. Equal: done. The receiver holds
//     nothing there: it answers with an empty item list. The sender holds
//     nothing: the receiver streams its records of the range. The receiver
//     holds few records (itemsThreshold): it answers with its item list.
//     Otherwise it splits the range into parts of equal size on its side
//     and answers with their fingerprints.
//   - An item list (ID, hash) for [lo, hi) is compared with the receiver's
//     items: it pushes the records the sender lacks and wants those it
//     lacks. For a record both hold in different states only one side
//     should send first, the one that is probably newer, so that a
//     one-sided change (the common case: a node that was away) crosses
//     the wire once. The receiver wants the record with a hint, the
//     newest write time of its own copy. The sender answers with its
//     record if its copy is not older, and otherwise wants the receiver's
//     instead. Whoever gets a record it waited for merges it and sends
//     back its own state only if the join still differs from what it got
//     (concurrent changes on both sides).
//   - Wants are answered with records; records are merged.
//
// A session ends when a side receives an empty turn and has nothing to
// send. Each round trip halves (or better) the ranges in play, so a
// session costs O(d log n) for d differing records among n, in
// O(log n) turns; each turn is bounded by turnBytes and work left over
// waits for the next turn.

const (
	itemsThreshold = 8
	turnBytes      = 1 << 20
	recordChunk    = 256
	maxTurns       = 1 << 16
)

// splitParts chooses how many parts a differing range is cut into: many
// while the range is large, fewer near the leaves. Measured on 50k records
// with 50 to 5k differences (itemsThreshold 8), this shape moves the fewest
// bytes in the fewest turns among the shapes tried.
func splitParts(mine, theirs uint64) int {
	c := max(mine, theirs)
	switch {
	case c >= 1<<10:
		return 16
	case c >= 1<<7:
		return 8
	}
	return 4
}

type idRange struct{ lo, hi crdt.ID }

// reconciler is one side of an anti-entropy session. It does no I/O.
type reconciler struct {
	r        Replica
	excluded map[string]bool
	maxMsg   int

	work       []rangeEntry
	push       []crdt.ID
	pushed     map[crdt.ID]bool
	pushRanges []idRange
	want       []want
	deferred   map[crdt.ID]bool

	rangesSent      int
	itemsSent       int
	wantsSent       int
	rangeBytes      int
	recordBytes     int
	recordsSent     int
	recordsReceived int
	recordsChanged  int
	rejected        int
	dropped         []crdt.ID // records too large for a message
}

func newReconciler(r Replica, excluded map[string]bool, maxMsg int) *reconciler {
	return &reconciler{
		r:        r,
		excluded: excluded,
		maxMsg:   maxMsg,
		pushed:   map[crdt.ID]bool{},
		deferred: map[crdt.ID]bool{},
	}
}

func (rc *reconciler) allowed(id crdt.ID) bool {
	if len(rc.excluded) == 0 {
		return true
	}
	c, _, err := id.Split()
	return err == nil && !rc.excluded[c]
}

// topRanges returns the ID space minus the excluded collections.
func topRanges(excluded map[string]bool) []idRange {
	if len(excluded) == 0 {
		return []idRange{{"", ""}}
	}
	var cuts []idRange
	for c := range excluded {
		cuts = append(cuts, idRange{crdt.ID(c + "\x00"), crdt.ID(c + "\x01")})
	}
	slices.SortFunc(cuts, func(a, b idRange) int { return strings.Compare(string(a.lo), string(b.lo)) })
	var out []idRange
	lo := crdt.ID("")
	for _, c := range cuts {
		if lo < c.lo {
			out = append(out, idRange{lo, c.lo})
		}
		lo = c.hi
	}
	return append(out, idRange{lo, ""})
}

// start returns the first turn: the fingerprints of the top ranges.
func (rc *reconciler) start() outTurn {
	var w rangeWriter
	for _, r := range topRanges(rc.excluded) {
		w.add(&rangeEntry{Lo: r.lo, Hi: r.hi, Kind: kindFP, FP: shortFingerprint(rc.r.Fingerprint(r.lo, r.hi))})
	}
	rc.rangesSent += w.n
	return outTurn{ranges: w.b, entries: w.n}
}

// outTurn is a turn ready to encode.
type outTurn struct {
	ranges  []byte
	entries int
	wants   []want
	recs    fragments
}

func (t *outTurn) empty() bool { return t.entries == 0 && len(t.wants) == 0 && t.recs.n == 0 }

// receive takes in the peer's turn: merges its records, queues its wants
// and its entries.
func (rc *reconciler) receive(t *syncTurn) error {
	if t.Records.Len() > 0 {
		d, left := withoutCollections(t.Records, rc.excluded)
		rc.rejected += left
		rc.recordsReceived += d.Len()
		changed, err := rc.r.Merge(d)
		if err != nil {
			if ok, k := isRejection(err); ok {
				rc.rejected += k
			} else {
				return errors.Wrap(err, "merge records")
			}
		}
		rc.recordsChanged += changed.Len()
		for _, f := range d.Fragments {
			if len(rc.deferred) == 0 {
				break // nothing waits for a record: no ID to build
			}
			id := crdt.MakeID(f.Collection, f.Key)
			if !rc.deferred[id] {
				continue
			}
			delete(rc.deferred, id)
			theirs := crdt.HashRecord(id, crdt.AppendRecord(nil, f.Record))
			if mine, ok := rc.hashOf(id); ok && mine != theirs {
				rc.pushID(id)
			}
		}
	}
	if err := rc.answerWants(t.Wants); err != nil {
		return err
	}
	rc.work = append(rc.work, t.Entries...)
	return nil
}

// answerWants pushes the wanted records, or wants the peer's copy instead
// where the hint says it is newer than ours.
func (rc *reconciler) answerWants(ws []want) error {
	var hinted []crdt.ID
	hint := map[crdt.ID]int64{}
	for _, w := range ws {
		switch {
		case !rc.allowed(w.ID):
		case rc.deferred[w.ID]:
			// We asked for theirs, they asked for ours: ours goes first.
			delete(rc.deferred, w.ID)
			rc.pushID(w.ID)
		case w.Hint == 0:
			rc.pushID(w.ID)
		default:
			hinted = append(hinted, w.ID)
			hint[w.ID] = w.Hint
		}
	}
	for len(hinted) > 0 {
		chunk := hinted[:min(recordChunk, len(hinted))]
		hinted = hinted[len(chunk):]
		d, err := rc.r.Records(chunk)
		if err != nil {
			return errors.Wrap(err, "read wanted records")
		}
		for _, f := range d.Fragments {
			id := crdt.MakeID(f.Collection, f.Key)
			mine := f.Record.MaxStamp().TS.Wall
			if mine < hint[id] {
				rc.want = append(rc.want, want{ID: id, Hint: mine})
				rc.deferred[id] = true
			} else {
				rc.pushID(id)
			}
		}
	}
	return nil
}

func (rc *reconciler) hashOf(id crdt.ID) (crdt.Hash, bool) {
	var h crdt.Hash
	found := false
	rc.r.Ascend(id, id+"\x00", func(got crdt.ID, gh crdt.Hash) bool {
		if got == id {
			h, found = gh, true
		}
		return false
	})
	return h, found
}

func (rc *reconciler) pushID(id crdt.ID) {
	if rc.pushed[id] {
		return
	}
	rc.pushed[id] = true
	rc.push = append(rc.push, id)
}

// flushDeferred pushes the records whose peer version never came (the
// peer's answer to a want was refused or excluded).
func (rc *reconciler) flushDeferred() bool {
	if len(rc.deferred) == 0 {
		return false
	}
	for id := range rc.deferred {
		rc.pushID(id)
	}
	clear(rc.deferred)
	return true
}

// next builds the next turn within turnBytes.
func (rc *reconciler) next() (outTurn, error) {
	budget := min(turnBytes, rc.maxMsg/2)
	var w rangeWriter
	for len(rc.work) > 0 && w.len() < budget/2 {
		e := rc.work[0]
		rc.work[0] = rangeEntry{}
		rc.work = rc.work[1:]
		rc.process(&e, &w)
	}
	if len(rc.work) == 0 {
		rc.work = nil
	}
	out := outTurn{ranges: w.b, entries: w.n}
	rc.rangesSent += w.n
	room := func(f fragments) bool {
		return out.recs.n == 0 && f.size()+len(w.b)+64 <= rc.maxMsg || out.recs.size()+len(f.body)+len(w.b) <= budget
	}
	full := false
	for len(rc.push) > 0 && !full {
		chunk := rc.push[:min(recordChunk, len(rc.push))]
		d, err := rc.r.Records(chunk)
		if err != nil {
			return out, errors.Wrap(err, "read records")
		}
		taken := len(chunk)
		for i, f := range encodeEach(d) {
			if f.size()+len(w.b)+64 > rc.maxMsg {
				rc.dropped = append(rc.dropped, crdt.MakeID(d.Fragments[i].Collection, d.Fragments[i].Key))
				continue
			}
			if !room(f) {
				// Resume at this record next turn.
				id := crdt.MakeID(d.Fragments[i].Collection, d.Fragments[i].Key)
				for j, c := range chunk {
					if c == id {
						taken = j
					}
				}
				full = true
				break
			}
			out.recs.add(f)
		}
		rc.push = rc.push[taken:]
	}
	for len(rc.pushRanges) > 0 && !full {
		pr := &rc.pushRanges[0]
		d, err := rc.r.ReadRange(pr.lo, pr.hi, recordChunk)
		if err != nil {
			return out, errors.Wrap(err, "read range")
		}
		next := crdt.ID("")
		for i, f := range encodeEach(d) {
			fr := &d.Fragments[i]
			id := crdt.MakeID(fr.Collection, fr.Key)
			if rc.excluded[fr.Collection] || rc.pushed[id] {
				next = id + "\x00"
				continue
			}
			if f.size()+len(w.b)+64 > rc.maxMsg {
				rc.dropped = append(rc.dropped, id)
				next = id + "\x00"
				continue
			}
			if !room(f) {
				full = true
				break
			}
			out.recs.add(f)
			rc.pushed[id] = true
			next = id + "\x00"
		}
		switch {
		case full && next != "":
			pr.lo = next
		case full:
		case d.Len() < recordChunk:
			rc.pushRanges = rc.pushRanges[1:]
		default:
			pr.lo = next
		}
	}
	rc.recordsSent += out.recs.n
	rc.recordBytes += len(out.recs.body)
	rc.rangeBytes += len(w.b)
	rc.wantsSent += len(rc.want)
	out.wants = rc.want
	rc.want = nil
	return out, nil
}

// process answers one entry of the peer's.
func (rc *reconciler) process(e *rangeEntry, w *rangeWriter) {
	switch e.Kind {
	case kindFP:
		mine := rc.r.Fingerprint(e.Lo, e.Hi)
		if shortFingerprint(mine) == e.FP {
			return
		}
		switch {
		case mine.Count == 0:
			w.add(&rangeEntry{Lo: e.Lo, Hi: e.Hi, Kind: kindItems})
		case e.FP.Count == 0:
			rc.pushRanges = append(rc.pushRanges, idRange{e.Lo, e.Hi})
		case mine.Count <= itemsThreshold:
			w.add(rc.items(e.Lo, e.Hi))
		default:
			lo := e.Lo
			for _, b := range rc.r.Split(e.Lo, e.Hi, splitParts(mine.Count, e.FP.Count)) {
				if b <= lo || (e.Hi != "" && b >= e.Hi) {
					continue
				}
				w.add(&rangeEntry{Lo: lo, Hi: b, Kind: kindFP, FP: shortFingerprint(rc.r.Fingerprint(lo, b))})
				lo = b
			}
			if lo == e.Lo {
				w.add(rc.items(e.Lo, e.Hi))
				return
			}
			w.add(&rangeEntry{Lo: lo, Hi: e.Hi, Kind: kindFP, FP: shortFingerprint(rc.r.Fingerprint(lo, e.Hi))})
		}
	case kindItems:
		if len(e.Items) == 0 {
			rc.pushRanges = append(rc.pushRanges, idRange{e.Lo, e.Hi})
			return
		}
		theirs := e.Items
		j := 0
		var both []crdt.ID
		rc.r.Ascend(e.Lo, e.Hi, func(id crdt.ID, h crdt.Hash) bool {
			for j < len(theirs) && theirs[j].ID < id {
				rc.wantID(theirs[j].ID, 0)
				j++
			}
			switch {
			case j < len(theirs) && theirs[j].ID == id:
				if theirs[j].Hash != short(h) && rc.allowed(id) {
					both = append(both, id)
				}
				j++
			default:
				if rc.allowed(id) {
					rc.pushID(id)
				}
			}
			return true
		})
		for ; j < len(theirs); j++ {
			rc.wantID(theirs[j].ID, 0)
		}
		if len(both) == 0 {
			return
		}
		d, err := rc.r.Records(both)
		if err != nil {
			// Without our copies, ask for theirs plainly.
			d = &crdt.Delta{}
		}
		hints := make(map[crdt.ID]int64, d.Len())
		for _, f := range d.Fragments {
			hints[crdt.MakeID(f.Collection, f.Key)] = f.Record.MaxStamp().TS.Wall
		}
		for _, id := range both {
			rc.wantID(id, hints[id])
			rc.deferred[id] = true
		}
	}
}

func (rc *reconciler) wantID(id crdt.ID, hint int64) {
	if rc.allowed(id) {
		rc.want = append(rc.want, want{ID: id, Hint: hint})
	}
}

func (rc *reconciler) items(lo, hi crdt.ID) *rangeEntry {
	e := &rangeEntry{Lo: lo, Hi: hi, Kind: kindItems}
	rc.r.Ascend(lo, hi, func(id crdt.ID, h crdt.Hash) bool {
		e.Items = append(e.Items, item{ID: id, Hash: short(h)})
		return true
	})
	rc.itemsSent += len(e.Items)
	return e
}

// syncLoop runs an anti-entropy round with a random peer every jittered
// SyncInterval, and at once when kicked (after a join, when a member
// appears).
func (n *Node) syncLoop() {
	defer n.wg.Done()
	for {
		var tc <-chan time.Time
		var t clock.Timer
		if n.cfg.SyncInterval > 0 {
			half := int64(n.cfg.SyncInterval / 2)
			t = n.cfg.Clock.NewTimer(time.Duration(half + int64(n.intn(int(max(2*half, 1))))))
			tc = t.C()
		}
		select {
		case <-n.ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-tc:
		case <-n.syncNow:
		}
		if t != nil {
			t.Stop()
		}
		name := n.randomPeer()
		if name == "" {
			continue
		}
		select {
		case n.sem <- struct{}{}:
		default:
			continue // sessions at their cap: skip this round
		}
		ctx, cancel := context.WithTimeout(n.ctx, 10*n.cfg.IOTimeout)
		res, err := n.syncSession(ctx, name)
		cancel()
		<-n.sem
		if err != nil {
			if !errors.Is(err, ErrBusy) && n.ctx.Err() == nil {
				n.log.Debug("anti-entropy round failed", "peer", name, "err", err.Error())
			}
			continue
		}
		if res.RecordsReceived+res.RecordsSent > 0 {
			n.log.Debug("anti-entropy round", "peer", name, "sent", res.RecordsSent,
				"received", res.RecordsReceived, "changed", res.RecordsChanged, "turns", res.Turns)
		}
	}
}

func (n *Node) randomPeer() string {
	n.mu.Lock()
	names := make([]string, 0, len(n.peers))
	for name := range n.peers {
		names = append(names, name)
	}
	n.mu.Unlock()
	if len(names) == 0 {
		return ""
	}
	return names[n.intn(len(names))]
}

// SyncWith runs one anti-entropy session with the named peer now, waiting
// for a session slot (MaxSyncs) if needed.
func (n *Node) SyncWith(ctx context.Context, peerName string) (SyncResult, error) {
	select {
	case n.sem <- struct{}{}:
	case <-ctx.Done():
		return SyncResult{Peer: peerName}, errors.Wrap(ctx.Err(), "wait for a session slot")
	case <-n.ctx.Done():
		return SyncResult{Peer: peerName}, ErrClosed
	}
	defer func() { <-n.sem }()
	return n.syncSession(ctx, peerName)
}

// syncSession runs an anti-entropy session as the initiator; the caller
// holds a session slot.
func (n *Node) syncSession(ctx context.Context, name string) (SyncResult, error) {
	res := SyncResult{Peer: name}
	p := n.peerByName(name)
	if p == nil {
		return res, errors.Mark(errors.Newf("anti-entropy with %s: not a live member", name), ErrNoPeer)
	}
	ctx, stopAll := mergeCancel(ctx, n.ctx)
	defer stopAll()
	start := n.cfg.Clock.Now()
	dc, err := n.dial(ctx, p, purposeSync)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			n.c.syncsRefused.Add(1)
		} else {
			n.c.syncFailures.Add(1)
		}
		return res, errors.Wrapf(err, "anti-entropy with %s", name)
	}
	stop := context.AfterFunc(ctx, dc.close)
	defer stop()
	defer dc.close()
	rc := newReconciler(n.replica, n.excluded(name), dc.sendMax)
	err = n.runSession(dc, rc, &res, true)
	res.Duration = n.cfg.Clock.Now().Sub(start)
	if err != nil {
		n.c.syncFailures.Add(1)
		return res, errors.Wrapf(err, "anti-entropy with %s", name)
	}
	return res, nil
}

// mergeCancel returns a context that ends when either parent ends.
func mergeCancel(ctx, other context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(other, cancel)
	return ctx, func() { stop(); cancel() }
}

// serveSync runs the responder side of a session.
func (n *Node) serveSync(dc *dataConn, from string) {
	ctx, cancel := context.WithTimeout(n.ctx, 10*n.cfg.IOTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, dc.close)
	defer stop()
	res := SyncResult{Peer: from}
	rc := newReconciler(n.replica, n.excluded(from), dc.sendMax)
	if err := n.runSession(dc, rc, &res, false); err != nil {
		n.c.syncFailures.Add(1)
		if n.ctx.Err() == nil {
			n.log.Debug("anti-entropy session failed", "peer", from, "err", err.Error())
		}
	}
}

// runSession exchanges turns until the session ends.
func (n *Node) runSession(dc *dataConn, rc *reconciler, res *SyncResult, initiator bool) error {
	send := func(t outTurn, flags uint64) error {
		m := encodeSync(flags, t.ranges, appendWants(nil, t.wants), &t.recs)
		defer m.free()
		if err := dc.write(m.bytes()); err != nil {
			return err
		}
		res.Turns++
		res.BytesSent += uint64(len(m.bytes()) + 4)
		n.c.syncBytes.Add(uint64(len(m.bytes()) + 4))
		return nil
	}
	// Counters move as records do, not at the end of the session.
	var reported reconciler
	report := func() {
		n.c.syncRecordsSent.Add(uint64(rc.recordsSent - reported.recordsSent))
		n.c.syncRecordsReceived.Add(uint64(rc.recordsReceived - reported.recordsReceived))
		n.c.fragmentsMerged.Add(uint64(rc.recordsChanged - reported.recordsChanged))
		n.c.fragmentsRejected.Add(uint64(rc.rejected - reported.rejected))
		reported.recordsSent, reported.recordsReceived = rc.recordsSent, rc.recordsReceived
		reported.recordsChanged, reported.rejected = rc.recordsChanged, rc.rejected
	}
	defer func() {
		report()
		res.RangesSent = rc.rangesSent
		res.RecordsSent = rc.recordsSent
		res.RecordsReceived = rc.recordsReceived
		res.RecordsChanged = rc.recordsChanged
		if len(rc.dropped) > 0 {
			n.c.fragmentsDropped.Add(uint64(len(rc.dropped)))
			n.log.Error("records too large for anti-entropy", "count", len(rc.dropped), "first", rc.dropped[0].String(),
				"hint", "raise max_message_bytes on every node")
		}
	}()
	if initiator {
		if err := send(rc.start(), 0); err != nil {
			return err
		}
	}
	for res.Turns < maxTurns {
		b, err := dc.read()
		if err != nil {
			if errors.Is(err, ErrRejected) {
				n.c.rejectedPeers.Add(1)
			}
			return errors.Wrap(err, "read turn")
		}
		res.Turns++
		res.BytesReceived += uint64(len(b) + 4)
		n.c.syncBytes.Add(uint64(len(b) + 4))
		t, err := decodeSync(b, n.limits)
		if err != nil {
			n.c.decodeErrors.Add(1)
			return err
		}
		if t.Flags&flagDone != 0 {
			n.c.syncs.Add(1)
			return nil
		}
		err = rc.receive(t)
		report()
		if err != nil {
			return err
		}
		out, err := rc.next()
		if err != nil {
			return err
		}
		if t.empty() && out.empty() && rc.flushDeferred() {
			if out, err = rc.next(); err != nil {
				return err
			}
		}
		if t.empty() && out.empty() {
			n.c.syncs.Add(1)
			return send(out, flagDone)
		}
		if err := send(out, 0); err != nil {
			return err
		}
	}
	return errors.Newf("session over %d turns", maxTurns)
}
