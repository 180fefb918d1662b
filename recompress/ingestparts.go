package recompress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/larder/larder/recompress/deflate"
)

// Parts verified at ingest. When Identify names a single engine for a
// member, the member is not re-deflated in one piece on one goroutine:
// the layer's own inflater (deflate.Inflater) reports the original's block
// ends as it reads, a planner cuts the member there into parts (the rules
// of segplan.go: stored runs of minStoredRun bytes or more become stored
// parts, engine parts end at the first block end past partSize), and each
// part is verified on a worker by running exactly what restore will run
// for it (the engine restarted after a warm-up, deflate.Split, or the
// stored blocks) and comparing its bits with the original's. A part that
// matches is recorded; nothing else is, so the recipe holds only what
// restore is known to rebuild, and no proof about engine states is
// needed. Restarts try the cheapest warm-up first.
//
// A part that no warm-up rebuilds falls back to the engine of the part
// before: the two are verified again as one part (the engine restarted
// where the earlier one starts, or run from the stream's beginning),
// up to MaxPartContent. If that fails too, the member is partial from the
// failed part's start: its verified parts stay (recipe version 3) and the
// original bytes from there on are stored verbatim.
//
// The reading goroutine plans and hands out parts; a committer goroutine
// takes their results in order. The reader keeps the content and the
// original bytes from the last verified part's warm-up on (what a
// fallback needs), and waits when partQueue parts are out, so memory is
// bounded by a few parts whatever the member's size.

// partQueue bounds the parts of one member handed out but not yet
// committed.
var partQueue = runtime.GOMAXPROCS(0) + 1

// maxHistory bounds the content or original bytes a part verifier keeps:
// a fallback part of MaxPartContent and the parts in flight. A member
// whose blocks are longer than that (no engine makes them) is partial.
// (A variable for tests.)
var maxHistory uint64 = 2 * MaxPartContent

// ipart is a part of a member being verified at ingest.
type ipart struct {
	Segment                 // Kind (SegStored, or set when verified) and Stored; seg() gives the rest
	start, end       uint64 // content offsets
	bitStart, bitEnd uint64 // stream bits; the final part's end is padded to a byte
	final            bool

	in     view // content (warm-up, part, lookahead)
	orig   view // original bytes bitStart/8 to (bitEnd+7)/8
	done   chan struct{}
	ok     bool
	merged bool      // a fallback of two parts
	head   *verifier // the first part's verifier, which has had its bytes
}

// partVerifier verifies one member in parts.
type partVerifier struct {
	params deflate.Params
	look   uint64 // deflate.SplitLookahead

	// The reading side's planning state.
	prev     deflate.BlockEnd // the start of the next block
	cur, run *ipart           // engine part and stored run being planned
	// A gzip --rsyncable engine follows the block it flushes at a
	// rolling-sum point with an empty stored block (a sync marker): that
	// block is engine output, and a part cannot end between the two, as
	// the engine stopped there at restore writes both. huffman: the last
	// block was a Huffman block; full: the engine part that has its size
	// and ends at the next block unless that is its marker.
	huffman bool
	full    bool
	planned []*ipart // complete, not yet handed out
	nparts  int
	queue   chan *ipart
	cdone   chan struct{}
	// head verifies the first part as it is read, as the whole-member
	// verifier does, so that a short member is checked while it is read
	// rather than after; nil once the first part is handed out.
	head     *verifier
	inflight sync.WaitGroup // parts handed out and not committed

	mu       sync.Mutex
	content  history   // the member's content
	orig     history   // its original deflate bytes
	segs     []Segment // the verified parts, in order
	last     *ipart    // where the last verified part starts (start, bitStart); nil before the first
	bits     uint64    // bits the verified parts make
	failed   bool      // the member is partial from bits on
	taken    bool      // the reading side took the original bytes from there
	stopped  bool      // nothing more is planned (failed, aborted)
	sawFinal bool
	total    uint64 // content, once the final block is seen
}

func newPartVerifier(p deflate.Params) *partVerifier {
	pv := &partVerifier{params: p, look: uint64(deflate.SplitLookahead(p)),
		queue: make(chan *ipart, partQueue), cdone: make(chan struct{})}
	// The head verifier compares the whole engine's bits: for an
	// --rsyncable engine, whose part 0 may end in a sync marker, the
	// first part is made on a worker as restore makes it instead.
	if h, err := newHeadVerifier(p); err == nil && p.Rsync == deflate.RsyncOff {
		pv.head = h
	}
	go pv.commitAll()
	return pv
}

