package crdt_test

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// fakePhysical is an injected physical clock that tests move by hand.
type fakePhysical struct{ now int64 }

func (f *fakePhysical) read() int64 { return f.now }

// kulkarni is the receive rule of Kulkarni et al. 2014 (Fig. 5), written out
// independently of the package: l is the clock's last timestamp, m the
// remote one, pt the physical time.
func kulkarni(l, m crdt.Timestamp, pt int64) crdt.Timestamp {
	w := max(l.Wall, m.Wall, pt)
	switch {
	case w == l.Wall && w == m.Wall:
		return crdt.Timestamp{Wall: w, Logical: max(l.Logical, m.Logical) + 1}
	case w == l.Wall:
		return crdt.Timestamp{Wall: w, Logical: l.Logical + 1}
	case w == m.Wall:
		return crdt.Timestamp{Wall: w, Logical: m.Logical + 1}
	}
	return crdt.Timestamp{Wall: w}
}

// TestClockProperties drives one clock with Now, Update and Forward under a
// physical clock that moves forwards and jumps back, and checks every
// reading against the rules.
func TestClockProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pc := &fakePhysical{now: 1_000_000_000}
		maxOffset := time.Duration(rapid.Int64Range(1, int64(time.Second)).Draw(t, "maxOffset"))
		c := crdt.NewClock(pc.read, maxOffset)
		if c.MaxOffset() != maxOffset {
			t.Fatalf("MaxOffset = %v, want %v", c.MaxOffset(), maxOffset)
		}
		var prev crdt.Timestamp
		for range rapid.IntRange(1, 200).Draw(t, "steps") {
			pc.now += rapid.Int64Range(-int64(2*time.Second), int64(10*time.Millisecond)).Draw(t, "dt")
			if c.Physical() != pc.now {
				t.Fatalf("Physical = %d, want %d", c.Physical(), pc.now)
			}
			last := c.Last()
			if last != prev {
				t.Fatalf("Last = %s, want %s", last, prev)
			}
			var got crdt.Timestamp
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1:
				got = c.Now()
				if !last.Less(got) {
					t.Fatalf("Now = %s after %s: not strictly monotonic", got, last)
				}
				if pc.now > last.Wall && got != (crdt.Timestamp{Wall: pc.now}) {
					t.Fatalf("Now = %s, want the physical time %d", got, pc.now)
				}
			case 2:
				remote := crdt.Timestamp{
					Wall:    pc.now + rapid.Int64Range(-int64(time.Second), 2*int64(maxOffset)).Draw(t, "ahead"),
					Logical: uint32(rapid.IntRange(0, 5).Draw(t, "logical")),
				}
				if rapid.Bool().Draw(t, "same wall") {
					remote.Wall = last.Wall
				}
				var err error
				got, err = c.Update(remote)
				if remote.Wall-pc.now > int64(maxOffset) {
					if !crdt.IsClockOffsetError(err) {
						t.Fatalf("Update(%s) at %d with max offset %v: err = %v, want a clock offset error", remote, pc.now, maxOffset, err)
					}
					if c.Check(remote) == nil {
						t.Fatalf("Check accepts what Update rejects")
					}
					got = c.Last()
					if got != last {
						t.Fatalf("rejected Update moved the clock from %s to %s", last, got)
					}
					prev = got
					continue
				}
				if err != nil || c.Check(remote) != nil {
					t.Fatalf("Update(%s) at %d: %v", remote, pc.now, err)
				}
				if want := kulkarni(last, remote, pc.now); got != want {
					t.Fatalf("Update(%s) with last %s at %d = %s, want %s", remote, last, pc.now, got, want)
				}
				if !remote.Less(got) || !last.Less(got) {
					t.Fatalf("Update(%s) = %s: not after the remote and %s", remote, got, last)
				}
			case 3:
				ts := crdt.Timestamp{Wall: pc.now + rapid.Int64Range(-int64(time.Second), int64(time.Second)).Draw(t, "fwd")}
				c.Forward(ts)
				got = c.Last()
				if got != last.Forward(ts) {
					t.Fatalf("Forward(%s) from %s gave %s", ts, last, got)
				}
			}
			if got != c.Last() {
				t.Fatalf("returned %s but Last is %s", got, c.Last())
			}
			prev = got
		}
	})
}

// TestClockRestart checks the restart recipe of the package documentation:
// persist Last, and Forward a new clock to it; stamps stay monotonic even if
// the physical clock went back while the process was down.
func TestClockRestart(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pc := &fakePhysical{now: 5_000_000_000}
		c := crdt.NewClock(pc.read, 0)
		var last crdt.Timestamp
		for range rapid.IntRange(1, 50).Draw(t, "steps") {
			pc.now += rapid.Int64Range(-1000, 1000).Draw(t, "dt")
			last = c.Now()
		}
		persisted := c.Last()
		if persisted != last {
			t.Fatalf("Last = %s, want %s", persisted, last)
		}
		pc.now -= rapid.Int64Range(0, int64(time.Hour)).Draw(t, "back")
		restarted := crdt.NewClock(pc.read, 0)
		restarted.Forward(persisted)
		for range 5 {
			got := restarted.Now()
			if !last.Less(got) {
				t.Fatalf("after restart Now = %s, not after %s", got, last)
			}
			last = got
		}
	})
}

func TestClockLogicalOverflow(t *testing.T) {
	pc := &fakePhysical{now: 10}
	c := crdt.NewClock(pc.read, 0)
	c.Forward(crdt.Timestamp{Wall: 10, Logical: math.MaxUint32})
	if got, want := c.Now(), (crdt.Timestamp{Wall: 11}); got != want {
		t.Fatalf("Now = %s, want %s", got, want)
	}
	got, err := c.Update(crdt.Timestamp{Wall: 11, Logical: math.MaxUint32})
	if err != nil {
		t.Fatal(err)
	}
	if want := (crdt.Timestamp{Wall: 12}); got != want {
		t.Fatalf("Update = %s, want %s", got, want)
	}
}

