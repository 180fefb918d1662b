package deflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// inflated is what an Inflater made of a stream.
type inflated struct {
	out  []byte
	ends []BlockEnd
	rest []byte // what it left in its source
	err  error  // nil at io.EOF
}

// inflate decodes src followed by trailer with an Inflater reading through
// a bufio.Reader, in Reads of step bytes, and again from a BufferedSource
// that lends the bytes in chunks of odd sizes (the bulk path); if the two
// differ in anything (content, block ends, what is left, the error), the
// result's err says so (what is left in the source is compared for streams
// that decode).
func inflate(src, trailer []byte, step int) inflated {
	all := slices.Concat(src, trailer)
	br := bufio.NewReader(bytes.NewReader(all))
	r := inflateFrom(br, step)
	r.rest, _ = io.ReadAll(br)
	cs := &chunkSource{b: all, sizes: []int{1 + step%13, 4096, 7, 8, 9, 65536 + step, 63, 1 << 20}}
	b := inflateFrom(cs, step)
	b.rest = slices.Concat(cs.cur[cs.pos:], cs.b)
	errText := func(err error) string {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	switch {
	case !bytes.Equal(r.out, b.out):
		r.err = fmt.Errorf("from a BufferedSource: %d bytes of content, not %d (they differ at %d)", len(b.out), len(r.out), firstDiff(b.out, r.out))
	case !slices.Equal(r.ends, b.ends):
		r.err = fmt.Errorf("from a BufferedSource: block ends %v, not %v", b.ends, r.ends)
	case r.err == nil && !bytes.Equal(r.rest, b.rest):
		// (After an error, what is left matters to no one: the bits
		// where it is are the same, and the byte path may have taken one
		// more byte to look a bad code up.)
		r.err = fmt.Errorf("from a BufferedSource: %d bytes left in the source, not %d", len(b.rest), len(r.rest))
	case errText(r.err) != errText(b.err) || errors.Is(r.err, io.ErrUnexpectedEOF) != errors.Is(b.err, io.ErrUnexpectedEOF):
		r.err = fmt.Errorf("from a BufferedSource: error %v, not %v", b.err, r.err)
	}
	return r
}

// inflateFrom decodes what src holds in Reads of step bytes.
func inflateFrom(src Source, step int) inflated {
	var r inflated
	f := NewInflater(src, func(e BlockEnd) { r.ends = append(r.ends, e) })
	buf := make([]byte, step)
	for {
		n, err := f.Read(buf)
		r.out = append(r.out, buf[:n]...)
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			break
		}
	}
	return r
}

// chunkSource is a BufferedSource over b that lends it in chunks of the
// sizes given, in turn, as the gzip layer's tee lends what its
// bufio.Reader holds: a chunk is lent until it is all taken, then the
// next.
type chunkSource struct {
	b     []byte // not lent yet
	cur   []byte // lent
	pos   int    // of which taken
	sizes []int
	i     int
}

func (c *chunkSource) next() bool {
	if len(c.b) == 0 {
		return false
	}
	n := min(c.sizes[c.i%len(c.sizes)], len(c.b))
	c.i++
	c.cur, c.b, c.pos = c.b[:n], c.b[n:], 0
	return true
}

func (c *chunkSource) Buffered() []byte { return c.cur[c.pos:] }

func (c *chunkSource) Take(n int) {
	if n < 0 || c.pos+n > len(c.cur) {
		panic(fmt.Sprintf("chunkSource: take %d of the %d bytes lent", n, len(c.cur)-c.pos))
	}
	c.pos += n
}

func (c *chunkSource) ReadByte() (byte, error) {
	if c.pos == len(c.cur) && !c.next() {
		return 0, io.EOF
	}
	b := c.cur[c.pos]
	c.pos++
	return b, nil
}

func (c *chunkSource) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.pos == len(c.cur) && !c.next() {
		return 0, io.EOF
	}
	n := copy(p, c.cur[c.pos:])
	c.pos += n
	return n, nil
}

// flateAll decodes src with compress/flate.
func flateAll(src []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(src)))
}

type stream struct {
	name      string
	data, src []byte
}

// realStreams compresses SQL-like text, incompressible data and a mix of
// both with GNU gzip -1, -6 and -9 and with zlib (python3) at levels 1, 4,
// 6 and 9.
func realStreams(t testing.TB, sizes [3]int) []stream {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	inputs := []input{
		{"sql", genSQL(rng, sizes[0])},
		{"random", genRandom(rng, sizes[1])},
		{"mixed", genMixed(rng, sizes[2])},
	}
	z := zlibReference(t)
	var ss []stream
	for _, in := range inputs {
		for _, l := range []int{1, 6, 9} {
			ss = append(ss, stream{fmt.Sprintf("gzip-%d/%s", l, in.name), in.data, gzipReference(t, l, false, in.data)})
		}
		for _, l := range []int{1, 4, 6, 9} {
			ss = append(ss, stream{fmt.Sprintf("zlib-%d/%s", l, in.name), in.data,
				z.compress(t, l, 15, 8, DefaultStrategy, 0, in.data)})
		}
	}
	return ss
}

