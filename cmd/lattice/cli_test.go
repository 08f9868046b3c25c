package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

// Every command answers --help (and -h, and help COMMAND) on standard
// output with exit status 0; usage errors exit 2, other errors 1.
func TestCLIHelpVersionAndExitCodes(t *testing.T) {
	commands := []string{"agent", "status", "get", "put", "patch", "delete", "keygen", "demo", "bench", "version", "completion"}
	for _, name := range commands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}, {name, "-help"}} {
			out, errOut, code := cli(t, nil, args...)
			if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "lattice "+name) {
				t.Errorf("lattice %s: exit %d, stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
			}
		}
	}
	runCLICases(t, nil, []cliCase{
		{name: "--help", args: []string{"--help"}, wantOut: []string{"Run a sidecar:", "Talk to a running sidecar:", "completion", "status"}},
		{name: "-h", args: []string{"-h"}, wantOut: []string{"Usage:"}},
		{name: "help", args: []string{"help"}, wantOut: []string{"Usage:"}},
		{name: "help after arguments", args: []string{"put", "items", "1", "--help"}, wantOut: []string{"lattice put COLLECTION KEY field=value..."}},
		{name: "--version", args: []string{"--version"}, wantOut: []string{"lattice " + sidecar.Version + "\n"}},
		{name: "-v", args: []string{"-v"}, wantOut: []string{"lattice " + sidecar.Version + "\n"}},
		{name: "version", args: []string{"version"}, wantOut: []string{"lattice " + sidecar.Version + "\n"}},

		// How to write typed values and composite keys, where a user looks.
		{name: "put help: values", args: []string{"put", "--help"}, wantOut: []string{
			`n=123              the number 123`, `name='"123"'   the string "123"`, "--string", "--body", `'a\,b' is the one value "a,b"`, "--key-part"}},
		{name: "patch help: sets", args: []string{"patch", "--help"}, wantOut: []string{"tags+=vip", `phone='"0123"'`, "--string"}},
		{name: "get help: keys", args: []string{"get", "--help"}, wantOut: []string{`lattice get kv 'a\,b'`, "--key-part 'a,b'"}},
		{name: "delete help: keys", args: []string{"delete", "--help"}, wantOut: []string{`'a\,b'`}},
		{name: "status help", args: []string{"status", "--help"}, wantOut: []string{"--json", "Durations carry their unit"}},

		{name: "no command", args: nil, wantCode: 2, wantErr: []string{"Usage:", "lattice [command]"}},
		{name: "get without collection", args: []string{"get"}, wantCode: 2, wantErr: []string{"get takes COLLECTION [KEY], got 0 arguments", "Usage:\n  lattice get"}},
		{name: "put without key", args: []string{"put", "items"}, wantCode: 2, wantErr: []string{"missing KEY (or --key-part)", "Usage:\n  lattice put"}},
		{name: "delete with three", args: []string{"delete", "items", "1", "2"}, wantCode: 2, wantErr: []string{"delete takes COLLECTION KEY"}},
		{name: "status with an argument", args: []string{"status", "extra"}, wantCode: 2, wantErr: []string{"status takes no arguments, got 1"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 1, wantErr: []string{`unknown command "frobnicate"`}},
		{name: "unknown flag", args: []string{"get", "--frob", "items"}, wantCode: 1, wantErr: []string{"unknown flag: --frob", "hint: see 'lattice get --help'"}},
		{name: "agent with an argument", args: []string{"agent", "extra"}, wantCode: 1, wantErr: []string{`unexpected arguments ["extra"]`}},
		{name: "completion of an unknown shell", args: []string{"completion", "tcsh"}, wantCode: 2, wantErr: []string{`unknown shell "tcsh": bash, zsh, fish`}},
		{name: "completion without a shell", args: []string{"completion"}, wantCode: 2, wantErr: []string{"completion needs a shell"}},
		{name: "token before the command", args: []string{"--token=x", "status"}, wantCode: 1, wantErr: []string{"--token is not accepted"}},
	})
}

