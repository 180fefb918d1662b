package deflate

import (
	"errors"
	"fmt"
)

// parsedBlock is one block of an original deflate stream, as far as the
// identification needs it.
type parsedBlock struct {
	stored  bool
	fixed   bool
	final   bool
	nsyms   int // symbols in the block, without the end-of-block code
	symOff  int // index of its first symbol in parsed.syms
	inLen   int // decompressed bytes
	outOff  int // offset of its first decompressed byte
	bitEnd  int // bit position in the compressed prefix just after it
	maxDist int
	dist1   bool // every match has distance 1
}

// parsed is the decoded head of a deflate stream.
type parsed struct {
	blocks []parsedBlock
	syms   []uint32 // symbols of Huffman blocks, encoded as for compressBlock
	out    []byte   // decompressed bytes of the complete blocks
	end    bool     // the final block was decoded
	// stopped tells why decoding ended before the final block:
	// errTruncated (the prefix ended), errOutLimit, or a format error.
	stopped error
}

var (
	errTruncated = errors.New("deflate: stream truncated")
	errOutLimit  = errors.New("deflate: output limit reached")
	// ErrCorrupt reports a deflate stream that breaks the format.
	ErrCorrupt = errors.New("deflate: corrupt stream")
)

type bitReader struct {
	src   []byte
	pos   int // next byte
	acc   uint64
	nbits uint
}

func (r *bitReader) need(n uint) bool {
	for r.nbits < n {
		if r.pos >= len(r.src) {
			return false
		}
		r.acc |= uint64(r.src[r.pos]) << r.nbits
		r.pos++
		r.nbits += 8
	}
	return true
}

func (r *bitReader) bits(n uint) (uint32, bool) {
	if !r.need(n) {
		return 0, false
	}
	v := uint32(r.acc & (1<<n - 1))
	r.acc >>= n
	r.nbits -= n
	return v, true
}

// bitPos is the number of bits consumed.
func (r *bitReader) bitPos() int { return r.pos*8 - int(r.nbits) }

// huffDecoder decodes one canonical Huffman code by table lookup.
type huffDecoder struct {
	table   []uint32 // index: next tableBits bits; value: sym<<4 | len
	maxLen  uint
	long    map[uint32]uint32 // (len<<16 | reversed code) → sym, for codes longer than tableBits
	minLong uint
}

const tableBits = 10

func newHuffDecoder(lengths []uint8) (*huffDecoder, error) {
	var count [maxBits + 1]int
	maxLen := uint(0)
	for _, l := range lengths {
		if l > 0 {
			count[l]++
			maxLen = max(maxLen, uint(l))
		}
	}
	if maxLen == 0 {
		return &huffDecoder{}, nil
	}
	// Reject oversubscribed codes; incomplete ones are allowed (zlib too
	// accepts a single code of length 1).
	left := 1
	for l := 1; l <= maxBits; l++ {
		left <<= 1
		left -= count[l]
		if left < 0 {
			return nil, fmt.Errorf("%w: oversubscribed Huffman code", ErrCorrupt)
		}
	}
	var next [maxBits + 2]uint32
	c := uint32(0)
	for l := 1; l <= maxBits; l++ {
		c = (c + uint32(count[l-1])) << 1
		next[l] = c
	}
	d := &huffDecoder{table: make([]uint32, 1<<tableBits), maxLen: maxLen}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		code := uint32(reverse(uint16(next[l]), int(l)))
		next[l]++
		if uint(l) <= tableBits {
			for i := code; i < 1<<tableBits; i += 1 << l {
				d.table[i] = uint32(sym)<<4 | uint32(l)
			}
		} else {
			if d.long == nil {
				d.long = map[uint32]uint32{}
				d.minLong = uint(l)
			}
			d.minLong = min(d.minLong, uint(l))
			d.long[uint32(l)<<16|code] = uint32(sym)
		}
	}
	return d, nil
}

