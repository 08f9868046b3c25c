package http

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/adapters"
	_ "modernc.org/sqlite" // the state file's driver
)

// state is the adapter's own durable state, in a SQLite file: what an HTTP
// API cannot keep for it.
//
//   - meta: the installation's ID, which every cursor carries.
//   - marks: capture positions by sequence number, each the high-water
//     mark of every collection; a cursor names one.
//   - known: the IDs of the records the adapter knows the server holds,
//     with the updated-at it last captured or wrote, which reconciliation
//     compares with a full listing to find deletes and Apply with the
//     server's record to find changes capture has not taken yet.
//   - last: the rows of each known record as the adapter captured or wrote
//     them, by sequence number, which capture reports as a change's Old,
//     so that only the fields a user changed count as the change's intent.
//     A null row is a delete. A capture from a cursor first forgets the
//     rows captured after it (they are captured again, and the Old of
//     each must be the row as of the cursor), and an Ack keeps, of the
//     rows at or before its cursor, only the newest.
//   - echo: the (ID, updated-at) each of the adapter's own writes produced,
//     which capture skips.
//   - idmap: for records created with a Write.NewKey, the server's ID and
//     the collection key.
//   - intent: creates with client IDs started and not yet recorded in
//     idmap, with the ID they send.
type state struct {
	db      *sql.DB
	install [8]byte
}

// mark is a collection's high-water mark: the greatest (updated-at, ID)
// captured, and the records captured within the overlap window before it,
// by ID, with their updated-at. Gone holds the known records whose deletes
// were reported and not yet acknowledged: they stay known until an Ack
// covers their delete, so that a capture from an earlier cursor (after a
// crash) reports them again, and a capture from this one does not.
type mark struct {
	Updated int64            `json:"u"`
	ID      string           `json:"id"`
	Seen    map[string]int64 `json:"seen,omitempty"`
	Gone    map[string]bool  `json:"gone,omitempty"`
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS marks (seq INTEGER PRIMARY KEY, marks TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS known (coll TEXT NOT NULL, id TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (coll, id));
CREATE TABLE IF NOT EXISTS last (coll TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, captured INTEGER NOT NULL, row BLOB,
	PRIMARY KEY (coll, id, seq));
CREATE TABLE IF NOT EXISTS echo (coll TEXT NOT NULL, id TEXT NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY (coll, id, updated));
CREATE TABLE IF NOT EXISTS idmap (coll TEXT NOT NULL, local TEXT NOT NULL, key BLOB NOT NULL,
	PRIMARY KEY (coll, local), UNIQUE (coll, key));
CREATE TABLE IF NOT EXISTS intent (coll TEXT NOT NULL, key BLOB NOT NULL, id TEXT NOT NULL, PRIMARY KEY (coll, key));
`

func openState(ctx context.Context, path string) (*state, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, errors.Wrapf(err, "http adapter: open state %s", path)
	}
	db.SetMaxOpenConns(1)
	s := &state{db: db}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		_ = db.Close()
		return nil, errors.WithHint(errors.Wrapf(err, "http adapter: state %s", path),
			"the state file must be writable; set state: in the adapter's config to move it")
	}
	var v []byte
	err = db.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'install'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		v = make([]byte, 8)
		_, _ = rand.Read(v)
		_, err = db.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('install', ?)`, v)
	}
	if err != nil || len(v) != 8 {
		_ = db.Close()
		return nil, errors.Wrapf(errors.Join(err, errors.New("bad installation id")), "http adapter: state %s", path)
	}
	copy(s.install[:], v)
	return s, nil
}

// cursor encodes a sequence number: big-endian first, so that cursors of
// one installation compare with bytes.Compare in sequence order.
func (s *state) cursor(seq int64) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(seq))
	return append(b, s.install[:]...)
}

// seqOf decodes a cursor of this installation.
func (s *state) seqOf(cursor []byte) (int64, error) {
	if len(cursor) != 16 || string(cursor[8:]) != string(s.install[:]) {
		return 0, errors.Mark(errors.Newf("http adapter: cursor %s is not of this installation", hex.EncodeToString(cursor)), adapters.ErrCursor)
	}
	return int64(binary.BigEndian.Uint64(cursor)), nil
}

// maxSeq returns the greatest sequence number stored.
func (s *state) maxSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM marks`).Scan(&seq)
	return seq.Int64, errors.Wrap(err, "http adapter: state")
}

// lastSeq returns the greatest sequence number the state holds or has
// reserved: no number up to it may be handed out again.
func (s *state) lastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := s.db.QueryRowContext(ctx, `SELECT max(
		coalesce((SELECT max(seq) FROM marks), 0),
		coalesce((SELECT max(seq) FROM last), 0),
		coalesce((SELECT CAST(v AS INTEGER) FROM meta WHERE k = 'seq'), 0))`).Scan(&seq)
	return seq, errors.Wrap(err, "http adapter: state")
}

// reserve records that sequence numbers up to n may have been handed out.
func (s *state) reserve(ctx context.Context, n int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT OR REPLACE INTO meta (k, v) VALUES ('seq', ?)`, n)
	return errors.Wrap(err, "http adapter: state")
}

