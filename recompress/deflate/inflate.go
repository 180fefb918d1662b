package deflate

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
)

// Inflating: a decoder that shows where blocks end.
//
// Ingest cuts a member into parts at block boundaries of the original
// stream (see Segments), so it must know, while it decompresses, at which
// bit of the stream and at which byte of the output each block ends.
// compress/flate hides block boundaries, and parseStream keeps the whole
// output in memory; an Inflater decompresses a stream of any length in
// bounded memory (a window and the Huffman tables) and reports each block's
// end as it passes it.
//
// It takes from its source only the bytes that hold the stream's bits, as
// compress/flate does with an io.ByteReader: whatever follows the stream
// (a gzip trailer, the next member) is left in the source.

// Source is what an Inflater reads: it takes bytes one at a time as it
// needs bits, and stored blocks' data with Read.
type Source interface {
	io.Reader
	io.ByteReader
}

// BufferedSource is a Source that lends its buffered bytes: an Inflater
// decoding a Huffman block from one takes its bits 8 bytes at a time
// instead of a byte per call, and before it returns (or reads any other
// way) gives back the whole bytes it did not use: it still takes only the
// bytes that hold the stream's bits.
type BufferedSource interface {
	Source
	// Buffered returns the bytes ready to take, without reading; it may
	// be empty.
	Buffered() []byte
	// Take takes the first n bytes Buffered returned.
	Take(n int)
}

// Inflater decompresses a raw deflate stream (no zlib or gzip wrapper) and
// reports each block's end. Memory is bounded: a 128 KiB output buffer
// (the 32 KiB window and room to decode ahead) and the Huffman tables,
// whatever the stream.
type Inflater struct {
	src     Source
	onBlock func(BlockEnd)
	err     error // sticky: the first error, or io.EOF after the final block

	acc uint64 // bits taken from src and not yet used, the next one lowest
	nb  uint   // how many bits acc holds (fewer than 8 between fields)
	nin uint64 // bytes taken from src

	state      int   // what comes next (inHeader, inStored, inHuffman, inDone)
	final      bool  // the current block is the stream's last
	blockStart int64 // output offset where the current block starts
	storedBuf  int   // bytes of the current stored block still to read

	// lit and dist are the current block's codes: the fixed ones or
	// litOwn and distOwn, built from a dynamic block's header.
	lit     *litTable
	dist    *distTable
	litOwn  litTable
	distOwn distTable

	// out holds the window and the output not yet returned: out[rpos:wpos]
	// is for Read; base is the stream's output offset of out[0].
	out        [outSize]byte
	rpos, wpos int
	base       int64
}

// outSize is the output buffer: the 32 KiB window plus room to decode
// ahead. Once it is full and read, its last 32 KiB move to its start.
const (
	outSize    = 128 << 10
	windowSize = 32 << 10
	// A Huffman symbol starts only below huffRoom: a match fits after it,
	// and so do the up to 13 bytes past its end that copying it 8 bytes at
	// a time writes.
	huffRoom = outSize - maxMatch - 16
)

// What an Inflater decodes next.
const (
	inHeader  = iota // a block header
	inStored         // a stored block's data
	inHuffman        // a Huffman block's symbols
	inDone           // nothing: the final block ended
)

// NewInflater returns an Inflater reading the raw deflate stream in src;
// onBlock (may be nil) is called at each block's end.
func NewInflater(src Source, onBlock func(BlockEnd)) *Inflater {
	f := &Inflater{}
	f.Reset(src, onBlock)
	return f
}

// Reset discards f's state and makes it read a new stream from src,
// reusing its buffers.
func (f *Inflater) Reset(src Source, onBlock func(BlockEnd)) {
	f.src, f.onBlock, f.err = src, onBlock, nil
	f.acc, f.nb, f.nin = 0, 0, 0
	f.state, f.final, f.blockStart, f.storedBuf = inHeader, false, 0, 0
	f.lit, f.dist = nil, nil
	f.rpos, f.wpos, f.base = 0, 0, 0
}

