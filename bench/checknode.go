package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// checkNode is one sidecar of the checker, restartable on the same ports:
// in this process (Agent), or, given the lattice binary, as a child
// process that a restart may kill with SIGKILL. The checker talks to both
// through the HTTP API.
type checkNode struct {
	name, path, dir string
	// pg is the DSN of the node's PostgreSQL database; "" puts the node
	// beside its SQLite database, path.
	pg string
	// ns is the network namespace the sidecar runs in (checknet.go), or
	// "" for the checker's own.
	ns          string
	gossip, api string // host:port, kept across restarts
	bin         string // lattice binary; "" runs the sidecar in process
	log         *slog.Logger

	mu     sync.Mutex
	a      *sidecar.Agent
	cmd    *exec.Cmd
	done   chan struct{}
	client *sidecar.Client
	// respawns counts the sidecars started again after they stopped on
	// their own: one that starts while its PostgreSQL server restarts
	// exits, and is started again as systemd's Restart=on-failure would.
	respawns int
}

func newCheckNode(dir, name, bin string, log *slog.Logger) (*checkNode, error) {
	n := &checkNode{name: name, dir: dir, path: filepath.Join(dir, name+".db"), bin: bin, log: log.With("node", name)}
	gp, err := freePort()
	if err != nil {
		return nil, err
	}
	ap, err := freePort()
	if err != nil {
		return nil, err
	}
	n.gossip, n.api = fmt.Sprintf("127.0.0.1:%d", gp), fmt.Sprintf("127.0.0.1:%d", ap)
	if n.client, err = sidecar.NewClient(n.api, "", ""); err != nil {
		return nil, err
	}
	return n, nil
}

// inNamespace moves the sidecar, before its first start, into network
// namespace ns, where it listens on ip.
func (n *checkNode) inNamespace(ns, ip string) error {
	n.ns = ns
	_, gp, _ := strings.Cut(n.gossip, ":")
	_, ap, _ := strings.Cut(n.api, ":")
	n.gossip, n.api = ip+":"+gp, ip+":"+ap
	c, err := sidecar.NewClient(n.api, "", "")
	n.client = c
	return err
}

// handedOut holds the ports freePort returned in this process: the
// sidecars bind them only when they start, all at once, so a port free now
// must not be handed out twice.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// freePort returns a port free for both TCP and UDP (gossip uses both),
// below Linux's ephemeral range (32768 and up), so that no outgoing
// connection takes it before the sidecar binds it, also on a restart, and
// never returned before in this process.
func freePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 200 {
		port := 20000 + rand.IntN(12000)
		if handedOut.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = u.Close()
		handedOut.ports[port] = true
		return port, nil
	}
	return 0, errors.New("no port free for both TCP and UDP in 20000-32000")
}

func (n *checkNode) config(join []string) sidecar.Config {
	adapter := sidecar.AdapterConfig{Kind: sidecar.AdapterSQLite, DSN: n.path, Tables: []string{"items", "check_barrier"}, PollInterval: 2 * time.Millisecond}
	if n.pg != "" {
		adapter = sidecar.AdapterConfig{Kind: sidecar.AdapterPostgres, DSN: n.pg, Tables: []string{"items", "check_barrier"}}
	}
	return sidecar.Config{
		Node: n.name, Data: filepath.Join(n.dir, n.name), Bind: n.gossip, Join: join,
		Cluster: "lattice-check", API: sidecar.APIConfig{Addr: n.api}, Log: sidecar.LogConfig{Level: "warn"},
		Adapter: adapter,
		Apply:   sidecar.ApplyConfig{MaxBackoff: 200 * time.Millisecond},
		Gossip:  sidecar.GossipConfig{SyncInterval: 300 * time.Millisecond},
		Verify:  sidecar.VerifyConfig{Disabled: true},
		Collections: map[string]sidecar.CollectionConfig{
			"items": {Fields: map[string]sidecar.FieldConfig{"tags": {Policy: "orset"}}},
		},
	}
}