// The client commands take their flags anywhere: before, between and after
// the positional arguments, and Go-style with one dash. Composite keys go
// in escaped or by --key-part; values typed, as strings, or as a JSON body.
func TestCLIFlagPositionsKeysAndValues(t *testing.T) {
	c := newCluster(t, "  kv:\n    key: [k, n]\n    key_types: [string, int]\n  notes:\n    key: [id]\n")
	a := c.add("solo", "  kind: none")
	a.writeConfig()
	a.start(30 * time.Second)
	defer a.stop(30 * time.Second)
	api, tf := a.api, c.tokenFile
	runCLICases(t, a, []cliCase{
		{name: "flags first", args: []string{"put", "--api", api, "--token-file", tf, "notes", "1", "text=first"}, wantOut: []string{`"first"`}},
		{name: "flags last", args: []string{"patch", "notes", "1", "n=1", "--api", api, "--token-file", tf}, wantOut: []string{`"n": 1`}},
		{name: "flags between", args: []string{"get", "notes", "--api", api, "1", "--token-file=" + tf}, wantOut: []string{`"text": "first"`}},
		{name: "one-dash flags", args: []string{"get", "-api", api, "notes", "-token-file", tf, "1"}, wantOut: []string{`"key": "1"`}},
		{name: "one-dash flag with =", args: []string{"get", "-api=" + api, "-token-file=" + tf, "notes", "-limit", "1"}, wantOut: []string{`"key": "1"`}},
		{name: "after -- no flags", args: []string{"get", "--api", api, "--token-file", tf, "--", "notes", "--limit"}, wantCode: 1, wantErr: []string{"(404)", "no record notes/--limit"}, wantNoData: true},

		// Typed values and strings.
		{name: "typed number", args: []string{"put", "--api", api, "--token-file", tf, "notes", "2", "zip=01234", "n=123"}, wantOut: []string{`"n": 123`, `"zip": "01234"`}},
		{name: "quoted string", args: []string{"put", "--api", api, "--token-file", tf, "notes", "3", `n="123"`}, wantOut: []string{`"n": "123"`}},
		{name: "--string", args: []string{"put", "notes", "4", "n=123", "ok=true", "--string", "--api", api, "--token-file", tf}, wantOut: []string{`"n": "123"`, `"ok": "true"`}},
		{name: "--body", args: []string{"put", "notes", "5", "--body", `{"n": "123", "m": 4}`, "--api", api, "--token-file", tf}, wantOut: []string{`"n": "123"`, `"m": 4`}},
		{name: "--body not an object", args: []string{"put", "notes", "6", "--body", `[1]`, "--api", api, "--token-file", tf}, wantCode: 1, wantErr: []string{"--body is not a JSON object"}, wantNoData: true},
		{name: "--body and assignments", args: []string{"put", "notes", "6", "a=1", "--body", `{}`, "--api", api, "--token-file", tf}, wantCode: 1, wantErr: []string{"--body gives the whole body"}, wantNoData: true},

		// Composite keys: escaped text or --key-part.
		{name: "escaped comma", args: []string{"put", "--api", api, "--token-file", tf, "kv", `a\,b,7`, "v=1"}, wantOut: []string{`"key": "a\\,b,7"`, `"k": "a,b"`, `"n": 7`}},
		{name: "key parts", args: []string{"get", "--api", api, "--token-file", tf, "kv", "--key-part", "a,b", "--key-part", "7"}, wantOut: []string{`"v": 1`}},
		{name: "key parts patch", args: []string{"patch", "kv", "--key-part", "a,b", "--key-part", "7", "v=2", "--api", api, "--token-file", tf}, wantOut: []string{`"v": 2`}},
		{name: "unescaped comma is two values", args: []string{"get", "--api", api, "--token-file", tf, "kv", "a,b"}, wantCode: 1, wantErr: []string{"(400)"}, wantNoData: true},
		{name: "key parts delete", args: []string{"delete", "kv", "--key-part", "a,b", "--key-part", "7", "--api", api, "--token-file", tf}, wantOut: []string{"deleted"}},
		{name: "gone", args: []string{"get", "--api", api, "--token-file", tf, "kv", `a\,b,7`}, wantCode: 1, wantErr: []string{"(404)"}},
	})

	// --body - reads standard input.
	cmd := exec.Command(latticeBinary(t), "put", "notes", "7", "--body", "-", "--api", api, "--token-file", tf)
	cmd.Stdin = strings.NewReader(`{"text": "from stdin", "n": "7"}`)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), `"from stdin"`) || !strings.Contains(out.String(), `"n": "7"`) {
		t.Errorf("put --body -: %v\n%s%s", err, out.String(), errOut.String())
	}

	// status: a table by default, the API's JSON with --json.
	runCLICases(t, a, []cliCase{
		{name: "status", args: []string{"status", "--api", api, "--token-file", tf}, wantOut: []string{"node      solo", "ready     true", "gossip    ", "members   0"}},
	})
	out2, errOut2, code := cli(t, nil, "status", "--json", "--api", api, "--token-file", tf)
	var s sidecar.Status
	if code != 0 || json.Unmarshal([]byte(out2), &s) != nil || s.Node != "solo" {
		t.Errorf("status --json: exit %d, %q\n%s", code, out2, errOut2)
	}
	c.checkLogs()
}

