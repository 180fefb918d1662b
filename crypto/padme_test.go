package crypto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	mrand "math/rand/v2"
	"testing"
)

// padmeRef is a deliberately naive PADME, written from the paper's
// pseudocode with loops instead of bit tricks.
func padmeRef(l uint64) uint64 {
	if l < 2 {
		return l
	}
	e := 0
	for v := l; v > 1; v >>= 1 {
		e++
	}
	s := 1
	for v := e; v > 1; v >>= 1 {
		s++
	}
	lastBits := e - s
	step := uint64(1) << lastBits
	if l%step == 0 {
		return l
	}
	return l - l%step + step
}

func TestPadmeLenKnownValues(t *testing.T) {
	// Computed by hand from the paper's definition (and by a Python one-liner).
	for n, want := range map[uint64]uint64{
		0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 7: 7, 8: 8, 9: 10, 15: 16, 16: 16, 17: 18, 31: 32, 32: 32,
		33: 36, 63: 64, 64: 64, 65: 72, 100: 104, 127: 128, 128: 128, 129: 144, 255: 256, 256: 256,
		257: 272, 1000: 1024, 4096: 4096, 4097: 4352, 65537: 67584, 1 << 20: 1 << 20, 1<<20 + 3: 1081344,
		1e9: 1006632960,
	} {
		if got := PadmeLen(n); got != want {
			t.Errorf("PadmeLen(%d) = %d, want %d", n, got, want)
		}
	}
}

// padmeCheck checks every property of one length.
func padmeCheck(t *testing.T, n uint64, maxOverhead *float64) {
	p := PadmeLen(n)
	if p < n {
		t.Fatalf("PadmeLen(%d) = %d is smaller", n, p)
	}
	if want := padmeRef(n); n < math.MaxUint64-(1<<58) && p != want {
		t.Fatalf("PadmeLen(%d) = %d, reference %d", n, p, want)
	}
	if PadmeLen(p) != p {
		t.Fatalf("PadmeLen(%d) = %d is not a fixed point", n, p)
	}
	if n >= 2 {
		e := bits.Len64(n) - 1
		s := bits.Len64(uint64(e))
		if bits.TrailingZeros64(p) < e-s && p != math.MaxUint64 {
			t.Fatalf("PadmeLen(%d) = %d keeps low bits", n, p)
		}
		// The top S bits are all that is kept: p has at most S+1 significant bits.
		if sig := bits.Len64(p) - bits.TrailingZeros64(p); p != math.MaxUint64 && sig > s+1 {
			t.Fatalf("PadmeLen(%d) = %d has %d significant bits, S = %d", n, p, sig, s)
		}
	}
	if n > 0 && p != math.MaxUint64 {
		o := float64(p-n) / float64(n)
		if o > 0.12 {
			t.Fatalf("PadmeLen(%d) = %d: overhead %.4f exceeds 12%%", n, p, o)
		}
		*maxOverhead = max(*maxOverhead, o)
	}
}

func TestPadmeLenProperties(t *testing.T) {
	var worst float64
	prev := uint64(0)
	for n := uint64(0); n <= 1<<20; n++ {
		padmeCheck(t, n, &worst)
		p := PadmeLen(n)
		if p < prev {
			t.Fatalf("PadmeLen is not monotone at %d", n)
		}
		prev = p
	}
	// Every power-of-two boundary up to 2^63, and around it.
	for k := 1; k < 64; k++ {
		b := uint64(1) << k
		for _, d := range []int64{-2, -1, 0, 1, 2, 3} {
			padmeCheck(t, uint64(int64(b)+d), &worst)
		}
	}
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 100_000 {
		padmeCheck(t, r.Uint64()>>r.IntN(64), &worst)
	}
	// The worst case is n = 129 (E = 7, S = 3: 15/129).
	if math.Abs(worst-15.0/129) > 1e-12 {
		t.Errorf("worst overhead %.6f, want 15/129 = %.6f", worst, 15.0/129)
	}
	// The top of the range saturates instead of wrapping to 0.
	for _, n := range []uint64{math.MaxUint64, math.MaxUint64 - 1, math.MaxUint64 - (1 << 57) + 2} {
		if got := PadmeLen(n); got != math.MaxUint64 {
			t.Errorf("PadmeLen(%#x) = %#x, want saturation", n, got)
		}
	}
	if n := uint64(math.MaxUint64 - (1 << 57) + 1); PadmeLen(n) != n {
		t.Errorf("PadmeLen(%#x) = %#x, want itself (the largest representable padded length)", n, PadmeLen(n))
	}
}

