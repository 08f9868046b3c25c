package crdt

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Wire format
//
// Every message is a msgpack array [version, type, body...]. WireVersion
// changes only for incompatible changes; a decoder rejects versions it does
// not know. Within a version, every structure is a msgpack array whose
// elements may only ever be appended: a decoder reads the elements it knows
// and skips any that follow, so a message from a newer peer decodes on an
// older one (rolling upgrades), and missing trailing elements take their zero
// values. Golden encodings in testdata/wire pin the format.
//
//	record   [deleted stamp, written stamp, [field...]] | [..., reset stamp]
//	stamp    nil (zero) | [wall int, logical uint, replica uint]
//	field    [name str, [write...], orset | nil] | [..., [counter entry...]]
//	write    [stamp, value] | [stamp, value, source str | nil] | [..., prev stamp]
//	orset    [[elem...], [vv dot...], [cloud dot...]]
//	elem     [value, [entry...]]
//	entry    [counter uint, stamp]
//	dot      [replica uint, counter uint]
//	counter entry [stamp, p, n]    p, n: int >= 0 | str (exact decimal text >= 0)
//	value    nil | bool | int | float64 | str | bin | ext -1 (time: 12 bytes,
//	         nsec uint32 + sec int64) | ext 1 (canonical JSON text) | [value...]
//	delta    [1, 1, [[collection str, key bin, record]...]]

// WireVersion is the version of the wire format this package writes.
const WireVersion = 1

// MsgType identifies the body of an envelope.
type MsgType uint8

// MsgDelta is the message type of an encoded Delta. Other packages number
// their own message types from 16 up.
const MsgDelta MsgType = 1

const (
	extTime int8 = -1
	extJSON int8 = 1
)

// ErrDecode marks errors for malformed, oversized or incompatible input.
var ErrDecode = errors.New("crdt: cannot decode")

// IsDecodeError reports whether err is a decoding error.
func IsDecodeError(err error) bool { return errors.Is(err, ErrDecode) }

func decodeErr(err error, what string) error {
	if errors.Is(err, ErrDecode) {
		return errors.Wrap(err, what)
	}
	return errors.Mark(errors.Wrap(err, what), ErrDecode)
}

func decodeErrf(format string, args ...any) error {
	return errors.Mark(errors.Newf(format, args...), ErrDecode)
}

// Encoding

var encPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

type encoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func getEncoder() *encoder {
	e := encPool.Get().(*encoder)
	e.buf.Reset()
	return e
}

func (e *encoder) finish(dst []byte) []byte {
	dst = append(dst, e.buf.Bytes()...)
	if e.buf.Cap() <= 1<<20 {
		encPool.Put(e)
	}
	return dst
}

// AppendRecord appends the wire encoding of r (without envelope) to b. The
// encoding of a state is deterministic, so equal states encode equally.
func AppendRecord(b []byte, r *Record) []byte {
	e := getEncoder()
	encodeRecord(e.enc, r)
	return e.finish(b)
}

// EncodeDelta returns the enveloped wire encoding of d.
func EncodeDelta(d *Delta) []byte {
	e := getEncoder()
	enc := e.enc
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeUint(WireVersion)
	_ = enc.EncodeUint(uint64(MsgDelta))
	EncodeFragments(enc, d)
	return e.finish(nil)
}

// EncodeFragments writes the fragments of d as one msgpack array, for
// packages that embed deltas in their own messages.
func EncodeFragments(enc *msgpack.Encoder, d *Delta) {
	_ = enc.EncodeArrayLen(len(d.Fragments))
	for i := range d.Fragments {
		f := &d.Fragments[i]
		_ = enc.EncodeArrayLen(3)
		_ = enc.EncodeString(f.Collection)
		encodeBin(enc, string(f.Key))
		encodeRecord(enc, f.Record)
	}
}

// Writes to a bytes.Buffer cannot fail, so encode errors are ignored.
func encodeRecord(enc *msgpack.Encoder, r *Record) {
	if r == nil {
		r = &Record{}
	}
	// Reset is appended only when set, so records without one keep the
	// encoding (and hash) they had before Reset existed.
	if r.Reset.IsZero() {
		_ = enc.EncodeArrayLen(3)
	} else {
		_ = enc.EncodeArrayLen(4)
	}
	encodeStamp(enc, r.Deleted)
	encodeStamp(enc, r.Written)
	_ = enc.EncodeArrayLen(len(r.Fields))
	for i := range r.Fields {
		f := &r.Fields[i]
		// Counter entries are appended only when there are some, so
		// fields without them keep the encoding they had before counters.
		if len(f.Ctr) > 0 {
			_ = enc.EncodeArrayLen(4)
		} else {
			_ = enc.EncodeArrayLen(3)
		}
		_ = enc.EncodeString(f.Name)
		_ = enc.EncodeArrayLen(len(f.Reg))
		for j := range f.Reg {
			w := &f.Reg[j]
			switch {
			case !w.Prev.IsZero():
				_ = enc.EncodeArrayLen(4)
			case w.Source != "":
				_ = enc.EncodeArrayLen(3)
			default:
				_ = enc.EncodeArrayLen(2)
			}
			encodeStamp(enc, w.Stamp)
			encodeValue(enc, w.Value)
			if w.Source != "" {
				_ = enc.EncodeString(w.Source)
			} else if !w.Prev.IsZero() {
				_ = enc.EncodeNil()
			}
			if !w.Prev.IsZero() {
				encodeStamp(enc, w.Prev)
			}
		}
		if f.Set == nil {
			_ = enc.EncodeNil()
		} else {
			encodeORSet(enc, f.Set)
		}
		if len(f.Ctr) > 0 {
			_ = enc.EncodeArrayLen(len(f.Ctr))
			for j := range f.Ctr {
				e := &f.Ctr[j]
				_ = enc.EncodeArrayLen(3)
				encodeStamp(enc, e.Stamp)
				encodeValue(enc, e.P)
				encodeValue(enc, e.N)
			}
		}
	}
	if !r.Reset.IsZero() {
		encodeStamp(enc, r.Reset)
	}
}

