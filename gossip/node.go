package gossip

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"hash/fnv"
	"log"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
	"github.com/lattice-crdt/lattice/crdt"
)

// ErrClosed is returned by operations on a closed Node.
var ErrClosed = errors.New("gossip: node closed")

// ErrJoin marks a Join that reached no seed.
var ErrJoin = errors.New("gossip: join failed")

// ErrNoPeer marks an operation that needs a live peer and found none.
var ErrNoPeer = errors.New("gossip: no live peer")

// Node is one member of the cluster: it keeps its Replica in sync with the
// other members' by pushing deltas, relaying them in large clusters, running
// anti-entropy and serving bootstraps. Its methods are safe for concurrent
// use. New starts it; Close stops everything it started and waits.
type Node struct {
	// closing is set when Close begins; memberlist's log bridge reads it.
	closing atomic.Bool

	cfg      Config
	log      *slog.Logger
	replica  Replica
	schema   schemaInfo
	limits   crdt.Limits
	ml       *memberlist.Memberlist
	mux      *mux
	mlKeys   *memberlist.Keyring // nil in cleartext; holds memberlistKey of each ring key
	keys     atomic.Pointer[keyring]
	keyMu    sync.Mutex
	ringKeys map[string][]byte // memberlist's key -> ring key, under keyMu
	dataAddr string
	metaMu   sync.Mutex
	meta     nodeMeta

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	peers   map[string]*peer
	all     []*peer  // the peers, shared read-only; rebuilt on change
	ring    []string // member names (self included) in ring order
	inbound map[*dataConn]inStream
	joined  chan struct{} // closed and replaced whenever a member is added
	schemas map[string]*peerSchema
	// seen maps the replica ID of every member seen live since start to
	// its name (ReplicaNames).
	seen    map[string]string
	failed  map[string]failedMember
	leaving map[string]bool // members that announced their leave

	sem     chan struct{} // MaxSyncs session slots, both directions
	inSem   chan struct{} // the slots incoming sessions may take: one fewer
	syncNow chan struct{}
	warns   warnLimiter

	rngMu sync.Mutex
	rng   *rand.Rand

	c         counters
	closeOnce sync.Once
	closeErr  error
}

// inStream is an incoming stream: its peer (empty until the hello is
// checked) and its purpose.
type inStream struct {
	from    string
	purpose purpose
}

// maxStreamsPerPeer caps the incoming streams of one peer: its delta
// stream, one session, and room for a delta stream being replaced.
const maxStreamsPerPeer = 4

// peer is a live member and the sender that streams deltas to it.
type peer struct {
	name   string
	host   net.IP // memberlist's address of the member
	addr   memberlist.Address
	meta   nodeMeta
	queue  chan *outDelta
	ctx    context.Context
	cancel context.CancelFunc

	buf []byte // the sender's message buffer

	connected   atomic.Bool
	lastContact atomic.Int64 // unix nanoseconds
	lag         atomic.Int64 // nanoseconds
}

// failedMember is a member that died (rather than left), retried by the
// reconnect loop.
type failedMember struct {
	addr        string
	replica     string // its replica ID, as its meta said while it was live
	since       time.Time
	lastContact time.Time
}

// peerSchema is what the last handshake with a peer said about its rules.
type peerSchema struct {
	fp       string
	mismatch []string
	set      map[string]bool
}

