package crdt

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
)

// Kind is the type of a Value. The numeric order of kinds is the first key of
// the Value order (Compare) and of the key encoding.
type Kind uint8

// The kinds of Value. Their numbers appear in canonical encodings: never
// renumber them.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindString
	KindBytes
	KindTime
	KindJSON
	KindList
	numKinds
)

var kindNames = [numKinds]string{"null", "bool", "int", "float", "string", "bytes", "time", "json", "list"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the Kind named s ("int", "string", ...).
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, errors.Newf("unknown value kind %q (want one of %s)", s, strings.Join(kindNames[:], ", "))
}

// Value is an immutable typed value with one canonical form: two Values are
// Equal exactly when their canonical encodings are equal, on every replica.
// Floats are canonicalized (-0 becomes 0, every NaN the same quiet NaN),
// times are kept as UTC seconds and nanoseconds, JSON documents as compact
// text with sorted object keys, and lists hold scalars (no nested lists).
// The zero Value is null.
type Value struct {
	kind Kind
	nsec int32  // time: nanoseconds within the second
	num  uint64 // bool 0/1, int64 bits, float64 bits, time seconds
	str  string // string, bytes, canonical JSON text
	list []Value
}

const canonicalNaN = 0x7ff8000000000001

// Null returns the null Value.
func Null() Value { return Value{} }

// Bool returns a boolean Value.
func Bool(b bool) Value {
	v := Value{kind: KindBool}
	if b {
		v.num = 1
	}
	return v
}

// Int returns an integer Value.
func Int(i int64) Value { return Value{kind: KindInt, num: uint64(i)} }

// Float returns a float Value in canonical form.
func Float(f float64) Value {
	bits := math.Float64bits(f)
	switch {
	case f != f:
		bits = canonicalNaN
	case f == 0:
		bits = 0
	}
	return Value{kind: KindFloat, num: bits}
}

// String returns a string Value.
func String(s string) Value { return Value{kind: KindString, str: s} }

// Bytes returns a bytes Value holding a copy of b.
func Bytes(b []byte) Value { return Value{kind: KindBytes, str: string(b)} }

// Time returns a time Value; location and monotonic reading are dropped.
func Time(t time.Time) Value {
	return Value{kind: KindTime, num: uint64(t.Unix()), nsec: int32(t.Nanosecond())}
}

// TimeUnix returns a time Value from seconds and nanoseconds since the epoch.
func TimeUnix(sec int64, nsec int64) Value { return Time(time.Unix(sec, nsec)) }

// JSON returns a JSON document Value in canonical form (compact, object keys
// sorted, HTML characters not escaped). It fails if doc is not exactly one
// valid JSON value.
func JSON(doc []byte) (Value, error) {
	s, err := canonicalJSON(doc)
	if err != nil {
		return Value{}, err
	}
	return Value{kind: KindJSON, str: s}, nil
}

// MustJSON is JSON for constant documents known to be valid; it panics on
// invalid input and must not be used on input from users, systems or peers.
func MustJSON(doc string) Value {
	v, err := JSON([]byte(doc))
	if err != nil {
		panic(err)
	}
	return v
}

// List returns a list Value. Elements may be any kind but list.
func List(elems ...Value) (Value, error) {
	for i, e := range elems {
		if e.kind == KindList {
			return Value{}, errors.Newf("list element %d is a list: lists do not nest", i)
		}
	}
	return Value{kind: KindList, list: slices.Clone(elems)}, nil
}

// SetOf returns a list Value holding the distinct elements in canonical order:
// the form in which OR-set fields are viewed.
func SetOf(elems ...Value) (Value, error) {
	l, err := List(elems...)
	if err != nil {
		return Value{}, err
	}
	slices.SortFunc(l.list, Compare)
	l.list = slices.CompactFunc(l.list, Equal)
	return l, nil
}