func encodeORSet(enc *msgpack.Encoder, s *ORSetState) {
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeArrayLen(len(s.Elems))
	for _, el := range s.Elems {
		_ = enc.EncodeArrayLen(2)
		encodeValue(enc, el.Value)
		_ = enc.EncodeArrayLen(len(el.Entries))
		for _, en := range el.Entries {
			_ = enc.EncodeArrayLen(2)
			_ = enc.EncodeUint(en.Counter)
			encodeStamp(enc, en.Stamp)
		}
	}
	encodeDots(enc, s.Ctx.VV)
	encodeDots(enc, s.Ctx.Cloud)
}

// encodeBin writes s as a msgpack bin without copying it to a []byte.
func encodeBin(enc *msgpack.Encoder, s string) {
	_ = enc.EncodeBytesLen(len(s))
	writeString(enc, s)
}

func writeString(enc *msgpack.Encoder, s string) {
	if w, ok := enc.Writer().(io.StringWriter); ok {
		_, _ = w.WriteString(s)
		return
	}
	_, _ = enc.Writer().Write([]byte(s))
}

func encodeStamp(enc *msgpack.Encoder, s Stamp) {
	if s.IsZero() {
		_ = enc.EncodeNil()
		return
	}
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeInt(s.TS.Wall)
	_ = enc.EncodeUint(uint64(s.TS.Logical))
	_ = enc.EncodeUint(uint64(s.Replica))
}

func encodeDots(enc *msgpack.Encoder, ds []Dot) {
	_ = enc.EncodeArrayLen(len(ds))
	for _, d := range ds {
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeUint(uint64(d.Replica))
		_ = enc.EncodeUint(d.Counter)
	}
}

func encodeValue(enc *msgpack.Encoder, v Value) {
	switch v.kind {
	case KindNull:
		_ = enc.EncodeNil()
	case KindBool:
		_ = enc.EncodeBool(v.num == 1)
	case KindInt:
		_ = enc.EncodeInt(int64(v.num))
	case KindFloat:
		_ = enc.EncodeFloat64(math.Float64frombits(v.num))
	case KindString:
		_ = enc.EncodeString(v.str)
	case KindBytes:
		encodeBin(enc, v.str)
	case KindTime:
		_ = enc.EncodeExtHeader(extTime, 12)
		var b [12]byte
		binary.BigEndian.PutUint32(b[:4], uint32(v.nsec))
		binary.BigEndian.PutUint64(b[4:], v.num)
		_, _ = enc.Writer().Write(b[:])
	case KindJSON:
		_ = enc.EncodeExtHeader(extJSON, len(v.str))
		writeString(enc, v.str)
	case KindList:
		_ = enc.EncodeArrayLen(len(v.list))
		for _, e := range v.list {
			encodeValue(enc, e)
		}
	}
}

// Decoding

// Decoder reads the structures of this package from a msgpack byte slice
// under Limits. Other packages use it to decode their own messages that embed
// deltas. It never panics, whatever the input.
type Decoder struct {
	dec *msgpack.Decoder
	br  *bytes.Reader
	lim Limits
	// names interns collection, field and source names, which repeat
	// across the records of a message.
	names   map[string]string
	scratch []byte
}

// NewDecoder checks that b is well-formed msgpack no deeper than the limits
// allow and returns a decoder for it.
func NewDecoder(b []byte, lim Limits) (*Decoder, error) {
	if len(b) > lim.MaxMessageBytes {
		return nil, errors.Wrap(decodeTooLarge(LimitMessageBytes, len(b), lim.MaxMessageBytes), "message")
	}
	if err := CheckMsgpack(b, lim.MaxDepth); err != nil {
		return nil, err
	}
	br := bytes.NewReader(b)
	dec := msgpack.NewDecoder(br)
	return &Decoder{dec: dec, br: br, lim: lim}, nil
}

// Limits returns the decoder's limits.
func (d *Decoder) Limits() Limits { return d.lim }

// Remaining returns the number of bytes not yet read.
func (d *Decoder) Remaining() int { return d.br.Len() }

// Msgpack returns the underlying msgpack decoder. The input passed
// CheckMsgpack, so its Skip cannot recurse deeper than the limit.
func (d *Decoder) Msgpack() *msgpack.Decoder { return d.dec }