// New validates cfg, starts memberlist on the configured (or injected)
// transport and the node's goroutines. The node is alone until Join.
func New(cfg Config, r Replica) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errors.AssertionFailedf("gossip: nil replica")
	}
	seed := make([]byte, 16)
	if _, err := crand.Read(seed); err != nil {
		return nil, errors.Wrap(err, "seed")
	}
	n := &Node{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.Name),
		replica: r,
		schema:  localSchemaInfo(cfg.Schema),
		peers:   map[string]*peer{},
		inbound: map[*dataConn]inStream{},
		joined:  make(chan struct{}),
		schemas: map[string]*peerSchema{},
		seen:    map[string]string{},
		failed:  map[string]failedMember{},
		leaving: map[string]bool{},
		sem:     make(chan struct{}, cfg.MaxSyncs),
		inSem:   make(chan struct{}, max(1, cfg.MaxSyncs-1)),
		syncNow: make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed), binary.LittleEndian.Uint64(seed[8:]))),
	}
	// Peers read a hello before they know the sender, under a small bound.
	h := encodeHello(&hello{Name: cfg.Name, Purpose: purposeBootstrap, Label: cfg.Label, Version: cfg.Version,
		Schema: n.schema, MaxMsg: cfg.MaxMessageBytes})
	helloSize := len(h.bytes())
	h.free()
	if helloSize+cryptOverhead > maxHelloBytes {
		return nil, errors.WithHint(configErr("collections", "the schema takes %d bytes in a hello, over %d",
			helloSize, maxHelloBytes-cryptOverhead), "sync fewer collections in one cluster")
	}
	n.limits = crdt.DefaultLimits()
	n.limits.MaxMessageBytes = cfg.MaxMessageBytes
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.ring = []string{cfg.Name}
	ok := false
	defer func() {
		if !ok {
			n.cancel()
		}
	}()

	mlLog := log.New(&logBridge{log: n.log.With("component", "memberlist"), closing: &n.closing, refused: n.refusedByMemberlist}, "", 0)
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Name
	mc.Logger = mlLog
	mc.Label = cfg.Label

	inner := cfg.Transport
	var advIP string
	var advPort int
	if cfg.AdvertiseAddr != "" {
		advIP, advPort, _ = splitHostPort(cfg.AdvertiseAddr)
	}
	if inner == nil {
		host, port, _ := splitHostPort(cfg.BindAddr)
		nt, err := newNetTransport(host, port, mlLog)
		if err != nil {
			return nil, errors.WithHint(errors.Wrapf(err, "bind gossip transport on %s", cfg.BindAddr),
				"choose a free port for bind, or stop the process that holds it")
		}
		inner = nt
		mc.BindAddr = host
		mc.BindPort = nt.GetAutoBindPort()
		if advIP != "" && advPort == 0 {
			advPort = mc.BindPort
		}
	}
	ip, port, err := inner.FinalAdvertiseAddr(advIP, advPort)
	if err != nil {
		_ = inner.Shutdown()
		return nil, errors.WithHint(errors.Wrap(err, "gossip advertise address"), "set advertise to the ip:port peers can reach")
	}
	mc.AdvertiseAddr, mc.AdvertisePort = ip.String(), port
	if cfg.Transport != nil {
		mc.BindPort = port
	}
	n.dataAddr = net.JoinHostPort(ip.String(), strconv.Itoa(port))
	n.meta = nodeMeta{API: cfg.APIAddr, Data: n.dataAddr, Version: cfg.Version, Schema: n.schema.FP, Replica: cfg.ReplicaID}

	if len(cfg.Keys) > 0 {
		n.ringKeys = map[string][]byte{}
		var mks [][]byte
		for _, k := range cfg.Keys {
			mk, err := n.addRingKey(k)
			if err != nil {
				_ = inner.Shutdown()
				return nil, err
			}
			mks = append(mks, mk)
		}
		kr, err := memberlist.NewKeyring(mks[1:], mks[0])
		if err != nil {
			_ = inner.Shutdown()
			return nil, errors.Wrap(err, "gossip keyring")
		}
		mc.Keyring = kr
		n.mlKeys = kr
		if err := n.refreshKeys(); err != nil {
			_ = inner.Shutdown()
			return nil, err
		}
	} else {
		n.log.Warn("gossip runs in the clear: no key file, anyone who reaches the port can join and inject data",
			"bind", cfg.BindAddr, "insecure", cfg.Insecure,
			"hint", "make a key with `lattice keygen --out gossip.key` and set key_file on every node")
	}

	n.mux = newMux(inner, &n.cfg, &n.c, n.acceptStream)
	mc.Transport = n.mux
	d := &delegate{n: n}
	mc.Delegate = d
	mc.Events = d
	mc.Alive = d
	mc.Conflict = d
	if cfg.MemberlistConfig != nil {
		cfg.MemberlistConfig(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = n.mux.Shutdown()
		return nil, errors.Wrap(err, "start memberlist")
	}
	n.mu.Lock()
	n.ml = ml
	n.mu.Unlock()
	n.wg.Add(2)
	go n.syncLoop()
	go n.reconnectLoop()
	ok = true
	n.log.Info("gossip node started", "addr", n.dataAddr, "encrypted", n.mlKeys != nil, "label", cfg.Label)
	return n, nil
}

func newNetTransport(host string, port int, lg *log.Logger) (*memberlist.NetTransport, error) {
	if host == "" {
		host = "0.0.0.0"
	}
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: lg}
	var err error
	// Binding TCP and UDP to the same kernel-chosen port is racy; retry
	// like memberlist does.
	for range 10 {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			return nt, nil
		}
		if port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

// LocalName returns the node's name.
func (n *Node) LocalName() string { return n.cfg.Name }

// Addr returns the address peers reach this node at (ip:port): a seed for
// other nodes' Join.
func (n *Node) Addr() string { return n.dataAddr }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := n.c.snapshot()
	n.mu.Lock()
	s.Members = len(n.peers)
	for name := range n.peers {
		if ps := n.schemas[name]; ps != nil {
			s.SchemaMismatches += len(ps.mismatch)
		}
	}
	n.mu.Unlock()
	return s
}

