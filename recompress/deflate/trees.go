package deflate

// Huffman tree construction and block output, re-implementing the rules of
// zlib's trees.c (which GNU gzip's trees.c shares): the same heap order and
// tie-breaking by depth, the same bit-length overflow repair, the same
// choice between stored, fixed and dynamic blocks. Only lengths matter for
// the output; canonical codes follow from them.

// treeDesc describes one of the three trees of a block.
type treeDesc struct {
	freq    []uint32 // frequency of each leaf and internal node
	length  []uint16 // code length (after buildTree)
	dad     []uint16 // parent node during construction
	codes   []code   // canonical codes of the leaves (after buildTree)
	elems   int      // number of leaves
	maxLen  int      // longest code allowed
	extra   []uint8  // extra bits of each leaf from extraBase on
	base    int      // first leaf with extra bits
	static  []code   // the fixed code, or nil (bit-length tree)
	maxCode int      // largest leaf with a nonzero frequency
}

type trees struct {
	lFreq, dFreq, blFreq [heapSize]uint32
	lLen, dLen, blLen    [heapSize]uint16
	lDad, dDad, blDad    [heapSize]uint16
	lCode                [lCodes + 2]code
	dCode                [dCodes]code
	blCode               [blCodes]code

	l, d, bl treeDesc

	heap    [2*lCodes + 1]int
	heapLen int
	heapMax int
	depth   [2*lCodes + 1]uint8
	blCount [maxBits + 1]int

	optLen    uint64 // bit length of the block with the dynamic trees
	staticLen uint64 // bit length of the block with the fixed trees
}

func (t *trees) init() {
	t.l = treeDesc{freq: t.lFreq[:], length: t.lLen[:], dad: t.lDad[:], codes: t.lCode[:],
		elems: lCodes, maxLen: maxBits, extra: extraLBits[:], base: literals + 1, static: staticLTree[:]}
	t.d = treeDesc{freq: t.dFreq[:], length: t.dLen[:], dad: t.dDad[:], codes: t.dCode[:],
		elems: dCodes, maxLen: maxBits, extra: extraDBits[:], base: 0, static: staticDTree[:]}
	t.bl = treeDesc{freq: t.blFreq[:], length: t.blLen[:], dad: t.blDad[:], codes: t.blCode[:],
		elems: blCodes, maxLen: maxBLBits, extra: extraBLBits[:], base: 0, static: nil}
	t.initBlock()
}

// initBlock resets the frequencies for a new block.
func (t *trees) initBlock() {
	clear(t.lFreq[:lCodes])
	clear(t.dFreq[:dCodes])
	clear(t.blFreq[:blCodes])
	t.lFreq[endBlock] = 1
	t.optLen, t.staticLen = 0, 0
}

// smaller orders heap nodes by frequency, then by depth.
func (t *trees) smaller(freq []uint32, n, m int) bool {
	return freq[n] < freq[m] || (freq[n] == freq[m] && t.depth[n] <= t.depth[m])
}

// pqDownHeap restores the heap property by moving node k down.
func (t *trees) pqDownHeap(freq []uint32, k int) {
	v := t.heap[k]
	j := k << 1
	for j <= t.heapLen {
		if j < t.heapLen && t.smaller(freq, t.heap[j+1], t.heap[j]) {
			j++
		}
		if t.smaller(freq, v, t.heap[j]) {
			break
		}
		t.heap[k] = t.heap[j]
		k = j
		j <<= 1
	}
	t.heap[k] = v
}

// genBitLen computes the code lengths of a built tree, limiting them to
// desc.maxLen the way zlib does, and adds the block's cost to optLen and
// staticLen.
func (t *trees) genBitLen(desc *treeDesc) {
	freq, length, dad := desc.freq, desc.length, desc.dad
	overflow := 0
	for i := range t.blCount {
		t.blCount[i] = 0
	}
	length[t.heap[t.heapMax]] = 0 // the root
	h := t.heapMax + 1
	for ; h < heapSize; h++ {
		n := t.heap[h]
		bits := int(length[dad[n]]) + 1
		if bits > desc.maxLen {
			bits = desc.maxLen
			overflow++
		}
		length[n] = uint16(bits)
		if n > desc.maxCode {
			continue // not a leaf
		}
		t.blCount[bits]++
		xbits := 0
		if n >= desc.base {
			xbits = int(desc.extra[n-desc.base])
		}
		f := uint64(freq[n])
		t.optLen += f * uint64(bits+xbits)
		if desc.static != nil {
			t.staticLen += f * uint64(int(desc.static[n].len)+xbits)
		}
	}
	if overflow == 0 {
		return
	}
	// Move leaves down until the overflowing ones fit, then reassign the
	// lengths in order of increasing frequency.
	for overflow > 0 {
		bits := desc.maxLen - 1
		for t.blCount[bits] == 0 {
			bits--
		}
		t.blCount[bits]--
		t.blCount[bits+1] += 2
		t.blCount[desc.maxLen]--
		overflow -= 2
	}
	for bits := desc.maxLen; bits != 0; bits-- {
		n := t.blCount[bits]
		for n != 0 {
			h--
			m := t.heap[h]
			if m > desc.maxCode {
				continue
			}
			if int(length[m]) != bits {
				t.optLen += uint64(int64(bits)-int64(length[m])) * uint64(freq[m])
				length[m] = uint16(bits)
			}
			n--
		}
	}
}

