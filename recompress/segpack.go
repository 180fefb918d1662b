package recompress

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/larder/larder/recompress/deflate"
)

// segEngine rebuilds a member whose recipe cuts it into parts: each part
// is made on its own goroutine (at most the packer's worker count at once
// over all layers) from a copy of the content it needs (its warm-up, its
// own bytes and the engine's lookahead past its end), and an assembler
// writes the parts in order, joining the bytes that two parts share at
// their bit boundary. At most maxInFlight parts of a member are queued
// or running, so memory is bounded by a few parts' content and output.
type segEngine struct {
	p      *packer
	params deflate.Params
	segs   []Segment
	start  []uint64 // content offset of each part
	bit    []uint64 // stream bit offset of each part
	total  uint64   // content of the member
	// partial: the member is partial, its parts end at a block boundary
	// before the stream's end (the last part stops there too).
	partial bool

	hist     []byte // content from histFrom on
	histFrom uint64
	pos      uint64 // content received
	next     int    // next part to start

	queue chan chan segResult // parts in order, for the assembler
	done  chan struct{}       // closed when the assembler returns
	quit  chan struct{}       // closed by abort
	once  sync.Once
	mu    sync.Mutex
	err   error // the first error of a part or of the output
	out   io.Writer
}

type segResult struct {
	b   []byte
	err error
}

// maxInFlight bounds the parts of one member queued or being made.
func (p *packer) maxInFlight() int { return cap(p.sem) + 1 }

func (p *packer) startSegEngine(mb *Member, out io.Writer) *segEngine {
	e := &segEngine{p: p, params: mb.Params, segs: mb.Segments, total: mb.ContentLen, out: out,
		partial: mb.Mode == ModePartial,
		queue:   make(chan chan segResult, p.maxInFlight()), done: make(chan struct{}), quit: make(chan struct{})}
	var c, b uint64
	for _, s := range mb.Segments {
		e.start = append(e.start, c)
		e.bit = append(e.bit, b)
		c += s.Content
		b += s.Bits
	}
	go e.assemble()
	p.track(e)
	return e
}

// need returns the content range part i is made from.
func (e *segEngine) need(i int) (from, to uint64) {
	s := e.segs[i]
	x := e.start[i]
	end := x + s.Content
	switch {
	case s.Kind == SegStored:
		return x, end
	case s.Kind != SegStart:
		from = uint64(deflate.WarmStart(e.params, int64(x), deflate.Warm(s.Kind)))
	}
	if i+1 < len(e.segs) || e.partial {
		// The engine's lookahead past its stop, to a piece boundary: a
		// restarted engine gets the very pieces the verifying engine got.
		end = min(e.total, alignUp(end+uint64(deflate.SplitLookahead(e.params))))
	}
	return from, end
}