// Backlog returns the number of deltas queued for the peer with the
// longest queue. A producer that can wait (a bulk load, a capture catching
// up) may pace itself on it: deltas beyond QueueLen are dropped and left to
// anti-entropy, which is much slower than the delta streams.
func (n *Node) Backlog() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	most := 0
	for _, p := range n.peers {
		most = max(most, len(p.queue))
	}
	return most
}

// ReplicaNames maps the replica ID of every member seen live since the node
// started to the member's name, whether it is live now or not: a write's
// stamp names its replica, and a node that left or is restarting still
// wrote it.
func (n *Node) ReplicaNames() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.seen)
}

// Members returns the peers sorted by name: the live ones (memberlist's
// alive and suspect members, State "alive") and those that failed and are
// being reconnected (State "failed"). Members that left are not listed.
//
// It reads the node's own copies of each member's address and meta, taken
// in memberlist's callbacks: the *memberlist.Node values memberlist hands
// out are updated in place, and reading them outside its callbacks races.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.peers)+len(n.failed))
	for name, p := range n.peers {
		mem := Member{
			Name:              name,
			Addr:              p.addr.Addr,
			State:             "alive",
			APIAddr:           p.meta.API,
			Replica:           p.meta.Replica,
			Version:           p.meta.Version,
			SchemaFingerprint: p.meta.Schema,
			Lag:               time.Duration(p.lag.Load()),
			Queued:            len(p.queue),
			Connected:         p.connected.Load(),
		}
		if ps := n.schemas[name]; ps != nil && ps.fp == mem.SchemaFingerprint {
			mem.SchemaMismatch = slices.Clone(ps.mismatch)
		} else if mem.SchemaFingerprint != n.schema.FP {
			mem.SchemaMismatch = []string{"*"}
		}
		if t := p.lastContact.Load(); t != 0 {
			mem.LastContact = time.Unix(0, t)
		}
		out = append(out, mem)
	}
	for name, f := range n.failed {
		if _, live := n.peers[name]; !live {
			out = append(out, Member{Name: name, Addr: f.addr, State: "failed", Replica: f.replica, LastContact: f.lastContact})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Join contacts the seeds (Config.Join when none are given) until one
// answers, retrying with backoff up to JoinRetries times within
// JoinTimeout, and returns the number of seeds reached. With no seeds at
// all it does nothing: the node starts a cluster of its own.
func (n *Node) Join(ctx context.Context, seeds []string) (int, error) {
	if len(seeds) == 0 {
		seeds = n.cfg.Join
	}
	if len(seeds) == 0 {
		return 0, nil
	}
	deadline := n.cfg.Clock.Now().Add(n.cfg.JoinTimeout)
	backoff := 100 * time.Millisecond
	var lastErr error
	attempts := 0
	refusedLogged := false
	for {
		if n.ctx.Err() != nil {
			return 0, ErrClosed
		}
		attempts++
		num, err := n.ml.Join(seeds)
		if num > 0 {
			n.log.Info("joined cluster", "seeds_reached", num, "members", len(n.ml.Members()))
			n.kickSync()
			return num, nil
		}
		lastErr = err
		if why := refusedJoin(err); why != "" && !refusedLogged {
			// Say so now, not when the retries run out: a node with the
			// wrong key or label never gets in, however long it tries.
			refusedLogged = true
			n.log.Warn("the cluster refused this node: "+why, "seeds", strings.Join(seeds, ","), "attempt", attempts,
				"err", strings.Join(strings.Fields(err.Error()), " "), "label", n.cfg.Label, "encrypted", n.mlKeys != nil,
				"hint", "every node needs the same cluster: label and a key of the cluster's key_file (the seed's log says which it refused)")
		}
		if attempts > n.cfg.JoinRetries || n.cfg.Clock.Now().Add(backoff).After(deadline) {
			break
		}
		t := n.cfg.Clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, errors.Mark(errors.Wrapf(ctx.Err(), "join cluster via %s", strings.Join(seeds, ", ")), ErrJoin)
		case <-n.ctx.Done():
			t.Stop()
			return 0, ErrClosed
		case <-t.C():
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	if lastErr == nil {
		lastErr = errors.New("no seed answered")
	}
	return 0, errors.Mark(errors.WithHint(
		errors.Wrapf(lastErr, "join cluster: no seed answered (%s) after %d attempts", strings.Join(seeds, ", "), attempts),
		"check that a seed is running and reachable at that address, and that it has the same cluster label and key file"),
		ErrJoin)
}

// refusedJoin tells from memberlist's join error whether a seed answered
// and refused this node, and why as far as this side can tell: a seed
// that cannot read our key answers in a form we cannot read either (or
// says so), and one with another label closes the stream unanswered. A
// seed that is down or unreachable is not a refusal ("").
func refusedJoin(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "no installed keys could decrypt"),
		strings.Contains(s, "encryption is configured but remote state is not encrypted"),
		strings.Contains(s, "remote state is encrypted and encryption is not configured"):
		return "its gossip key differs from this node's key_file"
	case strings.HasSuffix(s, ": EOF"), strings.Contains(s, ": EOF\n"), strings.Contains(s, "connection reset by peer"):
		return "a seed closed the connection unanswered: its cluster label (or gossip key) differs from this node's"
	}
	return ""
}

// Leave announces that the node leaves the cluster and waits up to timeout
// for the announcement to spread; peers will not try to reconnect to it.
// The node keeps running until Close.
func (n *Node) Leave(timeout time.Duration) error {
	n.metaMu.Lock()
	n.meta.Leaving = true
	n.metaMu.Unlock()
	if err := n.ml.UpdateNode(timeout / 2); err != nil {
		n.log.Warn("leave: announcing the leave failed", "err", err.Error())
	}
	if err := n.ml.Leave(timeout / 2); err != nil {
		return errors.Wrap(err, "leave cluster")
	}
	return nil
}

func (n *Node) metaBytes() []byte {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	return encodeMeta(&n.meta)
}

// Close stops every goroutine and stream the node started and waits for
// them. Without a prior Leave, peers see the node fail.
func (n *Node) Close() error {
	n.closing.Store(true)
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		peers := n.peers
		n.peers = map[string]*peer{}
		n.all = nil
		n.mu.Unlock()
		n.cancel()
		for _, p := range peers {
			p.cancel()
		}
		err := n.ml.Shutdown()
		n.mu.Lock()
		for dc := range n.inbound {
			dc.close()
		}
		n.mu.Unlock()
		n.wg.Wait()
		if err != nil {
			n.closeErr = errors.Wrap(err, "stop memberlist")
		}
		n.log.Info("gossip node stopped")
	})
	return n.closeErr
}

