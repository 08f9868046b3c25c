package gossip

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// lastStreamTransport hands over one more stream while it shuts down and
// waits until it is taken, as memberlist's NetTransport does with a
// connection accepted just before its Shutdown.
type lastStreamTransport struct {
	memberlist.NodeAwareTransport // only StreamCh and Shutdown are called
	ch                            chan net.Conn
}

func (t *lastStreamTransport) StreamCh() <-chan net.Conn { return t.ch }

func (t *lastStreamTransport) Shutdown() error {
	a, b := net.Pipe()
	defer b.Close()
	t.ch <- a
	return nil
}

func TestMuxShutdownTakesALateStream(t *testing.T) {
	cfg := DefaultConfig()
	m := newMux(&lastStreamTransport{ch: make(chan net.Conn)}, &cfg, &counters{}, func(c net.Conn, a *admission) {
		_ = c.Close()
		a.done()
	})
	done := make(chan error, 1)
	go func() { done <- m.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown hangs on a stream the transport hands over while shutting down")
	}
}
