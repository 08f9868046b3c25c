package gossip

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/errors"
)

// Data streams share memberlist's listener: the transport hands every
// incoming stream to the mux, which routes those starting with streamMagic
// to the Node and the rest to memberlist. memberlist's streams start with a
// message type (0 to 13) or its label marker (244), never with 'L'.
//
// A stream starts with a cleartext preamble in each direction:
//
//	magic "LTC2", nonce [16]byte, flags byte (1 = encrypted)
//
// Encrypted frames are sealed with AES-256-GCM under a key of their own
// stream and direction:
//
//	stream key = HKDF-SHA256(secret: a ring key, salt: dialer nonce ||
//	             acceptor nonce, info: "lattice-gossip/2 stream" 0 label 0 direction)
//
// and the frame's sequence number as the GCM nonce, so a nonce is never
// reused under a key whatever the traffic (random nonces under one
// long-lived key would collide after about 2^32 frames cluster-wide).
// memberlist gets its own key from each ring key (HKDF with another info,
// memberlistKey), never the ring key itself. The additional data binds the
// label, both nonces, the direction and the sequence number as well, so a
// frame cannot be replayed, reordered or moved to another stream or
// cluster, and a peer without a key in the ring can neither read nor forge
// one. The sender seals with the ring's primary key as of each frame and
// the receiver tries every key of the ring, so a key rotation reaches
// running streams at the next frame. Frames are
//
//	length uint32 (big endian), body
//	body = message                          (cleartext)
//	body = version(2) ciphertext+tag[16]    (encrypted)
//
// and every length is checked against its bound before any allocation.
// Version 2 (magic "LTC2") does not interoperate with version 1 ("LTC1"):
// upgrade every node of a cluster together.
var streamMagic = [4]byte{'L', 'T', 'C', '2'}

const (
	nonceLen       = 16
	preambleLen    = len(streamMagic) + nonceLen + 1
	gcmNonceLen    = 12
	gcmTagLen      = 16
	cryptVersion   = 2
	cryptOverhead  = 1 + gcmTagLen
	aadPrefix      = "lattice-gossip/2\x00"
	streamInfo     = "lattice-gossip/2 stream"
	memberlistInfo = "lattice-gossip/2 memberlist"
)

// ErrRejected marks a data stream or handshake refused for a security
// reason: no common key, another label, a bad frame.
var ErrRejected = errors.New("gossip: peer rejected")

// errUnauthenticated marks, besides ErrRejected, a stream whose peer does
// not hold a key of the ring.
var errUnauthenticated = errors.New("gossip: peer not authenticated")

// ErrBusy marks a session a peer refused because it is at its MaxSyncs.
var ErrBusy = errors.New("gossip: peer busy")

// keyring holds the keys in use, primary first. Its content is replaced,
// never modified.
type keyring struct {
	keys [][]byte
}

func newKeyring(keys [][]byte) (*keyring, error) {
	kr := &keyring{}
	for _, k := range keys {
		if _, err := aes.NewCipher(k); err != nil {
			return nil, errors.Wrap(err, "aes key")
		}
		kr.keys = append(kr.keys, bytes.Clone(k))
	}
	return kr, nil
}

// memberlistKey derives the key memberlist uses from a ring key; it has the
// ring key's length, which memberlist requires.
func memberlistKey(k []byte) ([]byte, error) {
	mk, err := hkdf.Key(sha256.New, k, nil, memberlistInfo, len(k))
	return mk, errors.Wrap(err, "derive memberlist key")
}

// streamAEAD derives the AES-256-GCM cipher of one stream direction from a
// ring key.
func streamAEAD(k, dialerNonce, acceptorNonce []byte, label string, dir byte) (cipher.AEAD, error) {
	salt := append(slices.Clip(dialerNonce), acceptorNonce...)
	info := streamInfo + "\x00" + label + "\x00" + string(dir)
	sk, err := hkdf.Key(sha256.New, k, salt, info, 32)
	if err != nil {
		return nil, errors.Wrap(err, "derive stream key")
	}
	b, err := aes.NewCipher(sk)
	if err != nil {
		return nil, errors.Wrap(err, "aes key")
	}
	g, err := cipher.NewGCM(b)
	return g, errors.Wrap(err, "aes-gcm")
}

