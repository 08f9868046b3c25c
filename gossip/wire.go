package gossip

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Wire format of the data path. Every message is a crdt envelope
// [version, type, body...] whose body elements may only be appended to
// (an older decoder skips what it does not know). Deltas are embedded with
// crdt.EncodeFragments, whose array header may be the 5-byte array32 form.
//
//	hello      [1, 16, name, purpose, label, version, schema, max message bytes]
//	helloAck   [1, 17, name, status, reason, schema, max message bytes]
//	deltas     [1, 18, flags, [fragment...]]
//	sync       [1, 19, flags, ranges bin, wants bin, [fragment...]]
//	bootReq    [1, 20, from bin]
//	bootChunk  [1, 21, next bin, done uint, [fragment...]]
//	schema     [fingerprint, strict uint, [[collection, fingerprint]...]]
//	meta       [1, api, data address, version, schema fingerprint, leaving uint]  (memberlist node meta)
const (
	msgHello          crdt.MsgType = 16
	msgHelloAck       crdt.MsgType = 17
	msgDeltas         crdt.MsgType = 18
	msgSync           crdt.MsgType = 19
	msgBootstrapReq   crdt.MsgType = 20
	msgBootstrapChunk crdt.MsgType = 21
)

// purpose says what a data stream is for.
type purpose uint8

const (
	purposeDeltas    purpose = 1
	purposeSync      purpose = 2
	purposeBootstrap purpose = 3
)

// ack status.
const (
	ackOK       = 0
	ackBusy     = 1
	ackRejected = 2
)

// deltas flags.
const flagRelay = 1

// sync flags.
const flagDone = 1

const (
	maxCollections = 4096
	maxFPBytes     = 64
	maxReasonBytes = 256
	maxSyncEntries = 1 << 20
	maxSyncItems   = 1 << 20
	maxWants       = 1 << 20
)

func decodeErrf(format string, args ...any) error {
	return errors.Mark(errors.Newf(format, args...), crdt.ErrDecode)
}

func decodeWrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if crdt.IsDecodeError(err) {
		return errors.Wrap(err, what)
	}
	return errors.Mark(errors.Wrap(err, what), crdt.ErrDecode)
}

// optBytes reads a binary value or nil (an empty one) of at most max bytes.
func optBytes(d *crdt.Decoder, max int) ([]byte, error) {
	c, err := d.Msgpack().PeekCode()
	if err != nil {
		return nil, decodeWrap(err, "bytes")
	}
	if c == msgpcode.Nil {
		_ = d.Msgpack().Skip()
		return nil, nil
	}
	return d.Bytes(max)
}

// bin returns b, never nil, so that it encodes as binary.
func bin(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// msgBuf builds one message with a pooled msgpack encoder.
type msgBuf struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var msgPool = sync.Pool{New: func() any {
	m := &msgBuf{}
	m.enc = msgpack.NewEncoder(&m.buf)
	return m
}}

// newMsg starts a message of type t with the given number of body fields.
// Encoding to a bytes.Buffer cannot fail, so encoder errors are ignored.
func newMsg(t crdt.MsgType, fields int) *msgBuf {
	m := msgPool.Get().(*msgBuf)
	m.buf.Reset()
	_ = m.enc.EncodeArrayLen(fields + 2)
	_ = m.enc.EncodeUint(crdt.WireVersion)
	_ = m.enc.EncodeUint(uint64(t))
	return m
}

func (m *msgBuf) bytes() []byte { return m.buf.Bytes() }

// writeFragments appends f to the message as an array of fragments.
func (m *msgBuf) writeFragments(f *fragments) {
	var h [5]byte
	m.buf.Write(appendFragmentsHeader(h[:0], f.n))
	m.buf.Write(f.body)
}

func (m *msgBuf) free() {
	if m.buf.Cap() <= 4<<20 {
		msgPool.Put(m)
	}
}

// fragments is a list of encoded fragments without their array header.
type fragments struct {
	n    int
	body []byte
}

// appendFragmentsHeader appends the array32 header of n fragments.
func appendFragmentsHeader(b []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(n))
}

