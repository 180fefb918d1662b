package deflate

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// config is one row of the level table shared by zlib and GNU gzip.
type config struct {
	good, lazy, nice, chain int
	slow                    bool // lazy matching (levels 4 to 9)
}

var configTable = [10]config{
	{0, 0, 0, 0, false},
	{4, 4, 8, 4, false},
	{4, 5, 16, 8, false},
	{4, 6, 32, 32, false},
	{4, 4, 16, 16, true},
	{8, 16, 32, 32, true},
	{8, 16, 128, 128, true},
	{8, 32, 128, 256, true},
	{32, 128, 258, 1024, true},
	{32, 258, 258, 4096, true},
}

// windowPad is room after the window for match comparisons that read a
// little past the data (8 bytes at a time).
const windowPad = maxMatch + 16

// The window, chains and hash heads are fixed-size arrays sized for the
// largest configuration, so that indexes masked with these constants need
// no bounds checks in the match finder.
const (
	windowAlloc = 1 << 17 // > 2 * 32 KiB + windowPad
	windowIdx   = windowAlloc - 1
	prevAlloc   = 1 << 16 // indexed by uint16: no bounds checks
	prevIdx     = prevAlloc - 1
	headAlloc   = 1 << 16 // memLevel 9: 16 hash bits
	headIdx     = headAlloc - 1
	symAlloc    = 1 << 15 // the largest block: 32767 symbols
	symIdx      = symAlloc - 1
)

// compressor is the state of one deflate stream: the match finder of
// deflate.c and the block writer of trees.c. Positions are window indexes.
type compressor struct {
	p   Params
	gnu bool

	good, maxLazy, nice, maxChain int

	wSize, wMask, windowSize, maxDist int
	hashMask                          uint32
	shift1, shift2                    uint8 // the hash shift and twice it

	// Fixed-size arrays held in the struct: no nil checks, and indexes
	// masked with constants need no bounds checks.
	window [windowAlloc]byte
	prev   [prevAlloc]uint16
	head   [headAlloc]uint16

	strstart       int
	lookahead      int
	blockStart     int // may go negative when the window slides
	matchStart     int
	matchLength    int
	prevLength     int
	prevMatch      int
	matchAvailable bool
	insert         int

	// Input not yet moved into the window (zlib's next_in/avail_in).
	in []byte
	// started is set once GNU gzip's lm_init has read its first buffer.
	started bool
	// eofile: GNU gzip saw the end of its input.
	eofile bool
	// closed: no more input will come (Close was called).
	closed bool

	// Symbol buffer of the current block.
	syms   [symAlloc]uint32
	nsyms  int
	symEnd int // the block is flushed when this many symbols are buffered
	nDist  int // matches in the block (GNU gzip's last_dist)

	trees
	bw bitWriter

	// GNU gzip --rsyncable state.
	rsyncSum      uint64
	rsyncChunkEnd uint64

	// check, when set, compares symbols and block ends with an original
	// stream's (identification).
	check *tokenCheck

	seg segState
}

// segState is what a Writer needs to restart an engine inside a stream
// and stop it again (see Split): window positions slide with the window.
type segState struct {
	base    int64 // input offset of window[0]
	warm    bool  // warming up: blocks are discarded until cut
	cut     int   // window position of the block boundary that ends the warm-up; -1: none
	cutBit  uint64
	stop    int // window position of the block boundary where output stops; -1: none
	stopped bool
	stopLen int  // bytes of bw.out that belong to the output when stopped
	missed  bool // a block ended past stop, or the warm-up passed cut
	onBlock func(BlockEnd)
	// capture: keep the state at the cut in cutState.
	capture  bool
	cutState *State
}

const noChunkEnd = 0xFFFFFFFF

func newCompressor(p Params) *compressor {
	c := &compressor{}
	c.reset(p)
	return c
}

