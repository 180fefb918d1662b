package recompress

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
)

const tarBlock = 512

// The fields of a tar header block, as offset and length in bytes. POSIX
// ustar and GNU tar share the fields up to devminor:
//
//	offset len  field
//	     0 100  name      NUL-terminated unless it fills the field
//	   100   8  mode      octal
//	   108   8  uid       octal
//	   116   8  gid       octal
//	   124  12  size      octal, or GNU base-256 (high bit set) for big files
//	   136  12  mtime     octal
//	   148   8  chksum    octal sum of the block, taken with chksum as spaces
//	   156   1  typeflag  '0' file, '5' folder, 'L' GNU long name, 'x' pax, ...
//	   157 100  linkname
//	   257   6  magic     "ustar\x00" (POSIX) or "ustar " (GNU)
//	   263   2  version   "00" (POSIX) or " \x00" (GNU)
//	   265  32  uname
//	   297  32  gname
//	   329   8  devmajor  octal
//	   337   8  devminor  octal
//	   345 155  prefix    POSIX only: the name's leading folders
//	   500  12  (padding)
//
// Old GNU headers use the bytes from 345 for atime, ctime, offset and
// longnames, then the first sparse map entries (386, 4 of 24 bytes each),
// isextended (482: set when a sparse extension block follows) and
// realsize (483). A sparse extension block holds 21 more entries and its
// own isextended byte at 504.
const (
	hdrNameOff, hdrNameLen         = 0, 100
	hdrModeOff, hdrModeLen         = 100, 8
	hdrUIDOff, hdrUIDLen           = 108, 8
	hdrGIDOff, hdrGIDLen           = 116, 8
	hdrSizeOff, hdrSizeLen         = 124, 12
	hdrMtimeOff, hdrMtimeLen       = 136, 12
	hdrChksumOff, hdrChksumLen     = 148, 8
	hdrTypeflagOff                 = 156
	hdrLinknameOff, hdrLinknameLen = 157, 100
	hdrMagicOff, hdrMagicLen       = 257, 6
	hdrVersionOff, hdrVersionLen   = 263, 2
	hdrUnameOff, hdrUnameLen       = 265, 32
	hdrGnameOff, hdrGnameLen       = 297, 32
	hdrDevmajorOff, hdrDevmajorLen = 329, 8
	hdrDevminorOff, hdrDevminorLen = 337, 8
	hdrPrefixOff, hdrPrefixLen     = 345, 155

	gnuSparseOff, gnuSparseLen     = 386, 4 * 24
	gnuIsExtendedOff               = 482
	gnuRealsizeOff, gnuRealsizeLen = 483, 12

	extSparseOff, extSparseLen = 0, 21 * 24
	extIsExtendedOff           = 504
)

// ustarMagic is the magic field of a POSIX ustar header.
const ustarMagic = "ustar\x00"

// hdrField returns the field of header block h at off, n bytes long.
func hdrField(h []byte, off, n int) []byte { return h[off : off+n] }

// Limits of the tar walker.
const (
	// maxTarMeta bounds the data of a pax header or GNU long name that
	// the walker reads to learn the next member's size and name.
	maxTarMeta = 1 << 20
)

// isTarHeader reports whether b is a tar header block: its checksum is
// right (signed or unsigned sum, as old tars wrote either).
func isTarHeader(b []byte) bool {
	if len(b) < tarBlock {
		return false
	}
	stored, ok := parseOctal(hdrField(b, hdrChksumOff, hdrChksumLen))
	if !ok {
		return false
	}
	var u, s int64
	for i := 0; i < tarBlock; i++ {
		c := b[i]
		if i >= hdrChksumOff && i < hdrChksumOff+hdrChksumLen {
			c = ' '
		}
		u += int64(c)
		s += int64(int8(c))
	}
	if u == 8*' ' { // an all-zero block has checksum 256 with spaces
		return false
	}
	return stored == u || stored == s
}