func (f *fragments) size() int { return 5 + len(f.body) }

func (f *fragments) add(o fragments) {
	f.n += o.n
	f.body = append(f.body, o.body...)
}

// encodeFragments encodes the fragments of d, without array header.
func encodeFragments(d *crdt.Delta) fragments {
	m := msgPool.Get().(*msgBuf)
	m.buf.Reset()
	crdt.EncodeFragments(m.enc, d)
	b := m.buf.Bytes()
	b = b[arrayHeaderLen(b):]
	out := fragments{n: d.Len(), body: slices.Clone(b)}
	m.free()
	return out
}

// encodeEach encodes each fragment of d separately, into one shared
// buffer: concatenated, the bodies are encodeFragments(d).body.
func encodeEach(d *crdt.Delta) []fragments {
	m := msgPool.Get().(*msgBuf)
	m.buf.Reset()
	ends := make([]int, d.Len())
	for i := range d.Fragments {
		crdt.EncodeFragments(m.enc, &crdt.Delta{Fragments: d.Fragments[i : i+1]})
		ends[i] = m.buf.Len()
	}
	b := slices.Clone(m.buf.Bytes())
	m.free()
	out := make([]fragments, d.Len())
	start := 0
	for i, end := range ends {
		out[i] = fragments{n: 1, body: b[start+arrayHeaderLen(b[start:end]) : end : end]}
		start = end
	}
	return out
}

func arrayHeaderLen(b []byte) int {
	switch {
	case len(b) == 0:
		return 0
	case b[0] == 0xdc:
		return 3
	case b[0] == 0xdd:
		return 5
	}
	return 1
}

// schemaInfo is what a peer says about its schema.
type schemaInfo struct {
	FP          string
	Strict      bool
	Collections map[string]string
}

func localSchemaInfo(s *crdt.Schema) schemaInfo {
	return schemaInfo{FP: s.Fingerprint(), Strict: s.Strict, Collections: s.Fingerprints()}
}

// effective returns the fingerprint a replica applies to a collection: its
// listed one, the default all-LWW one, or "" for a collection a strict
// schema does not accept.
func (si *schemaInfo) effective(name string) string {
	if fp, ok := si.Collections[name]; ok {
		return fp
	}
	if si.Strict {
		return ""
	}
	c, err := (*crdt.Schema)(nil).Collection(name)
	if err != nil {
		return ""
	}
	return c.Fingerprint()
}

// mismatch returns the sorted collections whose rules differ between two
// schemas. Collections neither lists are all-LWW on both and never differ.
func mismatch(a, b *schemaInfo) []string {
	if a.FP == b.FP && a.Strict == b.Strict {
		return nil
	}
	names := map[string]bool{}
	for n := range a.Collections {
		names[n] = true
	}
	for n := range b.Collections {
		names[n] = true
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(names)) {
		if a.effective(n) != b.effective(n) {
			out = append(out, n)
		}
	}
	return out
}

func encodeSchema(enc *msgpack.Encoder, si *schemaInfo) {
	_ = enc.EncodeArrayLen(3)
	_ = enc.EncodeString(si.FP)
	strict := uint64(0)
	if si.Strict {
		strict = 1
	}
	_ = enc.EncodeUint(strict)
	_ = enc.EncodeArrayLen(len(si.Collections))
	for _, n := range slices.Sorted(maps.Keys(si.Collections)) {
		_ = enc.EncodeArrayLen(2)
		_ = enc.EncodeString(n)
		_ = enc.EncodeString(si.Collections[n])
	}
}

func decodeSchema(d *crdt.Decoder) (schemaInfo, error) {
	var si schemaInfo
	n, err := d.ArrayLen(1 << 10)
	if err != nil {
		return si, err
	}
	if n < 3 {
		return si, decodeErrf("schema of %d elements, want 3", n)
	}
	if si.FP, err = d.String(maxFPBytes); err != nil {
		return si, err
	}
	strict, err := d.Uint()
	if err != nil {
		return si, err
	}
	si.Strict = strict != 0
	nc, err := d.ArrayLen(maxCollections)
	if err != nil {
		return si, err
	}
	si.Collections = make(map[string]string, nc)
	for range nc {
		m, err := d.ArrayLen(1 << 10)
		if err != nil {
			return si, err
		}
		if m < 2 {
			return si, decodeErrf("schema entry of %d elements", m)
		}
		name, err := d.String(128)
		if err != nil {
			return si, err
		}
		fp, err := d.String(maxFPBytes)
		if err != nil {
			return si, err
		}
		if err := d.Skip(m - 2); err != nil {
			return si, err
		}
		si.Collections[name] = fp
	}
	return si, d.Skip(n - 3)
}