func canonicalJSON(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return "", errors.Wrap(err, "invalid json document")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("invalid json document: data after the first value")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return "", errors.Wrap(err, "canonicalize json document")
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// Kind returns the kind of v.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is null.
func (v Value) IsNull() bool { return v.kind == KindNull }

// AsBool returns the boolean held by v (false for other kinds).
func (v Value) AsBool() bool { return v.kind == KindBool && v.num == 1 }

// AsInt returns the integer held by v (0 for other kinds).
func (v Value) AsInt() int64 {
	if v.kind != KindInt {
		return 0
	}
	return int64(v.num)
}

// AsFloat returns the float held by v (0 for other kinds).
func (v Value) AsFloat() float64 {
	if v.kind != KindFloat {
		return 0
	}
	return math.Float64frombits(v.num)
}

// AsString returns the string held by v, the bytes of a bytes value, or the
// canonical text of a JSON document ("" for other kinds).
func (v Value) AsString() string {
	switch v.kind {
	case KindString, KindBytes, KindJSON:
		return v.str
	}
	return ""
}

// AsBytes returns a copy of the bytes of a bytes, string or JSON value.
func (v Value) AsBytes() []byte {
	switch v.kind {
	case KindString, KindBytes, KindJSON:
		return []byte(v.str)
	}
	return nil
}

// AsTime returns the time held by v in UTC (the zero time for other kinds).
func (v Value) AsTime() time.Time {
	if v.kind != KindTime {
		return time.Time{}
	}
	return time.Unix(int64(v.num), int64(v.nsec)).UTC()
}

// AsList returns the elements of a list value (nil for other kinds). The
// returned slice must not be modified.
func (v Value) AsList() []Value {
	if v.kind != KindList {
		return nil
	}
	return v.list
}

// Compare orders values totally: by kind first, then by value. Within a kind:
// false < true; integers and floats numerically (NaN after +Inf); strings,
// bytes and JSON text bytewise; times chronologically; lists element by
// element, a prefix first.
func Compare(a, b Value) int {
	if a.kind != b.kind {
		if a.kind < b.kind {
			return -1
		}
		return 1
	}
	switch a.kind {
	case KindNull:
		return 0
	case KindBool:
		return cmpUint(a.num, b.num)
	case KindInt:
		return cmpInt(int64(a.num), int64(b.num))
	case KindFloat:
		return cmpUint(floatKey(a.num), floatKey(b.num))
	case KindString, KindBytes, KindJSON:
		return strings.Compare(a.str, b.str)
	case KindTime:
		if c := cmpInt(int64(a.num), int64(b.num)); c != 0 {
			return c
		}
		return cmpInt(int64(a.nsec), int64(b.nsec))
	case KindList:
		return slices.CompareFunc(a.list, b.list, Compare)
	}
	return 0
}

// Equal reports whether a and b are the same value.
func Equal(a, b Value) bool {
	if a.kind != b.kind || a.num != b.num || a.nsec != b.nsec || a.str != b.str {
		return false
	}
	return a.kind != KindList || slices.EqualFunc(a.list, b.list, Equal)
}

// floatKey maps float bits to an unsigned integer with the same order.
func floatKey(bits uint64) uint64 {
	if bits&(1<<63) != 0 {
		return ^bits
	}
	return bits | 1<<63
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AppendCanonical appends the canonical encoding of v to b: a kind byte and a
// prefix-free payload. Equal values, and only they, have equal encodings.
func (v Value) AppendCanonical(b []byte) []byte {
	b = append(b, byte(v.kind))
	switch v.kind {
	case KindBool:
		b = append(b, byte(v.num))
	case KindInt, KindFloat:
		b = binary.BigEndian.AppendUint64(b, v.num)
	case KindTime:
		b = binary.BigEndian.AppendUint64(b, v.num)
		b = binary.BigEndian.AppendUint32(b, uint32(v.nsec))
	case KindString, KindBytes, KindJSON:
		b = binary.AppendUvarint(b, uint64(len(v.str)))
		b = append(b, v.str...)
	case KindList:
		b = binary.AppendUvarint(b, uint64(len(v.list)))
		for _, e := range v.list {
			b = e.AppendCanonical(b)
		}
	}
	return b
}

// String renders v for people: logs, the CLI, test failures. It is not a
// serialization; use MarshalJSON or the wire codec for that.
func (v Value) String() string {
	switch v.kind {
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(v.AsBool())
	case KindInt:
		return strconv.FormatInt(v.AsInt(), 10)
	case KindFloat:
		return strconv.FormatFloat(v.AsFloat(), 'g', -1, 64)
	case KindString:
		return strconv.Quote(v.str)
	case KindBytes:
		return "0x" + hexString(v.str)
	case KindTime:
		return v.AsTime().Format(time.RFC3339Nano)
	case KindJSON:
		return v.str
	case KindList:
		parts := make([]string, len(v.list))
		for i, e := range v.list {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return "?"
}

func hexString(s string) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(s))
	for i := 0; i < len(s); i++ {
		out[2*i] = digits[s[i]>>4]
		out[2*i+1] = digits[s[i]&15]
	}
	return string(out)
}

// MarshalJSON renders v as plain JSON: null, booleans, numbers and strings
// as themselves (integral floats with a fraction, 1.0), bytes as base64
// strings, times as RFC 3339 strings, JSON documents inline, lists as arrays.
// Non-finite floats become strings.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.kind {
	case KindNull:
		return []byte("null"), nil
	case KindBool, KindInt:
		return []byte(v.String()), nil
	case KindFloat:
		f := v.AsFloat()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return json.Marshal(v.String())
		}
		// An integral float keeps a fraction ("1.0", not "1") so that
		// FromJSON infers a float again: a client that reads a record and
		// writes it back unchanged must not turn a float field into an int
		// field, which Diff would see as a change.
		b := strconv.AppendFloat(nil, f, 'g', -1, 64)
		if !bytes.ContainsAny(b, ".eE") {
			b = append(b, ".0"...)
		}
		return b, nil
	case KindString:
		return json.Marshal(v.str)
	case KindBytes:
		return json.Marshal(base64.StdEncoding.EncodeToString([]byte(v.str)))
	case KindTime:
		return json.Marshal(v.AsTime().Format(time.RFC3339Nano))
	case KindJSON:
		return []byte(v.str), nil
	case KindList:
		return json.Marshal(v.list)
	}
	return nil, errors.AssertionFailedf("marshal value of kind %d", v.kind)
}

