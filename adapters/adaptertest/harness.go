package adaptertest

import (
	"context"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/crdt"
)

// Harness is what a system-specific test provides to run the suite: a way
// to create fresh, isolated systems holding the suite's tables. Run calls
// its methods from the test goroutine only.
type Harness interface {
	// Features says what the system can hold and report.
	Features() Features

	// NewSystem creates an empty system (a new database, file or schema)
	// holding exactly the given tables and nothing else the adapter would
	// sync, and arranges with t.Cleanup for it to be removed when the test
	// ends. The harness maps each ColumnSpec to the system's own type for
	// that kind (see ColumnSpec); key columns are NOT NULL, all other
	// columns nullable without defaults; a column marked Generated is
	// filled by the system when an insert leaves it out (see ColumnSpec).
	// It reports failures with t.Fatal.
	NewSystem(t *testing.T, tables []TableSpec) System
}

// System is one system created by Harness.NewSystem. Its methods may be
// called from several goroutines at once: the suite's simulated users write
// while an adapter applies.
type System interface {
	// Open opens a new adapter over the system, as the sidecar would at
	// start-up (installing triggers, slots or publications as needed). The
	// suite closes every adapter it opens, and opens another one after
	// closing the first to test restarts: what the adapter installed and
	// what it has not yet acknowledged must survive that.
	Open(ctx context.Context) (adapters.Adapter, error)

	// Exec performs ops as the system's own users would: plain statements
	// (INSERT, UPDATE, DELETE) on a connection of its own, untagged, all in
	// one transaction that is committed before Exec returns. If any op
	// fails, the transaction is rolled back and the error returned.
	Exec(ctx context.Context, ops ...Op) error

	// Rows reads the current rows of a table with plain queries,
	// independently of the adapter, converted to Values of the column's
	// kind. Key columns are included; null columns may be present as
	// crdt.Null or left out.
	Rows(ctx context.Context, table string) ([]crdt.Row, error)
}

// Features says what a system can hold and report; the suite leaves out
// what it cannot.
type Features struct {
	// Lists is true when the system has a list (array) column type. The
	// types table then has a column "l_tags" of kind list with string
	// elements (text[] in PostgreSQL, a JSON array in SQLite).
	Lists bool

	// NaN is true when a user write can store a float NaN in a float
	// column. When false the suite does not capture NaN, and checks that an
	// Apply of NaN either stores it exactly or fails with a RowError, never
	// silently storing something else.
	NaN bool

	// TimePrecision is the resolution of time columns (time.Microsecond for
	// PostgreSQL); zero means nanoseconds. Every time value the suite
	// writes is a whole multiple of it.
	TimePrecision time.Duration

	// OldRows is true when captured updates and deletes carry the whole row
	// as it was before the change (adapters.Change.Old). The suite then
	// requires it of every update and delete, and a nil Old for every
	// insert. Without it the suite still checks every Old an adapter
	// reports.
	OldRows bool

	// RejectsForeignCursor is true when Capture fails with an error marked
	// adapters.ErrCursor given a cursor of another system that NewSystem
	// created (another database file); false when cursors of such systems
	// share one order (PostgreSQL databases on one server share the WAL).
	RejectsForeignCursor bool

	// RejectsDiscardedCursor is true when Capture, given a cursor from
	// before one the same adapter acknowledged, fails with an error marked
	// adapters.ErrCursor: the changes after it were discarded.
	RejectsDiscardedCursor bool

	// NaturalKeys is true when the adapter takes natural keys and local
	// columns (adapters.Options.Keys and Local) and the harness creates the
	// tables that use them (TableSpec.Natural, ColumnSpec.Local) and opens
	// adapters with the Options that Mapping returns for its tables.
	NaturalKeys bool
	// GeneratedKeys is true when the harness declares a ColumnSpec marked
	// Generated as a key the system generates. The suite then runs its
	// IDMap scenario, on a table with such a key, if the adapter
	// implements adapters.IDMapper.
	GeneratedKeys bool

	// The fields below say what a system reached over a REST API cannot
	// do that a database can. Their zero values are a database's.

	// RecordIDs is true when the system keys every record by one ID, set
	// when the record is created and never changed: no composite keys and
	// no updates of a key. Tables then gives TypesTable and PairsTable a
	// string key column "id" (PairsTable keeps tenant and n as plain
	// columns), and the suite derives the ID from the key a database would
	// have (RecordID). The parts of scenarios that move a row to a new key
	// are left out.
	RecordIDs bool

	// NoTransactions is true when every write stands alone: Exec sends its
	// ops one by one, in order, stopping at the first that fails, and an
	// Apply that fails at one write leaves the writes before it written.
	// The suite then does not check that a user transaction arrives in one
	// batch, that a snapshot sees all or none of a concurrent transaction
	// (each record is as it was before or after its own write), nor that a
	// failed Apply wrote nothing of its batch (only what comes after the
	// failing write).
	NoTransactions bool

	// Polling is true when capture polls for the current state of the
	// records that changed rather than reading a log of the writes:
	// writes of one record between two polls arrive as the last of them
	// (a record inserted and deleted between polls not at all), and
	// deletes, found by a listing, may arrive after later writes of other
	// records. The suite then checks captured changes record by record:
	// the rows captured for a record are rows users wrote to it, in the
	// order they wrote them, ending with the last (a delete included); and
	// its barrier is a row inserted and then deleted, each waited for, so
	// that the listing that finds deletes has run too.
	Polling bool

	// NoBytes is true when the system has no binary column type (JSON has
	// none): TypesTable has no column "y_bytes".
	NoBytes bool

	// NoInf is true when a float column cannot hold ±Inf (JSON numbers
	// cannot). The suite then does not write them, and checks that an
	// Apply of ±Inf either stores it exactly or fails with a RowError.
	NoInf bool

	// ZeroIsNull is true when the system has no null: a field left empty
	// holds its kind's zero value (PocketBase: "", 0, false, an empty
	// date), and a null written reads back as that. The suite then takes
	// a zero string, number or boolean for null wherever it compares rows.
	ZeroIsNull bool

	// NoJSONNull is true when a JSON column cannot tell the document null
	// from null (in a JSON API, a field holding null is null): the suite
	// does not write the JSON document null.
	NoJSONNull bool

	// IntLimit, when not zero, is the greatest magnitude of an integer the
	// system keeps exactly (1<<53 for a JavaScript server, whose numbers
	// are doubles), in int columns and in JSON documents. The suite's edge
	// values then stop at ±IntLimit instead of the int64 limits.
	IntLimit int64
}

