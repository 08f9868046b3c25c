// Command lattice is the Lattice sidecar and its command-line client.
//
//	lattice agent --config lattice.yaml      run a sidecar
//	lattice status|get|put|patch|delete      talk to a running sidecar
//	lattice conflicts|resolve                see and override merge conflicts
//	lattice keygen                           make a gossip encryption key
//	lattice demo                             three sidecars, three SQLite databases, conflicts resolved
//	lattice bench                            convergence benchmarks: a table, JSON and an SVG plot
//	lattice version
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar"

	_ "github.com/lattice-crdt/lattice/adapters/postgres"
	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)

type command struct {
	name  string
	usage string
	help  string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"agent", "agent [--config FILE] [flags]", "run a sidecar", runAgent},
		{"status", "status [--api ADDR] [--token-file FILE] [--json]", "show a sidecar's status", runStatus},
		{"get", "get COLLECTION [KEY]", "show a record, or list a collection", runGet},
		{"put", "put COLLECTION KEY field=value...", "replace a record (fields not given become null)", runPut},
		{"patch", "patch COLLECTION KEY field=value... set+=elem set-=elem", "change some fields of a record", runPatch},
		{"delete", "delete COLLECTION KEY", "delete a record", runDelete},
		{"conflicts", "conflicts [--collection C] [--key K] [--field F] [--json]", "list the conflicts a sidecar logged", runConflicts},
		{"resolve", "resolve COLLECTION KEY FIELD (--value V | --loser ID)", "re-assert a value that lost a conflict, as a write that wins", runResolve},
		{"keygen", "keygen [--out FILE]", "make a 256-bit gossip encryption key", runKeygen},
		{"demo", "demo [--dir DIR]", "run three sidecars beside three SQLite databases and resolve classic sync conflicts", runDemo},
		{"bench", "bench [flags]", "run convergence benchmarks; print a table, write JSON and an SVG plot", runBench},
		{"version", "version", "print the version", func(_ context.Context, _ []string, out, _ io.Writer) error {
			fmt.Fprintln(out, "lattice", sidecar.Version)
			return nil
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "lattice:", err)
			for _, h := range errors.GetAllHints(err) {
				fmt.Fprintln(os.Stderr, "hint:", h)
			}
		}
		os.Exit(exitCode(err))
	}
}

func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return flag.ErrHelp
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			if err := refuseTokenFlag(args[1:]); err != nil {
				return err
			}
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return errors.Newf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Lattice keeps the same data in several systems in sync, both ways.")
	fmt.Fprintln(w, "\nUsage:")
	for _, c := range commands {
		fmt.Fprintf(w, "  lattice %-58s %s\n", c.usage, c.help)
	}
	fmt.Fprintln(w, "\nRun 'lattice COMMAND --help' for a command's flags.")
}

// refuseTokenFlag refuses a token given on the command line, where every
// user of the machine can read it (ps, /proc/PID/cmdline).
func refuseTokenFlag(args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); name == "token" {
			return errors.WithHint(
				errors.New("--token is not accepted: a token on the command line is visible to every user of this machine"),
				"put the token in a file only you can read (chmod 600) and pass --token-file FILE, or set LATTICE_TOKEN")
		}
	}
	return nil
}

// dsnHasPassword reports whether a DSN (a URL or key=value pairs) carries
// a password.
func dsnHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil {
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return true
		}
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			return true
		}
	}
	return false
}

