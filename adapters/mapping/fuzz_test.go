package mapping_test

import (
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// FuzzToCollection feeds rows of any values, of any kind, to the CRM
// mapping: translation never panics, and a row it accepts without the
// FullName column (the one lossy expression pair) translates back to
// itself.
func FuzzToCollection(f *testing.F) {
	f.Add("H", "Y", int64(-1205), "Ann Lee", "", uint8(0), true)
	f.Add("Active", "maybe", int64(0), "", "x", uint8(3), false)
	f.Add("", "", int64(-9223372036854775808), " ", "\xff", uint8(7), true)
	tm := compileYAML(f, crmYAML).Table("Account")
	f.Fuzz(func(t *testing.T, status, vip string, balance int64, full, extra string, kinds uint8, withFull bool) {
		// kinds picks, per column, a value of the expected kind or of another.
		pick := func(bit uint, want crdt.Value) crdt.Value {
			if kinds&(1<<bit) == 0 {
				return want
			}
			switch bit % 3 {
			case 0:
				return crdt.Int(balance)
			case 1:
				return crdt.Null()
			}
			return crdt.Time(time.Unix(balance%1e10, 0))
		}
		row := crdt.Row{
			"Email":   crdt.String(extra),
			"Status":  pick(0, crdt.String(status)),
			"Vip":     pick(1, crdt.String(vip)),
			"Balance": pick(2, crdt.Int(balance)),
			"Notes":   pick(3, crdt.String(extra)),
			"Owner":   crdt.String("ignored"),
		}
		if withFull {
			row["FullName"] = pick(4, crdt.String(full))
		}
		coll, err := tm.ToCollection(row)
		if err != nil {
			return
		}
		back, err := tm.ToSystem(coll)
		if err != nil {
			if !withFull {
				t.Fatalf("ToSystem(%v) of ToCollection(%v): %v", coll, row, err)
			}
			return
		}
		if withFull {
			return
		}
		delete(row, "Owner")
		row["FullName"] = crdt.Null()
		if len(back) != len(row) {
			t.Fatalf("%v -> %v -> %v", row, coll, back)
		}
		for k, v := range row {
			if !crdt.Equal(back[k], v) {
				t.Fatalf("%s: %v -> %v -> %v", k, v, coll, back[k])
			}
		}
	})
}
