package crypto

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// PadPrefixSize is the size of the length prefix [Pad] writes.
const PadPrefixSize = 4

// MaxPadInput is the largest input [Pad] accepts and the largest length
// [Unpad] believes. Chunks and metadata blobs are far smaller.
const MaxPadInput = 1 << 30

// PadmeLen returns the padded length of an n-byte object under PADME
// (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
// Communication with PURBs", PETS 2019): with E = floor(log2 n) and
// S = floor(log2 E) + 1, the low E-S bits of n are rounded up to zero.
// A padded length reveals only O(log log n) bits about n, and the overhead
// (PadmeLen(n)-n)/n is below 12% (the worst case is n = 129 → 144, 11.6%).
//
// PadmeLen(0) = 0 and PadmeLen(1) = 1. For n above
// 2^64 - 2^57 the result does not fit in a uint64 and PadmeLen returns
// math.MaxUint64; such lengths are never padded ([MaxPadInput]).
func PadmeLen(n uint64) uint64 {
	if n < 2 {
		return n
	}
	e := uint(bits.Len64(n) - 1)     // floor(log2 n), >= 1
	s := uint(bits.Len64(uint64(e))) // floor(log2 e) + 1
	mask := uint64(1)<<(e-s) - 1
	sum, carry := bits.Add64(n, mask, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return sum &^ mask
}

// PaddedSize returns the length of Pad's output for an n-byte input:
// PadmeLen(PadPrefixSize + n).
func PaddedSize(n int) int {
	return int(PadmeLen(uint64(PadPrefixSize) + uint64(n)))
}

// Pad appends the padded form of b to dst and returns the extended slice:
//
//	length  uint32, big-endian: len(b)
//	b
//	zeros   up to PadmeLen(4 + len(b)) bytes in all
//
// Blobs are padded before they are sealed so that stored sizes do not give
// away chunk lengths (which leak keyed-CDC secrets). It panics if len(b)
// exceeds [MaxPadInput].
func Pad(dst, b []byte) []byte {
	if len(b) > MaxPadInput {
		panic(fmt.Sprintf("crypto: Pad: input of %d bytes exceeds MaxPadInput", len(b)))
	}
	total := PaddedSize(len(b))
	ret, out := sliceForAppend(dst, total)
	binary.BigEndian.PutUint32(out, uint32(len(b)))
	n := copy(out[PadPrefixSize:], b)
	clear(out[PadPrefixSize+n:])
	return ret
}

// Unpad checks that b is exactly what [Pad] writes for some input and
// returns that input, a subslice of b. It is strict: the length must not
// exceed [MaxPadInput] or the data, b must be exactly
// PadmeLen(4 + length) bytes long, and every padding byte must be zero.
// Errors wrap [ErrMalformed].
func Unpad(b []byte) ([]byte, error) {
	if len(b) < PadPrefixSize {
		return nil, malformed("padding", "%d bytes is shorter than the length prefix", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if n > MaxPadInput {
		return nil, malformed("padding", "length %d exceeds %d", n, MaxPadInput)
	}
	end := PadPrefixSize + int(n)
	if end > len(b) {
		return nil, malformed("padding", "length %d exceeds the %d bytes present", n, len(b)-PadPrefixSize)
	}
	if want := PaddedSize(int(n)); len(b) != want {
		return nil, malformed("padding", "padded size is %d, want %d for length %d", len(b), want, n)
	}
	var or byte
	for _, c := range b[end:] {
		or |= c
	}
	if or != 0 {
		return nil, malformed("padding", "padding bytes are not zero")
	}
	return b[PadPrefixSize:end:end], nil
}
