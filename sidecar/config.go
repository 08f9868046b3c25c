package sidecar

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/crdt"
	"go.yaml.in/yaml/v3"
)

// Config is a sidecar's whole configuration, read from YAML (LoadConfig)
// and overridden by flags. Every key is documented in docs/config.md; the
// zero value of an optional key means its default.
type Config struct {
	// Node is this sidecar's unique name in the cluster; it is also the
	// source name that prefer policies rank.
	Node string `yaml:"node"`
	// Data is the directory of the Badger store.
	Data string `yaml:"data"`
	// Bind is the gossip address (host:port, TCP and UDP).
	Bind string `yaml:"bind"`
	// Advertise is the address peers use (ip:port); default: the bind
	// address when it is a specific IP.
	Advertise string `yaml:"advertise"`
	// Join lists members to join at start (any live ones).
	Join []string `yaml:"join"`
	// Cluster is a label that keeps clusters apart on shared networks.
	Cluster string `yaml:"cluster"`
	// KeyFile holds the gossip encryption key(s), one base64 key per line,
	// the first used for sending. Without it peers talk in the clear, which
	// is refused on a non-loopback bind unless Insecure is set.
	KeyFile string `yaml:"key_file"`
	// Keys are gossip keys given directly rather than in KeyFile (the CLI
	// reads them from LATTICE_GOSSIP_KEY, for a key from a Kubernetes
	// Secret); the first encrypts, all decrypt. Ignored when KeyFile is set.
	Keys [][]byte `yaml:"-"`
	// Insecure allows gossip in the clear (no key_file) on a non-loopback
	// bind address. For closed networks only.
	Insecure bool `yaml:"insecure"`
	// MaxClockOffset is how far ahead of local time a remote timestamp may
	// be before its delta is rejected (default 500ms).
	MaxClockOffset time.Duration `yaml:"max_clock_offset"`
	// Strict rejects collections that are not listed under Collections.
	Strict bool `yaml:"strict"`
	// ShutdownTimeout bounds a graceful stop (default 30s): after it, the
	// process exits even if a part (a store that cannot flush, a system
	// that does not answer) has not closed.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// InitialSync says how a snapshot of the system reconciles with the
	// merged state (join.go): cluster (default), system or {newest: field}.
	InitialSync InitialSyncConfig `yaml:"initial_sync"`
	// Verify configures the periodic comparison of the system with the
	// merged state (verify.go).
	Verify VerifyConfig `yaml:"verify"`

	API         APIConfig                   `yaml:"api"`
	Adapter     AdapterConfig               `yaml:"adapter"`
	Collections map[string]CollectionConfig `yaml:"collections"`
	// Mapping maps this node's system (its tables, columns, values and
	// keys) to the cluster's collections (docs/mapping.md). It is local to
	// the node; the merge rules under collections are the cluster's.
	Mapping   mapping.Config  `yaml:"mapping"`
	Gossip    GossipConfig    `yaml:"gossip"`
	Store     StoreConfig     `yaml:"store"`
	Conflicts ConflictsConfig `yaml:"conflicts"`
	Apply     ApplyConfig     `yaml:"apply"`
	Ready     ReadyConfig     `yaml:"ready"`
	Log       LogConfig       `yaml:"log"`
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Addr is the listen address (default 127.0.0.1:7070); "off" disables
	// the API.
	Addr string `yaml:"addr"`
	// TokenFile holds the bearer token clients must send; it must be
	// private to its owner (chmod 600). Token sets it inline (discouraged
	// outside tests). Either way the token has at least MinTokenLen
	// characters. Without either, the API is open, which is refused on an
	// address other than loopback unless InsecureNoToken is set.
	TokenFile string `yaml:"token_file"`
	Token     string `yaml:"token"`
	// InsecureNoToken allows serving the API without a token on an
	// address other than loopback: for a port that something else guards
	// (a firewall, a proxy that authenticates). Without it such a config
	// is refused.
	InsecureNoToken bool `yaml:"insecure_no_token"`
	// TLS serves HTTPS when both files are given.
	TLS TLSConfig `yaml:"tls"`
	// MaxBodyBytes bounds request bodies (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MetricsPublic serves /metrics without the token.
	MetricsPublic bool `yaml:"metrics_public"`
	// AllowedHosts lists the host names (or addresses) clients may use to
	// reach the API besides loopback ones and the address a request
	// arrives on; other Host headers get 421, which stops DNS rebinding.
	// "*" accepts any.
	AllowedHosts []string `yaml:"allowed_hosts"`
	// NoConsole turns off the web console at /ui/ (docs/console.md); the
	// JSON API stays.
	NoConsole bool `yaml:"no_console"`
}

