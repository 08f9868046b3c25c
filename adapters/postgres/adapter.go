package postgres

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lattice-crdt/lattice/adapters"
)

// ErrClosed is returned by calls on a closed adapter.
var ErrClosed = errors.New("postgres: adapter closed")

// sessionParams fix the text forms the codec reads and writes, for regular
// and replication sessions alike: pgoutput prints values with the output
// functions of the walsender's session.
var sessionParams = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO, YMD",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
	"client_encoding":    "UTF8",
}

// Adapter syncs one PostgreSQL database. It implements adapters.Adapter.
type Adapter struct {
	cfg     Config
	log     *slog.Logger
	connCfg *pgx.ConnConfig
	replCfg *pgconn.Config
	version int // server_version_num

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup

	metaMu  sync.Mutex // guards meta, types, cat, leftOut
	meta    *pgx.Conn
	types   *typeCache
	cat     *catalog
	leftOut map[string]bool // problems of new tables left out, warned about

	applyMu sync.Mutex
	apply   *pgx.Conn
	// mark is the session Apply writes its capture markers on (marker),
	// under applyMu: not the metadata session, whose mutex catalog
	// refreshes and capture's type lookups hold over queries that an Apply
	// holding users' rows should not wait behind.
	mark     *pgx.Conn
	prepared map[string]string // SQL to prepared statement name on apply
	// idmapKnown: ensureIDMap looked for the ID map; idmapExists: it
	// found or created it.
	idmapKnown, idmapExists bool

	slotWait time.Duration // how long Capture and Snapshot wait for the slot's previous session

	acked    atomic.Uint64 // highest acknowledged cursor (a WAL position)
	ackNudge atomic.Bool   // an Ack arrived since the last status update
	wakeMu   sync.Mutex
	wake     context.CancelFunc // interrupts capture's current receive

	changed chan struct{} // see CatalogChanged

	dec decoded // what capture's stream decoded, for Apply
}

var (
	_ adapters.Adapter         = (*Adapter)(nil)
	_ adapters.CatalogNotifier = (*Adapter)(nil)
)

// Open connects to the database, checks that it can be synced (server
// version, wal_level, privileges, primary keys, column types, the slot's
// health), and creates the publication and the replication origin if they
// do not exist. The replication slot is created by Snapshot.
func Open(ctx context.Context, cfg Config) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	connCfg, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, errors.Mark(errors.Wrap(err, "postgres config: dsn"), ErrConfig)
	}
	for k, v := range sessionParams {
		connCfg.RuntimeParams[k] = v
	}
	if _, ok := connCfg.RuntimeParams["application_name"]; !ok {
		connCfg.RuntimeParams["application_name"] = strings.TrimSpace("lattice " + cfg.Node)
	}
	replCfg := connCfg.Config.Copy()
	replCfg.RuntimeParams["replication"] = "database"

	a := &Adapter{cfg: cfg, log: cfg.Logger, connCfg: connCfg, replCfg: replCfg, types: newTypeCache(), slotWait: slotFreeWait,
		changed: make(chan struct{}, 1)}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	if err := a.open(ctx); err != nil {
		_ = a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Adapter) open(ctx context.Context) error {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return err
	}
	var p problems
	if err := a.checkServer(ctx, conn, &p); err != nil {
		return err
	}
	cat, err := discover(ctx, conn, &a.cfg, a.types, &p)
	if err != nil {
		return err
	}
	if err := p.err(); err != nil {
		return err
	}
	if err := a.setFullIdentity(ctx, conn, cat); err != nil {
		return err
	}
	a.cat = cat
	// A slot that cannot be captured from is reported here, but does not fail
	// Open: the remedy is a new snapshot, which needs an open adapter.
	// Capture returns the same error.
	if err := a.checkSlot(ctx, conn, false); errors.Is(err, ErrSlotInvalidated) {
		a.log.Error("replication slot unusable: capture will fail until a new snapshot is taken",
			"slot", a.cfg.Slot, "err", err.Error(), "hint", strings.Join(errors.GetAllHints(err), "; "))
	} else if err != nil && !errors.Is(err, ErrSlotMissing) {
		return err
	}
	if err := ensureOrigin(ctx, conn, a.cfg.Origin); err != nil {
		return err
	}
	if err := ensurePublication(ctx, conn, a.cfg.Publication, cat, false); err != nil {
		return err
	}
	a.log.Info("postgres adapter open", "tables", len(cat.tables), "slot", a.cfg.Slot,
		"publication", a.cfg.Publication, "origin", a.cfg.Origin, "server_version", a.version)
	return nil
}