// specialStreams are streams of stored blocks, of fixed-Huffman blocks,
// with tiny blocks and small windows, and empty ones.
func specialStreams(t testing.TB) []stream {
	t.Helper()
	rng := rand.New(rand.NewPCG(6, 6))
	z := zlibReference(t)
	sql := genSQL(rng, 300_000)
	mixed := genMixed(rng, 300_000)
	var goStored bytes.Buffer
	fw, err := flate.NewWriter(&goStored, flate.NoCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(mixed); err != nil {
		t.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	runs := []StoredRun{{Len: 65535, Count: 3}, {Len: 1, Count: 2}, {Len: 0, Count: 1}, {Len: 700, Count: 1}}
	storedData := genRandom(rng, 3*65535+2+700)
	stored, err := AppendStoredBlocks(nil, 0, runs, storedData, true)
	if err != nil {
		t.Fatal(err)
	}
	return []stream{
		{"go-stored", mixed, goStored.Bytes()},
		{"stored-runs", storedData, stored},
		{"zlib-fixed/sql", sql, z.compress(t, 6, 15, 8, Fixed, 0, sql)},
		{"zlib-fixed/mixed", mixed, z.compress(t, 1, 15, 8, Fixed, 0, mixed)},
		{"zlib-huffman-only", mixed, z.compress(t, 6, 15, 8, HuffmanOnly, 0, mixed)},
		{"zlib-rle", sql, z.compress(t, 6, 15, 8, RLE, 0, sql)},
		{"zlib-tiny-blocks", mixed, z.compress(t, 6, 15, 1, DefaultStrategy, 0, mixed)},
		{"zlib-window-9", sql, z.compress(t, 9, 9, 8, DefaultStrategy, 0, sql)},
		{"zlib-short", []byte("hello, hello"), z.compress(t, 6, 15, 8, DefaultStrategy, 0, []byte("hello, hello"))},
		{"zlib-empty", nil, z.compress(t, 6, 15, 8, DefaultStrategy, 0, nil)},
		{"gzip-empty", nil, gzipReference(t, 6, false, nil)},
		{"empty-fixed", nil, []byte{0x03, 0x00}},
		{"empty-stored", nil, []byte{0x01, 0x00, 0x00, 0xff, 0xff}},
	}
}

// TestInflateDifferential: on real tools' streams and on special ones the
// Inflater gives the original data, as compress/flate does.
func TestInflateDifferential(t *testing.T) {
	ss := append(realStreams(t, [3]int{600_000, 200_000, 400_000}), specialStreams(t)...)
	for _, s := range ss {
		t.Run(s.name, func(t *testing.T) {
			want, err := flateAll(s.src)
			if err != nil {
				t.Fatalf("compress/flate: %v", err)
			}
			if !bytes.Equal(want, s.data) {
				t.Fatalf("compress/flate does not give the data back")
			}
			for _, step := range []int{1 << 16, 1000, 1} {
				if step == 1 && len(s.data) > 100_000 {
					continue // byte by byte only on short streams
				}
				r := inflate(s.src, nil, step)
				if r.err != nil {
					t.Fatalf("step %d: %v", step, r.err)
				}
				if d := firstDiff(r.out, want); d >= 0 {
					t.Fatalf("step %d: %d bytes, differs from compress/flate's %d at %d", step, len(r.out), len(want), d)
				}
			}
		})
	}
}

// TestInflateReader checks the io.Reader contract on a stream with every
// kind of block.
func TestInflateReader(t *testing.T) {
	for _, s := range specialStreams(t) {
		if err := iotest.TestReader(NewInflater(bufio.NewReader(bytes.NewReader(s.src)), nil), s.data); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	f := NewInflater(bufio.NewReader(bytes.NewReader([]byte{0x03, 0x00})), nil)
	if n, err := f.Read(nil); n != 0 || err != nil {
		t.Errorf("Read(nil) before the end = %d, %v", n, err)
	}
	if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v, want io.EOF", n, err)
	}
	if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("Read after the end = %d, %v, want io.EOF", n, err)
	}
}

// TestInflateBlockEnds: the Inflater reports the block ends our engine
// made, for several engines over text with incompressible runs (stored
// blocks among Huffman ones), and those parseStream finds.
func TestInflateBlockEnds(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	data := slices.Concat(genSQL(rng, 100_000), genRandom(rng, 150_000), genMixed(rng, 300_000),
		genRandom(rng, 70_000), genSQL(rng, 5000))
	stored, huff := 0, 0
	for _, p := range []Params{
		GzipParams(1, RsyncOff), GzipParams(6, RsyncOff), GzipParams(9, RsyncOff),
		ZlibParams(1, 15, 8, DefaultStrategy), ZlibParams(4, 15, 8, DefaultStrategy),
		ZlibParams(6, 15, 8, DefaultStrategy), ZlibParams(9, 15, 8, DefaultStrategy),
		ZlibParams(6, 15, 1, DefaultStrategy), ZlibParams(6, 15, 8, Fixed), ZlibParams(3, 10, 2, HuffmanOnly),
	} {
		t.Run(p.String(), func(t *testing.T) {
			want, src := blockEndsOf(t, p, data)
			r := inflate(src, nil, 1<<16)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !bytes.Equal(r.out, data) {
				t.Fatal("content differs")
			}
			if len(want) < 2 {
				t.Fatalf("the engine made %d blocks", len(want))
			}
			// The engine reports its final block's end after the padding
			// to a byte boundary; the Inflater, after the end-of-block
			// code (checked against parseStream below).
			got := slices.Clone(r.ends)
			if last := &got[len(got)-1]; last.Final {
				last.Bit = (last.Bit + 7) / 8 * 8
			}
			for i := 0; i < max(len(want), len(got)); i++ {
				if i >= len(want) || i >= len(got) || got[i] != want[i] {
					t.Fatalf("%d block ends, the engine made %d; the first that differs, %d: %+v, want %+v",
						len(got), len(want), i, at(got, i), at(want, i))
				}
			}
			pr := parseStream(src, len(data)+1)
			if !pr.end || len(pr.blocks) != len(r.ends) {
				t.Fatalf("parseStream: %d blocks, end %v, %v", len(pr.blocks), pr.end, pr.stopped)
			}
			for i, b := range pr.blocks {
				e := r.ends[i]
				if e.Bit != uint64(b.bitEnd) || e.Input != int64(b.outOff+b.inLen) || e.Stored != b.stored ||
					e.Final != b.final || e.StoredLen != b.inLen {
					t.Fatalf("block end %d: %+v; parseStream: %+v", i, e, b)
				}
			}
			for _, e := range want {
				if e.Stored {
					stored++
				} else {
					huff++
				}
			}
		})
	}
	if stored == 0 || huff == 0 {
		t.Errorf("%d stored and %d Huffman block ends: the test needs both", stored, huff)
	}
}

func at(ends []BlockEnd, i int) any {
	if i < len(ends) {
		return ends[i]
	}
	return "none"
}

// TestInflateMatches: matches of every distance, up to 32768 and over
// themselves, across the slides of the output buffer, as an independent
// model and compress/flate decode them.
func TestInflateMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	w := fixedHeader(true)
	var want []byte
	for len(want) < 40000 {
		c := byte(rng.IntN(256))
		w.fixedLit(int(c))
		want = append(want, c)
	}
	for len(want) < 1_500_000 {
		if rng.IntN(3) == 0 {
			c := byte(rng.IntN(256))
			w.fixedLit(int(c))
			want = append(want, c)
			continue
		}
		length := minMatch + rng.IntN(maxMatch-minMatch+1)
		var d int
		switch rng.IntN(4) {
		case 0:
			d = 1 + rng.IntN(16)
		case 1:
			d = 1 + rng.IntN(1<<15)
		case 2:
			d = 1<<15 - rng.IntN(2)
		default:
			d, length = 1+rng.IntN(300), maxMatch
		}
		lc := lengthCode[length-minMatch]
		w.fixedLit(literals + 1 + int(lc))
		if lc != lengthCodes-1 {
			w.put(uint32(length-minMatch-int(baseLength[lc])), uint(extraLBits[lc]))
		}
		dc := dCode(d - 1)
		w.code(uint32(dc), 5).put(uint32(d-1-int(baseDist[dc])), uint(extraDBits[dc]))
		for i := 0; i < length; i++ {
			want = append(want, want[len(want)-d])
		}
	}
	w.fixedLit(endBlock)
	fl, err := flateAll(w.b)
	if err != nil || !bytes.Equal(fl, want) {
		t.Fatalf("compress/flate: %v, or the model is wrong", err)
	}
	for _, step := range []int{1 << 16, 999} {
		r := inflate(w.b, nil, step)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if d := firstDiff(r.out, want); d >= 0 {
			t.Fatalf("step %d: %d bytes, differs from the %d expected at %d", step, len(r.out), len(want), d)
		}
	}
}