// TableSpec describes a table the harness creates, in system-neutral terms.
type TableSpec struct {
	Name string
	// Key lists the primary-key columns in key order.
	Key []string
	// Natural, when set, lists the columns of the table's natural key
	// (adapters.Options.Keys), which name its records in place of Key. The
	// harness declares them NOT NULL and creates a unique index over them
	// (unless Unindexed), and declares Key (one int column) as a key the
	// system generates (an INTEGER PRIMARY KEY, an identity).
	Natural []string
	// Unindexed leaves out the unique index over Natural: the adapter must
	// refuse to open.
	Unindexed bool
	// Columns lists every column, key columns included, in table order.
	Columns []ColumnSpec
}

// ColumnSpec is one column of a TableSpec. The harness declares it with the
// system's type for Kind: int as a 64-bit integer, float as a double, string
// as text, bool as a boolean, bytes as a binary string, time as a timestamp
// (with time zone where the system distinguishes), json as a JSON document
// type, and list as an array of Elem.
type ColumnSpec struct {
	Name string
	Kind crdt.Kind
	// Elem is the element kind of a list column.
	Elem crdt.Kind
	// NotNull declares the column NOT NULL (key columns always are).
	NotNull bool
	// Local makes the column local to the system (adapters.Options.Local):
	// the adapter never reports nor writes it. Default is the value an
	// insert by Apply gives it; null leaves the column to its own default,
	// which the harness does not declare (null).
	Local   bool
	Default crdt.Value
	// Generated, for the only key column of a table, of kind int, asks
	// for a key the system generates on insert: SQLite's INTEGER PRIMARY
	// KEY, PostgreSQL's identity or bigserial. Only harnesses with
	// Features.GeneratedKeys are given such columns.
	Generated bool
}

// OpKind is the kind of a user write.
type OpKind uint8

// The user writes a System performs.
const (
	// Insert adds Op.Row; columns it does not name are null.
	Insert OpKind = iota + 1
	// Update finds the row by the key columns in Op.Row and sets the other
	// columns Op.Row names, leaving the rest unchanged. Setting a key column
	// is done with NewKey.
	Update
	// Delete removes the row whose key columns are in Op.Row.
	Delete
)

