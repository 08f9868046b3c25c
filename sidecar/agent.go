package sidecar

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/mapping"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"github.com/lattice-crdt/lattice/sidecar/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Version is the version of this build, advertised to peers and reported by
// the API and the CLI. Release builds set it with -ldflags.
var Version = "0.1.0-dev"

// Options are what a process hands an agent besides its config: the
// logger, and for tests and the demo, injected parts.
type Options struct {
	Logger *slog.Logger
	// Physical is the HLC's physical clock (default: Clock's).
	Physical func() int64
	// Clock is the source of time of the agent, its gossip node and its
	// adapter (default: clock.Real).
	Clock clock.Clock
	// Adapter, when set, is used instead of opening the configured one.
	Adapter adapters.Adapter
	// StoreOptions adjusts the store options derived from the config.
	StoreOptions func(*store.Options)
	// GossipConfig adjusts the gossip config derived from the config.
	GossipConfig func(*gossip.Config)

	knobs testingKnobs
}

// testingKnobs are hooks that tests use to force an interleaving of the
// agent's loops; all are nil outside tests.
type testingKnobs struct {
	// beforeLocal runs in the capture loop after a captured batch is
	// prepared and before it is stepped through the engine.
	beforeLocal func(adapters.Batch)
	// beforeApply runs in the apply loop after the queued records are read
	// and before the adapter's Apply; afterApply after the Apply returned.
	beforeApply func([]adapters.Write)
	afterApply  func(adapters.Applied)
	// acking runs with true when the capture loop is about to acknowledge
	// a cursor (it may then wait for an apply batch), with false once done.
	acking func(bool)
}

// Agent is one running sidecar: the store, the gossip node, the adapter and
// the HTTP API, wired together. Create it with Start and stop it with Close.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	schema *crdt.Schema
	store  *store.Store
	node   *gossip.Node
	adp    adapters.Adapter
	// mapped is the mapping over the system's adapter when the config has
	// one (adp is then it); roundTrip is adp's RoundTripper, if any.
	mapped    *mapping.Adapter
	roundTrip adapters.RoundTripper
	token     string
	// eng decides what captured changes, API writes and applies do; the
	// agent drives it (steps under engMu, through store.Commit) and carries
	// out its Ready values in order. Its catalog mapping (eng.Catalog) is
	// replaced while running by catalog.go.
	clock   clock.Clock
	eng     *engine.Engine
	engMu   sync.Mutex
	catMu   sync.Mutex      // serializes catalog refreshes; guards catMiss
	catMiss map[string]bool // unknown names a refresh was asked about
	reg     *prometheus.Registry
	m       *metrics
	ver     *verifier
	// verifySt is the verification loop's state (nil where it does not
	// run); it does not count for readiness.
	verifySt atomic.Pointer[loopState]
	// joinKept and joinTaken count snapshot rows of known records decided
	// by initial_sync (engine.Join), for the snapshot's log line.
	joinKept, joinTaken atomic.Int64
	// applyMu serializes the adapter's Apply calls: the apply loop's and
	// verification's repairs (verify.go).
	applyMu sync.Mutex
	knobs   testingKnobs

	apiLn  net.Listener
	apiSrv *http.Server

	applyWake chan struct{}
	// ackNext is the latest durable capture cursor to acknowledge to the
	// adapter (nil: none); ackWake wakes the loop that does (ackLoop).
	ackMu   sync.Mutex
	ackNext []byte
	ackWake chan struct{}
	// applyDeferred says an Apply deferred writes for changes capture had
	// not taken: the next acknowledged capture wakes the applier.
	applyDeferred atomic.Bool
	// captureUp is closed once the initial snapshot (if any) is stored:
	// applying before would let the snapshot read rows that an apply is
	// about to overwrite and take them for new user writes.
	captureUp chan struct{}
	upOnce    sync.Once

	cancel context.CancelFunc
	wg     sync.WaitGroup

	ready      atomic.Bool
	captureSt  atomic.Pointer[loopState]
	applySt    atomic.Pointer[loopState]
	closeOnce  sync.Once
	closeErr   error
	cursorName string

	// done is closed when the agent stops on its own because it cannot go
	// on (its store failed); failErr says why.
	done     chan struct{}
	failOnce sync.Once
	failErr  error
}