// Keys returns the keys in use, primary first (nil in cleartext).
func (n *Node) Keys() [][]byte {
	kr := n.keys.Load()
	if kr == nil {
		return nil
	}
	return slices.Clone(kr.keys)
}

// ErrNoEncryption marks key operations on a node started without keys.
var ErrNoEncryption = errors.New("gossip: encryption is off")

// InstallKey adds a key that decrypts (step 1 of a rotation, on every node).
func (n *Node) InstallKey(key []byte) error {
	return n.keyOp("install", key, func(kr *memberlist.Keyring, mk []byte) error { return kr.AddKey(mk) })
}

// UseKey makes an installed key the primary, the one that encrypts (step 2,
// once every node has installed it).
func (n *Node) UseKey(key []byte) error {
	return n.keyOp("use", key, func(kr *memberlist.Keyring, mk []byte) error { return kr.UseKey(mk) })
}

// RemoveKey drops a key that is not the primary (step 3, once every node
// uses the new key).
func (n *Node) RemoveKey(key []byte) error {
	return n.keyOp("remove", key, func(kr *memberlist.Keyring, mk []byte) error {
		found := false
		for _, k := range kr.GetKeys() {
			if string(k) == string(mk) {
				found = true
			}
		}
		if !found {
			return errors.New("key is not installed")
		}
		return kr.RemoveKey(mk)
	})
}