// TLSConfig names a certificate and its key, PEM encoded.
type TLSConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// AdapterConfig chooses and configures the system adapter.
type AdapterConfig struct {
	// Kind is none (the HTTP API is the system), sqlite, postgres or http
	// (a system reached over its JSON REST API, docs/http.md).
	Kind string `yaml:"kind"`
	// DSN locates the system: a file path for sqlite, a connection URL for
	// postgres, the adapter's YAML config file for http.
	DSN string `yaml:"dsn"`
	// DSNFile holds the DSN instead, for one that carries a password; like
	// every secret file it must be private to its owner (chmod 600).
	DSNFile string `yaml:"dsn_file"`
	// Create lets the sqlite adapter create its database file when it does
	// not exist; without it a missing file stops the agent (a typo must
	// not sync an empty database).
	Create bool `yaml:"create"`
	// Tables limits sync to these tables (default: all with a primary key).
	Tables []string `yaml:"tables"`
	// PollInterval is how often sqlite capture looks for changes.
	PollInterval time.Duration `yaml:"poll_interval"`
	// CatalogInterval is how often the agent reads the system's tables
	// and columns again, to map those created while it runs (default 10s).
	// Adapters that notice schema changes (sqlite) report them at once,
	// and a captured change naming an unknown table or column triggers a
	// look too.
	CatalogInterval time.Duration `yaml:"catalog_interval"`
	// Slot, Publication and Origin name the PostgreSQL replication objects
	// (defaults derived from the node name).
	Slot        string `yaml:"slot"`
	Publication string `yaml:"publication"`
	Origin      string `yaml:"origin"`
}

// CollectionConfig holds one collection's rules.
type CollectionConfig struct {
	// Key lists the primary-key columns (adapters discover them; API-only
	// nodes need them).
	Key []string `yaml:"key"`
	// KeyTypes gives the kinds of the key columns for nodes without an
	// adapter (default string): int, string, float, bool, bytes, time. All
	// nodes must agree, or the same key names different records.
	KeyTypes []string `yaml:"key_types"`
	// Deletes is how deletes merge; only lww (the default) is supported.
	Deletes string `yaml:"deletes"`
	// Fields maps field names to their merge rule.
	Fields map[string]FieldConfig `yaml:"fields"`
}

// FieldConfig is one field's merge rule and, optionally, its value type.
// In YAML it is either a policy name (lww, orset, max, min) or a mapping
// {prefer: [src, ...]} / {policy: max, type: time}.
type FieldConfig struct {
	Policy string   `yaml:"policy"`
	Prefer []string `yaml:"prefer"`
	// Type declares the value kind for API input on nodes whose adapter
	// does not know the column: int, float, string, bool, bytes, time, json
	// (for orset fields: the element kind).
	Type string `yaml:"type"`
}

// UnmarshalYAML accepts a bare policy name or a mapping.
func (f *FieldConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		f.Policy = n.Value
		return nil
	}
	type plain FieldConfig
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*f = FieldConfig(p)
	return nil
}

// GossipConfig tunes dissemination and anti-entropy.
type GossipConfig struct {
	PushAllUpTo  int           `yaml:"push_all_up_to"`
	Fanout       int           `yaml:"fanout"`
	SyncInterval time.Duration `yaml:"sync_interval"`
	BatchDelay   time.Duration `yaml:"batch_delay"`
	// HandshakeTimeout, IdleTimeout, MaxHandshakes and MaxHandshakesPerHost
	// bound what unauthenticated and idle streams may hold (gossip.Config;
	// zero means the default).
	HandshakeTimeout     time.Duration `yaml:"handshake_timeout"`
	IdleTimeout          time.Duration `yaml:"idle_timeout"`
	MaxHandshakes        int           `yaml:"max_handshakes"`
	MaxHandshakesPerHost int           `yaml:"max_handshakes_per_host"`
}