// Start validates the config, opens the store and the adapter, starts
// gossip, the HTTP API and the capture and apply loops, and returns once the
// agent serves. Joining the configured seeds happens in the background,
// retried until it succeeds.
func Start(ctx context.Context, cfg Config, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = NewLogger(os.Stderr, cfg.Log)
	}
	log = log.With("node", cfg.Node)
	schema, err := cfg.Schema()
	if err != nil {
		return nil, err
	}
	token, err := cfg.API.ReadToken()
	if err != nil {
		return nil, err
	}
	if cfg.API.Addr != "off" && token == "" && !loopbackAddr(cfg.API.Addr) {
		log.Warn("the API serves every record without a token on an address other machines may reach",
			"api", cfg.API.Addr, "insecure_no_token", cfg.API.InsecureNoToken,
			"hint", "keep the port closed to all but trusted clients, or set api.token_file")
	}
	a := &Agent{
		cfg:        cfg,
		log:        log,
		schema:     schema,
		token:      token,
		applyWake:  make(chan struct{}, 1),
		ackWake:    make(chan struct{}, 1),
		captureUp:  make(chan struct{}),
		catMiss:    map[string]bool{},
		done:       make(chan struct{}),
		cursorName: "adapter/" + cfg.Adapter.Kind,
		reg:        prometheus.NewRegistry(),
		knobs:      opts.knobs,
		clock:      clock.Or(opts.Clock),
	}
	a.setState(&a.captureSt, "idle", nil)
	a.setState(&a.applySt, "idle", nil)

	ok := false
	defer func() {
		if !ok {
			_ = a.Close()
		}
	}()

	sopts := store.DefaultOptions()
	sopts.Logger = log.With("component", "store")
	sopts.MaxClockOffset = cfg.MaxClockOffset
	sopts.ConflictKeep, sopts.ConflictMaxAge, sopts.NoConflictLog = cfg.Conflicts.Keep, cfg.Conflicts.MaxAge, cfg.Conflicts.Disabled
	if opts.Physical != nil {
		sopts.Physical = opts.Physical
	} else if opts.Clock != nil {
		sopts.Physical = func() int64 { return a.clock.Now().UnixNano() }
	}
	if cfg.Store.MemTableSize > 0 {
		sopts.MemTableSize = cfg.Store.MemTableSize
	}
	if cfg.Store.BlockCacheSize > 0 {
		sopts.BlockCacheSize = cfg.Store.BlockCacheSize
	}
	if cfg.Store.SyncWrites != nil {
		sopts.SyncWrites = *cfg.Store.SyncWrites
	}
	// Without an adapter the API is the system: nothing is ever applied.
	sopts.NoApplyQueue = cfg.Adapter.Kind == AdapterNone && opts.Adapter == nil
	if opts.StoreOptions != nil {
		opts.StoreOptions(&sopts)
	}
	if a.store, err = store.Open(cfg.Data, schema, sopts); err != nil {
		return nil, err
	}
	if sopts.NoApplyQueue {
		// Left over from a time this node had an adapter: nothing will
		// apply them now.
		if left, err := a.store.Pending(0); err != nil {
			return nil, err
		} else if len(left) > 0 {
			log.Warn("dropping the apply queue of a former adapter", "records", len(left))
			if err := a.store.AckPending(left); err != nil {
				return nil, err
			}
		}
	}

	a.adp = opts.Adapter
	if a.adp == nil && cfg.Adapter.Kind != AdapterNone {
		if a.adp, err = openAdapter(ctx, cfg, a.clock, log.With("component", "adapter")); err != nil {
			return nil, err
		}
	}
	if a.adp != nil && len(cfg.Mapping.Tables) > 0 {
		m, err := mapping.Compile(cfg.Mapping)
		if err != nil {
			return nil, err
		}
		a.mapped = mapping.Wrap(a.adp, m, log.With("component", "mapping"))
		a.mapped.SetLive(func(collection string, key crdt.Key) (bool, error) {
			rec, err := a.store.Get(collection, key)
			return rec.Exists(), err
		})
		a.adp = a.mapped.Capable()
	}
	a.roundTrip, _ = a.adp.(adapters.RoundTripper)
	var tables []adapters.Table
	if a.adp != nil {
		if tables, err = a.adp.Tables(ctx); err != nil {
			return nil, errors.Wrap(err, "discover the system's tables")
		}
	}
	ti, err := engine.NewCatalog(cfg.catalogConfig(), schema, tables)
	if err != nil {
		return nil, err
	}
	params := a.store.Params(cfg.Node)
	params.Join = cfg.InitialSync.join()
	a.eng = engine.New(params, ti)
	a.m = newMetrics(a)
	if err := registerAdapterMetrics(a.reg, a.adp); err != nil {
		return nil, err
	}
	_, verifies := a.adp.(adapters.RangeReader)
	a.ver = newVerifier(a.reg, verifies)

	gcfg := gossip.DefaultConfig()
	gcfg.Name = cfg.Node
	gcfg.Clock = a.clock
	gcfg.BindAddr = cfg.Bind
	gcfg.AdvertiseAddr = cfg.Advertise
	gcfg.Join = cfg.Join
	gcfg.Label = cfg.Cluster
	gcfg.Insecure = cfg.Insecure
	gcfg.Version = Version
	gcfg.ReplicaID = a.store.ReplicaID().String()
	gcfg.Schema = schema
	gcfg.Logger = log.With("component", "gossip")
	if cfg.Gossip.PushAllUpTo > 0 {
		gcfg.PushAllUpTo = cfg.Gossip.PushAllUpTo
	}
	if cfg.Gossip.Fanout > 0 {
		gcfg.Fanout = cfg.Gossip.Fanout
	}
	if cfg.Gossip.SyncInterval > 0 {
		gcfg.SyncInterval = cfg.Gossip.SyncInterval
	}
	if cfg.Gossip.BatchDelay > 0 {
		gcfg.BatchDelay = cfg.Gossip.BatchDelay
	}
	if cfg.Gossip.HandshakeTimeout > 0 {
		gcfg.HandshakeTimeout = cfg.Gossip.HandshakeTimeout
	}
	if cfg.Gossip.IdleTimeout > 0 {
		gcfg.IdleTimeout = cfg.Gossip.IdleTimeout
	}
	if cfg.Gossip.MaxHandshakes > 0 {
		gcfg.MaxHandshakes = cfg.Gossip.MaxHandshakes
	}
	if cfg.Gossip.MaxHandshakesPerHost > 0 {
		gcfg.MaxHandshakesPerHost = cfg.Gossip.MaxHandshakesPerHost
	}
	// Without a key file gossip runs in the clear, and says so; gossip
	// refuses that on a network address unless cfg.Insecure.
	if cfg.KeyFile != "" {
		if err := CheckPrivate(cfg.KeyFile, "key_file"); err != nil {
			return nil, err
		}
		if gcfg.Keys, err = gossip.LoadKeyFile(cfg.KeyFile); err != nil {
			return nil, errors.Wrap(err, "config key_file")
		}
	} else if len(cfg.Keys) > 0 {
		gcfg.Keys = cfg.Keys
	}

	// The API starts before gossip so that the advertised address is the
	// bound one (port 0 picks a free port).
	if cfg.API.Addr != "off" {
		if err := a.listenAPI(); err != nil {
			return nil, err
		}
		gcfg.APIAddr = a.apiLn.Addr().String()
	}
	if opts.GossipConfig != nil {
		opts.GossipConfig(&gcfg)
	}
	if a.node, err = gossip.New(gcfg, replica{a}); err != nil {
		return nil, errors.Wrap(err, "start gossip")
	}

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	if a.apiSrv != nil {
		a.wg.Go(func() { a.serveAPI() })
	}
	a.wg.Go(func() { a.startup(runCtx) })
	a.wg.Go(func() { a.watchStore(runCtx) })
	ok = true
	log.Info("lattice agent started", "version", Version, "replica", a.store.ReplicaID(),
		"api", a.APIAddr(), "adapter", cfg.Adapter.Kind, "collections", len(schema.Collections()))
	return a, nil
}

