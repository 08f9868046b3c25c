package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pglogrepl"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// decoded is what capture's stream has learned of the WAL, for Apply: how
// far it has decoded, and the records the users' transactions changed
// (by the end of their commit records) since the acknowledged position.
// Apply uses it to leave alone the records that hold changes the merged
// rows do not include (see applyOnce). The zero value is ready.
type decoded struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced when upTo or streams change
	streams int           // capture streams running
	upTo    lsn           // every transaction committed before it has been decoded
	touched map[crdt.ID]lsn
	// stalled: a wait for a marker timed out while the stream had decoded
	// up to upTo, and it has decoded nothing since.
	stalled bool
}

// wait returns the channel the next change closes. The caller holds mu.
func (d *decoded) wait() chan struct{} {
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.changed
}

// signal wakes the waiters, if any. The caller holds mu.
func (d *decoded) signal() {
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// streaming counts a capture stream in (+1) or out (-1).
func (d *decoded) streaming(delta int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streams += delta
	d.stalled = false
	d.signal()
}

// commit records a transaction the stream decoded, ending at end, and the
// changes it made, if it was a user's.
func (d *decoded) commit(end lsn, changes []adapters.Change) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.touched == nil && len(changes) > 0 {
		d.touched = map[crdt.ID]lsn{}
	}
	for _, c := range changes {
		id := crdt.MakeID(c.Collection, c.Key)
		if end > d.touched[id] {
			d.touched[id] = end
		}
	}
	if end > d.upTo {
		d.upTo, d.stalled = end, false
		d.signal()
	}
}

// isStalled reports whether the stream has decoded nothing since a wait
// for a marker timed out.
func (d *decoded) isStalled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stalled
}

// forget drops the records whose last change ends at or before acked: the
// engine has merged them.
func (d *decoded) forget(acked lsn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, end := range d.touched {
		if end <= acked {
			delete(d.touched, id)
		}
	}
}

// running reports whether a capture stream runs.
func (d *decoded) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.streams > 0
}

// errNoStream says that no capture stream decoded up to a marker in time.
var errNoStream = errors.New("capture is not streaming")

// errBehind says that a stream runs but did not decode up to a marker in
// time.
var errBehind = errors.New("capture is behind")

// await waits until a stream has decoded up to target, or until wait has
// passed (errNoStream or errBehind), or ctx is done.
func (d *decoded) await(ctx context.Context, target lsn, wait time.Duration) error {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		d.mu.Lock()
		done, ch := d.upTo >= target, d.wait()
		d.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			d.mu.Lock()
			defer d.mu.Unlock()
			if d.upTo >= target {
				return nil
			}
			if d.streams == 0 {
				return errNoStream
			}
			d.stalled = true
			return errBehind
		case <-ch:
		}
	}
}

// after returns, in ascending order, the indexes of keys that a user's
// transaction ending after since changed. An empty key matches nothing.
func (d *decoded) after(since lsn, keys []crdt.ID) []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []int
	for i, id := range keys {
		if id != "" && d.touched[id] > since {
			out = append(out, i)
		}
	}
	return out
}

// markerPrefix names the logical decoding messages Apply writes to learn
// when capture has decoded everything committed before them.
const markerPrefix = "lattice.sync"

// marker writes a transactional logical decoding message on a session of
// its own, which carries no replication origin (so that a server that
// filters origins still sends it), and returns its position. Its
// transaction commits at once, flushed to the local WAL (whatever the
// server's synchronous_commit), so the stream receives it promptly: once
// the stream has decoded that commit, it has decoded every transaction
// that committed before the marker was written. The caller holds applyMu.
func (a *Adapter) marker(ctx context.Context) (lsn, error) {
	if a.mark == nil || a.mark.IsClosed() {
		conn, err := a.connect(ctx)
		if err != nil {
			return 0, err
		}
		a.mark = conn
	}
	conn := a.mark
	var text string
	err := conn.QueryRow(ctx, `SELECT set_config('synchronous_commit', 'local', true),
		pg_logical_emit_message(true, $1::text, $2::text)::text`, markerPrefix, a.cfg.Slot).Scan(new(string), &text)
	if err != nil {
		return 0, errors.Wrapf(classify(err), "write a capture marker to %s", a.where())
	}
	l, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, errors.Wrapf(err, "parse WAL position %q", text)
	}
	return lsn(l), nil
}