// ArrayLen reads an array header of at most max elements. A nil reads as
// length 0.
func (d *Decoder) ArrayLen(max int) (int, error) {
	n, err := d.arrayHeader()
	if err != nil {
		return 0, err
	}
	if n > max || n > d.br.Len() {
		return 0, decodeErrf("array of %d elements over the limit of %d", n, min(max, d.br.Len()))
	}
	return n, nil
}

// limitedLen reads an array header of at most max elements, where max is
// the limit named limit. A nil reads as length 0.
func (d *Decoder) limitedLen(max int, limit string) (int, error) {
	n, err := d.arrayHeader()
	if err != nil {
		return 0, err
	}
	if n > max {
		return 0, decodeTooLarge(limit, n, max)
	}
	if n > d.br.Len() {
		return 0, decodeErrf("array of %d elements in %d bytes", n, d.br.Len())
	}
	return n, nil
}

// arrayHeader reads an array header. A nil reads as length 0; a 32-bit
// length that reads negative where int has 32 bits is refused.
func (d *Decoder) arrayHeader() (int, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, decodeErr(err, "array")
	}
	n, err := d.dec.DecodeArrayLen()
	if err != nil {
		return 0, decodeErr(err, "array")
	}
	if c == msgpcode.Nil {
		return 0, nil
	}
	if n < 0 {
		return 0, decodeErrf("array of %d elements", n)
	}
	return n, nil
}

// Skip skips n values.
func (d *Decoder) Skip(n int) error {
	for range n {
		if err := d.dec.Skip(); err != nil {
			return decodeErr(err, "skip")
		}
	}
	return nil
}

// Uint reads an unsigned integer.
func (d *Decoder) Uint() (uint64, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, decodeErr(err, "uint")
	}
	if !(msgpcode.IsFixedNum(c) && c <= msgpcode.PosFixedNumHigh) && (c < msgpcode.Uint8 || c > msgpcode.Uint64) {
		return 0, decodeErrf("want an unsigned integer, got code 0x%02x", c)
	}
	v, err := d.dec.DecodeUint64()
	if err != nil {
		return 0, decodeErr(err, "uint")
	}
	return v, nil
}

// Int reads a signed integer.
func (d *Decoder) Int() (int64, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return 0, decodeErr(err, "int")
	}
	if !msgpcode.IsFixedNum(c) && (c < msgpcode.Uint8 || c > msgpcode.Int64) {
		return 0, decodeErrf("want an integer, got code 0x%02x", c)
	}
	if c == msgpcode.Uint64 {
		u, err := d.dec.DecodeUint64()
		if err != nil {
			return 0, decodeErr(err, "int")
		}
		if u > math.MaxInt64 {
			return 0, decodeErrf("integer %d out of range", u)
		}
		return int64(u), nil
	}
	v, err := d.dec.DecodeInt64()
	if err != nil {
		return 0, decodeErr(err, "int")
	}
	return v, nil
}

// String reads a string of at most max bytes.
func (d *Decoder) String(max int) (string, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return "", decodeErr(err, "string")
	}
	if !msgpcode.IsString(c) {
		return "", decodeErrf("want a string, got code 0x%02x", c)
	}
	// The length is checked before any byte is read: a 32-bit length
	// reads negative where int has 32 bits, and msgpack would take it
	// for an empty string.
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return "", decodeErr(err, "string")
	}
	if n < 0 || n > max || n > d.br.Len() {
		return "", decodeErrf("string of %d bytes over the limit of %d", n, min(max, d.br.Len()))
	}
	b := make([]byte, n)
	if err := d.dec.ReadFull(b); err != nil {
		return "", decodeErr(err, "string")
	}
	return string(b), nil
}

// readRaw reads a str or bin payload of at most limit bytes into the
// decoder's scratch buffer, valid until the next call. A payload over a limit
// that has a name (limitName not empty) is an ErrTooLarge error.
func (d *Decoder) readRaw(limit int, limitName, what string, ok func(byte) bool) ([]byte, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return nil, decodeErr(err, what)
	}
	if !ok(c) {
		return nil, decodeErrf("want %s, got code 0x%02x", what, c)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, decodeErr(err, what)
	}
	if n > limit && limitName != "" {
		return nil, decodeTooLarge(limitName, n, limit)
	}
	if n < 0 || n > limit || n > d.br.Len() {
		return nil, decodeErrf("%s of length %d over the limit", what, n)
	}
	if cap(d.scratch) < n {
		d.scratch = make([]byte, n, max(n, 64))
	}
	b := d.scratch[:n]
	if err := d.dec.ReadFull(b); err != nil {
		return nil, decodeErr(err, what)
	}
	return b, nil
}

// binString reads a binary value of at most max bytes as a string.
func (d *Decoder) binString(max int, limitName string) (string, error) {
	b, err := d.readRaw(max, limitName, "binary", msgpcode.IsBin)
	return string(b), err
}

// name reads a collection, field or source name (a string of at most 128
// bytes), interned for the life of the decoder.
func (d *Decoder) name() (string, error) {
	b, err := d.readRaw(128, "", "a string", msgpcode.IsString)
	if err != nil {
		return "", err
	}
	if s, ok := d.names[string(b)]; ok {
		return s, nil
	}
	s := string(b)
	if d.names == nil {
		d.names = make(map[string]string)
	}
	if len(d.names) < 1024 {
		d.names[s] = s
	}
	return s, nil
}