func (n *Node) keyOp(what string, key []byte, op func(kr *memberlist.Keyring, mk []byte) error) error {
	if n.mlKeys == nil {
		return errors.WithHint(errors.Wrapf(ErrNoEncryption, "%s key", what),
			"start the node with a key file to enable encryption; it cannot be turned on at run time")
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return errors.Wrapf(err, "%s key", what)
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	mk, err := n.addRingKey(key)
	if err != nil {
		return err
	}
	if err := op(n.mlKeys, mk); err != nil {
		return errors.Wrapf(err, "%s key", what)
	}
	return n.refreshKeys()
}

// addRingKey remembers a ring key under the key memberlist gets for it,
// and returns that key. The caller holds keyMu (or is New).
func (n *Node) addRingKey(k []byte) ([]byte, error) {
	mk, err := memberlistKey(k)
	if err != nil {
		return nil, err
	}
	n.ringKeys[string(mk)] = bytes.Clone(k)
	return mk, nil
}

// refreshKeys makes the data path's keyring the ring keys of memberlist's
// keys, in memberlist's order (primary first).
func (n *Node) refreshKeys() error {
	var keys [][]byte
	for _, mk := range n.mlKeys.GetKeys() {
		k, ok := n.ringKeys[string(mk)]
		if !ok {
			return errors.AssertionFailedf("memberlist holds a key of no ring key")
		}
		keys = append(keys, k)
	}
	kr, err := newKeyring(keys)
	if err != nil {
		return err
	}
	n.keys.Store(kr)
	return nil
}

func (n *Node) connOpts() connOptions {
	return connOptions{
		keys:     &n.keys,
		encrypt:  n.mlKeys != nil,
		label:    n.cfg.Label,
		maxMsg:   n.cfg.MaxMessageBytes,
		timeout:  n.cfg.IOTimeout,
		bytesIn:  &n.c.bytesIn,
		bytesOut: &n.c.bytesOut,
	}
}

func (n *Node) intn(k int) int {
	n.rngMu.Lock()
	defer n.rngMu.Unlock()
	return n.rng.IntN(k)
}

// kickSync asks for an anti-entropy round now (after a join, when a member
// appears). It does nothing when SyncInterval is 0: anti-entropy is off.
func (n *Node) kickSync() {
	if n.cfg.SyncInterval == 0 {
		return
	}
	select {
	case n.syncNow <- struct{}{}:
	default:
	}
}

// Membership.

func ringKey(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

func (n *Node) rebuildRingLocked() {
	n.all = make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		n.all = append(n.all, p)
	}
	type member struct {
		key  uint64
		name string
	}
	ms := make([]member, 0, len(n.peers)+1)
	ms = append(ms, member{ringKey(n.cfg.Name), n.cfg.Name})
	for name := range n.peers {
		ms = append(ms, member{ringKey(name), name})
	}
	slices.SortFunc(ms, func(a, b member) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.name
	}
	n.ring = names
}

func (n *Node) addPeer(node *memberlist.Node) {
	nm, err := decodeMeta(node.Meta)
	if err != nil {
		n.log.Warn("peer with unreadable node meta ignored", "peer", node.Name, "err", err.Error())
		n.c.rejectedPeers.Add(1)
		return
	}
	addr := nm.Data
	if addr == "" {
		addr = node.Address()
	}
	if !sameHost(addrHost(addr), node.Addr) {
		// Peers would dial whatever a member advertises: keep them to
		// the member's own host.
		n.c.rejectedPeers.Add(1)
		n.warns.warn(n.log, "meta:"+node.Name, "member ignored: its data address is not on its own host",
			"peer", node.Name, "addr", node.Address(), "data_addr", addr)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if nm.Leaving {
		n.leaving[node.Name] = true
	}
	if old := n.peers[node.Name]; old != nil {
		same := nm
		same.Leaving = old.meta.Leaving
		if old.addr.Addr == addr && old.meta == same {
			return
		}
		old.cancel()
		n.dropQueued(old)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	p := &peer{
		name:   node.Name,
		host:   slices.Clone(node.Addr),
		addr:   memberlist.Address{Addr: addr, Name: node.Name},
		meta:   nm,
		queue:  make(chan *outDelta, n.cfg.QueueLen),
		ctx:    ctx,
		cancel: cancel,
	}
	n.peers[node.Name] = p
	delete(n.failed, node.Name)
	if nm.Replica != "" {
		n.seen[nm.Replica] = node.Name
	}
	if nm.Schema != n.schema.FP {
		n.log.Warn("peer has other merge rules; its deltas for the differing collections will not be merged",
			"peer", node.Name, "peer_schema", nm.Schema, "schema", n.schema.FP)
	}
	n.rebuildRingLocked()
	close(n.joined)
	n.joined = make(chan struct{})
	n.wg.Add(1)
	go n.runPeer(p)
	n.kickSync()
}

// removePeer stops the sender of a member that left or failed; a failed
// one is retried by the reconnect loop.
func (n *Node) removePeer(name string, addr string) {
	n.mu.Lock()
	left := n.leaving[name]
	delete(n.leaving, name)
	if !left && !n.closed {
		f := failedMember{addr: addr, since: n.cfg.Clock.Now()}
		if p := n.peers[name]; p != nil {
			f.replica = p.meta.Replica
			if p.lastContact.Load() != 0 {
				f.lastContact = time.Unix(0, p.lastContact.Load())
			}
		}
		n.failed[name] = f
	} else {
		delete(n.failed, name)
	}
	p := n.peers[name]
	if p != nil {
		delete(n.peers, name)
		n.rebuildRingLocked()
	}
	delete(n.schemas, name)
	var conns []*dataConn
	for dc, in := range n.inbound {
		if in.from == name {
			conns = append(conns, dc)
		}
	}
	n.mu.Unlock()
	if p != nil {
		p.cancel()
	}
	for _, dc := range conns {
		dc.close()
	}
}

// reconnectLoop tries to rejoin failed members every ReconnectInterval, so
// that the two sides of a healed partition find each other again.
func (n *Node) reconnectLoop() {
	defer n.wg.Done()
	t := n.cfg.Clock.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C():
		}
		n.mu.Lock()
		var addrs []string
		for name, f := range n.failed {
			if n.cfg.Clock.Now().Sub(f.since) > n.cfg.ReconnectTimeout {
				delete(n.failed, name)
				continue
			}
			addrs = append(addrs, f.addr)
		}
		n.mu.Unlock()
		if len(addrs) == 0 {
			continue
		}
		if k, err := n.ml.Join(addrs); k > 0 {
			n.log.Info("reconnected to failed members", "reached", k)
		} else if err != nil {
			n.log.Debug("reconnect failed", "members", len(addrs), "err", err.Error())
		}
	}
}

func (n *Node) peerByName(name string) *peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers[name]
}