func TestClockOffsetError(t *testing.T) {
	pc := &fakePhysical{now: 1_000}
	c := crdt.NewClock(pc.read, 0)
	if c.MaxOffset() != crdt.DefaultMaxOffset {
		t.Fatalf("default max offset %v", c.MaxOffset())
	}
	edge := crdt.Timestamp{Wall: 1_000 + int64(crdt.DefaultMaxOffset)}
	if _, err := c.Update(edge); err != nil {
		t.Fatalf("a timestamp exactly max offset ahead is rejected: %v", err)
	}
	_, err := c.Update(crdt.Timestamp{Wall: edge.Wall + 1})
	if !crdt.IsClockOffsetError(err) {
		t.Fatalf("err = %v, want a clock offset error", err)
	}
	if msg := err.Error(); msg != strings.ToLower(msg[:1])+msg[1:] || !strings.Contains(msg, "ahead of the local clock") {
		t.Fatalf("unclear message %q", msg)
	}
	if hints := errors.GetAllHints(err); len(hints) == 0 || !strings.Contains(hints[0], "max_clock_offset") {
		t.Fatalf("hints = %q", hints)
	}
	wrapped := errors.Wrap(err, "merge delta from peer b")
	if !crdt.IsClockOffsetError(wrapped) {
		t.Fatal("wrapping loses the identity")
	}
	// The identity survives the network (cockroachdb/errors encoding).
	ctx := context.Background()
	decoded := errors.DecodeError(ctx, errors.EncodeError(ctx, wrapped))
	if !crdt.IsClockOffsetError(decoded) {
		t.Fatalf("decoded error %v lost its identity", decoded)
	}
	if crdt.IsClockOffsetError(errors.New("remote clock too far ahead")) {
		t.Fatal("a different error with the same text matches")
	}

	// A negative max offset disables the check.
	off := crdt.NewClock(pc.read, -1)
	if _, err := off.Update(crdt.Timestamp{Wall: math.MaxInt64 / 2}); err != nil {
		t.Fatalf("check disabled, got %v", err)
	}
}

// TestClockOffsetNoWrap is a regression test: the distance between a remote
// wall time and the physical clock used to be computed as an int64 and could
// wrap, letting a timestamp from the far future through.
func TestClockOffsetNoWrap(t *testing.T) {
	for _, tc := range []struct {
		physical, remote int64
		ok               bool
	}{
		{-5, math.MaxInt64, false},
		{math.MinInt64, math.MaxInt64, false},
		{math.MaxInt64, math.MinInt64, true},
		{0, math.MinInt64, true},
		{-int64(time.Second), -int64(time.Second) + int64(crdt.DefaultMaxOffset), true},
	} {
		c := crdt.NewClock(func() int64 { return tc.physical }, 0)
		err := c.Check(crdt.Timestamp{Wall: tc.remote})
		if (err == nil) != tc.ok {
			t.Errorf("physical %d, remote %d: err = %v, want ok=%v", tc.physical, tc.remote, err, tc.ok)
		}
	}
}

func TestTimestampAndStamp(t *testing.T) {
	a := crdt.Timestamp{Wall: 5, Logical: 1}
	b := crdt.Timestamp{Wall: 5, Logical: 2}
	c := crdt.Timestamp{Wall: 6}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Compare(a) != 0 || c.Compare(b) != 1 {
		t.Fatal("timestamp order")
	}
	if a.Forward(c) != c || c.Forward(a) != c || !(crdt.Timestamp{}).IsZero() || a.IsZero() {
		t.Fatal("Forward/IsZero")
	}
	if got := a.String(); got != "5,1" {
		t.Fatalf("String = %q", got)
	}
	if got := (crdt.Timestamp{Wall: 1_500_000_000}).GoTime(); !got.Equal(time.Unix(1, 500_000_000)) || got.Location() != time.UTC {
		t.Fatalf("GoTime = %v", got)
	}
	s1 := crdt.Stamp{TS: a, Replica: 2}
	s2 := crdt.Stamp{TS: a, Replica: 3}
	s3 := crdt.Stamp{TS: b, Replica: 1}
	if !s1.Less(s2) || !s2.Less(s3) || s2.Compare(s1) != 1 || s1.Compare(s1) != 0 || s1.IsZero() || !(crdt.Stamp{}).IsZero() {
		t.Fatal("stamp order")
	}
	if got := s1.String(); got != "5,1@0000000000000002" {
		t.Fatalf("String = %q", got)
	}
}

func TestReplicaID(t *testing.T) {
	id, err := crdt.NewReplicaID(bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}))
	if err != nil || id != 0x0102030405060708 {
		t.Fatalf("NewReplicaID = %v, %v (a zero id must be skipped)", id, err)
	}
	if _, err := crdt.NewReplicaID(bytes.NewReader(make([]byte, 16*8))); err == nil {
		t.Fatal("only zeros: want an error")
	}
	if _, err := crdt.NewReplicaID(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Fatal("short read: want an error")
	}
	back, err := crdt.ParseReplicaID(id.String())
	if err != nil || back != id || id.String() != "0102030405060708" {
		t.Fatalf("ParseReplicaID(%s) = %v, %v", id, back, err)
	}
	for _, bad := range []string{"", "0", "xyz", "10000000000000000"} {
		if _, err := crdt.ParseReplicaID(bad); err == nil {
			t.Errorf("ParseReplicaID(%q) accepted", bad)
		}
	}
}
