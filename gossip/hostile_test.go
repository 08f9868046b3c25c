package gossip

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/crdt"
)

// hostileHeapBound is the most the heap may grow above its baseline while
// a node is under the hostile-client attack below (measured: see
// docs/security.md).
const hostileHeapBound = 32 << 20

// TestHostileClients attacks one node of a two-node cluster on loopback
// with 1,000 connections from 32 source addresses: frames announcing 4 GiB,
// 16 MiB and 64 KiB, slowloris preambles, garbage, and hellos sealed with
// the cluster's key under names that are not members. Meanwhile and after,
// the cluster keeps replicating; the heap stays within hostileHeapBound of
// its baseline; every attacking connection is closed by the node and
// counted; the node's goroutines and fds return to their baseline.
func TestHostileClients(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	key := mustKey(t)
	c := newCluster(t, 2, nil, func(_ int, cfg *Config) {
		cfg.Keys = [][]byte{key}
		cfg.HandshakeTimeout = time.Second
		cfg.IdleTimeout = 3 * time.Second
		cfg.SyncInterval = 0 // nothing but the attack opens streams
	})
	c.logger = testLogger(t, 100)
	c.joinAll()
	victim := c.nodes[0]
	// The delta stream from n01 to the victim is up before the attack.
	c.put(1, 1, crdt.Row{"name": crdt.String("before")})
	c.waitConverged(10 * time.Second)

	baseStats := victim.node.Stats()
	baseG, baseFD, baseHeap := runtime.NumGoroutine(), openFDs(t), heapAlloc()

	var peak atomic.Uint64
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stopSampling:
				return
			case <-tk.C:
			}
		}
	})

	const conns, hosts = 1000, 32
	attackers := make([]net.Conn, conns)
	var wg sync.WaitGroup
	var dialErrs atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < conns; i += 8 {
				d := net.Dialer{Timeout: 5 * time.Second,
					LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%hosts))}}
				conn, err := d.Dial("tcp", victim.node.Addr())
				if err != nil {
					dialErrs.Add(1)
					continue
				}
				attackers[i] = conn
				attack(t, conn, i%6, rng, key)
			}
		})
	}
	// The cluster keeps serving during the attack.
	c.put(1, 2, crdt.Row{"name": crdt.String("during")})
	wg.Wait()
	waitFor(t, 20*time.Second, "the write made during the attack to reach the victim", func() bool {
		return victim.rep.Get("people", crdt.IntKey(2)) != nil
	})
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%d attacking connections could not be dialed", n)
	}

	// Every attacking connection is refused and counted once its deadline
	// passes at the latest.
	waitFor(t, 20*time.Second, "every attacking connection to be counted", func() bool {
		return victim.node.Stats().RejectedPeers-baseStats.RejectedPeers >= conns && victim.node.mux.gate.inUse() == 0
	})
	close(stopSampling)
	sampler.Wait()
	s := victim.node.Stats()
	delta := func(a, b uint64) uint64 { return a - b }
	byReason := map[string]uint64{
		"over_cap":        delta(s.HandshakesOverCap, baseStats.HandshakesOverCap),
		"timeout":         delta(s.HandshakeTimeouts, baseStats.HandshakeTimeouts),
		"malformed":       delta(s.HandshakesMalformed, baseStats.HandshakesMalformed),
		"unauthenticated": delta(s.HandshakesUnauthenticated, baseStats.HandshakesUnauthenticated),
		"refused":         delta(s.HandshakesRefused, baseStats.HandshakesRefused),
	}
	var sum uint64
	for _, v := range byReason {
		sum += v
	}
	if total := delta(s.RejectedPeers, baseStats.RejectedPeers); sum != total {
		t.Errorf("rejections by reason %v sum to %d, RejectedPeers grew by %d", byReason, sum, total)
	}
	if byReason["timeout"] == 0 || byReason["malformed"] == 0 || byReason["refused"] == 0 {
		t.Errorf("rejections by reason %v: every kind of attack should show", byReason)
	}
	growth := int64(peak.Load()) - int64(baseHeap)
	t.Logf("rejections %v; heap baseline %.1f MiB, peak %.1f MiB (+%.1f MiB)", byReason,
		mib(baseHeap), mib(peak.Load()), float64(growth)/(1<<20))
	if growth > hostileHeapBound {
		t.Errorf("heap grew by %.1f MiB under attack, over the bound of %d MiB", float64(growth)/(1<<20), hostileHeapBound>>20)
	}

	// The victim closed every attacking connection: each reads EOF (or a
	// reset), not a timeout.
	for i, conn := range attackers {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil && isTimeout(err) {
			t.Fatalf("attacking connection %d is still open on the victim's side", i)
		}
	}
	waitFor(t, 10*time.Second, "the victim's goroutines and fds back to their baseline", func() bool {
		// The attacker's own ends are still open.
		return runtime.NumGoroutine() <= baseG+5 && openFDs(t) <= baseFD+conns+5
	})
	for _, conn := range attackers {
		_ = conn.Close()
	}
	waitFor(t, 10*time.Second, "goroutines and fds back to their baseline", func() bool {
		return runtime.NumGoroutine() <= baseG+5 && openFDs(t) <= baseFD+5
	})
	t.Logf("goroutines %d -> %d, fds %d -> %d", baseG, runtime.NumGoroutine(), baseFD, openFDs(t))

	// And the cluster still replicates, both ways.
	c.put(1, 3, crdt.Row{"name": crdt.String("after")})
	c.put(0, 4, crdt.Row{"name": crdt.String("after")})
	c.waitConverged(20 * time.Second)
}

// attack sends one kind of hostile opening on conn and leaves it open.
func attack(t *testing.T, conn net.Conn, kind int, rng *rand.Rand, key []byte) {
	preamble := func() []byte {
		b := append(streamMagic[:], make([]byte, nonceLen)...)
		return append(b, 1)
	}
	var b []byte
	switch kind {
	case 0: // a frame of 4 GiB
		b = binary.BigEndian.AppendUint32(preamble(), 0xffff_fff0)
	case 1: // a 16 MiB frame (a message size peers accept), never sent
		b = binary.BigEndian.AppendUint32(preamble(), DefaultMaxMessageBytes)
	case 5: // a hello as large as allowed, never sent
		b = binary.BigEndian.AppendUint32(preamble(), maxHelloBytes)
	case 2: // slowloris: two bytes, then silence
		b = streamMagic[:2]
	case 3: // garbage after the first byte
		b = make([]byte, 64+rng.IntN(512))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		b[0] = streamMagic[0]
	case 4: // a hello sealed with the key, under a name that is no member
		var keys atomic.Pointer[keyring]
		kr, err := newKeyring([][]byte{key})
		if err != nil {
			t.Error(err)
			return
		}
		keys.Store(kr)
		dc, err := clientHandshake(conn, connOptions{keys: &keys, encrypt: true, label: "", maxMsg: DefaultMaxMessageBytes, timeout: 5 * time.Second})
		if err != nil {
			return // refused at the gate
		}
		h := encodeHello(&hello{Name: fmt.Sprintf("ghost-%d", rng.IntN(1<<20)), Purpose: purposeBootstrap, Schema: localSchemaInfo(testSchema)})
		_ = dc.write(h.bytes())
		h.free()
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write(b)
}

func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(es)
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