// Write takes the member's content and starts the parts it completes.
func (e *segEngine) Write(p []byte) (int, error) {
	if err := e.failed(); err != nil {
		return 0, err
	}
	e.hist = append(e.hist, p...)
	e.pos += uint64(len(p))
	if e.pos > e.total {
		return 0, fmt.Errorf("%w: more content than the member's parts cover", ErrPack)
	}
	if err := e.startReady(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// startReady starts every part whose content is all there, then drops the
// content no later part needs.
func (e *segEngine) startReady() error {
	for e.next < len(e.segs) {
		from, to := e.need(e.next)
		if e.pos < to {
			break
		}
		if from < e.histFrom {
			return fmt.Errorf("%w: part %d needs content already dropped", ErrPack, e.next)
		}
		in := append(getBuf(int(to-from)), e.hist[from-e.histFrom:to-e.histFrom]...)
		ch := make(chan segResult, 1)
		select {
		case e.queue <- ch:
		case <-e.quit:
			return errAborted
		}
		go e.run(e.next, from, in, ch)
		e.next++
	}
	keep := e.pos
	if e.next < len(e.segs) {
		keep, _ = e.need(e.next)
		// A later part's warm-up may reach back further than the next
		// part's start (after a short part): keep what any part that
		// starts within a warm-up's reach needs.
		reach := uint64(deflate.WarmReach(e.params))
		for j := e.next + 1; j < len(e.segs) && e.start[j] <= keep+reach; j++ {
			from, _ := e.need(j)
			keep = min(keep, from)
		}
	}
	if keep > e.histFrom {
		k := min(keep, e.pos) - e.histFrom
		e.hist = append(e.hist[:0], e.hist[k:]...)
		e.histFrom += k
	}
	return nil
}

// run makes part i from in (content from offset from) on a worker slot.
func (e *segEngine) run(i int, from uint64, in []byte, ch chan segResult) {
	select {
	case e.p.sem <- struct{}{}:
	case <-e.quit:
		ch <- segResult{err: errAborted}
		return
	}
	b, err := e.make(i, from, in)
	putBuf(in)
	<-e.p.sem
	ch <- segResult{b: b, err: err}
}

// make returns part i's bytes: from byte bit/8 of the stream, the bits
// below its start zero, to the byte that holds its last bit.
func (e *segEngine) make(i int, from uint64, in []byte) ([]byte, error) {
	s := e.segs[i]
	last := i+1 == len(e.segs) && !e.partial
	if s.Kind == SegStored {
		return deflate.AppendStoredBlocks(getBuf(len(in)+len(in)/64+64), e.bit[i], s.Stored, in, last)
	}
	buf := &appendBuf{b: getBuf(int(s.Bits/8 + 8))}
	w, err := getWriter(buf, e.params)
	if err != nil {
		return nil, err
	}
	defer writerPool.Put(w)
	sp := deflate.Split{From: int64(from), Cut: int64(e.start[i]), CutBit: e.bit[i], Stop: -1}
	if s.Kind == SegStart {
		sp.Cut, sp.CutBit = 0, 0
	}
	if !last {
		sp.Stop = int64(e.start[i] + s.Content)
	}
	if err := w.SetSplit(sp); err != nil {
		return nil, err
	}
	if err := deflate.WriteAligned(w, in, int64(from), w.Stopped); err != nil {
		return nil, err
	}
	if last || !w.Stopped() {
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if w.Missed() || (!last && !w.Stopped()) {
		return nil, fmt.Errorf("%w: part %d: the engine made no block boundary where the recipe says", ErrPack, i+1)
	}
	return buf.b, nil
}

// appendBuf is an io.Writer appending to a (pooled) buffer.
type appendBuf struct{ b []byte }

func (a *appendBuf) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// assemble writes the parts in order to out.
func (e *segEngine) assemble() {
	defer close(e.done)
	var pending byte // the partial last byte of the previous part
	i := 0
	for {
		var ch chan segResult
		var ok bool
		select {
		case ch, ok = <-e.queue:
		case <-e.quit:
			e.fail(errAborted)
			return
		}
		if !ok {
			return
		}
		var r segResult
		select {
		case r = <-ch:
		case <-e.quit:
			e.fail(errAborted)
			return
		}
		if r.err != nil {
			e.fail(r.err)
			continue
		}
		if e.failed() != nil {
			continue
		}
		first, end := e.bit[i], e.bit[i]+e.segs[i].Bits
		if uint64(len(r.b)) != (end+7)/8-first/8 {
			e.fail(fmt.Errorf("%w: part %d made %d bytes, its bits need %d", ErrPack, i+1, len(r.b), (end+7)/8-first/8))
			continue
		}
		if first%8 != 0 {
			r.b[0] |= pending
		}
		b := r.b
		if end%8 != 0 {
			pending, b = b[len(b)-1], b[:len(b)-1]
		}
		if _, err := e.out.Write(b); err != nil {
			e.fail(err)
		}
		putBuf(r.b)
		i++
	}
}

func (e *segEngine) fail(err error) {
	e.mu.Lock()
	if e.err == nil {
		e.err = err
	}
	e.mu.Unlock()
}

func (e *segEngine) failed() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Close starts what is left, waits for every part and returns the first
// error.
func (e *segEngine) Close() error {
	err := e.failed()
	if err == nil && e.pos != e.total && !e.partial {
		err = fmt.Errorf("%w: the member's parts need %d content bytes, got %d", ErrPack, e.total, e.pos)
	}
	if err == nil {
		err = e.startReady()
	}
	if err == nil && e.next != len(e.segs) {
		err = fmt.Errorf("%w: %d of %d parts made", ErrPack, e.next, len(e.segs))
	}
	close(e.queue)
	<-e.done
	if err != nil {
		return err
	}
	if errors.Is(e.failed(), errAborted) {
		return errAborted
	}
	return e.failed()
}

// abort stops the parts not yet started.
func (e *segEngine) abort() { e.once.Do(func() { close(e.quit) }) }

func (e *segEngine) wait() { <-e.done }

// alignUp rounds n up to a multiple of deflate.FeedChunk.
func alignUp(n uint64) uint64 {
	return (n + deflate.FeedChunk - 1) &^ (deflate.FeedChunk - 1)
}
