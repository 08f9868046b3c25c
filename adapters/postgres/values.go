package postgres

import (
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// scalar says how the text form of a PostgreSQL type maps to a Value.
type scalar uint8

const (
	scalarNone scalar = iota
	scalarInt
	scalarNumeric
	scalarFloat4
	scalarFloat8
	scalarText
	scalarBool
	scalarTimestamptz
	scalarTimestamp
	scalarDate
	scalarUUID
	scalarJSON
	scalarJSONB
	scalarBytea
)

func (s scalar) kind() crdt.Kind {
	switch s {
	case scalarInt:
		return crdt.KindInt
	case scalarFloat4, scalarFloat8:
		return crdt.KindFloat
	case scalarNumeric, scalarText, scalarUUID:
		return crdt.KindString
	case scalarBool:
		return crdt.KindBool
	case scalarTimestamptz, scalarTimestamp, scalarDate:
		return crdt.KindTime
	case scalarJSON, scalarJSONB:
		return crdt.KindJSON
	case scalarBytea:
		return crdt.KindBytes
	}
	return crdt.KindNull
}

// pgType is a column type the adapter supports: a scalar or a
// one-dimensional array of one.
type pgType struct {
	OID    uint32
	Name   string // as format_type prints it, for messages and casts
	Scalar scalar
	Array  bool
}

// Kind is the kind of the values captured for the type.
func (t pgType) Kind() crdt.Kind {
	if t.Array {
		return crdt.KindList
	}
	return t.Scalar.kind()
}

// Elem is the element kind of an array type.
func (t pgType) Elem() crdt.Kind {
	if t.Array {
		return t.Scalar.kind()
	}
	return crdt.KindNull
}

// builtinTypes maps the OIDs of the supported built-in types (fixed across
// PostgreSQL versions) to their description. Domains and enums are resolved
// from the catalog.
var builtinTypes = map[uint32]pgType{}

func init() {
	for _, t := range []struct {
		oid, arr uint32
		name     string
		sc       scalar
	}{
		{21, 1005, "smallint", scalarInt},
		{23, 1007, "integer", scalarInt},
		{20, 1016, "bigint", scalarInt},
		{1700, 1231, "numeric", scalarNumeric},
		{700, 1021, "real", scalarFloat4},
		{701, 1022, "double precision", scalarFloat8},
		{25, 1009, "text", scalarText},
		{1043, 1015, "character varying", scalarText},
		{1042, 1014, "character", scalarText},
		{19, 1003, "name", scalarText},
		{16, 1000, "boolean", scalarBool},
		{1184, 1185, "timestamp with time zone", scalarTimestamptz},
		{1114, 1115, "timestamp without time zone", scalarTimestamp},
		{1082, 1182, "date", scalarDate},
		{2950, 2951, "uuid", scalarUUID},
		{114, 199, "json", scalarJSON},
		{3802, 3807, "jsonb", scalarJSONB},
		{17, 1001, "bytea", scalarBytea},
	} {
		builtinTypes[t.oid] = pgType{OID: t.oid, Name: t.name, Scalar: t.sc}
		builtinTypes[t.arr] = pgType{OID: t.arr, Name: t.name + "[]", Scalar: t.sc, Array: true}
	}
}

// The times that stand for PostgreSQL's infinity and -infinity timestamps and
// dates. They lie just outside the range PostgreSQL can store (dates reach
// 5874897 AD, timestamps 4713 BC), so no real value maps to them, and any
// time at or beyond them is written back as infinity.
var (
	posInfinity = time.Date(5874898, 1, 1, 0, 0, 0, 0, time.UTC)
	negInfinity = time.Date(-4713, 1, 1, 0, 0, 0, 0, time.UTC)
)

// decodeText converts the text form of a value of type t, as PostgreSQL
// prints it with the session settings of sessionParams, to a Value.
func decodeText(t pgType, s string) (crdt.Value, error) {
	if t.Array {
		return decodeArray(t.Scalar, s)
	}
	return decodeScalar(t.Scalar, s)
}

func decodeScalar(sc scalar, s string) (crdt.Value, error) {
	switch sc {
	case scalarInt:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return crdt.Value{}, errors.Newf("bad integer %q", clip(s))
		}
		return crdt.Int(i), nil
	case scalarNumeric:
		if !validNumeric(s) {
			return crdt.Value{}, errors.Newf("bad numeric %q", clip(s))
		}
		return crdt.String(s), nil
	case scalarFloat4, scalarFloat8:
		bits := 64
		if sc == scalarFloat4 {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return crdt.Value{}, errors.Newf("bad float %q", clip(s))
		}
		return crdt.Float(f), nil
	case scalarText:
		if !utf8.ValidString(s) {
			return crdt.Value{}, errors.New("text is not valid utf-8")
		}
		return crdt.String(s), nil
	case scalarUUID:
		if !validUUID(s) {
			return crdt.Value{}, errors.Newf("bad uuid %q", clip(s))
		}
		return crdt.String(strings.ToLower(s)), nil
	case scalarBool:
		switch s {
		case "t", "true":
			return crdt.Bool(true), nil
		case "f", "false":
			return crdt.Bool(false), nil
		}
		return crdt.Value{}, errors.Newf("bad boolean %q", clip(s))
	case scalarTimestamptz, scalarTimestamp:
		t, err := parseTimestamp(s, sc == scalarTimestamptz)
		if err != nil {
			return crdt.Value{}, err
		}
		return crdt.Time(t), nil
	case scalarDate:
		t, err := parseDate(s)
		if err != nil {
			return crdt.Value{}, err
		}
		return crdt.Time(t), nil
	case scalarJSON, scalarJSONB:
		v, err := crdt.JSON([]byte(s))
		if err != nil {
			return crdt.Value{}, errors.Wrap(err, "bad json")
		}
		return v, nil
	case scalarBytea:
		rest, ok := strings.CutPrefix(s, `\x`)
		if !ok {
			return crdt.Value{}, errors.Newf("bad bytea %q: want hex format", clip(s))
		}
		b, err := hex.DecodeString(rest)
		if err != nil {
			return crdt.Value{}, errors.Newf("bad bytea %q", clip(s))
		}
		return crdt.Bytes(b), nil
	}
	return crdt.Value{}, errors.AssertionFailedf("decode unknown scalar %d", sc)
}

