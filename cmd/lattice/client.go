package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

// clientOpts are the flags every command that talks to an agent takes; the
// token comes from --token-file or LATTICE_TOKEN, never from an argument.
type clientOpts struct {
	api, tokenFile, ca string
}

func addClientFlags(cmd *cobra.Command) *clientOpts {
	o := &clientOpts{}
	f := cmd.Flags()
	f.StringVar(&o.api, "api", envOr("LATTICE_API", "127.0.0.1:7070"), "the agent's API: `ADDR` (host:port) or URL (env LATTICE_API)")
	f.StringVar(&o.tokenFile, "token-file", "", "`FILE` holding the API token, private to its owner (default: env LATTICE_TOKEN)")
	f.StringVar(&o.ca, "ca", "", "PEM `FILE` of the CA to trust for an https API")
	_ = cmd.MarkFlagFilename("token-file")
	_ = cmd.MarkFlagFilename("ca", "pem", "crt")
	return o
}

// client builds the client; a token that no agent would accept (too short,
// unsendable) is refused here, before it travels.
func (o *clientOpts) client() (*sidecar.Client, error) {
	t, source := os.Getenv("LATTICE_TOKEN"), "LATTICE_TOKEN"
	if o.tokenFile != "" {
		var err error
		if t, err = sidecar.ReadSecretFile(o.tokenFile, "--token-file"); err != nil {
			return nil, err
		}
		source = "--token-file " + o.tokenFile
	}
	if t != "" {
		if err := sidecar.CheckToken(t, source); err != nil {
			return nil, err
		}
	}
	return sidecar.NewClient(o.api, t, o.ca)
}

// keysHelp is how to write a key, for every command that takes one.
const keysHelp = `Keys: a record's key is the text of its key column, e.g. 42. A composite key
joins its columns' values with commas, in the order of the collection's key:
acme,7. A comma or backslash inside a value is escaped with a backslash:
'a\,b' is the one value "a,b" (quote it for the shell). Or give each value
with --key-part, which does the escaping: --key-part 'a,b' --key-part 7.`

// keyArg returns the key: KEY from args (then rest is what follows it), or
// the --key-part values joined.
func keyArg(parts, args []string) (key string, rest []string, err error) {
	if len(parts) > 0 {
		return sidecar.KeyText(parts...), args, nil
	}
	if len(args) == 0 {
		return "", nil, errors.New("missing KEY (or --key-part)")
	}
	return args[0], args[1:], nil
}

func statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "status [--json]",
		Short:   "Show a sidecar's status: members, lag, loops, queue, digest",
		GroupID: "client",
		Long: `Show a sidecar's status: this node, its members and their lag, the capture
and apply loops (failing ones with their error and since when), the apply
queue, parked records and the replica's digest. Durations carry their unit.
--json prints /v1/status as it is (see docs/api.md for its keys).`,
		Args: argsBetween(0, 0),
	}
	o := addClientFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (the API's /v1/status)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.Do(cmd.Context(), "GET", "/v1/status", nil, &raw); err != nil {
			return err
		}
		if asJSON {
			return printJSON(cmd.OutOrStdout(), raw)
		}
		var s sidecar.Status
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.Wrap(err, "decode status")
		}
		return printStatus(cmd.OutOrStdout(), &s)
	}
	return cmd
}