func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lattice %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// listFlag collects comma-separated or repeated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("agent", "agent [--config FILE] [flags]", stderr)
	configPath := fs.String("config", "", "YAML config file (flags below override it)")
	name := fs.String("name", "", "unique node name (config: node)")
	data := fs.String("data", "", "store directory (config: data)")
	bind := fs.String("bind", "", "gossip bind address host:port (config: bind)")
	advertise := fs.String("advertise", "", "gossip address peers use, ip:port (config: advertise)")
	var join listFlag
	fs.Var(&join, "join", "members to join, comma-separated or repeated (config: join)")
	api := fs.String("api", "", "HTTP API listen address, or off (config: api.addr)")
	tokenFile := fs.String("token-file", "", "file holding the API bearer token, private to its owner (config: api.token_file; env LATTICE_TOKEN)")
	cluster := fs.String("cluster", "", "cluster label (config: cluster)")
	keyFile := fs.String("key-file", "", "gossip key file (config: key_file)")
	adapterKind := fs.String("adapter", "", "adapter kind: none, sqlite or postgres (config: adapter.kind)")
	dsn := fs.String("dsn", "", "adapter DSN: a file path for sqlite, a URL for postgres (config: adapter.dsn); one with a password belongs in --dsn-file")
	dsnFile := fs.String("dsn-file", "", "file holding the adapter DSN, private to its owner (config: adapter.dsn_file; env LATTICE_DSN)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (config: log.level)")
	logFormat := fs.String("log-format", "", "text or json (config: log.format)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.Newf("unexpected arguments %q", fs.Args())
	}
	var cfg sidecar.Config
	if *configPath != "" {
		var err error
		if cfg, err = sidecar.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&cfg.Node, *name)
	set(&cfg.Data, *data)
	set(&cfg.Bind, *bind)
	set(&cfg.Advertise, *advertise)
	set(&cfg.API.Addr, *api)
	set(&cfg.Cluster, *cluster)
	set(&cfg.KeyFile, *keyFile)
	set(&cfg.Adapter.Kind, *adapterKind)
	set(&cfg.Log.Level, *logLevel)
	set(&cfg.Log.Format, *logFormat)
	// Secrets: a flag names a file and overrides the config; the
	// environment is used only when neither names one.
	switch env := os.Getenv("LATTICE_TOKEN"); {
	case *tokenFile != "":
		cfg.API.Token, cfg.API.TokenFile = "", *tokenFile
	case env != "" && cfg.API.Token == "" && cfg.API.TokenFile == "":
		if len(env) < 16 {
			return errors.WithHint(errors.New("LATTICE_TOKEN is shorter than 16 characters"),
				"generate one with: head -c 32 /dev/urandom | base64")
		}
		cfg.API.Token = env
	}
	switch env := os.Getenv("LATTICE_DSN"); {
	case *dsn != "":
		cfg.Adapter.DSN, cfg.Adapter.DSNFile = *dsn, ""
	case *dsnFile != "":
		cfg.Adapter.DSN, cfg.Adapter.DSNFile = "", *dsnFile
	case env != "" && cfg.Adapter.DSN == "" && cfg.Adapter.DSNFile == "":
		cfg.Adapter.DSN = env
	}
	if len(join) > 0 {
		cfg.Join = join
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := sidecar.NewLogger(stderr, cfg.Log)
	if dsnHasPassword(*dsn) {
		log.Warn("the --dsn flag holds a password, which every user of this machine can read in the process list",
			"hint", "put the DSN in a file only you can read (chmod 600) and pass --dsn-file FILE, or set LATTICE_DSN")
	}
	a, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: log})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-a.Done():
	}
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	timer := time.NewTimer(cfg.ShutdownTimeout)
	defer timer.Stop()
	select {
	case err := <-closed:
		if a.Err() != nil {
			return a.Err()
		}
		return err
	case <-timer.C:
		err := errors.Newf("shutdown did not finish within shutdown_timeout (%s); exiting without waiting for it", cfg.ShutdownTimeout)
		if a.Err() != nil {
			err = errors.WithSecondaryError(a.Err(), err)
		}
		return err
	}
}