// Read returns decompressed bytes; io.EOF once the final block is done and
// all its bytes returned.
//
// onBlock is called from inside Read, on its goroutine, as soon as a block
// is fully decoded: BlockEnd.Input counts the bytes decoded by then, some of
// which Read may not have returned yet. BlockEnd.Bit is the bit offset of
// the stream just after the block: after its end-of-block code, or a stored
// block's data (the final block's padding bits are not counted).
// BlockEnd.StoredLen is the block's decoded length, as an engine reports
// it: a stored block's LEN. onBlock must not call f.
//
// A stream that breaks the format gives an error wrapping ErrCorrupt that
// names the bit offset where it breaks; a source that ends before the
// stream does gives io.ErrUnexpectedEOF; any other error of the source is
// returned as it is. The bytes decoded before an error are returned first;
// after it, Read keeps returning it.
func (f *Inflater) Read(p []byte) (int, error) {
	for {
		if f.rpos < f.wpos {
			if len(p) == 0 {
				return 0, nil
			}
			n := copy(p, f.out[f.rpos:f.wpos])
			f.rpos += n
			if f.rpos == f.wpos && f.err == io.EOF {
				return n, io.EOF
			}
			return n, nil
		}
		if f.err != nil {
			return 0, f.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if f.wpos >= huffRoom {
			// Everything was read: keep the window, make room.
			n := copy(f.out[:], f.out[f.wpos-windowSize:f.wpos])
			f.base += int64(f.wpos - n)
			f.rpos, f.wpos = n, n
		}
		f.decode()
	}
}

// decode decodes blocks until the output buffer is full, the stream ends
// or an error stops it (f.err).
func (f *Inflater) decode() {
	for f.err == nil {
		switch f.state {
		case inHeader:
			f.header()
		case inStored:
			if f.wpos == outSize {
				return
			}
			f.storedData()
		case inHuffman:
			if f.wpos >= huffRoom {
				return
			}
			f.huffman()
		case inDone:
			f.err = io.EOF
		}
	}
}

// bitPos is the stream's bit offset: the bits taken from src and used.
func (f *Inflater) bitPos() uint64 { return f.nin*8 - uint64(f.nb) }

// corrupt records a format error found at bit offset bit of the stream.
func (f *Inflater) corrupt(bit uint64, format string, a ...any) {
	f.err = fmt.Errorf("%w: bit %d: %s", ErrCorrupt, bit, fmt.Sprintf(format, a...))
}

// srcErr records an error of the source: its end is the stream's
// truncation, anything else is the source's own failure, kept as it is.
func (f *Inflater) srcErr(err error) {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	f.err = err
}

// giveBack ends a run of refills from bs: the whole bytes acc holds (of
// the bi taken from its buffer) go back, the rest are taken. It returns
// acc, nb and nin after that.
func giveBack(bs BufferedSource, acc uint64, nb uint, nin uint64, bi int) (uint64, uint, uint64) {
	if bs == nil {
		return acc, nb, nin
	}
	g := min(nb>>3, uint(bi))
	nb -= g << 3
	bs.Take(bi - int(g))
	return acc & (1<<nb - 1), nb, nin - uint64(g)
}

// leave stores huffman's locals back into f on its way out, after
// giving back what it did not use of bs's bytes.
func (f *Inflater) leave(bs BufferedSource, acc uint64, nb uint, nin uint64, bi, w int) {
	f.acc, f.nb, f.nin = giveBack(bs, acc, nb, nin, bi)
	f.wpos = w
}

// need makes acc hold at least n bits (n ≤ 56), taking as few bytes from
// src as it can.
func (f *Inflater) need(n uint) bool {
	for f.nb < n {
		c, err := f.src.ReadByte()
		if err != nil {
			f.srcErr(err)
			return false
		}
		f.acc |= uint64(c) << f.nb
		f.nb += 8
		f.nin++
	}
	return true
}

// bits takes the next n bits of the stream (n ≤ 32, available: see need).
func (f *Inflater) bits(n uint) uint32 {
	v := uint32(f.acc & (1<<n - 1))
	f.acc >>= n
	f.nb -= n
	return v
}

// blockEnd follows the end of a block: it reports it and moves to the next.
func (f *Inflater) blockEnd(stored bool) {
	end := f.base + int64(f.wpos)
	if f.onBlock != nil {
		f.onBlock(BlockEnd{Input: end, Bit: f.bitPos(), Stored: stored, StoredLen: int(end - f.blockStart), Final: f.final})
	}
	f.blockStart = end
	f.state = inHeader
	if f.final {
		f.state = inDone
	}
}

// header reads a block header: BFINAL and BTYPE, then a stored block's
// length or a dynamic block's codes.
func (f *Inflater) header() {
	at := f.bitPos()
	if !f.need(3) {
		return
	}
	h := f.bits(3)
	f.final = h&1 != 0
	switch h >> 1 {
	case storedBlock:
		// The length starts at the next byte boundary: drop the rest of
		// this byte (acc holds no whole byte, see nb).
		f.bits(f.nb % 8)
		at = f.bitPos()
		if !f.need(32) {
			return
		}
		v := f.bits(32)
		n := int(v & 0xffff)
		if uint16(v>>16) != ^uint16(n) {
			f.corrupt(at, "stored block length %d does not match its complement (NLEN %#04x)", n, v>>16)
			return
		}
		f.storedBuf = n
		f.state = inStored
		if n == 0 {
			f.blockEnd(true)
		}
	case staticTrees:
		f.lit, f.dist = &fixedLitTable, &fixedDistTable
		f.state = inHuffman
	case dynamicTrees:
		if f.dynamicHeader() {
			f.lit, f.dist = &f.litOwn, &f.distOwn
			f.state = inHuffman
		}
	default:
		f.corrupt(at, "reserved block type 3")
	}
}

// storedData copies a stored block's data to the output, as much as there
// is room for.
func (f *Inflater) storedData() {
	k := min(f.storedBuf, outSize-f.wpos)
	// acc holds no whole byte here: LEN and NLEN used all it took.
	n, err := io.ReadFull(f.src, f.out[f.wpos:f.wpos+k])
	f.wpos += n
	f.nin += uint64(n)
	f.storedBuf -= n
	if err != nil {
		f.srcErr(err)
		return
	}
	if f.storedBuf == 0 {
		f.blockEnd(true)
	}
}

// Huffman tables.
//
// A table is indexed by the next bits of the stream (the first lowest).
// Its first 1<<root entries decode every code of up to root bits; a code's
// entry repeats at every index that starts with it. A longer code's first
// root bits index a link to a sub-table, which the following bits index.
// While the stream has fewer bits than an entry's length (the missing ones
// read as zeros), the entry is only a lower bound of the code's length: a
// canonical code's shortest code under any prefix is the one that
// continues with zeros. Decoding takes more bytes until the entry's length
// is no more than the bits at hand, so it never takes a byte the code does
// not reach into.
//
// An entry: bits 0-7 the code's length (of a link, root); 8-11 the
// symbol's extra bits, or a link's sub-table index bits; 12-15 the kind;
// 16-31 a literal byte, a base length or distance, or a sub-table offset.
const (
	litRoot  = 10
	distRoot = 8
	clRoot   = 7 // code-length codes are at most 7 bits: no sub-tables

	// The sub-tables of a complete code of n codes: one of 1<<k entries
	// (its longest code k bits past root) holds at least k+1 codes, and
	// 1<<k/(k+1) grows with k, so together they have at most
	// n<<kmax/(kmax+1) entries, kmax = maxBits-root.
	litSubMax  = (lCodes<<(maxBits-litRoot) + maxBits - litRoot) / (maxBits - litRoot + 1)    // 1526
	distSubMax = (dCodes<<(maxBits-distRoot) + maxBits - distRoot) / (maxBits - distRoot + 1) // 480

	litTableSize  = 1<<litRoot + litSubMax
	distTableSize = 1<<distRoot + distSubMax

	lenMask    = 0xff
	extraShift = 8
	valShift   = 16

	kindLit  = 0 << 12
	kindLen  = 1 << 12 // a match length
	kindEOB  = 2 << 12
	kindLink = 4 << 12
	kindBad  = 8 << 12 // an invalid code: its symbol (286, 287, 30, 31), or 0 where no code is
	kindMask = 15 << 12
)

type (
	litTable  [litTableSize]uint32
	distTable [distTableSize]uint32
	clTable   [1 << clRoot]uint32
)

var (
	fixedLitTable  litTable
	fixedDistTable distTable

	// litEntry, distEntry and clEntry are each symbol's entry without its
	// length.
	litEntry  [288]uint32
	distEntry [32]uint32
	clEntry   [blCodes]uint32
)

func init() {
	for c := 0; c < literals; c++ {
		litEntry[c] = kindLit | uint32(c)<<valShift
	}
	litEntry[endBlock] = kindEOB
	base := uint32(minMatch)
	for c := 0; c < lengthCodes; c++ {
		x := uint32(extraLBits[c])
		b := base
		if c == lengthCodes-1 {
			b = maxMatch // code 285 is 258, not 227 + 32
		}
		litEntry[literals+1+c] = kindLen | x<<extraShift | b<<valShift
		base += 1 << x
	}
	litEntry[286] = kindBad | 286<<valShift
	litEntry[287] = kindBad | 287<<valShift
	base = 1
	for c := 0; c < dCodes; c++ {
		x := uint32(extraDBits[c])
		distEntry[c] = x<<extraShift | base<<valShift
		base += 1 << x
	}
	distEntry[30] = kindBad | 30<<valShift
	distEntry[31] = kindBad | 31<<valShift
	for c := range clEntry {
		clEntry[c] = uint32(c) << valShift
	}

	// The fixed codes of RFC 1951 section 3.2.6.
	var l [288]uint8
	for c := range l {
		switch {
		case c < 144:
			l[c] = 8
		case c < 256:
			l[c] = 9
		case c < 280:
			l[c] = 7
		default:
			l[c] = 8
		}
	}
	if buildTable(fixedLitTable[:], litRoot, l[:], litEntry[:]) != "" {
		panic("deflate: fixed literal/length code")
	}
	for c := range l[:32] {
		l[c] = 5
	}
	if buildTable(fixedDistTable[:], distRoot, l[:32], distEntry[:]) != "" {
		panic("deflate: fixed distance code")
	}
}

// buildTable fills t with the decoding table of the canonical code whose
// lengths (at most maxBits) are given, using each symbol's entry in sym. It
// returns why the lengths make no valid code ("" if they do): they are
// over-subscribed, or incomplete other than with a single code of one bit
// (which zlib and compress/flate accept: a block with one distance). No
// code at all is valid here (a block without matches); using it is not.
func buildTable(t []uint32, root uint, lengths []uint8, sym []uint32) string {
	var count [maxBits + 1]int
	maxLen := uint(0)
	for _, l := range lengths {
		count[l]++
		maxLen = max(maxLen, uint(l))
	}
	left := 1
	for l := 1; l <= maxBits; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return "over-subscribed"
		}
	}
	rootMask := 1<<root - 1
	if left > 0 {
		if maxLen > 1 || count[1] > 1 {
			return "incomplete"
		}
		// No code, or a single one-bit code: what it leaves is invalid,
		// and known to be once a bit is at hand (with no code, at once).
		bad := kindBad | uint32(maxLen)
		for i := range t[:rootMask+1] {
			t[i] = bad
		}
	}
	// The first code of each length (RFC 1951 section 3.2.2).
	var next [maxBits + 1]uint32
	c := uint32(0)
	for l := 1; l <= maxBits; l++ {
		next[l] = c
		c = (c + uint32(count[l])) << 1
	}
	// Codes of up to root bits go straight into the root table; a longer
	// code's first root bits name its sub-table, as long as its longest
	// code needs.
	var codes [288]uint16
	var subBits [1 << litRoot]uint8
	long := false
	for s, l := range lengths {
		if l == 0 {
			continue
		}
		r := bits.Reverse16(uint16(next[l])) >> (16 - l)
		next[l]++
		codes[s] = r
		if uint(l) <= root {
			e := sym[s] | uint32(l)
			for i := int(r); i <= rootMask; i += 1 << l {
				t[i] = e
			}
			continue
		}
		long = true
		p := int(r) & rootMask
		subBits[p] = max(subBits[p], l-uint8(root))
	}
	if !long {
		return ""
	}
	var subOff [1 << litRoot]uint32
	off := uint32(rootMask + 1)
	for p := 0; p <= rootMask; p++ {
		if k := subBits[p]; k > 0 {
			if int(off)+1<<k > len(t) {
				panic("deflate: Huffman sub-tables overflow their table")
			}
			t[p] = kindLink | uint32(k)<<extraShift | off<<valShift | uint32(root)
			subOff[p] = off
			off += 1 << k
		}
	}
	for s, l := range lengths {
		if uint(l) <= root {
			continue
		}
		r := int(codes[s])
		p := r & rootMask
		e := sym[s] | uint32(l)
		sub := t[subOff[p] : subOff[p]+1<<subBits[p]]
		for i := r >> root; i < len(sub); i += 1 << (uint(l) - root) {
			sub[i] = e
		}
	}
	return ""
}

