package gossip

import (
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// mux wraps memberlist's transport so that data streams share its listener:
// it reads the first byte of every incoming stream and hands the stream to
// accept if it is a data stream, or to memberlist otherwise. Packets and
// outgoing streams pass through untouched.
type mux struct {
	memberlist.NodeAwareTransport
	streamCh chan net.Conn
	accept   func(net.Conn)
	timeout  time.Duration

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	mu      sync.Mutex
	pending map[net.Conn]struct{}
}

func newMux(inner memberlist.NodeAwareTransport, timeout time.Duration, accept func(net.Conn)) *mux {
	m := &mux{
		NodeAwareTransport: inner,
		streamCh:           make(chan net.Conn),
		accept:             accept,
		timeout:            timeout,
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
			m.mu.Lock()
			select {
			case <-m.done:
				m.mu.Unlock()
				_ = c.Close()
				continue
			default:
			}
			m.pending[c] = struct{}{}
			m.wg.Add(1)
			m.mu.Unlock()
			go m.classify(c)
		case <-m.done:
			return
		}
	}
}

func (m *mux) classify(c net.Conn) {
	defer m.wg.Done()
	_ = c.SetReadDeadline(time.Now().Add(m.timeout))
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	m.mu.Lock()
	delete(m.pending, c)
	m.mu.Unlock()
	if err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if b[0] == streamMagic[0] {
		m.accept(c)
		return
	}
	select {
	case m.streamCh <- &prefixConn{Conn: c, prefix: []byte{b[0]}}:
	case <-m.done:
		_ = c.Close()
	}
}

// prefixConn returns bytes already read before those still on the stream.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
