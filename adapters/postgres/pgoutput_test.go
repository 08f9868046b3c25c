package postgres

import (
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/cockroachdb/errors"
	"pgregory.net/rapid"
)

// encodeMessage is the inverse of decodeMessage, for tests.
func encodeMessage(m any) []byte {
	var b []byte
	u8 := func(v uint8) { b = append(b, v) }
	u16 := func(v uint16) { b = binary.BigEndian.AppendUint16(b, v) }
	u32 := func(v uint32) { b = binary.BigEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.BigEndian.AppendUint64(b, v) }
	str := func(s string) { b = append(append(b, s...), 0) }
	tup := func(t tuple) {
		u16(uint16(len(t)))
		for _, c := range t {
			u8(c.Kind)
			if c.Kind == 't' || c.Kind == 'b' {
				u32(uint32(len(c.Data)))
				b = append(b, c.Data...)
			}
		}
	}
	switch m := m.(type) {
	case *msgBegin:
		u8('B')
		u64(uint64(m.FinalLSN))
		u64(uint64(m.CommitTime))
		u32(m.Xid)
	case *msgCommit:
		u8('C')
		u8(m.Flags)
		u64(uint64(m.CommitLSN))
		u64(uint64(m.EndLSN))
		u64(uint64(m.CommitTime))
	case *msgOrigin:
		u8('O')
		u64(uint64(m.CommitLSN))
		str(m.Name)
	case *msgRelation:
		u8('R')
		u32(m.RelID)
		str(m.Namespace)
		str(m.Name)
		u8(m.ReplicaIdentity)
		u16(uint16(len(m.Columns)))
		for _, c := range m.Columns {
			u8(c.Flags)
			str(c.Name)
			u32(c.TypeOID)
			u32(uint32(c.TypMod))
		}
	case *msgType:
		u8('Y')
		u32(m.OID)
		str(m.Namespace)
		str(m.Name)
	case *msgInsert:
		u8('I')
		u32(m.RelID)
		u8('N')
		tup(m.New)
	case *msgUpdate:
		u8('U')
		u32(m.RelID)
		if m.OldKind != 0 {
			u8(m.OldKind)
			tup(m.Old)
		}
		u8('N')
		tup(m.New)
	case *msgDelete:
		u8('D')
		u32(m.RelID)
		u8(m.OldKind)
		tup(m.Old)
	case *msgTruncate:
		u8('T')
		u32(uint32(len(m.RelIDs)))
		u8(m.Options)
		for _, id := range m.RelIDs {
			u32(id)
		}
	case *msgMessage:
		u8('M')
		u8(m.Flags)
		u64(uint64(m.LSN))
		str(m.Prefix)
		u32(uint32(len(m.Content)))
		b = append(b, m.Content...)
	}
	return b
}

func genCString() *rapid.Generator[string] {
	return rapid.StringMatching(`[a-z_ "é]{0,12}`)
}

func genTuple() *rapid.Generator[tuple] {
	return rapid.Custom(func(t *rapid.T) tuple {
		n := rapid.IntRange(0, 5).Draw(t, "ncols")
		tup := tuple{}
		for range n {
			kind := rapid.SampledFrom([]uint8{'n', 'u', 't', 'b'}).Draw(t, "kind")
			c := tupleColumn{Kind: kind}
			if kind == 't' || kind == 'b' {
				c.Data = rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "data")
			}
			tup = append(tup, c)
		}
		return tup
	})
}

func genMessage() *rapid.Generator[any] {
	return rapid.Custom(func(t *rapid.T) any {
		switch rapid.IntRange(0, 9).Draw(t, "type") {
		case 0:
			return &msgBegin{FinalLSN: lsn(rapid.Uint64().Draw(t, "lsn")), CommitTime: rapid.Int64().Draw(t, "time"), Xid: rapid.Uint32().Draw(t, "xid")}
		case 1:
			return &msgCommit{Flags: rapid.Uint8().Draw(t, "flags"), CommitLSN: lsn(rapid.Uint64().Draw(t, "commit")),
				EndLSN: lsn(rapid.Uint64().Draw(t, "end")), CommitTime: rapid.Int64().Draw(t, "time")}
		case 2:
			return &msgOrigin{CommitLSN: lsn(rapid.Uint64().Draw(t, "lsn")), Name: genCString().Draw(t, "name")}
		case 3:
			m := &msgRelation{RelID: rapid.Uint32().Draw(t, "rel"), Namespace: genCString().Draw(t, "ns"),
				Name: genCString().Draw(t, "name"), ReplicaIdentity: rapid.Uint8().Draw(t, "ident")}
			for range rapid.IntRange(0, 4).Draw(t, "ncols") {
				m.Columns = append(m.Columns, relColumn{Flags: rapid.Uint8().Draw(t, "flags"), Name: genCString().Draw(t, "col"),
					TypeOID: rapid.Uint32().Draw(t, "oid"), TypMod: rapid.Int32().Draw(t, "typmod")})
			}
			return m
		case 4:
			return &msgType{OID: rapid.Uint32().Draw(t, "oid"), Namespace: genCString().Draw(t, "ns"), Name: genCString().Draw(t, "name")}
		case 5:
			return &msgInsert{RelID: rapid.Uint32().Draw(t, "rel"), New: genTuple().Draw(t, "new")}
		case 6:
			m := &msgUpdate{RelID: rapid.Uint32().Draw(t, "rel"), OldKind: rapid.SampledFrom([]uint8{0, 'K', 'O'}).Draw(t, "oldkind"), New: genTuple().Draw(t, "new")}
			if m.OldKind != 0 {
				m.Old = genTuple().Draw(t, "old")
			}
			return m
		case 7:
			return &msgDelete{RelID: rapid.Uint32().Draw(t, "rel"), OldKind: rapid.SampledFrom([]uint8{'K', 'O'}).Draw(t, "oldkind"), Old: genTuple().Draw(t, "old")}
		case 8:
			return &msgTruncate{Options: rapid.Uint8().Draw(t, "opts"), RelIDs: rapid.SliceOfN(rapid.Uint32(), 1, 4).Draw(t, "rels")}
		default:
			return &msgMessage{Flags: rapid.Uint8().Draw(t, "flags"), LSN: lsn(rapid.Uint64().Draw(t, "lsn")),
				Prefix: genCString().Draw(t, "prefix"), Content: rapid.SliceOfN(rapid.Byte(), 0, 10).Draw(t, "content")}
		}
	})
}

