package gossip

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
)

// Config configures a Node. Start from DefaultConfig; Validate fills the
// defaults of fields left at zero (where zero is not itself meaningful) and
// rejects bad values with an error naming the key.
type Config struct {
	// Name is the node's unique name in the cluster, also the source name
	// that prefer policies rank.
	Name string
	// BindAddr is the "host:port" memberlist and the data streams listen on
	// (TCP and UDP). Port 0 picks a free port (tests).
	BindAddr string
	// AdvertiseAddr is the "ip:port" peers use to reach this node. Empty
	// means the bound address (a private IP if bound to 0.0.0.0).
	AdvertiseAddr string
	// Join lists seeds ("host:port") that Join uses when given none.
	Join []string
	// Keys are AES keys of 16, 24 or 32 bytes. The first is primary and
	// encrypts; all decrypt. No keys means cleartext, which Validate refuses
	// on a non-loopback BindAddr unless Insecure is set.
	Keys [][]byte
	// Insecure allows cleartext (no Keys) on a non-loopback BindAddr:
	// anyone who reaches the port can then join, read every record and
	// write any. For closed networks only; New logs a warning.
	Insecure bool
	// Label is the cluster label. Nodes with another label are ignored, on
	// memberlist's packets and streams and on the data streams.
	Label string
	// APIAddr is this node's HTTP API address, advertised in node meta.
	APIAddr string
	// ReplicaID is the replica ID (hex) this node stamps its writes with,
	// advertised in node meta so that peers can show which node a stamp
	// names. Optional.
	ReplicaID string
	// Version is the software version, advertised in node meta.
	Version string
	// Schema holds the merge rules; its per-collection fingerprints are
	// compared with every peer's.
	Schema *crdt.Schema

	// PushAllUpTo is the cluster size (members, this node included) up to
	// which every delta goes to every peer. Default 16.
	PushAllUpTo int
	// Fanout is the number of peers a delta goes to in larger clusters,
	// each relaying what was new to it: its ring neighbours (the successor,
	// and the predecessor from 3 up) and random others. Default 3.
	Fanout int
	// SyncInterval is the mean period of anti-entropy rounds with a random
	// peer, jittered by ±50%; a round also starts after a join and when a
	// member appears. Zero turns these rounds off (SyncWith and Bootstrap
	// still work, and the node still answers its peers'). Default 2s.
	SyncInterval time.Duration
	// MaxSyncs caps the anti-entropy and bootstrap sessions this node takes
	// part in at once; sessions offered beyond it are refused. Default 2.
	MaxSyncs int
	// BatchDelay is how long a peer's sender waits for more deltas before
	// writing a batch. Default 2ms.
	BatchDelay time.Duration
	// BatchBytes flushes a batch once its encoding reaches this size; larger
	// deltas are split. Default 64 KiB.
	BatchBytes int
	// QueueLen bounds each peer's outgoing queue, in deltas. A delta that
	// does not fit is dropped and counted; anti-entropy repairs it. Default
	// 4096.
	QueueLen int
	// MaxMessageBytes bounds every data-path message this node sends or
	// accepts. Default 16 MiB.
	MaxMessageBytes int
	// JoinTimeout bounds Join, retries included. Default 30s.
	JoinTimeout time.Duration
	// JoinRetries is the number of attempts after the first that Join makes
	// within JoinTimeout. Default 10.
	JoinRetries int
	// IOTimeout bounds each dial and each session read or write. Default
	// 10s.
	IOTimeout time.Duration
	// HandshakeTimeout bounds the unauthenticated phase of an incoming
	// stream, from accept to a checked hello: a client that is slower is
	// cut off and counted. Default 5s.
	HandshakeTimeout time.Duration
	// IdleTimeout is how long an incoming delta stream may stay silent;
	// senders keep idle streams open with a keepalive every third of it.
	// Every node should use the same value. Default 30s.
	IdleTimeout time.Duration
	// MaxHandshakes caps the incoming streams still in their
	// unauthenticated phase, over all sources; streams beyond it are closed
	// at once and counted. Default 64.
	MaxHandshakes int
	// MaxHandshakesPerHost caps them per source IP. Default 8.
	MaxHandshakesPerHost int
	// ReconnectInterval is how often the node tries to rejoin members that
	// failed (not those that left): memberlist alone never heals a
	// partition once each side has declared the other dead. Default 10s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is retried. Default 24h.
	ReconnectTimeout time.Duration
	// Logger receives the node's logs and memberlist's. Default: discarded.
	Logger *slog.Logger
	// Transport, when set, replaces the UDP/TCP transport memberlist and
	// the data streams use (BindAddr is then ignored). Tests inject a
	// fault-injecting one.
	Transport memberlist.NodeAwareTransport
	// MemberlistConfig, when set, may adjust memberlist's configuration
	// after Config has been applied to the LAN preset (tests use faster
	// probes).
	MemberlistConfig func(*memberlist.Config)

	// Clock is the node's source of time for its timers and tickers
	// (default: clock.Real). Network deadlines read the system clock.
	Clock clock.Clock
}

