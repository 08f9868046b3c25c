package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
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
