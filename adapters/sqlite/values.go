package sqlite

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Declared types and the kinds they map to. SQLite columns are dynamically
// typed; the declared type is a promise the application keeps, so capture
// converts what it reads to the declared kind and Apply refuses values that
// do not fit it.

// kindOf maps a declared column type to a Value kind (and element kind for
// lists). ok is false for types the adapter does not support.
func kindOf(declared string) (kind, elem crdt.Kind, ok bool) {
	u := strings.ToUpper(strings.TrimSpace(declared))
	if base, found := strings.CutSuffix(u, "[]"); found {
		if isDecimalType(base) {
			return 0, 0, false
		}
		k, _, ok := kindOf(base)
		switch k {
		case crdt.KindInt, crdt.KindFloat, crdt.KindString, crdt.KindBool, crdt.KindBytes, crdt.KindTime:
			return crdt.KindList, k, ok
		}
		return 0, 0, false
	}
	// The first word without a size: VARCHAR(20) -> VARCHAR, JSON TEXT -> JSON.
	word := u
	if i := strings.IndexAny(word, " (\t\n"); i >= 0 {
		word = word[:i]
	}
	switch word {
	case "BOOLEAN", "BOOL":
		return crdt.KindBool, 0, true
	case "DATE", "DATETIME", "TIMESTAMP", "TIMESTAMPTZ":
		return crdt.KindTime, 0, true
	case "JSON":
		return crdt.KindJSON, 0, true
	case "NUMERIC", "DECIMAL":
		return crdt.KindString, 0, true // exact decimal text
	case "":
		return 0, 0, false
	}
	// SQLite's own affinity rules (https://sqlite.org/datatype3.html 3.1).
	switch {
	case strings.Contains(u, "INT"):
		return crdt.KindInt, 0, true
	case strings.Contains(u, "CHAR"), strings.Contains(u, "CLOB"), strings.Contains(u, "TEXT"):
		return crdt.KindString, 0, true
	case strings.Contains(u, "BLOB"):
		return crdt.KindBytes, 0, true
	case strings.Contains(u, "REAL"), strings.Contains(u, "FLOA"), strings.Contains(u, "DOUB"):
		return crdt.KindFloat, 0, true
	}
	return 0, 0, false
}

// isDecimalType reports whether a declared type is NUMERIC or DECIMAL (with
// or without precision): a column whose values are exact decimals.
func isDecimalType(declared string) bool {
	u := strings.ToUpper(strings.TrimSpace(declared))
	if i := strings.IndexAny(u, " (\t\n"); i >= 0 {
		u = u[:i]
	}
	return u == "NUMERIC" || u == "DECIMAL"
}

// supportedTypes is the hint for unsupported declared types.
const supportedTypes = "INTEGER (or any type containing INT), REAL/FLOAT/DOUBLE, TEXT/VARCHAR/CHAR, BLOB, " +
	"NUMERIC/DECIMAL, BOOLEAN, TIMESTAMP/DATETIME/DATE, JSON, or one of these (but NUMERIC/DECIMAL) followed by [] for a list"

// timeLayout is how Apply stores times: RFC 3339 in UTC with nine fraction
// digits, so that the text sorts in time order and SQLite's date functions
// read it.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// dateLayout is how Apply stores a midnight-UTC time in a DATE column.
const dateLayout = "2006-01-02"

// timeParseLayouts are the text forms capture reads as times: Apply's own,
// SQLite's date functions' (space separator, optional zone, optional
// seconds), a bare date, and Go's time.Time.String (what database/sql
// drivers store for a bound time.Time). A time without a zone is UTC.
var timeParseLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02 15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	dateLayout,
	"2006-01-02 15:04:05.999999999 -0700 MST",
}

func parseTimeText(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, " m="); i > 0 {
		s = s[:i] // a monotonic reading from time.Time.String
	}
	for _, l := range timeParseLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func formatTime(t time.Time, date bool) string {
	t = t.UTC()
	if date && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0 {
		return t.Format(dateLayout)
	}
	return t.Format(timeLayout)
}

// fromNative converts a value as SQLite holds it (nil, int64, float64,
// string or []byte) to a Value of the column's kind. When the value does not
// fit the kind (text in an INTEGER column: SQLite lets applications store
// anything anywhere), ok is false and v is the value in its own kind, so that
// nothing is lost; the caller logs it.
func fromNative(x any, c *column) (v crdt.Value, ok bool) {
	if x == nil {
		return crdt.Null(), true
	}
	if c.decimal {
		return decimalFromNative(x)
	}
	switch c.Kind {
	case crdt.KindInt:
		switch x := x.(type) {
		case int64:
			return crdt.Int(x), true
		case float64:
			if i, exact := floatToInt(x); exact {
				return crdt.Int(i), true
			}
		case string:
			if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return crdt.Int(i), true
			}
		}
	case crdt.KindFloat:
		switch x := x.(type) {
		case float64:
			return crdt.Float(x), true
		case int64:
			return crdt.Float(float64(x)), true
		case string:
			// SQLite cannot store NaN as a REAL (it becomes NULL), so Apply
			// stores it as the text NaN; text infinities read the same way.
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return crdt.Float(f), true
			}
		}
	case crdt.KindString:
		if s, isText := x.(string); isText {
			return crdt.String(s), true
		}
	case crdt.KindBool:
		switch x := x.(type) {
		case int64:
			return crdt.Bool(x != 0), true
		case float64:
			return crdt.Bool(x != 0), true
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil {
				return crdt.Bool(b), true
			}
		}
	case crdt.KindBytes:
		switch x := x.(type) {
		case []byte:
			return crdt.Bytes(x), true
		case string:
			return crdt.Bytes([]byte(x)), true
		}
	case crdt.KindTime:
		switch x := x.(type) {
		case string:
			if t, ok := parseTimeText(x); ok {
				return crdt.Time(t), true
			}
		case int64:
			return crdt.Time(time.Unix(x, 0)), true
		}
	case crdt.KindJSON:
		switch x := x.(type) {
		case string:
			if v, err := crdt.JSON([]byte(x)); err == nil {
				return v, true
			}
		case int64:
			// A column declared JSON has NUMERIC affinity: SQLite stores a
			// document that is a bare number as a number.
			return crdt.MustJSON(strconv.FormatInt(x, 10)), true
		case float64:
			if !math.IsInf(x, 0) && !math.IsNaN(x) {
				return crdt.MustJSON(strconv.FormatFloat(x, 'g', -1, 64)), true
			}
		}
	case crdt.KindList:
		if s, isText := x.(string); isText {
			if v, err := crdt.FromJSON([]byte(s), crdt.KindList, c.Elem); err == nil && v.Kind() == crdt.KindList {
				return v, true
			}
		}
	}
	return nativeValue(x), false
}