// FromJSON converts a plain JSON value to a Value of the wanted kind, the
// inverse of MarshalJSON: bytes from base64, times from RFC 3339, JSON
// documents from any JSON value, lists from arrays of elem (pass KindNull as
// elem to infer each element's kind from its JSON type). JSON null is the
// null Value whatever the wanted kind.
func FromJSON(raw json.RawMessage, want, elem Kind) (Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Value{}, errors.New("empty json value")
	}
	if string(raw) == "null" {
		return Null(), nil
	}
	switch want {
	case KindNull:
		return inferJSON(raw)
	case KindBool:
		b, err := jsonAs[bool](raw, "a boolean")
		return Bool(b), err
	case KindInt:
		i, err := jsonAs[int64](raw, "an integer")
		return Int(i), err
	case KindFloat:
		f, err := jsonAs[float64](raw, "a number")
		if err != nil {
			// Non-finite floats travel as strings (MarshalJSON).
			if s, serr := jsonAs[string](raw, ""); serr == nil {
				if g, perr := strconv.ParseFloat(s, 64); perr == nil && (math.IsInf(g, 0) || math.IsNaN(g)) {
					return Float(g), nil
				}
			}
			return Value{}, err
		}
		return Float(f), nil
	case KindString:
		s, err := jsonAs[string](raw, "a string")
		return String(s), err
	case KindBytes:
		const what = "a base64 string"
		s, err := jsonAs[string](raw, what)
		if err != nil {
			return Value{}, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return Value{}, errors.Newf("want %s, got %s", what, clip(raw))
		}
		return Bytes(b), nil
	case KindTime:
		const what = "an RFC 3339 time string"
		s, err := jsonAs[string](raw, what)
		if err != nil {
			return Value{}, err
		}
		t, err := parseTime(s)
		if err != nil {
			return Value{}, errors.Newf("want %s, got %s", what, clip(raw))
		}
		return Time(t), nil
	case KindJSON:
		return JSON(raw)
	case KindList:
		if elem == KindList {
			return Value{}, errors.New("lists do not nest")
		}
		elems, err := jsonAs[[]json.RawMessage](raw, "an array")
		if err != nil {
			return Value{}, err
		}
		out := make([]Value, len(elems))
		for i, e := range elems {
			v, err := FromJSON(e, elem, KindNull)
			if err != nil {
				return Value{}, errors.Wrapf(err, "element %d", i)
			}
			out[i] = v
		}
		return List(out...)
	}
	return Value{}, errors.Newf("unknown kind %s", want)
}

