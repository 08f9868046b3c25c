package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/cockroachdb/errors"
)

// A database file replaced by an older copy of itself while its sidecar
// runs: a user restoring a backup. The copy is taken with VACUUM INTO from a
// client connection (a consistent snapshot, the write-ahead log included);
// later the node's clients stop, close their connections, and the copy is
// renamed over the file; they resume on the new file once the sidecar has
// reconciled it. The sidecar notices the new file, finds its
// change log older than its cursor, and takes a new snapshot, which
// initial_sync cluster (the default) reconciles: for every record the
// store holds, the merged state wins and is written into the file.

// backup is a copy of one node's database taken during a schedule.
type backup struct {
	node int
	path string
	// head is the copy's change log's last sequence number; counts its
	// write counters.
	head   int64
	counts writeCounts
}

// captureState is the change log's last sequence number and the position
// the sidecar acknowledged.
func captureState(ctx context.Context, db querier) (head, acked int64, err error) {
	err = db.QueryRowContext(ctx, `SELECT (SELECT COALESCE(MAX(seq), 0) FROM _lattice_log), (SELECT v FROM _lattice_meta WHERE k='acked')`).Scan(&head, &acked)
	return head, acked, errors.Wrap(err, "read the change log's position")
}

// takeBackup copies node's database to path.
func takeBackup(ctx context.Context, d *checkDB, node int, path string) (*backup, error) {
	d.mu.RLock()
	_, err := d.db.ExecContext(ctx, `VACUUM INTO ?`, path)
	d.mu.RUnlock()
	if err != nil {
		return nil, errors.Wrapf(err, "copy database to %s", path)
	}
	cp, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return nil, errors.Wrapf(err, "open copy %s", path)
	}
	defer cp.Close()
	b := &backup{node: node, path: path}
	if b.head, _, err = captureState(ctx, cp); err != nil {
		return nil, err
	}
	if b.counts, err = readCounts(ctx, cp); err != nil {
		return nil, err
	}
	return b, nil
}

// restored is what a replacement did.
type restored struct {
	// replaced says the copy was renamed over the file (not when an error
	// came first). It is renamed only once the sidecar has captured a write
	// made since the copy: without one the sidecar cannot tell the copy
	// from the file it replaces (their change logs are the same), and only
	// verification finds the rows applied since the copy missing.
	replaced bool
	// before are the replaced file's counters when it was replaced.
	before writeCounts
}

// restoreBackup replaces node's database file with the copy while the
// sidecar runs. With settle, the node's clients' writes since the copy are
// all captured first, so none is lost. The clients stop for the
// replacement and resume on the new file once the sidecar has taken its
// snapshot of it.
func restoreBackup(ctx context.Context, n *checkNode, peers int, d *checkDB, b *backup, settle bool) (restored, error) {
	var r restored
	// The sidecar must run, and have captured a write made since the copy:
	// then its cursor is past the copy's change log, which is how it tells
	// the older copy from its file.
	err := waitUntil(ctx, 60*time.Second, func() (bool, string) {
		if ok, why := n.ready(ctx, peers); !ok {
			return false, why
		}
		d.mu.RLock()
		_, acked, err := captureState(ctx, d.db)
		d.mu.RUnlock()
		if err != nil {
			return false, err.Error()
		}
		return acked > b.head, "nothing captured since the copy"
	})
	if err != nil {
		return r, errors.Wrapf(err, "before replacing %s", n.path)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if settle {
		err := waitUntil(ctx, 60*time.Second, func() (bool, string) {
			head, acked, err := captureState(ctx, d.db)
			if err != nil {
				return false, err.Error()
			}
			return acked >= head, "capture behind"
		})
		if err != nil {
			return r, errors.Wrapf(err, "before replacing %s", n.path)
		}
	}
	if r.before, err = readCounts(ctx, d.db); err != nil {
		return r, err
	}
	// SQLite keeps the write-ahead log and its index under names made from
	// the database's path: the old file's are still there, and a
	// connection to the new file would read them as its own. The sidecar
	// empties them as it closes the old file (and reuses or removes them);
	// the clients' connections close first, and open again only once the
	// sidecar reads the new file.
	if err := d.db.Close(); err != nil {
		return r, errors.Wrap(err, "close the clients' connections")
	}
	errs0, err := n.metric(ctx, "lattice_capture_errors_total")
	if err != nil {
		return r, err
	}
	replacedAt := time.Now()
	if err := os.Rename(b.path, n.path); err != nil {
		return r, errors.Wrap(err, "replace the database file")
	}
	r.replaced = true
	err = waitUntil(ctx, 60*time.Second, func() (bool, string) {
		// Capture failed on the replaced file (at least once: the file
		// changed, then the cursor is past the new change log's head),
		// then took a snapshot of the new file (its batches clear the
		// failure), then went back to capturing; and the records the
		// snapshot queued are applied. Until then the clients wait: their
		// writes would move the new log's head past the sidecar's cursor,
		// which would then not see that the file is older, and they would
		// act on rows older than those the cluster holds, which the
		// sidecar is about to write over (a delete that finds no row, a set
		// rewritten from an older one).
		errs, err := n.metric(ctx, "lattice_capture_errors_total")
		if err != nil {
			return false, err.Error()
		}
		s, err := n.status(ctx)
		if err != nil {
			return false, err.Error()
		}
		c := s.Adapter.Capture
		switch {
		case errs == errs0:
			return false, "capture has not failed on the replaced file"
		case c == nil || c.Error != "" || c.State != "capturing" || !c.Since.After(replacedAt):
			return false, "no snapshot of the new file yet"
		case s.Pending > 0:
			return false, fmt.Sprintf("%d records to apply", s.Pending)
		}
		return true, ""
	})
	if err != nil {
		return r, errors.Wrapf(err, "after replacing %s", n.path)
	}
	if d.db, err = openCheckDB(n.path); err != nil {
		return r, err
	}
	return r, nil
}
