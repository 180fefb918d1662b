package deflate

// Constants of the deflate format (RFC 1951) and of the zlib/gzip encoders.
const (
	minMatch     = 3
	maxMatch     = 258
	minLookahead = maxMatch + minMatch + 1 // 262

	lengthCodes = 29
	literals    = 256
	lCodes      = literals + 1 + lengthCodes // 286
	dCodes      = 30
	blCodes     = 19
	heapSize    = 2*lCodes + 1
	maxBits     = 15
	maxBLBits   = 7
	endBlock    = 256

	rep3to6     = 16
	repz3to10   = 17
	repz11to138 = 18

	storedBlock  = 0
	staticTrees  = 1
	dynamicTrees = 2

	tooFar = 4096 // matches of length 3 further than this are dropped
)

var extraLBits = [lengthCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var extraDBits = [dCodes]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
var extraBLBits = [blCodes]uint8{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7}

// blOrder is the order in which the bit length code lengths are sent.
var blOrder = [blCodes]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

var (
	baseLength [lengthCodes]uint16
	baseDist   [dCodes]uint16
	lengthCode [maxMatch - minMatch + 1]uint8 // match length-3 → length code
	distCode   [512]uint8                     // see dCode

	distCodeOf [1 << 16]uint8 // distance minus one → distance code, without branches

	staticLTree [lCodes + 2]code
	staticDTree [dCodes]code
)

// code is a Huffman code: its bits (already bit-reversed for LSB-first
// output) and its length.
type code struct {
	bits uint16
	len  uint16
}

func init() {
	// Length codes: the same construction as RFC 1951 section 3.2.5.
	length := 0
	var c int
	for c = 0; c < lengthCodes-1; c++ {
		baseLength[c] = uint16(length)
		for n := 0; n < 1<<extraLBits[c]; n++ {
			lengthCode[length] = uint8(c)
			length++
		}
	}
	// Length 258 (index 255) is code 28; the loop above assigned it to 27
	// as well, and the last assignment wins as in the format's definition.
	lengthCode[length-1] = uint8(c)

	dist := 0
	for c = 0; c < 16; c++ {
		baseDist[c] = uint16(dist)
		for n := 0; n < 1<<extraDBits[c]; n++ {
			distCode[dist] = uint8(c)
			dist++
		}
	}
	dist >>= 7
	for ; c < dCodes; c++ {
		baseDist[c] = uint16(dist << 7)
		for n := 0; n < 1<<(extraDBits[c]-7); n++ {
			distCode[256+dist] = uint8(c)
			dist++
		}
	}

	for d := range distCodeOf {
		if d < 1<<15 {
			distCodeOf[d] = dCode(d)
		}
	}

	// The fixed literal/length code of RFC 1951 section 3.2.6.
	var count [maxBits + 1]int
	n := 0
	for ; n <= 143; n++ {
		staticLTree[n].len = 8
		count[8]++
	}
	for ; n <= 255; n++ {
		staticLTree[n].len = 9
		count[9]++
	}
	for ; n <= 279; n++ {
		staticLTree[n].len = 7
		count[7]++
	}
	for ; n <= 287; n++ {
		staticLTree[n].len = 8
		count[8]++
	}
	genCodes(staticLTree[:], lCodes+1, &count)
	for n := 0; n < dCodes; n++ {
		staticDTree[n] = code{bits: reverse(uint16(n), 5), len: 5}
	}
	initFixedDecoders()
}

// dCode maps a match distance minus one to its distance code.
func dCode(dist int) uint8 {
	if dist < 256 {
		return distCode[dist]
	}
	return distCode[256+(dist>>7)]
}

// reverse returns the low n bits of c in reverse order.
func reverse(c uint16, n int) uint16 {
	var r uint16
	for ; n > 0; n-- {
		r = r<<1 | c&1
		c >>= 1
	}
	return r
}

// genCodes assigns canonical codes to tree[0..maxCode] from their lengths,
// given the number of codes of each length.
func genCodes(tree []code, maxCode int, count *[maxBits + 1]int) {
	var next [maxBits + 1]uint16
	var c uint16
	for bits := 1; bits <= maxBits; bits++ {
		c = (c + uint16(count[bits-1])) << 1
		next[bits] = c
	}
	for n := 0; n <= maxCode; n++ {
		l := tree[n].len
		if l == 0 {
			continue
		}
		tree[n].bits = reverse(next[l], int(l))
		next[l]++
	}
}
