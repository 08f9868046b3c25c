package crdt

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Lengths of 2^31 and more, which turn negative as an int on 32-bit
// platforms, are decode errors: refused by CheckMsgpack, by every message
// decoder, and by each length reader of Decoder on its own (below the
// CheckMsgpack that NewDecoder runs), never taken for a nil or an empty
// value.
func TestLengthsOver2to31AreRefused(t *testing.T) {
	lengths := []uint32{1 << 31, 1<<31 + 1, 3 << 30, math.MaxUint32}
	head := func(code byte, n uint32) []byte {
		b := binary.BigEndian.AppendUint32([]byte{code}, n)
		return append(b, make([]byte, 64)...)
	}
	lim := DefaultLimits()
	raw := func(b []byte) *Decoder {
		br := bytes.NewReader(b)
		return &Decoder{dec: msgpack.NewDecoder(br), br: br, lim: lim}
	}
	readers := []struct {
		name string
		code byte
		read func(d *Decoder) error
	}{
		{"ArrayLen", msgpcode.Array32, func(d *Decoder) error { _, err := d.ArrayLen(1 << 16); return err }},
		{"limitedLen", msgpcode.Array32, func(d *Decoder) error { _, err := d.limitedLen(lim.MaxFields, LimitFields); return err }},
		{"String", msgpcode.Str32, func(d *Decoder) error { _, err := d.String(128); return err }},
		{"name", msgpcode.Str32, func(d *Decoder) error { _, err := d.name(); return err }},
		{"Bytes", msgpcode.Bin32, func(d *Decoder) error { _, err := d.Bytes(1 << 20); return err }},
		{"binString", msgpcode.Bin32, func(d *Decoder) error { _, err := d.binString(1<<20, LimitValueBytes); return err }},
		{"Value str", msgpcode.Str32, func(d *Decoder) error { _, err := d.Value(); return err }},
		{"Value bin", msgpcode.Bin32, func(d *Decoder) error { _, err := d.Value(); return err }},
		{"Value ext", msgpcode.Ext32, func(d *Decoder) error { _, err := d.Value(); return err }},
	}
	for _, l := range lengths {
		for _, r := range readers {
			if err := r.read(raw(head(r.code, l))); !IsDecodeError(err) {
				t.Errorf("%s of a length %d: %v, want a decode error", r.name, l, err)
			}
		}
		for _, code := range []byte{msgpcode.Array32, msgpcode.Map32, msgpcode.Str32, msgpcode.Bin32, msgpcode.Ext32} {
			b := head(code, l)
			if err := CheckMsgpack(b, 8); !IsDecodeError(err) {
				t.Errorf("CheckMsgpack of code 0x%02x, length %d: %v", code, l, err)
			}
			// In place of the fragment list, and of a collection name.
			for _, msg := range [][]byte{
				append([]byte{0x93, 0x01, 0x01}, b...),
				append([]byte{0x93, 0x01, 0x01, 0x91, 0x93}, b...),
			} {
				if _, err := DecodeDelta(msg, lim); !IsDecodeError(err) {
					t.Errorf("DecodeDelta with code 0x%02x, length %d: %v", code, l, err)
				}
			}
			if _, err := DecodeRecord(b, lim); !IsDecodeError(err) {
				t.Errorf("DecodeRecord of code 0x%02x, length %d: %v", code, l, err)
			}
		}
	}
}