type hello struct {
	Name    string
	Purpose purpose
	Label   string
	Version string
	Schema  schemaInfo
	// MaxMsg is the largest message the sender accepts (0: unknown).
	MaxMsg int
}

func encodeHello(h *hello) *msgBuf {
	m := newMsg(msgHello, 6)
	_ = m.enc.EncodeString(h.Name)
	_ = m.enc.EncodeUint(uint64(h.Purpose))
	_ = m.enc.EncodeString(h.Label)
	_ = m.enc.EncodeString(h.Version)
	encodeSchema(m.enc, &h.Schema)
	_ = m.enc.EncodeUint(uint64(max(h.MaxMsg, 0)))
	return m
}

// optMaxMsg reads the optional trailing max message size. A size no int
// can hold on a 32-bit platform is read as math.MaxInt32, far above any
// message limit, never converted (and wrapped) first.
func optMaxMsg(d *crdt.Decoder, present bool) (int, error) {
	if !present {
		return 0, nil
	}
	v, err := d.Uint()
	if err != nil {
		return 0, decodeWrap(err, "max message bytes")
	}
	return int(min(v, math.MaxInt32)), nil
}

func decodeHello(b []byte, lim crdt.Limits) (*hello, error) {
	d, rest, err := openMsg(b, lim, msgHello, 5)
	if err != nil {
		return nil, err
	}
	h := &hello{}
	if h.Name, err = d.String(maxNameBytes); err != nil {
		return nil, decodeWrap(err, "hello name")
	}
	p, err := d.Uint()
	if err != nil {
		return nil, decodeWrap(err, "hello purpose")
	}
	if p < uint64(purposeDeltas) || p > uint64(purposeBootstrap) {
		return nil, decodeErrf("unknown stream purpose %d", p)
	}
	h.Purpose = purpose(p)
	if h.Label, err = d.String(255); err != nil {
		return nil, decodeWrap(err, "hello label")
	}
	if h.Version, err = d.String(maxMetaField); err != nil {
		return nil, decodeWrap(err, "hello version")
	}
	if h.Schema, err = decodeSchema(d); err != nil {
		return nil, decodeWrap(err, "hello schema")
	}
	if h.MaxMsg, err = optMaxMsg(d, rest >= 6); err != nil {
		return nil, err
	}
	return h, d.Skip(rest - 6)
}

type helloAck struct {
	Name   string
	Status uint8
	Reason string
	Schema schemaInfo
	MaxMsg int
}

func encodeHelloAck(a *helloAck) *msgBuf {
	m := newMsg(msgHelloAck, 5)
	_ = m.enc.EncodeString(a.Name)
	_ = m.enc.EncodeUint(uint64(a.Status))
	_ = m.enc.EncodeString(a.Reason)
	encodeSchema(m.enc, &a.Schema)
	_ = m.enc.EncodeUint(uint64(max(a.MaxMsg, 0)))
	return m
}

func decodeHelloAck(b []byte, lim crdt.Limits) (*helloAck, error) {
	d, rest, err := openMsg(b, lim, msgHelloAck, 4)
	if err != nil {
		return nil, err
	}
	a := &helloAck{}
	if a.Name, err = d.String(maxNameBytes); err != nil {
		return nil, decodeWrap(err, "ack name")
	}
	st, err := d.Uint()
	if err != nil {
		return nil, decodeWrap(err, "ack status")
	}
	if st > ackRejected {
		return nil, decodeErrf("unknown ack status %d", st)
	}
	a.Status = uint8(st)
	if a.Reason, err = d.String(maxReasonBytes); err != nil {
		return nil, decodeWrap(err, "ack reason")
	}
	if a.Schema, err = decodeSchema(d); err != nil {
		return nil, decodeWrap(err, "ack schema")
	}
	if a.MaxMsg, err = optMaxMsg(d, rest >= 5); err != nil {
		return nil, err
	}
	return a, d.Skip(rest - 5)
}

