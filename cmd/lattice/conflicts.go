package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"text/tabwriter"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// runConflicts lists the conflicts a sidecar logged (GET /v1/conflicts).
func runConflicts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("conflicts", "conflicts [--collection C [--key K]] [--field F] [--since T] [--until T] [--limit N] [--after ID] [--json]", stderr)
	client := clientFlags(fs)
	collection := fs.String("collection", "", "only this collection")
	key := fs.String("key", "", "only this key (needs --collection)")
	field := fs.String("field", "", "only this field")
	since := fs.String("since", "", "only conflicts logged at or after this time (RFC 3339)")
	until := fs.String("until", "", "only conflicts logged at or before this time (RFC 3339)")
	limit := fs.Int("limit", 100, "at most this many conflicts")
	after := fs.String("after", "", "start after this conflict ID (the cursor a previous page printed)")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	c, err := client(args, 0, 0)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"collection": *collection, "key": *key, "field": *field, "since": *since, "until": *until, "after": *after} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", "/v1/conflicts?"+q.Encode(), nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var page sidecar.ConflictPage
	if err := json.Unmarshal(raw, &page); err != nil {
		return errors.Wrap(err, "decode conflicts")
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
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
		fmt.Fprintf(stdout, "more: --after %s\n", page.Next)
	}
	return nil
}

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

// runResolve re-asserts a value for a field that lost a conflict
// (POST /v1/conflicts/{id}/resolve).
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("resolve", "resolve COLLECTION KEY FIELD (--value V | --loser CONFLICT_ID)", stderr)
	client := clientFlags(fs)
	value := fs.String("value", "", "the value to write (JSON, or a string); resolves the newest open conflict of the field")
	loser := fs.Uint64("loser", 0, "re-assert the losing value of this conflict")
	c, err := client(args, 3, 3)
	if err != nil {
		return err
	}
	valueSet := false
	fs.Visit(func(f *flag.Flag) { valueSet = valueSet || f.Name == "value" })
	if valueSet == (*loser != 0) {
		return errors.WithHint(errors.New("resolve needs one of --value and --loser"),
			"lattice conflicts --collection C --key K --field F lists the field's conflicts and their IDs")
	}
	collection, key, field := fs.Arg(0), fs.Arg(1), fs.Arg(2)
	// The conflicts of the field, oldest first.
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
	if *loser != 0 {
		for _, cf := range all {
			if cf.ID == *loser {
				id = cf.ID
			}
		}
		if id == 0 {
			return errors.WithHint(errors.Newf("no conflict %d on %s/%s field %s", *loser, collection, key, field),
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
		if err := json.Unmarshal([]byte(*value), &v); err != nil {
			v = *value
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
	fmt.Fprintf(stdout, "conflict %d resolved: %s.%s = %s (by %s, stamp %s)\n", id, collection, field, string(out.Resolved.Value), out.Resolved.By, out.Resolved.Stamp)
	return nil
}
