package recompress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"

	"github.com/larder/larder/recompress/deflate"
)

// Kind says what a canonical stream holds. Values are stored in recipes
// and manifests: they are never reused or renumbered.
type Kind uint8

const (
	KindRaw      Kind = 1 // bytes of no known structure
	KindTar      Kind = 2 // tar skeletons: headers, padding, members kept as is
	KindSQL      Kind = 3 // pg_dump plain-format SQL text
	KindPGData   Kind = 4 // pg_dump directory-format table data (COPY rows)
	KindJSON     Kind = 5 // JSON documents (Zulip exports, meta.json)
	KindVerbatim Kind = 6 // compressed bytes that no engine reproduces
)

func (k Kind) String() string {
	switch k {
	case KindRaw:
		return "raw"
	case KindTar:
		return "tar"
	case KindSQL:
		return "sql"
	case KindPGData:
		return "pgdata"
	case KindJSON:
		return "json"
	case KindVerbatim:
		return "verbatim"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Stream describes one canonical stream of a recipe.
type Stream struct {
	Kind Kind
	Len  uint64 // bytes
}

// Recipe rebuilds a backup from its canonical streams.
type Recipe struct {
	Streams []Stream
	Root    Node
	Size    uint64 // length of the original file
}

// Node is one layer of the tree: *Copy, *Gzip or *Tar.
type Node interface{ node() }

// Copy is Len bytes taken from a stream, in order.
type Copy struct {
	Stream int
	Len    uint64
}

// Gzip is a gzip file: members whose decompressed contents, concatenated,
// are the output of Content, then Trailing bytes from the Verbatim stream.
type Gzip struct {
	Content  Node // nil when every member is verbatim
	Members  []Member
	Trailing uint64 // bytes after the last member (verbatim stream)
	Verbatim int    // stream of this layer's verbatim bytes, -1 if none
}

// Member modes.
const (
	ModeExact    = 0 // the engine rebuilds the whole deflate stream
	ModeVerbatim = 1 // the deflate stream is stored as is
	ModePartial  = 2 // the engine rebuilds a prefix, the rest is stored
)

// Member is one gzip member.
type Member struct {
	Header     []byte         // the header bytes, verbatim
	Mode       uint8          // ModeExact, ModeVerbatim or ModePartial
	Params     deflate.Params // the engine (not ModeVerbatim)
	ContentLen uint64         // decompressed bytes taken from Content
	Exact      uint64         // deflate bytes the engine rebuilds
	Tail       uint64         // deflate bytes after them (verbatim stream)
	// Trailer is nil when CRC-32 and ISIZE follow from the content;
	// otherwise it holds the bytes found (0 to 8, damaged input).
	Trailer []byte
	// Segments, when not empty, cut an exact member's deflate stream at
	// block boundaries of the original into parts that restore makes
	// side by side (recipe version 2); empty means one engine run. In a
	// partial member (version 3) they cover its exact bytes: their bits
	// end inside the byte after them, where the tail starts.
	Segments []Segment
}

// Segment is one part of a member's deflate stream, from a block boundary
// of the original to the next one chosen (docs/FORMAT.md, "Recipe").
type Segment struct {
	Content uint64 // content bytes the part covers
	Bits    uint64 // bits of the deflate stream it makes (the last part: to the stream's end)
	// Kind is SegStart (the engine from the stream's beginning, the first
	// part only), a deflate.Warm (the engine restarted at the part's start
	// after that warm-up) or SegStored (stored blocks of the lengths in
	// Stored, no engine).
	Kind   uint8
	Stored []deflate.StoredRun
}

// Segment kinds; stored in recipes, never reused. 1 to 4 are the
// deflate.Warm kinds.
const (
	SegStart  uint8 = 0
	SegStored uint8 = 255
)

// MaxSegments bounds the parts of one member.
const MaxSegments = 1 << 20

// MaxPartContent bounds the content of one part: restore holds a part's
// content (and its warm-up) in memory while it is made. Ingest makes
// parts of about 2 MiB (and a block more); a member whose parts would be
// larger is left in one piece.
const MaxPartContent = 16 << 20

// gzipNodes yields the gzip layers under n, n first if it is one, outer
// layers before the layers inside them.
func gzipNodes(n Node) iter.Seq[*Gzip] {
	return func(yield func(*Gzip) bool) { walkGzip(n, yield) }
}

func walkGzip(n Node, yield func(*Gzip) bool) bool {
	switch n := n.(type) {
	case *Gzip:
		return yield(n) && (n.Content == nil || walkGzip(n.Content, yield))
	case *Tar:
		for _, p := range n.Parts {
			if !walkGzip(p.Child, yield) {
				return false
			}
		}
	}
	return true
}

// Tar is a tar layer: the skeleton stream with children spliced in.
type Tar struct {
	Skeleton int
	Parts    []TarPart
	Rest     uint64 // skeleton bytes after the last part
}

// TarPart is Skip skeleton bytes followed by a child layer's output (the
// data of one member) of Len bytes.
type TarPart struct {
	Skip  uint64
	Child Node
	Len   uint64
	Name  string // the member's name, for canonical exports and messages
}

func (*Copy) node() {}
func (*Gzip) node() {}
func (*Tar) node()  {}

// Limits on recipes read from disk.
const (
	// MaxRecipeSize bounds an encoded recipe.
	MaxRecipeSize = 64 << 20
	// MaxStreams bounds the canonical streams of one recipe.
	MaxStreams = 1 << 16
	// MaxDepth bounds the nesting of layers.
	MaxDepth = 8
	// MaxHeaderSize bounds a gzip header kept in a recipe.
	MaxHeaderSize = 1 << 18
	// MaxNodes bounds the nodes (members, parts) of one recipe.
	MaxNodes = 1 << 22
	// MaxNameSize bounds a tar member name kept in a recipe.
	MaxNameSize = 1 << 16
)

// ErrRecipe reports a recipe that cannot be decoded or does not add up.
var ErrRecipe = errors.New("recompress: invalid recipe")

var recipeMagic = []byte("LRCP")

const recipeVersion = 4

// RecipeVersion is the version of the recipes this release writes; it
// also reads version 1, which has no segments, version 2, whose partial
// members have none, and version 3, whose gzip --rsyncable members have
// none (docs/FORMAT.md, "Recipe").
const RecipeVersion = recipeVersion

const (
	tagCopy = 1
	tagGzip = 2
	tagTar  = 3
)

// MarshalBinary encodes the recipe (docs/FORMAT.md, "recipe").
func (r *Recipe) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	var b []byte
	b = append(b, recipeMagic...)
	b = append(b, recipeVersion)
	b = binary.AppendUvarint(b, r.Size)
	b = binary.AppendUvarint(b, uint64(len(r.Streams)))
	for _, s := range r.Streams {
		b = append(b, byte(s.Kind))
		b = binary.AppendUvarint(b, s.Len)
	}
	return appendNode(b, r.Root)
}

func appendNode(b []byte, n Node) ([]byte, error) {
	switch n := n.(type) {
	case *Copy:
		b = append(b, tagCopy)
		b = binary.AppendUvarint(b, uint64(n.Stream))
		b = binary.AppendUvarint(b, n.Len)
	case *Gzip:
		b = append(b, tagGzip)
		b = binary.AppendUvarint(b, uint64(n.Verbatim+1))
		b = binary.AppendUvarint(b, n.Trailing)
		b = binary.AppendUvarint(b, uint64(len(n.Members)))
		for i := range n.Members {
			m := &n.Members[i]
			b = binary.AppendUvarint(b, uint64(len(m.Header)))
			b = append(b, m.Header...)
			b = append(b, m.Mode)
			if m.Mode != ModeVerbatim {
				p, err := m.Params.MarshalBinary()
				if err != nil {
					return nil, err
				}
				b = binary.AppendUvarint(b, uint64(len(p)))
				b = append(b, p...)
			}
			b = binary.AppendUvarint(b, m.ContentLen)
			b = binary.AppendUvarint(b, m.Exact)
			b = binary.AppendUvarint(b, m.Tail)
			if m.Trailer == nil {
				b = append(b, 0)
			} else {
				b = append(b, 1, byte(len(m.Trailer)))
				b = append(b, m.Trailer...)
			}
			b = appendSegments(b, m.Segments)
		}
		if n.Content == nil {
			b = append(b, 0)
		} else {
			var err error
			if b, err = appendNode(b, n.Content); err != nil {
				return nil, err
			}
		}
	case *Tar:
		b = append(b, tagTar)
		b = binary.AppendUvarint(b, uint64(n.Skeleton))
		b = binary.AppendUvarint(b, uint64(len(n.Parts)))
		for _, p := range n.Parts {
			b = binary.AppendUvarint(b, p.Skip)
			b = binary.AppendUvarint(b, p.Len)
			b = binary.AppendUvarint(b, uint64(len(p.Name)))
			b = append(b, p.Name...)
			var err error
			if b, err = appendNode(b, p.Child); err != nil {
				return nil, err
			}
		}
		b = binary.AppendUvarint(b, n.Rest)
	default:
		return nil, fmt.Errorf("%w: unknown node %T", ErrRecipe, n)
	}
	return b, nil
}

// UnmarshalBinary decodes a recipe, checking every length and count
// against the Max* limits before it allocates, and validates it.
func (r *Recipe) UnmarshalBinary(data []byte) error {
	if len(data) > MaxRecipeSize {
		return fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrRecipe, len(data), MaxRecipeSize)
	}
	d := &decoder{b: data}
	if !bytes.HasPrefix(data, recipeMagic) {
		return fmt.Errorf("%w: bad magic", ErrRecipe)
	}
	d.b = d.b[len(recipeMagic):]
	d.version = d.byte()
	if d.version < 1 || d.version > recipeVersion {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: version %d is unknown", ErrRecipe, d.version)
	}
	var q Recipe
	q.Size = d.uvarint()
	ns := d.count(MaxStreams)
	for i := 0; i < ns && d.err == nil; i++ {
		q.Streams = append(q.Streams, Stream{Kind: Kind(d.byte()), Len: d.uvarint()})
	}
	q.Root = d.node(0)
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrRecipe, len(d.b))
	}
	if err := q.Validate(); err != nil {
		return err
	}
	*r = q
	return nil
}

