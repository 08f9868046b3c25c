package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func count(t *testing.T, s *Server, db string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIntegrationServer: a server starts with logical decoding, keeps its
// data across a clean restart and a SIGKILL, and Close removes everything.
func TestIntegrationServer(t *testing.T) {
	s := Start(t, Options{Settings: map[string]string{"work_mem": "8MB"}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.CreateDB(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "app", `CREATE TABLE t (id int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, s.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	var wal, mem string
	if err := conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('work_mem')`).Scan(&wal, &mem); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if wal != "logical" || mem != "8MB" {
		t.Fatalf("wal_level %s, work_mem %s", wal, mem)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Exec(ctx, "app", `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("running after Kill")
	}
	if err := s.Exec(ctx, "app", `SELECT 1`); err == nil {
		t.Fatal("connected to a killed server")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "app"); n != 2 {
		t.Fatalf("%d rows after restart and crash, want 2", n)
	}
	if err := s.Start(ctx); err == nil {
		t.Fatal("started a running server twice")
	}

	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory %s left after Close: %v", dir, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestIntegrationThreeServers: three servers start side by side on their own
// ports, as the end-to-end tests need.
func TestIntegrationThreeServers(t *testing.T) {
	bin := Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	servers := make([]*Server, 3)
	errs := make(chan error, 3)
	for i := range servers {
		go func() {
			s, err := New(ctx, bin, Options{})
			servers[i] = s
			errs <- err
		}()
	}
	var failed error
	for range servers {
		if err := <-errs; err != nil {
			failed = err
		}
	}
	for _, s := range servers {
		if s != nil { // stop the servers that started, also when another failed
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	if failed != nil {
		t.Fatal(failed)
	}
	ports := map[int]bool{}
	for _, s := range servers {
		ports[s.Port()] = true
		if err := s.Exec(ctx, "postgres", `SELECT 1`); err != nil {
			t.Fatal(err)
		}
	}
	if len(ports) != 3 {
		t.Fatalf("ports %v, want 3 distinct", ports)
	}
}

func TestFindBinaries(t *testing.T) {
	b := RequireBinaries(t) // a skip without binaries fails under LATTICE_REQUIRE_INTEGRATION=1
	if b.Version < 10 || b.Dir == "" {
		t.Fatalf("binaries %+v", b)
	}
	t.Setenv(EnvBinDir, t.TempDir())
	if b2, err := FindBinaries(); err != nil || b2 != b {
		t.Fatalf("an empty PGTEST_BINDIR should fall through to %+v; got %+v, %v", b, b2, err)
	}
}