// restartable reports whether members of engine p can be cut into parts.
func restartable(p deflate.Params) bool {
	return p.Engine != deflate.Stored
}

// block takes a block end of the original (the inflater's callback, on
// the reading goroutine).
func (pv *partVerifier) block(e deflate.BlockEnd) {
	start := pv.prev
	pv.prev = e
	if pv.isStopped() {
		return
	}
	if e.Final {
		pv.mu.Lock()
		pv.sawFinal, pv.total = true, uint64(e.Input)
		pv.mu.Unlock()
	}
	marker := pv.params.Rsync != deflate.RsyncOff && pv.huffman && e.Stored && e.StoredLen == 0
	pv.huffman = !e.Stored || marker
	if pv.full {
		pv.full = false
		if !marker {
			pv.emit(pv.cur)
			pv.cur = nil
		}
	}
	if e.Stored && !marker {
		pv.storedBlock(start, e)
		return
	}
	if pv.run != nil {
		pv.endRun()
	}
	pv.extend(start, e)
}

// extend adds block [start, e) to the engine part being planned.
func (pv *partVerifier) extend(start, e deflate.BlockEnd) {
	if pv.cur == nil {
		pv.cur = &ipart{start: uint64(start.Input), bitStart: start.Bit}
	}
	c := pv.cur
	c.end, c.bitEnd, c.final = uint64(e.Input), e.Bit, e.Final
	if e.Final {
		c.bitEnd = (e.Bit + 7) &^ 7
	}
	switch {
	case e.Final:
		pv.emit(c)
		pv.cur = nil
	case c.end-c.start >= partSize && pv.params.Rsync != deflate.RsyncOff:
		pv.full = true // emitted at the next block, with it if it is the marker
	case c.end-c.start >= partSize:
		pv.emit(c)
		pv.cur = nil
	}
}

// storedBlock adds stored block [start, e) to the stored run.
func (pv *partVerifier) storedBlock(start, e deflate.BlockEnd) {
	if pv.run == nil {
		pv.run = &ipart{Segment: Segment{Kind: SegStored}, start: uint64(start.Input), bitStart: start.Bit}
	}
	r := pv.run
	r.Stored = appendStoredRun(r.Stored, uint16(e.StoredLen))
	r.end, r.bitEnd, r.final = uint64(e.Input), e.Bit, e.Final
	if e.Final || r.end-r.start >= partSize {
		pv.endRun()
	}
}

// endRun ends the stored run: a long one becomes a part, a short one
// joins the engine part.
func (pv *partVerifier) endRun() {
	r := pv.run
	pv.run = nil
	if r.end-r.start >= minStoredRun {
		if pv.cur != nil {
			pv.emit(pv.cur)
			pv.cur = nil
		}
		pv.emit(r)
		return
	}
	// Its blocks become engine work.
	pv.extend(deflate.BlockEnd{Input: int64(r.start), Bit: r.bitStart},
		deflate.BlockEnd{Input: int64(r.end), Bit: r.bitEnd, Final: r.final})
}

// emit queues a planned part to be handed out.
func (pv *partVerifier) emit(j *ipart) {
	pv.nparts++
	if pv.nparts > MaxSegments || j.end-j.start > MaxPartContent {
		pv.overflow()
		return
	}
	pv.planned = append(pv.planned, j)
}

// feed takes content the inflater made.
func (pv *partVerifier) feed(p []byte) {
	if pv.head != nil {
		pv.head.feed(p)
	}
	pv.mu.Lock()
	if !pv.stopped {
		pv.content.write(p)
	}
	pv.mu.Unlock()
	pv.pump()
}

// addOrig takes original bytes the inflater consumed; it reports false
// once the member is partial (the bytes were not taken).
func (pv *partVerifier) addOrig(p []byte) bool {
	pv.mu.Lock()
	if pv.failed {
		pv.mu.Unlock()
		return false
	}
	if !pv.stopped {
		pv.orig.write(p)
	}
	pv.mu.Unlock()
	if pv.head != nil {
		pv.head.addOrig(p)
	}
	pv.pump()
	return true
}

func (pv *partVerifier) isStopped() bool {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return pv.stopped
}

// need is the content part j is verified from: its warm-up's start (the
// longest warm-up), and the end of its lookahead. The caller holds mu.
func (pv *partVerifier) need(j *ipart) (from, to uint64) {
	switch {
	case j.Kind == SegStored:
		return j.start, j.end
	case j.start > 0:
		from = uint64(deflate.WarmStart(pv.params, int64(j.start), deflate.MaxWarm))
	}
	to = j.end
	if !j.final {
		to = alignUp(j.end + pv.look)
		if pv.sawFinal {
			to = min(to, pv.total)
		}
	}
	return from, to
}

