package store

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// The crash test runs a child process (this test binary, re-executed with
// helperEnv=crash) that writes batches in a loop, and kills it with SIGKILL
// at random moments. Every batch is checkable on its own:
//
//   - local batch n: Local changes to the records keysFor("local", seed, n)
//     of collection "local", each with field batch = n, and the cursor
//     "crash" = n in the same call;
//   - remote batch m: a delta from a peer replica setting batch = m on the
//     records keysFor("remote", seed, m) of collection "remote".
//
// Markers only grow per record (later batches carry later stamps), so after
// a reopen: every local batch up to the cursor is complete and none after it
// left a trace; the latest remote batch present is complete, as is every
// earlier one; the digest equals the one recomputed from the records; and
// the clock is ahead of every stored stamp.

const (
	crashKeys     = 300 // records per collection
	crashMaxBatch = 60  // records per batch
	crashDirEnv   = "LATTICE_STORE_CRASH_DIR"
	crashSeedEnv  = "LATTICE_STORE_CRASH_SEED"
)

// keysFor returns the keys that batch n of a kind writes.
func keysFor(kind string, seed uint64, n int64) []int64 {
	k := uint64(1)
	if kind == "remote" {
		k = 2
	}
	r := rand.New(rand.NewPCG(seed^k<<60, uint64(n)))
	count := 1 + r.IntN(crashMaxBatch)
	perm := r.Perm(crashKeys)[:count]
	out := make([]int64, count)
	for i, p := range perm {
		out[i] = int64(p)
	}
	return out
}

func crashSchema() *crdt.Schema {
	s, err := crdt.NewSchema(false,
		crdt.MustCollection("local", []string{"id"}, map[string]crdt.Policy{"seen": {Kind: crdt.Max}}),
		crdt.MustCollection("remote", []string{"id"}, map[string]crdt.Policy{"tags": {Kind: crdt.ORSet}}))
	if err != nil {
		panic(err)
	}
	return s
}

func crashOptions(logger *slog.Logger) Options {
	o := DefaultOptions()
	o.Logger = logger
	o.MemTableSize = 8 << 20
	o.BlockCacheSize = 4 << 20
	o.IndexCacheSize = 2 << 20
	o.ValueLogFileSize = 16 << 20
	o.GCInterval = 0
	// A killed process leaves its writes in the page cache: what is under
	// test is that no commit is half visible, not that fsync works.
	o.SyncWrites = false
	return o
}

// crashChild writes batches until it is killed.
func crashChild() int {
	dir := os.Getenv(crashDirEnv)
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	if err != nil || dir == "" {
		fmt.Fprintln(os.Stderr, "crash child: missing dir or seed")
		return 2
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := Open(dir, crashSchema(), crashOptions(logger))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child: open:", err)
		return 1
	}
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "crash child: %s: %v\n", what, err)
		return 1
	}
	cur, err := s.Cursor("crash")
	if err != nil {
		return fail("cursor", err)
	}
	var local int64
	if cur != nil {
		if local, err = strconv.ParseInt(string(cur), 10, 64); err != nil {
			return fail("parse cursor", err)
		}
	}
	remote, err := maxMarker(s, "remote")
	if err != nil {
		return fail("scan", err)
	}
	peer := newPeer(77, "peer", crashSchema(), func() int64 { return time.Now().UnixNano() })
	peer.clock.Forward(s.Clock().Last())
	rng := rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano())))
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for {
		if rng.IntN(2) == 0 {
			local++
			keys := keysFor("local", seed, local)
			changes := make([]Change, len(keys))
			for i, k := range keys {
				changes[i] = Change{Collection: "local", Key: crdt.IntKey(k), Full: true, Captured: true, Row: crdt.Row{
					"id": crdt.Int(k), "batch": crdt.Int(local), "seen": crdt.Int(rng.Int64N(1000)),
					"pad": crdt.String(strings.Repeat("p", rng.IntN(300))),
				}}
			}
			if _, err := s.Local("node", changes, &Cursor{Name: "crash", Value: []byte(strconv.FormatInt(local, 10))}); err != nil {
				return fail("local", err)
			}
			fmt.Fprintln(out, "L", local)
		} else {
			remote++
			d := &crdt.Delta{}
			for _, k := range keysFor("remote", seed, remote) {
				key := crdt.IntKey(k)
				d.Fragments = append(d.Fragments, peer.write("remote", key, crdt.Row{"batch": crdt.Int(remote)}).Fragments...)
				if rng.IntN(3) == 0 {
					d.Fragments = append(d.Fragments, peer.setOps("remote", key, "tags",
						[]crdt.Value{crdt.Int(rng.Int64N(8))}, []crdt.Value{crdt.Int(rng.Int64N(8))}).Fragments...)
				}
			}
			if _, err := s.Merge(d); err != nil {
				return fail("merge", err)
			}
			fmt.Fprintln(out, "R", remote)
		}
		if rng.IntN(4) == 0 {
			p, err := s.Pending(rng.IntN(200))
			if err != nil {
				return fail("pending", err)
			}
			if err := s.AckPending(p); err != nil {
				return fail("ack", err)
			}
		}
		out.Flush()
	}
}