// start starts the sidecar (joining join) without waiting for it to be
// ready. A sidecar that cannot start (its PostgreSQL server is restarting)
// is started again: in this process until it starts, for 30 s at most; as
// a child process, whenever it exits on its own.
func (n *checkNode) start(ctx context.Context, join []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.bin != "" {
		return n.startLocked(join)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := sidecar.Start(ctx, n.config(join), sidecar.Options{Logger: n.log})
		if err == nil {
			n.a = a
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Wrapf(err, "start %s", n.name)
		}
		n.respawns++
		if !sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// startLocked starts the sidecar as a child process; n.mu is held.
func (n *checkNode) startLocked(join []string) error {
	cfg := n.config(join)
	gossip := "gossip:\n  sync_interval: 300ms\n"
	adapter := fmt.Sprintf("adapter:\n  kind: %s\n  dsn: %q\n  tables: [items, check_barrier]\n", cfg.Adapter.Kind, cfg.Adapter.DSN)
	if n.ns != "" {
		// The API listens on the namespace's address, which only the
		// checker's bridge reaches.
		adapter = "  insecure_no_token: true\n" + adapter
		gossip = "insecure: true\n" + gossip
	}
	if cfg.Adapter.PollInterval > 0 {
		adapter += fmt.Sprintf("  poll_interval: %s\n", cfg.Adapter.PollInterval)
	}
	yaml := fmt.Sprintf("node: %s\ndata: %s\nbind: %s\njoin: [%s]\ncluster: %s\napi:\n  addr: %s\n%s"+
		"apply:\n  max_backoff: 200ms\n%sverify:\n  disabled: true\nlog:\n  level: warn\n"+
		"collections:\n  items:\n    fields:\n      tags: orset\n",
		cfg.Node, cfg.Data, cfg.Bind, strings.Join(join, ", "), cfg.Cluster, cfg.API.Addr, adapter, gossip)
	cfgPath := filepath.Join(n.dir, n.name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		return errors.Wrap(err, "write config")
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, n.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return errors.Wrap(err, "open log")
	}
	cmd := exec.Command(n.bin, "agent", "--config", cfgPath)
	if n.ns != "" {
		// ip netns exec runs the agent in place of itself: the process is
		// the agent's, and a signal reaches it.
		cmd = exec.Command("ip", "netns", "exec", n.ns, n.bin, "agent", "--config", cfgPath)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return errors.Wrapf(err, "start %s", n.name)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
		// stop holds n.mu until it has seen done and cleared n.cmd: a
		// process still current here exited on its own.
		time.Sleep(100 * time.Millisecond)
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.cmd == cmd {
			n.respawns++
			if err := n.startLocked(join); err != nil {
				n.log.Error("start the sidecar again", "err", err)
			}
		}
	}()
	n.cmd, n.done = cmd, done
	return nil
}

// stop stops the sidecar: with kill, a child process gets SIGKILL (an
// in-process sidecar always closes cleanly); otherwise SIGTERM and a wait.
func (n *checkNode) stop(kill bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.a != nil {
		err := n.a.Close()
		n.a = nil
		return err
	}
	if n.cmd == nil {
		return nil
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		return errors.Newf("%s did not stop within 30s", n.name)
	}
	n.cmd = nil
	return nil
}

// status reads the sidecar's /v1/status.
func (n *checkNode) status(ctx context.Context) (sidecar.Status, error) {
	var s sidecar.Status
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := n.client.Do(ctx, "GET", "/v1/status", nil, &s)
	return s, err
}

// metric reads one sample without labels from the sidecar's /metrics.
func (n *checkNode) metric(ctx context.Context, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.api+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, errors.Wrapf(err, "read %s's metrics", n.name)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, errors.Wrapf(err, "read %s's metrics", n.name)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, errors.Wrapf(err, "%s's %s", n.name, name)
		}
	}
	return 0, errors.Newf("%s's metrics have no %s", n.name, name)
}

// ready reports whether the sidecar is ready and sees peers live peers.
func (n *checkNode) ready(ctx context.Context, peers int) (bool, string) {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done != nil {
		select {
		case <-done:
			b, _ := os.ReadFile(filepath.Join(n.dir, n.name+".log"))
			return false, n.name + " exited: " + lastLines(string(b), 3)
		default:
		}
	}
	s, err := n.status(ctx)
	if err != nil {
		return false, n.name + ": " + err.Error()
	}
	if !s.Ready {
		return false, n.name + " not ready"
	}
	alive := 0
	for _, m := range s.Members {
		if m.State == "alive" {
			alive++
		}
	}
	if alive < peers {
		return false, fmt.Sprintf("%s sees %d live peers", n.name, alive)
	}
	return true, ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}
