package recompress

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/larder/larder/recompress/deflate"
)

// maxLag bounds the compressed bytes read but not yet matched by an
// engine's output; past it the member is treated as diverged.
const maxLag = 32 << 20

// gzipNode unpacks a gzip layer: its members' decompressed content is the
// input of a child layer; each member's deflate stream is rebuilt by an
// identified engine and verified against the original as it is read.
func (u *unpacker) gzipNode(in *bufio.Reader, depth int, c nodeCtx) (Node, uint64, error) {
	g := &gzLayer{u: u, c: c.child("gzip"), depth: depth, node: &Gzip{Verbatim: -1}, inherited: c.discard}
	g.src = &countingReader{r: in}
	g.in = bufio.NewReaderSize(g.src, deflate.IdentifyPrefix+maxGzipString+4096)

	// The first member decides whether the content is kept: when no engine
	// rebuilds it (pigz, zopfli, ...), the layer is stored verbatim.
	if err := g.next(); err != nil {
		return nil, 0, err
	}
	var content Node
	var clen uint64
	if !g.done {
		cc := g.c
		cc.discard = g.inherited || g.opaque
		cc.ahead = nil
		var err error
		content, clen, err = u.node(bufio.NewReaderSize(g, smallBuf), depth+1, cc)
		if err != nil {
			return nil, 0, err
		}
		if g.err != nil {
			return nil, 0, g.err
		}
	}
	// Whatever follows the last member is kept verbatim.
	n, err := g.toVerbatim(g.in)
	if err != nil {
		return nil, 0, err
	}
	g.node.Trailing = n
	if g.inherited {
		return nil, g.src.n, nil
	}
	var total uint64
	for _, m := range g.node.Members {
		total += m.ContentLen
	}
	if !g.opaque && total != clen {
		return nil, 0, fmt.Errorf("%w: %s: %s: members hold %d bytes, the content layer read %d",
			ErrUnpack, u.name, g.c.where, total, clen)
	}
	if !g.opaque {
		g.node.Content = content
	}
	return g.node, g.src.n, nil
}

// memberCheck verifies a member's deflate stream as it is read: the
// reading side passes it content (feed) and the original bytes consumed
// (addOrig); once it can no longer rebuild them, takeRest hands back the
// original bytes from where it stopped, to be stored verbatim.
type memberCheck interface {
	feed(p []byte)
	addOrig(p []byte) bool
	takeRest() ([]byte, bool)
	finish(abort bool) error
	matched() uint64
	winnerParams() deflate.Params
	segments(contentLen, exact uint64) []Segment
}

// gzLayer reads the decompressed content of a gzip layer, member after
// member, verifying the engines as it goes. It is the io.Reader the child
// layer reads.
type gzLayer struct {
	u     *unpacker
	c     nodeCtx
	depth int
	node  *Gzip
	src   *countingReader // the layer's input, for offsets
	in    *bufio.Reader
	// inherited: the layer lies inside a verbatim member, so nothing of
	// it is stored. opaque: no engine rebuilds its first member, so its
	// content is not stored either; its deflate bytes are.
	inherited bool
	opaque    bool
	started   bool
	done      bool
	err       error
	cur       *gzMember
}

type gzMember struct {
	m        Member
	index    int
	start    int64 // offset of the member in the layer's input
	tee      *teeReader
	inflate  io.Reader
	v        memberCheck // nil: no engine
	crc      hash.Hash32
	size     uint64
	verbatim bool // every further deflate byte goes to the verbatim stream
	slot     int  // of its line in the summary's layers
}

// Read returns decompressed content.
func (g *gzLayer) Read(p []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if g.cur == nil {
			if g.done {
				return 0, io.EOF
			}
			if err := g.next(); err != nil {
				g.err = err
				return 0, err
			}
			continue
		}
		m := g.cur
		n, err := m.inflate.Read(p)
		if n > 0 {
			if ferr := g.feed(m, p[:n]); ferr != nil {
				g.err = ferr
				return 0, ferr
			}
		}
		switch {
		case err == io.EOF:
			if ferr := g.finish(m); ferr != nil {
				g.err = ferr
				return n, nil
			}
		case err != nil:
			if m.tee.err != nil {
				// The medium failed, not the data.
				g.err = g.u.readErr(m.tee.err)
				return 0, g.err
			}
			if derr := g.damaged(m, err); derr != nil {
				g.err = derr
			}
		}
		if n > 0 {
			return n, nil
		}
	}
}

