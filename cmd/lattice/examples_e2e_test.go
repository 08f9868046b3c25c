package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters/http/apitest"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
)

// readmeBlock is one fenced code block of a README: its info string
// ("sh", "text", ...) and its text.
type readmeBlock struct {
	lang, text string
}

var fenceRE = regexp.MustCompile("(?ms)^```([a-z]*)\n(.*?)^```\n")

// readmeBlocks returns the fenced code blocks of a README, in order.
func readmeBlocks(readme string) []readmeBlock {
	var out []readmeBlock
	for _, m := range fenceRE.FindAllStringSubmatch(readme, -1) {
		out = append(out, readmeBlock{lang: m[1], text: m[2]})
	}
	return out
}

// runReadme runs a README's walkthrough in dir, step by step: each sh
// block in a new bash (set -eu), with env; a text block right after a sh
// block is what that block must print, awaited (the block run again) until
// it does, since what one system wrote reaches the other a moment later.
// Blocks followed by their output must therefore only read.
func runReadme(t *testing.T, dir, readme string, env []string) {
	t.Helper()
	blocks := readmeBlocks(readme)
	for i, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		run := func() (string, error) {
			cmd := exec.Command("bash", "-euc", b.text)
			cmd.Dir, cmd.Env = dir, env
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if i+1 >= len(blocks) || blocks[i+1].lang != "text" {
			out, err := run()
			if err != nil {
				t.Fatalf("step %d:\n%s\nfailed: %v\n%s", i, b.text, err, out)
			}
			t.Logf("step %d:\n%s%s", i, b.text, out)
			continue
		}
		want := strings.TrimSpace(blocks[i+1].text)
		waitFor(t, 30*time.Second, fmt.Sprintf("step %d to print the README's output", i), func() (bool, string) {
			out, err := run()
			if err != nil {
				return false, fmt.Sprintf("%s\nfailed: %v\n%s", b.text, err, out)
			}
			if got := strings.TrimSpace(out); got != want {
				return false, fmt.Sprintf("%s\nprinted\n%s\nwant\n%s", b.text, got, want)
			}
			return true, ""
		})
	}
}

// The walkthrough of examples/crm-erp-mapped, run as its README says: a
// SQLite CRM and a PostgreSQL ERP with different schemas, each sidecar
// with its mapping, every command and every output the README shows. Only
// the ports change (free ones), and the build (the test's own binary).
func TestIntegrationExampleCRMERPMapped(t *testing.T) {
	pgtest.Require(t)
	if _, err := exec.LookPath("sqlite3"); err != nil {
		if os.Getenv(pgtest.EnvRequire) == "1" {
			t.Fatalf("%s=1 but the sqlite3 shell is missing (apt-get install sqlite3)", pgtest.EnvRequire)
		}
		t.Skip("the sqlite3 shell is missing (apt-get install sqlite3)")
	}
	bin := latticeBinary(t)
	const example = "../../examples/crm-erp-mapped"
	// Run as root, pg.sh runs PostgreSQL's tools as the postgres user, in
	// this directory: it must be able to enter it.
	tmp, err := os.MkdirTemp("", "lattice-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "crm-erp-mapped")
	if err := os.MkdirAll(filepath.Join(tmp, "postgres"), 0o755); err != nil {
		t.Fatal(err)
	}
	pgPort := freePort(t)
	subst := strings.NewReplacer(
		"cd examples/crm-erp-mapped", "true",
		"make -C ../.. build", "true",
		"../../bin/lattice", bin,
		"127.0.0.1:5498", fmt.Sprintf("127.0.0.1:%d", pgPort),
		"127.0.0.1:7956", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7957", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7081", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7082", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"crm.sql", "erp.sql", "pg.sh", "crm.yaml", "erp.yaml"} {
		copyExampleFile(t, filepath.Join(example, f), filepath.Join(dir, f), subst, strings.HasSuffix(f, ".yaml"))
	}
	copyExampleFile(t, "../../examples/postgres/pg.sh", filepath.Join(tmp, "postgres", "pg.sh"), nil, false)
	readme, err := os.ReadFile(filepath.Join(example, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"LATTICE="+bin,
		fmt.Sprintf("PGPORT=%d", pgPort),
		fmt.Sprintf("LATTICE_PG_DIR=%s", filepath.Join(os.TempDir(), fmt.Sprintf("lattice-example-mapped-test-%d", pgPort))),
	)
	t.Cleanup(func() {
		// What the README's last step does, should the test stop before it.
		stopExampleAgents(t, dir, "crm.pid", "erp.pid")
		cmd := exec.Command("./pg.sh", "destroy")
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("pg.sh destroy: %v\n%s", err, out)
		}
		if t.Failed() {
			for _, f := range []string{"crm.log", "erp.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("%s:\n%s", f, b)
				}
			}
		}
	})
	runReadme(t, dir, subst.Replace(string(readme)), env)
}

