package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

// conflictsCmd lists the conflicts a sidecar logged (GET /v1/conflicts).
func conflictsCmd() *cobra.Command {
	var (
		collection, key, field, since, until, after string
		limit                                       int
		asJSON                                      bool
	)
	cmd := &cobra.Command{
		Use:     "conflicts [--collection C [--key K]] [--field F] [--since T] [--until T]",
		Short:   "List the conflicts a sidecar logged, with both values",
		GroupID: "client",
		Long: `List the conflicts this sidecar logged, oldest first: merges that chose between
two writes to one field where the winner's writer had not seen the loser (an
update against a concurrent delete too), with the rule that decided, both
values, their writers and when. Causal overwrites are not conflicts. Each
sidecar keeps its own log and numbers its entries itself; conflicts.keep and
conflicts.max_age bound it. See docs/api.md, Conflicts.

` + keysHelp,
		Example: `  lattice conflicts
  lattice conflicts --collection customers --key 42 --field phone
  lattice conflicts --since 2026-12-01T00:00:00Z --json`,
		Args: argsBetween(0, 0),
	}
	o := addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&collection, "collection", "", "only this `COLLECTION`")
	f.StringVar(&key, "key", "", "only this `KEY` (needs --collection)")
	f.StringVar(&field, "field", "", "only this `FIELD`")
	f.StringVar(&since, "since", "", "only conflicts logged at or after `TIME` (RFC 3339)")
	f.StringVar(&until, "until", "", "only conflicts logged at or before `TIME` (RFC 3339)")
	f.IntVar(&limit, "limit", 100, "at most `N` conflicts")
	f.StringVar(&after, "after", "", "start after conflict `ID` (the cursor a previous page printed)")
	f.BoolVar(&asJSON, "json", false, "print the API's JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		q := url.Values{"limit": {strconv.Itoa(limit)}}
		for k, v := range map[string]string{"collection": collection, "key": key, "field": field, "since": since, "until": until, "after": after} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var raw json.RawMessage
		if err := c.Do(cmd.Context(), "GET", "/v1/conflicts?"+q.Encode(), nil, &raw); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			return printJSON(out, raw)
		}
		var page sidecar.ConflictPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return errors.Wrap(err, "decode conflicts")
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tLOGGED\tRECORD\tFIELD\tRULE\tWINNER\tLOSER\tRESOLVED")
		for _, cf := range page.Conflicts {
			resolved := "-"
			if r := cf.Resolved; r != nil {
				resolved = fmt.Sprintf("%s by %s at %s", string(r.Value), r.By, r.At.Format("2006-01-02T15:04:05Z"))
			}
			field := cf.Field
			if field == "" {
				field = "(record)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", cf.ID, cf.At.Format("2006-01-02T15:04:05Z"),
				cf.Collection, cf.Key, field, cf.Rule, sideText(cf.Winner), sideText(cf.Loser), resolved)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if page.Next != "" {
			fmt.Fprintf(out, "more: --after %s\n", page.Next)
		}
		return nil
	}
	return cmd
}

// sideText renders one side of a conflict: its value (or delete), its
// writer and when.
func sideText(w sidecar.ConflictWriteJSON) string {
	what := "delete"
	if !w.Delete && w.Value != nil {
		what = string(w.Value)
	}
	who := w.Node
	if who == "" {
		who = w.Replica
	}
	if w.Source != "" && w.Source != who {
		who += " as " + w.Source
	}
	return what + " (" + who + ", " + w.Time.Format("15:04:05.000") + ")"
}

// resolveCmd re-asserts a value for a field that lost a conflict (POST
// /v1/conflicts/{id}/resolve).
func resolveCmd() *cobra.Command {
	var (
		value string
		loser uint64
	)
	cmd := &cobra.Command{
		Use:     "resolve COLLECTION KEY FIELD (--value V | --loser ID)",
		Short:   "Re-assert a value that lost a conflict, as a write that wins",
		GroupID: "client",
		Long: `Override a conflict's outcome: write a value of the field as a new write,
stamped now, that wins on every replica (lww; under prefer it is written as
the field's most trusted source; under max or min a value that cannot win is
refused). --loser ID re-asserts the losing value of conflict ID (as lattice
conflicts lists it on this sidecar); --value V writes V (JSON, or a string)
and resolves the field's newest open conflict. The write replicates like any
other; the conflict is marked resolved, by this sidecar and when, in this
sidecar's log only.

` + valuesHelp,
		Example: `  lattice resolve customers 42 phone --loser 7
  lattice resolve customers 42 phone --value '"+1 555 0100"'`,
		Args: argsBetween(3, 3),
	}
	o := addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&value, "value", "", "the `VALUE` to write (JSON, or a string)")
	f.Uint64Var(&loser, "loser", 0, "re-assert the losing value of conflict `ID`")
	cmd.MarkFlagsMutuallyExclusive("value", "loser")
	cmd.MarkFlagsOneRequired("value", "loser")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		collection, key, field := args[0], args[1], args[2]
		// The field's conflicts, oldest first.
		var all []sidecar.ConflictJSON
		q := url.Values{"collection": {collection}, "key": {key}, "field": {field}, "limit": {"1000"}}
		for {
			var page sidecar.ConflictPage
			if err := c.Do(ctx, "GET", "/v1/conflicts?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			all = append(all, page.Conflicts...)
			if page.Next == "" {
				break
			}
			q.Set("after", page.Next)
		}
		var id uint64
		var body any
		if loser != 0 {
			for _, cf := range all {
				if cf.ID == loser {
					id = cf.ID
				}
			}
			if id == 0 {
				return errors.WithHint(errors.Newf("no conflict %d on %s/%s field %s", loser, collection, key, field),
					"lattice conflicts --collection C --key K --field F lists them")
			}
		} else {
			for _, cf := range all {
				if cf.Resolved == nil {
					id = cf.ID
				}
			}
			if id == 0 {
				return errors.WithHint(errors.Newf("no open conflict on %s/%s field %s", collection, key, field),
					"to write a value without a conflict, use lattice patch")
			}
			var v any
			if err := json.Unmarshal([]byte(value), &v); err != nil {
				v = value
			}
			body = map[string]any{"value": v}
		}
		var out sidecar.ConflictJSON
		if err := c.Do(ctx, "POST", "/v1/conflicts/"+strconv.FormatUint(id, 10)+"/resolve", body, &out); err != nil {
			return err
		}
		if out.Resolved == nil {
			return errors.AssertionFailedf("conflict %d not marked resolved", id)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "conflict %d resolved: %s.%s = %s (by %s, stamp %s)\n",
			id, collection, field, string(out.Resolved.Value), out.Resolved.By, out.Resolved.Stamp)
		return err
	}
	return cmd
}