// reset prepares c for a new stream with p, reusing its buffers when the
// sizes allow.
func (c *compressor) reset(p Params) {
	c.p = p
	c.gnu = p.Engine == Gzip
	cfg := configTable[p.Level]
	c.good, c.maxLazy, c.nice, c.maxChain = cfg.good, cfg.lazy, cfg.nice, cfg.chain

	c.wSize = 1 << p.WindowBits
	c.wMask = c.wSize - 1
	c.windowSize = 2 * c.wSize
	c.maxDist = c.wSize - minLookahead
	hashBits := uint32(p.MemLevel + 7)
	c.hashMask = 1<<hashBits - 1
	shift := (hashBits + minMatch - 1) / minMatch
	c.shift1, c.shift2 = uint8(shift), uint8(2*shift)

	clear(c.window[:c.windowSize+windowPad])
	clear(c.prev[:c.wSize])
	clear(c.head[:c.hashMask+1])

	litBufSize := 1 << (p.MemLevel + 6)
	if c.gnu {
		litBufSize = 0x8000 // LIT_BUFSIZE
	}
	c.symEnd = litBufSize - 1
	c.nsyms = 0
	c.nDist = 0

	c.strstart, c.lookahead, c.blockStart, c.insert = 0, 0, 0, 0
	c.matchStart = 0
	c.matchLength, c.prevLength = minMatch-1, minMatch-1
	c.prevMatch = 0
	c.matchAvailable = false
	c.in = nil
	c.started, c.eofile, c.closed = false, false, false
	c.rsyncSum, c.rsyncChunkEnd = 0, noChunkEnd
	c.check = nil
	c.seg = segState{cut: -1, stop: -1}

	c.trees.init()
	c.bw = bitWriter{out: c.bw.out[:0]}
}

// insertString inserts position p in the hash chains and returns the
// previous head of its chain (zlib's INSERT_STRING). The hash is computed
// from the three window bytes at p: zlib's and gzip's rolling hash always
// equals this function of them (the bits of older bytes shift out).
func (c *compressor) insertString(p int) int {
	// One load for the three bytes: positions stay below the window's
	// used size, far under windowAlloc-4.
	v := binary.LittleEndian.Uint32(c.window[p&windowIdx:])
	h := uint16(((v&0xff)<<(c.shift2&31) ^ (v>>8&0xff)<<(c.shift1&31) ^ v>>16&0xff) & c.hashMask)
	head := c.head[h]
	c.prev[uint16(p&c.wMask)] = head
	c.head[h] = uint16(p)
	return int(head)
}

// slide moves the upper half of the window down and rebases the chains.
func (c *compressor) slide() {
	w := c.wSize
	copy(c.window[:w], c.window[w:2*w])
	c.matchStart -= w
	c.strstart -= w
	c.blockStart -= w
	c.seg.base += int64(w)
	if c.seg.cut >= 0 {
		c.seg.cut -= w
	}
	if c.seg.stop >= 0 {
		c.seg.stop -= w
	}
	if c.rsyncChunkEnd != noChunkEnd {
		c.rsyncChunkEnd -= uint64(w)
	}
	slideTable(c.head[:c.hashMask+1], w)
	slideTable(c.prev[:c.wSize], w)
}

// slideTable rebases chain positions by w (a power of two); positions that
// fall out of the window become 0 (NIL). Positions are below 2*w, so a
// position at or above w has exactly bit log2(w) set: the new value is the
// position's low bits if that bit is set, else 0. Four positions are done
// at a time in a uint64 (len(t) is a multiple of 4).
func slideTable(t []uint16, w int) {
	k := uint(bits.TrailingZeros(uint(w)))
	low := uint64(w - 1)
	v := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(t))), len(t)/4)
	for i, x := range v {
		v[i] = x & ((x >> k & 0x0001000100010001) * low)
	}
}