// The walkthrough of examples/crm-erp, run as its README says: PocketBase
// as the CRM (the http adapter), a PostgreSQL ERP and a SQLite web app,
// each sidecar with its mapping, every command and every output the README
// shows. Only the ports change (free ones), and the builds: the test's own
// lattice binary, and the PocketBase the apitest package builds and caches
// (pb.sh takes it from LATTICE_POCKETBASE).
func TestIntegrationExampleCRMERP(t *testing.T) {
	pgtest.Require(t)
	for _, tool := range []string{"sqlite3", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(pgtest.EnvRequire) == "1" {
				t.Fatalf("%s=1 but %s is missing (apt-get install %s)", pgtest.EnvRequire, tool, tool)
			}
			t.Skipf("%s is missing (apt-get install %s)", tool, tool)
		}
	}
	pocketbase := apitest.BuildPocketBase(t)
	bin := latticeBinary(t)
	const example = "../../examples/crm-erp"
	// Run as root, pg.sh runs PostgreSQL's tools as the postgres user, in
	// this directory: it must be able to enter it.
	tmp, err := os.MkdirTemp("", "lattice-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "crm-erp")
	for _, d := range []string{filepath.Join(tmp, "postgres"), filepath.Join(dir, "pb_migrations")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pgPort, pbPort := freePort(t), freePort(t)
	subst := strings.NewReplacer(
		"cd examples/crm-erp", "true",
		"make -C ../.. build", "true",
		"../../bin/lattice", bin,
		"127.0.0.1:5497", fmt.Sprintf("127.0.0.1:%d", pgPort),
		"127.0.0.1:8097", fmt.Sprintf("127.0.0.1:%d", pbPort),
		"127.0.0.1:7966", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7967", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7968", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7091", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7092", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"127.0.0.1:7093", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	)
	migrations, err := filepath.Glob(filepath.Join(example, "pb_migrations", "*.js"))
	if err != nil || len(migrations) == 0 {
		t.Fatalf("no migrations in %s/pb_migrations: %v", example, err)
	}
	files := []string{"erp.sql", "web.sql", "pg.sh", "pb.sh", "crm.yaml", "erp.yaml", "web.yaml", "crm-api.yaml"}
	for _, m := range migrations {
		files = append(files, filepath.Join("pb_migrations", filepath.Base(m)))
	}
	for _, f := range files {
		copyExampleFile(t, filepath.Join(example, f), filepath.Join(dir, f), subst, strings.HasSuffix(f, ".yaml"))
	}
	copyExampleFile(t, "../../examples/postgres/pg.sh", filepath.Join(tmp, "postgres", "pg.sh"), nil, false)
	readme, err := os.ReadFile(filepath.Join(example, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"LATTICE="+bin,
		"LATTICE_POCKETBASE="+pocketbase,
		fmt.Sprintf("PGPORT=%d", pgPort),
		fmt.Sprintf("LATTICE_PG_DIR=%s", filepath.Join(os.TempDir(), fmt.Sprintf("lattice-example-crm-erp-test-%d", pgPort))),
		fmt.Sprintf("PB_PORT=%d", pbPort),
		fmt.Sprintf("LATTICE_PB_DIR=%s", filepath.Join(tmp, "pb")),
	)
	t.Cleanup(func() {
		// What the README's last step does, should the test stop before it.
		stopExampleAgents(t, dir, "crm.pid", "erp.pid", "web.pid")
		if t.Failed() {
			// PocketBase's log is in its directory, which pb.sh destroy removes.
			for _, f := range []string{"crm.log", "erp.log", "web.log", "../pb/server.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("%s:\n%s", f, b)
				}
			}
		}
		for _, script := range []string{"./pb.sh", "./pg.sh"} {
			cmd := exec.Command(script, "destroy")
			cmd.Dir, cmd.Env = dir, env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("%s destroy: %v\n%s", script, err, out)
			}
		}
	})
	runReadme(t, dir, subst.Replace(string(readme)), env)
}

// copyExampleFile copies an example's file, with its mode, rewriting it
// with subst when rewrite is set.
func copyExampleFile(t *testing.T, from, to string, subst *strings.Replacer, rewrite bool) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if rewrite {
		b = []byte(subst.Replace(string(b)))
	}
	if err := os.WriteFile(to, b, st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}

// stopExampleAgents stops the agents whose process IDs the files in dir
// hold (SIGTERM) and waits until they are gone.
func stopExampleAgents(t *testing.T, dir string, pidFiles ...string) {
	t.Helper()
	for _, f := range pidFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 || syscall.Kill(pid, syscall.SIGTERM) != nil {
			continue
		}
		// The agent is no child of the test's: wait until it is gone,
		// so that the directory is not removed under it.
		if _, ok := poll(10*time.Second, func() (bool, string) { return syscall.Kill(pid, 0) != nil, "" }); !ok {
			t.Errorf("the agent of %s did not stop", f)
		}
	}
}
