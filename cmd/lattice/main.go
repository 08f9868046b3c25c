// Command lattice is the Lattice sidecar and its command-line client.
//
//	lattice agent --config lattice.yaml      run a sidecar
//	lattice status|get|put|patch|delete      talk to a running sidecar
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
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar"
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
		{"status", "status [--api ADDR] [--token T] [--json]", "show a sidecar's status", runStatus},
		{"get", "get COLLECTION [KEY]", "show a record, or list a collection", runGet},
		{"put", "put COLLECTION KEY field=value...", "replace a record (fields not given become null)", runPut},
		{"patch", "patch COLLECTION KEY field=value... set+=elem set-=elem", "change some fields of a record", runPatch},
		{"delete", "delete COLLECTION KEY", "delete a record", runDelete},
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
	token := fs.String("token", "", "API bearer token (config: api.token; prefer api.token_file)")
	cluster := fs.String("cluster", "", "cluster label (config: cluster)")
	keyFile := fs.String("key-file", "", "gossip key file (config: key_file)")
	adapterKind := fs.String("adapter", "", "adapter kind: none, sqlite or postgres (config: adapter.kind)")
	dsn := fs.String("dsn", "", "adapter DSN: a file path for sqlite, a URL for postgres (config: adapter.dsn)")
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
	set(&cfg.API.Token, *token)
	set(&cfg.Cluster, *cluster)
	set(&cfg.KeyFile, *keyFile)
	set(&cfg.Adapter.Kind, *adapterKind)
	set(&cfg.Adapter.DSN, *dsn)
	set(&cfg.Log.Level, *logLevel)
	set(&cfg.Log.Format, *logFormat)
	if *token != "" {
		cfg.API.TokenFile = ""
	}
	if len(join) > 0 {
		cfg.Join = join
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := sidecar.NewLogger(stderr, cfg.Log)
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

// clientFlags adds --api, --token, --token-file and --ca to a client
// command. The function it returns parses args, checks that there are
// between lo and hi positional arguments (hi < 0: no limit), and builds the
// client.
func clientFlags(fs *flag.FlagSet) func(args []string, lo, hi int) (*sidecar.Client, error) {
	api := fs.String("api", envOr("LATTICE_API", "127.0.0.1:7070"), "agent API address or URL (env LATTICE_API)")
	token := fs.String("token", os.Getenv("LATTICE_TOKEN"), "API bearer token (env LATTICE_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding the API token")
	ca := fs.String("ca", "", "PEM file of the CA to trust for an https API")
	return func(args []string, lo, hi int) (*sidecar.Client, error) {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if n := fs.NArg(); n < lo || (hi >= 0 && n > hi) {
			fs.Usage()
			return nil, flag.ErrHelp
		}
		t := *token
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return nil, errors.Wrap(err, "read token file")
			}
			t = strings.TrimSpace(string(b))
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
	fs := newFlags("status", "status [--api ADDR] [--token T] [--json]", stderr)
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
	fmt.Fprintf(stdout, "members   %d\n", len(s.Members))
	for _, m := range s.Members {
		b, _ := json.Marshal(m)
		fmt.Fprintf(stdout, "  %s\n", b)
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