// Completion scripts for bash, zsh and fish load in their shells and
// complete commands and flags. A shell that is not installed is skipped,
// unless LATTICE_REQUIRE_SHELLS=1 (CI installs all three).
func TestCompletionScripts(t *testing.T) {
	bin := latticeBinary(t)
	// The scripts call the binary by its name to complete.
	path := filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
	shell := func(t *testing.T, name string, script string) string {
		t.Helper()
		sh, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("LATTICE_REQUIRE_SHELLS") == "1" {
				t.Fatalf("%s is not installed and LATTICE_REQUIRE_SHELLS=1", name)
			}
			t.Skipf("%s is not installed", name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, sh, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+path, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s -c %q: %v\n%s%s", name, script, err, out, stderr.Bytes())
		}
		return string(out)
	}
	lines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, strings.Fields(l)[0])
			}
		}
		slices.Sort(out)
		return out
	}
	t.Run("bash", func(t *testing.T) {
		// The script needs the bash-completion package, as at any prompt
		// that completes.
		const bashCompletion = "/usr/share/bash-completion/bash_completion"
		if _, err := os.Stat(bashCompletion); err != nil {
			if os.Getenv("LATTICE_REQUIRE_SHELLS") == "1" {
				t.Fatalf("%s: %v (LATTICE_REQUIRE_SHELLS=1)", bashCompletion, err)
			}
			t.Skipf("bash-completion is not installed: %v", err)
		}
		// Complete as bash would at a prompt: COMP_WORDS and COMP_CWORD set,
		// the registered function called, COMPREPLY read.
		complete := func(line string) []string {
			script := `source ` + bashCompletion + ` && source <(lattice completion bash) || exit 1
fn=$(complete -p lattice | sed -E 's/.*-F ([^ ]+) .*/\1/')
COMP_LINE='` + line + `'; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"; [[ "$COMP_LINE" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$fn" lattice "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
			return lines(shell(t, "bash", script))
		}
		if got, want := complete("lattice sta"), []string{"status"}; !reflect.DeepEqual(got, want) {
			t.Errorf("lattice sta<TAB>: %q, want %q", got, want)
		}
		if got, want := complete("lattice agent --log-f"), []string{"--log-format"}; !reflect.DeepEqual(got, want) {
			t.Errorf("lattice agent --log-f<TAB>: %q, want %q", got, want)
		}
		if got, want := complete("lattice agent --adapter "), []string{"http", "none", "postgres", "sqlite"}; !reflect.DeepEqual(got, want) {
			t.Errorf("lattice agent --adapter <TAB>: %q, want %q", got, want)
		}
	})
	t.Run("zsh", func(t *testing.T) {
		// zsh completes only at an interactive prompt; check that the
		// script loads into the completion system and registers _lattice.
		out := shell(t, "zsh", `autoload -U compinit && compinit -u -D && source <(lattice completion zsh) && print -r -- "$_comps[lattice]"`)
		if strings.TrimSpace(out) != "_lattice" {
			t.Errorf("zsh registered %q for lattice, want _lattice", out)
		}
	})
	t.Run("fish", func(t *testing.T) {
		out := shell(t, "fish", `lattice completion fish | source; complete -C 'lattice sta'; complete -C 'lattice agent --log-level '`)
		got := lines(out)
		for _, want := range []string{"status", "debug", "info", "warn", "error"} {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+want+" ") {
				t.Errorf("fish completions %q lack %q", got, want)
			}
		}
	})
}

func TestLongFlagsWithOneDash(t *testing.T) {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want []string }{
		{[]string{"agent", "-config", "x.yaml", "-join", "a,b"}, []string{"agent", "--config", "x.yaml", "--join", "a,b"}},
		{[]string{"agent", "-config=x.yaml"}, []string{"agent", "--config=x.yaml"}},
		// A value is never rewritten, whatever it looks like.
		{[]string{"get", "--after", "-limit", "items"}, []string{"get", "--after", "-limit", "items"}},
		{[]string{"get", "-after", "-limit", "items"}, []string{"get", "--after", "-limit", "items"}},
		// Not a flag of the command, or after --: left to the parser.
		{[]string{"get", "-frob", "items"}, []string{"get", "-frob", "items"}},
		{[]string{"get", "--", "-limit"}, []string{"get", "--", "-limit"}},
		{[]string{"demo", "-verbose", "-dir", "d"}, []string{"demo", "--verbose", "--dir", "d"}},
		{[]string{"get", "-h"}, []string{"get", "-h"}},
		{[]string{"get", "-help"}, []string{"get", "--help"}},
	} {
		if got := longFlagsWithOneDash(root, tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("longFlagsWithOneDash(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAssignments(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		asString bool
		want     string
	}{
		{[]string{"name=Ada", "n=123", `s="123"`, "ok=true", "x=null", `tags=["a"]`, "e="}, false,
			`{"e":"","n":123,"name":"Ada","ok":true,"s":"123","tags":["a"],"x":null}`},
		{[]string{"n=123", `s="123"`, "ok=true", "eq=a=b"}, true, `{"eq":"a=b","n":"123","ok":"true","s":"\"123\""}`},
		{[]string{"tags+=1", "tags+=x", "tags-=y"}, false, `{"tags":{"add":[1,"x"],"remove":["y"]}}`},
		{[]string{"tags+=1"}, true, `{"tags":{"add":["1"],"remove":[]}}`},
	} {
		body, err := parseAssignments(tc.args, true, tc.asString)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		b, _ := json.Marshal(body)
		if string(b) != tc.want {
			t.Errorf("parseAssignments(%q, string=%v) = %s, want %s", tc.args, tc.asString, b, tc.want)
		}
	}
}

// status prints durations with their unit, measured from the status's own
// time.
func TestPrintStatus(t *testing.T) {
	at := time.Date(2026, 12, 2, 17, 0, 0, 0, time.UTC)
	s := &sidecar.Status{
		Node: "crm", Replica: "0a1b", Version: "1.2.3", Ready: false, Failing: []string{"apply"}, Time: at,
		Digest: "d1", Records: 12, Pending: 3,
		Parked: []sidecar.ParkedJSON{{Collection: "items", Key: "7", Reason: "CHECK constraint failed", At: at.Add(-90 * time.Second)}},
		Adapter: sidecar.AdapterStatus{Kind: "sqlite",
			Capture: &sidecar.LoopStatus{State: "capturing", Since: at.Add(-2 * time.Hour)},
			Apply:   &sidecar.LoopStatus{State: "retrying", Since: at.Add(-1500 * time.Millisecond), Error: "database is locked", FailingSince: at.Add(-3 * time.Minute), Retries: 9}},
		Members: []sidecar.MemberStatus{{Name: "erp", Replica: "ff00", Addr: "10.0.0.6:7946", State: "alive", LagMS: 2.4, LastContact: at.Add(-40 * time.Millisecond), Connected: true}},
	}
	var b bytes.Buffer
	if err := printStatus(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ready     false (failing: apply)",
		"adapter   sqlite (capture capturing for 2h, apply retrying for 1.50s)",
		"failing   apply for 3m (since 2026-12-02T16:57:00Z, 9 retries): database is locked",
		"members   1",
		"erp", "2.4ms", "40.0ms ago", " up ",
		"parked    items/7 for 1m30s (since 2026-12-02T16:58:30Z): CHECK constraint failed",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", -time.Second: "0s", 850 * time.Microsecond: "850µs", 12345 * time.Microsecond: "12.3ms",
		4560 * time.Millisecond: "4.56s", 192 * time.Second: "3m12s", 3 * time.Minute: "3m", 125 * time.Minute: "2h5m", 2 * time.Hour: "2h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