// maxMarker returns the highest batch marker among a collection's records.
func maxMarker(s *Store, collection string) (int64, error) {
	entries, err := s.Scan(collection, "", 0)
	if err != nil {
		return 0, err
	}
	c := mustCol(s.Schema(), collection)
	var m int64
	for _, e := range entries {
		if v, _, ok := e.Record.Get(c, "batch"); ok {
			m = max(m, v.AsInt())
		}
	}
	return m, nil
}

func TestCrashRecovery(t *testing.T) {
	kills := 50
	if v := os.Getenv("LATTICE_STORE_CRASH_KILLS"); v != "" {
		kills, _ = strconv.Atoi(v)
	}
	seed := rand.Uint64()
	if v := os.Getenv(crashSeedEnv); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (rerun a failure with the same seed by setting %s)", seed, crashSeedEnv)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 1))
	start := time.Now()
	var lastLocal, lastRemote int64
	for i := range kills {
		runAndKill(t, dir, seed, rng)
		l, r := verifyCrash(t, dir, seed)
		if l < lastLocal || r < lastRemote {
			t.Fatalf("kill %d: progress went back: local %d->%d, remote %d->%d", i, lastLocal, l, lastRemote, r)
		}
		lastLocal, lastRemote = l, r
	}
	if lastLocal < 10 || lastRemote < 10 {
		t.Fatalf("too little progress: %d local and %d remote batches", lastLocal, lastRemote)
	}
	t.Logf("%d kills in %s; %d local and %d remote batches committed", kills, time.Since(start).Round(time.Millisecond), lastLocal, lastRemote)
}

// runAndKill starts the child, lets it commit a random number of batches
// and kills it with SIGKILL, at a random point of the next one.
func runAndKill(t *testing.T, dir string, seed uint64, rng *rand.Rand) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=crash", crashDirEnv+"="+dir, crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	want := 1 + rng.IntN(6) // "ready" and some batches
	lines := 0
	for lines < want && sc.Scan() {
		lines++
	}
	if lines < want {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child stopped after %d lines: %v\n%s", lines, sc.Err(), stderr.String())
	}
	// Land the kill at a random point of the batch in progress.
	if d := time.Duration(rng.IntN(4000)) * time.Microsecond; d > 0 {
		time.Sleep(d)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by the kill\n%s", err, stderr.String())
	}
}

// verifyCrash reopens the store and checks the invariants; it returns the
// local cursor and the latest remote batch.
func verifyCrash(t *testing.T, dir string, seed uint64) (int64, int64) {
	t.Helper()
	// The physical clock reads an hour back, so that Clock.Now rests on the
	// bound restored at Open alone, not on the time that passed since the
	// stamps were made.
	o := crashOptions(testLogger(t))
	o.Physical = func() int64 { return time.Now().Add(-time.Hour).UnixNano() }
	s, err := Open(dir, crashSchema(), o)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	// Check recomputes the digest from the stored records and compares it
	// with the range tree's.
	if _, err := s.Check(); err != nil {
		t.Fatalf("check after kill: %v", err)
	}
	now := s.Clock().Now()
	markers := map[string]map[int64]int64{}
	for _, col := range []string{"local", "remote"} {
		markers[col] = map[int64]int64{}
		entries, err := s.Scan(col, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		c := mustCol(s.Schema(), col)
		for _, e := range entries {
			if ms := e.Record.MaxStamp(); !ms.TS.Less(now) {
				t.Fatalf("%s/%s: stored stamp %s not before Clock.Now %s", col, e.Key, ms, now)
			}
			v, _, _ := e.Record.Get(c, "batch")
			k, _ := e.Key.Values()
			markers[col][k[0].AsInt()] = v.AsInt()
		}
	}
	var cursor int64
	if cur, err := s.Cursor("crash"); err != nil {
		t.Fatal(err)
	} else if cur != nil {
		cursor, _ = strconv.ParseInt(string(cur), 10, 64)
	}
	for k, m := range markers["local"] {
		if m > cursor {
			t.Fatalf("local record %d carries batch %d beyond the cursor %d", k, m, cursor)
		}
	}
	for n := int64(1); n <= cursor; n++ {
		for _, k := range keysFor("local", seed, n) {
			if markers["local"][k] < n {
				t.Fatalf("local batch %d (covered by cursor %d) half applied: record %d has batch %d", n, cursor, k, markers["local"][k])
			}
		}
	}
	var latest int64
	for _, m := range markers["remote"] {
		latest = max(latest, m)
	}
	for n := int64(1); n <= latest; n++ {
		for _, k := range keysFor("remote", seed, n) {
			if markers["remote"][k] < n {
				t.Fatalf("remote batch %d half applied (latest %d): record %d has batch %d", n, latest, k, markers["remote"][k])
			}
		}
	}
	return cursor, latest
}

// lockChild opens the store in the directory it is given, which the parent
// holds open, and reports whether it got ErrLocked.
func lockChild() int {
	_, err := Open(os.Getenv(crashDirEnv), nil, crashOptions(slog.New(slog.DiscardHandler)))
	if errors.Is(err, ErrLocked) && len(errors.GetAllHints(err)) > 0 {
		fmt.Println("locked:", err)
		return 0
	}
	fmt.Println("not locked:", err)
	return 1
}

func TestOpenLockedOtherProcess(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir, nil)
	defer s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=lock", crashDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("second process: %v\n%s", err, out)
	}
	t.Logf("second process: %s", strings.TrimSpace(string(out)))
}