// jsonAs unmarshals raw as a T, or explains that it wanted what.
func jsonAs[T any](raw json.RawMessage, what string) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, errors.Newf("want %s, got %s", what, clip(raw))
	}
	return v, nil
}

// inferJSON maps a JSON value to the closest kind: booleans, integers that fit
// int64, other numbers as floats, strings, arrays as lists of inferred
// scalars, and objects as JSON documents.
func inferJSON(raw json.RawMessage) (Value, error) {
	switch raw[0] {
	case 't', 'f':
		return FromJSON(raw, KindBool, KindNull)
	case '"':
		return FromJSON(raw, KindString, KindNull)
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return Value{}, errors.Wrap(err, "invalid json array")
		}
		out := make([]Value, len(elems))
		for i, e := range elems {
			e = bytes.TrimSpace(e)
			var v Value
			var err error
			if len(e) > 0 && e[0] == '[' {
				v, err = JSON(e)
			} else {
				v, err = inferJSON(e)
			}
			if err != nil {
				return Value{}, errors.Wrapf(err, "element %d", i)
			}
			out[i] = v
		}
		return List(out...)
	case '{':
		return JSON(raw)
	case 'n':
		return Null(), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return Value{}, errors.Newf("invalid json value %s", clip(raw))
	}
	if i, err := n.Int64(); err == nil {
		return Int(i), nil
	}
	f, err := n.Float64()
	if err != nil {
		return Value{}, errors.Newf("number %s out of range", clip(raw))
	}
	return Float(f), nil
}

func clip(b []byte) string {
	const n = 40
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// parseTime parses an RFC 3339 time whose UTC form is also RFC 3339 (years
// 0 to 9999), so that the text this package renders for it parses back: an
// offset can push a time at the edge of the range out of it.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, errors.Newf("time %s is outside years 0 to 9999 in UTC", s)
	}
	return t, nil
}

// ParseText converts the text form of a scalar (as in a URL path or a CSV
// cell) to a Value of kind k: integers and floats in Go syntax, booleans as
// true/false, times as RFC 3339, bytes as base64 (URL-safe or standard).
func ParseText(s string, k Kind) (Value, error) {
	switch k {
	case KindString:
		return String(s), nil
	case KindInt:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return Value{}, errors.Newf("%q is not an integer", s)
		}
		return Int(i), nil
	case KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Value{}, errors.Newf("%q is not a number", s)
		}
		return Float(f), nil
	case KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return Value{}, errors.Newf("%q is not a boolean", s)
		}
		return Bool(b), nil
	case KindTime:
		t, err := parseTime(s)
		if err != nil {
			return Value{}, errors.Newf("%q is not an RFC 3339 time", s)
		}
		return Time(t), nil
	case KindBytes:
		b, err := base64.URLEncoding.DecodeString(s)
		if err != nil {
			if b, err = base64.StdEncoding.DecodeString(s); err != nil {
				return Value{}, errors.Newf("%q is not base64", s)
			}
		}
		return Bytes(b), nil
	}
	return Value{}, errors.Newf("a %s cannot be parsed from text", k)
}

// Text is the inverse of ParseText for the kinds ParseText accepts.
func (v Value) Text() string {
	switch v.kind {
	case KindString:
		return v.str
	case KindBytes:
		return base64.URLEncoding.EncodeToString([]byte(v.str))
	case KindTime:
		return v.AsTime().Format(time.RFC3339Nano)
	}
	return v.String()
}
