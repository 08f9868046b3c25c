package gossip

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

// mux wraps memberlist's transport so that data streams share its listener:
// it reads the first byte of every incoming stream and hands the stream to
// accept if it is a data stream, or to memberlist otherwise. Packets and
// outgoing streams pass through untouched.
//
// Every incoming stream first takes a slot of the gate, which caps the
// streams not yet authenticated, in all and per source host; a stream that
// finds no slot is closed at once. A data stream keeps its slot until the
// node has checked its hello (admission.done), a memberlist stream until
// memberlist closes it. The whole unauthenticated phase has one deadline,
// HandshakeTimeout from accept.
type mux struct {
	memberlist.NodeAwareTransport
	streamCh chan net.Conn
	accept   func(net.Conn, *admission)
	timeout  time.Duration
	gate     *gate
	c        *counters

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{}
}

func newMux(inner memberlist.NodeAwareTransport, cfg *Config, c *counters, accept func(net.Conn, *admission)) *mux {
	m := &mux{
		NodeAwareTransport: inner,
		streamCh:           make(chan net.Conn),
		accept:             accept,
		timeout:            cfg.HandshakeTimeout,
		gate:               newGate(cfg.MaxHandshakes, cfg.MaxHandshakesPerHost),
		c:                  c,
		done:               make(chan struct{}),
		pending:            map[net.Conn]struct{}{},
	}
	m.wg.Add(1)
	go m.loop()
	return m
}

// StreamCh returns the streams meant for memberlist.
func (m *mux) StreamCh() <-chan net.Conn { return m.streamCh }

// Shutdown stops the mux and the transport under it, and waits.
func (m *mux) Shutdown() error {
	var err error
	m.once.Do(func() {
		// The transport first, while the loop still takes its streams:
		// memberlist's NetTransport hands each accepted stream over on an
		// unbuffered channel, and its Shutdown waits for that hand-over.
		err = m.NodeAwareTransport.Shutdown()
		close(m.done)
		m.mu.Lock()
		for c := range m.pending {
			_ = c.Close()
		}
		m.mu.Unlock()
	})
	m.wg.Wait()
	return err
}

func (m *mux) loop() {
	defer m.wg.Done()
	in := m.NodeAwareTransport.StreamCh()
	for {
		select {
		case c, ok := <-in:
			if !ok {
				return
			}
			host := remoteHost(c)
			if !m.gate.acquire(host) {
				_ = c.Close()
				m.c.reject(rejectOverCap)
				continue
			}
			a := &admission{gate: m.gate, host: host, deadline: time.Now().Add(m.timeout)}
			m.mu.Lock()
			select {
			case <-m.done:
				m.mu.Unlock()
				_ = c.Close()
				a.done()
				continue
			default:
			}
			m.pending[c] = struct{}{}
			m.wg.Add(1)
			m.mu.Unlock()
			go m.classify(c, a)
		case <-m.done:
			return
		}
	}
}

func (m *mux) classify(c net.Conn, a *admission) {
	defer m.wg.Done()
	_ = c.SetReadDeadline(a.deadline)
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
	if err != nil {
		_ = c.Close()
		a.done()
		if isTimeout(err) {
			m.c.reject(rejectTimeout)
		}
		return
	}
	if b[0] == streamMagic[0] {
		m.accept(c, a)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	select {
	case m.streamCh <- &prefixConn{Conn: c, prefix: []byte{b[0]}, release: a.done}:
	case <-m.done:
		_ = c.Close()
		a.done()
	}
}

// prefixConn returns bytes already read before those still on the stream,
// and gives its gate slot back when closed.
type prefixConn struct {
	net.Conn
	prefix  []byte
	release func()
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

func (p *prefixConn) Close() error {
	err := p.Conn.Close()
	p.release()
	return err
}

// gate counts the incoming streams in their unauthenticated phase. Its
// methods are safe for concurrent use.
type gate struct {
	max, maxPerHost int

	mu     sync.Mutex
	total  int
	byHost map[string]int
}

func newGate(max, maxPerHost int) *gate {
	return &gate{max: max, maxPerHost: maxPerHost, byHost: map[string]int{}}
}

func (g *gate) acquire(host string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max || g.byHost[host] >= g.maxPerHost {
		return false
	}
	g.total++
	g.byHost[host]++
	return true
}

func (g *gate) release(host string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byHost[host]--; g.byHost[host] <= 0 {
		delete(g.byHost, host)
	}
}

// inUse returns the slots taken.
func (g *gate) inUse() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.total
}

// admission is an incoming stream's gate slot and handshake deadline.
type admission struct {
	gate     *gate
	host     string
	deadline time.Time
	once     sync.Once
}

// done gives the slot back; later calls do nothing.
func (a *admission) done() {
	a.once.Do(func() { a.gate.release(a.host) })
}

// remoteHost returns the host part of a stream's remote address.
func remoteHost(c net.Conn) string {
	ra := c.RemoteAddr()
	if ra == nil {
		return ""
	}
	return addrHost(ra.String())
}

// addrHost returns the host of "host:port", or s when it has no port.
func addrHost(s string) string {
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
