package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/sqlite"
	"github.com/lattice-crdt/lattice/crdt"
)

const itemsDDL = `CREATE TABLE items(id INTEGER PRIMARY KEY, v TEXT)`

// copyFile writes a copy of the database as it is now (same install ID,
// same change log) next to it; replaceWith moves it over the file.
func (f *fixture) copyFile() string {
	f.t.Helper()
	next := filepath.Join(filepath.Dir(f.path), "copy.db")
	f.execArgs(`VACUUM INTO ?`, next)
	return next
}

// replaceWith moves next over the file and points the fixture's own
// connection at it. The adapter opens the new file only when it next looks:
// until then, its connections to the old file keep that file's write-ahead
// log under the name the new file's is looked for, so the caller lets the
// adapter reopen (any call) before writing into the new file.
func (f *fixture) replaceWith(next string) {
	f.t.Helper()
	f.user.Close()
	if err := os.Rename(next, f.path); err != nil {
		f.t.Fatal(err)
	}
	f.user = newUserDB(f.t, f.path).db
}

func item(id int64, v string) adapters.Write {
	return adapters.Write{Collection: "items", Key: crdt.IntKey(id), Row: crdt.Row{"id": crdt.Int(id), "v": crdt.String(v)}}
}

// cursorSeq is the log position of a cursor (see encodeCursor).
func cursorSeq(t *testing.T, cur []byte) int64 {
	t.Helper()
	if len(cur) != 16 {
		t.Fatalf("cursor of %d bytes", len(cur))
	}
	return int64(binary.BigEndian.Uint64(cur[8:]))
}