// Bytes reads a binary value of at most max bytes.
func (d *Decoder) Bytes(max int) ([]byte, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return nil, decodeErr(err, "bytes")
	}
	if !msgpcode.IsBin(c) {
		return nil, decodeErrf("want binary, got code 0x%02x", c)
	}
	n, err := d.dec.DecodeBytesLen()
	if err != nil {
		return nil, decodeErr(err, "bytes")
	}
	if n < 0 || n > max || n > d.br.Len() {
		return nil, decodeErrf("bytes of length %d over the limit", n)
	}
	b := make([]byte, n)
	if err := d.dec.ReadFull(b); err != nil {
		return nil, decodeErr(err, "bytes")
	}
	return b, nil
}

func (d *Decoder) isNil() (bool, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return false, decodeErr(err, "value")
	}
	if c == msgpcode.Nil {
		_ = d.dec.DecodeNil()
		return true, nil
	}
	return false, nil
}

// Envelope reads a message envelope and returns its type. The body follows.
func (d *Decoder) Envelope() (MsgType, int, error) {
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return 0, 0, err
	}
	if n < 2 {
		return 0, 0, decodeErrf("envelope of %d elements, want at least 2", n)
	}
	v, err := d.Uint()
	if err != nil {
		return 0, 0, errors.Wrap(err, "envelope version")
	}
	if v != WireVersion {
		return 0, 0, errors.Mark(errors.WithHint(
			errors.Newf("wire version %d, this replica speaks %d", v, WireVersion),
			"run the same major version of lattice on every replica"), ErrDecode)
	}
	t, err := d.Uint()
	if err != nil {
		return 0, 0, errors.Wrap(err, "envelope type")
	}
	if t > math.MaxUint8 {
		return 0, 0, decodeErrf("message type %d out of range", t)
	}
	return MsgType(t), n - 2, nil
}

// DecodeDelta decodes an enveloped delta.
func DecodeDelta(b []byte, lim Limits) (*Delta, error) {
	d, err := NewDecoder(b, lim)
	if err != nil {
		return nil, err
	}
	t, rest, err := d.Envelope()
	if err != nil {
		return nil, err
	}
	if t != MsgDelta {
		return nil, decodeErrf("message type %d is not a delta", t)
	}
	if rest < 1 {
		return nil, decodeErrf("delta without body")
	}
	delta, err := d.Fragments()
	if err != nil {
		return nil, err
	}
	if err := d.Skip(rest - 1); err != nil {
		return nil, err
	}
	return delta, nil
}

// DecodeRecord decodes a record written by AppendRecord.
func DecodeRecord(b []byte, lim Limits) (*Record, error) {
	d, err := NewDecoder(b, lim)
	if err != nil {
		return nil, err
	}
	r, err := d.Record()
	if err != nil {
		return nil, err
	}
	if d.br.Len() != 0 {
		return nil, decodeErrf("%d bytes after the record", d.br.Len())
	}
	return r, nil
}

// Fragments reads an array of fragments as written by EncodeFragments.
func (d *Decoder) Fragments() (*Delta, error) {
	n, err := d.limitedLen(d.lim.MaxFragments, LimitFragments)
	if err != nil {
		return nil, errors.Wrap(err, "delta")
	}
	delta := &Delta{Fragments: make([]Fragment, 0, n)}
	for i := range n {
		m, err := d.ArrayLen(1 << 16)
		if err != nil {
			return nil, errors.Wrapf(err, "fragment %d", i)
		}
		if m < 3 {
			return nil, decodeErrf("fragment %d has %d elements, want 3", i, m)
		}
		var f Fragment
		if f.Collection, err = d.name(); err != nil {
			return nil, errors.Wrapf(err, "fragment %d collection", i)
		}
		if err := ValidateName(f.Collection); err != nil {
			return nil, decodeErr(err, "fragment collection")
		}
		kb, err := d.binString(MaxKeyBytes, "")
		if err != nil {
			return nil, errors.Wrapf(err, "fragment %d key", i)
		}
		f.Key = Key(kb)
		if err := f.Key.Validate(); err != nil {
			return nil, decodeErr(err, "fragment key")
		}
		if f.Record, err = d.Record(); err != nil {
			return nil, errors.Wrapf(err, "fragment %d (%s/%s)", i, f.Collection, f.Key)
		}
		if err := d.Skip(m - 3); err != nil {
			return nil, err
		}
		delta.Fragments = append(delta.Fragments, f)
	}
	return delta, nil
}