// next starts the next member, or marks the layer done when the input
// holds no further member.
func (g *gzLayer) next() error {
	first := !g.started
	g.started = true
	head, _ := g.in.Peek(3)
	if !isGzip(head) || len(g.node.Members) >= MaxNodes {
		g.done = true
		return nil
	}
	start := g.offset()
	hdr, err := readGzipHeader(g.in)
	if err != nil {
		if !errors.Is(err, errNotGzip) {
			if g.src.err != nil {
				return g.u.readErr(g.src.err)
			}
			g.u.warn(g.c, start, "member %d: %v", len(g.node.Members)+1, err)
		}
		g.done = true
		return nil
	}
	m := &gzMember{index: len(g.node.Members) + 1, start: start, crc: crc32.NewIEEE()}
	m.m.Header = hdr.raw
	m.tee = &teeReader{r: g.in, g: g, m: m}
	if !g.inherited && !g.opaque {
		prefix, _ := g.in.Peek(deflate.IdentifyPrefix)
		hint := hintFor(hdr, g.depth)
		res, ierr, ok := g.c.ahead.take(prefix, hint)
		if !ok {
			res, ierr = deflate.Identify(prefix, hint)
		}
		switch {
		case ierr == nil && res.Complete && !testFullVerifier:
			// Identify rebuilt the whole member: no engine runs again.
			m.m.Params = res.Params
			m.v = newIdentified(res, prefix)
			m.inflate = deflate.NewInflater(m.tee, nil)
		case ierr == nil && len(res.Others) == 0 && restartable(res.Params) && !testFullVerifier:
			// One engine: verified in parts, from the original's
			// block ends (ingestparts.go).
			m.m.Params = res.Params
			pv := newPartVerifier(res.Params)
			m.v = pv
			m.inflate = deflate.NewInflater(m.tee, pv.block)
		case ierr == nil:
			m.m.Params = res.Params
			vs, err := newVerifierSet(append([]deflate.Params{res.Params}, res.Others...))
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrUnpack, g.u.name, err)
			}
			m.v = vs
		case first:
			g.opaque = true
		}
	}
	if m.inflate == nil {
		m.inflate = flate.NewReader(m.tee)
	}
	m.verbatim = m.v == nil
	if !g.inherited {
		// The summary lists members in the order they start: a layer
		// read ahead (ahead.go) may end before the members inside it.
		m.slot = len(g.u.sum.layers)
		g.u.sum.layers = append(g.u.sum.layers, LayerSummary{})
	}
	g.cur = m
	return nil
}

// testFullVerifier, set by tests only, verifies every member with whole
// engines (the path of members Identify cannot tell apart), to test that
// path's parts on single-engine streams.
var testFullVerifier bool

func hintFor(h *gzipHeader, depth int) deflate.Hint {
	// GNU gzip names its members and sets MTIME; zlib's gzip wrapper
	// (pg_dump, gzopen) writes neither.
	prefer := depth == 0 || h.name != ""
	return deflate.Hint{GzipXFL: int(h.xfl), ZlibLevel: -1, PreferGzip: prefer}
}

func (g *gzLayer) offset() int64 { return int64(g.src.n) - int64(g.in.Buffered()) }

// feed passes decompressed bytes to the member's checks and engine.
func (g *gzLayer) feed(m *gzMember, p []byte) error {
	m.crc.Write(p)
	m.size += uint64(len(p))
	if m.v != nil && !m.verbatim {
		m.v.feed(p)
		return g.settle(m)
	}
	return nil
}

// settle moves the member to verbatim mode once its engine diverged: the
// original bytes it did not match, and all that follow, are stored.
func (g *gzLayer) settle(m *gzMember) error {
	if m.v == nil || m.verbatim {
		return nil
	}
	rest, ok := m.v.takeRest()
	if !ok {
		return nil
	}
	m.verbatim = true
	return g.verbatim(m, rest)
}

// verbatim stores bytes of the member's deflate stream that no engine
// rebuilds.
func (g *gzLayer) verbatim(m *gzMember, p []byte) error {
	m.m.Tail += uint64(len(p))
	if g.inherited || len(p) == 0 {
		return nil
	}
	return g.writeVerbatim(p)
}

