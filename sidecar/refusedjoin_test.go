package sidecar

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/gossip"
)

// syncBuffer is a log destination read while the agent writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeKeyFile(t *testing.T) string {
	t.Helper()
	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(gossip.EncodeKey(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// metricValue reads one unlabelled series from the agent's /metrics.
func metricValue(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	r := do(t, a, "GET", "/metrics", "", "")
	if r.code != 200 {
		t.Fatalf("GET /metrics = %d %s", r.code, r.body)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("/metrics lacks %s", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A node whose gossip key or cluster label the cluster refuses says so in
// its own log while it is still retrying its join (not only when the join
// gives up), with a hint; the seed counts the refused peer in
// lattice_gossip_rejected_peers_total and says why in its log.
func TestRefusedJoinIsLoggedOnBothSidesAndCounted(t *testing.T) {
	key := writeKeyFile(t)
	var seedLog syncBuffer
	seedCfg := Config{Node: "seed", Data: filepath.Join(t.TempDir(), "seed"), Bind: "127.0.0.1:0",
		API: APIConfig{Addr: "127.0.0.1:0"}, KeyFile: key, Cluster: "prod"}
	seed, err := Start(context.Background(), seedCfg, Options{Logger: slog.New(slog.NewTextHandler(&seedLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := seed.Close(); err != nil {
			t.Error(err)
		}
	}()
	defer func() {
		if t.Failed() {
			t.Logf("seed log:\n%s", seedLog.String())
		}
	}()

	for _, tc := range []struct {
		name, key, label string
		joinerSays       string // in the joiner's log
		seedSays         string // in the seed's log
	}{
		{"other key", writeKeyFile(t), "prod", "its gossip key differs", "gossip key"},
		{"other label", key, "staging", "cluster label", `its cluster label is not \"prod\"`},
		{"no key", "", "prod", "its gossip key differs", "gossip key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := metricValue(t, seed, "lattice_gossip_rejected_peers_total")
			var joinLog syncBuffer
			cfg := Config{Node: "joiner-" + strings.ReplaceAll(tc.name, " ", "-"), Data: filepath.Join(t.TempDir(), "j"),
				Bind: "127.0.0.1:0", API: APIConfig{Addr: "off"}, KeyFile: tc.key, Cluster: tc.label,
				Join: []string{seed.Node().Addr()}}
			j, err := Start(context.Background(), cfg, Options{Logger: slog.New(slog.NewTextHandler(&joinLog, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := j.Close(); err != nil {
					t.Error(err)
				}
				if t.Failed() {
					t.Logf("joiner log:\n%s", joinLog.String())
				}
			}()
			// Within the first join attempts: long before the join
			// retries (about 15 s) give up.
			waitFor(t, 5*time.Second, "the joiner to log the refusal", func() bool {
				return strings.Contains(joinLog.String(), "the cluster refused this node")
			})
			log := joinLog.String()
			for _, want := range []string{tc.joinerSays, "hint=", "key_file", "cluster:"} {
				if !strings.Contains(log, want) {
					t.Errorf("joiner log lacks %q:\n%s", want, log)
				}
			}
			waitFor(t, 5*time.Second, "the seed to count the refused peer", func() bool {
				return metricValue(t, seed, "lattice_gossip_rejected_peers_total") > before
			})
			if s := seedLog.String(); !strings.Contains(s, "refused a node") || !strings.Contains(s, tc.seedSays) {
				t.Errorf("seed log lacks the refusal (%q):\n%s", tc.seedSays, s)
			}
			if n := len(seed.Node().Members()); n != 0 {
				t.Errorf("the seed has %d members, want 0", n)
			}
		})
	}
	if strings.Contains(seedLog.String(), "level=ERROR") {
		t.Errorf("a refused peer is not an error of the seed's:\n%s", seedLog.String())
	}
}