// Defaults.
const (
	DefaultPushAllUpTo          = 16
	DefaultFanout               = 3
	DefaultSyncInterval         = 2 * time.Second
	DefaultMaxSyncs             = 2
	DefaultBatchDelay           = 2 * time.Millisecond
	DefaultBatchBytes           = 64 << 10
	DefaultQueueLen             = 4096
	DefaultMaxMessageBytes      = 16 << 20
	DefaultJoinTimeout          = 30 * time.Second
	DefaultJoinRetries          = 10
	DefaultIOTimeout            = 10 * time.Second
	DefaultHandshakeTimeout     = 5 * time.Second
	DefaultIdleTimeout          = 30 * time.Second
	DefaultMaxHandshakes        = 64
	DefaultMaxHandshakesPerHost = 8
	DefaultReconnect            = 10 * time.Second
	DefaultReconnectFor         = 24 * time.Hour

	minMessageBytes = 64 << 10
	maxNameBytes    = 128
	maxMetaField    = 128
)

// DefaultConfig returns the defaults: bind 0.0.0.0:7946, no keys (which
// Validate refuses there: set Keys, a loopback BindAddr or Insecure), push
// to every peer up to 16 members, anti-entropy every 2s.
func DefaultConfig() Config {
	return Config{
		BindAddr:        "0.0.0.0:7946",
		PushAllUpTo:     DefaultPushAllUpTo,
		Fanout:          DefaultFanout,
		SyncInterval:    DefaultSyncInterval,
		MaxSyncs:        DefaultMaxSyncs,
		BatchDelay:      DefaultBatchDelay,
		BatchBytes:      DefaultBatchBytes,
		QueueLen:        DefaultQueueLen,
		MaxMessageBytes: DefaultMaxMessageBytes,
		JoinTimeout:     DefaultJoinTimeout,
		JoinRetries:     DefaultJoinRetries,
		IOTimeout:       DefaultIOTimeout,

		HandshakeTimeout:     DefaultHandshakeTimeout,
		IdleTimeout:          DefaultIdleTimeout,
		MaxHandshakes:        DefaultMaxHandshakes,
		MaxHandshakesPerHost: DefaultMaxHandshakesPerHost,

		ReconnectInterval: DefaultReconnect,
		ReconnectTimeout:  DefaultReconnectFor,
	}
}

// ErrConfig marks configuration errors.
var ErrConfig = errors.New("gossip: invalid config")

// ErrInsecure marks, besides ErrConfig, a config that would expose a
// cleartext cluster on the network.
var ErrInsecure = errors.New("gossip: cleartext on a network address")

func configErr(key string, format string, args ...any) error {
	return errors.Mark(errors.Newf("gossip config %s: "+format, append([]any{key}, args...)...), ErrConfig)
}

