package sidecar

import (
	"encoding/binary"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// The gossip layer's rejection counters reach /metrics under the names
// docs/security.md gives, and hostile openings on the agent's gossip port
// move them.
func TestGossipRejectionsOnMetrics(t *testing.T) {
	a := startAgent(t, nil)
	names := []string{
		"lattice_gossip_rejected_peers_total",
		"lattice_gossip_handshakes_over_cap_total",
		"lattice_gossip_handshake_timeouts_total",
		"lattice_gossip_handshakes_malformed_total",
		"lattice_gossip_handshakes_unauthenticated_total",
		"lattice_gossip_handshakes_refused_total",
	}
	value := func(body, name string) (float64, bool) {
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return v, err == nil
	}
	metrics := func() string {
		r := do(t, a, "GET", "/metrics", "", "")
		if r.code != 200 {
			t.Fatalf("GET /metrics = %d %s", r.code, r.body)
		}
		return r.body
	}
	body := metrics()
	for _, n := range names {
		if _, ok := value(body, n); !ok {
			t.Errorf("/metrics lacks %s", n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// A stream preamble, then a frame announcing 4 GiB: malformed. The same
	// preamble saying the stream is encrypted, to a node in the clear:
	// unauthenticated.
	open := func(flag byte, tail []byte) {
		c, err := net.Dial("tcp", a.Node().Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		b := append([]byte("LTC2"), make([]byte, 16)...)
		b = append(b, flag)
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(append(b, tail...)); err != nil {
			t.Fatal(err)
		}
	}
	open(0, binary.BigEndian.AppendUint32(nil, 0xffff_fff0))
	open(1, binary.BigEndian.AppendUint32(nil, 64))

	waitFor(t, 10*time.Second, "rejections counted on /metrics", func() bool {
		body := metrics()
		mal, _ := value(body, "lattice_gossip_handshakes_malformed_total")
		unauth, _ := value(body, "lattice_gossip_handshakes_unauthenticated_total")
		all, _ := value(body, "lattice_gossip_rejected_peers_total")
		return mal >= 1 && unauth >= 1 && all >= 2
	})
}
