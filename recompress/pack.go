package recompress

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/larder/larder/recompress/deflate"
)

// ErrPack reports streams that do not rebuild the recipe's file: a stream
// ends early or runs long, or an engine makes other bytes than recorded.
var ErrPack = errors.New("recompress: pack failed")

// Pack writes the original file of rc to w, reading each canonical stream,
// in order, from the reader open returns for it. Streams are opened when
// first needed and read exactly once.
//
// Pack writes to w from several goroutines, one at a time: w need not be
// safe for concurrent use, but it must not depend on being written from
// the caller's goroutine.
func Pack(ctx context.Context, rc *Recipe, open func(i int, k Kind) (io.Reader, error), w io.Writer) error {
	return pack(ctx, rc, open, w, nil)
}

// pack is Pack with a test's hooks (nil for none).
func pack(ctx context.Context, rc *Recipe, open func(i int, k Kind) (io.Reader, error), w io.Writer, hooks *packHooks) error {
	if err := rc.Validate(); err != nil {
		return err
	}
	p := &packer{ctx: ctx, rc: rc, open: open, readers: make([]io.Reader, len(rc.Streams)),
		sem: make(chan struct{}, runtime.GOMAXPROCS(0)), hooks: hooks, jobTars: map[*Tar]bool{}}
	p.tarLim = tarLimitsFor(cap(p.sem), hooks)
	jobTars(rc.Root, p.tarLim.jobInput, p.jobTars)
	defer p.stopEngines()
	cw := &countWriter{w: w}
	if err := p.node(rc.Root, cw); err != nil {
		return err
	}
	if cw.n != rc.Size {
		return fmt.Errorf("%w: rebuilt %d bytes, the recipe says %d", ErrPack, cw.n, rc.Size)
	}
	// Every stream must be used up exactly.
	var one [1]byte
	for i, r := range p.readers {
		if r == nil {
			continue
		}
		if n, _ := io.ReadFull(r, one[:]); n != 0 {
			return fmt.Errorf("%w: stream %d holds more bytes than the recipe uses", ErrPack, i)
		}
	}
	return nil
}

// packer rebuilds a recipe's file. Each gzip layer's engine runs on its
// own goroutine (an asyncEngine), so the layers of a nested file (the
// outer gzip and the dump.sql.gz in its tar) deflate at the same time.
// The goroutine that walks the recipe reads the streams; an engine's
// goroutine writes the layer's output into the layer around it, which may
// end a member of that layer there and read a verbatim tail: mu guards
// the readers and the engines, and nothing holds it while writing. The
// small gzip files of a tar are rebuilt side by side, each in a packer of
// its own, from bytes the walker reads ahead for it (tarpack.go).
type packer struct {
	ctx     context.Context
	rc      *Recipe
	open    func(int, Kind) (io.Reader, error)
	mu      sync.Mutex
	readers []io.Reader
	engines []runningEngine // to stop when Pack returns
	// sem holds a slot per part of a member being made (segpack.go),
	// GOMAXPROCS over all layers.
	sem      chan struct{}
	stopping bool // Pack is returning
	// tee, when set, returns a writer that also receives a gzip layer's
	// content (Export), or nil.
	tee func(Node) (io.Writer, error)
	// jobTars are the tar layers whose entries are rebuilt side by side
	// (tarpack.go); nil in an entry's own packer and in Export.
	jobTars map[*Tar]bool
	tarLim  tarLimits
	hooks   *packHooks // a test's, or nil
}

// stream returns the reader of stream i, opening it when first needed;
// the caller holds p.mu.
func (p *packer) stream(i int) (io.Reader, error) {
	if p.readers[i] == nil {
		r, err := p.open(i, p.rc.Streams[i].Kind)
		if err != nil {
			return nil, fmt.Errorf("%w: opening stream %d: %w", ErrPack, i, err)
		}
		p.readers[i] = r
	}
	return p.readers[i], nil
}