// enter registers an in-flight call that Close waits for, and returns a
// context that Close cancels.
func (a *Adapter) enter(ctx context.Context) (context.Context, func(), error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, nil, ErrClosed
	}
	a.wg.Add(1)
	a.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		a.wg.Done()
	}, nil
}

// metaConn returns the connection for catalog queries, reconnecting if it
// broke. The caller holds metaMu.
func (a *Adapter) metaConn(ctx context.Context) (*pgx.Conn, error) {
	if a.meta != nil && !a.meta.IsClosed() {
		return a.meta, nil
	}
	conn, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	a.meta = conn
	return conn, nil
}

func (a *Adapter) connect(ctx context.Context) (*pgx.Conn, error) {
	return a.connectWith(ctx, a.connCfg)
}

func (a *Adapter) connectWith(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, errors.Wrapf(classify(err), "connect to %s", a.where())
	}
	return conn, nil
}

// where names the database for messages, without credentials.
func (a *Adapter) where() string {
	return a.connCfg.Host + "/" + a.connCfg.Database
}

// Tables re-reads the synced tables from the catalog, so that tables and
// columns added since Open appear, and returns them sorted by name. A table
// created since the last look (one adapter.tables allows, or any table of
// the schemas without it) is added to the publication first, so that its
// changes reach the replication stream from then on.
func (a *Adapter) Tables(ctx context.Context) ([]adapters.Table, error) {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	cat, err := a.refresh(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]adapters.Table, len(cat.tables))
	for i, t := range cat.tables {
		out[i] = t.describe()
	}
	return out, nil
}

// refresh re-discovers the synced tables and adds the tables that are new
// since the previous catalog to the publication. A table that was already
// there at Open but is missing from the publication is left out: its
// earlier rows were never captured, and checkPublication reports it.
func (a *Adapter) refresh(ctx context.Context) (*catalog, error) {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return nil, err
	}
	var p problems
	cat, err := discover(ctx, conn, &a.cfg, a.types, &p)
	if err != nil {
		return nil, err
	}
	if a.cat != nil {
		cat = a.leaveOut(cat, p.split(func(name [2]string) bool { return a.cat.byName[name] == nil }))
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := a.setFullIdentity(ctx, conn, cat); err != nil {
		return nil, err
	}
	if err := a.publishNew(ctx, conn, cat); err != nil {
		return nil, err
	}
	a.cat = cat
	return cat, nil
}

// leaveOut returns cat without the tables of the problems left, tables
// that appeared since the previous catalog and cannot be synced (no
// primary key, an unsupported column type): rather than failing the
// refresh, and with it capture, they are left out with a warning (once per
// problem) until they are fixed. The caller holds metaMu.
func (a *Adapter) leaveOut(cat *catalog, left []problem) *catalog {
	seen := map[string]bool{}
	for _, pr := range left {
		seen[pr.line] = true
		if !a.leftOut[pr.line] {
			a.log.Warn("new table not synced until fixed", "problem", pr.line, "hint", pr.hint)
		}
	}
	a.leftOut = seen
	if len(left) == 0 {
		return cat
	}
	var keep []*table
	for _, t := range cat.tables {
		if !slices.ContainsFunc(left, func(pr problem) bool { return pr.table == [2]string{t.Schema, t.Name} }) {
			keep = append(keep, t)
		}
	}
	return newCatalog(keep)
}

// publishNew adds the tables of cat that the previous catalog lacked to
// the publication, if it does not cover them. The caller holds metaMu.
func (a *Adapter) publishNew(ctx context.Context, conn *pgx.Conn, cat *catalog) error {
	if a.cat == nil {
		return nil
	}
	var fresh []*table
	for _, t := range cat.tables {
		if a.cat.byName[[2]string{t.Schema, t.Name}] == nil {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	exists, _, published, err := publicationState(ctx, conn, a.cfg.Publication)
	if err != nil || !exists {
		return err // a missing publication is checkPublication's to report
	}
	var add []string
	var names []string
	for _, t := range fresh {
		if !slices.Contains(published, [2]string{t.Schema, t.Name}) {
			add = append(add, t.qualified())
			names = append(names, t.Collection)
		}
	}
	if len(add) == 0 {
		return nil
	}
	_, err = conn.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{a.cfg.Publication}.Sanitize()+" ADD TABLE "+strings.Join(add, ", "))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" {
		err = nil // added concurrently
	}
	if err != nil {
		return errors.Wrapf(classify(err), "add table(s) %s to publication %s", strings.Join(names, ", "), a.cfg.Publication)
	}
	a.log.Info("new table(s) added to the publication: captured from now on", "tables", names, "publication", a.cfg.Publication)
	return nil
}

