package sqlite

import (
	"context"
	"database/sql"
	"io/fs"
	"os"

	"github.com/cockroachdb/errors"
)

// ErrFileChanged marks an operation refused because the database file at
// Config.Path is no longer the one the adapter opened: it was deleted or
// replaced while the adapter ran. Writing on would go into a file nobody
// reads.
var ErrFileChanged = errors.New("sqlite: database file deleted or replaced")

// database returns the open database after checking that it is the file
// at the path, opening the new file if it was replaced (see reopen). It
// fails with ErrFileChanged while the file is deleted.
func (a *Adapter) database(ctx context.Context) (*sql.DB, error) {
	db, _, err := a.databaseGen(ctx)
	return db, err
}

// databaseGen is database, and the generation of the file it returns.
func (a *Adapter) databaseGen(ctx context.Context) (*sql.DB, uint64, error) {
	if err := a.checkFile(); err != nil {
		if !errors.Is(err, ErrFileChanged) {
			return nil, 0, err
		}
		if err := a.reopen(ctx, err); err != nil {
			return nil, 0, err
		}
	}
	a.mu.Lock()
	db, gen := a.db, a.gen
	a.mu.Unlock()
	if db == nil {
		return nil, 0, a.goneErr()
	}
	return db, gen, nil
}

func (a *Adapter) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// A capture is a running Capture, for reopen to end.
type capture struct {
	conn   *sql.Conn
	poll   *sql.Stmt // prepared on conn; nil until then
	cancel context.CancelCauseFunc
}

// end cancels the Capture and closes its statement and connection, the
// statement first (SQLite cannot finalize it on a closed connection). Both
// Close calls wait for the query in flight, which the cancel ends.
func (c *capture) end(why error) {
	c.cancel(why)
	if c.poll != nil {
		c.poll.Close()
	}
	c.conn.Close()
}

// addCapture registers a Capture whose connection was taken from the file
// of generation gen. It fails if that file was already replaced.
func (a *Adapter) addCapture(c *capture, gen uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gen != gen {
		return fileReopened(a.cfg.Path)
	}
	a.captures[c] = true
	return nil
}

// preparePoll prepares a Capture's poll under the lock reopen takes to
// end it, so that reopen closes it; it fails if reopen already ended it.
func (a *Adapter) preparePoll(ctx context.Context, c *capture) (*sql.Stmt, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.captures[c] {
		return nil, fileReopened(a.cfg.Path)
	}
	poll, err := c.conn.PrepareContext(ctx, `PRAGMA data_version`)
	if err == nil {
		c.poll = poll
	}
	return poll, err
}

func (a *Adapter) removeCapture(c *capture) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.captures, c)
}

// fileReopened is the error of a Capture whose file another call found
// replaced and closed.
func fileReopened(path string) error {
	return errors.Mark(errors.Newf("sqlite database %s was replaced by another file while the agent ran; "+
		"capture read the old file", path), ErrFileChanged)
}

func (a *Adapter) goneErr() error {
	return errors.Mark(errors.WithHint(errors.Newf("sqlite database %s was deleted while the agent ran", a.cfg.Path),
		"restore the file or create the database again with its tables: the agent opens it within a few seconds, "+
			"and writes what its store holds into it"), ErrFileChanged)
}

// checkFile compares the file at the path with the one the adapter opened
// (os.SameFile: device and inode).
func (a *Adapter) checkFile() error {
	a.mu.Lock()
	opened := a.file
	a.mu.Unlock()
	st, err := os.Stat(a.cfg.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return a.goneErr()
	case err != nil:
		return errors.Wrapf(err, "stat sqlite database %s", a.cfg.Path)
	case opened == nil || !os.SameFile(opened, st):
		return errors.Mark(errors.Newf("sqlite database %s was replaced by another file while the agent ran", a.cfg.Path), ErrFileChanged)
	}
	return nil
}

// reopen handles a deleted or replaced file as a restart would: it closes
// the old database and, if a file exists at the path, opens and installs it.
// A new file has a new change log, so the engine's cursor fails with
// ErrCursor and the engine takes a new snapshot; the records the store holds
// that the file lacks are then written into it. A deleted file is not
// created again: a new empty database would hold none of the tables.
func (a *Adapter) reopen(ctx context.Context, why error) error {
	a.reopenMu.Lock()
	defer a.reopenMu.Unlock()
	if err := a.checkFile(); err == nil {
		return nil // reopened by another call meanwhile
	}
	// Half done, the old file would be closed and the new one not open: a
	// caller's cancel (a Capture's, cancelled below) does not stop it.
	ctx = context.WithoutCancel(ctx)
	// The old database closes first. SQLite leaves the write-ahead log of
	// a moved or deleted file in place, under the name a new file at the
	// path uses for its own: a new connection would read the old file's
	// pages from it. So the old log is first checkpointed into the old file
	// and truncated to nothing, which needs every reader of the old file
	// gone: the running Captures' connections are closed first (database/sql
	// closes a pool's checked-out connections only when they are returned),
	// and the bumped generation ends a Capture that has not registered yet.
	a.mu.Lock()
	old := a.db
	a.db, a.file = nil, nil
	a.gen++
	captures := a.captures
	a.captures = map[*capture]bool{}
	a.mu.Unlock()
	for c := range captures {
		c.end(why)
	}
	if old != nil {
		a.log.Error("sqlite: the database file changed while the agent ran; closing it", "path", a.cfg.Path, "err", why)
		a.emptyLog(ctx, old)
		if err := old.Close(); err != nil {
			a.log.Warn("sqlite: close the old database", "err", err)
		}
	}
	if _, err := os.Stat(a.cfg.Path); err != nil {
		return why
	}
	db, st, err := openFile(ctx, &a.cfg)
	if err != nil {
		return err
	}
	cat, err := install(ctx, db, &a.cfg)
	if err != nil {
		db.Close()
		return errors.Wrapf(err, "sqlite database %s", a.cfg.Path)
	}
	a.mu.Lock()
	a.db, a.file, a.cat, a.acked = db, st, cat, cat.acked
	a.layouts = map[int64]*layout{}
	for _, t := range cat.tables {
		a.layouts[t.id] = t.layout
	}
	a.mu.Unlock()
	a.log.Warn("sqlite: opened the new database file; capture starts over from it", "path", a.cfg.Path, "tables", len(cat.tables))
	select {
	case a.changed <- struct{}{}:
	default:
	}
	return nil
}

// emptyLog checkpoints the old file's write-ahead log into it and truncates
// the log. SQLite reports a reader that kept it from doing so in the
// pragma's result row (busy), not as an error.
func (a *Adapter) emptyLog(ctx context.Context, old *sql.DB) {
	var busy, frames, done int64
	err := old.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done)
	switch {
	case err != nil:
		a.log.Warn("sqlite: empty the old file's write-ahead log", "path", a.cfg.Path, "err", err)
	case busy != 0:
		a.log.Error("sqlite: the old file's write-ahead log could not be emptied: another connection still reads the old file, "+
			"and the new file may read the old log's pages as its own (\"database disk image is malformed\"); "+
			"close every connection to a database file before replacing it",
			"path", a.cfg.Path, "frames", frames, "checkpointed", done)
	}
}

// openFile opens the database and stats the file it opened.
func openFile(ctx context.Context, cfg *Config) (*sql.DB, os.FileInfo, error) {
	db, err := openDB(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(cfg.Path)
	if err != nil {
		db.Close()
		return nil, nil, errors.Wrapf(err, "stat sqlite database %s", cfg.Path)
	}
	return db, st, nil
}