var copyBufs = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// copyN copies n bytes of stream i to w.
func (p *packer) copyN(w io.Writer, i int, n uint64) error {
	if n == 0 {
		return nil
	}
	buf := copyBufs.Get().(*[64 << 10]byte)
	defer copyBufs.Put(buf)
	for n > 0 {
		if err := p.ctx.Err(); err != nil {
			return err
		}
		p.mu.Lock()
		r, err := p.stream(i)
		k := 0
		if err == nil {
			k, err = io.ReadFull(r, buf[:min(uint64(len(buf)), n)])
		}
		p.mu.Unlock()
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= uint64(k)
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: stream %d ended %d bytes early", ErrPack, i, n)
			}
			if errors.Is(err, ErrPack) {
				return err
			}
			return fmt.Errorf("%w: reading stream %d: %w", ErrPack, i, err)
		}
	}
	return nil
}

func (p *packer) node(n Node, w io.Writer) error {
	switch n := n.(type) {
	case *Copy:
		return p.copyN(w, n.Stream, n.Len)
	case *Tar:
		if p.jobTars[n] {
			return p.tarJobs(n, w)
		}
		for i := range n.Parts {
			if err := p.entry(n.Skeleton, &n.Parts[i], w); err != nil {
				return err
			}
		}
		return p.copyN(w, n.Skeleton, n.Rest)
	case *Gzip:
		mw := &memberWriter{p: p, g: n, w: w, cur: -1}
		if n.Content != nil {
			var cw io.Writer = mw
			if p.tee != nil {
				t, err := p.tee(n)
				if err != nil {
					return err
				}
				if t != nil {
					cw = io.MultiWriter(mw, t)
				}
			}
			if err := p.node(n.Content, cw); err != nil {
				return err
			}
		}
		if err := mw.finish(); err != nil {
			return err
		}
		if n.Trailing > 0 {
			return p.copyN(w, n.Verbatim, n.Trailing)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown node %T", ErrRecipe, n)
}

// entry writes a tar entry: the skeleton bytes before it, then its child
// layer, which must make the entry's length.
func (p *packer) entry(skeleton int, part *TarPart, w io.Writer) error {
	if err := p.copyN(w, skeleton, part.Skip); err != nil {
		return err
	}
	cw := &countWriter{w: w}
	if err := p.node(part.Child, cw); err != nil {
		return err
	}
	if cw.n != part.Len {
		return fmt.Errorf("%w: a tar member was rebuilt as %d bytes, not %d", ErrPack, cw.n, part.Len)
	}
	return nil
}

// memberWriter receives a gzip layer's content and writes its members:
// header, the engine's rebuild of the deflate stream (and any verbatim
// tail), trailer.
type memberWriter struct {
	p      *packer
	g      *Gzip
	w      io.Writer
	cur    int    // current member, -1 before the first
	left   uint64 // content bytes the current member still takes
	engine memberEngine
	out    *limitWriter
	crc    hash.Hash32
	size   uint64
}

func (m *memberWriter) begin(i int) error {
	mb := &m.g.Members[i]
	m.cur, m.left, m.size = i, mb.ContentLen, 0
	m.crc = crc32.NewIEEE()
	if _, err := m.w.Write(mb.Header); err != nil {
		return err
	}
	m.engine = nil
	if mb.Mode != ModeVerbatim {
		m.out = &limitWriter{w: m.w, left: mb.Exact}
		if len(mb.Segments) > 0 {
			m.engine = m.p.startSegEngine(mb, m.out)
			return nil
		}
		e, err := deflate.NewWriter(m.out, mb.Params)
		if err != nil {
			return fmt.Errorf("%w: member %d: %w", ErrPack, i+1, err)
		}
		m.engine = m.p.startEngine(e)
	}
	return nil
}

func (m *memberWriter) end() error {
	mb := &m.g.Members[m.cur]
	if m.engine != nil {
		if err := m.engine.Close(); err != nil {
			if m.out.err != nil {
				return m.out.err
			}
			// A partial member needs the engine's first Exact bytes only;
			// it may refuse the input after them (a stored-block list).
			if !m.partialDone() {
				return fmt.Errorf("%w: member %d: %w", ErrPack, m.cur+1, err)
			}
		}
		if m.out.err != nil {
			return m.out.err
		}
		if m.out.total < mb.Exact || (mb.Mode == ModeExact && m.out.total != mb.Exact) {
			return fmt.Errorf("%w: member %d: the engine made %d bytes, the recipe expects %d",
				ErrPack, m.cur+1, m.out.total, mb.Exact)
		}
	}
	if mb.Tail > 0 {
		if err := m.p.copyN(m.w, m.g.Verbatim, mb.Tail); err != nil {
			return err
		}
	}
	trailer := mb.Trailer
	if trailer == nil {
		var t [8]byte
		binary.LittleEndian.PutUint32(t[:], m.crc.Sum32())
		binary.LittleEndian.PutUint32(t[4:], uint32(m.size))
		trailer = t[:]
	}
	_, err := m.w.Write(trailer)
	return err
}

// Write takes content bytes, member after member.
func (m *memberWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		if m.cur < 0 || m.left == 0 {
			if err := m.next(); err != nil {
				return 0, err
			}
			if m.cur >= len(m.g.Members) {
				return 0, fmt.Errorf("%w: gzip content longer than its members", ErrPack)
			}
			continue
		}
		k := min(uint64(len(b)), m.left)
		part := b[:k]
		m.crc.Write(part)
		m.size += k
		m.left -= k
		if m.engine != nil && !m.partialDone() {
			if _, err := m.engine.Write(part); err != nil && !m.partialDone() {
				return 0, err
			}
		}
		b = b[k:]
	}
	return n, nil
}

func mb(m *memberWriter) *Member { return &m.g.Members[m.cur] }

// partialDone reports whether the current member is partial and its
// engine has made all the exact bytes it needs: the engine may then be
// left behind, and an error it meets after them does not matter.
func (m *memberWriter) partialDone() bool {
	return mb(m).Mode == ModePartial && m.out.full.Load()
}

// next ends the current member (if any) and begins the next one.
func (m *memberWriter) next() error {
	if m.cur >= 0 {
		if err := m.end(); err != nil {
			return err
		}
	}
	if m.cur+1 >= len(m.g.Members) {
		m.cur = len(m.g.Members)
		return nil
	}
	return m.begin(m.cur + 1)
}

// finish writes the members whose content is complete or empty.
func (m *memberWriter) finish() error {
	if m.cur >= 0 && m.cur < len(m.g.Members) && m.left != 0 {
		return fmt.Errorf("%w: gzip member %d lacks %d content bytes", ErrPack, m.cur+1, m.left)
	}
	for m.cur < len(m.g.Members) {
		if err := m.next(); err != nil {
			return err
		}
		if m.cur < len(m.g.Members) && m.left != 0 {
			return fmt.Errorf("%w: gzip member %d lacks %d content bytes", ErrPack, m.cur+1, m.left)
		}
	}
	return nil
}

// limitWriter passes on the first left bytes and counts all of them. An
// engine's goroutine writes to it; the others read left, total and err
// only after the engine is closed, and full at any time.
type limitWriter struct {
	w     io.Writer
	left  uint64
	total uint64
	err   error
	full  atomic.Bool // left is 0 (a partial member needs no more output)
}

func (l *limitWriter) Write(p []byte) (int, error) {
	l.total += uint64(len(p))
	if l.left > 0 && l.err == nil {
		k := min(uint64(len(p)), l.left)
		if _, err := l.w.Write(p[:k]); err != nil {
			l.err = err
			// Stop the engine: this error is the one end reports.
			return 0, err
		}
		l.left -= k
		if l.left == 0 {
			l.full.Store(true)
		}
	}
	return len(p), nil
}

type countWriter struct {
	w io.Writer
	n uint64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// memberEngine rebuilds a member's deflate stream from the content
// written to it: an asyncEngine, or a segEngine for a member in parts.
type memberEngine interface {
	io.Writer
	Close() error
}

// asyncEngine runs a deflate engine on its own goroutine: Write hands it
// a copy of the bytes, Close waits for it to deflate them all and closes
// the engine. At most engineQueue buffers wait, so memory stays bounded.
// One goroutine at a time writes and closes; abort may come from another.
type asyncEngine struct {
	e      *deflate.Writer
	busy   func(int) // a test's hook, or nil
	queue  chan *engineBuf
	quit   chan struct{}         // closed by abort
	done   chan struct{}         // closed when run returns
	err    atomic.Pointer[error] // the engine's first error
	once   sync.Once
	closed bool
	cur    *engineBuf // being filled by Write
}

type engineBuf struct {
	b [64 << 10]byte
	n int
}

const engineQueue = 4

var (
	engineBufs = sync.Pool{New: func() any { return new(engineBuf) }}
	errAborted = errors.New("recompress: pack stopped")
)

func (a *asyncEngine) run() {
	defer close(a.done)
	for {
		select {
		case b, ok := <-a.queue:
			if !ok {
				return
			}
			if a.err.Load() == nil {
				a.setBusy(1)
				if _, err := a.e.Write(b.b[:b.n]); err != nil {
					a.err.Store(&err)
				}
				a.setBusy(-1)
			}
			b.n = 0
			engineBufs.Put(b)
		case <-a.quit:
			return
		}
	}
}

func (a *asyncEngine) failed() error {
	if p := a.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (a *asyncEngine) send(b *engineBuf) error {
	select {
	case a.queue <- b:
		return nil
	case <-a.quit:
		return errAborted
	}
}

// Write queues p for the engine; it returns the engine's error, if any,
// from an earlier write.
func (a *asyncEngine) Write(p []byte) (int, error) {
	if err := a.failed(); err != nil {
		return 0, err
	}
	n := len(p)
	for len(p) > 0 {
		if a.cur == nil {
			a.cur = engineBufs.Get().(*engineBuf)
		}
		k := copy(a.cur.b[a.cur.n:], p)
		a.cur.n += k
		p = p[k:]
		if a.cur.n == len(a.cur.b) {
			b := a.cur
			a.cur = nil
			if err := a.send(b); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Close deflates what is queued, then closes the engine (its final
// blocks are written on the caller's goroutine).
func (a *asyncEngine) Close() error {
	if a.closed {
		return a.failed()
	}
	a.closed = true
	if a.cur != nil && a.cur.n > 0 {
		b := a.cur
		a.cur = nil
		if err := a.send(b); err != nil {
			return err
		}
	}
	close(a.queue)
	<-a.done
	select {
	case <-a.quit:
		return errAborted
	default:
	}
	if err := a.failed(); err != nil {
		return err
	}
	a.setBusy(1)
	defer a.setBusy(-1)
	return a.e.Close()
}

func (a *asyncEngine) setBusy(d int) {
	if a.busy != nil {
		a.busy(d)
	}
}

// abort stops the engine without deflating what is queued.
func (a *asyncEngine) abort() { a.once.Do(func() { close(a.quit) }) }

// startEngine runs e on its own goroutine for the packer.
func (p *packer) startEngine(e *deflate.Writer) *asyncEngine {
	a := &asyncEngine{e: e, queue: make(chan *engineBuf, engineQueue), quit: make(chan struct{}), done: make(chan struct{})}
	if p.hooks != nil {
		a.busy = p.hooks.engineBusy
	}
	go a.run()
	p.track(a)
	return a
}

// runningEngine is an engine's goroutine (a whole member's, asyncEngine,
// or one in parts, segEngine), which Pack stops when it returns.
type runningEngine interface {
	abort() // stop without waiting
	wait()  // wait for the goroutine to return
}

func (a *asyncEngine) wait() { <-a.done }

// track registers e to be stopped when Pack returns, and stops it at once
// if Pack is returning already.
func (p *packer) track(e runningEngine) {
	p.mu.Lock()
	p.engines = append(p.engines, e)
	if p.stopping {
		e.abort()
	}
	p.mu.Unlock()
}

// stopEngines stops every engine (those of layers an error left
// unfinished are still running) and waits for their goroutines.
func (p *packer) stopEngines() {
	for _, e := range p.abortEngines() {
		e.wait()
	}
}

// abortEngines stops every engine, and those started from now on, without
// waiting for them; it returns the engines started so far.
func (p *packer) abortEngines() []runningEngine {
	p.mu.Lock()
	p.stopping = true
	engines := p.engines
	p.mu.Unlock()
	for _, e := range engines {
		e.abort()
	}
	return engines
}
