package crdt

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
)

// Timestamp is a hybrid logical clock reading (Kulkarni et al. 2014): a
// physical wall time in nanoseconds since the Unix epoch and a logical counter
// that orders events sharing a wall time. Timestamps are values; the zero
// Timestamp is smaller than every reading a Clock returns.
type Timestamp struct {
	Wall    int64
	Logical uint32
}

// Compare returns -1, 0 or +1 as t is before, equal to or after u.
func (t Timestamp) Compare(u Timestamp) int {
	switch {
	case t.Wall < u.Wall:
		return -1
	case t.Wall > u.Wall:
		return 1
	case t.Logical < u.Logical:
		return -1
	case t.Logical > u.Logical:
		return 1
	}
	return 0
}

// Less reports whether t is before u.
func (t Timestamp) Less(u Timestamp) bool { return t.Compare(u) < 0 }

// IsZero reports whether t is the zero Timestamp.
func (t Timestamp) IsZero() bool { return t == Timestamp{} }

// Forward returns the later of t and u.
func (t Timestamp) Forward(u Timestamp) Timestamp {
	if t.Less(u) {
		return u
	}
	return t
}

// GoTime returns the wall part of t as a time.Time in UTC.
func (t Timestamp) GoTime() time.Time { return time.Unix(0, t.Wall).UTC() }

func (t Timestamp) String() string {
	return strconv.FormatInt(t.Wall, 10) + "," + strconv.FormatUint(uint64(t.Logical), 10)
}

// ReplicaID names one replica's history. It is random, created on first start
// and never reused: a replica that lost its data must come back under a new
// ID, because dots (see Dot) issued under an ID must never be issued again.
type ReplicaID uint64

// NewReplicaID reads a non-zero ReplicaID from r, normally crypto/rand.Reader.
func NewReplicaID(r io.Reader) (ReplicaID, error) {
	var b [8]byte
	for range 16 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, errors.Wrap(err, "read replica id")
		}
		if id := ReplicaID(binary.BigEndian.Uint64(b[:])); id != 0 {
			return id, nil
		}
	}
	return 0, errors.New("random source returned only zero replica ids")
}

