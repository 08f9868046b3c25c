package mapping

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// conversion is a bijection between the system values of one kind it
// accepts and the collection values of another kind it accepts: each
// direction refuses, with an error, a value the other would not give back
// unchanged. Null is not passed to either direction: it stays null.
type conversion struct {
	name       string
	system     crdt.Kind
	collection crdt.Kind
	forward    func(crdt.Value) (crdt.Value, error) // system -> collection
	back       func(crdt.Value) (crdt.Value, error) // collection -> system
}

// conversionNames lists the conversions for error hints.
const conversionNames = "int, text, bool:<true>/<false>, time:<Go layout>, time:unix, time:unixms, cents, decimal:<digits>"

// parseConversion returns the conversion named s.
func parseConversion(s string) (*conversion, error) {
	name, arg, hasArg := strings.Cut(s, ":")
	switch {
	case s == "int":
		return &conversion{name: s, system: crdt.KindString, collection: crdt.KindInt, forward: textToInt, back: intToText}, nil
	case s == "text":
		return &conversion{name: s, system: crdt.KindInt, collection: crdt.KindString, forward: intToText, back: textToInt}, nil
	case s == "cents":
		return decimalConversion(s, 2), nil
	case name == "decimal" && hasArg:
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 18 || strconv.Itoa(n) != arg {
			return nil, errors.Newf("decimal:%s: the number of digits must be an integer from 0 to 18", arg)
		}
		return decimalConversion(s, n), nil
	case name == "bool" && hasArg:
		t, f, ok := strings.Cut(arg, "/")
		if !ok || t == "" || f == "" || t == f || strings.Contains(f, "/") {
			return nil, errors.Newf("%s: want bool:<true>/<false> with two different non-empty literals", s)
		}
		return boolConversion(s, t, f), nil
	case name == "time" && hasArg:
		switch arg {
		case "unix":
			return epochConversion(s, time.Second), nil
		case "unixms":
			return epochConversion(s, time.Millisecond), nil
		}
		return layoutConversion(s, arg)
	}
	return nil, errors.Newf("unknown conversion %q", s)
}

func textToInt(v crdt.Value) (crdt.Value, error) {
	if v.Kind() != crdt.KindString {
		return crdt.Value{}, errors.Newf("want text, got %s %s", v.Kind(), v)
	}
	s := v.AsString()
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(i, 10) != s {
		return crdt.Value{}, errors.Newf("%q is not an integer in canonical decimal form", s)
	}
	return crdt.Int(i), nil
}

func intToText(v crdt.Value) (crdt.Value, error) {
	if v.Kind() != crdt.KindInt {
		return crdt.Value{}, errors.Newf("want int, got %s %s", v.Kind(), v)
	}
	return crdt.String(strconv.FormatInt(v.AsInt(), 10)), nil
}

// boolConversion maps the system text t to true and f to false; other texts
// are refused.
func boolConversion(name, t, f string) *conversion {
	return &conversion{
		name: name, system: crdt.KindString, collection: crdt.KindBool,
		forward: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() == crdt.KindString {
				switch v.AsString() {
				case t:
					return crdt.Bool(true), nil
				case f:
					return crdt.Bool(false), nil
				}
			}
			return crdt.Value{}, errors.Newf("want %q or %q, got %s", t, f, v)
		},
		back: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindBool {
				return crdt.Value{}, errors.Newf("want bool, got %s %s", v.Kind(), v)
			}
			if v.AsBool() {
				return crdt.String(t), nil
			}
			return crdt.String(f), nil
		},
	}
}