// putMarks stores marks under seq.
func (s *state) putMarks(ctx context.Context, seq int64, m map[string]*mark) error {
	b, err := json.Marshal(m)
	if err != nil {
		return errors.Wrap(err, "http adapter: encode marks")
	}
	_, err = s.db.ExecContext(ctx, `INSERT OR REPLACE INTO marks (seq, marks) VALUES (?, ?)`, seq, string(b))
	return errors.Wrap(err, "http adapter: state")
}

// marks loads the marks stored under seq; errCursor when there are none.
func (s *state) marks(ctx context.Context, seq int64) (map[string]*mark, error) {
	var b string
	err := s.db.QueryRowContext(ctx, `SELECT marks FROM marks WHERE seq = ?`, seq).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errors.Mark(errors.Newf("http adapter: no capture position %d (discarded after an ack)", seq), adapters.ErrCursor)
	}
	if err != nil {
		return nil, errors.Wrap(err, "http adapter: state")
	}
	m := map[string]*mark{}
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		return nil, errors.Wrapf(err, "http adapter: decode marks %d", seq)
	}
	return m, nil
}

// ack discards the marks before seq and forgets the records whose deletes
// the marks at seq hold, in one transaction.
func (s *state) ack(ctx context.Context, seq int64) error {
	m, err := s.marks(ctx, seq)
	if errors.Is(err, adapters.ErrCursor) {
		m = nil // a position no capture stored: nothing to forget
	} else if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for coll, mk := range m {
			for id := range mk.Gone {
				// Unless an Apply wrote the record after its delete was
				// reported (marks carry Gone until a poll reads the record
				// again).
				if _, err := tx.ExecContext(ctx, `DELETE FROM known WHERE coll = ? AND id = ? AND NOT EXISTS (
					SELECT 1 FROM last WHERE coll = ? AND id = ? AND captured = 0 AND row IS NOT NULL AND seq > coalesce(
						(SELECT max(seq) FROM last WHERE coll = ? AND id = ? AND captured = 1 AND row IS NULL), 0))`,
					coll, id, coll, id, coll, id); err != nil {
					return err
				}
			}
		}
		for _, q := range []string{
			`DELETE FROM last WHERE seq < (SELECT max(l.seq) FROM last l WHERE l.coll = last.coll AND l.id = last.id AND l.seq <= ?)`,
			`DELETE FROM last WHERE row IS NULL AND seq <= ?`, // a delete is no row at all
			`DELETE FROM marks WHERE seq < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// rewind forgets the rows captured after seq: a capture from seq captures
// them again.
func (s *state) rewind(ctx context.Context, seq int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM last WHERE captured = 1 AND seq > ?`, seq)
	return errors.Wrap(err, "http adapter: state")
}

// known returns the known IDs of coll and the updated-at last captured or
// written of each.
func (s *state) known(ctx context.Context, coll string) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, updated FROM known WHERE coll = ?`, coll)
	if err != nil {
		return nil, errors.Wrap(err, "http adapter: state")
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var u int64
		if err := rows.Scan(&id, &u); err != nil {
			return nil, errors.Wrap(err, "http adapter: state")
		}
		out[id] = u
	}
	return out, errors.Wrap(rows.Err(), "http adapter: state")
}

// knownAt returns the updated-at last captured or written of a record.
func (s *state) knownAt(ctx context.Context, coll, id string) (int64, bool, error) {
	var u int64
	err := s.db.QueryRowContext(ctx, `SELECT updated FROM known WHERE coll = ? AND id = ?`, coll, id).Scan(&u)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return u, err == nil, errors.Wrap(err, "http adapter: state")
}

// addKnown records records of coll as known, with their updated-at, as a
// capture at sequence number seq found them, in one transaction. A
// record an Apply wrote or deleted after seq is left as the Apply left it
// (a capture's bookkeeping follows its sink, outside the lock that orders
// it with Apply), and a known updated-at never goes back.
func (s *state) addKnown(ctx context.Context, coll string, seq int64, recs map[string]int64) error {
	if len(recs) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for id, u := range recs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO known (coll, id, updated)
				SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM last WHERE coll = ? AND id = ? AND captured = 0 AND seq > ?)
				ON CONFLICT (coll, id) DO UPDATE SET updated = max(updated, excluded.updated)`,
				coll, id, u, coll, id, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// lastRow returns the row of a record as the adapter last captured or
