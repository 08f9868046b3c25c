package crdt

import (
	"math"
	"testing"
)

// FuzzKeyValidate checks that the decoders' allocation-free key check
// accepts exactly the keys that Values decodes.
func FuzzKeyValidate(f *testing.F) {
	for _, k := range []Key{
		MustKey(Int(-1), String("a\x00b"), Bool(true)),
		MustKey(Float(math.NaN()), Bytes([]byte{0, 0xff}), TimeUnix(-5, 7)),
		MustKey(Float(math.Inf(-1)), Float(0.5)),
	} {
		f.Add([]byte(k))
		f.Add([]byte(k[:len(k)-1]))
	}
	f.Add([]byte("\x04\xff\xf0\x00\x00\x00\x00\x0a\xbc"))
	f.Add([]byte("\x07\x80\x00\x00\x00\x00\x00\x00\x00\x3b\x9a\xca\x00"))
	f.Add([]byte("\x05a\x00\x07"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Key(b).Values()
		verr := Key(b).Validate()
		if (err == nil) != (verr == nil) {
			t.Fatalf("%x: Values error %v, validate error %v", b, err, verr)
		}
	})
}