func (id ReplicaID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// ParseReplicaID parses the form that ReplicaID.String returns.
func ParseReplicaID(s string) (ReplicaID, error) {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || v == 0 {
		return 0, errors.Newf("invalid replica id %q", s)
	}
	return ReplicaID(v), nil
}

// Stamp identifies one write: the time it was made and the replica that made
// it. Stamps are totally ordered (timestamp first, replica ID second); two
// equal stamps are the same write.
type Stamp struct {
	TS      Timestamp
	Replica ReplicaID
}

// Compare returns -1, 0 or +1 as s orders before, equal to or after o.
func (s Stamp) Compare(o Stamp) int {
	if c := s.TS.Compare(o.TS); c != 0 {
		return c
	}
	switch {
	case s.Replica < o.Replica:
		return -1
	case s.Replica > o.Replica:
		return 1
	}
	return 0
}

// Less reports whether s orders before o.
func (s Stamp) Less(o Stamp) bool { return s.Compare(o) < 0 }

// IsZero reports whether s is the zero Stamp, which orders before all others.
func (s Stamp) IsZero() bool { return s == Stamp{} }

func (s Stamp) String() string { return s.TS.String() + "@" + s.Replica.String() }

func maxStamp(a, b Stamp) Stamp {
	if a.Less(b) {
		return b
	}
	return a
}

// DefaultMaxOffset is the largest distance a remote timestamp may be ahead of
// the local physical clock before Clock.Update rejects it.
const DefaultMaxOffset = 500 * time.Millisecond

// ErrClockOffset marks errors for remote timestamps too far in the future.
var ErrClockOffset = errors.New("crdt: remote clock too far ahead")

// IsClockOffsetError reports whether err (or an error it wraps, also after
// crossing the network with cockroachdb/errors encoding) is ErrClockOffset.
func IsClockOffsetError(err error) bool { return errors.Is(err, ErrClockOffset) }

// Clock is a hybrid logical clock. It is safe for concurrent use.
//
// The physical source is injected; Clock never reads the system time itself.
// Now is strictly monotonic for the life of the Clock. To stay monotonic
// across restarts, persist Last (or any upper bound of the timestamps handed
// out) durably with the state those timestamps went into, and pass it to
// Forward when the process starts again.
type Clock struct {
	physical  func() int64
	maxOffset time.Duration

	mu   sync.Mutex
	last Timestamp
}

// NewClock returns a Clock reading physical, which returns nanoseconds since
// the Unix epoch (for example func() int64 { return time.Now().UnixNano() }).
// A maxOffset of zero means DefaultMaxOffset; a negative one disables the
// check.
func NewClock(physical func() int64, maxOffset time.Duration) *Clock {
	if maxOffset == 0 {
		maxOffset = DefaultMaxOffset
	}
	return &Clock{physical: physical, maxOffset: maxOffset}
}

// MaxOffset returns the configured maximum offset (negative when disabled).
func (c *Clock) MaxOffset() time.Duration { return c.maxOffset }

// Physical returns a reading of the injected physical clock.
func (c *Clock) Physical() int64 { return c.physical() }

// Now returns a timestamp greater than every timestamp this Clock returned or
// was forwarded to before.
func (c *Clock) Now() Timestamp {
	p := c.physical()
	c.mu.Lock()
	defer c.mu.Unlock()
	if p > c.last.Wall {
		c.last = Timestamp{Wall: p}
	} else {
		c.last = c.last.successor()
	}
	return c.last
}

// Next returns the least timestamp greater than t.
func (t Timestamp) Next() Timestamp { return t.successor() }

func (t Timestamp) successor() Timestamp {
	if t.Logical == math.MaxUint32 {
		return Timestamp{Wall: t.Wall + 1}
	}
	return Timestamp{Wall: t.Wall, Logical: t.Logical + 1}
}

// Update records the receipt of a remote timestamp following the receive rule
// of Kulkarni et al. and returns the timestamp of the receive event, which is
// greater than both remote and every earlier local timestamp. A remote
// timestamp more than the maximum offset ahead of the physical clock is not
// adopted: Update returns an error for which IsClockOffsetError is true and
// leaves the clock unchanged.
func (c *Clock) Update(remote Timestamp) (Timestamp, error) {
	p := c.physical()
	if err := c.check(remote, p); err != nil {
		return Timestamp{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.last
	wall := max(l.Wall, remote.Wall, p)
	var next Timestamp
	switch {
	case wall == l.Wall && wall == remote.Wall:
		next = Timestamp{Wall: wall, Logical: max(l.Logical, remote.Logical)}.successor()
	case wall == l.Wall:
		next = l.successor()
	case wall == remote.Wall:
		next = remote.successor()
	default:
		next = Timestamp{Wall: wall}
	}
	c.last = next
	return next, nil
}

// Check returns the error Update would return for remote, without changing
// the clock.
func (c *Clock) Check(remote Timestamp) error { return c.check(remote, c.physical()) }

func (c *Clock) check(remote Timestamp, p int64) error {
	if c.maxOffset < 0 {
		return nil
	}
	if remote.Wall <= p {
		return nil
	}
	// The difference of two int64s fits a uint64; as an int64 it could wrap
	// and let a timestamp from the far future through.
	if ahead := uint64(remote.Wall) - uint64(p); ahead > uint64(c.maxOffset) {
		return errors.Mark(errors.WithHint(
			errors.Newf("remote timestamp %s is %s ahead of the local clock (max offset %s)",
				remote, time.Duration(min(ahead, math.MaxInt64)), c.maxOffset),
			"synchronise the clocks of all replicas (NTP) or raise max_clock_offset"),
			ErrClockOffset)
	}
	return nil
}

// Forward moves the clock to at least ts without any offset check. Use it to
// restore a persisted upper bound at start-up.
func (c *Clock) Forward(ts Timestamp) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = c.last.Forward(ts)
}

// Last returns the latest timestamp the clock handed out or was forwarded to:
// the upper bound to persist so that Now stays monotonic across restarts.
func (c *Clock) Last() Timestamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