// startup joins the cluster, bootstraps an empty replica from a peer, and
// then runs the capture and apply loops until the agent closes.
func (a *Agent) startup(ctx context.Context) {
	if len(a.cfg.Join) > 0 {
		a.joinLoop(ctx)
	}
	if ctx.Err() != nil {
		return
	}
	if a.store.Digest().Count == 0 && len(a.node.Members()) > 0 {
		a.bootstrap(ctx)
	}
	if a.adp != nil {
		a.wg.Go(func() { a.applyLoop(ctx) })
		a.wg.Go(func() { a.captureLoop(ctx) })
		a.wg.Go(func() { a.ackLoop(ctx) })
		a.wg.Go(func() { a.catalogLoop(ctx) })
		if _, ok := a.adp.(adapters.RangeReader); ok && !a.cfg.Verify.Disabled {
			a.wg.Go(func() { a.verifyLoop(ctx) })
		}
	} else {
		a.ready.Store(true)
	}
}

// joinLoop joins the configured seeds, retrying with backoff until one
// answers or the agent closes.
func (a *Agent) joinLoop(ctx context.Context) {
	b := backoff{first: 500 * time.Millisecond, max: 30 * time.Second}
	for attempt := 1; ; attempt++ {
		n, err := a.node.Join(ctx, a.cfg.Join)
		if err == nil {
			a.log.Info("joined cluster", "contacted", n, "members", len(a.node.Members()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("join failed; retrying", "attempt", attempt, "seeds", a.cfg.Join, "err", err, "retry_in", b.delay())
		if !b.wait(ctx, a.clock) {
			return
		}
	}
}

// backoff is a wait that doubles from first up to max between failures.
// It paces retries against systems that are down; nothing waits on it for
// correctness.
type backoff struct {
	first, max, next time.Duration
}

// delay is the next wait.
func (b *backoff) delay() time.Duration {
	if b.next == 0 {
		return min(b.first, b.max)
	}
	return b.next
}

// wait waits the next delay by clk, or until ctx is done (false), and
// doubles the delay after it.
func (b *backoff) wait(ctx context.Context, clk clock.Clock) bool {
	d := b.delay()
	b.next = min(d*2, b.max)
	return clock.Sleep(clk, ctx.Done(), d)
}

// reset starts the waits again from first.
func (b *backoff) reset() { b.next = 0 }

// Close stops the loops, leaves the cluster, stops the API and closes the
// adapter and the store, waiting for everything the agent started.
func (a *Agent) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		if a.cancel != nil {
			a.cancel()
		}
		if a.apiSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, a.apiSrv.Shutdown(ctx))
			cancel()
		} else if a.apiLn != nil {
			_ = a.apiLn.Close()
		}
		if a.node != nil {
			if err := a.node.Leave(2 * time.Second); err != nil {
				a.log.Debug("leave", "err", err)
			}
		}
		a.wg.Wait()
		if a.node != nil {
			errs = append(errs, a.node.Close())
		}
		if a.adp != nil {
			errs = append(errs, a.adp.Close())
		}
		if a.store != nil {
			if a.Err() != nil {
				// Closing would flush into a directory that is gone, and
				// retry forever.
				a.store.Abandon()
			} else {
				errs = append(errs, a.store.Close())
			}
		}
		a.closeErr = errors.Join(errs...)
		if a.closeErr == nil {
			a.log.Info("lattice agent stopped")
		}
	})
	return a.closeErr
}