// CatalogChanged returns a channel that receives a value when capture sees
// a synced table whose columns differ from the catalog's (a column added,
// dropped or retyped while running): Tables then reports the change.
func (a *Adapter) CatalogChanged() <-chan struct{} { return a.changed }

// notifyCatalog signals CatalogChanged without blocking.
func (a *Adapter) notifyCatalog() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// catalog returns the tables as last discovered.
func (a *Adapter) catalog() *catalog {
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	return a.cat
}

// Ack records that everything up to cursor is durable in Lattice. Capture
// reports it to the server as the slot's flush position with its next
// status update, which Ack brings forward; without a running capture the
// position is reported when capture next starts.
func (a *Adapter) Ack(ctx context.Context, cursor []byte) error {
	pos, err := decodeCursor(cursor)
	if err != nil {
		return err
	}
	if !a.ackAtLeast(pos) {
		return nil
	}
	a.dec.forget(pos)
	a.ackNudge.Store(true)
	a.wakeMu.Lock()
	if a.wake != nil {
		a.wake()
	}
	a.wakeMu.Unlock()
	return nil
}

// Close cancels running calls, waits for them and closes the connections.
// The slot, publication and origin stay: see Uninstall.
func (a *Adapter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
	var errs error
	a.metaMu.Lock()
	if a.meta != nil {
		errs = errors.CombineErrors(errs, a.meta.Close(context.Background()))
		a.meta = nil
	}
	a.metaMu.Unlock()
	a.applyMu.Lock()
	if a.apply != nil {
		errs = errors.CombineErrors(errs, a.apply.Close(context.Background()))
		a.apply, a.prepared = nil, nil
	}
	if a.mark != nil {
		errs = errors.CombineErrors(errs, a.mark.Close(context.Background()))
		a.mark = nil
	}
	a.applyMu.Unlock()
	return errs
}

// Uninstall drops what the adapter installed in the database: the
// replication slot (releasing the WAL it retains), the publication, the
// replication origin and the ID map with its schema. Lattice's cursor for this adapter must be reset
// afterwards: the next start takes a new snapshot. The adapter must not be
// capturing; it is closed on return.
func (a *Adapter) Uninstall(ctx context.Context) error {
	ctx, done, err := a.enter(ctx)
	if err != nil {
		return err
	}
	err = a.uninstall(ctx)
	done()
	return errors.CombineErrors(err, a.Close())
}

func (a *Adapter) uninstall(ctx context.Context) error {
	a.applyMu.Lock()
	if a.apply != nil {
		_ = a.apply.Close(ctx)
		a.apply, a.prepared = nil, nil
	}
	a.idmapKnown, a.idmapExists = false, false
	a.applyMu.Unlock()
	a.metaMu.Lock()
	defer a.metaMu.Unlock()
	conn, err := a.metaConn(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, a.cfg.Slot); err != nil {
		return errors.Wrapf(classify(err), "drop replication slot %s", a.cfg.Slot)
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{a.cfg.Publication}.Sanitize()); err != nil {
		return errors.Wrapf(classify(err), "drop publication %s", a.cfg.Publication)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = $1`, a.cfg.Origin); err != nil {
		return errors.Wrapf(classify(err), "drop replication origin %s", a.cfg.Origin)
	}
	return a.dropIDMap(ctx, conn)
}

// classify marks server errors the user can fix with their sentinel and a
// hint; other errors pass unchanged.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch {
	case pgErr.Code == "42501" || pgErr.Code == "28000" && strings.Contains(pgErr.Message, "replication"):
		return errors.WithHint(errors.Mark(err, ErrPrivilege),
			"the adapter's role needs REPLICATION (ALTER ROLE ... REPLICATION), ownership of the synced tables "+
				"(to create the publication), and EXECUTE on the pg_replication_origin_* functions, or superuser")
	case pgErr.Code == "55000" && strings.Contains(pgErr.Message, "wal_level"):
		return errors.WithHint(errors.Mark(err, ErrWALLevel),
			"set wal_level = logical in postgresql.conf and restart PostgreSQL")
	}
	return err
}
