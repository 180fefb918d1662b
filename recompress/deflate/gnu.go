package deflate

// The compression loops of GNU gzip's deflate.c (deflate_fast and the lazy
// deflate) with its fill_window, ct_tally block heuristic and --rsyncable.
// gzip pulls its input with full reads from a regular file; a Writer feeds
// it the same way by waiting until a read could be complete (or the input
// is closed) before it moves data into the window.

const (
	rsyncWin     = 4096
	gnuLitBuf    = 0x8000 // LIT_BUFSIZE
	gnuDistBuf   = 0x8000 // DIST_BUFSIZE
	gnuCheckStep = 0xfff  // the block-end guess runs every 4096 symbols
)

// gnuRead moves up to n bytes of input into the window at the end of the
// data, as gzip's read_buf does with a regular file. It reports false when
// a full read is not possible yet.
func (c *compressor) gnuRead(n int) (int, bool) {
	if len(c.in) < n && !c.closed {
		return 0, false
	}
	at := c.strstart + c.lookahead
	k := copy(c.window[at:at+n], c.in)
	c.in = c.in[k:]
	return k, true
}

// gnuFill is gzip's fill_window.
func (c *compressor) gnuFill() bool {
	more := c.windowSize - c.lookahead - c.strstart
	slide := c.strstart >= c.wSize+c.maxDist
	if slide {
		more += c.wSize
	}
	if c.eofile {
		if slide {
			c.slide()
		}
		return true
	}
	if len(c.in) < more && !c.closed {
		return false
	}
	if slide {
		c.slide()
	}
	n, _ := c.gnuRead(more)
	if n == 0 {
		c.eofile = true
		if c.p.Variant&GzipBefore15 == 0 {
			// gzip 1.5+: "Don't let garbage pollute the dictionary."
			at := c.strstart + c.lookahead
			c.window[at], c.window[at+1] = 0, 0
		}
		return true
	}
	c.lookahead += n
	return true
}

// gnuStart is gzip's lm_init: the first read of a whole window.
func (c *compressor) gnuStart() bool {
	n, ok := c.gnuRead(c.windowSize)
	if !ok {
		return false
	}
	c.started = true
	c.lookahead = n
	if n == 0 {
		c.eofile = true
	}
	return true
}

func (c *compressor) gnuRun() bool {
	if !c.started && !c.gnuStart() {
		return false
	}
	if configTable[c.p.Level].slow {
		return c.gnuSlow()
	}
	return c.gnuFast()
}

// gnuTally is ct_tally: buffer a symbol, then guess whether to end the
// block early (levels above 2, every 4096 symbols) or whether it is full.
func (c *compressor) gnuTally(full bool) bool {
	lastLit := c.nsyms
	if c.p.Level > 2 && lastLit&gnuCheckStep == 0 {
		out := uint64(lastLit) * 8
		in := uint64(c.strstart - c.blockStart)
		for d := 0; d < dCodes; d++ {
			out += uint64(c.dFreq[d]) * (5 + uint64(extraDBits[d]))
		}
		out >>= 3
		if c.nDist < lastLit/2 && out < in/2 {
			return true
		}
	}
	return full || c.nDist == gnuDistBuf
}

// rsyncRoll advances the --rsyncable rolling sum over num bytes from start
// and notes the first position where it hits the magic value.
func (c *compressor) rsyncRoll(start, num int) {
	if c.p.Rsync == RsyncOff {
		return
	}
	w := &c.window
	if start < rsyncWin {
		for i := start; i < rsyncWin; i++ {
			if i == start+num {
				return
			}
			c.rsyncSum += uint64(w[i])
		}
		num -= rsyncWin - start
		start = rsyncWin
	}
	for i := start; i < start+num; i++ {
		c.rsyncSum += uint64(w[i])
		c.rsyncSum -= uint64(w[i-rsyncWin])
		if c.rsyncChunkEnd == noChunkEnd && c.rsyncSum%rsyncWin == 0 {
			c.rsyncChunkEnd = uint64(i)
		}
	}
}

// rsyncDue reports (and clears) a pending --rsyncable block end.
func (c *compressor) rsyncDue() bool {
	if c.p.Rsync != RsyncOff && uint64(c.strstart) > c.rsyncChunkEnd {
		c.rsyncChunkEnd = noChunkEnd
		return true
	}
	return false
}

func (c *compressor) gnuFast() bool {
	for {
		for c.lookahead < minLookahead && !c.eofile {
			if !c.gnuFill() {
				return false
			}
		}
		if c.lookahead == 0 {
			break
		}
		hashHead := c.insertString(c.strstart)
		if hashHead != 0 && c.strstart-hashHead <= c.maxDist && c.strstart <= c.windowSize-minLookahead {
			c.matchLength = min(c.longestMatch(hashHead), c.lookahead)
		}
		var flush, pad bool
		if c.matchLength >= minMatch {
			flush = c.gnuTally(c.tallyDist(c.strstart-c.matchStart, c.matchLength-minMatch))
			c.lookahead -= c.matchLength
			c.rsyncRoll(c.strstart, c.matchLength)
			if c.matchLength <= c.maxLazy {
				c.matchLength--
				for {
					c.strstart++
					c.insertString(c.strstart)
					c.matchLength--
					if c.matchLength == 0 {
						break
					}
				}
				c.strstart++
			} else {
				c.strstart += c.matchLength
				c.matchLength = 0
			}
		} else {
			flush = c.gnuTally(c.tallyLit(c.window[c.strstart]))
			c.rsyncRoll(c.strstart, 1)
			c.lookahead--
			c.strstart++
		}
		if c.rsyncDue() {
			flush, pad = true, true
		}
		if flush || c.strstart == c.seg.cut {
			c.flushBlock(false, pad)
		}
	}
	c.flushBlock(true, false)
	return true
}

func (c *compressor) gnuSlow() bool {
	for {
		for c.lookahead < minLookahead && !c.eofile {
			if !c.gnuFill() {
				return false
			}
		}
		if c.lookahead == 0 {
			break
		}
		hashHead := c.insertString(c.strstart)
		c.prevLength, c.prevMatch = c.matchLength, c.matchStart
		c.matchLength = minMatch - 1
		if hashHead != 0 && c.prevLength < c.maxLazy && c.strstart-hashHead <= c.maxDist &&
			c.strstart <= c.windowSize-minLookahead {
			c.matchLength = min(c.longestMatch(hashHead), c.lookahead)
			if c.matchLength == minMatch && c.strstart-c.matchStart > tooFar {
				c.matchLength--
			}
		}
		switch {
		case c.prevLength >= minMatch && c.matchLength <= c.prevLength:
			flush := c.gnuTally(c.tallyDist(c.strstart-1-c.prevMatch, c.prevLength-minMatch))
			c.lookahead -= c.prevLength - 1
			c.prevLength -= 2
			c.rsyncRoll(c.strstart, c.prevLength+1)
			for {
				c.strstart++
				c.insertString(c.strstart)
				c.prevLength--
				if c.prevLength == 0 {
					break
				}
			}
			c.matchAvailable = false
			c.matchLength = minMatch - 1
			c.strstart++
			pad := c.rsyncDue()
			if flush || pad || c.strstart == c.seg.cut {
				c.flushBlock(false, pad)
			}
		case c.matchAvailable:
			flush := c.gnuTally(c.tallyLit(c.window[c.strstart-1]))
			pad := c.rsyncDue()
			if flush || pad || c.strstart == c.seg.cut {
				c.flushBlock(false, pad)
			}
			c.rsyncRoll(c.strstart, 1)
			c.strstart++
			c.lookahead--
		default:
			if c.rsyncDue() {
				c.flushBlock(false, true)
			}
			c.matchAvailable = true
			c.rsyncRoll(c.strstart, 1)
			c.strstart++
			c.lookahead--
		}
	}
	if c.matchAvailable {
		c.tallyLit(c.window[c.strstart-1])
	}
	c.flushBlock(true, false)
	return true
}