// printStatus prints s for people: one line per topic, members as a table.
// Ages are measured from the status's own time, not this machine's clock.
func printStatus(w io.Writer, s *sidecar.Status) error {
	now := s.Time
	if now.IsZero() {
		now = time.Now()
	}
	age := func(t time.Time) string { return humanDuration(now.Sub(t)) }
	fmt.Fprintf(w, "node      %s (replica %s, version %s)\n", s.Node, s.Replica, s.Version)
	fmt.Fprintf(w, "ready     %v", s.Ready)
	if len(s.Failing) > 0 {
		fmt.Fprintf(w, " (failing: %s)", strings.Join(s.Failing, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "digest    %s (%d records)\n", s.Digest, s.Records)
	if v := s.Verify; v != nil {
		fmt.Fprintf(w, "verify    %d drift records at %s (%d rows in %.1fs, repair %s); system digest %s (%d rows)\n",
			v.DriftRecords, v.At.Format(time.RFC3339), v.Rows, v.Seconds, v.Repair, v.SystemDigest, v.SystemRows)
	}
	fmt.Fprintf(w, "pending   %d to apply, %d parked\n", s.Pending, len(s.Parked))
	fmt.Fprintf(w, "adapter   %s", s.Adapter.Kind)
	if s.Adapter.Capture != nil && s.Adapter.Apply != nil {
		fmt.Fprintf(w, " (capture %s for %s, apply %s for %s)",
			s.Adapter.Capture.State, age(s.Adapter.Capture.Since), s.Adapter.Apply.State, age(s.Adapter.Apply.Since))
	}
	fmt.Fprintln(w)
	for _, l := range []struct {
		name string
		st   *sidecar.LoopStatus
	}{{"capture", s.Adapter.Capture}, {"apply", s.Adapter.Apply}} {
		if l.st != nil && l.st.Error != "" {
			fmt.Fprintf(w, "failing   %s for %s (since %s, %d retries): %s\n", l.name, age(l.st.FailingSince),
				l.st.FailingSince.UTC().Format(time.RFC3339), l.st.Retries, l.st.Error)
		}
	}
	g := s.Gossip
	fmt.Fprintf(w, "gossip    %d deltas sent, %d received, %d fragments merged, %d anti-entropy rounds (%d failed)",
		g.DeltasSent, g.DeltasReceived, g.FragmentsMerged, g.Syncs, g.SyncFailures)
	if g.RejectedPeers > 0 {
		fmt.Fprintf(w, ", %d peers rejected", g.RejectedPeers)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "members   %d\n", len(s.Members))
	if len(s.Members) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  name\treplica\tstate\tgossip\tapi\tlag\tlast contact\tqueued\tstream\tschema")
		for _, m := range s.Members {
			stream, schema, contact := "down", "same", "never"
			if m.Connected {
				stream = "up"
			}
			if len(m.SchemaMismatch) > 0 {
				schema = "differs: " + strings.Join(m.SchemaMismatch, ",")
			}
			if !m.LastContact.IsZero() {
				contact = age(m.LastContact) + " ago"
			}
			lag := humanDuration(time.Duration(m.LagMS * float64(time.Millisecond)))
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Replica, m.State, m.Addr, m.APIAddr,
				lag, contact, m.QueuedDeltas, stream, schema)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, p := range s.Parked {
		fmt.Fprintf(w, "parked    %s/%s for %s (since %s): %s\n", p.Collection, p.Key, age(p.At), p.At.UTC().Format(time.RFC3339), p.Reason)
	}
	return nil
}

// humanDuration prints d with a unit and about three significant digits:
// 850µs, 12.3ms, 4.56s, 3m12s, 2h5m.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	// 3m0s -> 3m, 2h0m0s -> 2h.
	s := d.String()
	for _, zero := range []string{"m0s", "h0m"} {
		if strings.HasSuffix(s, zero) {
			s = s[:len(s)-2]
		}
	}
	return s
}

func printJSON(w io.Writer, raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func getCmd() *cobra.Command {
	var (
		after    string
		limit    int
		keyParts []string
	)
	cmd := &cobra.Command{
		Use:     "get COLLECTION [KEY]",
		Short:   "Show a record, or list a collection",
		GroupID: "client",
		Long: `Show a record with each field's value and who wrote it when, under which
rule; without KEY, list the collection in key order, a page at a time.

` + keysHelp,
		Example: `  lattice get customers 42
  lattice get orders 'acme,7'               # composite key (tenant, id)
  lattice get kv 'a\,b'                     # the one-column key "a,b"
  lattice get kv --key-part 'a,b'           # the same
  lattice get customers --after 42 --limit 10`,
		Args: argsBetween(1, 2),
	}
	o := addClientFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&after, "after", "", "list: start after this `KEY`")
	f.IntVar(&limit, "limit", 100, "list: at most `N` records")
	f.StringArrayVar(&keyParts, "key-part", nil, "one `VALUE` of the key, taken as it is (repeat for a composite key, in key order)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		ctx := cmd.Context()
		if len(args) == 1 && len(keyParts) == 0 {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if after != "" {
				q.Set("after", after)
			}
			err = c.Do(ctx, "GET", "/v1/records/"+url.PathEscape(args[0])+"?"+q.Encode(), nil, &raw)
		} else {
			key, rest, kerr := keyArg(keyParts, args[1:])
			if kerr != nil {
				return kerr
			}
			if len(rest) > 0 {
				return errors.Newf("unexpected arguments %q: the key is given by --key-part", rest)
			}
			err = c.Do(ctx, "GET", sidecar.RecordPath(args[0], key), nil, &raw)
		}
		if err != nil {
			return err
		}
		return printJSON(cmd.OutOrStdout(), raw)
	}
	return cmd
}

// valuesHelp is how put and patch read field=value.
const valuesHelp = `Values: field=value takes a value that reads as JSON as JSON, anything else
as a string:
  name=Ada           the string "Ada"
  n=123              the number 123          name='"123"'   the string "123"
  ok=true            the boolean true        ok='"true"'    the string "true"
  note=null          null                    tags='["a","b"]'  a list
With --string every value is a string as written (name=123 is "123").
With --body the whole body is one JSON object instead: --body '{"name":"123"}',
or --body - to read it from standard input.`

// writeCmd is put (replace a record) or patch (change some fields).
func writeCmd(name string) *cobra.Command {
	var (
		asString bool
		body     string
		keyParts []string
	)
	patch := name == "patch"
	cmd := &cobra.Command{
		Use:     name + " COLLECTION KEY field=value...",
		Short:   "Replace a record (fields not given become null)",
		GroupID: "client",
		Long: `Replace a record: the fields given take their values, every other field of
the record becomes null.

` + valuesHelp + "\n\n" + keysHelp,
		Example: `  lattice put customers 42 name=Ada status=Active
  lattice put customers 42 --string name=123 zip=01234
  lattice put orders 'acme,7' total=12.5`,
		Args: argsBetween(1, -1),
	}
	if patch {
		cmd.Short = "Change some fields of a record; add to or remove from set fields"
		cmd.Long = `Change the fields given and leave the others as they are. A field whose policy
is orset takes elements one at a time: tags+=vip adds "vip", tags-=old
removes "old" (the values read as with =).

` + valuesHelp + "\n\n" + keysHelp
		cmd.Example = `  lattice patch customers 42 status=Paused 'tags+=vip' 'tags-=trial'
  lattice patch customers 42 phone='"0123"'      # the string "0123", not a number
  lattice patch kv --key-part 'a,b' value=1`
	}
	o := addClientFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&asString, "string", false, "take every value as a string, as written")
	f.StringVar(&body, "body", "", "the body as one `JSON` object instead of field=value arguments; - reads standard input")
	f.StringArrayVar(&keyParts, "key-part", nil, "one `VALUE` of the key, taken as it is (repeat for a composite key, in key order); then KEY is left out")
	method := "PUT"
	if patch {
		method = "PATCH"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, assignments, err := keyArg(keyParts, args[1:])
		if err != nil {
			return &usageError{msg: err.Error(), usage: cmd.UsageString()}
		}
		var req any
		switch {
		case body != "":
			if len(assignments) > 0 {
				return errors.Newf("unexpected arguments %q: --body gives the whole body", assignments)
			}
			if req, err = readBody(body, cmd.InOrStdin()); err != nil {
				return err
			}
		default:
			if req, err = parseAssignments(assignments, patch, asString); err != nil {
				return err
			}
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.Do(cmd.Context(), method, sidecar.RecordPath(args[0], key), req, &raw); err != nil {
			return err
		}
		if len(raw) == 0 {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return err
		}
		return printJSON(cmd.OutOrStdout(), raw)
	}
	return cmd
}

// maxBody bounds a --body read from standard input; the API takes no more.
const maxBody = 16 << 20

// readBody reads --body: a JSON object, or - for one on stdin.
func readBody(arg string, stdin io.Reader) (json.RawMessage, error) {
	b := []byte(arg)
	if arg == "-" {
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, maxBody+1)); err != nil {
			return nil, errors.Wrap(err, "read the body from standard input")
		}
		if len(b) > maxBody {
			return nil, errors.Newf("the body on standard input is over %d bytes", maxBody)
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil || obj == nil {
		return nil, errors.WithHint(errors.New("--body is not a JSON object"), `write it as --body '{"field": "value"}'`)
	}
	return json.RawMessage(b), nil
}

// parseAssignments turns field=value arguments into a JSON body. A value
// that parses as JSON is taken as such, anything else as a string (with
// asString, every value is a string); set+=elem and set-=elem become
// OR-set operations.
func parseAssignments(args []string, allowOps, asString bool) (map[string]any, error) {
	body := map[string]any{}
	ops := map[string]map[string][]any{}
	for _, a := range args {
		i := strings.IndexByte(a, '=')
		if i <= 0 {
			return nil, errors.WithHint(errors.Newf("%q is not field=value", a), "see 'lattice put --help' for how to write values")
		}
		f, v := a[:i], a[i+1:]
		var val any = v
		if !asString {
			if err := json.Unmarshal([]byte(v), &val); err != nil {
				val = v
			}
		}
		switch {
		case strings.HasSuffix(f, "+") || strings.HasSuffix(f, "-"):
			if !allowOps {
				return nil, errors.Newf("%q: set operations need patch", a)
			}
			op := "add"
			if strings.HasSuffix(f, "-") {
				op = "remove"
			}
			f = f[:len(f)-1]
			if ops[f] == nil {
				ops[f] = map[string][]any{"add": {}, "remove": {}}
			}
			ops[f][op] = append(ops[f][op], val)
		default:
			body[f] = val
		}
	}
	for f, o := range ops {
		if _, dup := body[f]; dup {
			return nil, errors.Newf("field %s is both set and changed element-wise", f)
		}
		body[f] = o
	}
	return body, nil
}

func deleteCmd() *cobra.Command {
	var keyParts []string
	cmd := &cobra.Command{
		Use:     "delete COLLECTION KEY",
		Short:   "Delete a record",
		GroupID: "client",
		Long:    "Delete a record in every system of the cluster.\n\n" + keysHelp,
		Example: `  lattice delete customers 42
  lattice delete orders 'acme,7'`,
		Args: argsBetween(1, 2),
	}
	o := addClientFlags(cmd)
	cmd.Flags().StringArrayVar(&keyParts, "key-part", nil, "one `VALUE` of the key, taken as it is (repeat for a composite key, in key order); then KEY is left out")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, rest, err := keyArg(keyParts, args[1:])
		if err != nil || len(rest) > 0 {
			msg := "delete takes COLLECTION KEY, or COLLECTION with --key-part"
			return &usageError{msg: msg, usage: cmd.UsageString()}
		}
		c, err := o.client()
		if err != nil {
			return err
		}
		if err := c.Delete(cmd.Context(), args[0], key); err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), "deleted")
		return err
	}
	return cmd
}
