package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/postgres/pgtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(runThenClose{m})
}

// runThenClose stops the shared server before goleak looks for leaks.
type runThenClose struct{ m *testing.M }

func (r runThenClose) Run() int {
	code := r.m.Run()
	closeShared()
	return code
}

var (
	sharedMu  sync.Mutex
	sharedSrv *pgtest.Server
	dbSeq     atomic.Int64
)

// sharedServer returns a server shared by the tests that need no special
// settings and no restarts; each uses its own database.
func sharedServer(t testing.TB) *pgtest.Server {
	t.Helper()
	bin := pgtest.Require(t)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSrv == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := pgtest.New(ctx, bin, pgtest.Options{})
		if err != nil {
			t.Fatalf("start shared postgresql: %v", err)
		}
		sharedSrv = s
	}
	return sharedSrv
}

func closeShared() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedSrv != nil {
		_ = sharedSrv.Close()
		sharedSrv = nil
	}
}

// newDB creates a fresh database on srv and returns its name and DSN.
func newDB(t testing.TB, srv *pgtest.Server) (string, string) {
	t.Helper()
	name := fmt.Sprintf("db%d", dbSeq.Add(1))
	dsn, err := srv.CreateDB(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	// Slots and replication origins are server-wide resources, origins
	// limited to max_replication_slots: drop this database's (the adapters
	// are closed by then, their walsenders and sessions may take a moment to
	// exit), and the database with them.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		for ctx.Err() == nil {
			err = srv.Exec(ctx, "postgres", fmt.Sprintf(`
				SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '%[1]s' AND active_pid IS NOT NULL;
				SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '%[1]s' AND active_pid IS NULL`, name))
			if err == nil {
				err = srv.Exec(ctx, "postgres", fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name))
			}
			if err == nil {
				err = srv.Exec(ctx, "postgres", fmt.Sprintf(
					`SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname = 'lattice_%s'`, name))
			}
			if err == nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // a walsender or session is still exiting: poll
		}
		t.Errorf("drop database %s: %v", name, err)
	})
	return name, dsn
}

// testLogger routes logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testConfig(t testing.TB, dsn, node string) Config {
	cfg := DefaultConfig()
	cfg.DSN = dsn
	cfg.Node = node
	cfg.StatusInterval = 100 * time.Millisecond
	cfg.Logger = testLogger(t)
	return cfg
}

func open(t testing.TB, cfg Config) *Adapter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %+v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// connect opens a plain connection, as an application would.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func exec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// recorder is a sink that keeps what it receives and, if ack is set, acks
// each batch after keeping it, as the engine does once a batch is durable.
type recorder struct {
	a      *Adapter
	ack    bool
	mu     sync.Mutex
	bs     []adapters.Batch
	failAt int // when > 0, the failAt-th batch fails
}

func (r *recorder) sink(ctx context.Context, b adapters.Batch) error {
	r.mu.Lock()
	if r.failAt > 0 && len(r.bs)+1 == r.failAt {
		r.mu.Unlock()
		return errSinkFailed
	}
	r.bs = append(r.bs, b)
	r.mu.Unlock()
	if r.ack && b.Cursor != nil {
		return r.a.Ack(ctx, b.Cursor)
	}
	return nil
}

var errSinkFailed = fmt.Errorf("sink failed on purpose")

func (r *recorder) batches() []adapters.Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Batch(nil), r.bs...)
}

func (r *recorder) changes() []adapters.Change {
	var out []adapters.Change
	for _, b := range r.batches() {
		out = append(out, b.Changes...)
	}
	return out
}

// lastCursor is the cursor of the last batch received, or nil.
func (r *recorder) lastCursor() []byte {
	bs := r.batches()
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].Cursor != nil {
			return bs[i].Cursor
		}
	}
	return nil
}

// runner runs Capture in a goroutine.
type runner struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func capture(t testing.TB, a *Adapter, cursor []byte, sink adapters.Sink) *runner {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = a.Capture(ctx, cursor, sink)
	}()
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// stop cancels Capture and returns its error.
func (r *runner) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// wait waits for Capture to end on its own and returns its error.
func (r *runner) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(timeout):
		t.Fatalf("capture did not end within %s", timeout)
		return nil
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
