// Command lattice is the Lattice sidecar and its command-line client.
//
//	lattice agent --config lattice.yaml      run a sidecar
//	lattice status|get|put|patch|delete      talk to a running sidecar
//	lattice conflicts|resolve                see and override merge conflicts
//	lattice parked list|retry|skip           the records this node's system refused
//	lattice members                          the cluster's members as one node sees them
//	lattice keygen                           make a gossip encryption key
//	lattice demo                             three sidecars, three SQLite databases, conflicts resolved
//	lattice bench                            convergence benchmarks: a table, JSON and an SVG plot
//	lattice completion bash|zsh|fish         a shell completion script
//	lattice version                          (or lattice --version)
//
// Exit status: 0 on success (also for --help), 1 on an error, 2 when a
// command is given the wrong number of arguments or none at all.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	_ "github.com/lattice-crdt/lattice/adapters/http"
	_ "github.com/lattice-crdt/lattice/adapters/postgres"
	_ "github.com/lattice-crdt/lattice/adapters/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		printError(os.Stderr, err)
		os.Exit(exitCode(err))
	}
}

// printError prints err, its hints and, for a usage error, the command's
// usage.
func printError(w io.Writer, err error) {
	if errors.Is(err, errUsageShown) {
		return
	}
	fmt.Fprintln(w, "lattice:", err)
	for _, h := range errors.GetAllHints(err) {
		fmt.Fprintln(w, "hint:", h)
	}
	var ue *usageError
	if errors.As(err, &ue) && ue.usage != "" {
		fmt.Fprint(w, "\n", ue.usage)
	}
}

func exitCode(err error) int {
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// usageError is a command given the wrong number of arguments: exit
// status 2, and the command's usage after the message.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }
func (e *usageError) ExitCode() int { return 2 }

// errUsageShown: lattice without a command printed its usage; exit 2 with
// nothing more to say.
var errUsageShown = &usageError{msg: "no command"}

// run runs the lattice command line args; main and the tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := refuseTokenFlag(args); err != nil {
		return err
	}
	root := newRootCmd(stdout, stderr)
	root.SetArgs(longFlagsWithOneDash(root, args))
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "lattice",
		Short: "Lattice keeps the same data in several systems in sync, both ways",
		Long: `Lattice keeps the same data in several systems in sync, both ways.

A lattice agent runs beside each system (a SQLite file, a PostgreSQL database,
or an application that uses the agent's API), captures its changes, merges
them field by field with the other agents' and writes the merged state back.
The other commands talk to a running agent's HTTP API.`,
		Version:       sidecar.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Flags may come before or after the positional arguments; "--"
		// ends the flags.
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(cmd.ErrOrStderr())
			_ = cmd.Help()
			return errUsageShown
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("lattice {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return errors.WithHintf(err, "see 'lattice %s --help'", strings.TrimPrefix(cmd.CommandPath(), "lattice "))
	})
	root.AddGroup(
		&cobra.Group{ID: "agent", Title: "Run a sidecar:"},
		&cobra.Group{ID: "client", Title: "Talk to a running sidecar:"},
		&cobra.Group{ID: "tools", Title: "Tools:"},
	)
	root.SetHelpCommandGroupID("tools")
	root.SetCompletionCommandGroupID("tools")
	root.AddCommand(
		agentCmd(),
		statusCmd(),
		getCmd(),
		writeCmd("put"),
		writeCmd("patch"),
		deleteCmd(),
		conflictsCmd(),
		resolveCmd(),
		parkedCmd(),
		membersCmd(),
		verifyCmd(),
		keygenCmd(),
		demoCmd(),
		benchCmd(),
		versionCmd(),
	)
	// Made now, not when the command line runs, so that it can be
	// told to refuse a shell it does not know.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Long += "\n\nbash needs the bash-completion package. See docs/cli.md for where each shell\nlooks for completion scripts."
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(cmd *cobra.Command, args []string) error {
				msg := "completion needs a shell"
				if len(args) > 0 {
					msg = fmt.Sprintf("completion: unknown shell %q", args[0])
				}
				return &usageError{msg: msg + ": bash, zsh, fish or powershell", usage: cmd.UsageString()}
			}
		}
	}
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		GroupID: "tools",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "lattice", sidecar.Version)
			return err
		},
	}
}

// noArgs refuses positional arguments (exit status 1, as a bad flag).
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return errors.Newf("unexpected arguments %q", args)
	}
	return nil
}

// argsBetween accepts lo to hi positional arguments (hi < 0: no limit);
// anything else is a usage error that shows what the command takes.
func argsBetween(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if n := len(args); n < lo || (hi >= 0 && n > hi) {
			takes := strings.TrimPrefix(cmd.Use, cmd.Name()+" ")
			if hi == 0 {
				takes = "no arguments"
			}
			return &usageError{
				msg:   fmt.Sprintf("%s takes %s, got %d arguments", cmd.Name(), takes, n),
				usage: cmd.UsageString(),
			}
		}
		return nil
	}
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

// longFlagsWithOneDash rewrites -name to --name where name is a long flag
// of the command args run: lattice took Go-style flags before its commands
// moved to cobra, and scripts that wrote -config keep working. A value that
// follows a flag which takes one is left alone, whatever it looks like.
func longFlagsWithOneDash(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	cmd.InitDefaultHelpFlag()
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	out := make([]string, len(args))
	copy(out, args)
	takesValue := false
	for i, a := range out {
		if takesValue {
			takesValue = false
			continue
		}
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || len(a) < 3 {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := lookup(name)
		if f == nil {
			continue
		}
		if !strings.HasPrefix(a, "--") {
			out[i] = "-" + a
		}
		takesValue = !hasValue && f.NoOptDefVal == ""
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// listFlag collects comma-separated or repeated values; blanks around and
// between the commas are dropped.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Type() string   { return "list" }

func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}