// StoreConfig tunes the Badger store.
type StoreConfig struct {
	// MemTableSize and BlockCacheSize in bytes (defaults from the store).
	MemTableSize   int64 `yaml:"memtable_size"`
	BlockCacheSize int64 `yaml:"block_cache_size"`
	// SyncWrites fsyncs every commit (default true); turning it off trades
	// the last moments of acknowledged writes for speed.
	SyncWrites *bool `yaml:"sync_writes"`
}

// ConflictsConfig bounds the conflict log (see docs/api.md, GET
// /v1/conflicts).
type ConflictsConfig struct {
	// Keep is the most conflicts kept; older ones are dropped as new ones
	// are logged (default 100000).
	Keep int `yaml:"keep"`
	// MaxAge is how long a conflict is kept (default 720h, 30 days).
	MaxAge time.Duration `yaml:"max_age"`
	// Disabled turns the log off: merges neither look for conflicts nor
	// record them.
	Disabled bool `yaml:"disabled"`
}

// ApplyConfig tunes how merged state is written into the system.
type ApplyConfig struct {
	// BatchSize is the number of records per apply transaction (default 500).
	BatchSize int `yaml:"batch_size"`
	// MaxBackoff caps the retry delay while the system is down (default 30s).
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// ReadyConfig sets what /readyz calls ready.
type ReadyConfig struct {
	// FailAfter is how long capture or apply may keep failing before the
	// agent reports not ready (default 30s). Shorter failures (a system
	// restarting, a lock held for a while) are tolerated.
	FailAfter time.Duration `yaml:"fail_after"`
}

// LogConfig sets up logging.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// Adapter kinds.
const (
	AdapterNone     = "none"
	AdapterSQLite   = "sqlite"
	AdapterPostgres = "postgres"
	AdapterHTTP     = "http"
)

// DefaultConfig returns a configuration with every default filled in, for
// a node named "lattice" storing in ./lattice-data.
func DefaultConfig() Config {
	c := Config{Node: "lattice", Data: "lattice-data"}
	_ = c.fill()
	return c
}

// LoadConfig reads a YAML config file. Unknown keys are errors, so a typo
// is reported rather than ignored. The result is not yet validated: apply
// flag overrides, then call Validate.
func LoadConfig(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, errors.Wrapf(err, "read config %s", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, errors.WithHint(errors.Wrapf(err, "parse config %s", path),
			"see docs/config.md for every key; examples/ holds working configs")
	}
	// A secret written into the config makes the config a secret file.
	for _, inline := range []struct {
		key string
		has bool
	}{{"api.token", c.API.Token != ""}, {"adapter.dsn", DSNHasPassword(c.Adapter.DSN)}} {
		if inline.has {
			if err := CheckPrivate(path, inline.key); err != nil {
				return c, errors.WithHint(errors.Wrapf(err, "%s holds a secret", path),
					"or move it to a file of its own: "+strings.TrimPrefix(inline.key, "api.")+"_file")
			}
		}
	}
	return c, nil
}

// DSNHasPassword reports whether a DSN (a URL or key=value pairs) carries
// a password.
func DSNHasPassword(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil {
		if _, ok := u.User.Password(); ok || u.Query().Has("password") {
			return true
		}
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.EqualFold(strings.TrimSpace(k), "password") {
			return true
		}
	}
	return false
}

// Validate fills defaults and rejects bad values with a message that names
// the key.
func (c *Config) Validate() error {
	return c.fill()
}

func keyErr(key string, format string, args ...any) error {
	return errors.Newf("config %s: %s", key, fmt.Sprintf(format, args...))
}

func (c *Config) fill() error {
	if c.Node == "" {
		return errors.WithHint(keyErr("node", "missing"), "give every sidecar a unique name, e.g. node: crm")
	}
	if err := crdt.ValidateName(c.Node); err != nil || strings.ContainsAny(c.Node, " ,") {
		return keyErr("node", "%q is not a valid node name (no spaces, commas, slashes or control characters)", c.Node)
	}
	if c.Data == "" {
		return errors.WithHint(keyErr("data", "missing"), "set the directory for this node's store, e.g. data: /var/lib/lattice/crm")
	}
	if c.Bind == "" {
		c.Bind = "0.0.0.0:7946"
	}
	if _, _, err := splitHostPort(c.Bind); err != nil {
		return keyErr("bind", "%v", err)
	}
	if c.Advertise != "" {
		host, _, err := splitHostPort(c.Advertise)
		if err != nil {
			return keyErr("advertise", "%v", err)
		}
		if net.ParseIP(host) == nil {
			return keyErr("advertise", "%q must be an IP address and port", c.Advertise)
		}
	}
	for i, j := range c.Join {
		if _, _, err := splitHostPort(j); err != nil {
			return keyErr(fmt.Sprintf("join[%d]", i), "%v", err)
		}
	}
	if c.MaxClockOffset == 0 {
		c.MaxClockOffset = crdt.DefaultMaxOffset
	}
	if c.MaxClockOffset < 0 {
		return keyErr("max_clock_offset", "must be positive")
	}
	if c.API.Addr == "" {
		c.API.Addr = "127.0.0.1:7070"
	}
	if c.API.Addr != "off" {
		if _, _, err := splitHostPort(c.API.Addr); err != nil {
			return keyErr("api.addr", "%v", err)
		}
	}
	if c.API.MaxBodyBytes == 0 {
		c.API.MaxBodyBytes = 1 << 20
	}
	if c.API.MaxBodyBytes < 0 {
		return keyErr("api.max_body_bytes", "must be positive")
	}
	if (c.API.TLS.Cert == "") != (c.API.TLS.Key == "") {
		return keyErr("api.tls", "give both cert and key, or neither")
	}
	for _, h := range c.API.AllowedHosts {
		bare := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h == "" || strings.ContainsAny(h, "/ \t@") || (strings.Contains(h, ":") && net.ParseIP(bare) == nil) {
			return errors.WithHint(keyErr("api.allowed_hosts", "%q is not a host name or address", h),
				"list names as clients write them in URLs, without scheme or port: lattice.example.com")
		}
	}
	if c.API.Token != "" && c.API.TokenFile != "" {
		return keyErr("api.token", "set token or token_file, not both")
	}
	if c.API.Token != "" {
		if err := CheckToken(c.API.Token, "config api.token"); err != nil {
			return err
		}
	}
	if c.API.Addr != "off" && c.API.Token == "" && c.API.TokenFile == "" && !c.API.InsecureNoToken && !loopbackAddr(c.API.Addr) {
		return errors.Mark(errors.WithHint(
			keyErr("api.addr", "%s is reachable from other machines, and the API has no token: anyone who reaches it could read and write every record", c.API.Addr),
			"give it a token: head -c 32 /dev/urandom | base64 > /etc/lattice/api.token; chmod 600 /etc/lattice/api.token; "+
				"and set api.token_file (or --token-file, or LATTICE_TOKEN); or bind api.addr to 127.0.0.1; "+
				"or, if something else guards the port, set api.insecure_no_token: true"), ErrInsecureAPI)
	}
	if c.Adapter.DSN != "" && c.Adapter.DSNFile != "" {
		return keyErr("adapter.dsn", "set dsn or dsn_file, not both")
	}
	switch c.Adapter.Kind {
	case "":
		c.Adapter.Kind = AdapterNone
	case AdapterNone:
	default:
		if _, ok := adapters.Lookup(c.Adapter.Kind); !ok {
			return unknownAdapter(c.Adapter.Kind)
		}
		if c.Adapter.DSN == "" && c.Adapter.DSNFile == "" {
			return errors.WithHint(keyErr("adapter.dsn", "missing for adapter %s", c.Adapter.Kind),
				"a file path for sqlite, a postgres:// URL for postgres, the adapter's YAML config file for http")
		}
	}
	if c.Adapter.PollInterval < 0 {
		return keyErr("adapter.poll_interval", "must be positive")
	}
	if c.Adapter.CatalogInterval == 0 {
		c.Adapter.CatalogInterval = 10 * time.Second
	}
	if c.Adapter.CatalogInterval < 0 {
		return keyErr("adapter.catalog_interval", "must be positive")
	}
	for name, cc := range c.Collections {
		if _, err := cc.collection(name); err != nil {
			return err
		}
	}
	if c.Gossip.PushAllUpTo < 0 || c.Gossip.Fanout < 0 || c.Gossip.SyncInterval < 0 || c.Gossip.BatchDelay < 0 {
		return keyErr("gossip", "values must not be negative")
	}
	if c.Conflicts.Keep == 0 {
		c.Conflicts.Keep = 100000
	}
	if c.Conflicts.Keep < 0 {
		return keyErr("conflicts.keep", "must be positive")
	}
	if c.Conflicts.MaxAge == 0 {
		c.Conflicts.MaxAge = 30 * 24 * time.Hour
	}
	if c.Conflicts.MaxAge < 0 {
		return keyErr("conflicts.max_age", "must be positive")
	}
	if c.Apply.BatchSize == 0 {
		c.Apply.BatchSize = 500
	}
	if c.Apply.BatchSize < 0 {
		return keyErr("apply.batch_size", "must be positive")
	}
	if c.Apply.MaxBackoff == 0 {
		c.Apply.MaxBackoff = 30 * time.Second
	}
	if c.Apply.MaxBackoff < 0 {
		return keyErr("apply.max_backoff", "must be positive")
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout < 0 {
		return keyErr("shutdown_timeout", "must be positive")
	}
	if err := c.InitialSync.fill(); err != nil {
		return err
	}
	if err := c.Verify.fill(); err != nil {
		return err
	}
	if c.Ready.FailAfter == 0 {
		c.Ready.FailAfter = 30 * time.Second
	}
	if c.Ready.FailAfter < 0 {
		return keyErr("ready.fail_after", "must be positive")
	}
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		return keyErr("log.level", "%q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		return keyErr("log.format", "%q: use text or json", c.Log.Format)
	}
	if len(c.Mapping.Tables) > 0 {
		if c.Adapter.Kind == AdapterNone {
			return keyErr("mapping", "maps a system's tables, and adapter.kind is none")
		}
		if _, err := mapping.Compile(c.Mapping); err != nil {
			return errors.Wrap(err, "config")
		}
	}
	return nil
}

func splitHostPort(s string) (string, int, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, errors.Newf("%q is not host:port", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, errors.Newf("%q has a bad port", s)
	}
	return host, p, nil
}

// collection converts a collection's config into its crdt rules.
func (cc CollectionConfig) collection(name string) (*crdt.Collection, error) {
	key := "collections." + name
	if err := crdt.ValidateName(name); err != nil {
		return nil, keyErr(key, "%v", err)
	}
	switch cc.Deletes {
	case "", "lww":
	default:
		return nil, errors.WithHint(keyErr(key+".deletes", "%q is not supported", cc.Deletes), "use lww")
	}
	if len(cc.KeyTypes) > 0 && len(cc.KeyTypes) != len(cc.Key) {
		return nil, keyErr(key+".key_types", "lists %d types for %d key columns", len(cc.KeyTypes), len(cc.Key))
	}
	for i, t := range cc.KeyTypes {
		k, err := crdt.ParseKind(t)
		if err != nil || k == crdt.KindNull || k == crdt.KindJSON || k == crdt.KindList {
			return nil, keyErr(fmt.Sprintf("%s.key_types[%d]", key, i), "%q: use int, string, float, bool, bytes or time", t)
		}
	}
	fields := map[string]crdt.Policy{}
	for _, f := range sortedKeys(cc.Fields) {
		fc := cc.Fields[f]
		fkey := key + ".fields." + f
		p, err := fc.policy()
		if err != nil {
			return nil, keyErr(fkey, "%v", err)
		}
		if fc.Type != "" {
			if _, err := crdt.ParseKind(fc.Type); err != nil {
				return nil, keyErr(fkey+".type", "%q: use int, float, string, bool, bytes, time or json", fc.Type)
			}
		}
		fields[f] = p
	}
	c, err := crdt.NewCollection(name, cc.Key, fields)
	if err != nil {
		return nil, keyErr(key, "%v", err)
	}
	return c, nil
}

func (fc FieldConfig) policy() (crdt.Policy, error) {
	if len(fc.Prefer) > 0 {
		if fc.Policy != "" && fc.Policy != "prefer" {
			return crdt.Policy{}, errors.Newf("prefer list given with policy %q", fc.Policy)
		}
		return crdt.Policy{Kind: crdt.Prefer, Prefer: slices.Clone(fc.Prefer)}, nil
	}
	if fc.Policy == "" {
		return crdt.Policy{Kind: crdt.LWW}, nil
	}
	k, err := crdt.ParsePolicyKind(fc.Policy)
	if err != nil {
		return crdt.Policy{}, err
	}
	if k == crdt.Prefer {
		return crdt.Policy{}, errors.WithHint(errors.New("prefer needs a source list"), "write {prefer: [crm, erp]}")
	}
	return crdt.Policy{Kind: k}, nil
}

// Schema builds the crdt schema of the listed collections.
func (c *Config) Schema() (*crdt.Schema, error) {
	var cols []*crdt.Collection
	for _, name := range sortedKeys(c.Collections) {
		col, err := c.Collections[name].collection(name)
		if err != nil {
			return nil, err
		}
		cols = append(cols, col)
	}
	return crdt.NewSchema(c.Strict, cols...)
}

// MinTokenLen is the shortest API token accepted, however it is given:
// api.token, api.token_file, --token-file or LATTICE_TOKEN.
const MinTokenLen = 16

const tokenHint = "generate one with: head -c 32 /dev/urandom | base64"

// ErrInsecureAPI marks a config that would serve the API without a token
// to other machines.
var ErrInsecureAPI = errors.New("sidecar: API without a token on a network address")

// CheckToken checks an API token from source (what gave it: a config key,
// a file, an environment variable): at least MinTokenLen characters, and
// none that an HTTP header cannot carry.
func CheckToken(token, source string) error {
	if len(token) < MinTokenLen {
		return errors.WithHint(errors.Newf("%s: the token is shorter than %d characters", source, MinTokenLen), tokenHint)
	}
	if i := strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f || r > unicode.MaxASCII }); i >= 0 {
		return errors.WithHint(errors.Newf("%s: the token holds a space, a control or a non-ASCII character (at byte %d), which no Authorization header can carry", source, i), tokenHint)
	}
	return nil
}