func (g *gzLayer) writeVerbatim(p []byte) error {
	if g.node.Verbatim < 0 {
		i, err := g.u.newStream(KindVerbatim)
		if err != nil {
			return err
		}
		g.node.Verbatim = i
	}
	return g.u.write(g.node.Verbatim, p)
}

// toVerbatim stores everything r holds in the layer's verbatim stream.
func (g *gzLayer) toVerbatim(r io.Reader) (uint64, error) {
	buf := make([]byte, 32<<10)
	var total uint64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			total += uint64(n)
			if !g.inherited {
				if werr := g.writeVerbatim(buf[:n]); werr != nil {
					return 0, werr
				}
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return 0, g.u.readErr(err)
		}
	}
}

// finish ends a member at the end of its deflate stream: the engine's last
// bytes, then the trailer.
func (g *gzLayer) finish(m *gzMember) error {
	if err := m.tee.sync(); err != nil {
		return err
	}
	if m.v != nil {
		if err := m.v.finish(false); err != nil {
			return fmt.Errorf("%w: %s: engine: %w", ErrUnpack, g.u.name, err)
		}
		if err := g.settle(m); err != nil {
			return err
		}
	}
	m.m.Exact = 0
	switch {
	case m.v == nil:
		m.m.Mode = ModeVerbatim
	case !m.verbatim:
		m.m.Mode = ModeExact
		m.m.Exact = m.v.matched()
		m.m.Params = m.v.winnerParams()
		if !g.opaque && !g.inherited {
			m.m.Segments = m.v.segments(m.size, m.m.Exact)
		}
	default:
		m.m.Mode = ModePartial
		m.m.Exact = m.v.matched()
		m.m.Params = m.v.winnerParams()
		if !g.opaque && !g.inherited {
			m.m.Segments = m.v.segments(m.size, m.m.Exact)
		}
	}
	if g.opaque || g.inherited {
		m.m.ContentLen = 0
	} else {
		m.m.ContentLen = m.size
	}
	// The trailer: CRC-32 and ISIZE of the content.
	var want [8]byte
	binary.LittleEndian.PutUint32(want[:], m.crc.Sum32())
	binary.LittleEndian.PutUint32(want[4:], uint32(m.size))
	got, _ := g.in.Peek(8)
	got = append([]byte(nil), got...)
	_, _ = g.in.Discard(len(got)) // peeked: the bytes are buffered, Discard cannot fail
	if g.src.err != nil && len(got) < 8 {
		return g.u.readErr(g.src.err)
	}
	if g.opaque {
		// Pack will not see the content: keep the trailer as found.
		m.m.Trailer = got
	}
	if len(got) != 8 || [8]byte(got) != want {
		m.m.Trailer = got
		switch {
		case len(got) < 8:
			g.u.warn(g.c, g.offset(), "member %d: trailer truncated (%d of 8 bytes)", m.index, len(got))
		case binary.LittleEndian.Uint32(got) != m.crc.Sum32():
			g.u.warn(g.c, g.offset(), "member %d: CRC-32 mismatch (stored %08x, content %08x)",
				m.index, binary.LittleEndian.Uint32(got), m.crc.Sum32())
		default:
			g.u.warn(g.c, g.offset(), "member %d: ISIZE mismatch (stored %d, content %d mod 2^32)",
				m.index, binary.LittleEndian.Uint32(got[4:]), uint32(m.size))
		}
	}
	g.record(m)
	return nil
}

// record adds the finished member to the layer and to the summary.
func (g *gzLayer) record(m *gzMember) {
	g.node.Members = append(g.node.Members, m.m)
	g.cur = nil
	if g.inherited {
		return
	}
	l := LayerSummary{Where: fmt.Sprintf("%s member %d", g.c.where, m.index),
		Bytes: m.m.Exact + m.m.Tail, Exact: m.m.Exact}
	switch m.m.Mode {
	case ModeExact:
		l.Mode = "exact"
	case ModePartial:
		l.Mode = "partial"
	default:
		l.Mode = "verbatim"
	}
	if m.m.Mode != ModeVerbatim {
		l.Engine = m.m.Params.String()
	}
	g.u.sum.layers[m.slot] = l
}

