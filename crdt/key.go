package crdt

import (
	"encoding/binary"
	"math"
	"strings"

	"github.com/cockroachdb/errors"
)

// Key identifies a record within its collection: a tuple of scalars (one per
// primary-key column) held in an order-preserving byte encoding, so that
// comparing two Keys as strings compares the tuples element by element with
// the Value order, a shorter prefix first. A Key is comparable and may be used
// as a map key. The zero Key (empty tuple) is not a valid record key.
//
// Elements may be bool, int, float, string, bytes or time. Each element is a
// tag byte (its kind plus one) and a payload: one byte for bools, 8 big-endian
// bytes with the sign bit flipped for ints, order-preserving float bits, 8+4
// bytes for times, and for strings and bytes the raw bytes with 0x00 escaped
// as 0x00 0xFF, terminated by 0x00 0x01.
type Key string

// ErrInvalidKey marks errors for keys that cannot be built or decoded.
var ErrInvalidKey = errors.New("crdt: invalid key")

// MaxKeyBytes bounds the encoded size of a key.
const MaxKeyBytes = 4096

// MakeKey encodes a tuple of scalars as a Key.
func MakeKey(elems ...Value) (Key, error) {
	if len(elems) == 0 {
		return "", errors.Mark(errors.New("a key needs at least one element"), ErrInvalidKey)
	}
	var b []byte
	for i, e := range elems {
		var err error
		if b, err = appendKeyElem(b, e); err != nil {
			return "", errors.Mark(errors.Wrapf(err, "key element %d", i), ErrInvalidKey)
		}
	}
	if len(b) > MaxKeyBytes {
		return "", errors.Mark(errors.Newf("key is %d bytes encoded, over the limit of %d", len(b), MaxKeyBytes), ErrInvalidKey)
	}
	return Key(b), nil
}

// MustKey is MakeKey for constant keys in tests and examples; it panics on
// error and must not be used on input.
func MustKey(elems ...Value) Key {
	k, err := MakeKey(elems...)
	if err != nil {
		panic(err)
	}
	return k
}

// StringKey is the key of a single string element.
func StringKey(s string) Key { return MustKey(String(s)) }

// IntKey is the key of a single integer element.
func IntKey(i int64) Key { return MustKey(Int(i)) }

const (
	escByte  = 0x00
	escSelf  = 0xFF
	escTerm  = 0x01
	tagShift = 1
)

func appendKeyElem(b []byte, v Value) ([]byte, error) {
	switch v.kind {
	case KindBool:
		return append(b, byte(v.kind)+tagShift, byte(v.num)), nil
	case KindInt:
		b = append(b, byte(v.kind)+tagShift)
		return binary.BigEndian.AppendUint64(b, v.num^(1<<63)), nil
	case KindFloat:
		b = append(b, byte(v.kind)+tagShift)
		return binary.BigEndian.AppendUint64(b, floatKey(v.num)), nil
	case KindTime:
		b = append(b, byte(v.kind)+tagShift)
		b = binary.BigEndian.AppendUint64(b, v.num^(1<<63))
		return binary.BigEndian.AppendUint32(b, uint32(v.nsec)), nil
	case KindString, KindBytes:
		b = append(b, byte(v.kind)+tagShift)
		for i := 0; i < len(v.str); i++ {
			c := v.str[i]
			b = append(b, c)
			if c == escByte {
				b = append(b, escSelf)
			}
		}
		return append(b, escByte, escTerm), nil
	}
	return nil, errors.Newf("a %s cannot be part of a key", v.kind)
}

// Values decodes k into its tuple. It fails on any encoding that MakeKey
// would not produce, so that equal tuples always have equal Keys.
func (k Key) Values() ([]Value, error) {
	var out []Value
	s := string(k)
	if len(s) == 0 {
		return nil, errors.Mark(errors.New("empty key"), ErrInvalidKey)
	}
	if len(s) > MaxKeyBytes {
		return nil, errors.Mark(errors.Newf("key of %d bytes over the limit of %d", len(s), MaxKeyBytes), ErrInvalidKey)
	}
	for len(s) > 0 {
		v, rest, err := decodeKeyElem(s)
		if err != nil {
			return nil, errors.Mark(errors.Wrapf(err, "key element %d", len(out)), ErrInvalidKey)
		}
		out = append(out, v)
		s = rest
	}
	return out, nil
}

// Validate reports whether Values would succeed, without building the
// values: decoders check every key they read.
func (k Key) Validate() error {
	s := string(k)
	if len(s) == 0 || len(s) > MaxKeyBytes {
		_, err := k.Values()
		return err
	}
	for len(s) > 0 {
		rest, ok := skipKeyElem(s)
		if !ok {
			// Values says what is wrong.
			_, err := k.Values()
			return err
		}
		s = rest
	}
	return nil
}

