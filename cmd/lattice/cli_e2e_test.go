package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
)

// cliCase is one run of the lattice binary and what it must print.
type cliCase struct {
	name       string
	args       []string
	env        []string
	wantCode   int
	wantOut    []string // substrings of stdout
	wantErr    []string // substrings of stderr
	wantNoData bool     // the command must not change what the agent stores
}

func runCLICases(t *testing.T, a *agent, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var before string
			if tc.wantNoData {
				d, _, err := a.digest()
				if err != nil {
					t.Fatal(err)
				}
				before = d
			}
			out, errOut, code := cli(t, tc.env, tc.args...)
			if code != tc.wantCode {
				t.Errorf("lattice %s: exit status %d, want %d\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), code, tc.wantCode, out, errOut)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(out, s) {
					t.Errorf("lattice %s: stdout lacks %q:\n%s", strings.Join(tc.args, " "), s, out)
				}
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("lattice %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), s, errOut)
				}
			}
			if tc.wantNoData {
				if d, _, err := a.digest(); err != nil || d != before {
					t.Errorf("lattice %s changed the replica: digest %s -> %s (%v)", strings.Join(tc.args, " "), before, d, err)
				}
			}
		})
	}
}

// testCLI drives a live cluster with the client commands: each write made
// through the CLI on n1 must reach every database.
func testCLI(t *testing.T, c *cluster, nodes []*sqliteNode) {
	n1 := nodes[0]
	auth := []string{"--api", n1.api, "--token-file", c.tokenFile}
	with := func(cmd string, rest ...string) []string {
		return append(append([]string{cmd}, auth...), rest...)
	}
	const keyID = 9000001
	key := strconv.Itoa(keyID)
	ctx := context.Background()
	// inAll waits until every database holds want as row key (nil: no row).
	inAll := func(what string, want *row) {
		t.Helper()
		waitFor(t, 30*time.Second, what+" in every database", func() (bool, string) {
			for _, n := range nodes {
				rows, err := readItems(ctx, n.db, "id = ?", keyID)
				if err != nil {
					return false, err.Error()
				}
				var got *row
				if len(rows) > 0 {
					got = rows[0]
				}
				if got.canon() != want.canon() {
					return false, fmt.Sprintf("%s holds %s", n.name, got.canon())
				}
			}
			return true, ""
		})
	}
	want := &row{ID: keyID, Name: strp("from-cli"), Status: strp("Active")}

	runCLICases(t, n1.agent, []cliCase{
		{name: "status", args: with("status"), wantOut: []string{"node      n1", "ready     true", "members   2", "alive", "  name ", "adapter   sqlite (capture capturing"}},
		{name: "status from env", args: []string{"status"}, env: []string{"LATTICE_API=" + n1.api, "LATTICE_TOKEN=" + c.token}, wantOut: []string{"node      n1"}},
		{name: "put", args: with("put", "items", key, "name=from-cli", "status=Active"), wantOut: []string{`"from-cli"`, `"collection": "items"`}},
	})
	inAll("the row put with the CLI", want)

	runCLICases(t, n1.agent, []cliCase{
		{name: "patch add", args: with("patch", "items", key, "tags+=red", "tags+=blue", "status=Paused"), wantOut: []string{`"blue"`, `"red"`, `"Paused"`}},
	})
	want.Status, want.Tags = strp("Paused"), []string{"blue", "red"}
	inAll("the CLI's patch", want)

	runCLICases(t, n1.agent, []cliCase{
		{name: "patch remove", args: with("patch", "items", key, "tags-=red")},
	})
	want.Tags = []string{"blue"}
	inAll("the CLI's set removal", want)

	// The merged record, served by another node, says where each value came
	// from.
	out, errOut, code := cli(t, nil, "get", "--api", nodes[2].api, "--token-file", c.tokenFile, "items", key)
	if code != 0 {
		t.Fatalf("get on n3: exit %d: %s", code, errOut)
	}
	var rec sidecar.Record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("get printed %q: %v", out, err)
	}
	if got, err := rowFromAPI(&rec); err != nil || got.canon() != want.canon() {
		t.Errorf("get on n3: %s (%v), want %s", got.canon(), err, want.canon())
	}
	if f := rec.Fields["status"]; f.Policy != "lww" || f.Replica == "" || f.Time.IsZero() {
		t.Errorf("get on n3: status provenance %+v", f)
	}

	runCLICases(t, n1.agent, []cliCase{
		{name: "list", args: with("get", "--after", "8999999", "--limit", "5", "items"), wantOut: []string{`"key": "9000001"`}},
		{name: "delete", args: with("delete", "items", key), wantOut: []string{"deleted"}},
	})
	inAll("the CLI's delete", nil)

	badToken := "wrong-token-0123456789"
	runCLICases(t, n1.agent, []cliCase{
		{name: "get deleted", args: with("get", "items", key), wantCode: 1, wantErr: []string{"(404)", "no record items/9000001"}, wantNoData: true},
		{name: "wrong token", args: []string{"put", "--api", n1.api, "items", "77", "name=x"}, env: []string{"LATTICE_TOKEN=" + badToken}, wantCode: 1,
			wantErr: []string{"missing or wrong bearer token (401)", "hint: send Authorization: Bearer"}, wantNoData: true},
		{name: "no token", args: []string{"status", "--api", n1.api}, wantCode: 1, wantErr: []string{"(401)"}, wantNoData: true},
		{name: "token file", args: []string{"status", "--api", n1.api, "--token-file", c.tokenFile}, wantOut: []string{"node      n1"}},
		{name: "not field=value", args: with("put", "items", "77", "novalue"), wantCode: 1, wantErr: []string{`"novalue" is not field=value`}, wantNoData: true},
		{name: "set op needs patch", args: with("put", "items", "77", "tags+=x"), wantCode: 1, wantErr: []string{"set operations need patch"}, wantNoData: true},
		{name: "set op on lww field", args: with("patch", "items", "5", "status+=x"), wantCode: 1,
			wantErr: []string{"add/remove needs an orset field (400)", "hint: set the field's policy to orset"}, wantNoData: true},
		{name: "key not an int", args: with("put", "items", "abc", "name=x"), wantCode: 1, wantErr: []string{"(400)"}, wantNoData: true},
		{name: "missing arguments", args: with("get"), wantCode: 2, wantErr: []string{"get takes COLLECTION [KEY], got 0 arguments", "Usage:\n  lattice get COLLECTION [KEY]"}, wantNoData: true},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 1, wantErr: []string{`unknown command "frobnicate"`}},
		{name: "help", args: []string{"--help"}, wantOut: []string{"agent ", "keygen ", "completion "}},
		{name: "agent help", args: []string{"agent", "--help"}, wantOut: []string{"--config FILE", "--join ADDR"}},
		{name: "version", args: []string{"version"}, wantOut: []string{"lattice " + sidecar.Version}},
		{name: "--version", args: []string{"--version"}, wantOut: []string{"lattice " + sidecar.Version}},
	})

	// An agent that is not there: the message says so, with a hint.
	gone := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	runCLICases(t, n1.agent, []cliCase{
		{name: "no agent", args: []string{"status", "--api", gone}, wantCode: 1, wantErr: []string{"connection refused", "hint: is the agent running"}},
	})
}

