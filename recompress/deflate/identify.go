package deflate

import (
	"bytes"
	"errors"
	"hash/crc32"
	"slices"
)

// ErrNoEngine reports a deflate stream that no engine reproduces: it was
// made by another encoder (pigz, zlib-ng, Go, zopfli, 7-Zip, ...).
var ErrNoEngine = errors.New("deflate: no engine reproduces the stream")

// Hint carries what the wrapper around a deflate stream suggests about its
// maker. Hints only order the candidates; they never exclude one.
type Hint struct {
	// GzipXFL is the XFL byte of a gzip header, or -1.
	GzipXFL int
	// ZlibLevel is the FLEVEL field of a zlib header (0..3), or -1.
	ZlibLevel int
	// PreferGzip puts the GNU gzip engine first (an outer .tar.gz layer).
	PreferGzip bool
}

// NoHint is a Hint that suggests nothing.
var NoHint = Hint{GzipXFL: -1, ZlibLevel: -1}

// Identification limits: how much of a stream Identify looks at.
const (
	// MaxIdentifyOut caps the decompressed bytes Identify decodes.
	MaxIdentifyOut = 8 << 20
	// IdentifyPrefix is how much compressed data callers should offer.
	IdentifyPrefix = 1 << 20
)

// Result is the outcome of Identify.
type Result struct {
	Params Params
	// Verified is how many leading compressed bytes the engine reproduced.
	Verified int
	// Complete is set when the whole stream was given and reproduced:
	// no further verification is needed. Verified is then the stream's
	// length, and ContentLen and ContentCRC (CRC-32, IEEE) describe the
	// content the engine made it from, for the caller to check that its
	// own inflater decoded the same.
	Complete   bool
	ContentLen int
	ContentCRC uint32
	// Survivors counts the candidates that reproduced the prefix.
	Survivors int
	// Others are the next survivors after Params, most likely first (at
	// most MaxOthers): a prefix of incompressible data (a tar that starts
	// with a compressed member) often fits several levels, which only
	// later content tells apart, so the caller verifies them side by side.
	Others []Params
}

// MaxOthers bounds Result.Others: with the first, the seven levels GNU
// gzip and zlib mark with XFL 0 (2–8) fit.
const MaxOthers = 7

// Identify finds the engine and parameters that reproduce a raw deflate
// stream from its first bytes. src is the stream's head (IdentifyPrefix
// bytes are enough); it may run past the end of the stream (a gzip
// trailer, further members), which is recognised and ignored. Candidates
// are run on the decoded head and dropped at their first wrong symbol or
// byte; the first survivor in order of likelihood is returned. Unless
// Complete is set in the result (the whole stream was in src and was
// rebuilt byte for byte), the caller must verify the rest of the stream.
func Identify(src []byte, hint Hint) (Result, error) {
	pr := parseStream(src, MaxIdentifyOut)
	if pr.stopped != nil && !errors.Is(pr.stopped, errTruncated) && !errors.Is(pr.stopped, errOutLimit) {
		if len(pr.blocks) == 0 {
			return Result{}, pr.stopped
		}
	}
	if len(pr.blocks) == 0 {
		return Result{}, ErrNoEngine
	}
	whole := pr.end
	if whole {
		// Bytes after the final block are not part of the stream.
		src = src[:(pr.blocks[len(pr.blocks)-1].bitEnd+7)/8]
	}

	var stored *Result
	if allStored(pr) {
		r, ok := storedResult(pr, src, whole)
		if ok && whole {
			return r, nil
		}
		if ok {
			// Only the head is known to be stored blocks: an encoder
			// that stored incompressible input may compress what
			// follows, so its candidates come first.
			stored = &r
		}
	}

	cands := candidates(pr, hint)
	var best Result
	found := 0
	c := &compressor{}
	for _, p := range cands {
		n, ok := tryCandidate(c, p, pr, src, whole)
		if !ok {
			continue
		}
		found++
		if found == 1 {
			best = Result{Params: p, Verified: n, Complete: whole}
			if whole {
				best.ContentLen, best.ContentCRC = len(pr.out), crc32.ChecksumIEEE(pr.out)
				break // reproduced exactly: no better answer exists
			}
		} else if len(best.Others) < MaxOthers {
			best.Others = append(best.Others, p)
		}
	}
	if stored != nil {
		if found == 0 {
			return *stored, nil
		}
		found++
		if len(best.Others) < MaxOthers {
			best.Others = append(best.Others, stored.Params)
		}
	}
	if found == 0 {
		return Result{}, ErrNoEngine
	}
	best.Survivors = found
	return best, nil
}