// pump hands out the planned parts whose content and original bytes
// have all come, then drops what no part can need any more.
func (pv *partVerifier) pump() {
	for len(pv.planned) > 0 {
		j := pv.planned[0]
		pv.mu.Lock()
		from, to := pv.need(j)
		if pv.stopped {
			pv.mu.Unlock()
			return
		}
		if pv.content.end < to || pv.orig.end < (j.bitEnd+7)/8 {
			pv.mu.Unlock()
			break
		}
		if from < pv.content.from || j.bitStart/8 < pv.orig.from {
			// Cannot happen: the history is kept from the last
			// verified part's warm-up on.
			pv.mu.Unlock()
			pv.overflow()
			return
		}
		j.in = pv.content.view(from, to)
		j.orig = pv.orig.view(j.bitStart/8, (j.bitEnd+7)/8)
		pv.mu.Unlock()
		pv.planned = pv.planned[1:]
		if pv.head != nil {
			if j.start == 0 && j.Kind != SegStored {
				j.head = pv.head // it has had all of j's bytes
				pv.head = nil
			}
			pv.dropHead()
		}
		j.done = make(chan struct{})
		pv.inflight.Add(1)
		pv.queue <- j
		go pv.verify(j)
	}
	pv.trim()
}

// trim drops the history no fallback and no planned part needs, and
// gives up on a member whose history would grow past maxHistory.
func (pv *partVerifier) trim() {
	pv.mu.Lock()
	var cKeep, oKeep uint64
	if l := pv.last; l != nil {
		cKeep, oKeep = l.start, l.bitStart/8
		if l.start > 0 {
			cKeep = uint64(deflate.WarmStart(pv.params, int64(l.start), deflate.MaxWarm))
		}
	}
	pv.content.drop(cKeep)
	pv.orig.drop(oKeep)
	over := !pv.stopped && (pv.content.len() > maxHistory || pv.orig.len() > maxHistory)
	pv.mu.Unlock()
	if over {
		pv.overflow()
	}
}

// overflow gives up cutting the member (its blocks are longer than any
// engine makes, or it has too many parts): once the parts handed out are
// committed, the member is partial from the end of the verified ones.
func (pv *partVerifier) overflow() {
	pv.mu.Lock()
	pv.stopped = true
	pv.mu.Unlock()
	pv.planned, pv.cur, pv.run = nil, nil, nil
	pv.dropHead()
	pv.inflight.Wait()
	pv.fail()
}

// dropHead stops the head verifier if no part took it.
func (pv *partVerifier) dropHead() {
	if pv.head != nil {
		_ = pv.head.finish(true) // its engine only writes to memory
		pv.head = nil
	}
}

// fail makes the member partial from the end of its verified parts.
func (pv *partVerifier) fail() {
	pv.mu.Lock()
	pv.failed, pv.stopped = true, true
	pv.mu.Unlock()
}

// verify runs part j on a worker slot.
func (pv *partVerifier) verify(j *ipart) {
	defer close(j.done)
	pv.mu.Lock()
	skip := pv.failed
	pv.mu.Unlock()
	if skip {
		if j.head != nil {
			_ = j.head.finish(true) // its engine only writes to memory
		}
		return
	}
	if j.head != nil {
		// The engine from the stream's start has run (or still runs) over
		// everything read so far: the part is exact if it matched the
		// original's bits up to the part's end (the bits after it, in the
		// same byte, are the next block's, which may differ here: its
		// input was cut short). Otherwise make the part.
		_ = j.head.finish(false) // its engine only writes to memory
		if testRefusePart == nil && j.head.matchedBits(j.bitEnd) {
			headVerified.Add(1)
			j.Kind, j.ok = SegStart, true
			return
		}
	}
	proofSlots <- struct{}{}
	defer func() { <-proofSlots }()
	j.ok = pv.try(j)
}

// headVerified counts the first parts the head verifier passed (for
// tests).
var headVerified atomic.Int64

// testRefusePart, set by tests only, fails the parts it returns true for
// (by their start), to exercise the fallbacks.
var testRefusePart func(start uint64, merged bool) bool