type decoder struct {
	b       []byte
	err     error
	nodes   int
	version byte
}

// fail notes the first decoding error, formatted as by fmt.Errorf (a %w
// verb keeps a cause), as an ErrRecipe.
func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrRecipe}, a...)...)
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count and checks it against max and the bytes left.
func (d *decoder) count(max int) int {
	v := d.uvarint()
	if v > uint64(max) || v > uint64(len(d.b)) {
		d.fail("count %d is over its limit", v)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(max int) []byte {
	n := d.count(max)
	if d.err != nil {
		return nil
	}
	p := bytes.Clone(d.b[:n])
	d.b = d.b[n:]
	return p
}

// node decodes a node and the layers below it.
func (d *decoder) node(depth int) Node {
	if d.err != nil {
		return nil
	}
	if depth > MaxDepth {
		d.fail("layers nested deeper than %d", MaxDepth)
		return nil
	}
	d.nodes++
	if d.nodes > MaxNodes {
		d.fail("more than %d nodes", MaxNodes)
		return nil
	}
	switch tag := d.byte(); tag {
	case tagCopy:
		s := d.uvarint()
		if s >= MaxStreams {
			d.fail("stream %d", s)
		}
		return &Copy{Stream: int(s), Len: d.uvarint()}
	case tagGzip:
		return d.gzip(depth)
	case tagTar:
		return d.tar(depth)
	default:
		d.fail("node tag %d", tag)
		return nil
	}
}

// gzip decodes a gzip node after its tag: the verbatim stream, the
// members and the content layer, if it is stored.
func (d *decoder) gzip(depth int) Node {
	g := &Gzip{}
	v := d.uvarint()
	if v > MaxStreams {
		d.fail("stream %d", v)
	}
	g.Verbatim = int(v) - 1
	g.Trailing = d.uvarint()
	nm := d.count(MaxNodes)
	for i := 0; i < nm && d.err == nil; i++ {
		d.nodes++
		m, ok := d.member(i)
		if !ok {
			return nil
		}
		g.Members = append(g.Members, m)
	}
	if len(d.b) > 0 && d.b[0] == 0 {
		d.b = d.b[1:]
	} else {
		g.Content = d.node(depth + 1)
	}
	return g
}

// member decodes gzip member i. It reports false when the member cannot
// be decoded further (d.err is then set).
func (d *decoder) member(i int) (Member, bool) {
	var m Member
	m.Header = d.bytes(MaxHeaderSize)
	m.Mode = d.byte()
	if m.Mode > ModePartial {
		d.fail("member mode %d", m.Mode)
		return m, false
	}
	if m.Mode != ModeVerbatim {
		p := d.bytes(1 << 20)
		if d.err == nil {
			if err := m.Params.UnmarshalBinary(p); err != nil {
				d.fail("member %d: %w", i, err)
			}
		}
	}
	m.ContentLen = d.uvarint()
	m.Exact = d.uvarint()
	m.Tail = d.uvarint()
	switch d.byte() {
	case 0:
	case 1:
		n := int(d.byte())
		if n > 8 || n > len(d.b) {
			d.fail("trailer of %d bytes", n)
			return m, false
		}
		m.Trailer = bytes.Clone(d.b[:n])
		d.b = d.b[n:]
	default:
		d.fail("bad trailer flag")
	}
	if d.version >= 2 {
		m.Segments = d.segments()
		if d.version < 3 && m.Mode == ModePartial && len(m.Segments) > 0 {
			d.fail("member %d: a partial member with parts in a version %d recipe", i, d.version)
		}
		if d.version < 4 && m.Params.Rsync != deflate.RsyncOff && len(m.Segments) > 0 {
			d.fail("member %d: a gzip --rsyncable member with parts in a version %d recipe", i, d.version)
		}
	}
	return m, d.err == nil
}

// tar decodes a tar node after its tag: the skeleton stream and the
// members with their child layers.
func (d *decoder) tar(depth int) Node {
	t := &Tar{}
	s := d.uvarint()
	if s >= MaxStreams {
		d.fail("stream %d", s)
	}
	t.Skeleton = int(s)
	np := d.count(MaxNodes)
	for i := 0; i < np && d.err == nil; i++ {
		var p TarPart
		p.Skip = d.uvarint()
		p.Len = d.uvarint()
		p.Name = string(d.bytes(MaxNameSize))
		p.Child = d.node(depth + 1)
		t.Parts = append(t.Parts, p)
	}
	t.Rest = d.uvarint()
	return t
}

// Validate checks that the recipe adds up: every stream is known, every
// stream's length equals what the nodes take from it, and every node's
// output has a determined length.
func (r *Recipe) Validate() error {
	if len(r.Streams) > MaxStreams {
		return fmt.Errorf("%w: %d streams", ErrRecipe, len(r.Streams))
	}
	for i, s := range r.Streams {
		if s.Kind < KindRaw || s.Kind > KindVerbatim {
			return fmt.Errorf("%w: stream %d has unknown kind %d", ErrRecipe, i, s.Kind)
		}
	}
	used := make([]uint64, len(r.Streams))
	if r.Root == nil {
		return fmt.Errorf("%w: no root", ErrRecipe)
	}
	size, err := r.check(r.Root, used, 0)
	if err != nil {
		return err
	}
	if size != r.Size {
		return fmt.Errorf("%w: layers make %d bytes, the file has %d", ErrRecipe, size, r.Size)
	}
	for i, s := range r.Streams {
		if used[i] != s.Len {
			return fmt.Errorf("%w: stream %d holds %d bytes, the layers take %d", ErrRecipe, i, s.Len, used[i])
		}
	}
	return nil
}

// errOverflow reports lengths that do not fit in 64 bits.
var errOverflow = fmt.Errorf("%w: lengths overflow", ErrRecipe)

// sum adds lengths, failing on overflow (recipes come from storage).
func sum(xs ...uint64) (uint64, error) {
	var t uint64
	for _, x := range xs {
		if t+x < t {
			return 0, errOverflow
		}
		t += x
	}
	return t, nil
}

// check returns the output length of n and adds what n takes from each
// stream to used.
func (r *Recipe) check(n Node, used []uint64, depth int) (uint64, error) {
	if depth > MaxDepth {
		return 0, fmt.Errorf("%w: layers nested deeper than %d", ErrRecipe, MaxDepth)
	}
	switch n := n.(type) {
	case *Copy:
		if err := checkStream(n.Stream, used); err != nil {
			return 0, err
		}
		u, err := sum(used[n.Stream], n.Len)
		used[n.Stream] = u
		return n.Len, err
	case *Gzip:
		return r.checkGzip(n, used, depth)
	case *Tar:
		return r.checkTar(n, used, depth)
	case nil:
		return 0, fmt.Errorf("%w: missing node", ErrRecipe)
	default:
		return 0, fmt.Errorf("%w: unknown node %T", ErrRecipe, n)
	}
}

// checkStream fails unless stream i is one of the recipe's.
func checkStream(i int, used []uint64) error {
	if i < 0 || i >= len(used) {
		return fmt.Errorf("%w: stream %d does not exist", ErrRecipe, i)
	}
	return nil
}

// checkGzip checks a gzip layer: its members, the content layer they
// compress and the verbatim bytes they take. It returns the layer's output
// length.
func (r *Recipe) checkGzip(n *Gzip, used []uint64, depth int) (uint64, error) {
	var out, content uint64
	needContent := false
	for i := range n.Members {
		m := &n.Members[i]
		mout, needs, err := checkMember(i, m)
		if err != nil {
			return 0, err
		}
		needContent = needContent || needs
		if content, err = sum(content, m.ContentLen); err != nil {
			return 0, err
		}
		if out, err = sum(out, mout); err != nil {
			return 0, err
		}
	}
	if n.Content != nil {
		got, err := r.check(n.Content, used, depth+1)
		if err != nil {
			return 0, err
		}
		if got != content {
			return 0, fmt.Errorf("%w: gzip content makes %d bytes, its members take %d", ErrRecipe, got, content)
		}
	} else if needContent && content != 0 {
		return 0, fmt.Errorf("%w: gzip members need content that is missing", ErrRecipe)
	}
	verbatim := n.Trailing
	for _, m := range n.Members {
		var err error
		if verbatim, err = sum(verbatim, m.Tail); err != nil {
			return 0, err
		}
	}
	if verbatim > 0 {
		if err := checkStream(n.Verbatim, used); err != nil {
			return 0, err
		}
		u, err := sum(used[n.Verbatim], verbatim)
		if err != nil {
			return 0, err
		}
		used[n.Verbatim] = u
	}
	return sum(out, n.Trailing)
}

// checkMember checks gzip member i on its own. It returns the member's
// output length (header, engine bytes, verbatim tail, trailer) and whether
// its mode needs the content layer.
func checkMember(i int, m *Member) (out uint64, needContent bool, err error) {
	if len(m.Header) < 10 || len(m.Header) > MaxHeaderSize {
		return 0, false, fmt.Errorf("%w: gzip member %d header of %d bytes", ErrRecipe, i, len(m.Header))
	}
	switch m.Mode {
	case ModeExact:
		if m.Tail != 0 {
			return 0, false, fmt.Errorf("%w: exact member %d with a verbatim tail", ErrRecipe, i)
		}
		needContent = true
	case ModePartial:
		needContent = true
	case ModeVerbatim:
		if m.Exact != 0 {
			return 0, false, fmt.Errorf("%w: verbatim member %d with engine bytes", ErrRecipe, i)
		}
	default:
		return 0, false, fmt.Errorf("%w: member %d mode %d", ErrRecipe, i, m.Mode)
	}
	if len(m.Trailer) > 8 {
		return 0, false, fmt.Errorf("%w: member %d trailer of %d bytes", ErrRecipe, i, len(m.Trailer))
	}
	trailer := uint64(8)
	if m.Trailer != nil {
		trailer = uint64(len(m.Trailer))
	}
	if err := checkSegments(i, m); err != nil {
		return 0, false, err
	}
	out, err = sum(uint64(len(m.Header)), m.Exact, m.Tail, trailer)
	return out, needContent, err
}

// checkTar checks a tar layer: its skeleton stream and its members'
// child layers. It returns the layer's output length.
func (r *Recipe) checkTar(n *Tar, used []uint64, depth int) (uint64, error) {
	if err := checkStream(n.Skeleton, used); err != nil {
		return 0, err
	}
	var out uint64
	for _, p := range n.Parts {
		got, err := r.check(p.Child, used, depth+1)
		if err != nil {
			return 0, err
		}
		if got != p.Len {
			return 0, fmt.Errorf("%w: tar member of %d bytes rebuilt as %d", ErrRecipe, p.Len, got)
		}
		if used[n.Skeleton], err = sum(used[n.Skeleton], p.Skip); err != nil {
			return 0, err
		}
		if out, err = sum(out, p.Skip, p.Len); err != nil {
			return 0, err
		}
	}
	u, err := sum(used[n.Skeleton], n.Rest)
	if err != nil {
		return 0, err
	}
	used[n.Skeleton] = u
	return sum(out, n.Rest)
}