// longestMatch returns the length of the longest match at strstart among
// the chain that starts at cur, and sets matchStart; matches not longer than
// prevLength are ignored. This is zlib's and gzip's longest_match: the same
// candidates in the same order, the same early exits.
func (c *compressor) longestMatch(cur int) int {
	chain := c.maxChain
	win := &c.window
	scan := c.strstart
	bestLen := c.prevLength
	nice := c.nice
	limit := 0
	if c.strstart > c.maxDist {
		limit = c.strstart - c.maxDist
	}
	if c.prevLength >= c.good {
		chain >>= 2
	}
	if !c.gnu && nice > c.lookahead {
		// zlib: do not look for matches beyond the end of the input.
		nice = c.lookahead
	}
	prev := &c.prev
	wmask := c.wMask
	s := win[scan : scan+maxMatch+8 : scan+maxMatch+8]
	// The candidate must extend the best match: its two bytes at the
	// best match's end and its first two equal the string's (zlib checks
	// the four one by one; a conjunction, so one 16-bit compare each
	// gives the same candidates). Positions are below
	// windowAlloc-maxMatch-1, so the masks change nothing.
	scanEnd := binary.LittleEndian.Uint16(s[bestLen-1:])
	start := binary.LittleEndian.Uint16(s)
	for {
		e := (cur + bestLen - 1) & windowIdx
		if binary.LittleEndian.Uint16(win[e:e+2:e+2]) == scanEnd && binary.LittleEndian.Uint16(win[cur&windowIdx:]) == start {
			l := 2 + matchLen(win[cur+2:cur+maxMatch], s[2:maxMatch])
			if l > bestLen {
				c.matchStart = cur
				bestLen = l
				if l >= nice {
					break
				}
				scanEnd = binary.LittleEndian.Uint16(s[bestLen-1:])
			}
		}
		cur = int(prev[uint16(cur&wmask)])
		if cur <= limit {
			break
		}
		chain--
		if chain == 0 {
			break
		}
	}
	if !c.gnu && bestLen > c.lookahead {
		return c.lookahead
	}
	return bestLen
}

// matchLen returns the length of the common prefix of a and b, which have
// the same length.
func matchLen(a, b []byte) int {
	n := 0
	for len(a) >= 8 {
		x := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b)
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		a, b = a[8:], b[8:]
		n += 8
	}
	for i := range a {
		if a[i] != b[i] {
			return n + i
		}
	}
	return n + len(a)
}

// tallyLit buffers a literal and reports whether the block is full.
func (c *compressor) tallyLit(b byte) bool {
	n := c.nsyms
	c.syms[n&symIdx] = uint32(b)
	c.nsyms = n + 1
	c.lFreq[b]++
	return n+1 == c.symEnd
}

// tallyDist buffers a match and reports whether the block is full.
func (c *compressor) tallyDist(dist, lc int) bool {
	s := uint32(dist)<<16 | uint32(lc)
	n := c.nsyms
	c.syms[n&symIdx] = s
	c.nsyms = n + 1
	c.nDist++
	c.lFreq[int(lengthCode[uint8(lc)])+literals+1]++
	c.dFreq[distCodeOf[uint16(dist-1)]]++
	return n+1 == c.symEnd
}

// flushBlock ends the current block (zlib's FLUSH_BLOCK_ONLY and
// _tr_flush_block). pad is GNU gzip's request to end byte aligned.
func (c *compressor) flushBlock(last, pad bool) {
	if c.seg.warm {
		c.warmBlockEnd()
		return
	}
	var buf []byte
	storedLen := c.strstart - c.blockStart
	if c.blockStart >= 0 {
		buf = c.window[c.blockStart:c.strstart]
	}
	if c.check != nil {
		c.check.blockEnd(c, last)
	}
	t := &c.trees
	t.buildTree(&t.l)
	t.buildTree(&t.d)
	maxBLIndex := t.buildBLTree()
	optLenb := (t.optLen + 3 + 7) >> 3
	staticLenb := (t.staticLen + 3 + 7) >> 3
	fixed := !c.gnu && c.p.Strategy == Fixed
	oldFixed := fixed && c.p.Variant&ZlibFixedBefore1213 != 0
	if staticLenb <= optLenb || (fixed && !oldFixed) {
		optLenb = staticLenb
	}
	b := &c.bw
	stored := false
	switch {
	case uint64(storedLen)+4 <= optLenb && buf != nil:
		b.storedBlock(buf, last)
		stored = true
	case oldFixed || staticLenb == optLenb:
		b.sendBits(staticTrees<<1|boolBit(last), 3)
		compressBlock(b, c.syms[:c.nsyms], staticLTree[:], staticDTree[:])
	default:
		b.sendBits(dynamicTrees<<1|boolBit(last), 3)
		t.sendAllTrees(b, t.l.maxCode+1, t.d.maxCode+1, maxBLIndex+1)
		compressBlock(b, c.syms[:c.nsyms], t.lCode[:], t.dCode[:])
	}
	t.initBlock()
	c.nsyms = 0
	c.nDist = 0
	if last {
		b.windup()
	} else if pad && !b.aligned() {
		// GNU gzip --rsyncable: an empty stored block to reach a byte
		// boundary, only when not already on one.
		b.storedBlock(nil, false)
	}
	c.blockStart = c.strstart
	c.segBlockEnd(last, stored, storedLen)
}
