package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/lattice-crdt/lattice/adapters"
	"github.com/lattice-crdt/lattice/adapters/adaptertest"
	"github.com/lattice-crdt/lattice/crdt"
)

// TestIntegrationConformance runs the adapter conformance suite against real
// PostgreSQL, one fresh database per scenario.
func TestIntegrationConformance(t *testing.T) {
	adaptertest.Run(t, harness{})
}

// harness implements adaptertest.Harness for PostgreSQL. User writes and
// reads go through pgx with its own binary codecs, independently of the
// adapter's text codec.
type harness struct{}

// Features: the adapter runs with replica identity full (the default), so
// updates and deletes carry the old row. Databases on one server share the
// WAL, so another system's cursor cannot be told from this one's; a cursor
// before the one the adapter acknowledged is refused.
func (harness) Features() adaptertest.Features {
	return adaptertest.Features{Lists: true, NaN: true, TimePrecision: time.Microsecond,
		OldRows: true, RejectsForeignCursor: false, RejectsDiscardedCursor: true}
}

// sqlTypes maps the suite's kinds to PostgreSQL types.
var sqlTypes = map[crdt.Kind]string{
	crdt.KindInt:    "bigint",
	crdt.KindFloat:  "double precision",
	crdt.KindString: "text",
	crdt.KindBool:   "boolean",
	crdt.KindBytes:  "bytea",
	crdt.KindTime:   "timestamptz",
	crdt.KindJSON:   "jsonb",
}

func (harness) NewSystem(t *testing.T, tables []adaptertest.TableSpec) adaptertest.System {
	srv := sharedServer(t)
	name, dsn := newDB(t, srv)
	conn := connect(t, dsn)
	for _, spec := range tables {
		var cols []string
		for _, c := range spec.Columns {
			typ := sqlTypes[c.Kind]
			if c.Kind == crdt.KindList {
				typ = sqlTypes[c.Elem] + "[]"
			}
			col := pgx.Identifier{c.Name}.Sanitize() + " " + typ
			if spec.IsKey(c.Name) {
				col += " NOT NULL"
			}
			cols = append(cols, col)
		}
		keys := make([]string, len(spec.Key))
		for i, k := range spec.Key {
			keys[i] = pgx.Identifier{k}.Sanitize()
		}
		exec(t, conn, "CREATE TABLE "+pgx.Identifier{spec.Name}.Sanitize()+" ("+strings.Join(cols, ", ")+
			", PRIMARY KEY ("+strings.Join(keys, ", ")+"))")
	}
	sys := &system{t: t, dsn: dsn, node: name, specs: map[string]adaptertest.TableSpec{}, conns: make(chan *pgx.Conn, 8)}
	for _, s := range tables {
		sys.specs[s.Name] = s
	}
	t.Cleanup(sys.close)
	return sys
}

type system struct {
	t     *testing.T
	dsn   string
	node  string
	specs map[string]adaptertest.TableSpec
	conns chan *pgx.Conn // idle user connections
}

func (s *system) Open(ctx context.Context) (adapters.Adapter, error) {
	cfg := testConfig(s.t, s.dsn, s.node)
	return Open(ctx, cfg)
}

func (s *system) conn(ctx context.Context) (*pgx.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	default:
		return pgx.Connect(ctx, s.dsn)
	}
}

func (s *system) release(c *pgx.Conn) {
	if c.IsClosed() {
		return
	}
	select {
	case s.conns <- c:
	default:
		_ = c.Close(context.Background())
	}
}

func (s *system) close() {
	for {
		select {
		case c := <-s.conns:
			_ = c.Close(context.Background())
		default:
			return
		}
	}
}

// arg converts a Value to what pgx binds for the column's type.
func arg(c *adaptertest.ColumnSpec, v crdt.Value) any {
	if v.IsNull() {
		return nil
	}
	switch v.Kind() {
	case crdt.KindInt:
		if c.Kind == crdt.KindFloat {
			return float64(v.AsInt())
		}
		return v.AsInt()
	case crdt.KindFloat:
		return v.AsFloat()
	case crdt.KindString:
		return v.AsString()
	case crdt.KindBool:
		return v.AsBool()
	case crdt.KindBytes:
		return v.AsBytes()
	case crdt.KindTime:
		return v.AsTime()
	case crdt.KindJSON:
		return v.AsString()
	case crdt.KindList:
		out := make([]pgtype.Text, len(v.AsList()))
		for i, e := range v.AsList() {
			out[i] = pgtype.Text{String: e.AsString(), Valid: !e.IsNull()}
		}
		return out
	}
	return v.String()
}