// strictSource holds exactly one stream: taking a byte past it fails the
// test.
type strictSource struct {
	b   []byte
	err error // set once a byte past the stream is asked for
}

var errPastEnd = errors.New("read past the stream's end")

func (s *strictSource) ReadByte() (byte, error) {
	if len(s.b) == 0 {
		s.err = errPastEnd
		return 0, errPastEnd
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c, nil
}

func (s *strictSource) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(s.b) == 0 {
		s.err = errPastEnd
		return 0, errPastEnd
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// TestInflateConsumption: the Inflater takes from its source the stream's
// bytes and nothing more, whatever its last block is.
func TestInflateConsumption(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	z := zlibReference(t)
	sql := genSQL(rng, 50_000)
	random := genRandom(rng, 70_000)
	endStored, err := AppendStoredBlocks(nil, 0, []StoredRun{{Len: 40000, Count: 1}, {Len: 30000, Count: 1}}, random, true)
	if err != nil {
		t.Fatal(err)
	}
	ss := []stream{
		{"gzip-6", sql, gzipReference(t, 6, false, sql)},
		{"gzip-9-random", random, gzipReference(t, 9, false, random)},
		{"zlib-1-mixed", slices.Concat(sql, random), z.compress(t, 1, 15, 8, DefaultStrategy, 0, slices.Concat(sql, random))},
		{"ends-stored", random, endStored},
		{"ends-fixed", sql, z.compress(t, 6, 15, 8, Fixed, 0, sql)},
		{"short-fixed", []byte("abc"), z.compress(t, 6, 15, 8, DefaultStrategy, 0, []byte("abc"))},
		{"empty-fixed", nil, []byte{0x03, 0x00}},
		{"empty-stored", nil, []byte{0x01, 0x00, 0x00, 0xff, 0xff}},
	}
	trailer := []byte("\x1f\x8bTRAILER\x00\xff")
	for _, s := range ss {
		t.Run(s.name, func(t *testing.T) {
			r := inflate(s.src, trailer, 4096)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !bytes.Equal(r.out, s.data) {
				t.Fatal("content differs")
			}
			if !bytes.Equal(r.rest, trailer) {
				t.Fatalf("left %q in the source, want %q", r.rest, trailer)
			}
			last := r.ends[len(r.ends)-1]
			if !last.Final || (last.Bit+7)/8 != uint64(len(s.src)) || last.Input != int64(len(s.data)) {
				t.Fatalf("last block end %+v; the stream has %d bytes and %d of content", last, len(s.src), len(s.data))
			}
			for _, e := range r.ends[:len(r.ends)-1] {
				if e.Final {
					t.Fatalf("block end %+v before the last is final", e)
				}
			}
			// The same with a source that fails past the stream.
			ss := &strictSource{b: s.src}
			got, err := io.ReadAll(NewInflater(ss, nil))
			if err != nil || ss.err != nil || !bytes.Equal(got, s.data) {
				t.Fatalf("from a source of exactly the stream: %v, source %v", err, ss.err)
			}
		})
	}
}

// bitBuf writes a deflate stream bit by bit for the corrupt-stream tests.
type bitBuf struct {
	b   []byte
	pos uint64 // bits written

	// Of a dynamic block: its code-length code, and where the code
	// lengths start.
	cl      [blCodes]uint8
	lengths uint64
}

// put writes the n low bits of v, lowest first (a field).
func (w *bitBuf) put(v uint32, n uint) *bitBuf {
	for i := uint(0); i < n; i++ {
		if w.pos%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (w.pos % 8)
		w.pos++
	}
	return w
}

// code writes an n-bit Huffman code, highest bit first.
func (w *bitBuf) code(c uint32, n uint) *bitBuf {
	return w.put(uint32(reverse(uint16(c), int(n))), n)
}

// canonical returns the canonical codes of lengths.
func canonical(lengths []uint8) []uint32 {
	var count [16]uint32
	for _, l := range lengths {
		if l > 0 {
			count[l]++
		}
	}
	var next [16]uint32
	c := uint32(0)
	for l := 1; l < 16; l++ {
		next[l] = c
		c = (c + count[l]) << 1
	}
	codes := make([]uint32, len(lengths))
	for s, l := range lengths {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// dynamic writes a final dynamic block's header with the code-length code
// cl (symbol → length) and the code-length symbols syms (a repeat symbol
// is followed by its extra value).
func dynamic(nlit, ndist int, cl map[int]uint8, syms ...int) *bitBuf {
	w := &bitBuf{}
	w.put(1, 1).put(2, 2).put(uint32(nlit-257), 5).put(uint32(ndist-1), 5)
	var lens [blCodes]uint8
	for s, l := range cl {
		lens[s] = l
	}
	nclen := blCodes
	for nclen > 4 && lens[blOrder[nclen-1]] == 0 {
		nclen--
	}
	w.put(uint32(nclen-4), 4)
	for i := 0; i < nclen; i++ {
		w.put(uint32(lens[blOrder[i]]), 3)
	}
	w.cl, w.lengths = lens, w.pos
	return w.syms(syms...)
}

// syms writes code-length symbols with the code-length code of a dynamic
// block's header.
func (w *bitBuf) syms(syms ...int) *bitBuf {
	codes := canonical(w.cl[:])
	for i := 0; i < len(syms); i++ {
		s := syms[i]
		w.code(codes[s], uint(w.cl[s]))
		switch s {
		case 16:
			i++
			w.put(uint32(syms[i]-3), 2)
		case 17:
			i++
			w.put(uint32(syms[i]-3), 3)
		case 18:
			i++
			w.put(uint32(syms[i]-11), 7)
		}
	}
	return w
}

// zeros is the code-length symbols for n zero lengths.
func zeros(n int) []int {
	var s []int
	for n > 0 {
		k := min(n, 138)
		if k < 11 {
			for ; k > 0; k-- {
				s = append(s, 0)
			}
			return s
		}
		s = append(s, 18, k)
		n -= k
	}
	return s
}

func syms(parts ...[]int) []int { return slices.Concat(parts...) }

func one(s ...int) []int { return s }

// fixedLitCode writes symbol s of the fixed literal/length code.
func (w *bitBuf) fixedLit(s int) *bitBuf {
	switch {
	case s < 144:
		return w.code(uint32(0x30+s), 8)
	case s < 256:
		return w.code(uint32(0x190+s-144), 9)
	case s < 280:
		return w.code(uint32(s-256), 7)
	}
	return w.code(uint32(0xc0+s-280), 8)
}

// fixedHeader starts a stream with a fixed block.
func fixedHeader(final bool) *bitBuf {
	f := uint32(0)
	if final {
		f = 1
	}
	return (&bitBuf{}).put(f, 1).put(1, 2)
}

// TestInflateCorrupt: each way of breaking the format gives ErrCorrupt
// naming the bit offset where it breaks; compress/flate rejects the same
// streams. The degenerate codes both accept are accepted.
func TestInflateCorrupt(t *testing.T) {
	type tc struct {
		name string
		src  []byte
		bit  uint64 // where the error is reported
		msg  string
	}
	var cases []tc
	add := func(name string, w *bitBuf, bit uint64, msg string) {
		cases = append(cases, tc{name, w.b, bit, msg})
	}
	var w *bitBuf
	var mark uint64

	add("block type 3", (&bitBuf{}).put(0, 1).put(3, 2).put(0, 16), 0, "reserved block type 3")
	w = fixedHeader(false).fixedLit('a').fixedLit(endBlock)
	mark = w.pos
	add("block type 3 after a block", w.put(1, 1).put(3, 2), mark, "reserved block type 3")
	add("stored length", (&bitBuf{b: []byte{0x01, 5, 0, 5, 0, 1, 2, 3, 4, 5}}), 8, "does not match its complement")
	w = fixedHeader(false).fixedLit('a').fixedLit('b').fixedLit(endBlock).put(0, 1).put(0, 2)
	mark = (w.pos + 7) / 8 * 8
	w.b = append(w.b, 1, 0, 0xfe, 0xfe, 'x')
	add("stored length after a block", w, mark, "does not match its complement")

	add("287 literal/length codes", (&bitBuf{}).put(1, 1).put(2, 2).put(30, 5).put(0, 5).put(0, 4).put(0, 30), 3,
		"287 literal/length codes")
	add("288 literal/length codes", (&bitBuf{}).put(1, 1).put(2, 2).put(31, 5).put(0, 5).put(0, 4).put(0, 30), 3,
		"288 literal/length codes")
	add("31 distance codes", (&bitBuf{}).put(1, 1).put(2, 2).put(0, 5).put(30, 5).put(0, 4).put(0, 30), 3,
		"31 distance codes")
	add("32 distance codes", (&bitBuf{}).put(1, 1).put(2, 2).put(0, 5).put(31, 5).put(0, 4).put(0, 30), 3,
		"32 distance codes")
	all1 := map[int]uint8{}
	for s := 0; s < blCodes; s++ {
		all1[s] = 1
	}
	add("over-subscribed code-length code", dynamic(257, 1, all1).put(0, 30), 17, "over-subscribed code-length code")
	add("incomplete code-length code", dynamic(257, 1, map[int]uint8{0: 2}).put(0, 30), 17, "incomplete code-length code")
	add("single-code code-length code", dynamic(257, 1, map[int]uint8{8: 1}).put(0, 400), 17, "incomplete code-length code")
	add("empty code-length code", dynamic(257, 1, map[int]uint8{}).put(0, 30), 17, "incomplete code-length code")

	cl := map[int]uint8{0: 2, 1: 2, 16: 2, 18: 2}
	w = dynamic(257, 1, cl)
	mark = w.pos
	add("repeat of nothing", w.code(2, 2).put(0, 2).put(0, 30), mark, "repeat of no previous code length")
	w = dynamic(257, 1, cl, syms(zeros(256))...)
	mark = w.pos
	add("lengths past the codes", w.code(3, 2).put(127, 7).put(0, 30), mark, "code lengths repeat past the 258 codes")
	w = dynamic(257, 1, cl, syms(one(1), zeros(255), one(1))...)
	mark = w.pos
	add("repeat past the codes", w.syms(16, 3).put(0, 30), mark, "code lengths repeat past the 258 codes")

	w = dynamic(257, 1, cl, syms(one(1, 1), zeros(256))...)
	add("no end-of-block code", w.code(0, 1).put(0, 60), w.lengths, "no end-of-block code")
	w = dynamic(257, 1, cl, syms(one(1, 1), zeros(254), one(1, 1))...)
	add("over-subscribed literal/length code", w.put(0, 30), w.lengths, "over-subscribed literal/length code")
	cl2 := map[int]uint8{1: 2, 2: 2, 18: 1}
	w = dynamic(257, 1, cl2, syms(one(2), zeros(255), one(2, 1))...)
	add("incomplete literal/length code", w.put(0, 30), w.lengths, "incomplete literal/length code")
	w = dynamic(257, 1, cl2, syms(one(1), zeros(255), one(1, 2))...)
	add("incomplete distance code", w.put(0, 30), w.lengths, "incomplete distance code")
	w = dynamic(257, 3, cl2, syms(one(1), zeros(255), one(1, 1, 1, 1))...)
	add("over-subscribed distance code", w.put(0, 30), w.lengths, "over-subscribed distance code")

	// The lit/len code of these: 257 is 0, 'a' 10, end of block 11; the
	// distance code has one 1-bit code (0), or none.
	cl3 := map[int]uint8{0: 2, 1: 2, 2: 2, 18: 2}
	oneDist := syms(zeros(97), one(2), zeros(158), one(2, 1, 1))
	noDist := syms(zeros(97), one(2), zeros(158), one(2, 1, 0))
	w = dynamic(258, 1, cl3, oneDist...).code(2, 2).code(0, 1)
	mark = w.pos
	add("invalid distance code", w.code(1, 1).put(0, 20), mark, "invalid distance code")
	w = dynamic(258, 1, cl3, noDist...).code(2, 2).code(0, 1)
	mark = w.pos
	add("no distance code", w.put(0, 20), mark, "invalid distance code")
	w = dynamic(258, 1, cl3, oneDist...)
	mark = w.pos
	add("distance before the start", w.code(0, 1).code(0, 1).put(0, 20), mark, "distance 1 too far back")

	w = fixedHeader(true).fixedLit('a')
	mark = w.pos
	add("fixed code 286", w.fixedLit(286).put(0, 20), mark, "literal/length code 286")
	w = fixedHeader(true).fixedLit('a').fixedLit('b')
	mark = w.pos
	add("fixed code 287", w.fixedLit(287).put(0, 20), mark, "literal/length code 287")
	w = fixedHeader(true).fixedLit('a').fixedLit(257)
	mark = w.pos
	add("fixed distance code 30", w.code(30, 5).put(0, 20), mark, "distance code 30")
	w = fixedHeader(true).fixedLit('a').fixedLit(258)
	mark = w.pos
	add("fixed distance code 31", w.code(31, 5).put(0, 20), mark, "distance code 31")
	w = fixedHeader(true).fixedLit('a')
	mark = w.pos
	add("fixed distance 2 after 1 byte", w.fixedLit(257).code(1, 5).fixedLit(endBlock), mark, "distance 2 too far back")
	w = fixedHeader(false).fixedLit('a').fixedLit(257).code(0, 5).fixedLit(endBlock).put(1, 1).put(1, 2)
	for i := 0; i < 40; i++ {
		w.fixedLit('x' + i%3)
	}
	mark = w.pos
	// Distance code 29 with 13 extra bits 8191: 24577 + 8191 = 32768.
	add("distance 32768 after 44 bytes", w.fixedLit(257).code(29, 5).put(8191, 13).fixedLit(endBlock),
		mark, "distance 32768 too far back")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := inflate(c.src, nil, 4096)
			if !errors.Is(r.err, ErrCorrupt) {
				t.Fatalf("error %v, want ErrCorrupt", r.err)
			}
			want := fmt.Sprintf("deflate: corrupt stream: bit %d: ", c.bit)
			if !strings.HasPrefix(r.err.Error(), want) || !strings.Contains(r.err.Error(), c.msg) {
				t.Fatalf("error %q, want %q...%q", r.err, want, c.msg)
			}
			if _, err := flateAll(c.src); err == nil {
				t.Fatalf("compress/flate accepts the stream")
			}
			f := NewInflater(bufio.NewReader(bytes.NewReader(c.src)), nil)
			_, err := io.ReadAll(f)
			for i := 0; i < 2; i++ {
				if n, again := f.Read(make([]byte, 10)); n != 0 || again != err {
					t.Fatalf("Read after %v = %d, %v", err, n, again)
				}
			}
		})
	}

	// What both accept: one 1-bit distance code, no distance code in a
	// block without matches, a lit/len code that is only the end of block.
	good := map[string][]byte{
		"one distance code": dynamic(258, 1, cl3, oneDist...).code(2, 2).code(0, 1).code(0, 1).code(3, 2).b,
		"no distance code":  dynamic(258, 1, cl3, noDist...).code(2, 2).code(2, 2).code(3, 2).b,
		"end of block only": dynamic(257, 1, map[int]uint8{0: 1, 1: 2, 18: 2},
			syms(zeros(256), one(1, 0))...).code(0, 1).b,
	}
	wantOut := map[string]string{"one distance code": "aaaa", "no distance code": "aa", "end of block only": ""}
	for name, src := range good {
		r := inflate(src, nil, 4096)
		fl, ferr := flateAll(src)
		if r.err != nil || ferr != nil || string(r.out) != wantOut[name] || string(fl) != wantOut[name] {
			t.Errorf("%s: %q, %v; compress/flate %q, %v; want %q", name, r.out, r.err, fl, ferr, wantOut[name])
		}
	}
}

// TestInflateTruncated: every prefix of real streams gives
// io.ErrUnexpectedEOF.
func TestInflateTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 10))
	z := zlibReference(t)
	data := slices.Concat(genSQL(rng, 6000), genRandom(rng, 1500), genSQL(rng, 3000))
	stored, err := AppendStoredBlocks(nil, 0, []StoredRun{{Len: 100, Count: 3}, {Len: 0, Count: 1}}, data[:300], true)
	if err != nil {
		t.Fatal(err)
	}
	ss := []stream{
		{"zlib-6-tiny-blocks", data, z.compress(t, 6, 15, 1, DefaultStrategy, 0, data)},
		{"gzip-1", data, gzipReference(t, 1, false, data)},
		{"zlib-fixed", data[:2000], z.compress(t, 6, 15, 8, Fixed, 0, data[:2000])},
		{"stored", data[:300], stored},
	}
	for _, s := range ss {
		kinds := map[bool]int{}
		for _, e := range inflate(s.src, nil, 4096).ends {
			kinds[e.Stored]++
		}
		t.Logf("%s: %d bytes, %d stored blocks, %d Huffman", s.name, len(s.src), kinds[true], kinds[false])
		for n := 0; n < len(s.src); n++ {
			r := inflate(s.src[:n], nil, 4096)
			if r.err != io.ErrUnexpectedEOF {
				t.Fatalf("%s cut to %d of %d bytes: error %v, want io.ErrUnexpectedEOF", s.name, n, len(s.src), r.err)
			}
			if !bytes.HasPrefix(s.data, r.out) {
				t.Fatalf("%s cut to %d bytes: the output is not a prefix of the data", s.name, n)
			}
		}
	}
}