// loopbackAddr reports whether a listen address (host:port) is on
// loopback only: an empty host listens on every interface, and a name
// other than localhost may name any address.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ReadToken returns the API token from token or token_file ("" for none).
func (c *APIConfig) ReadToken() (string, error) {
	if c.Token != "" {
		return c.Token, nil
	}
	if c.TokenFile == "" {
		return "", nil
	}
	t, err := ReadSecretFile(c.TokenFile, "api.token_file")
	if err != nil {
		return "", err
	}
	if err := CheckToken(t, "config api.token_file: "+c.TokenFile); err != nil {
		return "", err
	}
	return t, nil
}

// ReadDSN returns the DSN from dsn or dsn_file.
func (c *AdapterConfig) ReadDSN() (string, error) {
	if c.DSNFile == "" {
		return c.DSN, nil
	}
	dsn, err := ReadSecretFile(c.DSNFile, "adapter.dsn_file")
	if err != nil {
		return "", err
	}
	if dsn == "" {
		return "", keyErr("adapter.dsn_file", "%s is empty", c.DSNFile)
	}
	return dsn, nil
}

// CheckPrivate refuses a secret file (a key, a token, a DSN) that its
// owner's group or other users may open: they could read the secret, or
// replace it. key names the config key or flag that names the file.
func CheckPrivate(path, key string) error {
	what := "config " + key
	if strings.HasPrefix(key, "-") {
		what = key // a flag, not a config key
	}
	fi, err := os.Stat(path)
	if err != nil {
		return errors.Wrap(err, what)
	}
	if runtime.GOOS == "windows" {
		return nil // permissions are ACLs there, not mode bits
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return errors.WithHint(errors.Newf("%s: %s is open to other users (mode %04o)", what, path, perm),
			"chmod 600 "+path)
	}
	return nil
}

// ReadSecretFile reads a secret file that CheckPrivate accepts and returns
// its content without surrounding white space.
func ReadSecretFile(path, key string) (string, error) {
	if err := CheckPrivate(path, key); err != nil {
		return "", err
	}
	what := "config " + key
	if strings.HasPrefix(key, "-") {
		what = key
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", errors.Wrapf(err, "%s: read %s", what, path)
	}
	return strings.TrimSpace(string(b)), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
