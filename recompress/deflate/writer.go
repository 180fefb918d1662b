package deflate

import (
	"errors"
	"fmt"
	"io"
)

// ErrClosed is returned when writing to a closed Writer.
var ErrClosed = errors.New("deflate: write to closed writer")

// flushThreshold is how much output a Writer gathers before passing it on.
const flushThreshold = 32 << 10

// Writer re-runs an encoder over the data written to it and writes the raw
// deflate stream (no zlib or gzip wrapper) that the encoder would have made.
// Memory is bounded: about 2 windows, the hash chains and one block of
// symbols, whatever the stream's length.
type Writer struct {
	c      *compressor
	st     *storedWriter
	dst    io.Writer
	err    error
	closed bool
	stage  []byte // GNU gzip: input waiting for a full read
	in     int64
	// stopDone: the output up to a Split's stop was passed on; the
	// engine's further output is discarded.
	stopDone bool
}

// NewWriter returns a Writer that writes p's deflate stream to dst.
func NewWriter(dst io.Writer, p Params) (*Writer, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	w := &Writer{}
	w.reset(dst, p)
	return w, nil
}

// Reset discards w's state and makes it write a new stream with p to dst,
// reusing its buffers.
func (w *Writer) Reset(dst io.Writer, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	w.reset(dst, p)
	return nil
}

func (w *Writer) reset(dst io.Writer, p Params) {
	w.dst, w.err, w.closed, w.in, w.stopDone = dst, nil, false, 0, false
	w.stage = w.stage[:0]
	if p.Engine == Stored {
		w.st = &storedWriter{runs: p.Runs}
		return
	}
	w.st = nil
	if w.c == nil {
		w.c = newCompressor(p)
	} else {
		w.c.reset(p)
	}
}

// Params returns the parameters w runs with.
func (w *Writer) Params() Params {
	if w.st != nil {
		return Params{Engine: Stored, Runs: w.st.runs}
	}
	return w.c.p
}

// Write compresses p. Output is passed to the destination as blocks end.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, w.err
	}
	w.in += int64(len(p))
	if w.st != nil {
		if err := w.st.write(p, &w.c0().bw); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), w.flushOut(false)
	}
	c := w.c
	if !c.gnu {
		c.in = p
		c.zlibRun(false)
		c.in = nil
		return len(p), w.flushOut(false)
	}
	// GNU gzip reads whole buffers: stage input until a read can be full.
	n := len(p)
	for len(p) > 0 {
		room := 2*c.windowSize - len(w.stage)
		k := min(room, len(p))
		w.stage = append(w.stage, p[:k]...)
		p = p[k:]
		c.in = w.stage
		c.gnuRun()
		left := copy(w.stage, c.in)
		w.stage = w.stage[:left]
		c.in = nil
		if err := w.flushOut(false); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// c0 gives the stored engine a bit writer to write through.
func (w *Writer) c0() *compressor {
	if w.c == nil {
		w.c = &compressor{}
	}
	return w.c
}

// Close finishes the stream: the last block and its padding to a byte
// boundary. It does not close the destination.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.st != nil {
		if err := w.st.finish(&w.c0().bw); err != nil {
			w.err = err
			return err
		}
		return w.flushOut(true)
	}
	c := w.c
	c.closed = true
	if c.seg.stopped {
		return w.flushOut(true)
	}
	if !c.gnu {
		c.zlibRun(true)
	} else {
		c.in = w.stage
		if !c.gnuRun() {
			panic("deflate: gzip engine did not finish on closed input")
		}
		c.in = nil
		w.stage = w.stage[:0]
	}
	return w.flushOut(true)
}

// InputSize is the number of bytes written to w.
func (w *Writer) InputSize() int64 { return w.in }

// OutputSize is the number of compressed bytes w has produced so far.
func (w *Writer) OutputSize() uint64 {
	if w.c == nil {
		return 0
	}
	return w.c.bw.total
}

func (w *Writer) flushOut(force bool) error {
	bw := &w.c0().bw
	if w.c.seg.stopped {
		out := bw.out[:w.c.seg.stopLen]
		bw.out = bw.out[:0]
		w.c.seg.stopLen = 0
		if w.stopDone || len(out) == 0 {
			return nil
		}
		w.stopDone = true
		_, err := w.dst.Write(out)
		if err != nil {
			w.err = err
		}
		return err
	}
	if len(bw.out) == 0 || (!force && len(bw.out) < flushThreshold && !w.closed) {
		return nil
	}
	_, err := w.dst.Write(bw.out)
	bw.out = bw.out[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// ErrStoredLength reports input that does not fill a Stored engine's runs.
var ErrStoredLength = errors.New("deflate: input length does not match the stored block list")

// storedWriter writes the stored blocks listed in runs.
type storedWriter struct {
	runs []StoredRun
	ri   int    // current run
	done uint32 // blocks done in the current run
	buf  []byte // input of the current block
}

func (s *storedWriter) left() bool { return s.ri < len(s.runs) }

func (s *storedWriter) lastBlock() bool {
	return s.ri == len(s.runs)-1 && s.done == s.runs[s.ri].Count-1
}

func (s *storedWriter) write(p []byte, bw *bitWriter) error {
	for len(p) > 0 {
		// Emit complete blocks, keeping the last one for finish so its
		// final flag is written only when the input is known to end.
		for s.left() && len(s.buf) == int(s.runs[s.ri].Len) && !s.lastBlock() {
			s.emit(bw, false)
		}
		if !s.left() || s.lastBlock() && len(s.buf) == int(s.runs[s.ri].Len) {
			return fmt.Errorf("%w: more input than %d runs hold", ErrStoredLength, len(s.runs))
		}
		need := int(s.runs[s.ri].Len) - len(s.buf)
		k := min(need, len(p))
		s.buf = append(s.buf, p[:k]...)
		p = p[k:]
	}
	return nil
}

func (s *storedWriter) emit(bw *bitWriter, last bool) {
	bw.storedBlock(s.buf, last)
	s.buf = s.buf[:0]
	s.done++
	if s.done == s.runs[s.ri].Count {
		s.ri++
		s.done = 0
	}
}

func (s *storedWriter) finish(bw *bitWriter) error {
	for s.left() && !s.lastBlock() {
		if len(s.buf) != int(s.runs[s.ri].Len) {
			return fmt.Errorf("%w: input ends inside block list", ErrStoredLength)
		}
		s.emit(bw, false)
	}
	if !s.left() || len(s.buf) != int(s.runs[s.ri].Len) {
		return fmt.Errorf("%w: input ends before the last block", ErrStoredLength)
	}
	s.emit(bw, true)
	return nil
}