// damaged ends a member whose deflate stream is corrupt or cut short: its
// exact prefix stays, and everything after, to the end of the layer's
// input, is kept verbatim.
func (g *gzLayer) damaged(m *gzMember, cause error) error {
	problem := "deflate stream corrupt"
	if errors.Is(cause, io.ErrUnexpectedEOF) {
		problem = "deflate stream truncated"
	}
	if err := m.tee.sync(); err != nil {
		return err
	}
	g.u.warn(g.c, g.offset(), "member %d: %s: %v", m.index, problem, cause)
	if m.v != nil {
		if err := m.v.finish(true); err != nil {
			return fmt.Errorf("%w: %s: engine: %w", ErrUnpack, g.u.name, err)
		}
		if err := g.settle(m); err != nil {
			return err
		}
	}
	m.tee.rest = true
	n, err := g.toVerbatim(g.in)
	if err != nil {
		return err
	}
	m.m.Tail += n
	m.m.Exact = 0
	if m.v != nil {
		m.m.Exact = m.v.matched()
		m.m.Params = m.v.winnerParams()
		m.m.Mode = ModePartial
		if !g.opaque && !g.inherited {
			m.m.Segments = m.v.segments(m.size, m.m.Exact)
		}
	} else {
		m.m.Mode = ModeVerbatim
	}
	if g.opaque || g.inherited {
		m.m.ContentLen = 0
	} else {
		m.m.ContentLen = m.size
	}
	m.m.Trailer = []byte{}
	g.record(m)
	g.done = true
	return nil
}

// teeReader gives the inflater the member's compressed bytes, straight
// from the layer's buffer, and hands the bytes it consumed, in batches, to
// the verifier (or to the verbatim stream). sync must be called before the
// layer's reader is used again.
type teeReader struct {
	r    *bufio.Reader
	g    *gzLayer
	m    *gzMember
	buf  []byte // bytes peeked from r
	pos  int    // of which the inflater consumed
	err  error  // a read error of the medium
	rest bool   // the member is over: nothing more is recorded
}

// sync records the consumed bytes and discards them from r.
func (t *teeReader) sync() error {
	if t.pos == 0 {
		return nil
	}
	consumed := t.buf[:t.pos]
	var err error
	if !t.rest {
		err = t.record(consumed)
	}
	_, _ = t.r.Discard(t.pos) // peeked: the bytes are buffered, Discard cannot fail
	t.buf, t.pos = nil, 0
	return err
}

// fill syncs and peeks at the next buffered bytes.
func (t *teeReader) fill() error {
	if err := t.sync(); err != nil {
		return &streamErr{err}
	}
	if t.r.Buffered() == 0 {
		if _, err := t.r.Peek(1); err != nil {
			t.noteErr(err)
			return err
		}
	}
	t.buf, _ = t.r.Peek(t.r.Buffered())
	return nil
}

func (t *teeReader) record(p []byte) error {
	m := t.m
	if !m.verbatim && m.v.addOrig(p) {
		return t.g.settle(m)
	}
	if !m.verbatim {
		// Diverged just now: take the unmatched bytes, then these.
		if err := t.g.settle(m); err != nil {
			return err
		}
	}
	return t.g.verbatim(m, p)
}

func (t *teeReader) ReadByte() (byte, error) {
	if t.pos == len(t.buf) {
		if err := t.fill(); err != nil {
			return 0, err
		}
	}
	b := t.buf[t.pos]
	t.pos++
	return b, nil
}

// Buffered and Take make the tee a deflate.BufferedSource: the inflater
// takes its bits from the peeked bytes 8 at a time.
func (t *teeReader) Buffered() []byte { return t.buf[t.pos:] }

func (t *teeReader) Take(n int) { t.pos += n }

func (t *teeReader) Read(p []byte) (int, error) {
	if t.pos == len(t.buf) {
		if err := t.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, t.buf[t.pos:])
	t.pos += n
	return n, nil
}

func (t *teeReader) noteErr(err error) {
	if err != io.EOF && t.err == nil {
		t.err = err
	}
	if t.g.src.err != nil && t.err == nil {
		t.err = t.g.src.err
	}
}

// countingReader counts the bytes read and keeps the first read error.
type countingReader struct {
	r   io.Reader
	n   uint64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