func clip(s string) string {
	const n = 48
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// validNumeric accepts what numeric_out prints: an optional sign, digits
// with an optional fraction, or NaN, Infinity and -Infinity.
func validNumeric(s string) bool {
	switch s {
	case "NaN", "Infinity", "-Infinity":
		return true
	}
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	return allDigits(intPart) && intPart != "" && (!hasFrac || allDigits(frac) && frac != "")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// parseTimestamp parses timestamp_out's ISO form: "YYYY-MM-DD HH:MM:SS[.f]"
// followed, for timestamptz, by an offset "+HH[:MM[:SS]]", and " BC" for
// years before 1 AD. A timestamp without time zone is read as UTC.
func parseTimestamp(s string, zoned bool) (time.Time, error) {
	switch s {
	case "infinity":
		return posInfinity, nil
	case "-infinity":
		return negInfinity, nil
	}
	bad := func() (time.Time, error) { return time.Time{}, errors.Newf("bad timestamp %q", clip(s)) }
	rest, bc := strings.CutSuffix(s, " BC")
	date, clock, ok := strings.Cut(rest, " ")
	if !ok {
		return bad()
	}
	y, mo, d, ok := parseYMD(date)
	if !ok || len(clock) < 8 || clock[2] != ':' || clock[5] != ':' {
		return bad()
	}
	hh, ok1 := atoi2(clock[0:2])
	mi, ok2 := atoi2(clock[3:5])
	ss, ok3 := atoi2(clock[6:8])
	if !ok1 || !ok2 || !ok3 || hh > 23 || mi > 59 || ss > 59 {
		return bad()
	}
	clock = clock[8:]
	nsec := 0
	if strings.HasPrefix(clock, ".") {
		n := 1
		for n < len(clock) && clock[n] >= '0' && clock[n] <= '9' {
			n++
		}
		digits := clock[1:n]
		if digits == "" || len(digits) > 9 {
			return bad()
		}
		v, _ := strconv.Atoi(digits)
		for i := len(digits); i < 9; i++ {
			v *= 10
		}
		nsec = v
		clock = clock[n:]
	}
	offset := 0
	if zoned {
		if len(clock) < 3 || clock[0] != '+' && clock[0] != '-' {
			return bad()
		}
		sign := 1
		if clock[0] == '-' {
			sign = -1
		}
		parts := strings.Split(clock[1:], ":")
		if len(parts) > 3 {
			return bad()
		}
		mult := 3600
		for _, p := range parts {
			v, ok := atoi2(p)
			if !ok || v > 59 && mult != 3600 {
				return bad()
			}
			offset += v * mult
			mult /= 60
		}
		offset *= sign
	} else if clock != "" {
		return bad()
	}
	if bc {
		y = 1 - y
	}
	t := time.Date(y, time.Month(mo), d, hh, mi, ss, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), nil
}

// parseDate parses date_out's ISO form "YYYY-MM-DD[ BC]" as midnight UTC.
func parseDate(s string) (time.Time, error) {
	switch s {
	case "infinity":
		return posInfinity, nil
	case "-infinity":
		return negInfinity, nil
	}
	rest, bc := strings.CutSuffix(s, " BC")
	y, m, d, ok := parseYMD(rest)
	if !ok {
		return time.Time{}, errors.Newf("bad date %q", clip(s))
	}
	if bc {
		y = 1 - y
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), nil
}

// parseYMD parses "YYYY-MM-DD" with a year of four or more digits.
func parseYMD(s string) (y, m, d int, ok bool) {
	ys, md, found := strings.Cut(s, "-")
	if !found || len(ys) < 4 || len(ys) > 7 || !allDigits(ys) || len(md) != 5 || md[2] != '-' {
		return 0, 0, 0, false
	}
	y, _ = strconv.Atoi(ys)
	m, ok1 := atoi2(md[0:2])
	d, ok2 := atoi2(md[3:5])
	if !ok1 || !ok2 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) || y < 1 {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func atoi2(s string) (int, bool) {
	if len(s) != 2 || !allDigits(s) {
		return 0, false
	}
	return int(s[0]-'0')*10 + int(s[1]-'0'), true
}

// decodeArray parses array_out's form of a one-dimensional array: an
// optional dimension decoration ("[0:2]="), then {e1,e2,...} where an
// element is NULL, a bare word or a double-quoted string with backslash
// escapes. Multi-dimensional arrays are rejected: lists do not nest.
func decodeArray(sc scalar, s string) (crdt.Value, error) {
	bad := func(why string) (crdt.Value, error) {
		return crdt.Value{}, errors.Newf("bad array %q: %s", clip(s), why)
	}
	in := s
	if strings.HasPrefix(in, "[") {
		i := strings.IndexByte(in, '=')
		if i < 0 {
			return bad("dimension decoration without =")
		}
		in = in[i+1:]
	}
	if len(in) < 2 || in[0] != '{' || in[len(in)-1] != '}' {
		return bad("want {...}")
	}
	in = in[1 : len(in)-1]
	var elems []crdt.Value
	if strings.TrimSpace(in) == "" {
		l, _ := crdt.List()
		return l, nil
	}
	var sb strings.Builder
	for i := 0; ; {
		for i < len(in) && in[i] == ' ' {
			i++
		}
		if i < len(in) && in[i] == '{' {
			return bad("multi-dimensional arrays are not supported")
		}
		sb.Reset()
		quoted := false
		if i < len(in) && in[i] == '"' {
			quoted = true
			i++
			closed := false
			for i < len(in) {
				c := in[i]
				if c == '\\' {
					if i+1 >= len(in) {
						return bad("dangling backslash")
					}
					sb.WriteByte(in[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				sb.WriteByte(c)
				i++
			}
			if !closed {
				return bad("unterminated quoted element")
			}
			for i < len(in) && in[i] == ' ' {
				i++
			}
		} else {
			for i < len(in) && in[i] != ',' {
				c := in[i]
				switch c {
				case '{', '}', '"':
					return bad("unexpected " + string(c))
				case '\\':
					if i+1 >= len(in) {
						return bad("dangling backslash")
					}
					sb.WriteByte(in[i+1])
					i += 2
					continue
				}
				sb.WriteByte(c)
				i++
			}
		}
		tok := sb.String()
		if !quoted {
			tok = strings.TrimRight(tok, " ")
		}
		var v crdt.Value
		if !quoted && strings.EqualFold(tok, "NULL") {
			v = crdt.Null()
		} else {
			if !quoted && tok == "" {
				return bad("empty element")
			}
			var err error
			if v, err = decodeScalar(sc, tok); err != nil {
				return crdt.Value{}, errors.Wrapf(err, "array element %d", len(elems))
			}
		}
		elems = append(elems, v)
		if i >= len(in) {
			break
		}
		if in[i] != ',' {
			return bad("want , between elements")
		}
		i++
	}
	return crdt.List(elems...)
}

// encodeText renders v as the text input of a column of type t, the inverse
// of decodeText. ok is false for null. A value whose kind the column cannot
// hold is an error; the kinds accepted are:
//
//   - integer types: int
//   - real, double precision: float, int
//   - numeric: string, int, float
//   - text types, uuid: string
//   - boolean: bool
//   - timestamps and date: time
//   - json, jsonb: json, or a string holding a JSON document
//   - bytea: bytes
//   - arrays: list (or null) of elements accepted by the element type
func encodeText(t pgType, v crdt.Value) (s string, ok bool, err error) {
	if v.IsNull() {
		return "", false, nil
	}
	if !t.Array {
		s, err := encodeScalar(t.Scalar, v)
		return s, err == nil, err
	}
	if v.Kind() != crdt.KindList {
		return "", false, errors.Newf("a %s column cannot hold a %s value", t.Name, v.Kind())
	}
	var sb strings.Builder
	sb.WriteByte('{')
	for i, e := range v.AsList() {
		if i > 0 {
			sb.WriteByte(',')
		}
		if e.IsNull() {
			sb.WriteString("NULL")
			continue
		}
		es, err := encodeScalar(t.Scalar, e)
		if err != nil {
			return "", false, errors.Wrapf(err, "list element %d", i)
		}
		sb.WriteByte('"')
		for j := 0; j < len(es); j++ {
			if es[j] == '"' || es[j] == '\\' {
				sb.WriteByte('\\')
			}
			sb.WriteByte(es[j])
		}
		sb.WriteByte('"')
	}
	sb.WriteByte('}')
	return sb.String(), true, nil
}

func encodeScalar(sc scalar, v crdt.Value) (string, error) {
	k := v.Kind()
	mismatch := func() (string, error) {
		return "", errors.Newf("a %s column cannot hold a %s value", scalarName(sc), k)
	}
	switch sc {
	case scalarInt:
		if k != crdt.KindInt {
			return mismatch()
		}
		return strconv.FormatInt(v.AsInt(), 10), nil
	case scalarFloat4, scalarFloat8:
		switch k {
		case crdt.KindFloat:
			return formatFloat(v.AsFloat()), nil
		case crdt.KindInt:
			return strconv.FormatInt(v.AsInt(), 10), nil
		}
		return mismatch()
	case scalarNumeric:
		switch k {
		case crdt.KindString:
			return v.AsString(), nil
		case crdt.KindInt:
			return strconv.FormatInt(v.AsInt(), 10), nil
		case crdt.KindFloat:
			return formatFloat(v.AsFloat()), nil
		}
		return mismatch()
	case scalarText, scalarUUID:
		if k != crdt.KindString {
			return mismatch()
		}
		s := v.AsString()
		if strings.IndexByte(s, 0) >= 0 {
			return "", errors.New("text cannot hold a zero byte")
		}
		return s, nil
	case scalarBool:
		if k != crdt.KindBool {
			return mismatch()
		}
		if v.AsBool() {
			return "t", nil
		}
		return "f", nil
	case scalarTimestamptz, scalarTimestamp, scalarDate:
		if k != crdt.KindTime {
			return mismatch()
		}
		return formatTime(sc, v.AsTime()), nil
	case scalarJSON, scalarJSONB:
		switch k {
		case crdt.KindJSON, crdt.KindString:
			s := v.AsString()
			if strings.IndexByte(s, 0) >= 0 {
				return "", errors.New("json cannot hold a zero byte")
			}
			return s, nil
		}
		return mismatch()
	case scalarBytea:
		if k != crdt.KindBytes {
			return mismatch()
		}
		return `\x` + hex.EncodeToString(v.AsBytes()), nil
	}
	return "", errors.AssertionFailedf("encode unknown scalar %d", sc)
}

func scalarName(sc scalar) string {
	switch sc {
	case scalarInt:
		return "integer"
	case scalarNumeric:
		return "numeric"
	case scalarFloat4, scalarFloat8:
		return "floating-point"
	case scalarText:
		return "text"
	case scalarUUID:
		return "uuid"
	case scalarBool:
		return "boolean"
	case scalarTimestamptz, scalarTimestamp:
		return "timestamp"
	case scalarDate:
		return "date"
	case scalarJSON, scalarJSONB:
		return "json"
	case scalarBytea:
		return "bytea"
	}
	return "unsupported"
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// formatTime renders t (in UTC) as PostgreSQL reads it back exactly:
// nanoseconds are kept in the text and rounded to microseconds by the
// server; years before 1 AD get the BC suffix; times beyond the infinity
// sentinels become infinity.
func formatTime(sc scalar, t time.Time) string {
	t = t.UTC()
	if !t.Before(posInfinity) {
		return "infinity"
	}
	if !t.After(negInfinity) {
		return "-infinity"
	}
	y := t.Year()
	bc := y <= 0
	if bc {
		y = 1 - y
	}
	b := make([]byte, 0, 40)
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	b = appendPadded(b, int(t.Month()), 2)
	b = append(b, '-')
	b = appendPadded(b, t.Day(), 2)
	if sc != scalarDate {
		b = append(b, ' ')
		b = appendPadded(b, t.Hour(), 2)
		b = append(b, ':')
		b = appendPadded(b, t.Minute(), 2)
		b = append(b, ':')
		b = appendPadded(b, t.Second(), 2)
		if ns := t.Nanosecond(); ns != 0 {
			b = append(b, '.')
			b = appendPadded(b, ns, 9)
		}
		if sc == scalarTimestamptz {
			b = append(b, "+00"...)
		}
	}
	if bc {
		b = append(b, " BC"...)
	}
	return string(b)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