// recordSchema stores what a handshake said about a peer's schema and
// returns the collections whose rules differ.
func (n *Node) recordSchema(name string, si *schemaInfo) []string {
	mm := mismatch(&n.schema, si)
	ps := &peerSchema{fp: si.FP, mismatch: mm, set: map[string]bool{}}
	for _, c := range mm {
		ps.set[c] = true
	}
	n.mu.Lock()
	if n.peers[name] == nil {
		// Gone meanwhile: keep nothing about a peer that is not a member.
		n.mu.Unlock()
		return mm
	}
	old := n.schemas[name]
	n.schemas[name] = ps
	n.mu.Unlock()
	if len(mm) > 0 && (old == nil || !slices.Equal(old.mismatch, mm)) {
		n.log.Error("schema mismatch: peer merges these collections under other rules; its deltas for them are not merged",
			"peer", name, "collections", strings.Join(mm, ","),
			"hint", "give every node the same collections config")
	}
	return mm
}

// excluded returns the collections not exchanged with a peer.
func (n *Node) excluded(name string) map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ps := n.schemas[name]; ps != nil && len(ps.set) > 0 {
		return ps.set
	}
	return nil
}

// Data streams.

// dial opens a data stream of the given purpose to a peer and runs the
// handshake. The stream closes when ctx ends.
func (n *Node) dial(ctx context.Context, p *peer, pur purpose) (*dataConn, error) {
	c, err := n.mux.DialAddressTimeout(p.addr, n.cfg.IOTimeout)
	if err != nil {
		return nil, errors.Wrapf(err, "dial %s at %s", p.name, p.addr.Addr)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	dc, err := clientHandshake(c, n.connOpts())
	if err != nil {
		_ = c.Close()
		return nil, errors.Wrapf(err, "handshake with %s", p.name)
	}
	h := encodeHello(&hello{Name: n.cfg.Name, Purpose: pur, Label: n.cfg.Label, Version: n.cfg.Version, Schema: n.schema, MaxMsg: n.cfg.MaxMessageBytes})
	err = dc.write(h.bytes())
	h.free()
	if err != nil {
		dc.close()
		return nil, errors.Wrapf(err, "hello to %s", p.name)
	}
	b, err := dc.readFrame(maxHelloBytes, time.Now().Add(n.cfg.IOTimeout))
	if err != nil {
		dc.close()
		if errors.Is(err, ErrRejected) {
			n.c.rejectedPeers.Add(1)
		}
		return nil, errors.Wrapf(err, "hello from %s", p.name)
	}
	ack, err := decodeHelloAck(b, n.limits)
	if err != nil {
		dc.close()
		n.c.decodeErrors.Add(1)
		return nil, errors.Wrapf(err, "hello from %s", p.name)
	}
	if ack.Name != p.name {
		dc.close()
		return nil, errors.Mark(errors.Newf("%s answered as %q", p.name, ack.Name), ErrRejected)
	}
	n.recordSchema(ack.Name, &ack.Schema)
	dc.peerMax(ack.MaxMsg)
	switch ack.Status {
	case ackBusy:
		dc.close()
		return nil, errors.Mark(errors.Newf("%s is busy: %s", p.name, ack.Reason), ErrBusy)
	case ackRejected:
		dc.close()
		return nil, errors.Mark(errors.Newf("%s rejected the stream: %s", p.name, ack.Reason), ErrRejected)
	}
	return dc, nil
}

// acceptStream takes a data stream from the mux, with its gate slot.
func (n *Node) acceptStream(c net.Conn, a *admission) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = c.Close()
		a.done()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go n.serveStream(c, a)
}

