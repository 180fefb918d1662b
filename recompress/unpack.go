package recompress

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Sink receives the canonical streams that Unpack makes.
type Sink interface {
	// Stream starts canonical stream i, of kind k. Unpack writes the
	// stream's bytes to the returned writer in order, and closes it once,
	// before Unpack returns (also on failure). Streams are numbered from
	// 0 in the order they start.
	Stream(i int, k Kind) (io.WriteCloser, error)
}

// Boundarier is implemented by stream writers that want to know where the
// records of a stream start (the members of a tar): content-defined
// chunking can then cut there, so that a member added or removed does not
// change its neighbours' chunks. Unpack calls Boundary before the first
// byte of each record.
type Boundarier interface {
	Boundary() error
}

// ReaderSink adapts a function that consumes streams as io.Readers: fn runs
// in a goroutine of its own for each stream and must read r to its end
// (io.EOF) or return an error, which fails the Unpack.
func ReaderSink(fn func(i int, k Kind, r io.Reader) error) Sink {
	return &readerSink{fn: fn}
}

type readerSink struct {
	fn func(int, Kind, io.Reader) error
}

func (s *readerSink) Stream(i int, k Kind) (io.WriteCloser, error) {
	pr, pw := io.Pipe()
	p := &pipeStream{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		err := s.fn(i, k, pr)
		if err == nil {
			// Drain what the function left, so the writer never blocks.
			_, err = io.Copy(io.Discard, pr)
		}
		p.err = err
		pr.CloseWithError(err)
	}()
	return p, nil
}

type pipeStream struct {
	pw   *io.PipeWriter
	done chan struct{}
	err  error // the consumer's, set before done is closed
}

func (p *pipeStream) Write(b []byte) (int, error) { return p.pw.Write(b) }

// Close ends the stream and waits for its consumer, returning its error.
func (p *pipeStream) Close() error {
	_ = p.pw.Close() // always nil: the consumer's error is p.err
	<-p.done
	return p.err
}

// Options tune Unpack.
type Options struct {
	// Name names the backup in warnings and errors.
	Name string
}

// Result is what Unpack found besides the streams.
type Result struct {
	Recipe   *Recipe
	Summary  *Summary
	Warnings []*Warning
	SHA256   [32]byte // of the input
}

// Warning reports damage found in a backup: the damaged part is kept
// verbatim, so the backup still restores exactly.
type Warning struct {
	File    string // the backup
	Where   string // the layer, e.g. "gzip member 1 > tar member dump.sql.gz > gzip member 1"
	Offset  int64  // byte offset in that layer's input
	Problem string
	// Content is set when the damage lies inside a file carried by the
	// backup (an upload) rather than in the backup's own layers.
	Content bool
}

func (w *Warning) Error() string {
	return fmt.Sprintf("%s: %s at byte %d: %s", w.File, w.Where, w.Offset, w.Problem)
}

// ErrUnpack wraps failures of Unpack that are not damage of the input:
// reading it, or a stream consumer failing.
var ErrUnpack = errors.New("recompress: unpack failed")

// Unpack reads a backup from r and writes its canonical streams to sink.
// It returns the recipe that Pack turns back into the same bytes, with the
// content summary and warnings about damaged parts. Every gzip member that
// an engine rebuilds is verified byte for byte while it is read.
func Unpack(ctx context.Context, r io.Reader, sink Sink, opts Options) (res *Result, err error) {
	u := &unpacker{ctx: ctx, sink: sink, name: opts.Name, shared: map[Kind]int{}, sum: newSummary()}
	if u.name == "" {
		u.name = "input"
	}
	hr := &hashingReader{r: r, h: sha256.New()}
	in := bufio.NewReaderSize(hr, smallBuf)
	defer func() {
		if cerr := u.closeStreams(); err == nil && cerr != nil {
			err = fmt.Errorf("%w: %s: %w", ErrUnpack, u.name, cerr)
		}
	}()
	root, size, err := u.node(in, 0, nodeCtx{})
	if err != nil {
		return nil, err
	}
	if hr.err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnpack, u.name, hr.err)
	}
	rc := &Recipe{Root: root, Size: size}
	for _, s := range u.streams {
		rc.Streams = append(rc.Streams, Stream{Kind: s.kind, Len: s.n})
	}
	if err := rc.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: internal error: %w", ErrUnpack, u.name, err)
	}
	res = &Result{Recipe: rc, Summary: u.sum.finish(rc, u.streams), Warnings: u.warnings}
	copy(res.SHA256[:], hr.h.Sum(nil))
	return res, nil
}

const smallBuf = 64 << 10

type hashingReader struct {
	r   io.Reader
	h   hash.Hash
	err error // a read error other than EOF
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	if err != nil && err != io.EOF && h.err == nil {
		h.err = err
	}
	return n, err
}

// streamOut is one canonical stream being written.
type streamOut struct {
	kind Kind
	w    io.WriteCloser
	n    uint64
	err  error
}