// wrote it before sequence number seq, encoded as the API's record
// (Collection.encode); nil when it has none or the record was deleted.
func (s *state) lastRow(ctx context.Context, coll, id string, seq int64) ([]byte, error) {
	var row []byte
	err := s.db.QueryRowContext(ctx, `SELECT row FROM last WHERE coll = ? AND id = ? AND seq < ? ORDER BY seq DESC LIMIT 1`,
		coll, id, seq).Scan(&row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return row, errors.Wrap(err, "http adapter: state")
}

// putLast records the rows of records of coll as captured at sequence
// number seq, by ID (a nil row: deleted), in one transaction.
func (s *state) putLast(ctx context.Context, coll string, seq int64, rows map[string][]byte) error {
	if len(rows) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for id, row := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO last (coll, id, seq, captured, row) VALUES (?, ?, ?, 1, ?)`,
				coll, id, seq, row); err != nil {
				return err
			}
		}
		return nil
	})
}

// echoes returns the recorded writes of coll: the updated-at values each
// produced, by ID.
func (s *state) echoes(ctx context.Context, coll string) (map[string]map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, updated FROM echo WHERE coll = ?`, coll)
	if err != nil {
		return nil, errors.Wrap(err, "http adapter: state")
	}
	defer rows.Close()
	out := map[string]map[int64]bool{}
	for rows.Next() {
		var id string
		var u int64
		if err := rows.Scan(&id, &u); err != nil {
			return nil, errors.Wrap(err, "http adapter: state")
		}
		if out[id] == nil {
			out[id] = map[int64]bool{}
		}
		out[id][u] = true
	}
	return out, errors.Wrap(rows.Err(), "http adapter: state")
}

// wrote records an applied write of a record that the server holds with
// updated-at u and as row (encoded, see lastRow) from sequence number seq
// on: known, and an echo to skip.
func (s *state) wrote(ctx context.Context, coll, id string, seq, u int64, row []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO known (coll, id, updated) VALUES (?, ?, ?)`, coll, id, u); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO last (coll, id, seq, captured, row) VALUES (?, ?, ?, 0, ?)`,
			coll, id, seq, row); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO echo (coll, id, updated) VALUES (?, ?, ?)`, coll, id, u)
		return err
	})
}

// deleted records an applied delete, from sequence number seq on: the
// record is no longer known and its ID map pair is dropped.
func (s *state) deleted(ctx context.Context, coll, id string, seq int64) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{`DELETE FROM known WHERE coll = ? AND id = ?`, `DELETE FROM echo WHERE coll = ? AND id = ?`,
			`DELETE FROM idmap WHERE coll = ? AND local = ?`} {
			if _, err := tx.ExecContext(ctx, q, coll, id); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO last (coll, id, seq, captured, row) VALUES (?, ?, ?, 0, NULL)`, coll, id, seq)
		return err
	})
}

// forgetEchoes drops the echoes of coll older than before.
func (s *state) forgetEchoes(ctx context.Context, coll string, before int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM echo WHERE coll = ? AND updated < ?`, coll, before)
	return errors.Wrap(err, "http adapter: state")
}

// idMap returns the ID map of coll: collection key by server ID.
func (s *state) idMap(ctx context.Context, coll string) (map[string][]byte, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT local, key FROM idmap WHERE coll = ?`, coll)
	if err != nil {
		return nil, errors.Wrap(err, "http adapter: state")
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var key []byte
		if err := rows.Scan(&id, &key); err != nil {
			return nil, errors.Wrap(err, "http adapter: state")
		}
		out[id] = key
	}
	return out, errors.Wrap(rows.Err(), "http adapter: state")
}

// mapped returns the server ID recorded for a collection key, if any.
func (s *state) mapped(ctx context.Context, coll string, key []byte) (string, bool, error) {
	var id string
	err := s.db.QueryRowContext(ctx, `SELECT local FROM idmap WHERE coll = ? AND key = ?`, coll, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return id, err == nil, errors.Wrap(err, "http adapter: state")
}

// intent returns the ID of a create started for key, or records id as the
// one it sends.
func (s *state) intent(ctx context.Context, coll string, key []byte, id string) (string, error) {
	_, err := s.db.ExecContext(ctx, `INSERT OR IGNORE INTO intent (coll, key, id) VALUES (?, ?, ?)`, coll, key, id)
	if err == nil {
		err = s.db.QueryRowContext(ctx, `SELECT id FROM intent WHERE coll = ? AND key = ?`, coll, key).Scan(&id)
	}
	return id, errors.Wrap(err, "http adapter: state")
}

// created records a create: the pair in the ID map, the record known with
// its row from sequence number seq on, the echo of the write, the intent
// done; in one transaction.
func (s *state) created(ctx context.Context, coll, id string, key []byte, seq, u int64, row []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`INSERT OR REPLACE INTO idmap (coll, local, key) VALUES (?, ?, ?)`, []any{coll, id, key}},
			{`INSERT OR REPLACE INTO known (coll, id, updated) VALUES (?, ?, ?)`, []any{coll, id, u}},
			{`INSERT OR REPLACE INTO last (coll, id, seq, captured, row) VALUES (?, ?, ?, 0, ?)`, []any{coll, id, seq, row}},
			{`INSERT OR REPLACE INTO echo (coll, id, updated) VALUES (?, ?, ?)`, []any{coll, id, u}},
			{`DELETE FROM intent WHERE coll = ? AND key = ?`, []any{coll, key}},
		} {
			if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *state) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return errors.Wrap(err, "http adapter: state")
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.Wrap(err, "http adapter: state")
	}
	if err := tx.Commit(); err != nil {
		// A transaction whose context ends is rolled back under it.
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errors.Wrap(err, "http adapter: state")
	}
	return nil
}

func (s *state) close() error { return s.db.Close() }