// skipKeyElem returns what follows the first element of s if it is one that
// decodeKeyElem accepts.
func skipKeyElem(s string) (string, bool) {
	kind := Kind(s[0] - tagShift)
	s = s[1:]
	switch kind {
	case KindBool:
		return safeSlice(s, 1), len(s) >= 1 && s[0] <= 1
	case KindInt:
		return safeSlice(s, 8), len(s) >= 8
	case KindFloat:
		if len(s) < 8 {
			return "", false
		}
		u := binary.BigEndian.Uint64([]byte(s[:8]))
		bits := ^u
		if u&(1<<63) != 0 {
			bits = u &^ (1 << 63)
		}
		return s[8:], Float(math.Float64frombits(bits)).num == bits
	case KindTime:
		return safeSlice(s, 12), len(s) >= 12 && binary.BigEndian.Uint32([]byte(s[8:12])) < 1e9
	case KindString, KindBytes:
		for i := 0; i < len(s); i++ {
			if s[i] != escByte {
				continue
			}
			if i+1 >= len(s) {
				return "", false
			}
			switch s[i+1] {
			case escSelf:
				i++
			case escTerm:
				return s[i+2:], true
			default:
				return "", false
			}
		}
	}
	return "", false
}

func safeSlice(s string, n int) string {
	if len(s) < n {
		return ""
	}
	return s[n:]
}

func decodeKeyElem(s string) (Value, string, error) {
	kind := Kind(s[0] - tagShift)
	s = s[1:]
	need := func(n int) error {
		if len(s) < n {
			return errors.Newf("truncated %s", kind)
		}
		return nil
	}
	switch kind {
	case KindBool:
		if err := need(1); err != nil {
			return Value{}, "", err
		}
		if s[0] > 1 {
			return Value{}, "", errors.New("bad bool byte")
		}
		return Bool(s[0] == 1), s[1:], nil
	case KindInt:
		if err := need(8); err != nil {
			return Value{}, "", err
		}
		return Int(int64(binary.BigEndian.Uint64([]byte(s[:8])) ^ (1 << 63))), s[8:], nil
	case KindFloat:
		if err := need(8); err != nil {
			return Value{}, "", err
		}
		u := binary.BigEndian.Uint64([]byte(s[:8]))
		var bits uint64
		if u&(1<<63) != 0 {
			bits = u &^ (1 << 63)
		} else {
			bits = ^u
		}
		v := Value{kind: KindFloat, num: bits}
		if Float(v.AsFloat()).num != bits {
			return Value{}, "", errors.New("non-canonical float")
		}
		return v, s[8:], nil
	case KindTime:
		if err := need(12); err != nil {
			return Value{}, "", err
		}
		sec := binary.BigEndian.Uint64([]byte(s[:8])) ^ (1 << 63)
		nsec := binary.BigEndian.Uint32([]byte(s[8:12]))
		if nsec >= 1e9 {
			return Value{}, "", errors.New("time nanoseconds out of range")
		}
		return Value{kind: KindTime, num: sec, nsec: int32(nsec)}, s[12:], nil
	case KindString, KindBytes:
		var sb strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c != escByte {
				sb.WriteByte(c)
				continue
			}
			if i+1 >= len(s) {
				return Value{}, "", errors.New("unterminated string")
			}
			switch s[i+1] {
			case escSelf:
				sb.WriteByte(escByte)
				i++
			case escTerm:
				return Value{kind: kind, str: sb.String()}, s[i+2:], nil
			default:
				return Value{}, "", errors.New("bad escape in string")
			}
		}
		return Value{}, "", errors.New("unterminated string")
	}
	return Value{}, "", errors.Newf("bad key tag 0x%02x", byte(kind)+tagShift)
}

// String renders the key for people: its elements' text forms joined by
// commas, e.g. 42 or acme,7. Use ParseKeyText to go back.
func (k Key) String() string {
	vals, err := k.Values()
	if err != nil {
		return "invalid-key:" + hexString(string(k))
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = escapeKeyText(v.Text())
	}
	return strings.Join(parts, ",")
}

// ParseKeyText parses the comma-separated text form of a key whose elements
// have the given kinds. Commas and backslashes inside an element are escaped
// with a backslash.
func ParseKeyText(s string, kinds []Kind) (Key, error) {
	parts, err := splitKeyText(s)
	if err != nil {
		return "", errors.Mark(err, ErrInvalidKey)
	}
	if len(parts) != len(kinds) {
		return "", errors.Mark(errors.Newf("key %q has %d elements, want %d", s, len(parts), len(kinds)), ErrInvalidKey)
	}
	vals := make([]Value, len(parts))
	for i, p := range parts {
		v, err := ParseText(p, kinds[i])
		if err != nil {
			return "", errors.Mark(errors.Wrapf(err, "key element %d", i), ErrInvalidKey)
		}
		vals[i] = v
	}
	return MakeKey(vals...)
}

// JoinKeyText joins the text forms of a key's elements into the text form
// of the key, escaping commas and backslashes inside an element; it is the
// inverse of ParseKeyText's split.
func JoinKeyText(parts ...string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = escapeKeyText(p)
	}
	return strings.Join(esc, ",")
}

func escapeKeyText(s string) string {
	if !strings.ContainsAny(s, `,\`) {
		return s
	}
	// Bytes, not runes: ranging over runes would turn invalid UTF-8 into
	// U+FFFD and the text would name another key.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == ',' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func splitKeyText(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 >= len(s) {
				return nil, errors.Newf("key %q ends in a lone backslash", s)
			}
			i++
			cur.WriteByte(s[i])
		case ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String()), nil
}
