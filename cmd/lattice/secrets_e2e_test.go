package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
)

// A token never appears where other users of the machine can read it: not
// in --help (as a flag default taken from LATTICE_TOKEN), not on the
// command line of a running agent, and --token is refused with the ways
// that keep it private.
func TestTokenStaysOffTheCommandLine(t *testing.T) {
	const token = "env-token-that-must-stay-private-0123"
	env := []string{"LATTICE_TOKEN=" + token}
	for _, args := range [][]string{
		{"--help"}, {"agent", "--help"}, {"status", "--help"}, {"get", "--help"}, {"put", "--help"},
		{"patch", "--help"}, {"delete", "--help"},
	} {
		out, errOut, _ := cli(t, env, args...)
		if strings.Contains(out+errOut, token) {
			t.Errorf("lattice %s prints the token:\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
	for _, args := range [][]string{
		{"agent", "--name", "x", "--data", t.TempDir(), "--token", token},
		{"agent", "--token=" + token},
		{"status", "-token", token},
		{"get", "--api", "127.0.0.1:1", "--token=" + token, "items"},
	} {
		_, errOut, code := cli(t, nil, args...)
		if code != 1 || !strings.Contains(errOut, "--token is not accepted") ||
			!strings.Contains(errOut, "--token-file") || !strings.Contains(errOut, "LATTICE_TOKEN") {
			t.Errorf("lattice %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
		}
	}

	// An agent that takes its token from the environment uses it, and its
	// command line does not hold it.
	c := newCluster(t, "")
	a := c.add("solo", "")
	a.args = []string{"--name", "solo", "--data", filepath.Join(a.dir, "store"), "--bind", a.gossip,
		"--api", a.api, "--key-file", c.keyFile, "--cluster", "lattice-e2e"}
	a.env = env
	a.start(30 * time.Second)
	defer a.stop(30 * time.Second)
	if runtime.GOOS == "linux" {
		a.mu.Lock()
		pid := a.cmd.Process.Pid
		a.mu.Unlock()
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if len(cmdline) == 0 || bytes.Contains(cmdline, []byte(token)) {
			t.Fatalf("the agent's command line %q holds the token", bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	if _, errOut, code := cli(t, nil, "status", "--api", a.api); code != 1 || !strings.Contains(errOut, "(401)") {
		t.Fatalf("status without the token: exit %d\n%s", code, errOut)
	}
	if out, errOut, code := cli(t, env, "status", "--api", a.api); code != 0 || !strings.Contains(out, "node      solo") {
		t.Fatalf("status with LATTICE_TOKEN: exit %d\n%s%s", code, out, errOut)
	}
	c.checkLogs()
}

// A token, key or DSN file that other users may open stops the agent, with
// the command that fixes it.
func TestAgentRefusesOpenSecretFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("api.token", "0123456789abcdef0123456789\n", 0o644)
	dsnFile := write("dsn", filepath.Join(dir, "sys.db")+"\n", 0o604)
	keyFile := write("gossip.key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", 0o640)
	for _, tc := range []struct {
		name string
		args []string
		file string
	}{
		{"token file", []string{"--name", "a", "--data", dir + "/a", "--api", "127.0.0.1:0", "--token-file", tokenFile}, tokenFile},
		{"dsn file", []string{"--name", "b", "--data", dir + "/b", "--api", "127.0.0.1:0", "--adapter", "sqlite", "--dsn-file", dsnFile}, dsnFile},
		{"key file", []string{"--name", "c", "--data", dir + "/c", "--api", "off", "--bind", "127.0.0.1:0", "--key-file", keyFile}, keyFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := cli(t, nil, append([]string{"agent"}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, "open to other users") || !strings.Contains(errOut, "hint: chmod 600 "+tc.file) {
				t.Fatalf("exit %d\n%s", code, errOut)
			}
		})
	}
}

// A password in --dsn is warned about, and never printed.
func TestAgentWarnsOfDSNPassword(t *testing.T) {
	port := freePort(t)
	_, errOut, code := cli(t, nil, "agent", "--name", "w", "--data", t.TempDir(), "--api", "off", "--bind", "127.0.0.1:0",
		"--adapter", "postgres", "--dsn", "postgres://u:s3cret-pw@127.0.0.1:"+strconv.Itoa(port)+"/db")
	if code != 1 || !strings.Contains(errOut, "the --dsn flag holds a password") || !strings.Contains(errOut, "--dsn-file") ||
		strings.Contains(errOut, "s3cret-pw") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
}

// lattice keygen writes its key file for its owner alone (0600), never
// over an existing file, and holds one AES-256 key.
func TestKeygenWritesAPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "gossip.key")
	if out, errOut, code := cli(t, nil, "keygen", "--out", key); code != 0 {
		t.Fatalf("keygen: exit %d\n%s%s", code, out, errOut)
	}
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Fatalf("keygen wrote %s with mode %04o, want 0600", key, fi.Mode().Perm())
	}
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cli(t, nil, "keygen", "--out", key); code == 0 || !strings.Contains(errOut, "never overwrites") {
		t.Fatalf("keygen over an existing file: exit %d\n%s", code, errOut)
	}
	if after, err := os.ReadFile(key); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("keygen changed an existing key file (%v)", err)
	}
	keys, err := gossip.LoadKeyFile(key)
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Fatalf("keygen's file holds %d keys (%v), want one of 32 bytes", len(keys), err)
	}
}

// The command line keeps the secure defaults: an API other machines may
// reach needs a token (or api.insecure_no_token), and a token shorter than
// 16 characters is refused however it comes, by the agent and the client.
func TestSecureDefaultsOnTheCommandLine(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.token")
	if err := os.WriteFile(short, []byte("tooshort\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := func(name string, extra ...string) []string {
		return append([]string{"agent", "--name", name, "--data", filepath.Join(dir, name), "--bind", "127.0.0.1:0"}, extra...)
	}
	runCLICases(t, nil, []cliCase{
		{name: "open API on all interfaces", args: agent("a", "--api", "0.0.0.0:0"), wantCode: 1,
			wantErr: []string{"config api.addr: 0.0.0.0:0 is reachable from other machines, and the API has no token", "api.insecure_no_token: true", "api.token_file"}},
		{name: "short LATTICE_TOKEN for the agent", args: agent("b", "--api", "127.0.0.1:0"), env: []string{"LATTICE_TOKEN=tooshort"}, wantCode: 1,
			wantErr: []string{"LATTICE_TOKEN: the token is shorter than 16 characters", "hint: generate one with"}},
		{name: "short token file for the agent", args: agent("c", "--api", "127.0.0.1:0", "--token-file", short), wantCode: 1,
			wantErr: []string{"shorter than 16 characters"}},
		{name: "short LATTICE_TOKEN for the client", args: []string{"status", "--api", "127.0.0.1:1"}, env: []string{"LATTICE_TOKEN=tooshort"}, wantCode: 1,
			wantErr: []string{"LATTICE_TOKEN: the token is shorter than 16 characters"}},
		{name: "bad LATTICE_GOSSIP_KEY", args: agent("d", "--api", "off"), env: []string{"LATTICE_GOSSIP_KEY=not-a-key"}, wantCode: 1,
			wantErr: []string{"LATTICE_GOSSIP_KEY line 1: not base64"}},
		{name: "short token file for the client", args: []string{"get", "--api", "127.0.0.1:1", "--token-file", short, "items"}, wantCode: 1,
			wantErr: []string{"--token-file " + short + ": the token is shorter than 16 characters"}},
	})
}
