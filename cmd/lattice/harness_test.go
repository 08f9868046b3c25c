package main

// The process harness of the end-to-end tests: the lattice binary is built
// once per test run (with -race when the test binary has it), and each test
// runs agents as child processes, each with its own YAML config, store
// directory and log file, talking to each other over loopback with
// encrypted gossip. Children run in their own process group and die with the
// test binary (Pdeathsig); t.Cleanup kills whatever is left. Nothing waits on
// a sleep: every wait polls a condition against a deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/sidecar"
	"go.uber.org/goleak"
)

// raceEnabled is set by race_test.go when the test binary is built with
// -race; the agents are then built with -race too, and a data race in an
// agent fails the test through its log.
var raceEnabled bool

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if buildDir != "" {
			_ = os.RemoveAll(buildDir)
		}
		os.Exit(code)
	}))
}

// latticeBinary builds the lattice binary once for the whole test run and
// returns its path. Tests that need no agent do not pay for the build.
func latticeBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lattice-e2e-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "lattice")
		// go test puts its own GOROOT/bin first on the test's PATH.
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("find the go command to build lattice: %v", err)
			return
		}
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, ".")
		cmd := exec.Command(goTool, args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build lattice: %v", buildErr)
	}
	return binPath
}

// waitFor polls cond every 20 ms until it holds or timeout passes; the
// failure names what was awaited and what cond last reported.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	if why, ok := poll(timeout, cond); !ok {
		t.Fatalf("timed out after %s waiting for %s: %s", timeout, what, why)
	}
}

// poll is waitFor without the test: it reports the last reason and whether
// cond held in time.
func poll(timeout time.Duration, cond func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return "", true
		}
		if time.Now().After(deadline) {
			return why, false
		}
		<-tick.C
	}
}

// envShowLogs set to 1 prints every agent's whole log at the end of each
// test, failed or not.
const envShowLogs = "LATTICE_E2E_LOGS"

// raceEnv configures the race detector in race-enabled children: report
// every race (the log check fails the test), and do not linger for a second
// at exit.
const raceEnv = "GORACE=halt_on_error=0 atexit_sleep_ms=0"

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// freePort returns a loopback port that was free for both TCP and UDP (the
// gossip port needs both) and that this test binary has not handed out
// before. Another process may still take it before the agent binds it:
// start retries with new ports when an agent reports the address in use.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if given[port] {
			continue
		}
		given[port] = true
		return port
	}
	t.Fatal("no port free for both TCP and UDP after 100 tries")
	return 0
}

// agent is one `lattice agent` child process and everything it owns: its
// directory, config file, log file and ports. Restarts reuse them.
type agent struct {
	t       *testing.T
	c       *cluster
	name    string
	dir     string
	cfgPath string
	logPath string
	gossip  string // host:port
	api     string // host:port
	// adapter renders the adapter section of the config.
	adapter string
	// args, when set, replace "--config FILE" on the command line.
	args []string
	// env is added to the process's environment.
	env []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error
	starts  int
	client  *sidecar.Client
}

// cluster is a set of agents that share a gossip key, an API token, a
// cluster label and the collections' rules.
type cluster struct {
	t           *testing.T
	dir         string
	keyFile     string
	tokenFile   string
	token       string
	collections string // YAML of the collections section, indented by two
	agents      []*agent
}