// Record reads a record. It checks the orders the encoding promises and
// repairs what a peer cannot be trusted with: Written is raised to the
// highest write stamp and every live dot is added to its context.
func (d *Decoder) Record() (*Record, error) {
	start := d.br.Len()
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return nil, errors.Wrap(err, "record")
	}
	r := &Record{}
	if n >= 1 {
		if r.Deleted, err = d.stamp(); err != nil {
			return nil, errors.Wrap(err, "record deleted")
		}
	}
	if n >= 2 {
		if r.Written, err = d.stamp(); err != nil {
			return nil, errors.Wrap(err, "record written")
		}
	}
	if n >= 3 {
		nf, err := d.limitedLen(d.lim.MaxFields, LimitFields)
		if err != nil {
			return nil, errors.Wrap(err, "record fields")
		}
		if nf > 0 {
			r.Fields = make([]Field, 0, nf)
		}
		last := ""
		// One backing array holds the writes of every field: most fields
		// have one, and a slice per field is an allocation per field.
		wslab := make([]Write, 0, nf)
		for i := range nf {
			f, err := d.field(&wslab)
			if err != nil {
				return nil, errors.Wrapf(err, "field %d", i)
			}
			if f.Name <= last {
				return nil, decodeErrf("field %q out of order", f.Name)
			}
			last = f.Name
			if f.isEmpty() {
				continue
			}
			r.Fields = append(r.Fields, f)
		}
		if len(r.Fields) == 0 {
			r.Fields = nil
		}
	}
	if n >= 4 {
		if r.Reset, err = d.stamp(); err != nil {
			return nil, errors.Wrap(err, "record reset")
		}
	}
	if err := d.Skip(n - 4); err != nil {
		return nil, err
	}
	if size := start - d.br.Len(); size > d.lim.MaxRecordBytes {
		return nil, errors.Wrap(decodeTooLarge(LimitRecordBytes, size, d.lim.MaxRecordBytes), "record")
	}
	// Written covers every write, not the delete: raising it to a delete
	// stamp would change the state (and its hash) of every tombstone.
	r.Written = maxStamp(r.Written, r.maxWriteStamp())
	return r, nil
}

func (d *Decoder) field(wslab *[]Write) (Field, error) {
	var f Field
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return f, err
	}
	if n < 1 {
		return f, decodeErrf("field without a name")
	}
	if f.Name, err = d.name(); err != nil {
		return f, errors.Wrap(err, "name")
	}
	if err := ValidateName(f.Name); err != nil {
		return f, decodeErr(err, "field name")
	}
	if n >= 2 {
		nw, err := d.limitedLen(d.lim.MaxWrites, LimitWrites)
		if err != nil {
			return f, errors.Wrapf(err, "field %s writes", f.Name)
		}
		start := len(*wslab)
		for range nw {
			w, err := d.write()
			if err != nil {
				return f, errors.Wrapf(err, "field %s", f.Name)
			}
			if w.Stamp.IsZero() {
				return f, decodeErrf("field %s: write without a stamp", f.Name)
			}
			if k := len(*wslab); k > start && (*wslab)[k-1].Stamp.Compare(w.Stamp) <= 0 {
				return f, decodeErrf("field %s: writes out of order", f.Name)
			}
			*wslab = append(*wslab, w)
		}
		if end := len(*wslab); end > start {
			// Capped, so that no append through one field reaches the next.
			f.Reg = (*wslab)[start:end:end]
		}
	}
	if n >= 3 {
		isNil, err := d.isNil()
		if err != nil {
			return f, err
		}
		if !isNil {
			if f.Set, err = d.orset(); err != nil {
				return f, errors.Wrapf(err, "field %s set", f.Name)
			}
		}
	}
	if n >= 4 {
		// A writer that appends elements after the counter writes nil for
		// "no entries".
		isNil, err := d.isNil()
		if err != nil {
			return f, err
		}
		if !isNil {
			if f.Ctr, err = d.counter(); err != nil {
				return f, errors.Wrapf(err, "field %s counter", f.Name)
			}
		}
	}
	return f, d.Skip(n - 4)
}

// counter reads counter entries: sorted by replica, one per replica, sums
// non-negative Ints or canonical decimal text.
func (d *Decoder) counter() ([]CounterEntry, error) {
	n, err := d.limitedLen(d.lim.MaxDots, LimitDots)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]CounterEntry, 0, n)
	for range n {
		m, err := d.ArrayLen(1 << 16)
		if err != nil {
			return nil, err
		}
		if m < 3 {
			return nil, decodeErrf("counter entry of %d elements, want 3", m)
		}
		var e CounterEntry
		if e.Stamp, err = d.stamp(); err != nil {
			return nil, err
		}
		if e.Stamp.IsZero() {
			return nil, decodeErrf("counter entry without a stamp")
		}
		if e.P, err = d.value(false); err != nil {
			return nil, err
		}
		if e.N, err = d.value(false); err != nil {
			return nil, err
		}
		if !validSum(e.P) || !validSum(e.N) {
			return nil, decodeErrf("counter entry sums %s, %s: want integers or decimal text, not negative", e.P, e.N)
		}
		if k := len(out); k > 0 && out[k-1].Stamp.Replica >= e.Stamp.Replica {
			return nil, decodeErrf("counter entries out of order")
		}
		if err := d.Skip(m - 3); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (d *Decoder) write() (Write, error) {
	var w Write
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return w, err
	}
	if n < 2 {
		return w, decodeErrf("write of %d elements, want 2", n)
	}
	if w.Stamp, err = d.stamp(); err != nil {
		return w, err
	}
	if w.Value, err = d.Value(); err != nil {
		return w, err
	}
	if n >= 3 {
		// A writer that appends elements after the source writes nil for
		// "no source".
		if isNil, err := d.isNil(); err != nil {
			return w, err
		} else if !isNil {
			if w.Source, err = d.name(); err != nil {
				return w, errors.Wrap(err, "source")
			}
		}
	}
	if n >= 4 {
		if w.Prev, err = d.stamp(); err != nil {
			return w, errors.Wrap(err, "prev")
		}
	}
	return w, d.Skip(n - 4)
}

