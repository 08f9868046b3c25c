package apitest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PocketBaseToolchain is the Go toolchain the PocketBase server is built
// with: PocketBase v0.40 needs Go 1.27, newer than Lattice's.
const PocketBaseToolchain = "go1.27.3"

// The superuser every PocketBase server starts with.
const (
	PocketBaseEmail    = "lattice@example.com"
	PocketBasePassword = "lattice-test-password"
)

// PocketBase is a running PocketBase server on a free port of 127.0.0.1,
// with a superuser (PocketBaseEmail, PocketBasePassword) and a data
// directory of its own.
type PocketBase struct {
	// URL is the server's root, e.g. http://127.0.0.1:41234.
	URL string
	// Dir is the data directory (pb_data).
	Dir string

	t     testing.TB
	bin   string
	hooks string
	port  int
	cmd   *exec.Cmd
	out   *logBuffer
	pw    string
	mu    sync.Mutex // guards token
	token string
}

// PocketBaseOptions configure a PocketBase server.
type PocketBaseOptions struct {
	// HooksDir is a directory of pb_hooks/*.pb.js files to load (none when
	// empty).
	HooksDir string
}

// StartPocketBase builds PocketBase when its cached binary is missing,
// starts it with a fresh data directory and a superuser, and stops it when
// t ends. It skips t unless LATTICE_INTEGRATION=1 and the server can be
// built.
func StartPocketBase(t testing.TB, opts PocketBaseOptions) *PocketBase {
	t.Helper()
	requireIntegration(t)
	bin := BuildPocketBase(t)
	port := freePort(t)
	p := &PocketBase{t: t, bin: bin, hooks: opts.HooksDir, port: port, Dir: t.TempDir(),
		URL: "http://127.0.0.1:" + strconv.Itoa(port), pw: PocketBasePassword}
	p.cli("superuser", "upsert", PocketBaseEmail, p.pw)
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// pocketBaseSource returns the directory of the PocketBase module.
func pocketBaseSource() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("no caller information")
	}
	dir := filepath.Join(filepath.Dir(file), "pocketbase")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", err
	}
	return dir, nil
}

var buildMu sync.Mutex

// BuildPocketBase returns the path of the PocketBase binary, building it
// first when the cache lacks the one for the module's current source. It
// skips t (fails it under LATTICE_REQUIRE_INTEGRATION=1) when it cannot
// build: no go command, or no toolchain download.
func BuildPocketBase(t testing.TB) string {
	t.Helper()
	src, err := pocketBaseSource()
	if err != nil {
		missing(t, "the PocketBase server's source: %v", err)
	}
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", PocketBaseToolchain, runtime.GOOS, runtime.GOARCH)
	key := hex.EncodeToString(h.Sum(nil))[:16]
	dir := filepath.Join(cacheDir(), "pocketbase-"+key)
	bin := filepath.Join(dir, "pocketbase")

	buildMu.Lock() // flock does not exclude the goroutines of one process
	defer buildMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin // another process built it while this one waited
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		missing(t, "no go command on PATH to build PocketBase with")
	}
	tmp := bin + ".tmp"
	start := time.Now()
	cmd := exec.Command(goCmd, "build", "-buildvcs=false", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN="+PocketBaseToolchain, "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		missing(t, "build PocketBase with %s (the go command fetches it through the module proxy): %v\n%s",
			PocketBaseToolchain, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built PocketBase in %s: %s", time.Since(start).Round(time.Second), bin)
	return bin
}

// cli runs a PocketBase command on the server's data directory.
func (p *PocketBase) cli(args ...string) {
	p.t.Helper()
	cmd := exec.Command(p.bin, append(args, "--dir", p.Dir)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		p.t.Fatalf("pocketbase %v: %v\n%s", args, err, out)
	}
}

// Start starts the server (again) on its port and data directory and
// waits until /api/health answers.
func (p *PocketBase) Start() {
	p.t.Helper()
	args := []string{"serve", "--http", "127.0.0.1:" + strconv.Itoa(p.port), "--dir", p.Dir}
	if p.hooks != "" {
		args = append(args, "--hooksDir", p.hooks)
	}
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.SysProcAttr = procAttr()
	p.out = &logBuffer{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	if err := waitReady(p.URL+"/api/health", 30*time.Second); err != nil {
		p.Stop()
		p.t.Fatalf("PocketBase did not start: %v\n%s", err, p.out.String())
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for
// it; its data directory keeps the records.
func (p *PocketBase) Stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// Restart stops the server and starts it again on the same port and data.
func (p *PocketBase) Restart() {
	p.t.Helper()
	p.Stop()
	p.Start()
}

// Token logs the superuser in (once; again after SetPassword) and returns
// the token, which PocketBase takes as "Authorization: <token>".
func (p *PocketBase) Token() string {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.token == "" {
		var out struct{ Token string }
		do(p.t, "POST", p.URL+"/api/collections/_superusers/auth-with-password", nil,
			map[string]string{"identity": PocketBaseEmail, "password": p.pw}, 200, &out)
		p.token = out.Token
	}
	return p.token
}

// SetPassword changes the superuser's password with the CLI, which also
// invalidates the tokens issued so far.
func (p *PocketBase) SetPassword(pw string) {
	p.t.Helper()
	p.cli("superuser", "upsert", PocketBaseEmail, pw)
	p.mu.Lock()
	p.pw, p.token = pw, ""
	p.mu.Unlock()
}

// Password returns the superuser's password.
func (p *PocketBase) Password() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pw
}

// Do sends a request as the superuser and decodes the JSON response into
// out (nil: discarded); it fails t unless the status is want.
func (p *PocketBase) Do(method, path string, body any, want int, out any) {
	p.t.Helper()
	do(p.t, method, p.URL+path, nethttp.Header{"Authorization": {p.Token()}}, body, want, out)
}

// Field is a collection field as PocketBase's API takes it, e.g.
// {"name": "email", "type": "email"}.
type Field map[string]any

// CreateCollection creates a base collection with fields and the autodate
// fields created and updated (set on create; updated also on update). Its
// API rules are left empty: only superusers may use it.
func (p *PocketBase) CreateCollection(name string, fields ...Field) {
	p.t.Helper()
	all := append([]Field{}, fields...)
	all = append(all,
		Field{"name": "created", "type": "autodate", "onCreate": true},
		Field{"name": "updated", "type": "autodate", "onCreate": true, "onUpdate": true})
	p.Do("POST", "/api/collections", map[string]any{"name": name, "type": "base", "fields": all}, 200, nil)
}

// SetTokenDuration sets how long the superusers' auth tokens last
// (PocketBase takes at least 10s).
func (p *PocketBase) SetTokenDuration(d time.Duration) {
	p.t.Helper()
	p.Do("PATCH", "/api/collections/_superusers", map[string]any{"authToken": map[string]any{"duration": int(d.Seconds())}}, 200, nil)
}

// Records returns a collection's records by ID (at most 1000).
func (p *PocketBase) Records(coll string) map[string]map[string]any {
	p.t.Helper()
	var out struct{ Items []map[string]any }
	p.Do("GET", "/api/collections/"+coll+"/records?perPage=1000&skipTotal=1", nil, 200, &out)
	return byID(out.Items)
}

// Log returns what the server printed since it last started.
func (p *PocketBase) Log() string {
	if p.out == nil {
		return ""
	}
	return p.out.String()
}

// logBuffer is a server's output, written by the process's copying
// goroutines while a test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