// openMsg checks the envelope of b and that it is of type want with at
// least fields body elements; it returns the number of body elements.
func openMsg(b []byte, lim crdt.Limits, want crdt.MsgType, fields int) (*crdt.Decoder, int, error) {
	d, err := crdt.NewDecoder(b, lim)
	if err != nil {
		return nil, 0, err
	}
	t, rest, err := d.Envelope()
	if err != nil {
		return nil, 0, err
	}
	if t != want {
		return nil, 0, decodeErrf("message type %d, want %d", t, want)
	}
	if rest < fields {
		return nil, 0, decodeErrf("message type %d with %d fields, want %d", t, rest, fields)
	}
	return d, rest, nil
}

// deltasHeader is the fixed prefix of a deltas message: a 4-element array,
// the wire version, the type and the flags.
func appendDeltasHeader(b []byte, flags uint8) []byte {
	return append(b, 0x94, crdt.WireVersion, byte(msgDeltas), flags&0x7f)
}

func decodeDeltas(b []byte, lim crdt.Limits) (flags uint64, d *crdt.Delta, err error) {
	dec, rest, err := openMsg(b, lim, msgDeltas, 2)
	if err != nil {
		return 0, nil, err
	}
	if flags, err = dec.Uint(); err != nil {
		return 0, nil, decodeWrap(err, "deltas flags")
	}
	if d, err = dec.Fragments(); err != nil {
		return 0, nil, decodeWrap(err, "deltas")
	}
	return flags, d, dec.Skip(rest - 2)
}

// syncTurn is one message of an anti-entropy session.
type syncTurn struct {
	Flags   uint64
	Entries []rangeEntry
	Wants   []want
	Records *crdt.Delta
}

func (t *syncTurn) empty() bool {
	return len(t.Entries) == 0 && len(t.Wants) == 0 && t.Records.Len() == 0
}

func encodeSync(flags uint64, ranges []byte, wants []byte, recs *fragments) *msgBuf {
	m := newMsg(msgSync, 4)
	_ = m.enc.EncodeUint(flags)
	_ = m.enc.EncodeBytes(bin(ranges))
	_ = m.enc.EncodeBytes(bin(wants))
	if recs == nil {
		recs = &fragments{}
	}
	m.writeFragments(recs)
	return m
}

func decodeSync(b []byte, lim crdt.Limits) (*syncTurn, error) {
	d, rest, err := openMsg(b, lim, msgSync, 4)
	if err != nil {
		return nil, err
	}
	t := &syncTurn{}
	if t.Flags, err = d.Uint(); err != nil {
		return nil, decodeWrap(err, "sync flags")
	}
	rb, err := optBytes(d, lim.MaxMessageBytes)
	if err != nil {
		return nil, decodeWrap(err, "sync ranges")
	}
	if t.Entries, err = decodeRanges(rb, maxSyncEntries, maxSyncItems); err != nil {
		return nil, decodeWrap(err, "sync ranges")
	}
	wb, err := optBytes(d, lim.MaxMessageBytes)
	if err != nil {
		return nil, decodeWrap(err, "sync wants")
	}
	if t.Wants, err = decodeWants(wb, maxWants); err != nil {
		return nil, decodeWrap(err, "sync wants")
	}
	if t.Records, err = d.Fragments(); err != nil {
		return nil, decodeWrap(err, "sync records")
	}
	return t, d.Skip(rest - 4)
}

func encodeBootstrapReq(from crdt.ID) *msgBuf {
	m := newMsg(msgBootstrapReq, 1)
	_ = m.enc.EncodeBytes(bin([]byte(from)))
	return m
}