// TestAgentFromFlags starts an agent without a config file or adapter (the
// API is the system), writes through the CLI, stops it with SIGTERM and
// starts it again: what was acknowledged is still there.
func TestAgentFromFlags(t *testing.T) {
	c := newCluster(t, "")
	a := c.add("solo", "")
	a.args = []string{"--name", "solo", "--data", filepath.Join(a.dir, "store"), "--bind", a.gossip,
		"--api", a.api, "--token-file", c.tokenFile, "--key-file", c.keyFile, "--cluster", "lattice-e2e"}
	a.start(30 * time.Second)
	auth := []string{"--api", a.api, "--token-file", c.tokenFile}
	runCLICases(t, a, []cliCase{
		{name: "put", args: append(append([]string{"put"}, auth...), "notes", "n-1", "text=hello", "n=3"), wantOut: []string{`"hello"`}},
		{name: "patch", args: append(append([]string{"patch"}, auth...), "notes", "n-1", "n=4")},
	})
	a.stop(30 * time.Second)
	a.restart(30 * time.Second)
	runCLICases(t, a, []cliCase{
		{name: "get after restart", args: append(append([]string{"get"}, auth...), "notes", "n-1"), wantOut: []string{`"text": "hello"`, `"n": 4`}},
	})
	a.stop(30 * time.Second)
	c.checkLogs()
}

// TestAgentConfigErrors: a bad config stops the agent at once, with a
// message that names the key and exit status 1.
func TestAgentConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{"unknown key", []string{"--config", write("typo.yaml", "node: a\ndata: "+dir+"/a\nadaptr: {kind: sqlite}\n")},
			[]string{"field adaptr not found", "hint: see docs/config.md"}},
		{"missing node", []string{"--config", write("nonode.yaml", "data: "+dir+"/b\n")}, []string{"config node: missing", "hint: give every sidecar a unique name"}},
		{"bad adapter", []string{"--name", "c", "--data", dir + "/c", "--adapter", "oracle"}, []string{`config adapter.kind: unknown adapter "oracle"`}},
		{"sqlite without dsn", []string{"--name", "d", "--data", dir + "/d", "--adapter", "sqlite"}, []string{"config adapter.dsn: missing for adapter sqlite"}},
		{"sqlite file missing", []string{"--name", "d2", "--data", dir + "/d2", "--adapter", "sqlite", "--dsn", dir + "/crm-typo.db"},
			[]string{"sqlite database " + dir + "/crm-typo.db does not exist", "hint: check the path (adapter.dsn) for a typo; to start from a new, empty database, set adapter.create: true"}},
		{"bad policy", []string{"--config", write("policy.yaml", "node: e\ndata: "+dir+"/e\ncollections:\n  items:\n    fields:\n      tags: sometimes\n")},
			[]string{"config collections.items.fields.tags"}},
		{"short token", []string{"--config", write("token.yaml", "node: f\ndata: "+dir+"/f\napi:\n  addr: 127.0.0.1:0\n  token_file: "+write("short.token", "abc\n")+"\n")},
			[]string{"config api.token_file", "shorter than 16 characters"}},
		{"no config file", []string{"--config", filepath.Join(dir, "missing.yaml")}, []string{"read config", "no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := cli(t, nil, append([]string{"agent"}, tc.args...)...)
			if code != 1 {
				t.Errorf("exit status %d, want 1; stderr:\n%s", code, errOut)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}