// storeCheckInterval is how often the agent checks its data directory.
const storeCheckInterval = time.Second

// watchStore stops the agent when its data directory goes away: Badger
// would retry its flushes forever while the agent went on acknowledging
// writes it cannot make durable.
func (a *Agent) watchStore(ctx context.Context) {
	t := a.clock.NewTicker(storeCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if err := a.store.CheckDir(); err != nil {
			a.fail(errors.Wrap(err, "store"))
			return
		}
	}
}

// fail stops the agent's loops for good and reports err through Done and
// Err. The owner still calls Close.
func (a *Agent) fail(err error) {
	a.failOnce.Do(func() {
		a.failErr = err
		a.log.Error("the agent cannot go on and stops", "err", err)
		a.ready.Store(false)
		a.cancel()
		close(a.done)
	})
}

// Done returns a channel that is closed when the agent stops on its own
// because it cannot go on (its data directory went away); Err then says
// why. The owner should Close the agent and exit with an error.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err returns why the agent stopped on its own, or nil.
func (a *Agent) Err() error {
	select {
	case <-a.done:
		return a.failErr
	default:
		return nil
	}
}

// Name returns the node name.
func (a *Agent) Name() string { return a.cfg.Node }

// APIAddr returns the address the API listens on ("" when off).
func (a *Agent) APIAddr() string {
	if a.apiLn == nil {
		return ""
	}
	return a.apiLn.Addr().String()
}

// Store returns the agent's store.
func (a *Agent) Store() *store.Store { return a.store }

// Node returns the agent's gossip node.
func (a *Agent) Node() *gossip.Node { return a.node }

// Ready reports whether the agent has caught up with its system and keeps
// up with it: the initial snapshot (if any) is done, capture runs, and
// neither capture nor apply has been failing for longer than
// ready.fail_after.
func (a *Agent) Ready() bool { return a.ready.Load() && len(a.failing(a.clock.Now())) == 0 }

// Digest returns the fingerprint of the whole replica.
func (a *Agent) Digest() crdt.Fingerprint { return a.store.Digest() }

func (a *Agent) listenAPI() error {
	ln, err := net.Listen("tcp", a.cfg.API.Addr)
	if err != nil {
		return errors.WithHint(errors.Wrapf(err, "config api.addr: listen on %s", a.cfg.API.Addr),
			"another process may hold the port; choose another api.addr or stop it")
	}
	a.apiLn = ln
	a.apiSrv = &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.cfg.API.TLS.Cert != "" {
		if err := CheckPrivate(a.cfg.API.TLS.Key, "api.tls.key"); err != nil {
			return err
		}
		cert, err := tls.LoadX509KeyPair(a.cfg.API.TLS.Cert, a.cfg.API.TLS.Key)
		if err != nil {
			return errors.Wrap(err, "config api.tls: load certificate and key")
		}
		a.apiSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

func (a *Agent) serveAPI() {
	var err error
	if a.apiSrv.TLSConfig != nil {
		err = a.apiSrv.ServeTLS(a.apiLn, "", "")
	} else {
		err = a.apiSrv.Serve(a.apiLn)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
		a.log.Error("api server stopped", "err", err)
	}
}