// clientFlags adds --api, --token-file and --ca to a client command; the
// token comes from that file or from LATTICE_TOKEN, never from an argument.
// The function it returns parses args, checks that there are between lo and
// hi positional arguments (hi < 0: no limit), and builds the client.
func clientFlags(fs *flag.FlagSet) func(args []string, lo, hi int) (*sidecar.Client, error) {
	api := fs.String("api", envOr("LATTICE_API", "127.0.0.1:7070"), "agent API address or URL (env LATTICE_API)")
	tokenFile := fs.String("token-file", "", "file holding the API token, private to its owner (default: env LATTICE_TOKEN)")
	ca := fs.String("ca", "", "PEM file of the CA to trust for an https API")
	return func(args []string, lo, hi int) (*sidecar.Client, error) {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if n := fs.NArg(); n < lo || (hi >= 0 && n > hi) {
			fs.Usage()
			return nil, flag.ErrHelp
		}
		t := os.Getenv("LATTICE_TOKEN")
		if *tokenFile != "" {
			var err error
			if t, err = sidecar.ReadSecretFile(*tokenFile, "--token-file"); err != nil {
				return nil, err
			}
		}
		return sidecar.NewClient(*api, t, *ca)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", "status [--api ADDR] [--token-file FILE] [--json]", stderr)
	client := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the raw JSON")
	c, err := client(args, 0, 0)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(ctx, "GET", "/v1/status", nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	var s sidecar.Status
	if err := json.Unmarshal(raw, &s); err != nil {
		return errors.Wrap(err, "decode status")
	}
	fmt.Fprintf(stdout, "node      %s (replica %s, version %s)\n", s.Node, s.Replica, s.Version)
	fmt.Fprintf(stdout, "ready     %v\n", s.Ready)
	fmt.Fprintf(stdout, "digest    %s (%d records)\n", s.Digest, s.Records)
	fmt.Fprintf(stdout, "pending   %d to apply, %d parked\n", s.Pending, len(s.Parked))
	fmt.Fprintf(stdout, "adapter   %s", s.Adapter.Kind)
	if s.Adapter.Capture != nil {
		fmt.Fprintf(stdout, " (capture %s, apply %s)", s.Adapter.Capture.State, s.Adapter.Apply.State)
	}
	fmt.Fprintln(stdout)
	for _, l := range []struct {
		name string
		st   *sidecar.LoopStatus
	}{{"capture", s.Adapter.Capture}, {"apply", s.Adapter.Apply}} {
		if l.st != nil && l.st.Error != "" {
			fmt.Fprintf(stdout, "failing   %s since %s (%d retries): %s\n", l.name, l.st.FailingSince.Format(time.RFC3339), l.st.Retries, l.st.Error)
		}
	}
	fmt.Fprintf(stdout, "members   %d\n", len(s.Members))
	if len(s.Members) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  name\treplica\tstate\tgossip\tapi\tlag\tqueued\tstream\tschema")
		for _, m := range s.Members {
			stream, schema := "down", "same"
			if m.Connected {
				stream = "up"
			}
			if len(m.SchemaMismatch) > 0 {
				schema = "differs: " + strings.Join(m.SchemaMismatch, ",")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%.1fms\t%d\t%s\t%s\n", m.Name, m.Replica, m.State, m.Addr, m.APIAddr, m.LagMS, m.QueuedDeltas, stream, schema)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, p := range s.Parked {
		fmt.Fprintf(stdout, "parked    %s/%s since %s: %s\n", p.Collection, p.Key, p.At.Format("2006-01-02 15:04:05"), p.Reason)
	}
	return nil
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

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("get", "get [--after KEY] [--limit N] COLLECTION [KEY]", stderr)
	client := clientFlags(fs)
	after := fs.String("after", "", "list: start after this key")
	limit := fs.Int("limit", 100, "list: at most this many records")
	c, err := client(args, 1, 2)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if fs.NArg() == 1 {
		q := url.Values{"limit": {strconv.Itoa(*limit)}}
		if *after != "" {
			q.Set("after", *after)
		}
		err = c.Do(ctx, "GET", "/v1/records/"+url.PathEscape(fs.Arg(0))+"?"+q.Encode(), nil, &raw)
	} else {
		err = c.Do(ctx, "GET", sidecar.RecordPath(fs.Arg(0), fs.Arg(1)), nil, &raw)
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, raw)
}

// parseAssignments turns field=value arguments into a JSON body. A value
// that parses as JSON is taken as such, anything else as a string;
// set+=elem and set-=elem become OR-set operations.
func parseAssignments(args []string, allowOps bool) (map[string]any, error) {
	body := map[string]any{}
	ops := map[string]map[string][]any{}
	for _, a := range args {
		i := strings.IndexByte(a, '=')
		if i <= 0 {
			return nil, errors.Newf("%q is not field=value", a)
		}
		f, v := a[:i], a[i+1:]
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
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

func runPut(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWrite(ctx, "put", "PUT", args, stdout, stderr)
}

func runPatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWrite(ctx, "patch", "PATCH", args, stdout, stderr)
}

func runWrite(ctx context.Context, name, method string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(name, name+" COLLECTION KEY field=value...", stderr)
	client := clientFlags(fs)
	c, err := client(args, 2, -1)
	if err != nil {
		return err
	}
	body, err := parseAssignments(fs.Args()[2:], method == "PATCH")
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.Do(ctx, method, sidecar.RecordPath(fs.Arg(0), fs.Arg(1)), body, &raw); err != nil {
		return err
	}
	if len(raw) == 0 {
		fmt.Fprintln(stdout, "ok")
		return nil
	}
	return printJSON(stdout, raw)
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("delete", "delete COLLECTION KEY", stderr)
	client := clientFlags(fs)
	c, err := client(args, 2, 2)
	if err != nil {
		return err
	}
	if err := c.Delete(ctx, fs.Arg(0), fs.Arg(1)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "deleted")
	return nil
}

func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", "keygen [--out FILE]", stderr)
	out := fs.String("out", "", "write the key file here (mode 0600) instead of standard output")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := gossip.GenerateKey()
	if err != nil {
		return err
	}
	line := base64.StdEncoding.EncodeToString(key) + "\n"
	if *out == "" {
		_, err := io.WriteString(stdout, line)
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errors.WithHint(errors.Wrapf(err, "create %s", *out), "keygen never overwrites a key file; to rotate, see docs/security.md")
	}
	if _, err := io.WriteString(f, "# lattice gossip key: the first key encrypts, all decrypt\n"+line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