func (d *huffDecoder) decode(r *bitReader) (int, error) {
	if d.maxLen == 0 {
		return 0, fmt.Errorf("%w: use of an empty Huffman code", ErrCorrupt)
	}
	r.need(d.maxLen) // may be short at the end of the prefix
	peek := uint32(r.acc)
	if e := d.table[peek&(1<<tableBits-1)]; e != 0 {
		l := uint(e & 15)
		if l > r.nbits {
			return 0, errTruncated
		}
		r.acc >>= l
		r.nbits -= l
		return int(e >> 4), nil
	}
	for l := max(d.minLong, tableBits+1); l <= d.maxLen; l++ {
		if l > r.nbits {
			return 0, errTruncated
		}
		if sym, ok := d.long[uint32(l)<<16|peek&(1<<l-1)]; ok {
			r.acc >>= l
			r.nbits -= l
			return int(sym), nil
		}
	}
	if r.nbits < d.maxLen {
		return 0, errTruncated
	}
	return 0, fmt.Errorf("%w: invalid Huffman code", ErrCorrupt)
}

var fixedLit, fixedDist *huffDecoder

// initFixedDecoders builds the decoders of the fixed code; tables.go's
// init calls it once the fixed code exists.
func initFixedDecoders() {
	var l [288]uint8
	for i := range l {
		l[i] = uint8(staticLTree[i].len)
	}
	fixedLit, _ = newHuffDecoder(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist, _ = newHuffDecoder(d[:])
}

// parseStream decodes src, the head (or all) of a raw deflate stream, into
// blocks and symbols. It stops at the end of the final block, at the end of
// src, or once maxOut decompressed bytes are reached; only complete blocks
// are kept.
func parseStream(src []byte, maxOut int) *parsed {
	p := &parsed{}
	r := &bitReader{src: src}
	for {
		blk, err := p.parseBlock(r, maxOut)
		if err != nil {
			p.stopped = err
			return p
		}
		p.blocks = append(p.blocks, blk)
		if blk.final {
			p.end = true
			return p
		}
	}
}

// parseBlock decodes the block at r, appending its bytes to p.out and its
// symbols to p.syms. On an error nothing of the block is kept.
func (p *parsed) parseBlock(r *bitReader, maxOut int) (parsedBlock, error) {
	symStart, outStart := len(p.syms), len(p.out)
	blk, err := p.decodeBlock(r, maxOut)
	if err != nil {
		p.syms, p.out = p.syms[:symStart], p.out[:outStart]
		return parsedBlock{}, err
	}
	return blk, nil
}

// decodeBlock decodes the block header at r, then the block's stored
// bytes or Huffman-coded symbols. On an error it may leave part of the
// block in p: parseBlock drops it.
func (p *parsed) decodeBlock(r *bitReader, maxOut int) (parsedBlock, error) {
	hdr, ok := r.bits(3)
	if !ok {
		return parsedBlock{}, errTruncated
	}
	blk := parsedBlock{final: hdr&1 != 0, symOff: len(p.syms), outOff: len(p.out), dist1: true}
	var lit, dist *huffDecoder
	switch hdr >> 1 {
	case storedBlock:
		blk.stored = true
		if err := p.storedBytes(r, maxOut); err != nil {
			return parsedBlock{}, err
		}
		blk.inLen = len(p.out) - blk.outOff
		blk.bitEnd = r.bitPos()
		return blk, nil
	case staticTrees:
		blk.fixed = true
		lit, dist = fixedLit, fixedDist
	case dynamicTrees:
		var err error
		lit, dist, err = readDynamicHeader(r)
		if err != nil {
			return parsedBlock{}, err
		}
	default:
		return parsedBlock{}, fmt.Errorf("%w: reserved block type", ErrCorrupt)
	}
	var err error
	if blk.maxDist, blk.dist1, err = p.huffmanSymbols(r, lit, dist, maxOut); err != nil {
		return parsedBlock{}, err
	}
	blk.nsyms = len(p.syms) - blk.symOff
	blk.inLen = len(p.out) - blk.outOff
	blk.bitEnd = r.bitPos()
	return blk, nil
}

// storedBytes reads a stored block after its header: the length and its
// complement at the next byte boundary, then the bytes, appended to p.out.
func (p *parsed) storedBytes(r *bitReader, maxOut int) error {
	r.acc >>= r.nbits % 8
	r.nbits -= r.nbits % 8
	v, ok := r.bits(32)
	if !ok {
		return errTruncated
	}
	n := int(v & 0xffff)
	if uint16(v>>16) != ^uint16(n) {
		return fmt.Errorf("%w: stored block length check", ErrCorrupt)
	}
	if len(p.out)+n > maxOut {
		return errOutLimit
	}
	for i := 0; i < n; i++ {
		b, ok := r.bits(8)
		if !ok {
			return errTruncated
		}
		p.out = append(p.out, byte(b))
	}
	return nil
}

// huffmanSymbols decodes the symbols of a Huffman block with the codes lit
// and dist up to its end-of-block code, appending them to p.syms and the
// bytes they make to p.out. It returns the block's longest match distance
// and whether every match has distance 1.
func (p *parsed) huffmanSymbols(r *bitReader, lit, dist *huffDecoder, maxOut int) (maxDist int, dist1 bool, err error) {
	dist1 = true
	for {
		sym, err := lit.decode(r)
		if err != nil {
			return 0, false, err
		}
		if sym < 256 {
			if len(p.out) >= maxOut {
				return 0, false, errOutLimit
			}
			p.out = append(p.out, byte(sym))
			p.syms = append(p.syms, uint32(sym))
			continue
		}
		if sym == endBlock {
			return maxDist, dist1, nil
		}
		sym -= literals + 1
		if sym >= lengthCodes {
			return 0, false, fmt.Errorf("%w: invalid length code", ErrCorrupt)
		}
		extra, ok := r.bits(uint(extraLBits[sym]))
		if !ok {
			return 0, false, errTruncated
		}
		lc := int(baseLength[sym]) + int(extra)
		if sym == lengthCodes-1 {
			lc = maxMatch - minMatch
		}
		dsym, err := dist.decode(r)
		if err != nil {
			return 0, false, err
		}
		if dsym >= dCodes {
			return 0, false, fmt.Errorf("%w: invalid distance code", ErrCorrupt)
		}
		dextra, ok := r.bits(uint(extraDBits[dsym]))
		if !ok {
			return 0, false, errTruncated
		}
		d := int(baseDist[dsym]) + int(dextra) + 1
		if d > len(p.out) {
			return 0, false, fmt.Errorf("%w: distance too far back", ErrCorrupt)
		}
		length := lc + minMatch
		if len(p.out)+length > maxOut {
			return 0, false, errOutLimit
		}
		for i := 0; i < length; i++ {
			p.out = append(p.out, p.out[len(p.out)-d])
		}
		p.syms = append(p.syms, uint32(d)<<16|uint32(lc))
		maxDist = max(maxDist, d)
		if d != 1 {
			dist1 = false
		}
	}
}

func readDynamicHeader(r *bitReader) (lit, dist *huffDecoder, err error) {
	v, ok := r.bits(14)
	if !ok {
		return nil, nil, errTruncated
	}
	nlit := int(v&31) + 257
	ndist := int(v>>5&31) + 1
	nclen := int(v>>10) + 4
	if nlit > 286 || ndist > 30 {
		return nil, nil, fmt.Errorf("%w: too many codes", ErrCorrupt)
	}
	var clen [blCodes]uint8
	for i := 0; i < nclen; i++ {
		l, ok := r.bits(3)
		if !ok {
			return nil, nil, errTruncated
		}
		clen[blOrder[i]] = uint8(l)
	}
	cl, err := newHuffDecoder(clen[:])
	if err != nil {
		return nil, nil, err
	}
	lengths := make([]uint8, nlit+ndist)
	for i := 0; i < len(lengths); {
		sym, err := cl.decode(r)
		if err != nil {
			return nil, nil, err
		}
		var rep int
		var val uint8
		switch {
		case sym < 16:
			lengths[i] = uint8(sym)
			i++
			continue
		case sym == 16:
			if i == 0 {
				return nil, nil, fmt.Errorf("%w: repeat with no previous length", ErrCorrupt)
			}
			x, ok := r.bits(2)
			if !ok {
				return nil, nil, errTruncated
			}
			rep, val = 3+int(x), lengths[i-1]
		case sym == 17:
			x, ok := r.bits(3)
			if !ok {
				return nil, nil, errTruncated
			}
			rep = 3 + int(x)
		default:
			x, ok := r.bits(7)
			if !ok {
				return nil, nil, errTruncated
			}
			rep = 11 + int(x)
		}
		if i+rep > len(lengths) {
			return nil, nil, fmt.Errorf("%w: code lengths overflow", ErrCorrupt)
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[endBlock] == 0 {
		return nil, nil, fmt.Errorf("%w: no end-of-block code", ErrCorrupt)
	}
	if lit, err = newHuffDecoder(lengths[:nlit]); err != nil {
		return nil, nil, err
	}
	if dist, err = newHuffDecoder(lengths[nlit:]); err != nil {
		return nil, nil, err
	}
	return lit, dist, nil
}
