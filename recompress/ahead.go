package recompress

import (
	"bufio"
	"bytes"
	"hash/maphash"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/larder/larder/recompress/deflate"
)

// A tar of many small gzip members (the 2026 format's NNNN.dat.gz, one
// per table) would be identified one member after another, each on the
// reading goroutine: Identify rebuilds a member whose deflate stream fits
// in its head whole, so for such members it is all the engine work there
// is. ahead runs it on every core instead. When the walker reaches such a
// member, it looks at the tar beyond it (up to aheadBuf bytes), finds the
// next small gzip members' heads, and hands each to a worker that
// identifies it. When the member's layer starts, it takes the result for
// the head it read itself: a guess is used only for the same bytes and
// hint, so whatever the scan gets wrong (an odd header, a member the
// walker reads differently) costs time, never exactness.
type ahead struct {
	seed    maphash.Seed
	byKey   map[uint64]*guess
	order   []*guess // by the tar offset of their members, oldest first
	work    chan *guess
	wg      sync.WaitGroup
	workers int

	quit atomic.Bool // the walker is done: skip what is queued

	scan  int64   // tar offset of the next header to look at
	meta  tarMeta // what extended headers seen by the scan said
	ended bool    // the scan met something it does not follow
}

// guess is the identification of one member's head, made by a worker.
type guess struct {
	key    uint64
	hint   deflate.Hint
	prefix []byte // the deflate stream's head (a copy)
	last   int64  // tar offset of the last member with this head
	done   chan struct{}
	res    deflate.Result
	err    error
}

const (
	// aheadBuf is how far past the current member the scan looks.
	aheadBuf = 4 << 20
	// aheadMember bounds the members looked ahead at: their deflate
	// stream fits in Identify's head, so it rebuilds them whole.
	aheadMember = deflate.IdentifyPrefix
)

// maxGuesses bounds the guesses held: running, done and not yet taken.
func maxGuesses() int { return 2*runtime.GOMAXPROCS(0) + 2 }

// aheadFor reports whether a member of size bytes is one ahead is for.
func aheadFor(size int64) bool { return size >= 18 && size <= aheadMember }

// lookAhead is called by the walker at the data of a gzip member at tar
// offset at, of size bytes: it starts the scan (the first time), then
// identifies ahead whatever the window now shows.
func (t *tarWalk) lookAhead(at, size int64) {
	if t.c.discard || !aheadFor(size) || testNoAhead {
		return
	}
	a := t.ahead
	if a == nil {
		a = &ahead{seed: maphash.MakeSeed(), byKey: map[uint64]*guess{}}
		// The scan peeks at what follows through a larger buffer; the
		// walker and its children read through it from now on. A read
		// error a peek meets stays for the walker to meet too (a
		// bufio.Reader reports it once).
		t.r = bufio.NewReaderSize(&stickyErr{r: t.r}, aheadBuf)
		t.ahead = a
	}
	a.dropBefore(at)
	if a.scan <= at {
		// Not reached by the scan (the first member, or one after
		// something the scan stopped at): this member, then on.
		a.meta, a.ended = tarMeta{paxSize: -1}, false
		a.member(t, at, size, at)
		a.scan = at + padded(size)
	}
	for !a.ended && len(a.order) < maxGuesses() {
		if !a.step(t, at) {
			return
		}
	}
}

// stickyErr returns its reader's first error on every later read.
type stickyErr struct {
	r   io.Reader
	err error
}

func (s *stickyErr) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}

// padded is size rounded up to whole tar blocks.
func padded(size int64) int64 { return (size + tarBlock - 1) / tarBlock * tarBlock }

// step looks at the header at a.scan (the tar's read position is at); it
// reports false when the window does not hold enough yet.
func (a *ahead) step(t *tarWalk, at int64) bool {
	hdr, ok := a.peek(t, at, a.scan, tarBlock)
	if !ok {
		return false
	}
	if zeroBlock(hdr) || !isTarHeader(hdr) {
		a.ended = true
		return false
	}
	size, ok := tarSize(hdrField(hdr, hdrSizeOff, hdrSizeLen))
	if !ok || size < 0 {
		a.ended = true
		return false
	}
	// The walker's rules (member, extended): only sizes matter here.
	typ := hdr[hdrTypeflagOff]
	data := a.scan + tarBlock
	meta := a.meta
	_, size = meta.apply("", size, typ)
	switch typ {
	case '1', '2', '3', '4', '5', '6':
		size = 0
	case 'L', 'K', 'g':
	case 'x':
		if size > maxTarMeta {
			a.ended = true
			return false
		}
		b, ok := a.peek(t, at, data, int(size))
		if !ok {
			return false
		}
		if s, p, ok := parsePax(b); ok {
			meta.paxSize, meta.paxPath = s, p
		}
	case 'S':
		a.ended = true // sparse maps: not followed
		return false
	default:
		if !a.member(t, at, size, data) {
			return false
		}
	}
	a.meta = meta
	a.scan = data + padded(size)
	return true
}