// decodeSym decodes a symbol with table t outside the hot loop: a
// code-length code symbol. It returns the entry, or ok false with f.err set.
func (f *Inflater) decodeSym(t []uint32, root uint) (e uint32, ok bool) {
	at := f.bitPos()
	mask := uint64(1)<<root - 1
	e = t[f.acc&mask]
	for e&lenMask > uint32(f.nb) {
		if !f.need(f.nb + 8) {
			return 0, false
		}
		e = t[f.acc&mask]
	}
	if e&kindMask == kindLink {
		sub := t[e>>valShift:]
		smask := uint64(1)<<(e>>extraShift&15) - 1
		e = sub[f.acc>>root&smask]
		for e&lenMask > uint32(f.nb) {
			if !f.need(f.nb + 8) {
				return 0, false
			}
			e = sub[f.acc>>root&smask]
		}
	}
	if e&kindMask == kindBad {
		f.corrupt(at, "invalid code")
		return 0, false
	}
	f.bits(uint(e & lenMask))
	return e, true
}

// dynamicHeader reads a dynamic block's codes into litOwn and distOwn.
func (f *Inflater) dynamicHeader() bool {
	at := f.bitPos()
	if !f.need(14) {
		return false
	}
	v := f.bits(14)
	nlit := int(v&31) + 257
	ndist := int(v>>5&31) + 1
	nclen := int(v>>10) + 4
	if nlit > lCodes {
		f.corrupt(at, "%d literal/length codes (at most %d)", nlit, lCodes)
		return false
	}
	if ndist > dCodes {
		f.corrupt(at, "%d distance codes (at most %d)", ndist, dCodes)
		return false
	}
	at = f.bitPos()
	var clLen [blCodes]uint8
	for i := 0; i < nclen; i++ {
		if !f.need(3) {
			return false
		}
		clLen[blOrder[i]] = uint8(f.bits(3))
	}
	var cl clTable
	// zlib accepts no incomplete code-length code (compress/flate takes a
	// single one-bit code, but no code lengths it could send then make a
	// valid code).
	if why := buildTable(cl[:], clRoot, clLen[:], clEntry[:]); why != "" || isIncomplete(clLen[:]) {
		if why == "" {
			why = "incomplete"
		}
		f.corrupt(at, "%s code-length code", why)
		return false
	}
	var lengths [lCodes + dCodes]uint8
	at = f.bitPos()
	n := nlit + ndist
	for i := 0; i < n; {
		symAt := f.bitPos()
		e, ok := f.decodeSym(cl[:], clRoot)
		if !ok {
			return false
		}
		s := e >> valShift
		if s < 16 {
			lengths[i] = uint8(s)
			i++
			continue
		}
		var rep int
		var val uint8
		switch s {
		case rep3to6:
			if i == 0 {
				f.corrupt(symAt, "repeat of no previous code length")
				return false
			}
			if !f.need(2) {
				return false
			}
			rep, val = 3+int(f.bits(2)), lengths[i-1]
		case repz3to10:
			if !f.need(3) {
				return false
			}
			rep = 3 + int(f.bits(3))
		default:
			if !f.need(7) {
				return false
			}
			rep = 11 + int(f.bits(7))
		}
		if i+rep > n {
			f.corrupt(symAt, "code lengths repeat past the %d codes", n)
			return false
		}
		for ; rep > 0; rep-- {
			lengths[i] = val
			i++
		}
	}
	if lengths[endBlock] == 0 {
		f.corrupt(at, "no end-of-block code")
		return false
	}
	if why := buildTable(f.litOwn[:], litRoot, lengths[:nlit], litEntry[:]); why != "" {
		f.corrupt(at, "%s literal/length code", why)
		return false
	}
	if why := buildTable(f.distOwn[:], distRoot, lengths[nlit:n], distEntry[:]); why != "" {
		f.corrupt(at, "%s distance code", why)
		return false
	}
	return true
}