// dirKeys are one direction's ciphers, derived from one keyring.
type dirKeys struct {
	from  *keyring
	aeads []cipher.AEAD // in the ring's order
}

// dataConn is one data stream after its preamble.
type dataConn struct {
	c        net.Conn
	r        *bufio.Reader
	keys     *atomic.Pointer[keyring] // nil: cleartext
	aad      []byte                   // prefix; direction and sequence appended per frame
	dialerN  []byte
	accN     []byte
	label    string
	sendDir  byte
	recvDir  byte
	sendSeq  uint64
	recvSeq  uint64
	maxFrame int
	sendMax  int // the largest message the peer accepts
	timeout  time.Duration
	bytesIn  *atomic.Uint64
	bytesOut *atomic.Uint64

	wmu   sync.Mutex
	wbuf  []byte
	waad  []byte
	wkeys dirKeys // under wmu
	rbuf  []byte
	raad  []byte
	rkeys dirKeys // reader only
	plain []byte

	closeOnce sync.Once
}

type connOptions struct {
	keys     *atomic.Pointer[keyring]
	encrypt  bool
	label    string
	maxMsg   int
	timeout  time.Duration
	bytesIn  *atomic.Uint64
	bytesOut *atomic.Uint64
}

func writePreamble(c net.Conn, nonce []byte, encrypt bool) error {
	var b [preambleLen]byte
	copy(b[:], streamMagic[:])
	copy(b[len(streamMagic):], nonce)
	if encrypt {
		b[preambleLen-1] = 1
	}
	_, err := c.Write(b[:])
	return err
}

// readPreamble reads a preamble; skipFirst is set when the mux already
// consumed the first magic byte.
func readPreamble(r io.Reader, skipFirst bool) (nonce []byte, encrypted bool, err error) {
	var b [preambleLen]byte
	off := 0
	if skipFirst {
		b[0] = streamMagic[0]
		off = 1
	}
	if _, err := io.ReadFull(r, b[off:]); err != nil {
		return nil, false, err
	}
	if !bytes.Equal(b[:len(streamMagic)], streamMagic[:]) {
		return nil, false, errors.Mark(errors.New("not a lattice data stream"), ErrRejected)
	}
	if f := b[preambleLen-1]; f > 1 {
		return nil, false, errors.Mark(errors.Newf("unknown stream flags %d", f), ErrRejected)
	}
	return bytes.Clone(b[len(streamMagic) : len(streamMagic)+nonceLen]), b[preambleLen-1] == 1, nil
}

func newNonce() ([]byte, error) {
	n := make([]byte, nonceLen)
	if _, err := io.ReadFull(rand.Reader, n); err != nil {
		return nil, errors.Wrap(err, "stream nonce")
	}
	return n, nil
}

// clientHandshake runs the preamble on a dialed stream.
func clientHandshake(c net.Conn, o connOptions) (*dataConn, error) {
	mine, err := newNonce()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(o.timeout))
	if err := writePreamble(c, mine, o.encrypt); err != nil {
		return nil, errors.Wrap(err, "write preamble")
	}
	br := bufio.NewReaderSize(c, 64<<10)
	theirs, enc, err := readPreamble(br, false)
	if err != nil {
		return nil, errors.Wrap(err, "read preamble")
	}
	if enc != o.encrypt {
		return nil, encryptionMismatch(o.encrypt)
	}
	_ = c.SetDeadline(time.Time{})
	return newDataConn(c, br, o, mine, theirs, 'd', 'a'), nil
}

// serverHandshake runs the preamble on an accepted stream whose first byte
// the mux consumed. The deadline stays in force for the hello.
func serverHandshake(c net.Conn, o connOptions, deadline time.Time) (*dataConn, error) {
	_ = c.SetDeadline(deadline)
	br := bufio.NewReaderSize(c, 64<<10)
	theirs, enc, err := readPreamble(br, true)
	if err != nil {
		return nil, errors.Wrap(err, "read preamble")
	}
	if enc != o.encrypt {
		return nil, encryptionMismatch(o.encrypt)
	}
	mine, err := newNonce()
	if err != nil {
		return nil, err
	}
	if err := writePreamble(c, mine, o.encrypt); err != nil {
		return nil, errors.Wrap(err, "write preamble")
	}
	return newDataConn(c, br, o, theirs, mine, 'a', 'd'), nil
}