// member makes a guess for a member of size bytes whose data starts at
// tar offset data, if it is a small gzip member; it reports false when
// the window does not hold its head yet.
func (a *ahead) member(t *tarWalk, at, size, data int64) bool {
	if !aheadFor(size) {
		return true
	}
	b, ok := a.peek(t, at, data, int(size))
	if !ok {
		return false
	}
	if !isGzip(b) {
		return true
	}
	rd := bytes.NewReader(b)
	br := bufio.NewReaderSize(rd, min(len(b), maxGzipString+4096))
	hdr, err := readGzipHeader(br)
	if err != nil {
		return true
	}
	skip := len(b) - br.Buffered() - rd.Len()
	prefix := b[skip:min(len(b), skip+deflate.IdentifyPrefix)]
	hint := hintFor(hdr, t.depth+1)
	key := a.keyOf(prefix)
	if g := a.byKey[key]; g != nil && g.hint == hint && bytes.Equal(g.prefix, prefix) {
		g.last = data
		return true
	} else if g != nil {
		return true // another head of the same hash: left to the walker
	}
	g := &guess{key: key, hint: hint, prefix: bytes.Clone(prefix), last: data, done: make(chan struct{})}
	a.byKey[key] = g
	a.order = append(a.order, g)
	if a.work == nil {
		a.work = make(chan *guess, maxGuesses())
	}
	if a.workers < runtime.GOMAXPROCS(0) {
		a.workers++
		a.wg.Add(1)
		go a.worker()
	}
	a.work <- g
	return true
}

// peek returns n bytes of the tar at offset off, the read position being
// at; false if the window does not reach (yet).
func (a *ahead) peek(t *tarWalk, at, off int64, n int) ([]byte, bool) {
	end := off - at + int64(n)
	if off < at || end > aheadBuf {
		return nil, false
	}
	b, err := t.r.Peek(int(end))
	if err != nil {
		if len(b) < int(end) {
			a.ended = true // the input ends first
		}
		return nil, false
	}
	return b[off-at:], true
}

func (a *ahead) worker() {
	defer a.wg.Done()
	for g := range a.work {
		if !a.quit.Load() {
			g.res, g.err = deflate.Identify(g.prefix, g.hint)
		}
		close(g.done)
	}
}

// take returns the identification of the member whose head is prefix,
// if a guess was made for it.
func (a *ahead) take(prefix []byte, hint deflate.Hint) (deflate.Result, error, bool) {
	if a == nil {
		return deflate.Result{}, nil, false
	}
	g := a.byKey[a.keyOf(prefix)]
	hit := g != nil && g.hint == hint && bytes.Equal(g.prefix, prefix)
	if testAheadTake != nil {
		testAheadTake(hit)
	}
	if !hit {
		return deflate.Result{}, nil, false
	}
	<-g.done
	return g.res, g.err, true
}

// Set by tests only: testNoAhead turns the scan off; testAheadTake, if
// set, is told for each member of a tar with guesses whether its head
// had one.
var (
	testNoAhead   bool
	testAheadTake func(hit bool)
)

func (a *ahead) keyOf(prefix []byte) uint64 { return maphash.Bytes(a.seed, prefix) }

// dropBefore forgets the guesses whose members all lie before tar offset
// at: the walker is past them.
func (a *ahead) dropBefore(at int64) {
	keep := a.order[:0]
	for _, g := range a.order {
		if g.last >= at {
			keep = append(keep, g)
		} else {
			delete(a.byKey, g.key)
		}
	}
	clear(a.order[len(keep):])
	a.order = keep
}

// stop waits for the workers; the walker is done.
func (a *ahead) stop() {
	if a == nil || a.work == nil {
		return
	}
	a.quit.Store(true)
	close(a.work)
	a.wg.Wait()
	a.work = nil
}
