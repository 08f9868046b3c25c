package engine

import (
	"bytes"

	"github.com/lattice-crdt/lattice/crdt"
)

// Positions remembers where in the system's change log recent applies
// landed, so that a captured change an apply may have overwritten before
// capture saw it is recognised as stale (and its record applied again).
//
// applied maps records to the capture position of their last apply, until
// capture has passed it; barrier is the system's head when capture started,
// covering applies made before this process started. A change captured in a
// batch that starts before either may have been overwritten in the system by
// that apply. The zero value is ready to use.
type Positions struct {
	applied map[crdt.ID][]byte
	barrier []byte
}

// inFlight is the apply position of a record whose apply has started and
// whose position is not known yet: it orders after every cursor, so every
// change to the record counts as stale until the apply reports its position.
var inFlight = bytes.Repeat([]byte{0xff}, 64)

// Empty reports whether no barrier and no apply position is remembered.
func (p *Positions) Empty() bool { return p.barrier == nil && len(p.applied) == 0 }

// Barrier marks every change before head, the system's capture head when
// capture resumes from a stored cursor, as possibly overwritten by an apply
// of an earlier process.
func (p *Positions) Barrier(head []byte) {
	p.barrier = head
}

// Stale reports whether a change to id captured in a batch that starts at
// prev may have been overwritten in the system by an apply before capture
// saw it.
func (p *Positions) Stale(id crdt.ID, prev []byte) bool {
	if p.barrier != nil && bytes.Compare(prev, p.barrier) < 0 {
		return true
	}
	pos, ok := p.applied[id]
	return ok && bytes.Compare(prev, pos) < 0
}

// Passed forgets the apply positions capture has passed: changes after
// cursor were committed after those applies.
func (p *Positions) Passed(cursor []byte) {
	if p.barrier != nil && bytes.Compare(cursor, p.barrier) >= 0 {
		p.barrier = nil
	}
	for id, pos := range p.applied {
		if bytes.Compare(cursor, pos) >= 0 {
			delete(p.applied, id)
		}
	}
}

// Applying marks ids as being applied, before the apply starts, so that a
// capture batch handled between the apply's commit and AppliedAt cannot
// miss it.
func (p *Positions) Applying(ids []crdt.ID) {
	if p.applied == nil {
		p.applied = map[crdt.ID][]byte{}
	}
	for _, id := range ids {
		p.applied[id] = inFlight
	}
}

// AppliedAt records the capture position of an apply of ids. Without a
// position (an adapter that reports none) the in-flight marks stay until a
// later apply of the same record replaces them, which keeps its changes
// conservatively stale.
func (p *Positions) AppliedAt(ids []crdt.ID, pos []byte) {
	if len(pos) == 0 {
		return
	}
	if p.applied == nil {
		p.applied = map[crdt.ID][]byte{}
	}
	for _, id := range ids {
		p.applied[id] = pos
	}
}