// param is the placeholder for a column: JSON goes in as text and is cast.
func param(c *adaptertest.ColumnSpec, n int) string {
	p := "$" + strconv.Itoa(n)
	if c.Kind == crdt.KindJSON {
		return p + "::text::jsonb"
	}
	return p
}

func (s *system) Exec(ctx context.Context, ops ...adaptertest.Op) (err error) {
	conn, err := s.conn(ctx)
	if err != nil {
		return err
	}
	defer s.release(conn)
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, op := range ops {
			spec := s.specs[op.Table]
			tbl := pgx.Identifier{op.Table}.Sanitize()
			var sql string
			var args []any
			where := func() string {
				var conds []string
				for _, k := range spec.Key {
					args = append(args, arg(spec.Column(k), op.Row[k]))
					conds = append(conds, pgx.Identifier{k}.Sanitize()+" = $"+strconv.Itoa(len(args)))
				}
				return strings.Join(conds, " AND ")
			}
			switch op.Kind {
			case adaptertest.Insert:
				var names, params []string
				for _, c := range spec.Columns {
					v, ok := op.Row[c.Name]
					if !ok {
						continue
					}
					args = append(args, arg(&c, v))
					names = append(names, pgx.Identifier{c.Name}.Sanitize())
					params = append(params, param(&c, len(args)))
				}
				sql = "INSERT INTO " + tbl + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(params, ", ") + ")"
			case adaptertest.Update:
				var sets []string
				for _, c := range spec.Columns {
					v, ok := op.NewKey[c.Name]
					if !ok {
						if v, ok = op.Row[c.Name]; !ok || spec.IsKey(c.Name) {
							continue
						}
					}
					args = append(args, arg(&c, v))
					sets = append(sets, pgx.Identifier{c.Name}.Sanitize()+" = "+param(&c, len(args)))
				}
				sql = "UPDATE " + tbl + " SET " + strings.Join(sets, ", ")
				sql += " WHERE " + where()
			case adaptertest.Delete:
				sql = "DELETE FROM " + tbl
				sql += " WHERE " + where()
			}
			if _, err := tx.Exec(ctx, sql, args...); err != nil {
				return errors.Wrapf(err, "%s", sql)
			}
		}
		return nil
	})
}

func (s *system) Rows(ctx context.Context, table string) ([]crdt.Row, error) {
	conn, err := s.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer s.release(conn)
	spec := s.specs[table]
	var sel []string
	for _, c := range spec.Columns {
		id := pgx.Identifier{c.Name}.Sanitize()
		if c.Kind == crdt.KindJSON {
			id += "::text"
		}
		sel = append(sel, id)
	}
	rows, err := conn.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []crdt.Row
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		row := crdt.Row{}
		for i, c := range spec.Columns {
			v, err := fromPgx(&c, vals[i])
			if err != nil {
				return nil, errors.Wrapf(err, "%s.%s", table, c.Name)
			}
			row[c.Name] = v
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// fromPgx converts what pgx decoded to a Value of the column's kind.
func fromPgx(c *adaptertest.ColumnSpec, x any) (crdt.Value, error) {
	if x == nil {
		return crdt.Null(), nil
	}
	switch c.Kind {
	case crdt.KindInt:
		return crdt.Int(x.(int64)), nil
	case crdt.KindFloat:
		return crdt.Float(x.(float64)), nil
	case crdt.KindString:
		return crdt.String(x.(string)), nil
	case crdt.KindBool:
		return crdt.Bool(x.(bool)), nil
	case crdt.KindBytes:
		return crdt.Bytes(x.([]byte)), nil
	case crdt.KindTime:
		return crdt.Time(x.(time.Time)), nil
	case crdt.KindJSON:
		return crdt.JSON([]byte(x.(string)))
	case crdt.KindList:
		elems := x.([]any)
		vs := make([]crdt.Value, len(elems))
		for i, e := range elems {
			if e == nil {
				vs[i] = crdt.Null()
			} else {
				vs[i] = crdt.String(e.(string))
			}
		}
		return crdt.List(vs...)
	}
	return crdt.Value{}, errors.Newf("unexpected kind %s", c.Kind)
}