func encryptionMismatch(local bool) error {
	if local {
		return errors.Mark(errors.Mark(errors.WithHint(errors.New("peer sends in the clear but this node requires encryption"),
			"give every node the same key file"), ErrRejected), errUnauthenticated)
	}
	return errors.Mark(errors.Mark(errors.WithHint(errors.New("peer encrypts but this node has no key"),
		"give every node the same key file"), ErrRejected), errUnauthenticated)
}

func newDataConn(c net.Conn, br *bufio.Reader, o connOptions, dialerNonce, acceptorNonce []byte, send, recv byte) *dataConn {
	dc := &dataConn{
		c:        c,
		r:        br,
		sendDir:  send,
		recvDir:  recv,
		maxFrame: o.maxMsg + cryptOverhead,
		sendMax:  o.maxMsg,
		timeout:  o.timeout,
		bytesIn:  o.bytesIn,
		bytesOut: o.bytesOut,
	}
	if o.encrypt {
		dc.keys = o.keys
	}
	dc.dialerN, dc.accN, dc.label = dialerNonce, acceptorNonce, o.label
	aad := append([]byte(aadPrefix), o.label...)
	aad = append(aad, 0)
	aad = append(aad, dialerNonce...)
	dc.aad = append(aad, acceptorNonce...)
	return dc
}

func (dc *dataConn) frameAAD(buf *[]byte, dir byte, seq uint64) []byte {
	b := append((*buf)[:0], dc.aad...)
	b = append(b, dir)
	b = binary.BigEndian.AppendUint64(b, seq)
	*buf = b
	return b
}

// ErrTooLarge marks a message over MaxMessageBytes.
var ErrTooLarge = errors.New("gossip: message too large")

// write sends one message as a frame. Safe for concurrent use.
func (dc *dataConn) write(msg []byte) error {
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	if len(msg) > dc.sendMax {
		return errors.Mark(errors.Newf("message of %d bytes over the limit of %d", len(msg), dc.sendMax), ErrTooLarge)
	}
	b := append(dc.wbuf[:0], 0, 0, 0, 0)
	if dc.keys == nil {
		b = append(b, msg...)
	} else {
		kr := dc.keys.Load()
		if kr == nil || len(kr.keys) == 0 {
			return errors.AssertionFailedf("encrypted stream without keys")
		}
		if err := dc.derive(&dc.wkeys, kr, dc.sendDir, 1); err != nil {
			return err
		}
		b = append(b, cryptVersion)
		var nonce [gcmNonceLen]byte
		binary.BigEndian.PutUint64(nonce[4:], dc.sendSeq)
		b = dc.wkeys.aeads[0].Seal(b, nonce[:], msg, dc.frameAAD(&dc.waad, dc.sendDir, dc.sendSeq))
	}
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	dc.sendSeq++
	if dc.timeout > 0 {
		_ = dc.c.SetWriteDeadline(time.Now().Add(dc.timeout))
	}
	_, err := dc.c.Write(b)
	if cap(b) <= 1<<20 {
		dc.wbuf = b[:0]
	} else {
		dc.wbuf = nil
	}
	if err != nil {
		return errors.Wrap(err, "write frame")
	}
	if dc.bytesOut != nil {
		dc.bytesOut.Add(uint64(len(b)))
	}
	return nil
}

// maxHelloBytes bounds the first frame in each direction of a stream: the
// hello and its answer, read before the peer is known.
const maxHelloBytes = 64 << 10

// read returns the next message, waiting at most the IO timeout. The slice
// is valid until the next read.
func (dc *dataConn) read() ([]byte, error) {
	return dc.readFrame(dc.maxFrame, time.Now().Add(dc.timeout))
}