// handshakeFailed counts and logs an incoming stream that failed before
// its hello was checked.
func (n *Node) handshakeFailed(c net.Conn, err error) {
	r := rejectMalformed
	switch {
	case isTimeout(err):
		r = rejectTimeout
	case errors.Is(err, errUnauthenticated):
		r = rejectUnauthenticated
	}
	n.c.reject(r)
	n.warns.warn(n.log, r.String()+":"+remoteHost(c), "data stream rejected", "remote", c.RemoteAddr().String(),
		"reason", r.String(), "err", err.Error())
}

func (n *Node) serveStream(c net.Conn, a *admission) {
	defer n.wg.Done()
	defer a.done()
	dc, err := serverHandshake(c, n.connOpts(), a.deadline)
	if err != nil {
		_ = c.Close()
		n.handshakeFailed(c, err)
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		dc.close()
		return
	}
	n.inbound[dc] = inStream{}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.inbound, dc)
		n.mu.Unlock()
		dc.close()
	}()
	b, err := dc.readFrame(maxHelloBytes, a.deadline)
	if err != nil {
		n.handshakeFailed(c, err)
		return
	}
	h, err := decodeHello(b, n.limits)
	if err != nil {
		n.c.decodeErrors.Add(1)
		n.handshakeFailed(c, err)
		return
	}
	ack := &helloAck{Name: n.cfg.Name, Schema: n.schema, MaxMsg: n.cfg.MaxMessageBytes}
	dc.peerMax(h.MaxMsg)
	reject := func(reason string) {
		n.c.reject(rejectRefused)
		n.warns.warn(n.log, "refused:"+a.host, "data stream rejected", "peer", h.Name,
			"remote", c.RemoteAddr().String(), "reason", reason)
		ack.Status, ack.Reason = ackRejected, reason
		m := encodeHelloAck(ack)
		_ = dc.write(m.bytes())
		m.free()
	}
	switch {
	case h.Label != n.cfg.Label:
		reject("cluster label " + strconv.Quote(h.Label) + " is not " + strconv.Quote(n.cfg.Label))
		return
	case h.Name == n.cfg.Name:
		reject("peer uses this node's name")
		return
	}
	p := n.waitMember(h.Name, a.deadline)
	switch {
	case p == nil:
		reject("not a member")
		return
	case !sameHost(a.host, p.host):
		reject("connection from " + a.host + ", not from the member's host " + p.host.String())
		return
	}
	session := h.Purpose == purposeSync || h.Purpose == purposeBootstrap
	var replaced []*dataConn
	n.mu.Lock()
	streams, sessions := 0, 0
	for other, in := range n.inbound {
		if in.from != h.Name {
			continue
		}
		streams++
		switch {
		case in.purpose == purposeDeltas && h.Purpose == purposeDeltas:
			// The peer replaces its delta stream: the old one is dead
			// on its side.
			replaced = append(replaced, other)
		case in.purpose != purposeDeltas:
			sessions++
		}
	}
	over := streams-len(replaced) >= maxStreamsPerPeer
	if !over {
		if _, ok := n.inbound[dc]; ok {
			n.inbound[dc] = inStream{from: h.Name, purpose: h.Purpose}
		}
	}
	n.mu.Unlock()
	if over {
		reject("too many streams from this peer")
		return
	}
	for _, o := range replaced {
		o.close()
	}
	n.recordSchema(h.Name, &h.Schema)
	if session {
		if sessions > 0 {
			n.c.syncsRefused.Add(1)
			ack.Status, ack.Reason = ackBusy, "a session with this peer is running"
		} else if n.takeInSlot() {
			defer n.releaseInSlot()
		} else {
			n.c.syncsRefused.Add(1)
			ack.Status, ack.Reason = ackBusy, "at max_syncs"
		}
	}
	m := encodeHelloAck(ack)
	err = dc.write(m.bytes())
	m.free()
	a.done() // the peer is known: its stream leaves the gate
	if err != nil || ack.Status != ackOK {
		return
	}
	switch h.Purpose {
	case purposeDeltas:
		n.readDeltas(dc, h.Name)
	case purposeSync:
		n.serveSync(dc, h.Name)
	case purposeBootstrap:
		n.serveBootstrap(dc, h.Name)
	}
}

