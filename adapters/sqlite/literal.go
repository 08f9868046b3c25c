package sqlite

import (
	"encoding/hex"
	"math"
	"strconv"
	"strings"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// The change log stores a row as its column values rendered by SQLite's
// quote() and joined by commas, in the order of the table's layout:
//
//	NULL              null
//	-12               integer
//	1.5, 9.0e+999     real (quote renders ±Inf as ±9.0e+999)
//	'it''s'           text, quotes doubled
//	X'00FF'           blob
//	TX'610062'        text holding a NUL byte, as the hex of its UTF-8
//
// quote() stops text at a NUL byte, so the triggers write such text in the
// last form. Every form is self-delimiting, so commas inside text need no
// escaping. quote() renders reals with enough digits to round-trip.

// rowExpr returns the SQL expression that renders the given columns of a
// row reference (NEW, OLD or a table name) as a log value list.
func rowExpr(ref string, cols []*column) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString("||','||")
		}
		v := ref + "." + quoteIdent(c.Name)
		switch c.Kind {
		case crdt.KindInt, crdt.KindFloat, crdt.KindBool:
			// Numeric columns hold text only if a user stored some; even then
			// it is text without NUL in any sane database, and quote() is
			// all the trigger spends on it.
			b.WriteString("quote(" + v + ")")
		default:
			b.WriteString("CASE WHEN typeof(" + v + ")='text' AND instr(" + v + ",char(0))>0 THEN 'T'||quote(CAST(" + v + " AS BLOB)) ELSE quote(" + v + ") END")
		}
	}
	return b.String()
}

// errLiteral marks a log value list that does not parse: a corrupt or
// hand-edited change log.
var errLiteral = errors.New("sqlite: malformed change log values")

// parseLiterals parses a log value list of exactly n values into nil,
// int64, float64, string or []byte values.
func parseLiterals(s string, n int) ([]any, error) {
	out := make([]any, 0, n)
	i := 0
	for {
		if len(out) == n {
			return nil, errors.Mark(errors.Newf("more than %d values", n), errLiteral)
		}
		v, next, err := parseLiteral(s, i)
		if err != nil {
			return nil, errors.Mark(errors.Wrapf(err, "value %d", len(out)), errLiteral)
		}
		out = append(out, v)
		i = next
		if i == len(s) {
			break
		}
		if s[i] != ',' {
			return nil, errors.Mark(errors.Newf("want ',' after value %d at offset %d, got %q", len(out)-1, i, s[i]), errLiteral)
		}
		i++
	}
	if len(out) != n {
		return nil, errors.Mark(errors.Newf("%d values, want %d", len(out), n), errLiteral)
	}
	return out, nil
}

// parseLiteral parses one value starting at s[i] and returns the offset just
// after it.
func parseLiteral(s string, i int) (any, int, error) {
	if i >= len(s) {
		return nil, i, errors.New("missing value")
	}
	switch c := s[i]; {
	case c == '\'':
		return parseText(s, i)
	case c == 'X' || c == 'x':
		return parseBlob(s, i+1)
	case c == 'T':
		b, next, err := parseBlob(s, i+2)
		if err != nil || i+1 >= len(s) || s[i+1] != 'X' {
			return nil, i, errors.Newf("bad text-as-hex value at offset %d", i)
		}
		return string(b.([]byte)), next, nil
	case c == 'N':
		if strings.HasPrefix(s[i:], "NULL") {
			return nil, i + 4, nil
		}
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		return parseNumber(s, i)
	}
	return nil, i, errors.Newf("unexpected %q at offset %d", s[i], i)
}

func parseText(s string, i int) (any, int, error) {
	var b strings.Builder
	j := i + 1
	for {
		k := strings.IndexByte(s[j:], '\'')
		if k < 0 {
			return nil, i, errors.Newf("unterminated text at offset %d", i)
		}
		b.WriteString(s[j : j+k])
		j += k + 1
		if j < len(s) && s[j] == '\'' {
			b.WriteByte('\'')
			j++
			continue
		}
		return b.String(), j, nil
	}
}

// parseBlob parses '<hex>' at s[i].
func parseBlob(s string, i int) (any, int, error) {
	if i >= len(s) || s[i] != '\'' {
		return nil, i, errors.Newf("bad blob at offset %d", i)
	}
	k := strings.IndexByte(s[i+1:], '\'')
	if k < 0 {
		return nil, i, errors.Newf("unterminated blob at offset %d", i)
	}
	b, err := hex.DecodeString(s[i+1 : i+1+k])
	if err != nil {
		return nil, i, errors.Newf("bad blob hex at offset %d", i)
	}
	return b, i + k + 2, nil
}

func parseNumber(s string, i int) (any, int, error) {
	j := i
	isReal := false
	for j < len(s) && s[j] != ',' {
		switch s[j] {
		case '.', 'e', 'E':
			isReal = true
		}
		j++
	}
	text := s[i:j]
	if !isReal {
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, i, errors.Newf("bad integer %q", clip(text))
		}
		return n, j, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		// quote() renders infinities as ±9.0e+999, out of float64 range:
		// ParseFloat returns ±Inf with a range error, which is the value.
		var ne *strconv.NumError
		if !errors.As(err, &ne) || ne.Err != strconv.ErrRange || !math.IsInf(f, 0) {
			return nil, i, errors.Newf("bad real %q", clip(text))
		}
	}
	return f, j, nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