func (d *Decoder) stamp() (Stamp, error) {
	if isNil, err := d.isNil(); err != nil || isNil {
		return Stamp{}, err
	}
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return Stamp{}, err
	}
	if n < 3 {
		return Stamp{}, decodeErrf("stamp of %d elements, want 3", n)
	}
	var s Stamp
	if s.TS.Wall, err = d.Int(); err != nil {
		return s, err
	}
	l, err := d.Uint()
	if err != nil {
		return s, err
	}
	if l > math.MaxUint32 {
		return s, decodeErrf("logical time %d out of range", l)
	}
	s.TS.Logical = uint32(l)
	r, err := d.Uint()
	if err != nil {
		return s, err
	}
	s.Replica = ReplicaID(r)
	if s.IsZero() || s.Replica == 0 {
		return s, decodeErrf("stamp %s has a zero part", s)
	}
	return s, d.Skip(n - 3)
}

func (d *Decoder) orset() (*ORSetState, error) {
	n, err := d.ArrayLen(1 << 16)
	if err != nil {
		return nil, err
	}
	s := &ORSetState{}
	if n >= 1 {
		ne, err := d.limitedLen(d.lim.MaxElems, LimitElems)
		if err != nil {
			return nil, errors.Wrap(err, "elements")
		}
		if ne > 0 {
			s.Elems = make([]Elem, 0, ne)
		}
		// One backing array holds the entries of every element, most of
		// which have one.
		slab := make([]Entry, 0, ne)
		for range ne {
			m, err := d.ArrayLen(1 << 16)
			if err != nil {
				return nil, err
			}
			if m < 2 {
				return nil, decodeErrf("element of %d elements, want 2", m)
			}
			var el Elem
			if el.Value, err = d.Value(); err != nil {
				return nil, errors.Wrap(err, "element")
			}
			if el.Value.kind == KindList {
				return nil, decodeErrf("set element is a list")
			}
			if k := len(s.Elems); k > 0 && Compare(s.Elems[k-1].Value, el.Value) >= 0 {
				return nil, decodeErrf("set elements out of order")
			}
			nen, err := d.limitedLen(d.lim.MaxEntries, LimitEntries)
			if err != nil {
				return nil, errors.Wrap(err, "entries")
			}
			start := len(slab)
			for range nen {
				k, err := d.ArrayLen(1 << 16)
				if err != nil {
					return nil, err
				}
				if k < 2 {
					return nil, decodeErrf("entry of %d elements, want 2", k)
				}
				var en Entry
				if en.Counter, err = d.Uint(); err != nil {
					return nil, err
				}
				if en.Counter > MaxCounter {
					return nil, errors.Mark(counterTooLarge(en.Counter), ErrDecode)
				}
				if en.Stamp, err = d.stamp(); err != nil {
					return nil, err
				}
				if en.Counter == 0 || en.Stamp.IsZero() {
					return nil, decodeErrf("entry with zero dot")
				}
				if j := len(slab); j > start && cmpEntry(slab[j-1], en) >= 0 {
					return nil, decodeErrf("entries out of order")
				}
				if err := d.Skip(k - 2); err != nil {
					return nil, err
				}
				slab = append(slab, en)
			}
			if end := len(slab); end > start {
				el.Entries = slab[start:end:end]
			}
			if err := d.Skip(m - 2); err != nil {
				return nil, err
			}
			if len(el.Entries) > 0 {
				s.Elems = append(s.Elems, el)
			}
		}
	}
	var vv, cloud []Dot
	if n >= 2 {
		if vv, err = d.dots(); err != nil {
			return nil, errors.Wrap(err, "version vector")
		}
		for i := 1; i < len(vv); i++ {
			if vv[i-1].Replica >= vv[i].Replica {
				return nil, decodeErrf("version vector out of order")
			}
		}
		vv = slices.DeleteFunc(vv, func(x Dot) bool { return x.Counter == 0 })
	}
	if n >= 3 {
		if cloud, err = d.dots(); err != nil {
			return nil, errors.Wrap(err, "dot cloud")
		}
		for i := 1; i < len(cloud); i++ {
			if cmpDot(cloud[i-1], cloud[i]) >= 0 {
				return nil, decodeErrf("dot cloud out of order")
			}
		}
	}
	if err := d.Skip(n - 3); err != nil {
		return nil, err
	}
	if len(vv) == 0 {
		vv = nil
	}
	s.Ctx = compactContext(vv, cloud)
	// A live dot the context does not hold would break the join; adding it
	// is what the sender must have meant.
	var missing []Dot
	for _, el := range s.Elems {
		for _, en := range el.Entries {
			if !s.Ctx.Contains(en.Dot()) {
				missing = append(missing, en.Dot())
			}
		}
	}
	if len(missing) > 0 {
		s.Ctx = s.Ctx.join(contextOf(missing))
	}
	if s.isEmpty() {
		return nil, nil
	}
	return s, nil
}

