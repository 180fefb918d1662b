package deflate

import (
	"encoding/binary"
	"math/bits"
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

// compressor is the state of one deflate stream: the match finder of
// deflate.c and the block writer of trees.c. Positions are window indexes.
type compressor struct {
	p   Params
	gnu bool

	good, maxLazy, nice, maxChain int

	wSize, wMask, windowSize, maxDist int
	hashShift, hashMask               uint32

	window []byte
	prev   []uint16
	head   []uint16

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
	syms   []uint32
	symEnd int // the block is flushed when this many symbols are buffered
	nDist  int // matches in the block (GNU gzip's last_dist)

	trees
	bw bitWriter

	// GNU gzip --rsyncable state.
	rsyncSum      uint64
	rsyncChunkEnd uint64

	// expect, when set, is checked symbol by symbol (identification).
	check *tokenCheck
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
	c.hashShift = (hashBits + minMatch - 1) / minMatch

	c.window = resize(c.window, c.windowSize+windowPad)
	clear(c.window)
	c.prev = resize(c.prev, c.wSize)
	clear(c.prev)
	c.head = resize(c.head, int(c.hashMask)+1)
	clear(c.head)

	litBufSize := 1 << (p.MemLevel + 6)
	if c.gnu {
		litBufSize = 0x8000 // LIT_BUFSIZE
	}
	c.symEnd = litBufSize - 1
	c.syms = resize(c.syms, litBufSize)[:0]
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

	c.trees.init()
	c.bw = bitWriter{out: c.bw.out[:0]}
}

func resize[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:n]
	}
	return make([]T, n)
}

// hash of the three bytes at p. zlib's and gzip's rolling hash always
// equals this function of the window bytes.
func (c *compressor) hash(p int) uint32 {
	w := c.window[p : p+3 : p+3]
	return (uint32(w[0])<<(2*c.hashShift) ^ uint32(w[1])<<c.hashShift ^ uint32(w[2])) & c.hashMask
}

// insertString inserts position p in the hash chains and returns the
// previous head of its chain (zlib's INSERT_STRING).
func (c *compressor) insertString(p int) int {
	h := c.hash(p)
	head := c.head[h]
	c.prev[p&c.wMask] = head
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
	if c.rsyncChunkEnd != noChunkEnd {
		c.rsyncChunkEnd -= uint64(w)
	}
	slideTable(c.head, w)
	slideTable(c.prev, w)
}

// slideTable rebases chain positions by w; positions that fall out of the
// window become 0 (NIL).
func slideTable(t []uint16, w int) {
	for i, m := range t {
		t[i] = uint16(max(int(m)-w, 0))
	}
}

// longestMatch returns the length of the longest match at strstart among
// the chain that starts at cur, and sets matchStart; matches not longer than
// prevLength are ignored. This is zlib's and gzip's longest_match: the same
// candidates in the same order, the same early exits.
func (c *compressor) longestMatch(cur int) int {
	chain := c.maxChain
	win := c.window
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
	prev := c.prev
	wmask := c.wMask
	s := win[scan : scan+maxMatch+8 : scan+maxMatch+8]
	scanEnd1 := s[bestLen-1]
	scanEnd := s[bestLen]
	s0, s1 := s[0], s[1]
	for {
		m := win[cur : cur+maxMatch+8 : cur+maxMatch+8]
		if m[bestLen] == scanEnd && m[bestLen-1] == scanEnd1 && m[0] == s0 && m[1] == s1 {
			l := 2 + matchLen(m[2:maxMatch], s[2:maxMatch])
			if l > bestLen {
				c.matchStart = cur
				bestLen = l
				if l >= nice {
					break
				}
				scanEnd1 = s[bestLen-1]
				scanEnd = s[bestLen]
			}
		}
		cur = int(prev[cur&wmask])
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
	c.syms = append(c.syms, uint32(b))
	c.lFreq[b]++
	if c.check != nil {
		c.check.symbol(c, uint32(b))
	}
	return len(c.syms) == c.symEnd
}

// tallyDist buffers a match and reports whether the block is full.
func (c *compressor) tallyDist(dist, lc int) bool {
	s := uint32(dist)<<16 | uint32(lc)
	c.syms = append(c.syms, s)
	c.nDist++
	c.lFreq[int(lengthCode[lc])+literals+1]++
	c.dFreq[dCode(dist-1)]++
	if c.check != nil {
		c.check.symbol(c, s)
	}
	return len(c.syms) == c.symEnd
}

// flushBlock ends the current block (zlib's FLUSH_BLOCK_ONLY and
// _tr_flush_block). pad is GNU gzip's request to end byte aligned.
func (c *compressor) flushBlock(last, pad bool) {
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
	switch {
	case uint64(storedLen)+4 <= optLenb && buf != nil:
		b.storedBlock(buf, last)
	case oldFixed || staticLenb == optLenb:
		b.sendBits(staticTrees<<1|boolBit(last), 3)
		compressBlock(b, c.syms, staticLTree[:], staticDTree[:])
	default:
		b.sendBits(dynamicTrees<<1|boolBit(last), 3)
		t.sendAllTrees(b, t.l.maxCode+1, t.d.maxCode+1, maxBLIndex+1)
		compressBlock(b, c.syms, t.lCode[:], t.dCode[:])
	}
	t.initBlock()
	c.syms = c.syms[:0]
	c.nDist = 0
	if last {
		b.windup()
	} else if pad && !b.aligned() {
		// GNU gzip --rsyncable: an empty stored block to reach a byte
		// boundary, only when not already on one.
		b.storedBlock(nil, false)
	}
	c.blockStart = c.strstart
}