// try verifies j: stored blocks, the engine from the stream's start, or
// the engine restarted with the cheapest warm-up that rebuilds it.
func (pv *partVerifier) try(j *ipart) bool {
	if testRefusePart != nil && testRefusePart(j.start, j.merged) {
		return false
	}
	switch {
	case j.Kind == SegStored:
		return pv.checkStored(j)
	case j.start == 0:
		j.Kind = SegStart
		return pv.checkEngine(j, SegStart)
	}
	for k := deflate.Warm1; k <= deflate.MaxWarm; k++ {
		if pv.checkEngine(j, uint8(k)) {
			j.Kind = uint8(k)
			return true
		}
	}
	return false
}

// checkStored verifies a stored part.
func (pv *partVerifier) checkStored(j *ipart) bool {
	data := j.in.appendTo(getBuf(j.in.n))
	defer putBuf(data)
	b, err := deflate.AppendStoredBlocks(getBuf(j.orig.n), j.bitStart, j.Stored, data, j.final)
	if err != nil {
		return false
	}
	defer putBuf(b)
	c := newPartCompare(j)
	_, err = c.Write(b)
	return err == nil && c.complete()
}

// checkEngine runs the engine for j with warm-up kind (SegStart: from the
// stream's beginning), as restore will, comparing its bits with the
// original's.
func (pv *partVerifier) checkEngine(j *ipart, kind uint8) bool {
	c := newPartCompare(j)
	w, err := getWriter(c, pv.params)
	if err != nil {
		return false
	}
	defer writerPool.Put(w)
	sp := deflate.Split{Stop: -1}
	if kind != SegStart {
		sp.From = deflate.WarmStart(pv.params, int64(j.start), deflate.Warm(kind))
		sp.Cut, sp.CutBit = int64(j.start), j.bitStart
	}
	if !j.final {
		sp.Stop = int64(j.end)
	}
	if uint64(sp.From) < j.in.from || w.SetSplit(sp) != nil {
		return false
	}
	done := func() bool { return w.Stopped() || w.Missed() }
	for p, off := range j.in.pieces(uint64(sp.From)) {
		// Pieces end on block boundaries of the history, multiples of
		// FeedChunk: the engine gets the pieces restore gives it.
		if err := deflate.WriteAligned(w, p, int64(off), done); err != nil {
			return false
		}
		if done() {
			break
		}
	}
	if j.final || !w.Stopped() {
		if err := w.Close(); err != nil {
			return false
		}
	}
	return !w.Missed() && (j.final || w.Stopped()) && c.complete()
}

// errPartDiffers stops an engine whose part differs from the original.
var errPartDiffers = errors.New("recompress: part differs from the original")

// partCompare compares a part's bytes, as made, with the original's: the
// first byte's bits below the part's start and the last byte's above its
// end (which belong to the parts around it) are left out.
type partCompare struct {
	want        view
	n           int
	first, last byte // the first and last bytes wanted, masked
	bad         bool
}

func newPartCompare(j *ipart) *partCompare {
	c := &partCompare{want: j.orig}
	if c.want.n == 0 {
		return c
	}
	c.first = c.want.at(0) &^ (byte(1)<<(j.bitStart%8) - 1)
	c.last = c.want.at(c.want.n - 1)
	if c.want.n == 1 {
		c.last = c.first
	}
	if high := j.bitEnd % 8; !j.final && high != 0 {
		c.last &= byte(1)<<high - 1
	}
	return c
}

func (c *partCompare) Write(p []byte) (int, error) {
	if c.bad || c.n+len(p) > c.want.n {
		c.bad = true
		return 0, errPartDiffers
	}
	written := len(p)
	for len(p) > 0 {
		var ok bool
		k := 1
		switch i := c.n; {
		case i == c.want.n-1:
			ok = p[0] == c.last
		case i == 0:
			ok = p[0] == c.first
		default:
			k = min(len(p), c.want.n-1-i)
			ok = c.want.equal(i, p[:k])
		}
		if !ok {
			c.bad = true
			return 0, errPartDiffers
		}
		c.n += k
		p = p[k:]
	}
	return written, nil
}

func (c *partCompare) complete() bool { return !c.bad && c.n == c.want.n }

// commitAll takes the parts' results in order.
func (pv *partVerifier) commitAll() {
	defer close(pv.cdone)
	for j := range pv.queue {
		<-j.done
		pv.commit(j)
		j.in, j.orig = view{}, view{}
		pv.inflight.Done()
	}
}