type unpacker struct {
	ctx      context.Context
	sink     Sink
	name     string
	streams  []*streamOut
	shared   map[Kind]int
	warnings []*Warning
	sum      *summary
}

// nodeCtx is what a layer knows of where it sits.
type nodeCtx struct {
	where   string // path for warnings
	name    string // tar member name, if any
	content bool   // inside carried content (uploads)
	depth   int
	discard bool // the output is not stored (inside a verbatim member)
	// ahead holds the identifications made ahead for the members of the
	// tar this layer is an entry of (only that layer's: nil below it).
	ahead *ahead
}

func (c nodeCtx) child(where string) nodeCtx {
	d := c
	if d.where != "" {
		d.where += " > "
	}
	d.where += where
	d.depth++
	return d
}

func (u *unpacker) warn(c nodeCtx, off int64, format string, a ...any) {
	where := c.where
	if where == "" {
		where = "file"
	}
	u.warnings = append(u.warnings, &Warning{File: u.name, Where: where, Offset: off,
		Problem: fmt.Sprintf(format, a...), Content: c.content})
}

// newStream starts a stream of kind k.
func (u *unpacker) newStream(k Kind) (int, error) {
	if len(u.streams) >= MaxStreams {
		return 0, fmt.Errorf("%w: %s: more than %d streams", ErrUnpack, u.name, MaxStreams)
	}
	i := len(u.streams)
	w, err := u.sink.Stream(i, k)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: stream %d: %w", ErrUnpack, u.name, i, err)
	}
	u.streams = append(u.streams, &streamOut{kind: k, w: w})
	return i, nil
}

// sharedStream returns the stream for kind k, shared by all layers.
func (u *unpacker) sharedStream(k Kind) (int, error) {
	if i, ok := u.shared[k]; ok {
		return i, nil
	}
	i, err := u.newStream(k)
	if err == nil {
		u.shared[k] = i
	}
	return i, err
}

func (u *unpacker) write(i int, p []byte) error {
	s := u.streams[i]
	if s.err != nil {
		return s.err
	}
	n, err := s.w.Write(p)
	s.n += uint64(n)
	if err != nil {
		s.err = fmt.Errorf("%w: %s: writing stream %d: %w", ErrUnpack, u.name, i, err)
		return s.err
	}
	return nil
}

// boundary tells stream i's writer that a record starts here.
func (u *unpacker) boundary(i int) error {
	s := u.streams[i]
	if b, ok := s.w.(Boundarier); ok && s.err == nil {
		if err := b.Boundary(); err != nil {
			s.err = fmt.Errorf("%w: %s: stream %d: %w", ErrUnpack, u.name, i, err)
			return s.err
		}
	}
	return nil
}

func (u *unpacker) closeStreams() error {
	var first error
	for i, s := range u.streams {
		if s.w == nil {
			continue
		}
		if err := s.w.Close(); err != nil && first == nil {
			first = fmt.Errorf("stream %d: %w", i, err)
		}
		s.w = nil
	}
	return first
}

// node unpacks one layer: everything r holds up to its end. It returns the
// node and the number of bytes it read.
func (u *unpacker) node(r *bufio.Reader, depth int, c nodeCtx) (Node, uint64, error) {
	if err := u.ctx.Err(); err != nil {
		return nil, 0, err
	}
	head, _ := r.Peek(tarBlock)
	switch {
	case isGzip(head) && depth < MaxDepth:
		return u.gzipNode(r, depth, c)
	case isTarHeader(head) && depth < MaxDepth:
		return u.tarNode(r, depth, c)
	}
	return u.copyNode(r, classify(head, c.name), c)
}

// copyNode copies everything r holds to the stream of kind k.
func (u *unpacker) copyNode(r io.Reader, k Kind, c nodeCtx) (Node, uint64, error) {
	obs := u.sum.observer(k, c.name)
	if c.discard {
		n, err := io.Copy(obs, r)
		return nil, uint64(n), u.readErr(err)
	}
	si, err := u.sharedStream(k)
	if err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 64<<10)
	var total uint64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			_, _ = obs.Write(buf[:n]) // observers count for the summary and never fail
			if err := u.write(si, buf[:n]); err != nil {
				return nil, 0, err
			}
			total += uint64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, 0, u.readErr(rerr)
		}
	}
	return &Copy{Stream: si, Len: total}, total, nil
}

// readErr wraps a read failure of the input (not damage: the medium).
func (u *unpacker) readErr(err error) error {
	if err == nil || err == io.EOF {
		return nil
	}
	var se *streamErr
	if errors.As(err, &se) {
		return se.err
	}
	if errors.Is(err, ErrUnpack) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrUnpack, u.name, err)
}

// streamErr carries a failure of a stream writer through a reader chain.
type streamErr struct{ err error }

func (e *streamErr) Error() string { return e.err.Error() }