// layoutConversion maps system text in a Go time layout to times. It
// accepts only text that the layout renders back unchanged from the time in
// UTC, and only times the layout renders without loss.
func layoutConversion(name, layout string) (*conversion, error) {
	if layout == "" {
		return nil, errors.Newf("%s: want time:<Go layout>, time:unix or time:unixms", name)
	}
	probe := time.Date(2001, 2, 3, 0, 0, 0, 0, time.UTC)
	if got, err := time.Parse(layout, probe.Format(layout)); err != nil || !got.Equal(probe) {
		return nil, errors.Newf("%s: the layout does not render a date (write it with Go's reference time, Mon Jan 2 15:04:05 MST 2006)", name)
	}
	return &conversion{
		name: name, system: crdt.KindString, collection: crdt.KindTime,
		forward: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindString {
				return crdt.Value{}, errors.Newf("want text, got %s %s", v.Kind(), v)
			}
			s := v.AsString()
			t, err := time.Parse(layout, s)
			if err != nil {
				return crdt.Value{}, errors.Newf("%q is not a time in layout %q", s, layout)
			}
			if t.UTC().Format(layout) != s {
				return crdt.Value{}, errors.Newf("%q is not in the canonical form of layout %q (in UTC: %q)", s, layout, t.UTC().Format(layout))
			}
			return crdt.Time(t), nil
		},
		back: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindTime {
				return crdt.Value{}, errors.Newf("want time, got %s %s", v.Kind(), v)
			}
			t := v.AsTime()
			s := t.Format(layout)
			if got, err := time.Parse(layout, s); err != nil || !got.Equal(t) {
				return crdt.Value{}, errors.Newf("time %s does not fit layout %q", v, layout)
			}
			return crdt.String(s), nil
		},
	}, nil
}

// epochConversion maps integer counts of unit since the Unix epoch to
// times; a time that is not a whole number of units is refused.
func epochConversion(name string, unit time.Duration) *conversion {
	per := int64(time.Second / unit)
	return &conversion{
		name: name, system: crdt.KindInt, collection: crdt.KindTime,
		forward: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindInt {
				return crdt.Value{}, errors.Newf("want int, got %s %s", v.Kind(), v)
			}
			n := v.AsInt()
			sec, rem := n/per, n%per
			if rem < 0 {
				sec, rem = sec-1, rem+per
			}
			return crdt.TimeUnix(sec, rem*int64(unit)), nil
		},
		back: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindTime {
				return crdt.Value{}, errors.Newf("want time, got %s %s", v.Kind(), v)
			}
			t := v.AsTime()
			sec, nsec := t.Unix(), int64(t.Nanosecond())
			if nsec%int64(unit) != 0 {
				return crdt.Value{}, errors.Newf("time %s is not a whole number of %s", v, unit)
			}
			if sec > math.MaxInt64/per || sec < math.MinInt64/per {
				return crdt.Value{}, errors.Newf("time %s is out of range for %s", v, name)
			}
			return crdt.Int(sec*per + nsec/int64(unit)), nil
		},
	}
}

// decimalConversion maps system integers scaled by 10^digits to decimal
// text with exactly digits digits after the point ("12.34" for 1234 with 2
// digits; no point when digits is 0), a '-' for negatives, and no leading
// zeros in the integer part: the only form it accepts back.
func decimalConversion(name string, digits int) *conversion {
	return &conversion{
		name: name, system: crdt.KindInt, collection: crdt.KindString,
		forward: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindInt {
				return crdt.Value{}, errors.Newf("want int, got %s %s", v.Kind(), v)
			}
			return crdt.String(formatDecimal(v.AsInt(), digits)), nil
		},
		back: func(v crdt.Value) (crdt.Value, error) {
			if v.Kind() != crdt.KindString {
				return crdt.Value{}, errors.Newf("want text, got %s %s", v.Kind(), v)
			}
			i, ok := parseDecimal(v.AsString(), digits)
			if !ok {
				return crdt.Value{}, errors.Newf("%q is not a decimal with %d digits after the point in canonical form (like %q)",
					v.AsString(), digits, formatDecimal(-1234, digits))
			}
			return crdt.Int(i), nil
		},
	}
}

func formatDecimal(i int64, digits int) string {
	u := uint64(i)
	if i < 0 {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if len(s) <= digits {
		s = strings.Repeat("0", digits+1-len(s)) + s
	}
	if digits > 0 {
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if i < 0 {
		s = "-" + s
	}
	return s
}

func parseDecimal(s string, digits int) (int64, bool) {
	neg := strings.HasPrefix(s, "-")
	body := strings.TrimPrefix(s, "-")
	whole, frac := body, ""
	if digits > 0 {
		var ok bool
		if whole, frac, ok = strings.Cut(body, "."); !ok || len(frac) != digits {
			return 0, false
		}
	}
	if whole == "" || (len(whole) > 1 && whole[0] == '0') {
		return 0, false
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	u, err := strconv.ParseUint(whole+frac, 10, 64)
	if err != nil {
		return 0, false
	}
	switch {
	case neg && u == 0:
		return 0, false
	case neg && u <= 1<<63:
		return int64(-u), true
	case !neg && u <= math.MaxInt64:
		return int64(u), true
	}
	return 0, false
}