// commit records part j, or falls back, or makes the member partial.
func (pv *partVerifier) commit(j *ipart) {
	pv.mu.Lock()
	failed := pv.failed
	pv.mu.Unlock()
	if failed {
		return
	}
	if !j.ok && !pv.merge(j) {
		pv.fail()
		return
	}
	if !j.ok {
		return // merged into the last part
	}
	pv.mu.Lock()
	pv.segs = append(pv.segs, j.seg())
	pv.bits += j.bitEnd - j.bitStart
	pv.last = &ipart{start: j.start, bitStart: j.bitStart}
	pv.mu.Unlock()
}

func (j *ipart) seg() Segment {
	return Segment{Kind: j.Kind, Content: j.end - j.start, Bits: j.bitEnd - j.bitStart, Stored: j.Stored}
}

// merge verifies j and the last verified part again as one part: the
// engine that made the last part runs on through j. It reports whether
// that part is exact (it then replaces the last one).
func (pv *partVerifier) merge(j *ipart) bool {
	pv.mu.Lock()
	l := pv.last
	if l == nil || j.end-l.start > MaxPartContent {
		pv.mu.Unlock()
		return false
	}
	m := &ipart{start: l.start, end: j.end, bitStart: l.bitStart, bitEnd: j.bitEnd, final: j.final, merged: true}
	from, to := pv.need(m)
	if from < pv.content.from || to > pv.content.end || m.bitStart/8 < pv.orig.from || (m.bitEnd+7)/8 > pv.orig.end {
		pv.mu.Unlock()
		return false
	}
	m.in = pv.content.view(from, to)
	m.orig = pv.orig.view(m.bitStart/8, (m.bitEnd+7)/8)
	pv.mu.Unlock()
	proofSlots <- struct{}{}
	ok := pv.try(m)
	<-proofSlots
	if !ok {
		return false
	}
	pv.mu.Lock()
	pv.segs[len(pv.segs)-1] = m.seg()
	pv.bits += j.bitEnd - j.bitStart
	pv.last = &ipart{start: m.start, bitStart: m.bitStart}
	pv.mu.Unlock()
	return true
}

// takeRest hands the reading side the original bytes from the end of the
// verified parts once the member is partial; nil, false before.
func (pv *partVerifier) takeRest() ([]byte, bool) {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if !pv.failed || pv.taken {
		return nil, false
	}
	pv.taken = true
	at := pv.bits / 8
	if at < pv.orig.from || at > pv.orig.end {
		// Cannot happen (the history is kept from the last part's
		// start): keep nothing rather than a wrong tail.
		panic(fmt.Sprintf("recompress: part verifier: rest from byte %d, history from %d", at, pv.orig.from))
	}
	rest := pv.orig.view(at, pv.orig.end).appendTo(nil)
	// Parts may still be running on the blocks: leave them to the
	// garbage collector rather than to the pool.
	pv.orig.forget()
	pv.content.forget()
	return rest, true
}

// finish hands out the last parts and waits for every result; abort (a
// damaged stream) drops what is not complete and makes the member partial
// from the end of its verified parts.
func (pv *partVerifier) finish(abort bool) error {
	pv.mu.Lock()
	whole := pv.sawFinal && !abort
	if !whole {
		pv.stopped = true
	}
	pv.mu.Unlock()
	if whole {
		pv.pump()
	} else {
		pv.planned, pv.cur, pv.run = nil, nil, nil
	}
	pv.dropHead()
	close(pv.queue)
	<-pv.cdone
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if !whole || len(pv.planned) > 0 {
		pv.failed, pv.stopped = true, true
	}
	pv.planned = nil
	if !pv.failed && pv.bits != (uint64(pv.prev.Bit)+7)&^7 {
		return fmt.Errorf("%w: parts cover %d bits of a stream of %d", ErrUnpack, pv.bits, pv.prev.Bit)
	}
	return nil
}

// matched is the number of original bytes the verified parts rebuild
// (a partial member's tail starts in the byte after them).
func (pv *partVerifier) matched() uint64 {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	return pv.bits / 8
}

func (pv *partVerifier) winnerParams() deflate.Params { return pv.params }

// segments returns the verified parts (nil: one part from the stream's
// start, which restore runs as a whole engine).
func (pv *partVerifier) segments(contentLen, exact uint64) []Segment {
	pv.mu.Lock()
	defer pv.mu.Unlock()
	if len(pv.segs) == 0 || (len(pv.segs) == 1 && pv.segs[0].Kind == SegStart) {
		return nil
	}
	return pv.segs
}