// Validate fills defaults for zero fields and checks every value.
func (c *Config) Validate() error {
	c.Clock = clock.Or(c.Clock)
	if c.Name == "" {
		return errors.WithHint(configErr("name", "empty"), "give every node a unique name")
	}
	if len(c.Name) > maxNameBytes || strings.ContainsAny(c.Name, " \t\r\n\x00") {
		return configErr("name", "%q must be 1 to %d bytes without spaces or control characters", c.Name, maxNameBytes)
	}
	if c.Transport == nil {
		if c.BindAddr == "" {
			c.BindAddr = DefaultConfig().BindAddr
		}
		host, _, err := splitHostPort(c.BindAddr)
		if err == nil && host != "" && net.ParseIP(host) == nil {
			err = errors.Newf("%q is not an IP address", host)
		}
		if err != nil {
			return errors.WithHint(configErr("bind", "%q: %v", c.BindAddr, err), "use ip:port, e.g. 0.0.0.0:7946")
		}
		if ip := net.ParseIP(host); len(c.Keys) == 0 && !c.Insecure && (ip == nil || !ip.IsLoopback()) {
			return errors.Mark(errors.WithHint(
				configErr("key_file", "none set, and gossip binds %s: anyone who reaches it could join, read every record and write any", c.BindAddr),
				"make a key with `lattice keygen --out /etc/lattice/gossip.key`, copy the file to every node and set key_file: /etc/lattice/gossip.key; "+
					"or bind gossip to 127.0.0.1; or, on a closed network only, set insecure: true"), ErrInsecure)
		}
	}
	if c.AdvertiseAddr != "" {
		host, _, err := splitHostPort(c.AdvertiseAddr)
		if err == nil && net.ParseIP(host) == nil {
			err = errors.Newf("%q is not an IP address", host)
		}
		if err != nil {
			return errors.WithHint(configErr("advertise", "%q: %v", c.AdvertiseAddr, err), "use ip:port, e.g. 10.0.0.5:7946")
		}
	}
	for i, k := range c.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return errors.WithHint(configErr("key_file", "key %d is %d bytes", i+1, len(k)),
				"keys are 16, 24 or 32 bytes (32 for AES-256); make one with `lattice keygen`")
		}
	}
	if len(c.Label) > memberlist.LabelMaxSize {
		return configErr("cluster", "label is %d bytes, over %d", len(c.Label), memberlist.LabelMaxSize)
	}
	if len(c.APIAddr) > maxMetaField {
		return configErr("api.addr", "%d bytes, over %d", len(c.APIAddr), maxMetaField)
	}
	if len(c.ReplicaID) > maxMetaField {
		return configErr("replica", "%d bytes, over %d", len(c.ReplicaID), maxMetaField)
	}
	if len(c.Version) > maxMetaField {
		return configErr("version", "%d bytes, over %d", len(c.Version), maxMetaField)
	}
	if c.Schema == nil {
		c.Schema = crdt.MustSchema()
	}
	d := DefaultConfig()
	fill := func(v *int, def int, key string) error {
		if *v == 0 {
			*v = def
		}
		if *v < 0 {
			return configErr(key, "%d is negative", *v)
		}
		return nil
	}
	for _, f := range []struct {
		v   *int
		def int
		key string
	}{
		{&c.PushAllUpTo, d.PushAllUpTo, "push_all_up_to"},
		{&c.Fanout, d.Fanout, "fanout"},
		{&c.MaxSyncs, d.MaxSyncs, "max_syncs"},
		{&c.BatchBytes, d.BatchBytes, "batch_bytes"},
		{&c.QueueLen, d.QueueLen, "queue_len"},
		{&c.MaxMessageBytes, d.MaxMessageBytes, "max_message_bytes"},
		{&c.MaxHandshakes, d.MaxHandshakes, "max_handshakes"},
		{&c.MaxHandshakesPerHost, d.MaxHandshakesPerHost, "max_handshakes_per_host"},
	} {
		if err := fill(f.v, f.def, f.key); err != nil {
			return err
		}
	}
	if c.JoinRetries < 0 {
		return configErr("join_retries", "%d is negative", c.JoinRetries)
	}
	if c.MaxMessageBytes < minMessageBytes {
		return configErr("max_message_bytes", "%d is below the minimum of %d", c.MaxMessageBytes, minMessageBytes)
	}
	if c.BatchBytes > c.MaxMessageBytes/2 {
		return configErr("batch_bytes", "%d is over half of max_message_bytes (%d)", c.BatchBytes, c.MaxMessageBytes)
	}
	for _, f := range []struct {
		v    *time.Duration
		def  time.Duration
		key  string
		zero bool // zero is meaningful
	}{
		{&c.SyncInterval, 0, "sync_interval", true},
		{&c.BatchDelay, 0, "batch_delay", true},
		{&c.JoinTimeout, d.JoinTimeout, "join_timeout", false},
		{&c.IOTimeout, d.IOTimeout, "io_timeout", false},
		{&c.HandshakeTimeout, d.HandshakeTimeout, "handshake_timeout", false},
		{&c.IdleTimeout, d.IdleTimeout, "idle_timeout", false},
		{&c.ReconnectInterval, d.ReconnectInterval, "reconnect_interval", false},
		{&c.ReconnectTimeout, d.ReconnectTimeout, "reconnect_timeout", false},
	} {
		if *f.v < 0 {
			return configErr(f.key, "%s is negative", *f.v)
		}
		if *f.v == 0 && !f.zero {
			*f.v = f.def
		}
	}
	if c.MaxHandshakesPerHost > c.MaxHandshakes {
		return configErr("max_handshakes_per_host", "%d is over max_handshakes (%d)", c.MaxHandshakesPerHost, c.MaxHandshakes)
	}
	if c.IdleTimeout < 30*time.Millisecond {
		return configErr("idle_timeout", "%s is below 30ms", c.IdleTimeout)
	}
	if c.BatchDelay > time.Second {
		return configErr("batch_delay", "%s is over 1s", c.BatchDelay)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, errors.Newf("bad port %q", p)
	}
	return host, port, nil
}

