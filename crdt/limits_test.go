package crdt_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
	"pgregory.net/rapid"
)

// tb is what these helpers need of testing.TB and rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

var limitsColl = crdt.MustCollection("c", []string{"id"}, map[string]crdt.Policy{"s": {Kind: crdt.ORSet}})

func origin(wall int64) crdt.Origin {
	return crdt.Origin{Stamp: crdt.Stamp{TS: crdt.Timestamp{Wall: wall}, Replica: 7}}
}

// buildRecord writes row, then adds adds to the OR-set field s.
func buildRecord(t tb, row crdt.Row, adds []crdt.Value) *crdt.Record {
	t.Helper()
	r, err := crdt.Diff(limitsColl, nil, row, origin(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(adds) > 0 {
		d, err := crdt.SetOps(limitsColl, r, "s", adds, nil, origin(2))
		if err != nil {
			t.Fatal(err)
		}
		r = crdt.Join(limitsColl, r, d)
	}
	return r
}

// limitName is the name of the limit err reports, or "" when it reports none.
func limitName(err error) string {
	if le, ok := crdt.LimitOf(err); ok {
		return le.Limit
	}
	return ""
}

// checkAgree checks that the encoder and the decoder take the same decision
// on r under lim, for the same reason.
func checkAgree(t tb, r *crdt.Record, lim crdt.Limits) error {
	t.Helper()
	_, encErr := crdt.EncodeRecord(nil, r, lim)
	got, decErr := crdt.DecodeRecord(crdt.AppendRecord(nil, r), lim)
	switch {
	case encErr == nil && decErr == nil:
		if !crdt.EqualRecords(got, r) {
			t.Fatalf("decoded %s, want %s", got, r)
		}
	case encErr == nil || decErr == nil:
		t.Fatalf("encoder says %v, decoder says %v", encErr, decErr)
	default:
		if !crdt.IsTooLarge(encErr) || !crdt.IsTooLarge(decErr) || !crdt.IsDecodeError(decErr) {
			t.Fatalf("errors without identity: encoder %v, decoder %v", encErr, decErr)
		}
		if e, d := limitName(encErr), limitName(decErr); e == "" || e != d {
			t.Fatalf("encoder names limit %q (%v), decoder %q (%v)", e, encErr, d, decErr)
		}
	}
	return encErr
}

func TestLimitsEncoderAndDecoderAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := crdt.DefaultLimits()
		lim.MaxFields = rapid.IntRange(1, 6).Draw(t, "fields")
		lim.MaxElems = rapid.IntRange(1, 6).Draw(t, "elems")
		lim.MaxValueBytes = rapid.IntRange(1, 24).Draw(t, "value bytes")
		lim.MaxRecordBytes = rapid.IntRange(20, 400).Draw(t, "record bytes")
		lim.MaxListLen = rapid.IntRange(1, 4).Draw(t, "list len")
		row := crdt.Row{}
		for i := range rapid.IntRange(0, 8).Draw(t, "n") {
			name := fmt.Sprintf("f%d", i)
			if rapid.Bool().Draw(t, name+" list") {
				var l []crdt.Value
				for j := range rapid.IntRange(0, 5).Draw(t, name+" len") {
					l = append(l, crdt.String(strings.Repeat("x", j*3)))
				}
				v, err := crdt.List(l...)
				if err != nil {
					t.Fatal(err)
				}
				row[name] = v
				continue
			}
			row[name] = crdt.String(strings.Repeat("v", rapid.IntRange(0, 30).Draw(t, name)))
		}
		var adds []crdt.Value
		for i := range rapid.IntRange(0, 8).Draw(t, "adds") {
			adds = append(adds, crdt.String(strings.Repeat("e", rapid.IntRange(0, 30).Draw(t, fmt.Sprint("add", i)))))
		}
		checkAgree(t, buildRecord(t, row, adds), lim)
	})
}