func decodeBootstrapReq(b []byte, lim crdt.Limits) (crdt.ID, error) {
	d, rest, err := openMsg(b, lim, msgBootstrapReq, 1)
	if err != nil {
		return "", err
	}
	from, err := optBytes(d, maxIDBytes)
	if err != nil {
		return "", decodeWrap(err, "bootstrap from")
	}
	return crdt.ID(from), d.Skip(rest - 1)
}

func encodeBootstrapChunk(next crdt.ID, done bool, recs *fragments) *msgBuf {
	m := newMsg(msgBootstrapChunk, 3)
	_ = m.enc.EncodeBytes(bin([]byte(next)))
	dn := uint64(0)
	if done {
		dn = 1
	}
	_ = m.enc.EncodeUint(dn)
	m.writeFragments(recs)
	return m
}

func decodeBootstrapChunk(b []byte, lim crdt.Limits) (next crdt.ID, done bool, d *crdt.Delta, err error) {
	dec, rest, err := openMsg(b, lim, msgBootstrapChunk, 3)
	if err != nil {
		return "", false, nil, err
	}
	nb, err := optBytes(dec, maxIDBytes)
	if err != nil {
		return "", false, nil, decodeWrap(err, "bootstrap next")
	}
	dn, err := dec.Uint()
	if err != nil {
		return "", false, nil, decodeWrap(err, "bootstrap done")
	}
	if d, err = dec.Fragments(); err != nil {
		return "", false, nil, decodeWrap(err, "bootstrap records")
	}
	return crdt.ID(nb), dn != 0, d, dec.Skip(rest - 3)
}

// nodeMeta is what a node advertises in memberlist's node meta (at most
// 512 bytes, which Config.Validate's field limits guarantee).
type nodeMeta struct {
	API     string
	Data    string
	Version string
	Schema  string
	// Leaving is set by Leave just before memberlist's leave, so that
	// peers tell a member that left from one that failed (memberlist does
	// not say which in its callbacks).
	Leaving bool
	// Replica is the node's replica ID in hex ("" when not configured). It
	// came after Leaving: nodes that do not send it send 6 elements, and
	// nodes that do not read it skip it.
	Replica string
}

const metaVersion = 1

func encodeMeta(nm *nodeMeta) []byte {
	m := msgPool.Get().(*msgBuf)
	m.buf.Reset()
	_ = m.enc.EncodeArrayLen(7)
	_ = m.enc.EncodeUint(metaVersion)
	_ = m.enc.EncodeString(nm.API)
	_ = m.enc.EncodeString(nm.Data)
	_ = m.enc.EncodeString(nm.Version)
	_ = m.enc.EncodeString(nm.Schema)
	leaving := uint64(0)
	if nm.Leaving {
		leaving = 1
	}
	_ = m.enc.EncodeUint(leaving)
	_ = m.enc.EncodeString(nm.Replica)
	out := slices.Clone(m.buf.Bytes())
	m.free()
	return out
}

func decodeMeta(b []byte) (nodeMeta, error) {
	var nm nodeMeta
	lim := crdt.DefaultLimits()
	lim.MaxMessageBytes = 1024
	d, err := crdt.NewDecoder(b, lim)
	if err != nil {
		return nm, err
	}
	n, err := d.ArrayLen(64)
	if err != nil {
		return nm, err
	}
	if n < 5 {
		return nm, decodeErrf("node meta of %d elements, want 5", n)
	}
	v, err := d.Uint()
	if err != nil {
		return nm, err
	}
	if v != metaVersion {
		return nm, decodeErrf("node meta version %d, want %d", v, metaVersion)
	}
	for _, f := range []*string{&nm.API, &nm.Data, &nm.Version, &nm.Schema} {
		if *f, err = d.String(maxMetaField); err != nil {
			return nm, decodeWrap(err, "node meta")
		}
	}
	if n < 6 {
		return nm, nil
	}
	leaving, err := d.Uint()
	if err != nil {
		return nm, decodeWrap(err, "node meta")
	}
	nm.Leaving = leaving != 0
	if n < 7 {
		return nm, nil
	}
	if nm.Replica, err = d.String(maxMetaField); err != nil {
		return nm, decodeWrap(err, "node meta")
	}
	return nm, d.Skip(n - 7)
}
