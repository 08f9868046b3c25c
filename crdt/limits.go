package crdt

import (
	"strconv"

	"github.com/cockroachdb/errors"
)

// Limits is the one set of size limits of this package. The encoder
// (EncodeRecord) refuses a record over any of them before it is stored or
// sent, and the decoder (DecodeRecord, DecodeDelta, Decoder) refuses input
// over any of them, with the same value: a record that one replica accepts,
// every replica with the same limits can read. Both report a violation as a
// *LimitError marked ErrTooLarge, named by one of the Limit constants; the
// decoder's errors are also marked ErrDecode.
//
// The record limits (the first group) bound what a user can write. The
// others bound the structures a record's history builds (register
// frontiers, OR-set contexts) and the messages that carry records; no limit
// lets a small message allocate a large amount of memory, because every
// length is also checked against the bytes left.
type Limits struct {
	MaxFields      int // fields in one record (LimitFields)
	MaxElems       int // elements in one OR-set (LimitElems)
	MaxValueBytes  int // one string, bytes or JSON value (LimitValueBytes)
	MaxRecordBytes int // one record's encoding (LimitRecordBytes)

	MaxWrites  int // writes kept in one register (LimitWrites)
	MaxEntries int // live adds of one element (LimitEntries)
	MaxDots    int // dots in one causal context part, replicas in one counter (LimitDots)
	MaxListLen int // elements of one list value (LimitListLen)

	MaxMessageBytes int // whole message (LimitMessageBytes)
	MaxFragments    int // records in one delta (LimitFragments)
	MaxDepth        int // msgpack nesting
}

// The default limits. A record at DefaultMaxRecordBytes, with its delta
// envelope, fits in one gossip message of the default size (16 MiB), so that
// every record a replica accepts can travel.
const (
	DefaultMaxFields      = 4096
	DefaultMaxElems       = 1 << 16
	DefaultMaxValueBytes  = 4 << 20
	DefaultMaxRecordBytes = 8 << 20
)

// The names of the limits, as errors and the HTTP API report them.
const (
	LimitFields       = "fields_per_record"
	LimitElems        = "elements_per_set"
	LimitValueBytes   = "bytes_per_value"
	LimitRecordBytes  = "bytes_per_record"
	LimitWrites       = "writes_per_field"
	LimitEntries      = "adds_per_element"
	LimitDots         = "dots_per_context"
	LimitListLen      = "elements_per_list"
	LimitMessageBytes = "bytes_per_message"
	LimitFragments    = "records_per_delta"
	LimitCounter      = "dot_counter"
)

// MaxCounter bounds every dot counter (the per-replica sequence numbers of
// OR-set adds) that a record may hold: decoders refuse a larger one, and an
// add that would pass it fails with an ErrTooLarge error instead of wrapping.
// It is far above what any replica issues (one add per nanosecond for three
// days), and far below math.MaxUint64, so that a counter taken from a peer
// can never bring a replica to the wrap.
const MaxCounter = 1 << 48

// DefaultLimits returns the limits of records, deltas and stored records.
func DefaultLimits() Limits {
	return Limits{
		MaxFields:       DefaultMaxFields,
		MaxElems:        DefaultMaxElems,
		MaxValueBytes:   DefaultMaxValueBytes,
		MaxRecordBytes:  DefaultMaxRecordBytes,
		MaxWrites:       1024,
		MaxEntries:      1 << 12,
		MaxDots:         1 << 20,
		MaxListLen:      1 << 20,
		MaxMessageBytes: 64 << 20,
		MaxFragments:    1 << 20,
		MaxDepth:        32,
	}
}

// ErrTooLarge marks errors for a record, value or message over one of the
// Limits. errors.As finds the *LimitError that names the limit.
var ErrTooLarge = errors.New("crdt: over a size limit")

// IsTooLarge reports whether err is an ErrTooLarge error.
func IsTooLarge(err error) bool { return errors.Is(err, ErrTooLarge) }

// LimitError is a record, value or message over one of the Limits.
type LimitError struct {
	// Limit is the limit's name: one of the Limit constants.
	Limit string
	// Max is the limit, Got what the input had.
	Max, Got int64
}

func (e *LimitError) Error() string {
	return e.Limit + " is " + strconv.FormatInt(e.Max, 10) + ", got " + strconv.FormatInt(e.Got, 10)
}

// LimitOf returns the limit that err reports as exceeded, if any.
func LimitOf(err error) (*LimitError, bool) {
	var le *LimitError
	if errors.As(err, &le) {
		return le, true
	}
	return nil, false
}