func TestPadUnpadRoundTrip(t *testing.T) {
	for _, n := range append(sizes, 2, 3, 4, 5, 28, 29, 123) {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := pattern(n)
			p := Pad(nil, b)
			if len(p) != PaddedSize(n) || uint64(len(p)) != PadmeLen(uint64(n)+PadPrefixSize) {
				t.Fatalf("padded length %d, want %d", len(p), PaddedSize(n))
			}
			if binary.BigEndian.Uint32(p) != uint32(n) {
				t.Fatal("wrong length prefix")
			}
			got, err := Unpad(p)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, b) {
				t.Fatal("round trip changed the data")
			}
			withPrefix := Pad([]byte("dst"), b)
			if !bytes.Equal(withPrefix[:3], []byte("dst")) || !bytes.Equal(withPrefix[3:], p) {
				t.Fatal("Pad does not append to dst")
			}
			// Pad overwrites stale bytes in dst's spare capacity with zeros.
			dirty := bytes.Repeat([]byte{0xff}, len(p))
			if !bytes.Equal(Pad(dirty[:0], b), p) {
				t.Fatal("Pad left stale bytes in the padding")
			}
		})
	}
}

func TestUnpadIsStrict(t *testing.T) {
	for _, n := range []int{0, 1, 5, 17, 100, 4097} {
		p := Pad(nil, pattern(n))
		// Every padding byte must be zero.
		for i := PadPrefixSize + n; i < len(p); i++ {
			if _, err := Unpad(flip(p, i, 1)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("size %d: non-zero padding byte %d accepted", n, i)
			}
		}
		// Any change of the length prefix is caught, except where the
		// changed length happens to pad to the same size and the bytes
		// it uncovers or covers are zero: then the input is simply
		// another valid padding. Check that claim exactly.
		for i := range PadPrefixSize {
			for _, x := range []byte{0x01, 0x02, 0x80} {
				q := flip(p, i, x)
				got, err := Unpad(q)
				if err == nil && !bytes.Equal(Pad(nil, got), q) {
					t.Fatalf("size %d: prefix byte %d ^ %#x accepted a non-canonical padding", n, i, x)
				}
			}
		}
		for l := range len(p) {
			if _, err := Unpad(p[:l]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("size %d: truncated to %d accepted", n, l)
			}
		}
		// Extra zero bytes make the size non-canonical.
		for _, extra := range []int{1, 8, len(p)} {
			if _, err := Unpad(append(append([]byte(nil), p...), make([]byte, extra)...)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("size %d: %d extra zero bytes accepted", n, extra)
			}
		}
	}
	huge := make([]byte, 8)
	binary.BigEndian.PutUint32(huge, MaxPadInput+1)
	if _, err := Unpad(huge); !errors.Is(err, ErrMalformed) {
		t.Fatalf("length above MaxPadInput: %v", err)
	}
	binary.BigEndian.PutUint32(huge, math.MaxUint32)
	if _, err := Unpad(huge); !errors.Is(err, ErrMalformed) {
		t.Fatalf("length 2^32-1: %v", err)
	}
	// The result is capped, so appending to it cannot overwrite the padding.
	p := Pad(nil, []byte("abcdefghi"))
	got, _ := Unpad(p)
	if cap(got) != len(got) {
		t.Fatal("Unpad's result has spare capacity over the padding")
	}
}