func (d *Decoder) dots() ([]Dot, error) {
	n, err := d.limitedLen(d.lim.MaxDots, LimitDots)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]Dot, 0, n)
	for range n {
		m, err := d.ArrayLen(1 << 16)
		if err != nil {
			return nil, err
		}
		if m < 2 {
			return nil, decodeErrf("dot of %d elements, want 2", m)
		}
		r, err := d.Uint()
		if err != nil {
			return nil, err
		}
		c, err := d.Uint()
		if err != nil {
			return nil, err
		}
		if c > MaxCounter {
			return nil, errors.Mark(counterTooLarge(c), ErrDecode)
		}
		if r == 0 {
			return nil, decodeErrf("dot with zero replica")
		}
		if err := d.Skip(m - 2); err != nil {
			return nil, err
		}
		out = append(out, Dot{Replica: ReplicaID(r), Counter: c})
	}
	return out, nil
}

// Value reads a value.
func (d *Decoder) Value() (Value, error) {
	return d.value(true)
}

func (d *Decoder) value(allowList bool) (Value, error) {
	c, err := d.dec.PeekCode()
	if err != nil {
		return Value{}, decodeErr(err, "value")
	}
	switch {
	case c == msgpcode.Nil:
		_ = d.dec.DecodeNil()
		return Null(), nil
	case c == msgpcode.True || c == msgpcode.False:
		b, err := d.dec.DecodeBool()
		if err != nil {
			return Value{}, decodeErr(err, "bool")
		}
		return Bool(b), nil
	case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
		i, err := d.Int()
		if err != nil {
			return Value{}, err
		}
		return Int(i), nil
	case c == msgpcode.Double || c == msgpcode.Float:
		f, err := d.dec.DecodeFloat64()
		if err != nil {
			return Value{}, decodeErr(err, "float")
		}
		return Float(f), nil
	case msgpcode.IsString(c):
		b, err := d.readRaw(d.lim.MaxValueBytes, LimitValueBytes, "a string", msgpcode.IsString)
		if err != nil {
			return Value{}, err
		}
		return String(string(b)), nil
	case msgpcode.IsBin(c):
		b, err := d.binString(d.lim.MaxValueBytes, LimitValueBytes)
		if err != nil {
			return Value{}, err
		}
		return Value{kind: KindBytes, str: b}, nil
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		if !allowList {
			return Value{}, decodeErrf("lists do not nest")
		}
		n, err := d.limitedLen(d.lim.MaxListLen, LimitListLen)
		if err != nil {
			return Value{}, err
		}
		l := make([]Value, n)
		for i := range l {
			if l[i], err = d.value(false); err != nil {
				return Value{}, err
			}
		}
		return Value{kind: KindList, list: l}, nil
	case c == msgpcode.FixExt1 || c == msgpcode.FixExt2 || c == msgpcode.FixExt4 || c == msgpcode.FixExt8 ||
		c == msgpcode.FixExt16 || c == msgpcode.Ext8 || c == msgpcode.Ext16 || c == msgpcode.Ext32:
		id, n, err := d.dec.DecodeExtHeader()
		if err != nil {
			return Value{}, decodeErr(err, "ext")
		}
		if n > d.lim.MaxValueBytes {
			return Value{}, decodeTooLarge(LimitValueBytes, n, d.lim.MaxValueBytes)
		}
		if n > d.br.Len() || n < 0 {
			return Value{}, decodeErrf("ext value of %d bytes in %d", n, d.br.Len())
		}
		b := make([]byte, n)
		if err := d.dec.ReadFull(b); err != nil {
			return Value{}, decodeErr(err, "ext")
		}
		switch id {
		case extTime:
			if n != 12 {
				return Value{}, decodeErrf("time of %d bytes, want 12", n)
			}
			nsec := binary.BigEndian.Uint32(b[:4])
			if nsec >= 1e9 {
				return Value{}, decodeErrf("time nanoseconds %d out of range", nsec)
			}
			return Value{kind: KindTime, nsec: int32(nsec), num: binary.BigEndian.Uint64(b[4:])}, nil
		case extJSON:
			v, err := JSON(b)
			if err != nil {
				return Value{}, decodeErr(err, "json value")
			}
			return v, nil
		}
		return Value{}, decodeErrf("unknown value extension %d", id)
	}
	return Value{}, decodeErrf("unexpected code 0x%02x for a value", c)
}