// Buffers and engines are reused from part to part: a part's copies of
// its content and original bytes are a few MiB, an engine's tables a few
// hundred KiB, and a night has thousands of parts (and their retries).
var (
	bufPool    sync.Pool // *[]byte
	writerPool sync.Pool // *deflate.Writer
)

// getBuf returns an empty pooled buffer of capacity n or more.
func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n+n/4)
}

// putBuf returns a buffer of copyBuf to the pool.
func putBuf(b []byte) {
	if cap(b) > 0 {
		bufPool.Put(&b)
	}
}

// getWriter returns an engine with p writing to dst.
func getWriter(dst io.Writer, p deflate.Params) (*deflate.Writer, error) {
	if w, ok := writerPool.Get().(*deflate.Writer); ok {
		if err := w.Reset(dst, p); err == nil {
			return w, nil
		}
	}
	return deflate.NewWriter(dst, p)
}

// history holds the bytes of a stream from offset from to end, in
// blocks of histBlock bytes aligned to the stream's offsets, so that
// dropping its head moves nothing.
type history struct {
	from, end uint64
	base      uint64    // the offset of blocks[0][0], a multiple of histBlock
	blocks    []*[]byte // all full but the last
}

const histBlock = 1 << 20

var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, histBlock); return &b }}

func (h *history) len() uint64 { return h.end - h.from }

// write appends p.
func (h *history) write(p []byte) {
	for len(p) > 0 {
		switch {
		case len(h.blocks) == 0:
			// Nothing is held (from == end): start the block of end.
			b := blockPool.Get().(*[]byte)
			h.base = h.end &^ (histBlock - 1)
			*b = (*b)[:h.end-h.base] // below from: never read
			h.blocks = append(h.blocks, b)
		case len(*h.blocks[len(h.blocks)-1]) == histBlock:
			b := blockPool.Get().(*[]byte)
			*b = (*b)[:0]
			h.blocks = append(h.blocks, b)
		}
		b := h.blocks[len(h.blocks)-1]
		k := min(len(p), histBlock-len(*b))
		*b = append(*b, p[:k]...)
		h.end += uint64(k)
		p = p[k:]
	}
}

// view returns [from, to), which h holds, without copying: the blocks'
// bytes below their lengths now are never written again, and a block is
// reused only once dropped, which the verifier does only below every
// part in flight.
func (h *history) view(from, to uint64) view {
	v := view{from: from, n: int(to - from)}
	for off := from; off < to; {
		b := *h.blocks[(off-h.base)/histBlock]
		i := (off - h.base) % histBlock
		k := min(to-off, uint64(len(b))-i)
		v.blocks = append(v.blocks, b[i:i+k])
		off += k
	}
	return v
}

// forget drops every block without reusing them.
func (h *history) forget() {
	h.blocks = nil
	h.from = h.end
}

// view is a range of a history's bytes.
type view struct {
	from   uint64
	n      int
	blocks [][]byte
}

// pieces yields the view's bytes from offset off on, block by block, with
// each piece's offset.
func (v view) pieces(off uint64) iter.Seq2[[]byte, uint64] {
	return func(yield func([]byte, uint64) bool) {
		at := v.from
		for _, b := range v.blocks {
			end := at + uint64(len(b))
			if end > off {
				skip := off - min(off, at)
				if !yield(b[skip:], at+skip) {
					return
				}
			}
			at = end
		}
	}
}

// appendTo appends the view's bytes to dst.
func (v view) appendTo(dst []byte) []byte {
	for _, b := range v.blocks {
		dst = append(dst, b...)
	}
	return dst
}

// at returns the byte at index i of the view.
func (v view) at(i int) byte {
	for _, b := range v.blocks {
		if i < len(b) {
			return b[i]
		}
		i -= len(b)
	}
	panic("recompress: view index out of range")
}

// equal reports whether the view's bytes from index i on start with p.
func (v view) equal(i int, p []byte) bool {
	for _, b := range v.blocks {
		if len(p) == 0 {
			return true
		}
		if i >= len(b) {
			i -= len(b)
			continue
		}
		k := min(len(p), len(b)-i)
		if !bytes.Equal(p[:k], b[i:i+k]) {
			return false
		}
		p, i = p[k:], 0
	}
	return len(p) == 0
}

// drop forgets the bytes before off.
func (h *history) drop(off uint64) {
	off = min(off, h.end)
	if off <= h.from {
		return
	}
	h.from = off
	for len(h.blocks) > 0 && h.base+histBlock <= off {
		blockPool.Put(h.blocks[0])
		h.blocks = h.blocks[1:]
		h.base += histBlock
	}
}