// storedResult describes a head of stored blocks as the stored engine with
// their lengths, if it rebuilds them.
func storedResult(pr *parsed, src []byte, whole bool) (Result, bool) {
	var runs []StoredRun
	for _, b := range pr.blocks {
		runs = appendRun(runs, uint16(b.inLen))
	}
	p := Params{Engine: Stored, Runs: runs}
	end := (pr.blocks[len(pr.blocks)-1].bitEnd + 7) / 8
	// Rebuild them: another encoder may set the padding bits after a
	// block header, which ours leaves zero.
	sw := &storedWriter{runs: runs}
	var bw bitWriter
	err := sw.write(pr.out, &bw)
	if err == nil && whole {
		err = sw.finish(&bw)
	}
	if err != nil || !bytes.HasPrefix(src, bw.out) || whole && len(bw.out) != len(src) {
		return Result{}, false
	}
	r := Result{Params: p, Verified: end, Complete: whole, Survivors: 1}
	if whole {
		r.ContentLen, r.ContentCRC = len(pr.out), crc32.ChecksumIEEE(pr.out)
	}
	return r, true
}

func allStored(pr *parsed) bool {
	for _, b := range pr.blocks {
		if !b.stored {
			return false
		}
	}
	return true
}

func appendRun(runs []StoredRun, l uint16) []StoredRun {
	if n := len(runs); n > 0 && runs[n-1].Len == l && runs[n-1].Count < 1<<32-1 {
		runs[n-1].Count++
		return runs
	}
	return append(runs, StoredRun{Len: l, Count: 1})
}

// candidates lists the parameter sets that the parsed head does not rule
// out, most likely first.
func candidates(pr *parsed, hint Hint) []Params {
	c := &candList{head: factsOf(pr), levels: levelsByHint(hint)}
	if hint.PreferGzip {
		c.gzip()
		c.zlib()
	} else {
		c.zlib()
		c.gzip()
	}
	return c.out
}

// headFacts is what the parsed head tells about its encoder.
type headFacts struct {
	anyMatch  bool // some block has a match
	allDist1  bool // every block with matches has only distance 1 (RLE)
	allFixed  bool // every Huffman block uses the fixed code
	maxDist   int  // the longest match distance
	firstFull int  // symbols of the first complete non-final Huffman block, or -1
	finalSyms int  // symbols of the final block, or -1
}

// factsOf gathers the facts of the Huffman blocks of pr.
func factsOf(pr *parsed) headFacts {
	f := headFacts{allDist1: true, allFixed: true, firstFull: -1, finalSyms: -1}
	for _, b := range pr.blocks {
		if b.stored {
			continue
		}
		if !b.fixed {
			f.allFixed = false
		}
		if b.maxDist > 0 {
			f.anyMatch = true
			if !b.dist1 {
				f.allDist1 = false
			}
		}
		f.maxDist = max(f.maxDist, b.maxDist)
		if !b.final && f.firstFull < 0 {
			f.firstFull = b.nsyms
		}
		if b.final {
			f.finalSyms = b.nsyms
		}
	}
	return f
}

// minWindowBits is the smallest zlib window that holds the head's
// longest match.
func (f headFacts) minWindowBits() int {
	wb := 9
	for wb < 15 && f.maxDist > 1<<wb-minLookahead {
		wb++
	}
	return wb
}

// memLevelFits reports whether zlib memory level m fits the block sizes:
// zlib ends a block at exactly 2^(memLevel+6)-1 symbols, and a final
// block is shorter.
func (f headFacts) memLevelFits(m int) bool {
	full := 1<<(m+6) - 1
	if f.firstFull >= 0 {
		return f.firstFull == full
	}
	return f.finalSyms < full
}

// The orders in which zlib memory levels and window bits are tried.
var (
	zlibMemOrder   = []int{8, 9, 7, 6, 5, 4, 3, 2, 1}
	zlibWBitsOrder = []int{15, 14, 13, 12, 11, 10, 9}
)

// candList collects the candidates for a head, in order.
type candList struct {
	head   headFacts
	levels []int // levels 1..9, most likely first
	out    []Params
}

// add appends p if it is a valid configuration.
func (c *candList) add(p Params) {
	if p.Validate() == nil {
		c.out = append(c.out, p)
	}
}