// waitMember returns the live member of that name, waiting until the
// deadline (at most a second) for memberlist to report it: a node that just
// joined through this one may dial before its join is processed here.
func (n *Node) waitMember(name string, deadline time.Time) *peer {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	deadline = minTime(deadline, time.Now().Add(time.Second))
	for {
		n.mu.Lock()
		p, joined := n.peers[name], n.joined
		n.mu.Unlock()
		if p != nil {
			return p
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil
		}
		if t == nil {
			t = time.NewTimer(wait)
		}
		select {
		case <-joined:
		case <-t.C:
			return nil
		case <-n.ctx.Done():
			return nil
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// takeInSlot takes a session slot for an incoming session, leaving at
// least one of MaxSyncs to this node's own anti-entropy.
func (n *Node) takeInSlot() bool {
	select {
	case n.inSem <- struct{}{}:
	default:
		return false
	}
	select {
	case n.sem <- struct{}{}:
		return true
	default:
		<-n.inSem
		return false
	}
}

func (n *Node) releaseInSlot() {
	<-n.sem
	<-n.inSem
}

// sameHost reports whether host (an IP in text) is ip.
func sameHost(host string, ip net.IP) bool {
	h := net.ParseIP(host)
	return h != nil && h.Equal(ip)
}

// refusedByMemberlist counts a node that memberlist refused for its key or
// label (streams only: a refused node's packets are not more peers) and
// warns, at most every warnEvery per reason and source.
func (n *Node) refusedByMemberlist(r refusal) {
	if r.stream {
		n.c.rejectedPeers.Add(1)
	}
	from := r.detail
	if i := strings.LastIndex(r.detail, "from="); i >= 0 {
		from = r.detail[i+len("from="):]
	}
	var msg, hint string
	switch r.reason {
	case "label":
		msg = "refused a node: its cluster label is not " + strconv.Quote(n.cfg.Label)
		hint = "a node of another cluster reached this one; if it belongs to this cluster, set cluster: " + strconv.Quote(n.cfg.Label) + " in its config"
	default:
		msg = "refused a node: its gossip key is not one of this node's"
		hint = "if it belongs to this cluster, give it the cluster's key file (key_file), or add its key to every node's key file (docs/security.md, rotating a key)"
	}
	n.warns.warn(n.log, "memberlist:"+r.reason+":"+hostOf(from), msg, "from", from, "detail", r.detail, "hint", hint)
}

// hostOf returns the host of host:port, or s itself.
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(strings.TrimSpace(s)); err == nil {
		return h
	}
	return s
}

// logBridge turns memberlist's log lines into slog records. Once the node
// is closing, memberlist's complaints about its own closed sockets are
// expected and go to debug. The lines in which memberlist refuses a node
// for its key or label go to refused instead: memberlist has no hook for
// them, and its log line is the only place they show.
type logBridge struct {
	log     *slog.Logger
	closing *atomic.Bool
	// refused, if set, takes memberlist's refusals of other nodes.
	refused func(r refusal)
}

// refusal is a node memberlist refused for its key or label.
type refusal struct {
	stream bool   // a stream (a join or push/pull), not a packet
	reason string // "key" or "label"
	detail string // memberlist's words, the peer's address included
}

// memberlistRefusals are the beginnings of memberlist's (v0.7) log lines
// that refuse a node for its key or label, after "[ERR] memberlist: ".
// TestLogBridgeRefusals holds them to the pinned version.
var memberlistRefusals = []struct {
	prefix string
	r      refusal
}{
	{"discarding stream with unacceptable label", refusal{stream: true, reason: "label"}},
	{"failed to receive and remove the stream label header", refusal{stream: true, reason: "label"}},
	{"failed to receive: no installed keys could decrypt", refusal{stream: true, reason: "key"}},
	{"failed to receive: encryption is configured but remote state is not encrypted", refusal{stream: true, reason: "key"}},
	{"failed to receive: remote state is encrypted and encryption is not configured", refusal{stream: true, reason: "key"}},
	{"discarding packet with unacceptable label", refusal{reason: "label"}},
	{"Decrypt packet failed", refusal{reason: "key"}},
}

func (b *logBridge) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for _, l := range []struct {
		tag   string
		level slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}, {"[INFO]", slog.LevelInfo}} {
		if i := strings.Index(s, l.tag); i >= 0 {
			level = l.level
			s = strings.TrimSpace(s[i+len(l.tag):])
			break
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	if b.refused != nil && level == slog.LevelError {
		for _, r := range memberlistRefusals {
			if strings.HasPrefix(s, r.prefix) {
				r.r.detail = s
				b.refused(r.r)
				return len(p), nil
			}
		}
	}
	if level == slog.LevelError && (strings.HasPrefix(s, "Failed fallback TCP ping") ||
		strings.HasPrefix(s, "Push/Pull with ") && strings.HasSuffix(s, "connection refused")) {
		// A probe that timed out, or a state sync with a peer whose
		// process is gone (its port refuses), is the failure detector at
		// work (the peer is then suspected, and refutes or is declared
		// dead), not a fault of this node: memberlist's ERR overstates it.
		level = slog.LevelWarn
	}
	if b.closing != nil && b.closing.Load() && level > slog.LevelDebug {
		level = slog.LevelDebug
	}
	b.log.Log(context.Background(), level, s)
	return len(p), nil
}