// parseOctal reads a NUL- or space-terminated octal field.
func parseOctal(f []byte) (int64, bool) {
	f = bytes.TrimRight(bytes.TrimLeft(f, " "), " \x00")
	if len(f) == 0 {
		return 0, true
	}
	v, err := strconv.ParseInt(string(f), 8, 64)
	return v, err == nil && v >= 0
}

// tarSize decodes the size field: octal, or GNU base-256 for big files.
func tarSize(f []byte) (int64, bool) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, false // negative
		}
		var v int64
		for i, c := range f {
			if i == 0 {
				c &= 0x7f
			}
			if v > (1<<63-1)>>8 {
				return 0, false
			}
			v = v<<8 | int64(c)
		}
		return v, true
	}
	return parseOctal(f)
}

func zeroBlock(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// tarNode walks a tar layer. Headers, padding and member data stay in the
// skeleton stream, except the data of members that are gzip, which is cut
// out and unpacked as a child layer. Bytes the walker cannot parse stay in
// the skeleton: the layer is always rebuilt exactly.
func (u *unpacker) tarNode(r *bufio.Reader, depth int, c nodeCtx) (Node, uint64, error) {
	t := &tarWalk{u: u, r: r, c: c.child("tar"), depth: depth, node: &Tar{}, meta: tarMeta{paxSize: -1}}
	if !c.discard {
		si, err := u.sharedStream(KindTar)
		if err != nil {
			return nil, 0, err
		}
		t.node.Skeleton = si
	}
	stats := u.sum.tar()
	defer func() { t.ahead.stop() }()
	if err := t.walk(stats); err != nil {
		return nil, 0, err
	}
	// Everything after the archive (end blocks, record padding, garbage).
	if err := t.copyRest(); err != nil {
		return nil, 0, err
	}
	t.node.Rest = t.pending
	if c.discard {
		return nil, t.total, nil
	}
	return t.node, t.total, nil
}

type tarWalk struct {
	u       *unpacker
	r       *bufio.Reader
	c       nodeCtx
	depth   int
	node    *Tar
	pending uint64 // skeleton bytes since the last part
	total   uint64 // bytes read
	block   [tarBlock]byte
	meta    tarMeta // what extended headers said about the next member
	ended   bool    // an end-of-archive block was seen
	inMeta  bool    // the last header was a long name or pax header
	ahead   *ahead  // identifies small gzip members ahead (nil: none met)
}

// skel copies n bytes of the layer into the skeleton.
func (t *tarWalk) skel(p []byte) error {
	t.pending += uint64(len(p))
	t.total += uint64(len(p))
	if t.c.discard {
		return nil
	}
	return t.u.write(t.node.Skeleton, p)
}

// readBlock reads one 512-byte block; short is set at the end of input.
func (t *tarWalk) readBlock() (b []byte, short bool, err error) {
	n, err := io.ReadFull(t.r, t.block[:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return t.block[:n], true, nil
	}
	if err != nil {
		return nil, false, t.u.readErr(err)
	}
	return t.block[:], false, nil
}

// copyN copies n bytes of member data to the skeleton, handing them to obs.
func (t *tarWalk) copyN(n int64, obs io.Writer) (short bool, err error) {
	buf := make([]byte, 32<<10)
	for n > 0 {
		k, rerr := t.r.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if obs != nil {
				_, _ = obs.Write(buf[:k]) // observers (summary counters, a bytes.Buffer) never fail
			}
			if err := t.skel(buf[:k]); err != nil {
				return false, err
			}
			n -= int64(k)
		}
		if rerr == io.EOF {
			return n > 0, nil
		}
		if rerr != nil {
			return false, t.u.readErr(rerr)
		}
	}
	return false, nil
}

// walk copies the archive block by block into the skeleton, member after
// member, until its end or the first block it cannot parse.
func (t *tarWalk) walk(stats *tarStats) error {
	for {
		if err := t.u.ctx.Err(); err != nil {
			return err
		}
		more, err := t.next(stats)
		if err != nil || !more {
			return err
		}
	}
}

// next handles the block at the read position: an end-of-archive block,
// or a header with the member data that follows it. It reports false once
// the archive is over, truncated, or no longer parses; what follows is
// then left to copyRest.
func (t *tarWalk) next(stats *tarStats) (more bool, err error) {
	head, _ := t.r.Peek(tarBlock)
	if len(head) < tarBlock {
		if len(head) > 0 && !t.ended {
			t.u.warn(t.c, int64(t.total), "tar archive truncated (%d bytes after the last block)", len(head))
		}
		return false, nil
	}
	if zeroBlock(head) {
		// End-of-archive blocks and record padding; archives joined
		// end to end carry on after them.
		t.ended = true
		if _, err := t.copyN(tarBlock, nil); err != nil {
			return false, err
		}
		return true, nil
	}
	if !isTarHeader(head) {
		if !t.ended {
			t.u.warn(t.c, int64(t.total), "tar header checksum error; the rest of the archive is kept as is")
		}
		return false, nil
	}
	return t.member(stats)
}

// member copies a header block, which the caller checked, and what
// belongs to it: the data of an extended header, or a member's sparse map
// and data.
func (t *tarWalk) member(stats *tarStats) (more bool, err error) {
	off := int64(t.total)
	if !t.inMeta && !t.c.discard {
		// A member starts (with its extended headers, if any).
		if err := t.u.boundary(t.node.Skeleton); err != nil {
			return false, err
		}
	}
	b, _, err := t.readBlock()
	if err != nil {
		return false, err
	}
	hdr := append([]byte(nil), b...)
	if err := t.skel(hdr); err != nil {
		return false, err
	}
	size, ok := tarSize(hdrField(hdr, hdrSizeOff, hdrSizeLen))
	if !ok {
		t.u.warn(t.c, off, "tar header has an invalid size field")
		return false, nil
	}
	typ := hdr[hdrTypeflagOff]
	name, size := t.meta.apply(tarName(hdr), size, typ)
	t.inMeta = typ == 'L' || typ == 'K' || typ == 'x'
	switch typ {
	case '1', '2', '3', '4', '5', '6':
		// Links, devices, folders and FIFOs carry no data.
		stats.member(name, typ, 0)
		return true, nil
	case 'L', 'K', 'x', 'g':
		return t.extended(typ, size, off)
	}
	if typ == 'S' && hdr[gnuIsExtendedOff] != 0 {
		if more, err := t.sparseMap(off); !more {
			return false, err
		}
	}
	stats.member(name, typ, size)
	return t.data(name, size, off)
}

// tarMeta is what extended headers say about the next member.
type tarMeta struct {
	longName string // of a GNU long name header, or ""
	paxPath  string // of a pax header, or ""
	paxSize  int64  // of a pax header, or -1
}

// apply returns the name and size of the member whose header has typ,
// name and size, taking those the extended headers before it gave. The
// next header, whatever its type, takes a long name or pax path; the pax
// size waits for a header that is not itself a pax header.
func (m *tarMeta) apply(name string, size int64, typ byte) (string, int64) {
	if m.longName != "" {
		name, m.longName = m.longName, ""
	}
	if m.paxPath != "" {
		name, m.paxPath = m.paxPath, ""
	}
	if m.paxSize >= 0 && typ != 'x' && typ != 'g' {
		size, m.paxSize = m.paxSize, -1
	}
	return name, size
}

// extended copies the data of an extended header (a GNU long name or long
// link name, a pax header, a pax global header) and notes what it says
// about the next member.
func (t *tarWalk) extended(typ byte, size, off int64) (more bool, err error) {
	if size > maxTarMeta {
		t.u.warn(t.c, off, "tar extended header of %d bytes is too large", size)
		return false, nil
	}
	var buf bytes.Buffer
	if short, err := t.copyN(size, &buf); err != nil || short {
		if short {
			t.u.warn(t.c, off, "tar archive truncated")
		}
		return false, err
	}
	if short, err := t.pad(size); err != nil || short {
		return false, err
	}
	switch typ {
	case 'L':
		t.meta.longName = strings.TrimRight(buf.String(), "\x00")
	case 'x':
		if s, p, ok := parsePax(buf.Bytes()); ok {
			t.meta.paxSize, t.meta.paxPath = s, p
		} else {
			t.u.warn(t.c, off, "tar pax header is malformed")
		}
	}
	return true, nil
}

// sparseMap copies the extension blocks of an old GNU sparse file's map:
// they follow the header while their isextended byte is set.
func (t *tarWalk) sparseMap(off int64) (more bool, err error) {
	for {
		b, short, err := t.readBlock()
		if err != nil {
			return false, err
		}
		if err := t.skel(b); err != nil {
			return false, err
		}
		if short {
			t.u.warn(t.c, off, "tar archive truncated in a sparse map")
			return false, nil
		}
		if b[extIsExtendedOff] == 0 {
			return true, nil
		}
	}
}

// data copies a member's data and its padding: gzip data is unpacked as a
// child layer, anything else goes to the skeleton.
func (t *tarWalk) data(name string, size, off int64) (more bool, err error) {
	head, _ := t.r.Peek(3)
	if size >= 18 && isGzip(head) {
		t.lookAhead(int64(t.total), size)
		if err := t.splice(name, size, off); err != nil {
			return false, err
		}
	} else if short, err := t.copyN(size, t.u.sum.memberObserver(name)); err != nil || short {
		if short {
			t.u.warn(t.c, off, "tar archive truncated in member %s", name)
		}
		return false, err
	}
	if short, err := t.pad(size); err != nil || short {
		return false, err
	}
	return true, nil
}

// pad copies the padding of a member's data to the block boundary.
func (t *tarWalk) pad(size int64) (bool, error) {
	if r := size % tarBlock; r != 0 {
		short, err := t.copyN(tarBlock-r, nil)
		if short {
			t.u.warn(t.c, int64(t.total), "tar archive truncated in padding")
		}
		return short, err
	}
	return false, nil
}

// splice unpacks a member's gzip data as a child layer.
func (t *tarWalk) splice(name string, size, off int64) error {
	lr := &io.LimitedReader{R: t.r, N: size}
	c := t.c.child("member " + name)
	c.name = name
	c.ahead = t.ahead
	c.content = c.content || isCarried(name)
	child, n, err := t.u.node(bufio.NewReaderSize(lr, smallBuf), t.depth+1, c)
	if err != nil {
		return err
	}
	t.total += n
	if int64(n) != size {
		// The tar was cut inside this member: what was read is all there is.
		t.u.warn(t.c, off, "tar archive truncated in member %s", name)
	}
	if !t.c.discard {
		if len(name) > MaxNameSize {
			name = name[:MaxNameSize]
		}
		t.node.Parts = append(t.node.Parts, TarPart{Skip: t.pending, Child: child, Len: n, Name: name})
	}
	t.pending = 0
	return nil
}

// copyRest copies what follows the archive into the skeleton.
func (t *tarWalk) copyRest() error {
	_, err := t.copyN(1<<62, nil)
	return err
}

// tarName returns the ustar name (prefix/name).
func tarName(h []byte) string {
	name := cstr(hdrField(h, hdrNameOff, hdrNameLen))
	if string(hdrField(h, hdrMagicOff, hdrMagicLen)) == ustarMagic {
		if p := cstr(hdrField(h, hdrPrefixOff, hdrPrefixLen)); p != "" {
			name = p + "/" + name
		}
	}
	return name
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parsePax reads the size and path of pax records ("%d key=value\n").
func parsePax(b []byte) (size int64, path string, ok bool) {
	size = -1
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return -1, "", false
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) || b[n-1] != '\n' {
			return -1, "", false
		}
		rec := b[sp+1 : n-1]
		b = b[n:]
		k, v, found := bytes.Cut(rec, []byte{'='})
		if !found {
			return -1, "", false
		}
		switch string(k) {
		case "size":
			s, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || s < 0 {
				return -1, "", false
			}
			size = s
		case "path":
			path = string(v)
		}
	}
	return size, path, true
}

// isCarried reports whether a member is content the backup carries (an
// upload) rather than part of the backup itself, for warnings.
func isCarried(name string) bool {
	return strings.HasPrefix(name, "uploads/") || strings.Contains(name, "/uploads/")
}