func tooLarge(limit string, got, max int) error {
	return errors.Mark(&LimitError{Limit: limit, Max: int64(max), Got: int64(got)}, ErrTooLarge)
}

// decodeTooLarge is tooLarge for the decoder: also an ErrDecode error.
func decodeTooLarge(limit string, got, max int) error {
	return errors.Mark(tooLarge(limit, got, max), ErrDecode)
}

// CheckRecord checks every limit but MaxRecordBytes, which needs the
// encoding (EncodeRecord checks all of them). It visits the record in the
// order the decoder reads it, so that both report the same limit first.
func (l Limits) CheckRecord(r *Record) error {
	if r == nil {
		return nil
	}
	if len(r.Fields) > l.MaxFields {
		return errors.Wrap(tooLarge(LimitFields, len(r.Fields), l.MaxFields), "record")
	}
	for i := range r.Fields {
		f := &r.Fields[i]
		if err := l.checkField(f); err != nil {
			return errors.Wrapf(err, "field %s", f.Name)
		}
	}
	return nil
}

func (l Limits) checkField(f *Field) error {
	if len(f.Reg) > l.MaxWrites {
		return tooLarge(LimitWrites, len(f.Reg), l.MaxWrites)
	}
	for i := range f.Reg {
		if err := l.CheckValue(f.Reg[i].Value); err != nil {
			return err
		}
	}
	if err := l.checkSet(f.Set); err != nil {
		return err
	}
	if len(f.Ctr) > l.MaxDots {
		return tooLarge(LimitDots, len(f.Ctr), l.MaxDots)
	}
	for i := range f.Ctr {
		if err := l.CheckValue(f.Ctr[i].P); err != nil {
			return err
		}
		if err := l.CheckValue(f.Ctr[i].N); err != nil {
			return err
		}
	}
	return nil
}

func (l Limits) checkSet(s *ORSetState) error {
	if s == nil {
		return nil
	}
	if len(s.Elems) > l.MaxElems {
		return tooLarge(LimitElems, len(s.Elems), l.MaxElems)
	}
	for _, el := range s.Elems {
		if err := l.CheckValue(el.Value); err != nil {
			return err
		}
		if len(el.Entries) > l.MaxEntries {
			return tooLarge(LimitEntries, len(el.Entries), l.MaxEntries)
		}
		for _, en := range el.Entries {
			if en.Counter > MaxCounter {
				return counterTooLarge(en.Counter)
			}
		}
	}
	for _, part := range [][]Dot{s.Ctx.VV, s.Ctx.Cloud} {
		if len(part) > l.MaxDots {
			return tooLarge(LimitDots, len(part), l.MaxDots)
		}
		for _, d := range part {
			if d.Counter > MaxCounter {
				return counterTooLarge(d.Counter)
			}
		}
	}
	return nil
}

// counterTooLarge reports a dot counter over MaxCounter; Got saturates at
// MaxCounter+1, as the counter may not fit an int64.
func counterTooLarge(c uint64) error {
	return errors.Mark(&LimitError{Limit: LimitCounter, Max: MaxCounter, Got: int64(min(c, MaxCounter+1))}, ErrTooLarge)
}

// CheckValue checks a value against MaxValueBytes and MaxListLen.
func (l Limits) CheckValue(v Value) error {
	switch v.kind {
	case KindString, KindBytes, KindJSON:
		if len(v.str) > l.MaxValueBytes {
			return tooLarge(LimitValueBytes, len(v.str), l.MaxValueBytes)
		}
	case KindList:
		if len(v.list) > l.MaxListLen {
			return tooLarge(LimitListLen, len(v.list), l.MaxListLen)
		}
		for _, e := range v.list {
			if err := l.CheckValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// EncodeRecord is AppendRecord under limits: it appends the encoding of r to
// b, or returns b unchanged and an ErrTooLarge error when r is over any of
// the limits. A record it accepts decodes under the same limits.
func EncodeRecord(b []byte, r *Record, lim Limits) ([]byte, error) {
	if err := lim.CheckRecord(r); err != nil {
		return b, err
	}
	n := len(b)
	out := AppendRecord(b, r)
	if size := len(out) - n; size > lim.MaxRecordBytes {
		return out[:n], errors.Wrap(tooLarge(LimitRecordBytes, size, lim.MaxRecordBytes), "record")
	}
	return out, nil
}