// normalize makes nil and empty slices alike for comparison.
func normalize(m any) any {
	fix := func(t tuple) tuple {
		if len(t) == 0 {
			return nil
		}
		for i := range t {
			if len(t[i].Data) == 0 {
				t[i].Data = nil
			}
		}
		return t
	}
	switch m := m.(type) {
	case *msgInsert:
		m.New = fix(m.New)
	case *msgUpdate:
		m.New, m.Old = fix(m.New), fix(m.Old)
	case *msgDelete:
		m.Old = fix(m.Old)
	case *msgMessage:
		if len(m.Content) == 0 {
			m.Content = nil
		}
	}
	return m
}

func TestDecodeMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage().Draw(t, "msg")
		data := encodeMessage(m)
		got, err := decodeMessage(data)
		if err != nil {
			t.Fatalf("decode %x: %v", data, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(m)) {
			t.Fatalf("decode(encode(%#v)) = %#v", m, got)
		}
		// Every strict prefix is malformed, and so is any extra byte.
		for i := range data {
			if _, err := decodeMessage(data[:i]); err == nil || !errors.Is(err, ErrProtocol) {
				t.Fatalf("prefix of %d bytes of %x: err %v, want ErrProtocol", i, data, err)
			}
		}
		if _, err := decodeMessage(append(data, 0)); err == nil {
			t.Fatalf("%x with a trailing byte decoded", data)
		}
	})
}

func TestDecodeMessageRejects(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":              nil,
		"unknown type":       {'Z'},
		"stream start":       {'S', 0, 0, 0, 1, 1},
		"insert without N":   {'I', 0, 0, 0, 1, 'K', 0, 0},
		"bad tuple kind":     {'I', 0, 0, 0, 1, 'N', 0, 1, 'x'},
		"length past end":    {'I', 0, 0, 0, 1, 'N', 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 'a'},
		"too many columns":   {'I', 0, 0, 0, 1, 'N', 0xff, 0xff},
		"delete without old": {'D', 0, 0, 0, 1, 'N', 0, 0},
		"truncate count":     {'T', 0xff, 0xff, 0xff, 0xff, 0},
		"unterminated name":  {'O', 0, 0, 0, 0, 0, 0, 0, 1, 'a', 'b'},
		"message past end":   {'M', 0, 0, 0, 0, 0, 0, 0, 0, 0, 'p', 0, 0, 0, 0, 9},
	} {
		if m, err := decodeMessage(data); err == nil || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: decoded %#v, err %v; want ErrProtocol", name, m, err)
		}
	}
}

// FuzzDecodeMessage: the decoder never panics, and what it decodes encodes
// back to the same bytes.
func FuzzDecodeMessage(f *testing.F) {
	seeds := []any{
		&msgBegin{FinalLSN: 0x16B3748, CommitTime: 1, Xid: 750},
		&msgCommit{CommitLSN: 0x16B3748, EndLSN: 0x16B3778},
		&msgOrigin{CommitLSN: 0, Name: "lattice_crm"},
		&msgRelation{RelID: 16385, Namespace: "public", Name: "customers", ReplicaIdentity: 'f',
			Columns: []relColumn{{Flags: 1, Name: "id", TypeOID: 20, TypMod: -1}, {Name: "tags", TypeOID: 1009, TypMod: -1}}},
		&msgInsert{RelID: 16385, New: tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}}},
		&msgUpdate{RelID: 16385, OldKind: 'O', Old: tuple{{Kind: 't', Data: []byte("1")}, {Kind: 't', Data: []byte("{a}")}},
			New: tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'u'}}},
		&msgDelete{RelID: 16385, OldKind: 'K', Old: tuple{{Kind: 't', Data: []byte("1")}, {Kind: 'n'}}},
		&msgTruncate{RelIDs: []uint32{16385}},
		&msgType{OID: 16400, Namespace: "public", Name: "mood"},
		&msgMessage{Prefix: "p", Content: []byte("x")},
	}
	for _, m := range seeds {
		f.Add(encodeMessage(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error not marked ErrProtocol: %v", err)
			}
			return
		}
		if got := encodeMessage(m); string(got) != string(data) {
			t.Fatalf("%x decoded to %#v, which encodes to %x", data, m, got)
		}
	})
}
