package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Environment variables that gate integration tests.
const (
	// EnvIntegration set to 1 enables tests that start servers.
	EnvIntegration = "LATTICE_INTEGRATION"
	// EnvRequire set to 1 makes missing binaries a failure, not a skip.
	EnvRequire = "LATTICE_REQUIRE_INTEGRATION"
	// EnvBinDir names a directory holding initdb and postgres.
	EnvBinDir = "PGTEST_BINDIR"
)

// ErrNoBinaries is returned by FindBinaries when no PostgreSQL installation
// is found.
var ErrNoBinaries = errors.New("pgtest: postgresql binaries not found")

// Binaries is a PostgreSQL installation: the directory holding initdb and
// postgres, and its major version.
type Binaries struct {
	Dir     string
	Version int
}

// FindBinaries looks for initdb and postgres in PGTEST_BINDIR, then in the
// directory pg_config --bindir names, then in /usr/lib/postgresql/*/bin,
// newest version first.
func FindBinaries() (Binaries, error) {
	var dirs []string
	if d := os.Getenv(EnvBinDir); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(versioned, func(i, j int) bool {
		return dirVersion(versioned[i]) > dirVersion(versioned[j])
	})
	dirs = append(dirs, versioned...)
	for _, d := range dirs {
		if !isExec(filepath.Join(d, "initdb")) || !isExec(filepath.Join(d, "postgres")) {
			continue
		}
		v, err := binVersion(filepath.Join(d, "postgres"))
		if err != nil {
			continue
		}
		return Binaries{Dir: d, Version: v}, nil
	}
	return Binaries{}, errors.WithHint(ErrNoBinaries,
		"install PostgreSQL (Debian: apt-get install postgresql) or set PGTEST_BINDIR")
}

func dirVersion(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// binVersion parses the major version from "postgres (PostgreSQL) 15.8 ...".
func binVersion(postgres string) (int, error) {
	out, err := exec.Command(postgres, "--version").Output()
	if err != nil {
		return 0, errors.Wrapf(err, "run %s --version", postgres)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 {
		return 0, errors.Newf("unexpected version output %q", out)
	}
	major, _, _ := strings.Cut(fields[2], ".")
	v, err := strconv.Atoi(major)
	if err != nil {
		return 0, errors.Newf("unexpected version output %q", out)
	}
	return v, nil
}

// Require skips t unless LATTICE_INTEGRATION=1, and returns the binaries.
// Missing binaries skip t too, unless LATTICE_REQUIRE_INTEGRATION=1, which
// fails it instead.
func Require(t testing.TB) Binaries {
	t.Helper()
	if os.Getenv(EnvIntegration) != "1" {
		t.Skipf("integration test: set %s=1 (make test-integration) to run it", EnvIntegration)
	}
	return RequireBinaries(t)
}

// RequireBinaries is Require without the LATTICE_INTEGRATION gate, for
// benchmarks, which only run when asked for.
func RequireBinaries(t testing.TB) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but: %v", EnvRequire, err)
		}
		t.Skipf("skipping: %v", err)
	}
	return b
}

// Options configure a server.
type Options struct {
	// Settings are server settings passed as -c name=value. They override
	// DefaultSettings; an empty value removes a default.
	Settings map[string]string
}

// DefaultSettings are the settings every server starts with.
func DefaultSettings() map[string]string {
	return map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "32",
		"max_wal_senders":       "32",
		"max_connections":       "60",
		"fsync":                 "off",
		"full_page_writes":      "off",
		"shared_buffers":        "32MB",
		"listen_addresses":      "127.0.0.1",
		"log_min_messages":      "warning",
		"log_timezone":          "UTC",
		"timezone":              "UTC",
	}
}

// Server is one throwaway PostgreSQL server. Its methods are safe for
// concurrent use.
type Server struct {
	bin     Binaries
	dir     string // owns everything below
	data    string
	sock    string
	logPath string
	port    int
	args    []string
	cred    *syscall.Credential
	owner   [2]int // uid, gid for the directories, or -1
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	closed  bool
}

// Start starts a server for t (see Require for when it skips) and registers
// its Close with t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Require(t)
	return startWith(t, bin, opts)
}

// StartForBenchmark is Start for benchmarks: it needs the binaries but not
// LATTICE_INTEGRATION.
func StartForBenchmark(b testing.TB, opts Options) *Server {
	b.Helper()
	bin := RequireBinaries(b)
	return startWith(b, bin, opts)
}

func startWith(t testing.TB, bin Binaries, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := New(ctx, bin, opts)
	if err != nil {
		t.Fatalf("start postgresql: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close postgresql: %v", err)
		}
	})
	return s
}

// New creates a data directory with initdb and starts a server on it.
func New(ctx context.Context, bin Binaries, opts Options) (s *Server, err error) {
	dir, err := os.MkdirTemp("", "lattice-pgtest-")
	if err != nil {
		return nil, errors.Wrap(err, "create server directory")
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, errors.Wrap(err, "chmod server directory")
	}
	s = &Server{
		bin:     bin,
		dir:     dir,
		data:    filepath.Join(dir, "data"),
		sock:    filepath.Join(dir, "sock"),
		logPath: filepath.Join(dir, "server.log"),
		owner:   [2]int{-1, -1},
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.WithHint(errors.Wrap(err, "postgresql refuses to run as root and there is no postgres user"),
				"create a postgres OS user (the Debian package does) or run the tests as another user")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		s.owner = [2]int{uid, gid}
	}
	for _, d := range []string{s.data, s.sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, errors.Wrapf(err, "create %s", d)
		}
	}
	if err := s.chown(s.data, s.sock); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, errors.Wrap(err, "create server log")
	}
	_ = logf.Close()
	if err := s.chown(s.logPath); err != nil {
		return nil, err
	}

	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	settings := DefaultSettings()
	settings["unix_socket_directories"] = s.sock
	for k, v := range opts.Settings {
		if v == "" {
			delete(settings, k)
			continue
		}
		settings[k] = v
	}
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		s.args = append(s.args, "-c", k+"="+settings[k])
	}

	// A free port can be taken by someone else before postgres binds it:
	// retry with another one.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.Start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt >= 3 || !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "could not create any TCP/IP sockets") {
			return nil, err
		}
	}
}