// failingSource gives n bytes of b, then fails with err.
type failingSource struct {
	b   []byte
	n   int
	err error
}

func (s *failingSource) ReadByte() (byte, error) {
	if s.n == 0 {
		return 0, s.err
	}
	c := s.b[0]
	s.b, s.n = s.b[1:], s.n-1
	return c, nil
}

func (s *failingSource) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, s.err
	}
	k := copy(p[:min(len(p), s.n)], s.b)
	s.b, s.n = s.b[k:], s.n-k
	return k, nil
}

var errMedium = errors.New("medium error")

// TestInflateSourceError: a source's own error comes back unchanged, from
// every Read after it.
func TestInflateSourceError(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	data := genMixed(rng, 200_000)
	stored, err := AppendStoredBlocks(nil, 0, []StoredRun{{Len: 65535, Count: 3}, {Len: 3395, Count: 1}}, data, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []stream{
		{"gzip-6", data, gzipReference(t, 6, false, data)},
		{"stored", data, stored},
	} {
		for _, n := range []int{0, 1, 2, 3, 4, 5, 6, 100, 65535 + 5, 65535 + 6, 65535 + 10, len(s.src) / 2, len(s.src) - 1} {
			f := NewInflater(&failingSource{b: s.src, n: n, err: errMedium}, nil)
			out, err := io.ReadAll(f)
			if err != errMedium {
				t.Fatalf("%s failing after %d bytes: error %v, want the source's", s.name, n, err)
			}
			if !bytes.HasPrefix(data, out) {
				t.Fatalf("%s failing after %d bytes: the output is not a prefix of the data", s.name, n)
			}
			if k, err := f.Read(make([]byte, 10)); k != 0 || err != errMedium {
				t.Fatalf("%s: Read after the error = %d, %v", s.name, k, err)
			}
		}
		// Without the failure, all of it.
		got, err := io.ReadAll(NewInflater(&failingSource{b: s.src, n: len(s.src), err: errMedium}, nil))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
}

// TestInflateReuse: Reset reuses an Inflater with no state leaking from
// the previous stream, and Reads allocate nothing.
func TestInflateReuse(t *testing.T) {
	ss := specialStreams(t)
	f := NewInflater(nil, nil)
	br := bufio.NewReader(nil)
	buf := make([]byte, 32<<10)
	for round := 0; round < 2; round++ {
		for _, s := range ss {
			var out []byte
			br.Reset(bytes.NewReader(s.src))
			n := 0
			f.Reset(br, func(BlockEnd) { n++ })
			for {
				k, err := f.Read(buf)
				out = append(out, buf[:k]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(out, s.data) || n == 0 {
				t.Fatalf("round %d, %s: content differs after Reset (%d block ends)", round, s.name, n)
			}
		}
	}
	rd := bytes.NewReader(nil)
	for _, s := range ss {
		allocs := testing.AllocsPerRun(3, func() {
			rd.Reset(s.src)
			br.Reset(rd)
			f.Reset(br, nil)
			for {
				if _, err := f.Read(buf); err != nil {
					break
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per stream", s.name, allocs)
		}
	}
}

// TestHuffmanTables builds the codes that need the most sub-table room and
// random long codes, and checks that every code decodes to its symbol.
func TestHuffmanTables(t *testing.T) {
	// The most sub-tables of 1<<5 a literal/length code can have: 46 root
	// prefixes each holding codes of 11 to 15 bits, the other 978 root
	// slots covered by six codes (978 = 512+256+128+64+16+2).
	var lit []uint8
	lit = append(lit, 1, 2, 3, 4, 6, 9)
	for i := 0; i < 46; i++ {
		lit = append(lit, 11, 12, 13, 14, 15, 15)
	}
	// Distances: two sub-tables of 1<<7 and one of 1<<6 (253 =
	// 128+64+32+16+8+4+1).
	dist := []uint8{1, 2, 3, 4, 5, 6, 8}
	for i := 0; i < 2; i++ {
		dist = append(dist, 9, 10, 11, 12, 13, 14, 15, 15)
	}
	dist = append(dist, 9, 10, 11, 12, 13, 14, 14)
	checkTable(t, "widest lit/len", litRoot, padTo(lit, lCodes), litEntry[:])
	checkTable(t, "widest distance", distRoot, padTo(dist, dCodes), distEntry[:])

	rng := rand.New(rand.NewPCG(12, 12))
	for i := 0; i < 300; i++ {
		n, root, sym := lCodes, uint(litRoot), litEntry[:]
		if i%2 == 1 {
			n, root, sym = dCodes, distRoot, distEntry[:]
		}
		l := randomCode(rng, 2+rng.IntN(n-1))
		l = padTo(l, n)
		rng.Shuffle(len(l), func(a, b int) { l[a], l[b] = l[b], l[a] })
		checkTable(t, fmt.Sprintf("random %d", i), root, l, sym)
	}
}

func padTo(l []uint8, n int) []uint8 { return append(l, make([]uint8, n-len(l))...) }

// randomCode returns the lengths of a random complete code of n codes of
// at most 15 bits, most of them long.
func randomCode(rng *rand.Rand, n int) []uint8 {
	leaves := []uint8{0}
	for len(leaves) < n {
		// Split a leaf, mostly one of the deepest that can be.
		i := rng.IntN(len(leaves))
		if rng.IntN(4) > 0 {
			for j, d := range leaves {
				if d < 15 && (leaves[i] >= 15 || d > leaves[i]) {
					i = j
				}
			}
		}
		if leaves[i] >= 15 {
			continue
		}
		leaves[i]++
		leaves = append(leaves, leaves[i])
	}
	return leaves
}

// checkTable builds the table of lengths and decodes every code with it.
func checkTable(t *testing.T, name string, root uint, lengths []uint8, sym []uint32) {
	t.Helper()
	tab := make([]uint32, 1<<root+max(litSubMax, distSubMax))
	limit := litTableSize
	if len(lengths) <= 32 {
		limit = distTableSize
	}
	tab = tab[:limit]
	if why := buildTable(tab, root, lengths, sym); why != "" {
		t.Fatalf("%s: %s", name, why)
	}
	codes := canonical(lengths)
	for s, l := range lengths {
		if l == 0 {
			continue
		}
		v := uint64(reverse(uint16(codes[s]), int(l)))
		e := tab[v&(1<<root-1)]
		if e&kindMask == kindLink {
			e = tab[e>>valShift+uint32(v>>root)&(1<<(e>>extraShift&15)-1)]
		}
		if e != sym[s]|uint32(l) {
			t.Fatalf("%s: symbol %d (%d bits) decodes as entry %#x, want %#x", name, s, l, e, sym[s]|uint32(l))
		}
	}
}
