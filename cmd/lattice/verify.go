package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

// driftError is the exit status 1 of a verify that left drift.
type driftError struct{ n int }

func (e driftError) Error() string {
	return fmt.Sprintf("%d records differ between the system and the merged state", e.n)
}

func (driftError) ExitCode() int { return 1 }

// repairWait bounds how long verify --repair waits for its repair to land.
const repairWait = 30 * time.Second

func verifyCmd() *cobra.Command {
	var repair, asJSON bool
	cmd := &cobra.Command{
		Use:     "verify [--repair] [--json]",
		Short:   "Compare a sidecar's system with the merged state; exit 1 on drift",
		GroupID: "client",
		Long: `Run one verification pass on a running sidecar: its system's rows are compared,
key range by key range, with the merged state's visible rows. Prints each
record that differs (collection, key, kind, and per field the system's value
and the merged value) and exits 1 when drift remains, 0 when none.
--repair writes the merged state over the drift, waits for it to land and
verifies again. See docs/verify.md.`,
		Args: argsBetween(0, 0),
	}
	o := addClientFlags(cmd)
	cmd.Flags().BoolVar(&repair, "repair", false, "write the merged state over the drift found, then verify again")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON (the API's POST /v1/verify)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		return runVerify(cmd.Context(), c, repair, asJSON, cmd.OutOrStdout())
	}
	return cmd
}

func runVerify(ctx context.Context, c *sidecar.Client, repair, asJSON bool, stdout io.Writer) error {
	mode := sidecar.RepairReport
	if repair {
		mode = sidecar.RepairApply
	}
	rep, err := c.Verify(ctx, mode)
	if err != nil {
		return err
	}
	if err := printReport(stdout, rep, asJSON); err != nil {
		return err
	}
	if repair && rep.DriftRecords > 0 {
		// The repair goes through the apply queue: verify again until it
		// has landed (a pass leaves queued records out) or time is up.
		deadline := time.Now().Add(repairWait)
		for {
			if !sleep(ctx, 200*time.Millisecond) {
				return ctx.Err()
			}
			if rep, err = c.Verify(ctx, sidecar.RepairReport); err != nil {
				return err
			}
			if rep.DriftRecords == 0 && !pending(ctx, c) || time.Now().After(deadline) {
				break
			}
		}
		fmt.Fprintln(stdout, "after repair:")
		if err := printReport(stdout, rep, asJSON); err != nil {
			return err
		}
	}
	if rep.DriftRecords > 0 {
		return driftError{rep.DriftRecords}
	}
	return nil
}

// pending reports whether the agent still has records to apply.
func pending(ctx context.Context, c *sidecar.Client) bool {
	var s sidecar.Status
	if err := c.Do(ctx, "GET", "/v1/status", nil, &s); err != nil {
		return true
	}
	return s.Pending > 0
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func printReport(w io.Writer, rep *sidecar.VerifyReport, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return errors.Wrap(err, "encode report")
		}
		return printJSON(w, b)
	}
	fmt.Fprintf(w, "verified %s: %d rows in %d ranges (%d differed) in %.2fs; system digest %s\n",
		rep.Node, rep.Rows, rep.Ranges, rep.RangesDiffer, rep.Seconds, rep.SystemDigest)
	if rep.DriftRecords == 0 {
		fmt.Fprintln(w, "no drift: the system equals the merged state")
		return nil
	}
	fmt.Fprintf(w, "drift: %d records", rep.DriftRecords)
	if rep.Repaired > 0 {
		fmt.Fprintf(w, " (%d repaired by %s)", rep.Repaired, rep.Repair)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  collection\tkey\tkind\tfield\tsystem\tmerged")
	for _, d := range rep.Drift {
		if len(d.Fields) == 0 {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\t\t\n", d.Collection, d.Key, d.Kind)
		}
		for _, f := range d.Fields {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", d.Collection, d.Key, d.Kind, f.Field, clipValue(f.System), clipValue(f.Merged))
		}
	}
	if len(rep.Drift) < rep.DriftRecords {
		fmt.Fprintf(tw, "  ... and %d more\n", rep.DriftRecords-len(rep.Drift))
	}
	return tw.Flush()
}

func clipValue(v json.RawMessage) string {
	s := strings.Join(strings.Fields(string(v)), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
