package gossip

import (
	"bytes"
	"testing"
)

// FuzzDecodeHint: any payload either decodes to a hint whose encoding
// decodes to the same hint again, or is refused with an error; never a
// panic. (A payload with an extra "|" in a field is refused, never read
// as another table or id.)
func FuzzDecodeHint(f *testing.F) {
	f.Add([]byte("v1|42|routes|0b1d4c4e-5d0a-4a55-9f3f-0d7c4f1b2a11|create|node-1"))
	f.Add([]byte("v1|-1|routes|x|delete|n"))
	f.Add([]byte("v1|9223372036854775808|a|b|c|d"))
	f.Add([]byte("v2|1|a|b|c|d"))
	f.Add([]byte("v1|1|a|b|c|d|e"))
	f.Add(bytes.Repeat([]byte("|"), 300))
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := decodeHint(payload)
		if err != nil {
			return
		}
		if h.EventID < 0 {
			t.Fatalf("decoded a negative event id %d from %q", h.EventID, payload)
		}
		again, err := decodeHint(h.encode())
		if err != nil || again != h {
			t.Fatalf("%q decoded to %+v, whose encoding decodes to %+v, %v", payload, h, again, err)
		}
	})
}