// gzip adds the GNU gzip candidates: every level, without and with
// --rsyncable. None fits a head that is a single final block of
// gnuLitBuf-1 symbols or more: gzip's literal buffer ends blocks sooner.
func (c *candList) gzip() {
	if c.head.firstFull < 0 && c.head.finalSyms >= gnuLitBuf-1 {
		return
	}
	for _, l := range c.levels {
		c.add(GzipParams(l, RsyncOff))
	}
	for _, l := range c.levels {
		c.add(GzipParams(l, RsyncUpstream))
	}
}

// zlib adds the zlib candidates of every memory level that fits the
// block sizes and every window that holds the matches.
func (c *candList) zlib() {
	minWBits := c.head.minWindowBits()
	for _, m := range zlibMemOrder {
		if !c.head.memLevelFits(m) {
			continue
		}
		for _, wb := range zlibWBitsOrder {
			if wb < minWBits {
				continue
			}
			c.zlibWindow(wb, m)
		}
	}
}

// zlibWindow adds the zlib candidates of window bits wb and memory level
// m: each level with the strategies the head allows, then the run-length
// and Huffman-only strategies when every match has distance 1.
func (c *candList) zlibWindow(wb, m int) {
	for _, l := range c.levels {
		c.add(ZlibParams(l, wb, m, DefaultStrategy))
		if l >= 4 {
			c.add(ZlibParams(l, wb, m, Filtered))
		}
		if c.head.allFixed {
			c.add(ZlibParams(l, wb, m, Fixed))
			p := ZlibParams(l, wb, m, Fixed)
			p.Variant |= ZlibFixedBefore1213
			c.add(p)
		}
	}
	if c.head.allDist1 {
		// deflate_rle and deflate_huff ignore the level.
		lv := c.levels[0]
		if c.head.anyMatch {
			c.add(ZlibParams(lv, wb, m, RLE))
		} else {
			c.add(ZlibParams(lv, wb, m, HuffmanOnly))
			c.add(ZlibParams(lv, wb, m, RLE))
		}
	}
}

// levelsByHint orders the levels 1..9 by what the header suggests.
func levelsByHint(h Hint) []int {
	order := []int{6, 4, 9, 1, 5, 2, 3, 7, 8}
	var first []int
	switch {
	case h.GzipXFL == 2:
		first = []int{9}
	case h.GzipXFL == 4:
		first = []int{1}
	case h.GzipXFL == 0:
		// GNU gzip and zlib mark levels 1 and 9 in XFL: 2–8 first.
		first = []int{6, 5, 4, 7, 8, 3, 2}
	case h.ZlibLevel == 0:
		first = []int{1}
	case h.ZlibLevel == 1:
		first = []int{4, 5, 2, 3}
	case h.ZlibLevel == 2:
		first = []int{6}
	case h.ZlibLevel == 3:
		first = []int{9, 7, 8}
	}
	res := slices.Clone(first)
	for _, l := range order {
		if !slices.Contains(res, l) {
			res = append(res, l)
		}
	}
	return res
}

// tryCandidate runs p over the decoded head and reports whether its
// symbols, block ends and bytes agree with the original, and how many
// compressed bytes it reproduced.
func tryCandidate(c *compressor, p Params, pr *parsed, src []byte, whole bool) (int, bool) {
	c.reset(p)
	chk := &tokenCheck{blocks: pr.blocks, syms: pr.syms}
	c.check = chk
	var stage []byte
	const step = 4 << 10
	data := pr.out
	for i := 0; i < len(data) && !chk.done; i += step {
		piece := data[i:min(i+step, len(data))]
		if c.gnu {
			stage = append(stage, piece...)
			c.in = stage
			c.gnuRun()
			stage = stage[:copy(stage, c.in)]
		} else {
			c.in = piece
			c.zlibRun(false)
		}
		chk.scan(c)
		if chk.failed || !bytes.HasPrefix(src, c.bw.out) {
			return 0, false
		}
	}
	if whole {
		c.closed = true
		if c.gnu {
			c.in = stage
			c.gnuRun()
		} else {
			c.in = nil
			c.zlibRun(true)
		}
		if chk.failed || !bytes.Equal(c.bw.out, src) {
			return 0, false
		}
		return len(src), true
	}
	if chk.bi == 0 && chk.symbols < 64 {
		// Not enough evidence: no block end and hardly any symbols.
		return 0, false
	}
	return len(c.bw.out), true
}