// TestLargestRecordDecodes builds records at every record limit of
// DefaultLimits: the encoder accepts them and they decode; one more of
// anything is refused by both, naming the limit.
func TestLargestRecordDecodes(t *testing.T) {
	lim := crdt.DefaultLimits()
	fields := func(n int) crdt.Row {
		row := crdt.Row{}
		for i := range n {
			row[fmt.Sprintf("f%04d", i)] = crdt.Int(int64(i))
		}
		return row
	}
	elems := func(n int) []crdt.Value {
		vs := make([]crdt.Value, n)
		for i := range vs {
			vs[i] = crdt.Int(int64(i))
		}
		return vs
	}
	// The largest: every field, the largest set and the largest value,
	// padded with a second value to exactly MaxRecordBytes.
	row := fields(lim.MaxFields - 3) // with s, big and pad
	row["big"] = crdt.String(strings.Repeat("b", lim.MaxValueBytes))
	row["pad"] = crdt.String(strings.Repeat("p", 1<<17))
	r := buildRecord(t, row, elems(lim.MaxElems))
	if got := len(r.Fields); got != lim.MaxFields {
		t.Fatalf("record has %d fields, want %d", got, lim.MaxFields)
	}
	short := lim.MaxRecordBytes - len(crdt.AppendRecord(nil, r))
	if short < 0 {
		t.Fatalf("largest record is %d bytes over", -short)
	}
	row["pad"] = crdt.String(strings.Repeat("p", 1<<17+short))
	largest := buildRecord(t, row, elems(lim.MaxElems))
	if n := len(crdt.AppendRecord(nil, largest)); n != lim.MaxRecordBytes {
		t.Fatalf("largest record is %d bytes, want %d", n, lim.MaxRecordBytes)
	}
	if err := checkAgree(t, largest, lim); err != nil {
		t.Fatalf("largest record refused: %v", err)
	}

	over := map[string]*crdt.Record{}
	row["pad"] = crdt.String(strings.Repeat("p", 1<<17+short+1))
	over[crdt.LimitRecordBytes] = buildRecord(t, row, elems(lim.MaxElems))
	over[crdt.LimitFields] = buildRecord(t, fields(lim.MaxFields+1), nil)
	over[crdt.LimitElems] = buildRecord(t, crdt.Row{"a": crdt.Int(1)}, elems(lim.MaxElems+1))
	over[crdt.LimitValueBytes] = buildRecord(t, crdt.Row{"a": crdt.Bytes(make([]byte, lim.MaxValueBytes+1))}, nil)
	for limit, r := range over {
		t.Run(limit, func(t *testing.T) {
			err := checkAgree(t, r, lim)
			if got := limitName(err); got != limit {
				t.Fatalf("refused for %q (%v), want %q", got, err, limit)
			}
			if !strings.Contains(err.Error(), limit) {
				t.Fatalf("error %q does not name %s", err, limit)
			}
		})
	}
}

// FuzzDecodeRecordLimits checks the other direction on any input: a record
// the decoder accepts under small limits, the encoder accepts under them.
func FuzzDecodeRecordLimits(f *testing.F) {
	addWireSeeds(f)
	f.Add(crdt.AppendRecord(nil, buildRecord(f, crdt.Row{"a": crdt.String("abcdef"), "b": crdt.Int(1)},
		[]crdt.Value{crdt.Int(1), crdt.Int(2), crdt.Int(3)})))
	lim := crdt.DefaultLimits()
	lim.MaxFields, lim.MaxElems, lim.MaxValueBytes, lim.MaxRecordBytes = 2, 2, 4, 64
	lim.MaxWrites, lim.MaxEntries, lim.MaxListLen, lim.MaxDots = 2, 2, 2, 4
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := crdt.DecodeRecord(b, lim)
		if err != nil {
			if !crdt.IsDecodeError(err) {
				t.Fatalf("error without identity: %v", err)
			}
			if crdt.IsTooLarge(err) && limitName(err) == "" {
				t.Fatalf("ErrTooLarge without a limit: %v", err)
			}
			return
		}
		enc := crdt.AppendRecord(nil, r)
		if string(enc) != string(b) {
			// The decoder repaired the input (raised Written, added live
			// dots to the context): its size is not the input's.
			return
		}
		if _, err := crdt.EncodeRecord(nil, r, lim); err != nil {
			t.Fatalf("decoder accepts %s, encoder refuses it: %v", r, err)
		}
	})
}