// decimalFromNative reads a NUMERIC or DECIMAL column as exact decimal
// text. SQLite stores such a value as an INTEGER, as a REAL when it is not
// whole (keeping 15 significant digits, SQLite's own rule), or as TEXT when
// it is not a number. A REAL reads as the shortest decimal that is the same
// double, which is the decimal written for any with up to 15 significant
// digits.
func decimalFromNative(x any) (crdt.Value, bool) {
	switch x := x.(type) {
	case int64:
		return crdt.String(strconv.FormatInt(x, 10)), true
	case float64:
		if !math.IsInf(x, 0) && !math.IsNaN(x) {
			return crdt.String(strconv.FormatFloat(x, 'f', -1, 64)), true
		}
	case string:
		if d, ok := crdt.ParseDecimal(strings.TrimSpace(x)); ok {
			return crdt.String(d), true
		}
	}
	return nativeValue(x), false
}

// nativeValue is x in its own kind.
func nativeValue(x any) crdt.Value {
	switch x := x.(type) {
	case int64:
		return crdt.Int(x)
	case float64:
		return crdt.Float(x)
	case string:
		return crdt.String(x)
	case []byte:
		return crdt.Bytes(x)
	}
	return crdt.Null()
}

// floatToInt returns f as an int64 if it is a whole number in range.
func floatToInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// toNative converts a Value to what Apply binds for the column. It accepts
// the column's own kind, an int for a float column and a whole float for an
// int column; anything else is an error for a RowError.
func toNative(v crdt.Value, c *column) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	bad := func() error {
		return errors.Newf("column %s (%s) cannot hold %s value %s", c.Name, c.Type, v.Kind(), clip(v.String()))
	}
	if c.decimal {
		switch v.Kind() {
		case crdt.KindInt:
			return v.AsInt(), nil
		case crdt.KindString:
			// Bound as text: SQLite's NUMERIC affinity stores it as an
			// INTEGER or REAL as it does for any client.
			if d, ok := crdt.ParseDecimal(v.AsString()); ok {
				return d, nil
			}
		}
		return nil, bad()
	}
	switch c.Kind {
	case crdt.KindInt:
		switch v.Kind() {
		case crdt.KindInt:
			return v.AsInt(), nil
		case crdt.KindFloat:
			if i, ok := floatToInt(v.AsFloat()); ok {
				return i, nil
			}
		}
	case crdt.KindFloat:
		switch v.Kind() {
		case crdt.KindFloat:
			if f := v.AsFloat(); !math.IsNaN(f) {
				return f, nil
			}
			return "NaN", nil
		case crdt.KindInt:
			return float64(v.AsInt()), nil
		}
	case crdt.KindString:
		if v.Kind() == crdt.KindString {
			return v.AsString(), nil
		}
	case crdt.KindBool:
		if v.Kind() == crdt.KindBool {
			if v.AsBool() {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case crdt.KindBytes:
		if v.Kind() == crdt.KindBytes {
			return v.AsBytes(), nil
		}
	case crdt.KindTime:
		if v.Kind() == crdt.KindTime {
			return formatTime(v.AsTime(), c.date), nil
		}
	case crdt.KindJSON:
		if v.Kind() == crdt.KindJSON {
			return v.AsString(), nil
		}
	case crdt.KindList:
		if v.Kind() == crdt.KindList {
			s, err := listJSON(v.AsList(), c)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	return nil, bad()
}

// listJSON renders list elements as a JSON array of the column's element
// kind: numbers, booleans and strings as themselves, times as RFC 3339
// strings, bytes as base64 strings, NaN and infinities as strings.
func listJSON(elems []crdt.Value, c *column) (string, error) {
	out := make([]any, len(elems))
	for i, e := range elems {
		el := &column{Name: c.Name + "[" + strconv.Itoa(i) + "]", Type: c.Type, Kind: c.Elem}
		x, err := toNative(e, el)
		if err != nil {
			return "", err
		}
		switch c.Elem {
		case crdt.KindBool:
			x = e.AsBool()
		case crdt.KindBytes:
			x = base64.StdEncoding.EncodeToString(e.AsBytes())
		case crdt.KindFloat:
			if f, isFloat := x.(float64); isFloat && math.IsInf(f, 0) {
				x = strconv.FormatFloat(f, 'g', -1, 64)
			}
		}
		out[i] = x
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return "", errors.Wrapf(err, "encode list for column %s", c.Name)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
