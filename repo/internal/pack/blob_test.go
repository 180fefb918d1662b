package pack

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestDecodeBlobEverySize: a blob or frame decodes whether or not its
// length is known (short entries do not say it). zstd leaves the content
// size out of frames under 256 bytes, so the decoder must not need it.
func TestDecodeBlobEverySize(t *testing.T) {
	for _, n := range []int{1, 2, 37, 100, 200, 255, 256, 257, 1000, 1024, 1025, 4096, 300 << 10, 1 << 20, 1<<20 + 1} {
		for _, data := range [][]byte{bytes.Repeat([]byte("night "), n/6+1)[:n], randBytes(uint64(n), n)} {
			padded := EncodeBlob(data)
			for _, rawLen := range []uint32{0, uint32(n)} {
				got, err := DecodeBlob(padded, ID{1}, rawLen, MaxFramePlain, nil)
				if err != nil {
					t.Fatalf("%d bytes, length %d given: %v", n, rawLen, err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("%d bytes, length %d given: decoded %d other bytes", n, rawLen, len(got))
				}
			}
			if _, err := DecodeBlob(padded, ID{1}, uint32(n)+1, MaxFramePlain, nil); !errors.Is(err, ErrBlob) {
				t.Fatalf("%d bytes decoded as %d: %v", n, n+1, err)
			}
		}
	}
}

// TestDecodeZstdWithoutSize: a frame that does not say its size (a
// streaming encoder's, not ours) decodes up to the limit and is refused
// past it.
func TestDecodeZstdWithoutSize(t *testing.T) {
	data := bytes.Repeat([]byte("the forum at night\n"), 3000)
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range bytes.SplitAfter(data, []byte("\n")) {
		if _, err := zw.Write(part); err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil { // blocks: the size is not known ahead
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("the streaming frame says its size (%v): the test needs one that does not", err)
	}
	padded := crypto.Pad(nil, append([]byte{FlagZstd}, buf.Bytes()...))
	got, err := DecodeBlob(padded, ID{2}, 0, chunk.MaxChunk, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decoded %d bytes of %d: %v", len(got), len(data), err)
	}
	if _, err := DecodeBlob(padded, ID{2}, 0, uint32(len(data)-1), nil); !errors.Is(err, ErrBlob) {
		t.Fatalf("a frame over the limit: %v", err)
	}
}
