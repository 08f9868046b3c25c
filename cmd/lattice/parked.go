package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

const parkedUsage = `parked list [--limit N] [--json]
       lattice parked retry COLLECTION KEY | --all
       lattice parked skip [--seq N] COLLECTION KEY`

// runParked lists, retries and skips the records this node's system refused.
func runParked(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "Usage: lattice %s\n", parkedUsage)
		return errors.WithHint(errors.New("parked needs a subcommand: list, retry or skip"), "see docs/api.md, Parked records")
	}
	switch args[0] {
	case "list":
		return runParkedList(ctx, args[1:], stdout, stderr)
	case "retry":
		return runParkedRetry(ctx, args[1:], stdout, stderr)
	case "skip":
		return runParkedSkip(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintf(stdout, "Usage: lattice %s\n", parkedUsage)
		return nil
	}
	return errors.WithHint(errors.Newf("unknown parked subcommand %q", args[0]), "use list, retry or skip")
}

func runParkedList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("parked list", "parked list [--limit N] [--json]", stderr)
	client := clientFlags(fs)
	limit := fs.Int("limit", 100, "at most this many records (1 to 1000)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	c, err := client(args, 0, 0)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", "/v1/parked?"+url.Values{"limit": {strconv.Itoa(*limit)}}.Encode(), nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var l sidecar.ParkedList
	if err := json.Unmarshal(raw, &l); err != nil {
		return errors.Wrap(err, "decode parked list")
	}
	if l.Total == 0 {
		fmt.Fprintln(stdout, "no parked records")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "collection\tkey\tseq\tparked\terror")
	for _, p := range l.Parked {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s ago\t%s\n", p.Collection, p.Key, p.Seq, time.Since(p.At).Round(time.Second), oneLine(p.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(l.Parked) < l.Total {
		fmt.Fprintf(stdout, "(%d of %d shown; --limit shows more)\n", len(l.Parked), l.Total)
	}
	return nil
}

// oneLine folds an error text onto one line for a table.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func runParkedRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("parked retry", "parked retry COLLECTION KEY | --all", stderr)
	client := clientFlags(fs)
	all := fs.Bool("all", false, "retry every parked record")
	c, err := client(args, 0, 2)
	if err != nil {
		return err
	}
	body := sidecar.ParkedTarget{All: *all}
	switch {
	case *all && fs.NArg() > 0:
		return errors.New("give COLLECTION KEY or --all, not both")
	case !*all && fs.NArg() != 2:
		fs.Usage()
		return errors.New("retry needs COLLECTION KEY, or --all")
	case !*all:
		body.Collection, body.Key = fs.Arg(0), fs.Arg(1)
	}
	var out struct {
		Requeued int `json:"requeued"`
	}
	if err := c.Do(ctx, "POST", "/v1/parked/retry", body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d queued for apply again\n", out.Requeued)
	return nil
}

func runParkedSkip(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("parked skip", "parked skip [--seq N] COLLECTION KEY", stderr)
	client := clientFlags(fs)
	seq := fs.Uint64("seq", 0, "skip only while the record is parked as this seq (from parked list)")
	c, err := client(args, 2, 2)
	if err != nil {
		return err
	}
	body := sidecar.ParkedTarget{Collection: fs.Arg(0), Key: fs.Arg(1), Seq: *seq}
	if err := c.Do(ctx, "POST", "/v1/parked/skip", body, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "skipped %s/%s: this system keeps its current row; the merged state stays in the cluster and is applied again with the record's next change\n",
		body.Collection, body.Key)
	return nil
}