// isIncomplete reports whether lengths leave codes unused.
func isIncomplete(lengths []uint8) bool {
	left := 1 << maxBits
	for _, l := range lengths {
		if l > 0 {
			left -= 1 << (maxBits - l)
		}
	}
	return left > 0
}

// huffman decodes a Huffman block's symbols until its end or until the
// output buffer is full. It is the hot loop: the bit accumulator and the
// output position live in locals, stored back on every way out.
//
// long: the decoding of literals, lengths and distances stays in one loop
// so its state stays in registers; split into calls it ran slower.
//
// From a BufferedSource it takes 56 bits or more at once before each
// symbol (a length and distance need at most 48), from bytes buf[bi:]; bits
// of acc above nb are then those of the next byte, which the next refill
// ORs in again at the same place. Before anything else reads the source,
// the whole bytes acc holds are given back (bi less them is taken), so the
// one-byte reads below, which then run, and the rest of the Inflater see
// what they always do: fewer than 8 bits in acc, nothing above them.
func (f *Inflater) huffman() {
	src := f.src
	acc, nb, nin := f.acc, f.nb, f.nin
	out := &f.out
	w := f.wpos
	lit, dist := f.lit, f.dist
	var rerr error
	var e, de uint32
	var length, d, n1, n2 int
	bs, _ := src.(BufferedSource)
	var buf []byte
	bi := 0

	for w < huffRoom {
		if nb < 48 && bs != nil {
			if len(buf)-bi < 8 {
				acc, nb, nin = giveBack(bs, acc, nb, nin, bi)
				buf, bi = bs.Buffered(), 0
			}
			if len(buf)-bi >= 8 {
				acc |= binary.LittleEndian.Uint64(buf[bi:]) << nb
				k := (63 - nb) >> 3
				bi += int(k)
				nb += k << 3
				nin += uint64(k)
			}
		}
		// The literal/length code.
		e = lit[acc&(1<<litRoot-1)]
		for e&lenMask > uint32(nb) {
			c, err := src.ReadByte()
			if err != nil {
				rerr = err
				goto fail
			}
			acc |= uint64(c) << nb
			nb += 8
			nin++
			e = lit[acc&(1<<litRoot-1)]
		}
		if e&kindMask == kindLink {
			sub := lit[e>>valShift:]
			smask := uint64(1)<<(e>>extraShift&15) - 1
			e = sub[acc>>litRoot&smask]
			for e&lenMask > uint32(nb) {
				c, err := src.ReadByte()
				if err != nil {
					rerr = err
					goto fail
				}
				acc |= uint64(c) << nb
				nb += 8
				nin++
				e = sub[acc>>litRoot&smask]
			}
		}
		if e&kindMask == kindLit {
			acc >>= e & lenMask
			nb -= uint(e & lenMask)
			out[w] = byte(e >> valShift)
			w++
			continue
		}
		if e&kindMask != kindLen {
			if e&kindMask == kindEOB {
				acc >>= e & lenMask
				nb -= uint(e & lenMask)
				f.leave(bs, acc, nb, nin, bi, w)
				f.blockEnd(false)
				return
			}
			f.leave(bs, acc, nb, nin, bi, w)
			if e>>valShift >= lCodes {
				f.corrupt(f.bitPos(), "literal/length code %d", e>>valShift)
			} else {
				f.corrupt(f.bitPos(), "invalid literal/length code")
			}
			return
		}
		n1 = int(e & lenMask)
		acc >>= n1
		nb -= uint(n1)

		// The length's extra bits.
		if x := uint(e >> extraShift & 15); x > 0 {
			for nb < x {
				c, err := src.ReadByte()
				if err != nil {
					rerr = err
					goto fail
				}
				acc |= uint64(c) << nb
				nb += 8
				nin++
			}
			length = int(e>>valShift) + int(acc&(1<<x-1))
			acc >>= x
			nb -= x
			n1 += int(x)
		} else {
			length = int(e >> valShift)
		}

		// The distance code and its extra bits.
		de = dist[acc&(1<<distRoot-1)]
		for de&lenMask > uint32(nb) {
			c, err := src.ReadByte()
			if err != nil {
				rerr = err
				goto fail
			}
			acc |= uint64(c) << nb
			nb += 8
			nin++
			de = dist[acc&(1<<distRoot-1)]
		}
		if de&kindMask == kindLink {
			sub := dist[de>>valShift:]
			smask := uint64(1)<<(de>>extraShift&15) - 1
			de = sub[acc>>distRoot&smask]
			for de&lenMask > uint32(nb) {
				c, err := src.ReadByte()
				if err != nil {
					rerr = err
					goto fail
				}
				acc |= uint64(c) << nb
				nb += 8
				nin++
				de = sub[acc>>distRoot&smask]
			}
		}
		if de&kindMask == kindBad {
			f.leave(bs, acc, nb, nin, bi, w)
			if de>>valShift >= dCodes {
				f.corrupt(f.bitPos(), "distance code %d", de>>valShift)
			} else {
				f.corrupt(f.bitPos(), "invalid distance code")
			}
			return
		}
		n2 = int(de & lenMask)
		acc >>= n2
		nb -= uint(n2)
		if x := uint(de >> extraShift & 15); x > 0 {
			for nb < x {
				c, err := src.ReadByte()
				if err != nil {
					rerr = err
					goto fail
				}
				acc |= uint64(c) << nb
				nb += 8
				nin++
			}
			d = int(de>>valShift) + int(acc&(1<<x-1))
			acc >>= x
			nb -= x
			n2 += int(x)
		} else {
			d = int(de >> valShift)
		}

		// The copy. After a slide w is the window's size, so d > w means
		// before the stream's start.
		if d > w {
			f.leave(bs, acc, nb, nin, bi, w)
			f.corrupt(f.bitPos()-uint64(n1+n2), "distance %d too far back (%d bytes out)", d, f.base+int64(w))
			return
		}
		switch {
		case d >= 8 && length <= 32:
			// 8 bytes at a time, at least 16 (most matches are short):
			// each piece was written before it is read, even where the
			// match overlaps itself.
			s := w - d
			binary.LittleEndian.PutUint64(out[w:], binary.LittleEndian.Uint64(out[s:]))
			binary.LittleEndian.PutUint64(out[w+8:], binary.LittleEndian.Uint64(out[s+8:]))
			for i := 16; i < length; i += 8 {
				binary.LittleEndian.PutUint64(out[w+i:], binary.LittleEndian.Uint64(out[s+i:]))
			}
			w += length
		case d >= length:
			copy(out[w:w+length], out[w-d:])
			w += length
		default:
			s, end := w-d, w+length
			for w < end {
				w += copy(out[w:end], out[s:w])
			}
		}
	}
	f.leave(bs, acc, nb, nin, bi, w)
	return

fail:
	f.leave(bs, acc, nb, nin, bi, w)
	f.srcErr(rerr)
}
