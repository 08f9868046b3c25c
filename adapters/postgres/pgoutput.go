package postgres

import (
	"encoding/binary"
	"strconv"

	"github.com/cockroachdb/errors"
)

// This file decodes the pgoutput logical replication protocol, version 1
// (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html).
// It is written here rather than taken from pglogrepl because its decoders
// index the input without bounds checks, and a capture must never panic on
// what a system sends: every read below is checked, and FuzzDecodeMessage
// holds it to that.

// ErrProtocol marks messages from the server that do not parse.
var ErrProtocol = errors.New("postgres: bad replication message")

// lsn is a WAL position.
type lsn uint64

func (l lsn) String() string {
	return strconv.FormatUint(uint64(l)>>32, 16) + "/" + strconv.FormatUint(uint64(l)&0xffffffff, 16)
}

// The pgoutput messages the adapter reads.
type (
	msgBegin struct {
		FinalLSN   lsn
		CommitTime int64 // microseconds since 2000-01-01
		Xid        uint32
	}
	msgCommit struct {
		Flags      uint8
		CommitLSN  lsn
		EndLSN     lsn
		CommitTime int64
	}
	msgOrigin struct {
		CommitLSN lsn
		Name      string
	}
	msgRelation struct {
		RelID           uint32
		Namespace, Name string
		ReplicaIdentity uint8
		Columns         []relColumn
	}
	msgType struct {
		OID             uint32
		Namespace, Name string
	}
	msgInsert struct {
		RelID uint32
		New   tuple
	}
	msgUpdate struct {
		RelID uint32
		// OldKind is 'K' (old key), 'O' (old row, replica identity full) or
		// 0 (no old tuple sent).
		OldKind uint8
		Old     tuple
		New     tuple
	}
	msgDelete struct {
		RelID   uint32
		OldKind uint8
		Old     tuple
	}
	msgTruncate struct {
		Options uint8
		RelIDs  []uint32
	}
	msgMessage struct {
		Flags   uint8
		LSN     lsn
		Prefix  string
		Content []byte
	}
)

// relColumn is one column of a Relation message.
type relColumn struct {
	Flags   uint8 // 1: part of the replica identity
	Name    string
	TypeOID uint32
	TypMod  int32
}

// tuple is a row in a change message.
type tuple []tupleColumn

// tupleColumn is one value of a tuple: Kind is 'n' (null), 'u' (unchanged
// TOASTed value, not sent), 't' (text) or 'b' (binary).
type tupleColumn struct {
	Kind uint8
	Data []byte
}

// maxColumns is PostgreSQL's limit on the columns of a table.
const maxColumns = 1664

type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = errors.Mark(errors.Newf("truncated or malformed %s", what), ErrProtocol)
	}
}

func (r *reader) u8(what string) uint8 {
	if r.err != nil || len(r.b) < 1 {
		r.fail(what)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16(what string) uint16 {
	if r.err != nil || len(r.b) < 2 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) u32(what string) uint32 {
	if r.err != nil || len(r.b) < 4 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) u64(what string) uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.fail(what)
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) cstring(what string) string {
	if r.err != nil {
		return ""
	}
	for i, c := range r.b {
		if c == 0 {
			s := string(r.b[:i])
			r.b = r.b[i+1:]
			return s
		}
	}
	r.fail(what)
	return ""
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) tuple(what string) tuple {
	n := int(r.u16(what))
	if r.err != nil {
		return nil
	}
	if n > maxColumns {
		r.fail(what)
		return nil
	}
	t := make(tuple, 0, n)
	for i := 0; i < n && r.err == nil; i++ {
		kind := r.u8(what)
		var data []byte
		switch kind {
		case 'n', 'u':
		case 't', 'b':
			data = r.bytes(int(r.u32(what)), what)
		default:
			r.fail(what)
			return nil
		}
		t = append(t, tupleColumn{Kind: kind, Data: data})
	}
	return t
}

// decodeMessage decodes one pgoutput message (the WALData of an XLogData
// message). The returned message may alias data. Unknown message types are
// an error: with protocol version 1 and no streaming, the server sends only
// the types above.
func decodeMessage(data []byte) (any, error) {
	if len(data) == 0 {
		return nil, errors.Mark(errors.New("empty replication message"), ErrProtocol)
	}
	r := &reader{b: data[1:]}
	var m any
	switch data[0] {
	case 'B':
		m = &msgBegin{FinalLSN: lsn(r.u64("begin")), CommitTime: int64(r.u64("begin")), Xid: r.u32("begin")}
	case 'C':
		m = &msgCommit{Flags: r.u8("commit"), CommitLSN: lsn(r.u64("commit")), EndLSN: lsn(r.u64("commit")), CommitTime: int64(r.u64("commit"))}
	case 'O':
		m = &msgOrigin{CommitLSN: lsn(r.u64("origin")), Name: r.cstring("origin")}
	case 'R':
		rel := &msgRelation{RelID: r.u32("relation"), Namespace: r.cstring("relation"), Name: r.cstring("relation"), ReplicaIdentity: r.u8("relation")}
		n := int(r.u16("relation"))
		if n > maxColumns {
			r.fail("relation")
		}
		for i := 0; i < n && r.err == nil; i++ {
			rel.Columns = append(rel.Columns, relColumn{Flags: r.u8("relation"), Name: r.cstring("relation"), TypeOID: r.u32("relation"), TypMod: int32(r.u32("relation"))})
		}
		m = rel
	case 'Y':
		m = &msgType{OID: r.u32("type"), Namespace: r.cstring("type"), Name: r.cstring("type")}
	case 'I':
		ins := &msgInsert{RelID: r.u32("insert")}
		if r.u8("insert") != 'N' {
			r.fail("insert")
		}
		ins.New = r.tuple("insert")
		m = ins
	case 'U':
		up := &msgUpdate{RelID: r.u32("update")}
		switch k := r.u8("update"); k {
		case 'K', 'O':
			up.OldKind = k
			up.Old = r.tuple("update")
			if r.u8("update") != 'N' {
				r.fail("update")
			}
		case 'N':
		default:
			r.fail("update")
		}
		up.New = r.tuple("update")
		m = up
	case 'D':
		del := &msgDelete{RelID: r.u32("delete")}
		switch k := r.u8("delete"); k {
		case 'K', 'O':
			del.OldKind = k
			del.Old = r.tuple("delete")
		default:
			r.fail("delete")
		}
		m = del
	case 'T':
		n := r.u32("truncate")
		tr := &msgTruncate{Options: r.u8("truncate")}
		if uint64(n)*4 > uint64(len(r.b)) {
			r.fail("truncate")
		}
		for i := uint32(0); i < n && r.err == nil; i++ {
			tr.RelIDs = append(tr.RelIDs, r.u32("truncate"))
		}
		m = tr
	case 'M':
		msg := &msgMessage{Flags: r.u8("message"), LSN: lsn(r.u64("message")), Prefix: r.cstring("message")}
		msg.Content = r.bytes(int(r.u32("message")), "message")
		m = msg
	default:
		return nil, errors.Mark(errors.Newf("unknown replication message type %q", data[0]), ErrProtocol)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errors.Mark(errors.Newf("%d unexpected bytes after a %q message", len(r.b), data[0]), ErrProtocol)
	}
	return m, nil
}
