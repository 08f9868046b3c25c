package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

// parkedCmd lists, retries and skips the records this node's system
// refused.
func parkedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "parked",
		Short:   "List, retry or skip the records this node's system refused",
		GroupID: "client",
		Long: `A record the system refuses (a constraint, a trigger, a type it cannot store)
is parked with the system's error, and every other record keeps flowing. List
the parked records, fix the cause in the system, then retry them; or skip one
to leave the system's row as it is.

Skip drops the parked entry and nothing else: the record's merged state stays
in this node's store and on every other node, other systems keep it, and its
next change from any node queues it for this system again (docs/api.md).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			msg := "parked needs a subcommand: list, retry or skip"
			if len(args) > 0 {
				msg = fmt.Sprintf("unknown parked subcommand %q: use list, retry or skip", args[0])
			}
			return &usageError{msg: msg, usage: cmd.UsageString()}
		},
	}
	cmd.AddCommand(parkedListCmd(), parkedRetryCmd(), parkedSkipCmd())
	return cmd
}

func parkedListCmd() *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--limit N] [--json]",
		Short: "List the parked records with the system's error",
		Args:  argsBetween(0, 0),
	}
	o := addClientFlags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "at most `N` records (1 to 1000)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the API's /v1/parked answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.Do(cmd.Context(), "GET", "/v1/parked?"+url.Values{"limit": {strconv.Itoa(limit)}}.Encode(), nil, &raw); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			return printJSON(out, raw)
		}
		var l sidecar.ParkedList
		if err := json.Unmarshal(raw, &l); err != nil {
			return errors.Wrap(err, "decode parked list")
		}
		if l.Total == 0 {
			_, err := fmt.Fprintln(out, "no parked records")
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "collection\tkey\tseq\tparked\terror")
		for _, p := range l.Parked {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\t%s\n", p.Collection, p.Key, p.Seq, humanDuration(time.Since(p.At)), oneLine(p.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(l.Parked) < l.Total {
			_, err = fmt.Fprintf(out, "(%d of %d shown; --limit shows more)\n", len(l.Parked), l.Total)
		}
		return err
	}
	return cmd
}

// oneLine folds an error text onto one line for a table.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func parkedRetryCmd() *cobra.Command {
	var all bool
	var keyParts []string
	cmd := &cobra.Command{
		Use:   "retry COLLECTION KEY | --all",
		Short: "Queue parked records for apply again, after fixing the cause in the system",
		Long:  "Queue one parked record, or all with --all, for apply again.\n\n" + keysHelp,
		Example: `  lattice parked retry customers 42
  lattice parked retry --all`,
		Args: argsBetween(0, 2),
	}
	o := addClientFlags(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "retry every parked record")
	cmd.Flags().StringArrayVar(&keyParts, "key-part", nil, "one `VALUE` of the key, taken as it is (repeat for a composite key); then KEY is left out")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body := sidecar.ParkedTarget{All: all}
		switch {
		case all && (len(args) > 0 || len(keyParts) > 0):
			return &usageError{msg: "retry takes COLLECTION KEY or --all, not both", usage: cmd.UsageString()}
		case !all:
			key, rest, err := keyArg(keyParts, tail(args))
			if len(args) == 0 || err != nil || len(rest) > 0 {
				return &usageError{msg: "retry takes COLLECTION KEY, or --all", usage: cmd.UsageString()}
			}
			body.Collection, body.Key = args[0], key
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		var out struct {
			Requeued int `json:"requeued"`
		}
		if err := c.Do(cmd.Context(), "POST", "/v1/parked/retry", body, &out); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%d queued for apply again\n", out.Requeued)
		return err
	}
	return cmd
}

func parkedSkipCmd() *cobra.Command {
	var seq uint64
	var keyParts []string
	cmd := &cobra.Command{
		Use:   "skip [--seq N] COLLECTION KEY",
		Short: "Drop a parked record without writing it into this system",
		Long: `Drop a parked record without writing it into this node's system. The system
keeps the row it has; the record's merged state stays in the cluster and is
queued for this system again with the record's next change. Nothing stored is
lost. With --seq, the record is skipped only while it is parked as that seq
(from 'lattice parked list'), so that a newer failure is not skipped unread.

` + keysHelp,
		Example: `  lattice parked skip customers 42
  lattice parked skip --seq 17 customers 42`,
		Args: argsBetween(1, 2),
	}
	o := addClientFlags(cmd)
	cmd.Flags().Uint64Var(&seq, "seq", 0, "skip only while the record is parked as `N`")
	cmd.Flags().StringArrayVar(&keyParts, "key-part", nil, "one `VALUE` of the key, taken as it is (repeat for a composite key); then KEY is left out")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, rest, err := keyArg(keyParts, args[1:])
		if err != nil || len(rest) > 0 {
			return &usageError{msg: "skip takes COLLECTION KEY, or COLLECTION with --key-part", usage: cmd.UsageString()}
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		body := sidecar.ParkedTarget{Collection: args[0], Key: key, Seq: seq}
		if err := c.Do(cmd.Context(), "POST", "/v1/parked/skip", body, nil); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "skipped %s/%s: this system keeps its current row; the merged state stays in the cluster and is applied again with the record's next change\n",
			body.Collection, body.Key)
		return err
	}
	return cmd
}

// tail returns args without its first element.
func tail(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args[1:]
}
