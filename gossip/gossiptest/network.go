package gossiptest

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

// Network is an in-memory network of memberlist transports with fault
// injection: partitions, packet loss and delay. Every random decision comes
// from one generator seeded by the caller, drawn in the order the nodes ask;
// partitions are explicit calls, so a scenario is reproducible up to
// goroutine scheduling.
//
// Packets behave like UDP: they are dropped when lost, partitioned, or when
// the receiver's buffer is full. Streams behave like TCP: ordered, buffered
// (1 MiB per direction, then writes block), delayed like packets, and lose
// data only by being reset (at a set rate per write, or when a partition
// starts across them); dialing across a partition fails.
type Network struct {
	mu     sync.Mutex
	rng    *rand.Rand
	byAddr map[string]*Transport
	byName map[string]*Transport
	group  map[string]int // node name -> partition group; absent = 0
	loss   float64
	reset  float64
	delay  time.Duration
	jitter time.Duration
	pipes  map[*pipe]struct{}
	nextIP int
	stats  NetStats
}

// NetStats counts what the network did.
type NetStats struct {
	Packets, PacketsLost, PacketsCut, PacketsFull uint64
	Streams, StreamsRefused, StreamsReset         uint64
}

// NewNetwork returns an empty network whose random decisions come from
// seed.
func NewNetwork(seed uint64) *Network {
	return &Network{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		byAddr: map[string]*Transport{},
		byName: map[string]*Transport{},
		group:  map[string]int{},
		pipes:  map[*pipe]struct{}{},
	}
}

// NewTransport returns a transport for the named node at a new address. A
// name used before (a restarted node) gets its old address back once the
// old transport is shut down.
func (n *Network) NewTransport(name string) *Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	addr := ""
	if old := n.byName[name]; old != nil {
		addr = old.addr
		if !old.shutdown {
			panic(fmt.Sprintf("gossiptest: transport %s still running", name))
		}
	} else {
		n.nextIP++
		addr = fmt.Sprintf("10.%d.%d.%d:7946", n.nextIP>>16&0xff, n.nextIP>>8&0xff, n.nextIP&0xff)
	}
	t := &Transport{
		net:      n,
		name:     name,
		addr:     addr,
		packetCh: make(chan *memberlist.Packet, 4096),
		streamCh: make(chan net.Conn, 256),
	}
	n.byAddr[addr] = t
	n.byName[name] = t
	return t
}

// Partition splits the named nodes into groups that cannot reach each
// other; nodes not named are in group 0 with the first group. It resets
// the streams that cross the new partition.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
	for i, g := range groups {
		for _, name := range g {
			n.group[name] = i
		}
	}
	for p := range n.pipes {
		if n.group[p.a.t.name] != n.group[p.b.t.name] {
			n.stats.StreamsReset++
			p.reset()
			delete(n.pipes, p)
		}
	}
}

// Heal removes all partitions.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.group)
}

// SetLoss sets the probability that a packet is lost.
func (n *Network) SetLoss(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loss = p
}

// SetResetRate sets the probability that a stream write resets the stream
// (both ends fail; bytes in flight are lost), the way a stream loses data.
func (n *Network) SetResetRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.reset = p
}

// SetDelay sets the one-way delay of packets and stream writes: base plus
// a uniform random part up to jitter (stream bytes stay in order).
func (n *Network) SetDelay(base, jitter time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay, n.jitter = base, jitter
}

// Stats returns the network's counters.
func (n *Network) Stats() NetStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

func (n *Network) delayLocked() time.Duration {
	d := n.delay
	if n.jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.jitter)))
	}
	return d
}

func (n *Network) reachableLocked(a, b *Transport) bool {
	return !a.shutdown && !b.shutdown && n.group[a.name] == n.group[b.name]
}

// Transport is one node's endpoint on a Network. It implements
// memberlist.NodeAwareTransport.
type Transport struct {
	net      *Network
	name     string
	addr     string
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	shutdown bool // under net.mu
}

var _ memberlist.NodeAwareTransport = (*Transport)(nil)

// Addr returns the transport's address (ip:port).
func (t *Transport) Addr() string { return t.addr }