// readFrame returns the next message of at most limit bytes (framing and
// sealing included), failing once deadline passes.
func (dc *dataConn) readFrame(limit int, deadline time.Time) ([]byte, error) {
	_ = dc.c.SetReadDeadline(deadline)
	var h [4]byte
	if _, err := io.ReadFull(dc.r, h[:]); err != nil {
		return nil, err
	}
	n, err := frameLen(h, limit)
	if err != nil {
		return nil, err
	}
	b, err := dc.readBody(n)
	if err != nil {
		return nil, err
	}
	if dc.bytesIn != nil {
		dc.bytesIn.Add(uint64(4 + n))
	}
	seq := dc.recvSeq
	dc.recvSeq++
	if dc.keys == nil {
		return b, nil
	}
	if n < cryptOverhead || b[0] != cryptVersion {
		return nil, errors.Mark(errors.New("malformed encrypted frame"), ErrRejected)
	}
	kr := dc.keys.Load()
	if err := dc.derive(&dc.rkeys, kr, dc.recvDir, len(kr.keys)); err != nil {
		return nil, err
	}
	aad := dc.frameAAD(&dc.raad, dc.recvDir, seq)
	var nonce [gcmNonceLen]byte
	binary.BigEndian.PutUint64(nonce[4:], seq)
	ct := b[1:]
	// A failed Open may overwrite its output, so it must not be the
	// ciphertext while other keys remain to be tried.
	for _, a := range dc.rkeys.aeads {
		if pt, err := a.Open(dc.plain[:0], nonce[:], ct, aad); err == nil {
			if cap(pt) <= 1<<20 {
				dc.plain = pt[:0]
			}
			return pt, nil
		}
	}
	return nil, errors.Mark(errors.Mark(errors.WithHint(errors.New("frame does not decrypt with any key in the ring"),
		"give every node the same key file"), ErrRejected), errUnauthenticated)
}

// derive makes dk hold the ciphers of the first n keys of kr for one
// direction of this stream, unless it already does.
func (dc *dataConn) derive(dk *dirKeys, kr *keyring, dir byte, n int) error {
	if dk.from == kr {
		return nil
	}
	dk.from, dk.aeads = nil, dk.aeads[:0]
	for _, k := range kr.keys[:n] {
		a, err := streamAEAD(k, dc.dialerN, dc.accN, dc.label, dir)
		if err != nil {
			return err
		}
		dk.aeads = append(dk.aeads, a)
	}
	dk.from = kr
	return nil
}

// frameLen reads a frame header. The length is compared with limit as an
// unsigned value before it becomes an int, so that no length wraps negative
// where int has 32 bits.
func frameLen(h [4]byte, limit int) (int, error) {
	l := binary.BigEndian.Uint32(h[:])
	if limit < 0 || uint64(l) > uint64(limit) {
		return 0, errors.Mark(errors.Newf("frame of %d bytes over the limit of %d", l, limit), ErrTooLarge)
	}
	return int(l), nil
}

// readChunk is the most a frame's buffer grows ahead of the bytes that
// arrived: a peer that announces a large frame and sends nothing costs
// this much, not the announced length.
const readChunk = 64 << 10

// readBody reads n bytes into the stream's read buffer, growing it as the
// bytes arrive.
func (dc *dataConn) readBody(n int) ([]byte, error) {
	if cap(dc.rbuf) > 1<<20 {
		dc.rbuf = nil // do not keep a large buffer for the life of the stream
	}
	b := dc.rbuf[:0]
	for len(b) < n {
		step := min(n-len(b), max(len(b), readChunk))
		b = slices.Grow(b, step)
		k, err := io.ReadFull(dc.r, b[len(b):len(b)+step])
		b = b[:len(b)+k]
		if err != nil {
			dc.rbuf = b[:0]
			return nil, errors.Wrap(err, "read frame")
		}
	}
	dc.rbuf = b[:0]
	return b, nil
}

// peerMax lowers the send limit to what the peer said it accepts.
func (dc *dataConn) peerMax(m int) {
	if m > 0 && m < dc.sendMax {
		dc.sendMax = m
	}
}

func (dc *dataConn) close() {
	dc.closeOnce.Do(func() { _ = dc.c.Close() })
}