func (k OpKind) String() string {
	switch k {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "op?"
}

// Op is one user write.
type Op struct {
	Kind  OpKind
	Table string
	// Row holds the key columns and, for Insert and Update, the values to
	// write. A crdt.Null value writes SQL NULL.
	Row crdt.Row
	// NewKey, for Update only, sets key columns to new values (moving the
	// row to a new primary key).
	NewKey crdt.Row
}

// Names of the suite's tables and columns.
const (
	// TypesTable has an int primary key "id" and one nullable column per
	// supported kind.
	TypesTable = "lt_types"
	// PairsTable has a composite primary key (tenant string, n int) and a
	// string column "note". Barrier rows go here too.
	PairsTable = "lt_pairs"
)

// Tables returns the suite's tables for a system with features f, sorted by
// name. NewSystem receives exactly these.
func Tables(f Features) []TableSpec {
	idKind := crdt.KindInt
	if f.RecordIDs {
		idKind = crdt.KindString
	}
	types := TableSpec{
		Name: TypesTable,
		Key:  []string{"id"},
		Columns: []ColumnSpec{
			{Name: "id", Kind: idKind},
			{Name: "n_int", Kind: crdt.KindInt},
			{Name: "n_float", Kind: crdt.KindFloat},
			{Name: "s_text", Kind: crdt.KindString},
			{Name: "b_bool", Kind: crdt.KindBool},
		},
	}
	if !f.NoBytes {
		types.Columns = append(types.Columns, ColumnSpec{Name: "y_bytes", Kind: crdt.KindBytes})
	}
	types.Columns = append(types.Columns,
		ColumnSpec{Name: "t_time", Kind: crdt.KindTime},
		ColumnSpec{Name: "j_json", Kind: crdt.KindJSON})
	if f.Lists {
		types.Columns = append(types.Columns, ColumnSpec{Name: "l_tags", Kind: crdt.KindList, Elem: crdt.KindString})
	}
	pairs := TableSpec{
		Name: PairsTable,
		Key:  []string{"tenant", "n"},
		Columns: []ColumnSpec{
			{Name: "tenant", Kind: crdt.KindString},
			{Name: "n", Kind: crdt.KindInt},
			{Name: "note", Kind: crdt.KindString},
		},
	}
	if f.RecordIDs {
		pairs.Key = []string{"id"}
		pairs.Columns = append([]ColumnSpec{{Name: "id", Kind: crdt.KindString}}, pairs.Columns...)
	}
	return []TableSpec{pairs, types}
}

// RecordID is the ID that a system with Features.RecordIDs gives the
// record a database would key by the values key: the hexadecimal of their
// crdt.Key encoding (lowercase letters and digits, which any API takes as
// an ID, ordered as the keys are).
func RecordID(key ...crdt.Value) string {
	k, err := crdt.MakeKey(key...)
	if err != nil {
		panic(err)
	}
	return hex.EncodeToString([]byte(k))
}

// Column returns the named column of t, or nil.
func (t *TableSpec) Column(name string) *ColumnSpec {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// RecordKey returns the columns that name t's records: Natural if set,
// else Key.
func (t *TableSpec) RecordKey() []string {
	if len(t.Natural) > 0 {
		return t.Natural
	}
	return t.Key
}

// IsRecordKey reports whether column is one of the columns that name t's
// records (RecordKey).
func (t *TableSpec) IsRecordKey(column string) bool {
	return slices.Contains(t.RecordKey(), column)
}

// IsSynced reports whether the adapter syncs column: it is not local, nor
// a primary-key column of a table with a natural key.
func (t *TableSpec) IsSynced(column string) bool {
	c := t.Column(column)
	return c != nil && !c.Local && (len(t.Natural) == 0 || !t.IsKey(column))
}

// Mapping returns the adapters.Options.Keys and Local that the tables'
// natural keys and local columns ask for, for a harness to open adapters
// with. Both are nil when no table has either.
func Mapping(tables []TableSpec) (keys map[string][]string, local map[string]map[string]crdt.Value) {
	for _, t := range tables {
		if len(t.Natural) > 0 {
			if keys == nil {
				keys = map[string][]string{}
			}
			keys[t.Name] = t.Natural
		}
		for _, c := range t.Columns {
			if !c.Local {
				continue
			}
			if local == nil {
				local = map[string]map[string]crdt.Value{}
			}
			if local[t.Name] == nil {
				local[t.Name] = map[string]crdt.Value{}
			}
			local[t.Name][c.Name] = c.Default
		}
	}
	return keys, local
}

// IsKey reports whether column is one of t's key columns.
func (t *TableSpec) IsKey(column string) bool {
	for _, k := range t.Key {
		if k == column {
			return true
		}
	}
	return false
}