// When another call (here Apply) notices the replaced file first and opens
// the new one, Capture must still end with ErrFileChanged: its connection
// reads the old file, which nobody writes any more.
func TestCaptureEndsWhenAnotherCallReopens(t *testing.T) {
	f := newFixture(t, itemsDDL)
	a := f.open(f.config())
	_, cur := f.snapshot(a)

	// Capture is held in its sink while the file is replaced and reopened,
	// so that Apply, not Capture, notices the replacement.
	got := make(chan adapters.Batch)
	release := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go func() {
		done <- a.Capture(ctx, cur, func(ctx context.Context, b adapters.Batch) error {
			select {
			case got <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	f.exec(`INSERT INTO items VALUES (1, 'a')`)
	select {
	case <-got:
	case err := <-done:
		t.Fatalf("capture ended: %+v", err)
	case <-time.After(waitTimeout):
		t.Fatal("insert not captured")
	}

	f.replaceWith(f.copyFile())
	if _, err := a.Apply(f.ctx, []adapters.Write{item(2, "b")}, nil); err != nil {
		t.Fatalf("apply into the new file: %+v", err)
	}
	close(release)
	f.exec(`INSERT INTO items VALUES (3, 'c')`) // into the new file
	for {
		select {
		case <-got:
			continue // a capture of the old file
		case err := <-done:
			if !errors.Is(err, sqlite.ErrFileChanged) {
				t.Fatalf("capture ended with %+v; want ErrFileChanged", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("capture of the old file did not end after the new file was opened")
		}
		break
	}

	// The new file reads whole, Apply's write and the user's included.
	var n int
	if err := f.user.QueryRowContext(f.ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("new file holds %d items, want 3", n)
	}
}

// An Ack of a cursor from the old file, past the new file's log head (a copy
// has the same install ID), must not be recorded in the new file: capture
// from the new file's snapshot must go on.
func TestAckFromReplacedFileIgnored(t *testing.T) {
	f := newFixture(t, itemsDDL)
	a := f.open(f.config())
	f.exec(`INSERT INTO items VALUES (1, 'a')`)
	next := f.copyFile()
	for i := 2; i <= 6; i++ {
		f.execArgs(`INSERT INTO items VALUES (?, 'x')`, i)
	}
	oldHead, err := a.Head(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.replaceWith(next)

	if err := a.Ack(f.ctx, oldHead); err != nil {
		t.Fatalf("ack: %+v", err)
	}
	_, cur := f.snapshot(a)
	if cursorSeq(t, cur) >= cursorSeq(t, oldHead) {
		t.Fatalf("new file's head %d, want it before the old file's %d", cursorSeq(t, cur), cursorSeq(t, oldHead))
	}
	var acked int64
	if err := f.user.QueryRowContext(f.ctx, `SELECT v FROM _lattice_meta WHERE k='acked'`).Scan(&acked); err != nil {
		t.Fatal(err)
	}
	if acked > cursorSeq(t, cur) {
		t.Fatalf("new file's acknowledged position %d is past its log head %d", acked, cursorSeq(t, cur))
	}
	fl := f.follow(a, cur)
	f.exec(`INSERT INTO items VALUES (7, 'y')`)
	if got := fl.sync(); len(got) != 1 || got[0].Key != crdt.IntKey(7) {
		t.Fatalf("captured %v, want the insert of 7", got)
	}
}

// An Apply whose since comes from the old file, past the new file's log
// head, must still defer a write to a record the new file changed after the
// acknowledged position.
func TestApplySinceFromReplacedFileDefers(t *testing.T) {
	f := newFixture(t, itemsDDL)
	a := f.open(f.config())
	f.exec(`INSERT INTO items VALUES (1, 'a')`)
	next := f.copyFile()
	for i := 2; i <= 6; i++ {
		f.execArgs(`INSERT INTO items VALUES (?, 'x')`, i)
	}
	since, err := a.Head(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.replaceWith(next)
	if _, err := a.Tables(f.ctx); err != nil { // opens the new file
		t.Fatal(err)
	}
	f.exec(`UPDATE items SET v = 'user' WHERE id = 1`) // not captured yet

	applied, err := a.Apply(f.ctx, []adapters.Write{item(1, "merged")}, since)
	if err != nil {
		t.Fatalf("apply: %+v", err)
	}
	if !bytes.Equal(applied.Position[:8], since[:8]) {
		t.Fatalf("position of install %x, want %x (a copy)", applied.Position[:8], since[:8])
	}
	if len(applied.Deferred) != 1 {
		t.Fatalf("deferred %v, want the write to 1, whose user change is not captured", applied.Deferred)
	}
	var v string
	if err := f.user.QueryRowContext(f.ctx, `SELECT v FROM items WHERE id = 1`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "user" {
		t.Fatalf("items 1 = %q, want the user's uncaptured %q", v, "user")
	}
}

// recorder is a slog handler that keeps the messages logged.
type recorder struct {
	slog.Handler
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, rec.Message)
	r.mu.Unlock()
	return r.Handler.Handle(ctx, rec)
}

func (r *recorder) logged(substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.msgs, func(m string) bool { return strings.Contains(m, substr) })
}

// A reader of the old file keeps reopen from emptying its write-ahead log,
// which the new file would then read as its own. SQLite says so in the
// checkpoint's result row, not as an error: reopen must look there and say
// so.
func TestReopenReportsBusyCheckpoint(t *testing.T) {
	f := newFixture(t, itemsDDL)
	cfg := f.config()
	cfg.BusyTimeout = 50 * time.Millisecond
	rec := &recorder{Handler: cfg.Logger.Handler()}
	cfg.Logger = slog.New(rec)
	a := f.open(cfg)
	f.exec(`INSERT INTO items VALUES (1, 'a')`)
	next := f.copyFile()

	// Another process's reader, in a read transaction on the old file.
	reader := newUserDB(t, f.path).db
	tx, err := reader.BeginTx(f.ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var n int
	if err := tx.QueryRowContext(f.ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	f.replaceWith(next)
	a.Tables(f.ctx) //nolint:errcheck // the new file may read as malformed: the point of the message
	if !rec.logged("write-ahead log could not be emptied") {
		t.Fatal("reopen with a reader of the old file did not report the busy checkpoint")
	}
}
