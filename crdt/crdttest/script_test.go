package crdttest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestScripts runs the named scenarios in testdata/scripts. Commands:
//
//	init replicas=N                  new simulation: lossless network, no faults
//	write r=I key=K [coll=C] [deleted]
//	  field=<json> ...               the row replica I observes (one field per line)
//	setops r=I key=K field=F [add=(<json>,...)] [remove=(<json>,...)]
//	delete r=I key=K [coll=C]
//	skew r=I ms=N                    set replica I's physical clock offset
//	tick ms=N                        let true time pass
//	flush r=I                        send replica I's outbox to every peer
//	deliver                          deliver the messages in flight
//	partition 0,1 2                  split the replicas into groups
//	heal | crash r=I | sync a=I b=J
//	view key=K [coll=C]              every replica's view, then the oracle's
//	meta r=I key=K field=F [coll=C]  the visible write of a field
//	converge                         heal, deliver, exchange, check; then view
//
// Stamps print as <ms since start>[+logical]@<replica>.
func TestScripts(t *testing.T) {
	datadriven.Walk(t, "testdata/scripts", func(t *testing.T, path string) {
		var s *Sim
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd != "init" && s == nil {
				td.Fatalf(t, "init first")
			}
			out, err := runCommand(t, &s, td)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

func intArg(t *testing.T, td *datadriven.TestData, key string) int {
	var v int
	td.ScanArgs(t, key, &v)
	return v
}

func strArg(td *datadriven.TestData, key, def string) string {
	if a, ok := td.Arg(key); ok && len(a.Vals) > 0 {
		return a.Vals[0]
	}
	return def
}

func jsonValue(t *testing.T, td *datadriven.TestData, raw string) crdt.Value {
	v, err := crdt.FromJSON(json.RawMessage(raw), crdt.KindNull, crdt.KindNull)
	if err != nil {
		td.Fatalf(t, "value %s: %v", raw, err)
	}
	return v
}

func valuesArg(t *testing.T, td *datadriven.TestData, key string) []crdt.Value {
	a, ok := td.Arg(key)
	if !ok {
		return nil
	}
	out := make([]crdt.Value, 0, len(a.Vals))
	for _, raw := range a.Vals {
		out = append(out, jsonValue(t, td, raw))
	}
	return out
}

func runCommand(t *testing.T, sp **Sim, td *datadriven.TestData) (string, error) {
	s := *sp
	coll := strArg(td, "coll", "items")
	key := func() crdt.Key { return crdt.IntKey(int64(intArg(t, td, "key"))) }
	deltaOut := func(d *crdt.Record, err error) (string, error) {
		if err != nil {
			return "", err
		}
		if d == nil {
			return "no change\n", nil
		}
		ops := s.History()
		return s.FormatOp(ops[len(ops)-1]) + "\n", nil
	}
	switch td.Cmd {
	case "init":
		n := intArg(t, td, "replicas")
		ids := make([]crdt.ReplicaID, n)
		for i := range ids {
			ids[i] = crdt.ReplicaID(i + 1)
		}
		ns, err := New(Config{Seed: 1, Replicas: n, ReplicaIDs: ids, StepTime: time.Millisecond})
		if err != nil {
			return "", err
		}
		*sp = ns
		return "ok\n", nil
	case "write":
		var row crdt.Row
		if !td.HasArg("deleted") {
			row = crdt.Row{}
			for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
				if line = strings.TrimSpace(line); line == "" {
					continue
				}
				f, raw, ok := strings.Cut(line, "=")
				if !ok {
					td.Fatalf(t, "want field=<json>, got %q", line)
				}
				row[f] = jsonValue(t, td, raw)
			}
		}
		return deltaOut(s.Write(intArg(t, td, "r"), coll, key(), row))
	case "setops":
		return deltaOut(s.SetOps(intArg(t, td, "r"), coll, key(), strArg(td, "field", ""), valuesArg(t, td, "add"), valuesArg(t, td, "remove")))
	case "delete":
		return deltaOut(s.Delete(intArg(t, td, "r"), coll, key()))
	case "skew":
		s.reps[intArg(t, td, "r")].skew = int64(intArg(t, td, "ms")) * int64(time.Millisecond)
		return "ok\n", nil
	case "tick":
		s.Tick(time.Duration(intArg(t, td, "ms")) * time.Millisecond)
		return "ok\n", nil
	case "flush":
		if err := s.Flush(intArg(t, td, "r")); err != nil {
			return "", err
		}
		return fmt.Sprintf("in flight: %d\n", s.net.InFlight()), nil
	case "deliver":
		before := s.net.Stats().Delivered
		if err := s.Deliver(); err != nil {
			return "", err
		}
		return fmt.Sprintf("delivered: %d\n", s.net.Stats().Delivered-before), nil
	case "partition":
		var groups [][]int
		for _, a := range td.CmdArgs {
			var g []int
			for _, f := range strings.Split(a.Key, ",") {
				i, err := strconv.Atoi(f)
				if err != nil {
					td.Fatalf(t, "bad group %q", a.Key)
				}
				g = append(g, i)
			}
			groups = append(groups, g)
		}
		s.Partition(groups...)
		return "ok\n", nil
	case "heal":
		s.Heal()
		return "ok\n", nil
	case "crash":
		s.Crash(intArg(t, td, "r"))
		return "ok\n", nil
	case "sync":
		before := s.res.Rejected
		if err := s.Sync(intArg(t, td, "a"), intArg(t, td, "b")); err != nil {
			return "", err
		}
		if n := s.res.Rejected - before; n > 0 {
			return fmt.Sprintf("refused: %d (clock offset)\n", n), nil
		}
		return "ok\n", nil
	case "view":
		return views(s, coll, key())
	case "meta":
		c, err := s.cfg.Schema.Collection(coll)
		if err != nil {
			return "", err
		}
		v, meta, ok := s.Record(intArg(t, td, "r"), coll, key()).Get(c, strArg(td, "field", ""))
		if !ok {
			return "no visible value\n", nil
		}
		out := fmt.Sprintf("%s written at %s", v, s.FormatStamp(meta.Stamp))
		if meta.Source != "" {
			out += " by " + meta.Source
		}
		if meta.Shadowed > 0 {
			out += fmt.Sprintf(" (%d shadowed)", meta.Shadowed)
		}
		return out + "\n", nil
	case "converge":
		if err := s.Converge(); err != nil {
			return "", err
		}
		out, err := views(s, coll, key())
		return "converged\n" + out, err
	}
	td.Fatalf(t, "unknown command %s", td.Cmd)
	return "", nil
}

func views(s *Sim, coll string, key crdt.Key) (string, error) {
	var b strings.Builder
	for i := range s.Replicas() {
		v, err := s.View(i, coll, key)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "r%d: %s\n", i, FormatRow(v))
	}
	o, err := s.Oracle(coll, key)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "oracle: %s\n", FormatRow(o))
	return b.String(), nil
}