// LoadKeyFile reads a gossip key file: one base64 key per line, the first
// primary, blank lines and lines starting with '#' ignored. Errors name the
// file and line but never echo key material.
func LoadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errors.WithHint(errors.Wrapf(err, "open gossip key file"), "create one with `lattice keygen > "+path+"`")
	}
	defer f.Close()
	keys, err := parseKeys(f, path)
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// ParseKeys reads keys in the key file's form (one base64 key per line,
// the first primary, blank and '#' lines ignored) from s; source names
// where they came from in errors, which never echo key material.
func ParseKeys(s, source string) ([][]byte, error) {
	return parseKeys(strings.NewReader(s), source)
}

func parseKeys(r io.Reader, path string) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.WithHint(errors.Newf("gossip key file %s line %d: not base64", path, line),
				"each line holds one key in standard base64, as `lattice keygen` prints it")
		}
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, errors.WithHint(errors.Newf("gossip key file %s line %d: key of %d bytes", path, line, len(k)),
				"keys are 16, 24 or 32 bytes (32 for AES-256); make one with `lattice keygen`")
		}
		for i, o := range keys {
			if bytes.Equal(o, k) {
				return nil, errors.Newf("gossip key file %s line %d: same key as key %d", path, line, i+1)
			}
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, errors.Wrapf(err, "read gossip key file %s", path)
	}
	if len(keys) == 0 {
		return nil, errors.WithHint(errors.Newf("gossip key file %s holds no key", path),
			"add a base64 key per line (first = primary), e.g. from `lattice keygen`")
	}
	return keys, nil
}

// GenerateKey returns a new random AES-256 key.
func GenerateKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, k); err != nil {
		return nil, errors.Wrap(err, "generate gossip key")
	}
	return k, nil
}

// EncodeKey returns the key file form of a key (standard base64).
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }
