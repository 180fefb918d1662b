package deflate

// The compression loops of zlib's deflate.c (deflate_fast, deflate_slow,
// deflate_rle, deflate_huff) and its fill_window, for a stream fed with
// Z_NO_FLUSH and finished with Z_FINISH. Each returns true when the stream
// is finished, false when it needs more input.

// zlibFill is zlib's fill_window: slide when needed, then move input into
// the window until there is enough lookahead or no more input.
func (c *compressor) zlibFill() {
	for {
		more := c.windowSize - c.lookahead - c.strstart
		if c.strstart >= c.wSize+c.maxDist {
			c.slide()
			more += c.wSize
		}
		if len(c.in) == 0 {
			return
		}
		at := c.strstart + c.lookahead
		n := copy(c.window[at:at+more], c.in)
		c.in = c.in[n:]
		c.lookahead += n
		// zlib re-derives its hash here and inserts the strings left over
		// from a flush (c.insert); with no flushes insert stays zero and the
		// hash is a function of the window bytes (see insertString).
		for c.insert > 0 && c.lookahead+c.insert >= minMatch {
			c.insertString(c.strstart - c.insert)
			c.insert--
		}
		if c.lookahead >= minLookahead || len(c.in) == 0 {
			return
		}
	}
}

func (c *compressor) zlibRun(finish bool) bool {
	switch {
	case c.p.Strategy == HuffmanOnly:
		return c.zlibHuff(finish)
	case c.p.Strategy == RLE:
		return c.zlibRLE(finish)
	case configTable[c.p.Level].slow:
		return c.zlibSlow(finish)
	default:
		return c.zlibFast(finish)
	}
}

func (c *compressor) zlibFast(finish bool) bool {
	for {
		if c.lookahead < minLookahead {
			c.zlibFill()
			if c.lookahead < minLookahead && !finish {
				return false
			}
			if c.lookahead == 0 {
				break
			}
		}
		hashHead := 0
		if c.lookahead >= minMatch {
			hashHead = c.insertString(c.strstart)
		}
		if hashHead != 0 && c.strstart-hashHead <= c.maxDist {
			c.matchLength = c.longestMatch(hashHead)
		}
		var bflush bool
		if c.matchLength >= minMatch {
			bflush = c.tallyDist(c.strstart-c.matchStart, c.matchLength-minMatch)
			c.lookahead -= c.matchLength
			if c.matchLength <= c.maxLazy && c.lookahead >= minMatch {
				// max_insert_length is max_lazy at these levels.
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
			bflush = c.tallyLit(c.window[c.strstart])
			c.lookahead--
			c.strstart++
		}
		if bflush || c.strstart == c.seg.cut {
			c.flushBlock(false, false)
		}
	}
	c.flushBlock(true, false)
	return true
}

func (c *compressor) zlibSlow(finish bool) bool {
	filtered := c.p.Strategy == Filtered
	for {
		if c.lookahead < minLookahead {
			c.zlibFill()
			if c.lookahead < minLookahead && !finish {
				return false
			}
			if c.lookahead == 0 {
				break
			}
		}
		hashHead := 0
		if c.lookahead >= minMatch {
			hashHead = c.insertString(c.strstart)
		}
		c.prevLength, c.prevMatch = c.matchLength, c.matchStart
		c.matchLength = minMatch - 1
		if hashHead != 0 && c.prevLength < c.maxLazy && c.strstart-hashHead <= c.maxDist {
			c.matchLength = c.longestMatch(hashHead)
			if c.matchLength <= 5 && (filtered ||
				(c.matchLength == minMatch && c.strstart-c.matchStart > tooFar)) {
				c.matchLength = minMatch - 1
			}
		}
		if c.prevLength >= minMatch && c.matchLength <= c.prevLength {
			maxInsert := c.strstart + c.lookahead - minMatch
			bflush := c.tallyDist(c.strstart-1-c.prevMatch, c.prevLength-minMatch)
			c.lookahead -= c.prevLength - 1
			c.prevLength -= 2
			for {
				c.strstart++
				if c.strstart <= maxInsert {
					c.insertString(c.strstart)
				}
				c.prevLength--
				if c.prevLength == 0 {
					break
				}
			}
			c.matchAvailable = false
			c.matchLength = minMatch - 1
			c.strstart++
			if bflush || c.strstart == c.seg.cut {
				c.flushBlock(false, false)
			}
		} else if c.matchAvailable {
			if c.tallyLit(c.window[c.strstart-1]) || c.strstart == c.seg.cut {
				c.flushBlock(false, false)
			}
			c.strstart++
			c.lookahead--
		} else {
			c.matchAvailable = true
			c.strstart++
			c.lookahead--
		}
	}
	if c.matchAvailable {
		c.tallyLit(c.window[c.strstart-1])
		c.matchAvailable = false
	}
	c.flushBlock(true, false)
	return true
}

// zlibRLE is deflate_rle of zlib 1.2.5.1 and later: matches of distance
// one only, no hash chains.
func (c *compressor) zlibRLE(finish bool) bool {
	for {
		if c.lookahead <= maxMatch {
			c.zlibFill()
			if c.lookahead <= maxMatch && !finish {
				return false
			}
			if c.lookahead == 0 {
				break
			}
		}
		c.matchLength = 0
		if c.lookahead >= minMatch && c.strstart > 0 {
			w := &c.window
			p := w[c.strstart-1]
			s := c.strstart
			if p == w[s] && p == w[s+1] && p == w[s+2] {
				n := 3
				for n < maxMatch && w[s+n] == p {
					n++
				}
				c.matchLength = min(n, c.lookahead)
			}
		}
		var bflush bool
		if c.matchLength >= minMatch {
			bflush = c.tallyDist(1, c.matchLength-minMatch)
			c.lookahead -= c.matchLength
			c.strstart += c.matchLength
			c.matchLength = 0
		} else {
			bflush = c.tallyLit(c.window[c.strstart])
			c.lookahead--
			c.strstart++
		}
		if bflush || c.strstart == c.seg.cut {
			c.flushBlock(false, false)
		}
	}
	c.flushBlock(true, false)
	return true
}

// zlibHuff is deflate_huff: literals only.
func (c *compressor) zlibHuff(finish bool) bool {
	for {
		if c.lookahead == 0 {
			c.zlibFill()
			if c.lookahead == 0 {
				if !finish {
					return false
				}
				break
			}
		}
		bflush := c.tallyLit(c.window[c.strstart])
		c.lookahead--
		c.strstart++
		if bflush || c.strstart == c.seg.cut {
			c.flushBlock(false, false)
		}
	}
	c.flushBlock(true, false)
	return true
}