func (s *Server) chown(paths ...string) error {
	if s.owner[0] < 0 {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, s.owner[0], s.owner[1]); err != nil {
			return errors.Wrapf(err, "chown %s", p)
		}
	}
	return nil
}

// setup makes cmd run as the server's user in its directory, its output
// going to the server log, which the caller closes once cmd has started.
func (s *Server) setup(cmd *exec.Cmd) (*os.File, error) {
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, errors.Wrap(err, "open server log")
	}
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = procAttr(s.cred)
	return logf, nil
}

func (s *Server) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin.Dir, "initdb"), "-D", s.data, "-U", "postgres", "--auth=trust",
		"--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions")
	logf, err := s.setup(cmd)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := cmd.Run(); err != nil {
		return errors.Wrapf(err, "initdb %s: %s", s.data, s.LogTail(20))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, errors.Wrap(err, "find a free port")
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts the server on its data directory and waits until it accepts
// connections. It is an error to start a running server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pgtest: server is closed")
	}
	if s.cmd != nil {
		return errors.New("pgtest: server is already running")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.startLocked(ctx)
		if err == nil {
			return nil
		}
		// After SIGKILL the old backends need a moment to notice that the
		// postmaster is gone and release shared memory.
		msg := err.Error()
		if !strings.Contains(msg, "shared memory block") || !strings.Contains(msg, "still in use") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) startLocked(ctx context.Context) error {
	mark := s.logSize()
	args := append([]string{"-D", s.data, "-p", strconv.Itoa(s.port)}, s.args...)
	// Not bound to ctx: the server outlives the call that starts it.
	cmd := exec.Command(filepath.Join(s.bin.Dir, "postgres"), args...)
	logf, err := s.setup(cmd)
	if err != nil {
		return err
	}
	err = cmd.Start()
	_ = logf.Close()
	if err != nil {
		return errors.Wrap(err, "start postgres")
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited

	// Poll until the server accepts connections, it exits, or time is up.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, ccancel := context.WithTimeout(wctx, time.Second)
		conn, err := pgconn.Connect(cctx, s.DSN("postgres"))
		ccancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			s.cmd, s.exited = nil, nil
			return errors.Newf("postgres exited during start-up: %s", s.logSince(mark))
		case <-wctx.Done():
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-exited
			s.cmd, s.exited = nil, nil
			return errors.Wrapf(wctx.Err(), "postgres did not accept connections: %v: %s", err, s.logSince(mark))
		case <-tick.C:
		}
	}
}

// Stop shuts the server down cleanly (fast shutdown: open sessions are
// disconnected) and waits for it to exit.
func (s *Server) Stop(ctx context.Context) error {
	return s.signal(ctx, syscall.SIGINT)
}

// Kill kills the postmaster with SIGKILL, as a crash would, and waits for it
// to exit. Start then runs crash recovery.
func (s *Server) Kill() error {
	return s.signal(context.Background(), syscall.SIGKILL)
}

// Restart is Stop then Start.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.Start(ctx)
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

func (s *Server) signal(ctx context.Context, sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("pgtest: server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return errors.Wrapf(err, "signal postgres")
	}
	select {
	case <-s.exited:
	case <-ctx.Done():
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd, s.exited = nil, nil
		return errors.Wrap(ctx.Err(), "wait for postgres to stop")
	}
	s.cmd, s.exited = nil, nil
	return nil
}

// Close stops the server (immediate shutdown) if it runs and removes its
// directory. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	return errors.Wrap(os.RemoveAll(s.dir), "remove server directory")
}

// Port is the TCP port the server listens on (on 127.0.0.1).
func (s *Server) Port() int { return s.port }

// Version is the server's major version.
func (s *Server) Version() int { return s.bin.Version }

// Dir is the server's directory (data directory, socket and log below it).
func (s *Server) Dir() string { return s.dir }

// DSN returns a connection string for database db as the postgres superuser.
func (s *Server) DSN(db string) string {
	return s.DSNAs("postgres", db)
}

// DSNAs returns a connection string for database db as role user.
func (s *Server) DSNAs(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=15", user, s.port, db)
}

// CreateDB creates database name and returns its DSN.
func (s *Server) CreateDB(ctx context.Context, name string) (string, error) {
	if err := s.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}

// Exec runs sql (one or more statements) in database db as the superuser.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	conn, err := pgconn.Connect(ctx, s.DSN(db))
	if err != nil {
		return errors.Wrapf(err, "connect to %s", db)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return errors.Wrapf(err, "exec in %s", db)
	}
	return nil
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func (s *Server) logSize() int64 {
	st, err := os.Stat(s.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

func (s *Server) logSince(off int64) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no server log)"
	}
	if off > int64(len(b)) {
		off = 0
	}
	out := strings.TrimSpace(string(b[off:]))
	if len(out) > 4000 {
		out = "..." + out[len(out)-4000:]
	}
	return out
}