// FinalAdvertiseAddr returns the transport's own address.
func (t *Transport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	var p int
	_, _ = fmt.Sscan(port, &p)
	return net.ParseIP(host), p, nil
}

// WriteTo sends a packet.
func (t *Transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends a packet; it may be lost, cut or delayed.
func (t *Transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	n := t.net
	n.mu.Lock()
	n.stats.Packets++
	dst := n.byAddr[a.Addr]
	if dst == nil || !n.reachableLocked(t, dst) {
		n.stats.PacketsCut++
		n.mu.Unlock()
		return now, nil
	}
	if n.loss > 0 && n.rng.Float64() < n.loss {
		n.stats.PacketsLost++
		n.mu.Unlock()
		return now, nil
	}
	delay := n.delayLocked()
	n.mu.Unlock()
	pkt := &memberlist.Packet{Buf: slices.Clone(b), From: memAddr(t.addr), Timestamp: now}
	if delay <= 0 {
		dst.deliver(pkt)
	} else {
		time.AfterFunc(delay, func() { dst.deliver(pkt) })
	}
	return now, nil
}

func (t *Transport) deliver(pkt *memberlist.Packet) {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if t.shutdown {
		return
	}
	select {
	case t.packetCh <- pkt:
	default:
		n.stats.PacketsFull++
	}
}

// PacketCh returns the incoming packets.
func (t *Transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream.
func (t *Transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream; it fails across a partition.
func (t *Transport) DialAddressTimeout(a memberlist.Address, _ time.Duration) (net.Conn, error) {
	n := t.net
	n.mu.Lock()
	defer n.mu.Unlock()
	dst := n.byAddr[a.Addr]
	if dst == nil || !n.reachableLocked(t, dst) {
		n.stats.StreamsRefused++
		return nil, errors.Newf("dial %s: connection refused", a.Addr)
	}
	p := newPipe(n, t, dst)
	select {
	case dst.streamCh <- p.b:
	default:
		n.stats.StreamsRefused++
		return nil, errors.Newf("dial %s: backlog full", a.Addr)
	}
	n.stats.Streams++
	n.pipes[p] = struct{}{}
	return p.a, nil
}

// StreamCh returns the incoming streams.
func (t *Transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown takes the transport off the network and resets its streams.
func (t *Transport) Shutdown() error {
	n := t.net
	n.mu.Lock()
	t.shutdown = true
	for p := range n.pipes {
		if p.a.t == t || p.b.t == t {
			p.reset()
			delete(n.pipes, p)
		}
	}
	var pending []net.Conn
	for len(t.streamCh) > 0 {
		pending = append(pending, <-t.streamCh)
	}
	n.mu.Unlock()
	for _, c := range pending {
		_ = c.Close()
	}
	return nil
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

const pipeCap = 1 << 20

// pipe is a stream: two ends, a buffer per direction.
type pipe struct {
	a, b *pipeEnd
}

func newPipe(n *Network, from, to *Transport) *pipe {
	ab, ba := newBuf(), newBuf()
	p := &pipe{}
	p.a = &pipeEnd{net: n, t: from, remote: to, rd: ba, wr: ab, pipe: p}
	p.b = &pipeEnd{net: n, t: to, remote: from, rd: ab, wr: ba, pipe: p}
	return p
}

func (p *pipe) reset() {
	p.a.rd.fail()
	p.b.rd.fail()
}

type chunk struct {
	b     []byte
	ready time.Time
}

type pipeBuf struct {
	mu        sync.Mutex
	chunks    []chunk
	size      int
	eof       bool // the writer closed
	broken    bool // reset, or the reader closed
	notify    chan struct{}
	lastReady time.Time
	rdl, wdl  time.Time // deadlines of the reading and the writing end
}

func newBuf() *pipeBuf { return &pipeBuf{notify: make(chan struct{})} }

func (p *pipeBuf) signalLocked() {
	close(p.notify)
	p.notify = make(chan struct{})
}

func (p *pipeBuf) fail() {
	p.mu.Lock()
	p.broken = true
	p.signalLocked()
	p.mu.Unlock()
}

var errReset = errors.New("connection reset by peer")

type pipeEnd struct {
	net    *Network
	t      *Transport
	remote *Transport
	rd, wr *pipeBuf
	pipe   *pipe
	once   sync.Once
}

// wait blocks until ch is closed, until is reached, or the deadline passes;
// it reports whether the deadline passed.
func wait(ch chan struct{}, until, deadline time.Time) bool {
	now := time.Now()
	if !deadline.IsZero() && !now.Before(deadline) {
		return true
	}
	wake := until
	if !deadline.IsZero() && (wake.IsZero() || deadline.Before(wake)) {
		wake = deadline
	}
	if wake.IsZero() {
		<-ch
		return false
	}
	t := time.NewTimer(wake.Sub(now))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
	return false
}

func (e *pipeEnd) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		p := e.rd
		p.mu.Lock()
		if p.broken {
			p.mu.Unlock()
			return 0, errReset
		}
		var until time.Time
		if len(p.chunks) > 0 {
			c := &p.chunks[0]
			if !time.Now().Before(c.ready) {
				k := copy(b, c.b)
				c.b = c.b[k:]
				p.size -= k
				if len(c.b) == 0 {
					p.chunks[0] = chunk{}
					p.chunks = p.chunks[1:]
				}
				p.signalLocked()
				p.mu.Unlock()
				return k, nil
			}
			until = c.ready
		} else if p.eof {
			p.mu.Unlock()
			return 0, io.EOF
		}
		ch, dl := p.notify, p.rdl
		p.mu.Unlock()
		if wait(ch, until, dl) {
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (e *pipeEnd) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		// Lock order: the network before a buffer.
		e.net.mu.Lock()
		d := e.net.delayLocked()
		if e.net.reset > 0 && e.net.rng.Float64() < e.net.reset {
			if _, live := e.net.pipes[e.pipe]; live {
				e.net.stats.StreamsReset++
				e.pipe.reset()
				delete(e.net.pipes, e.pipe)
			}
		}
		e.net.mu.Unlock()
		p := e.wr
		p.mu.Lock()
		if p.broken {
			p.mu.Unlock()
			return written, errReset
		}
		if p.eof {
			p.mu.Unlock()
			return written, net.ErrClosed
		}
		if p.size >= pipeCap {
			ch, dl := p.notify, p.wdl
			p.mu.Unlock()
			if wait(ch, time.Time{}, dl) {
				return written, os.ErrDeadlineExceeded
			}
			continue
		}
		k := min(len(b), pipeCap-p.size)
		ready := time.Now().Add(d)
		if ready.Before(p.lastReady) {
			ready = p.lastReady
		}
		p.lastReady = ready
		p.chunks = append(p.chunks, chunk{b: slices.Clone(b[:k]), ready: ready})
		p.size += k
		p.signalLocked()
		p.mu.Unlock()
		b = b[k:]
		written += k
	}
	return written, nil
}

// Close ends the stream: the peer reads what was written and then EOF; its
// writes fail.
func (e *pipeEnd) Close() error {
	e.once.Do(func() {
		e.wr.mu.Lock()
		e.wr.eof = true
		e.wr.signalLocked()
		e.wr.mu.Unlock()
		e.rd.fail()
		e.net.mu.Lock()
		if e.pipe.a.closed() && e.pipe.b.closed() {
			delete(e.net.pipes, e.pipe)
		}
		e.net.mu.Unlock()
	})
	return nil
}

func (e *pipeEnd) closed() bool {
	e.wr.mu.Lock()
	defer e.wr.mu.Unlock()
	return e.wr.eof
}

func (e *pipeEnd) LocalAddr() net.Addr  { return memAddr(e.t.addr) }
func (e *pipeEnd) RemoteAddr() net.Addr { return memAddr(e.remote.addr) }

func (e *pipeEnd) SetDeadline(t time.Time) error {
	_ = e.SetReadDeadline(t)
	return e.SetWriteDeadline(t)
}

func (e *pipeEnd) SetReadDeadline(t time.Time) error {
	e.rd.mu.Lock()
	e.rd.rdl = t
	e.rd.signalLocked()
	e.rd.mu.Unlock()
	return nil
}

func (e *pipeEnd) SetWriteDeadline(t time.Time) error {
	e.wr.mu.Lock()
	e.wr.wdl = t
	e.wr.signalLocked()
	e.wr.mu.Unlock()
	return nil
}