// buildTree builds the Huffman tree of desc and assigns its codes.
func (t *trees) buildTree(desc *treeDesc) {
	freq, length, dad := desc.freq, desc.length, desc.dad
	maxCode := -1
	t.heapLen, t.heapMax = 0, heapSize
	for n := 0; n < desc.elems; n++ {
		if freq[n] != 0 {
			t.heapLen++
			t.heap[t.heapLen] = n
			maxCode = n
			t.depth[n] = 0
		} else {
			length[n] = 0
		}
	}
	// At least two codes of nonzero frequency, as zlib forces them.
	for t.heapLen < 2 {
		node := 0
		if maxCode < 2 {
			maxCode++
			node = maxCode
		}
		t.heapLen++
		t.heap[t.heapLen] = node
		freq[node] = 1
		t.depth[node] = 0
		t.optLen--
		if desc.static != nil {
			t.staticLen -= uint64(desc.static[node].len)
		}
	}
	desc.maxCode = maxCode
	for n := t.heapLen / 2; n >= 1; n-- {
		t.pqDownHeap(freq, n)
	}
	node := desc.elems
	for {
		// pqremove: take the least frequent node.
		n := t.heap[1]
		t.heap[1] = t.heap[t.heapLen]
		t.heapLen--
		t.pqDownHeap(freq, 1)
		m := t.heap[1]

		t.heapMax--
		t.heap[t.heapMax] = n
		t.heapMax--
		t.heap[t.heapMax] = m

		freq[node] = freq[n] + freq[m]
		dn, dm := t.depth[n], t.depth[m]
		if dm > dn {
			dn = dm
		}
		t.depth[node] = dn + 1
		dad[n], dad[m] = uint16(node), uint16(node)
		t.heap[1] = node
		node++
		t.pqDownHeap(freq, 1)
		if t.heapLen < 2 {
			break
		}
	}
	t.heapMax--
	t.heap[t.heapMax] = t.heap[1]

	t.genBitLen(desc)

	var count [maxBits + 1]int
	for i := 1; i <= maxBits; i++ {
		count[i] = t.blCount[i]
	}
	for n := 0; n <= maxCode; n++ {
		desc.codes[n].len = length[n]
	}
	genCodes(desc.codes, maxCode, &count)
}