// CheckMsgpack verifies that b holds exactly one well-formed msgpack value
// nested no deeper than maxDepth, without recursion and without allocating
// per element, so that decoders that recurse or skip are safe on it.
func CheckMsgpack(b []byte, maxDepth int) error {
	// pending[i] counts the values still expected at depth i.
	pending := make([]int, 1, 8)
	pending[0] = 1
	p := 0
	for len(pending) > 0 {
		if pending[len(pending)-1] == 0 {
			pending = pending[:len(pending)-1]
			continue
		}
		pending[len(pending)-1]--
		if p >= len(b) {
			return decodeErrf("truncated msgpack at byte %d", p)
		}
		c := b[p]
		p++
		var skip uint64 // payload bytes after the header
		var children uint64
		readN := func(n int) (uint64, bool) {
			if p+n > len(b) {
				return 0, false
			}
			var v uint64
			for _, x := range b[p : p+n] {
				v = v<<8 | uint64(x)
			}
			p += n
			return v, true
		}
		ok := true
		switch {
		case c <= msgpcode.PosFixedNumHigh || c >= msgpcode.NegFixedNumLow,
			c == msgpcode.Nil, c == msgpcode.True, c == msgpcode.False:
		case msgpcode.IsFixedMap(c):
			children = 2 * uint64(c&msgpcode.FixedMapMask)
		case msgpcode.IsFixedArray(c):
			children = uint64(c & msgpcode.FixedArrayMask)
		case msgpcode.IsFixedString(c):
			skip = uint64(c & msgpcode.FixedStrMask)
		case c == msgpcode.Uint8 || c == msgpcode.Int8:
			skip = 1
		case c == msgpcode.Uint16 || c == msgpcode.Int16:
			skip = 2
		case c == msgpcode.Uint32 || c == msgpcode.Int32 || c == msgpcode.Float:
			skip = 4
		case c == msgpcode.Uint64 || c == msgpcode.Int64 || c == msgpcode.Double:
			skip = 8
		case c == msgpcode.Str8 || c == msgpcode.Bin8:
			skip, ok = readN(1)
		case c == msgpcode.Str16 || c == msgpcode.Bin16:
			skip, ok = readN(2)
		case c == msgpcode.Str32 || c == msgpcode.Bin32:
			skip, ok = readN(4)
		case c == msgpcode.Array16:
			children, ok = readN(2)
		case c == msgpcode.Array32:
			children, ok = readN(4)
		case c == msgpcode.Map16:
			children, ok = readN(2)
			children *= 2
		case c == msgpcode.Map32:
			children, ok = readN(4)
			children *= 2
		case c == msgpcode.FixExt1:
			skip = 1 + 1
		case c == msgpcode.FixExt2:
			skip = 1 + 2
		case c == msgpcode.FixExt4:
			skip = 1 + 4
		case c == msgpcode.FixExt8:
			skip = 1 + 8
		case c == msgpcode.FixExt16:
			skip = 1 + 16
		case c == msgpcode.Ext8:
			skip, ok = readN(1)
			skip++
		case c == msgpcode.Ext16:
			skip, ok = readN(2)
			skip++
		case c == msgpcode.Ext32:
			skip, ok = readN(4)
			skip++
		default:
			return decodeErrf("invalid msgpack code 0x%02x at byte %d", c, p-1)
		}
		if !ok || skip > uint64(len(b)-p) {
			return decodeErrf("truncated msgpack at byte %d", p)
		}
		p += int(skip)
		if children > 0 {
			if children > uint64(len(b)-p) {
				return decodeErrf("msgpack container of %d values in %d bytes", children, len(b)-p)
			}
			if len(pending) >= maxDepth {
				return decodeErrf("msgpack nested deeper than %d", maxDepth)
			}
			pending = append(pending, int(children))
		}
	}
	if p != len(b) {
		return decodeErrf("%d bytes after the message", len(b)-p)
	}
	return nil
}

// Delta is a batch of record fragments, each in the same lattice as record
// states: merging a delta is joining each fragment into its record. Deltas
// may be lost, duplicated or reordered; anti-entropy repairs gaps.
type Delta struct {
	Fragments []Fragment
}

// Fragment is the part of one record's state that a delta carries.
type Fragment struct {
	Collection string
	Key        Key
	Record     *Record
}

// Len returns the number of fragments.
func (d *Delta) Len() int {
	if d == nil {
		return 0
	}
	return len(d.Fragments)
}

// Add appends a fragment without joining it with an earlier one for the same
// record; JoinDeltas normalizes.
func (d *Delta) Add(collection string, key Key, r *Record) {
	d.Fragments = append(d.Fragments, Fragment{Collection: collection, Key: key, Record: r})
}

// MaxStamp returns the highest stamp in d.
func (d *Delta) MaxStamp() Stamp {
	var m Stamp
	if d == nil {
		return m
	}
	for i := range d.Fragments {
		m = maxStamp(m, d.Fragments[i].Record.MaxStamp())
	}
	return m
}

func cmpFragment(a, b *Fragment) int {
	if c := strings.Compare(a.Collection, b.Collection); c != 0 {
		return c
	}
	return strings.Compare(string(a.Key), string(b.Key))
}

// JoinDeltas joins two deltas into a normalized one: fragments sorted by
// collection and key, one per record. The join is commutative, associative
// and idempotent on normalized deltas.
func JoinDeltas(s *Schema, a, b *Delta) (*Delta, error) {
	all := make([]Fragment, 0, a.Len()+b.Len())
	if a != nil {
		all = append(all, a.Fragments...)
	}
	if b != nil {
		all = append(all, b.Fragments...)
	}
	slices.SortStableFunc(all, func(x, y Fragment) int { return cmpFragment(&x, &y) })
	out := &Delta{Fragments: make([]Fragment, 0, len(all))}
	for i := 0; i < len(all); {
		f := all[i]
		c, err := s.Collection(f.Collection)
		if err != nil {
			return nil, err
		}
		r := Join(c, nil, f.Record)
		j := i + 1
		for ; j < len(all) && cmpFragment(&all[j], &f) == 0; j++ {
			r = Join(c, r, all[j].Record)
		}
		i = j
		if !r.IsEmpty() {
			out.Fragments = append(out.Fragments, Fragment{Collection: f.Collection, Key: f.Key, Record: r})
		}
	}
	return out, nil
}