// newCluster makes the shared files: the gossip key (with `lattice keygen`)
// and the API token.
func newCluster(t *testing.T, collections string) *cluster {
	t.Helper()
	bin := latticeBinary(t)
	c := &cluster{t: t, dir: t.TempDir(), collections: collections}
	c.keyFile = filepath.Join(c.dir, "gossip.key")
	if out, err := exec.Command(bin, "keygen", "--out", c.keyFile).CombinedOutput(); err != nil {
		t.Fatalf("lattice keygen: %v\n%s", err, out)
	}
	c.token = "e2e-token-" + strings.Repeat("x", 22)
	c.tokenFile = filepath.Join(c.dir, "api.token")
	if err := os.WriteFile(c.tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// add declares an agent; adapter is the YAML of its adapter section
// (indented by two). Its ports are chosen now; it starts with start.
func (c *cluster) add(name, adapter string) *agent {
	t := c.t
	a := &agent{
		t:       t,
		c:       c,
		name:    name,
		dir:     filepath.Join(c.dir, name),
		adapter: adapter,
		gossip:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		api:     fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a.cfgPath = filepath.Join(a.dir, "lattice.yaml")
	a.logPath = filepath.Join(a.dir, "agent.log")
	c.agents = append(c.agents, a)
	t.Cleanup(func() {
		a.killGroup()
		switch {
		case os.Getenv(envShowLogs) == "1":
			t.Logf("--- %s log (%s):\n%s", a.name, a.logPath, a.logText())
		case t.Failed():
			t.Logf("--- %s log (%s), last 150 lines:\n%s", a.name, a.logPath, a.logTail(150))
		}
		if a.client != nil {
			a.client.HTTP.CloseIdleConnections()
		}
	})
	return a
}

// writeConfigs (re)writes every agent's config: each joins all the others.
func (c *cluster) writeConfigs() {
	for _, a := range c.agents {
		a.writeConfig()
	}
}

func (a *agent) writeConfig() {
	var join []string
	for _, o := range a.c.agents {
		if o != a {
			join = append(join, o.gossip)
		}
	}
	cfg := fmt.Sprintf(`# written by the end-to-end tests
node: %s
data: %s
bind: %s
advertise: %s
join: [%s]
cluster: lattice-e2e
key_file: %s
api:
  addr: %s
  token_file: %s
adapter:
%s
collections:
%s
gossip:
  sync_interval: 500ms
apply:
  max_backoff: 1s
log:
  level: info
`, a.name, filepath.Join(a.dir, "store"), a.gossip, a.gossip, strings.Join(join, ", "),
		a.c.keyFile, a.api, a.c.tokenFile, a.adapter, a.c.collections)
	if err := os.WriteFile(a.cfgPath, []byte(cfg), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

// startAll writes the configs and starts every agent at once (each retries
// joining the others until one answers), then waits until all are ready
// and see each other.
func (c *cluster) startAll(timeout time.Duration) {
	c.t.Helper()
	c.writeConfigs()
	for _, a := range c.agents {
		a.launch()
	}
	for _, a := range c.agents {
		a.awaitReady(timeout)
	}
	c.waitMembers(timeout)
}

// waitMembers waits until every running agent sees all the others alive.
func (c *cluster) waitMembers(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, "every agent to see the others", func() (bool, string) {
		for _, a := range c.agents {
			s, err := a.status()
			if err != nil {
				return false, fmt.Sprintf("%s status: %v", a.name, err)
			}
			alive := 0
			for _, m := range s.Members {
				if m.State == "alive" {
					alive++
				}
			}
			if alive < len(c.agents)-1 {
				return false, fmt.Sprintf("%s sees %d live peers", a.name, alive)
			}
		}
		return true, ""
	})
}

// launch starts the process without waiting for it to be ready.
func (a *agent) launch() {
	a.t.Helper()
	bin := latticeBinary(a.t)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd != nil {
		a.t.Fatalf("%s: start while running", a.name)
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		a.t.Fatal(err)
	}
	a.starts++
	fmt.Fprintf(logf, "=== e2e: start %d of %s at %s\n", a.starts, a.name, time.Now().Format(time.RFC3339Nano))
	args := []string{"agent", "--config", a.cfgPath}
	if a.args != nil {
		args = append([]string{"agent"}, a.args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = a.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(append(os.Environ(), raceEnv), a.env...)
	cmd.SysProcAttr = childAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		a.t.Fatalf("start %s: %v", a.name, err)
	}
	done := make(chan struct{})
	a.cmd, a.done, a.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.waitErr = err
		a.mu.Unlock()
		close(done)
	}()
}

// awaitReady waits until /readyz answers 200. An agent that exits because
// a port it was given was taken in the meantime gets new ports and starts
// again.
func (a *agent) awaitReady(timeout time.Duration) {
	a.t.Helper()
	for attempt := 0; ; attempt++ {
		err := a.pollReady(timeout)
		if err == nil {
			return
		}
		if attempt < 3 && a.args == nil && a.exited() && strings.Contains(a.logSinceStart(), "address already in use") {
			a.t.Logf("%s: a port was taken; retrying with new ports", a.name)
			a.mu.Lock()
			a.cmd = nil
			a.mu.Unlock()
			a.gossip = fmt.Sprintf("127.0.0.1:%d", freePort(a.t))
			a.api = fmt.Sprintf("127.0.0.1:%d", freePort(a.t))
			a.client = nil
			a.c.writeConfigs()
			a.launch()
			continue
		}
		a.t.Fatalf("%s not ready: %v\n%s", a.name, err, a.logTail(60))
	}
}

func (a *agent) pollReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	defer hc.CloseIdleConnections()
	why, ok := poll(timeout, func() (bool, string) {
		if a.exited() {
			return true, ""
		}
		resp, err := hc.Get("http://" + a.api + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	if a.exited() {
		return fmt.Errorf("exited: %v", a.exitErr())
	}
	if !ok {
		return fmt.Errorf("after %s: %s", timeout, why)
	}
	return nil
}

// start launches the agent and waits until it is ready.
func (a *agent) start(timeout time.Duration) {
	a.t.Helper()
	a.launch()
	a.awaitReady(timeout)
}

func (a *agent) exited() bool {
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

func (a *agent) exitErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waitErr
}

// stop sends SIGTERM and waits for a clean exit (status 0).
func (a *agent) stop(timeout time.Duration) {
	a.t.Helper()
	a.terminate()
	a.awaitStop(timeout)
}

// terminate sends SIGTERM.
func (a *agent) terminate() {
	a.t.Helper()
	a.mu.Lock()
	cmd := a.cmd
	a.mu.Unlock()
	if cmd == nil {
		a.t.Fatalf("%s: stop while not running", a.name)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
}

// awaitExit waits for the agent to exit on its own and returns its exit
// status.
func (a *agent) awaitExit(timeout time.Duration) int {
	a.t.Helper()
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		a.killGroup()
		a.t.Fatalf("%s still running %s later\n%s", a.name, timeout, a.logTail(40))
	}
	a.mu.Lock()
	a.cmd = nil
	err := a.waitErr
	a.mu.Unlock()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		a.t.Fatalf("%s: wait: %v", a.name, err)
	}
	return 0
}

// awaitStop waits for the process to exit after terminate, and fails the
// test unless it exited with status 0.
func (a *agent) awaitStop(timeout time.Duration) {
	a.t.Helper()
	if code := a.awaitExit(timeout); code != 0 {
		a.t.Fatalf("%s exited with status %d after SIGTERM\n%s", a.name, code, a.logTail(40))
	}
	if !strings.Contains(a.logSinceStart(), "lattice agent stopped") {
		a.t.Errorf("%s exited without logging a clean stop", a.name)
	}
}

// stopAll stops every agent at once, gracefully.
func (c *cluster) stopAll(timeout time.Duration) {
	c.t.Helper()
	for _, a := range c.agents {
		a.terminate()
	}
	for _, a := range c.agents {
		a.awaitStop(timeout)
	}
}

// kill kills the agent's process group with SIGKILL, as a crash would, and
// waits for it to be gone.
func (a *agent) kill() {
	a.t.Helper()
	if !a.killGroup() {
		a.t.Fatalf("%s: kill while not running", a.name)
	}
}

func (a *agent) killGroup() bool {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return true
}

// restart starts the agent again with the same config after stop or kill.
func (a *agent) restart(timeout time.Duration) { a.t.Helper(); a.start(timeout) }

// logText returns the whole log (every start of the agent).
func (a *agent) logText() string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return string(b)
}

func (a *agent) logSinceStart() string {
	s := a.logText()
	if i := strings.LastIndex(s, "=== e2e: start "); i >= 0 {
		return s[i:]
	}
	return s
}

func (a *agent) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(a.logText(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// apiClient returns a client for the agent's API with the cluster token.
func (a *agent) apiClient() *sidecar.Client {
	a.t.Helper()
	if a.client == nil {
		c, err := sidecar.NewClient(a.api, a.c.token, "")
		if err != nil {
			a.t.Fatal(err)
		}
		c.HTTP.Timeout = 10 * time.Second
		a.client = c
	}
	return a.client
}

func (a *agent) status() (sidecar.Status, error) {
	var s sidecar.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.apiClient().Do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

// digest returns GET /v1/digest.
func (a *agent) digest() (string, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.apiClient().Digest(ctx)
}

// clusterSettled reports whether every agent has the same digest, nothing
// left to apply and nothing parked.
func (c *cluster) clusterSettled() (bool, string) {
	var first string
	for i, a := range c.agents {
		s, err := a.status()
		if err != nil {
			return false, fmt.Sprintf("%s status: %v", a.name, err)
		}
		if s.Pending > 0 {
			return false, fmt.Sprintf("%s has %d records to apply", a.name, s.Pending)
		}
		if len(s.Parked) > 0 {
			return false, fmt.Sprintf("%s parked %d records: %+v", a.name, len(s.Parked), s.Parked[0])
		}
		d, n, err := a.digest()
		if err != nil {
			return false, fmt.Sprintf("%s digest: %v", a.name, err)
		}
		if i == 0 {
			first = d
		} else if d != first {
			return false, fmt.Sprintf("%s digest %s (%d records) differs from %s's %s", a.name, d, n, c.agents[0].name, first)
		}
	}
	return true, ""
}

// cli runs the lattice binary with args and returns its output and exit
// status.
func cli(t testing.TB, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	// Built before the clock starts: the first build takes a while.
	bin := latticeBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(append(os.Environ(), raceEnv), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("lattice %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	if strings.Contains(errb.String(), "WARNING: DATA RACE") {
		t.Errorf("lattice %s: data race:\n%s", strings.Join(args, " "), errb.String())
	}
	return out.String(), errb.String(), code
}

// logProblems returns the lines of an agent's log that show a fault: ERROR
// records not matched by one of allowed, data races and panics. Within
// each run of the process, lines after it logged "shutting down" may also
// match shutdownNoise.
func (a *agent) logProblems(allowed ...*regexp.Regexp) []string {
	var bad []string
	sc := bufio.NewScanner(strings.NewReader(a.logText()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	race, stopping := false, false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== e2e: start "):
			stopping = false
		case strings.Contains(line, `msg="shutting down"`):
			stopping = true
		case strings.Contains(line, "WARNING: DATA RACE"):
			race = true
			bad = append(bad, line)
		case strings.HasPrefix(line, "panic:"), strings.HasPrefix(line, "fatal error:"):
			bad = append(bad, line)
		case strings.Contains(line, "level=ERROR"):
			ok := stopping && shutdownNoise.MatchString(line)
			for _, re := range allowed {
				ok = ok || re.MatchString(line)
			}
			if !ok {
				bad = append(bad, line)
			}
		}
	}
	if race {
		bad = append(bad, "(the race detector reported a data race: see the log)")
	}
	return bad
}

// shutdownNoise is memberlist's complaint when one of its timers (gossip,
// probe) fires after its transport closed: during a shutdown, the gossip
// package logs it at ERROR.
var shutdownNoise = regexp.MustCompile(`level=ERROR msg="Failed to send .*use of closed network connection.* component=memberlist`)

// checkLogs fails the test for every problem line in the agents' logs.
func (c *cluster) checkLogs(allowed ...*regexp.Regexp) {
	c.t.Helper()
	for _, a := range c.agents {
		if bad := a.logProblems(allowed...); len(bad) > 0 {
			c.t.Errorf("%s log has %d unexpected problem lines:\n%s", a.name, len(bad), strings.Join(bad, "\n"))
		}
	}
}

// metric returns the value of an unlabelled metric (or the sum over its
// labels) from the agent's /metrics.
func (a *agent) metric(name string) (float64, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+a.api+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+a.c.token)
	resp, err := a.apiClient().HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	// Lines are "name value" or "name{labels} value" (no timestamps).
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest)
		var v float64
		if _, err := fmt.Sscan(fields[len(fields)-1], &v); err == nil {
			sum += v
			found = true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found", name)
	}
	return sum, nil
}

// tableRow is a row of a compared table.
type tableRow interface {
	key() int64
	canon() string
}

// canonTags is a tags column in canonical form: sorted, and nil when empty
// (an OR-set without elements and NULL alike).
func canonTags(tags []string) []string {
	if len(tags) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(tags))
}

// settledTables reports whether the cluster has settled (clusterSettled)
// and every agent's system holds the same table; read returns the table of
// agent i's system, in key order.
func settledTables[R tableRow](c *cluster, read func(i int) ([]R, error)) (bool, string) {
	if ok, why := c.clusterSettled(); !ok {
		return false, why
	}
	first, err := read(0)
	if err != nil {
		return false, fmt.Sprintf("%s: %v", c.agents[0].name, err)
	}
	for i, a := range c.agents[1:] {
		rows, err := read(i + 1)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", a.name, err)
		}
		if d := diffTables(first, rows); d != "" {
			return false, fmt.Sprintf("%s and %s differ: %s", c.agents[0].name, a.name, d)
		}
	}
	return true, ""
}

// writeStats counts what a workload writer was told.
type writeStats struct {
	name       string
	acks, errs atomic.Int64
	lastErr    atomic.Value // string
}

func (s *writeStats) stats() *writeStats { return s }

func (s *writeStats) fail(err error) {
	s.errs.Add(1)
	s.lastErr.Store(err.Error())
}

// runPaced calls step every pace in a goroutine of wg until ctx is done.
// The pace bounds the load on a small machine; nothing waits on it for
// correctness.
func runPaced(ctx context.Context, wg *sync.WaitGroup, pace time.Duration, step func(context.Context)) {
	wg.Go(func() {
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			step(ctx)
		}
	})
}

// waitAcks waits until every writer in ws has had more writes acknowledged
// since the call.
func waitAcks[W interface{ stats() *writeStats }](t testing.TB, timeout time.Duration, what string, ws []W, more int64) {
	t.Helper()
	base := make([]int64, len(ws))
	for i, w := range ws {
		base[i] = w.stats().acks.Load()
	}
	waitFor(t, timeout, what, func() (bool, string) {
		for i, w := range ws {
			s := w.stats()
			if got := s.acks.Load() - base[i]; got < more {
				last, _ := s.lastErr.Load().(string)
				return false, fmt.Sprintf("writer %s has %d of %d (errors %d, last %q)", s.name, got, more, s.errs.Load(), last)
			}
		}
		return true, ""
	})
}

// diffTables describes how two tables (rows in key order) differ: the
// number of rows that do and the first five ("" if none).
func diffTables[R tableRow](a, b []R) string {
	ma, mb := map[int64]string{}, map[int64]string{}
	var ids []int64
	for _, r := range a {
		ma[r.key()] = r.canon()
		ids = append(ids, r.key())
	}
	for _, r := range b {
		mb[r.key()] = r.canon()
		if _, ok := ma[r.key()]; !ok {
			ids = append(ids, r.key())
		}
	}
	slices.Sort(ids)
	var out []string
	n := 0
	for _, id := range ids {
		x, okx := ma[id]
		y, oky := mb[id]
		if okx && oky && x == y {
			continue
		}
		n++
		if len(out) < 5 {
			if !okx {
				x = "(absent)"
			}
			if !oky {
				y = "(absent)"
			}
			out = append(out, fmt.Sprintf("id %d: %s vs %s", id, x, y))
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d rows differ; %s", n, strings.Join(out, "; "))
}

// jsonString renders v as compact JSON, for messages and comparisons.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}