// scanTree counts, in the bit-length tree, the codes needed to send tree.
func (t *trees) scanTree(length []uint16, maxCode int) {
	prevLen := -1
	nextLen := int(length[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextLen == 0 {
		maxCount, minCount = 138, 3
	}
	length[maxCode+1] = 0xffff // guard
	for n := 0; n <= maxCode; n++ {
		curLen := nextLen
		nextLen = int(length[n+1])
		count++
		if count < maxCount && curLen == nextLen {
			continue
		} else if count < minCount {
			t.blFreq[curLen] += uint32(count)
		} else if curLen != 0 {
			if curLen != prevLen {
				t.blFreq[curLen]++
			}
			t.blFreq[rep3to6]++
		} else if count <= 10 {
			t.blFreq[repz3to10]++
		} else {
			t.blFreq[repz11to138]++
		}
		count = 0
		prevLen = curLen
		if nextLen == 0 {
			maxCount, minCount = 138, 3
		} else if curLen == nextLen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

// buildBLTree builds the bit-length tree and returns the index in blOrder
// of the last bit-length code to send.
func (t *trees) buildBLTree() int {
	t.scanTree(t.lLen[:], t.l.maxCode)
	t.scanTree(t.dLen[:], t.d.maxCode)
	t.buildTree(&t.bl)
	maxBLIndex := blCodes - 1
	for ; maxBLIndex >= 3; maxBLIndex-- {
		if t.blLen[blOrder[maxBLIndex]] != 0 {
			break
		}
	}
	t.optLen += 3*uint64(maxBLIndex+1) + 5 + 5 + 4
	return maxBLIndex
}

// bitWriter accumulates output bits LSB first, as deflate wants them.
type bitWriter struct {
	out   []byte // whole bytes not yet handed to the destination
	acc   uint64
	nbits uint
	total uint64 // bytes ever appended to out
}

func (b *bitWriter) sendBits(v uint32, n uint) {
	b.acc |= uint64(v) << b.nbits
	b.nbits += n
	if b.nbits >= 32 {
		b.out = append(b.out, byte(b.acc), byte(b.acc>>8), byte(b.acc>>16), byte(b.acc>>24))
		b.total += 4
		b.acc >>= 32
		b.nbits -= 32
	}
}

// windup writes out the remaining bits, padding to a byte boundary.
func (b *bitWriter) windup() {
	for b.nbits > 0 {
		b.out = append(b.out, byte(b.acc))
		b.total++
		b.acc >>= 8
		if b.nbits >= 8 {
			b.nbits -= 8
		} else {
			b.nbits = 0
		}
	}
	b.acc = 0
}

// aligned reports whether the output is at a byte boundary.
func (b *bitWriter) aligned() bool { return b.nbits%8 == 0 }

func (b *bitWriter) putShort(v uint16) {
	b.out = append(b.out, byte(v), byte(v>>8))
	b.total += 2
}

func (b *bitWriter) putBytes(p []byte) {
	b.out = append(b.out, p...)
	b.total += uint64(len(p))
}

// storedBlock writes a stored block of buf (zlib's _tr_stored_block, GNU
// gzip's copy_block with a header).
func (b *bitWriter) storedBlock(buf []byte, last bool) {
	b.sendBits(storedBlock<<1|boolBit(last), 3)
	b.windup()
	b.putShort(uint16(len(buf)))
	b.putShort(^uint16(len(buf)))
	b.putBytes(buf)
}

func boolBit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// sendAllTrees writes the header of a dynamic block.
func (t *trees) sendAllTrees(b *bitWriter, lcodes, dcodes, blcodes int) {
	b.sendBits(uint32(lcodes-257), 5)
	b.sendBits(uint32(dcodes-1), 5)
	b.sendBits(uint32(blcodes-4), 4)
	for rank := 0; rank < blcodes; rank++ {
		b.sendBits(uint32(t.blLen[blOrder[rank]]), 3)
	}
	t.sendTree(b, t.lLen[:], lcodes-1)
	t.sendTree(b, t.dLen[:], dcodes-1)
}

func (t *trees) sendCode(b *bitWriter, c int) {
	b.sendBits(uint32(t.blCode[c].bits), uint(t.blCode[c].len))
}

// sendTree writes the code lengths of a tree with the bit-length code.
func (t *trees) sendTree(b *bitWriter, length []uint16, maxCode int) {
	prevLen := -1
	nextLen := int(length[0])
	count := 0
	maxCount, minCount := 7, 4
	if nextLen == 0 {
		maxCount, minCount = 138, 3
	}
	for n := 0; n <= maxCode; n++ {
		curLen := nextLen
		nextLen = int(length[n+1])
		count++
		if count < maxCount && curLen == nextLen {
			continue
		} else if count < minCount {
			for ; count != 0; count-- {
				t.sendCode(b, curLen)
			}
		} else if curLen != 0 {
			if curLen != prevLen {
				t.sendCode(b, curLen)
				count--
			}
			t.sendCode(b, rep3to6)
			b.sendBits(uint32(count-3), 2)
		} else if count <= 10 {
			t.sendCode(b, repz3to10)
			b.sendBits(uint32(count-3), 3)
		} else {
			t.sendCode(b, repz11to138)
			b.sendBits(uint32(count-11), 7)
		}
		count = 0
		prevLen = curLen
		if nextLen == 0 {
			maxCount, minCount = 138, 3
		} else if curLen == nextLen {
			maxCount, minCount = 6, 3
		} else {
			maxCount, minCount = 7, 4
		}
	}
}

// compressBlock writes the block's symbols with the given codes and the
// end-of-block code. A symbol is dist<<16 | lc: lc is a literal byte when
// dist is 0, else the match length minus 3.
func compressBlock(b *bitWriter, syms []uint32, ltree, dtree []code) {
	for _, s := range syms {
		dist := int(s >> 16)
		lc := int(s & 0xff)
		if dist == 0 {
			c := ltree[lc]
			b.sendBits(uint32(c.bits), uint(c.len))
			continue
		}
		lcode := int(lengthCode[lc])
		c := ltree[lcode+literals+1]
		b.sendBits(uint32(c.bits), uint(c.len))
		if extra := uint(extraLBits[lcode]); extra != 0 {
			b.sendBits(uint32(lc-int(baseLength[lcode])), extra)
		}
		dist--
		dc := int(dCode(dist))
		c = dtree[dc]
		b.sendBits(uint32(c.bits), uint(c.len))
		if extra := uint(extraDBits[dc]); extra != 0 {
			b.sendBits(uint32(dist-int(baseDist[dc])), extra)
		}
	}
	c := ltree[endBlock]
	b.sendBits(uint32(c.bits), uint(c.len))
}
