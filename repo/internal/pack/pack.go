package pack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
)

// ID is the 32-byte name of a chunk (keyed hash of its plaintext) or of
// an object (SHA-256 of its bytes).
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// ParseID reads a 64-digit hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("invalid ID %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText writes an ID as hex (also as a JSON map key).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// MarshalJSON writes IDs as hex.
func (id ID) MarshalJSON() ([]byte, error) { return json.Marshal(id.String()) }

// UnmarshalJSON reads a hex ID.
func (id *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// BlobType says what a blob holds and which session key seals it.
// Values are stored in packs and index files: never reused.
type BlobType uint8

const (
	// BlobData is a chunk of a canonical stream: sealed with the session's
	// data key, which only the master can derive.
	BlobData BlobType = 1
	// BlobList is a chunk of a chunk list: sealed with the meta key,
	// which auditors can derive too.
	BlobList BlobType = 2
)

func (t BlobType) Valid() bool { return t == BlobData || t == BlobList }

// Pack format v1 (docs/FORMAT.md, "Pack"):
//
//	magic "LRDPACK1" | ephemeral public key (32) | writer key ID (16)
//	blob* (each sealed: nonce 24 | ciphertext | tag 16)
//	trailer (sealed with the index key) | trailer length (uint32 LE)
const (
	// Magic1 starts packs of repository versions 1 and 2 (long entries
	// in the trailer), Magic2 those of version 3 (short entries).
	Magic1     = "LRDPACK1"
	Magic2     = "LRDPACK2"
	HeaderSize = len(Magic1) + 32 + 16
	// MaxTrailer bounds a pack's trailer.
	MaxTrailer = 16 << 20
	// ObjTrailer is the AEAD object type of the trailer (docs/FORMAT.md;
	// never reused).
	ObjTrailer = 'T'
)

// Blob is one entry of a pack: a chunk sealed on its own, or (Framed) a
// data chunk inside a frame, several chunks sealed together.
//
// In repository version 3 an entry says only where the sealed object is
// (short entries): whoever holds the index key (every writer) learns which
// chunks share a frame and its padded size, never a chunk's length or
// place in it, which the frame's sealed header says. Versions 1 and 2
// write long entries, with RawLen, Inner and FrameRaw.
type Blob struct {
	Type   BlobType
	ID     ID
	Offset uint32 // in the pack (of the frame, when framed)
	Length uint32 // sealed bytes (of the frame)

	Framed bool

	// Long entries only (zero in short ones).
	RawLen   uint32 // the chunk's plaintext bytes
	Inner    uint32 // where the chunk starts in the frame's plaintext
	FrameRaw uint32 // the frame's plaintext bytes
}

// EntryFormat is how blob entries are encoded: long (repository versions
// 1 and 2) or short (version 3).
type EntryFormat uint8

const (
	EntriesLong  EntryFormat = 1
	EntriesShort EntryFormat = 2
)

// Frames (repository version 2): new data chunks of one stream are
// gathered, in order, into frames of about FrameTarget bytes that are
// compressed and sealed as one object, so zstd sees more than one small
// chunk at a time (text streams store about a third less) and a pack shows
// no chunk's length.
const (
	FrameTarget = 256 << 10
	// MaxFrameRaw bounds a frame's plaintext: under frameTarget when its
	// last chunk came, plus that chunk.
	MaxFrameRaw = FrameTarget + chunk.MaxChunk
	// FramedFlag marks a framed entry in the type byte of pack trailers,
	// index files and the cache (docs/FORMAT.md).
	FramedFlag = 0x80
)

// PackedBlob locates a blob in the repository.
type PackedBlob struct {
	Blob
	Pack ID
}

// MinEntry is the smallest encoding of a blob entry (type, ID, two
// one-byte uvarints): counts read from storage are checked against it
// before anything is allocated.
const MinEntry = 1 + 32 + 2

func AppendEntry(b []byte, e Blob, f EntryFormat) []byte {
	t := byte(e.Type)
	if e.Framed {
		t |= FramedFlag
	}
	b = append(b, t)
	b = append(b, e.ID[:]...)
	b = binary.AppendUvarint(b, uint64(e.Offset))
	b = binary.AppendUvarint(b, uint64(e.Length))
	if f == EntriesShort {
		return b
	}
	b = binary.AppendUvarint(b, uint64(e.RawLen))
	if e.Framed {
		b = binary.AppendUvarint(b, uint64(e.Inner))
		b = binary.AppendUvarint(b, uint64(e.FrameRaw))
	}
	return b
}

func ReadEntry(r *bytes.Reader, f EntryFormat) (Blob, error) {
	var e Blob
	t, err := r.ReadByte()
	if err != nil {
		return e, err
	}
	e.Framed = t&FramedFlag != 0
	e.Type = BlobType(t &^ FramedFlag)
	if !e.Type.Valid() || (e.Framed && e.Type != BlobData) {
		return e, fmt.Errorf("unknown blob type %d", t)
	}
	if _, err := io.ReadFull(r, e.ID[:]); err != nil {
		return e, err
	}
	n := 3
	switch {
	case f == EntriesShort:
		n = 2
	case e.Framed:
		n = 5
	}
	vals := [5]uint64{}
	for i := range n {
		v, err := binary.ReadUvarint(r)
		if err != nil {
			return e, err
		}
		if v > 1<<32-1 {
			return e, errors.New("blob field out of range")
		}
		vals[i] = v
	}
	e.Offset, e.Length, e.RawLen = uint32(vals[0]), uint32(vals[1]), uint32(vals[2])
	e.Inner, e.FrameRaw = uint32(vals[3]), uint32(vals[4])
	if f == EntriesLong && e.Framed && e.RawLen == 0 {
		return e, fmt.Errorf("chunk %s: an empty framed chunk", e.ID.Short())
	}
	if err := e.Check(); err != nil {
		return e, err
	}
	return e, nil
}

// MaxSealedObject bounds the sealed size of any blob or frame: the largest
// plaintext, its flag byte, padding and the AEAD's overhead. A claim of a
// larger object is a lie: no reader allocates for it.
var MaxSealedObject = uint32(crypto.PaddedSize(MaxFramePlain+1) + crypto.Overhead)

// Check verifies that an entry's sealed object is no larger than any can
// be, and that a framed entry's chunk lies inside its frame and the frame
// within bounds (long entries).
func (e Blob) Check() error {
	if e.Length > MaxSealedObject || e.Length == 0 {
		return fmt.Errorf("chunk %s: a sealed object of %d bytes (at most %d)", e.ID.Short(), e.Length, MaxSealedObject)
	}
	if !e.Framed || e.FrameRaw == 0 && e.RawLen == 0 && e.Inner == 0 {
		return nil
	}
	if e.FrameRaw > MaxFrameRaw || uint64(e.Inner)+uint64(e.RawLen) > uint64(e.FrameRaw) || e.RawLen == 0 {
		return fmt.Errorf("chunk %s: %d bytes at %d do not fit a frame of %d", e.ID.Short(), e.RawLen, e.Inner, e.FrameRaw)
	}
	return nil
}

// Builder writes one pack into a temporary file.
type Builder struct {
	f       *os.File
	w       *bufio.Writer
	header  []byte
	blobs   []Blob
	size    int64
	entries EntryFormat
}

func NewBuilder(dir string, eph [32]byte, writer crypto.KeyID, entries EntryFormat) (*Builder, error) {
	f, err := os.CreateTemp(dir, "pack-*")
	if err != nil {
		return nil, err
	}
	h := make([]byte, 0, HeaderSize)
	if entries == EntriesShort {
		h = append(h, Magic2...)
	} else {
		h = append(h, Magic1...)
	}
	h = append(h, eph[:]...)
	h = append(h, writer[:]...)
	if _, err := f.Write(h); err != nil {
		_ = f.Close()           // a failed pack: its file goes
		_ = os.Remove(f.Name()) // (in a temporary folder the writer removes)
		return nil, err
	}
	return &Builder{f: f, w: bufio.NewWriterSize(f, 256<<10), header: h, size: int64(len(h)), entries: entries}, nil
}

func (p *Builder) Add(t BlobType, id ID, sealed []byte, rawLen int) error {
	if _, err := p.w.Write(sealed); err != nil {
		return err
	}
	b := Blob{Type: t, ID: id, Offset: uint32(p.size), Length: uint32(len(sealed))}
	if p.entries == EntriesLong {
		b.RawLen = uint32(rawLen)
	}
	p.blobs = append(p.blobs, b)
	p.size += int64(len(sealed))
	return nil
}

// AddFrame writes a sealed frame and an entry for each of its chunks
// (entries hold ID, RawLen, Inner; the rest is filled in here). Short
// entries keep only the ID, sorted so their order says nothing of the
// stream's.
func (p *Builder) AddFrame(sealed []byte, frameRaw int, entries []Blob) error {
	if _, err := p.w.Write(sealed); err != nil {
		return err
	}
	first := len(p.blobs)
	for _, e := range entries {
		e.Type, e.Framed = BlobData, true
		e.Offset, e.Length, e.FrameRaw = uint32(p.size), uint32(len(sealed)), uint32(frameRaw)
		if p.entries == EntriesShort {
			e.RawLen, e.Inner, e.FrameRaw = 0, 0, 0
		}
		p.blobs = append(p.blobs, e)
	}
	if p.entries == EntriesShort {
		added := p.blobs[first:]
		slices.SortFunc(added, func(a, b Blob) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	}
	p.size += int64(len(sealed))
	return nil
}

// Finish writes the trailer, syncs, and returns the pack's ID (the
// SHA-256 of its bytes) and the path of the finished temporary file.
func (p *Builder) Finish(indexKey *[32]byte) (ID, string, error) {
	var plain []byte
	plain = binary.AppendUvarint(plain, uint64(len(p.blobs)))
	for _, b := range p.blobs {
		plain = AppendEntry(plain, b, p.entries)
	}
	trailer := crypto.Seal(nil, indexKey, ObjTrailer, p.header, plain)
	trailer = binary.LittleEndian.AppendUint32(trailer, uint32(len(trailer)))
	if _, err := p.w.Write(trailer); err != nil {
		return ID{}, "", err
	}
	if err := p.w.Flush(); err != nil {
		return ID{}, "", err
	}
	if err := p.f.Sync(); err != nil {
		return ID{}, "", err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return ID{}, "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, p.f); err != nil {
		return ID{}, "", err
	}
	var id ID
	copy(id[:], h.Sum(nil))
	name := p.f.Name()
	return id, name, p.f.Close()
}

// Blobs returns the pack's entries so far.
func (p *Builder) Blobs() []Blob { return p.blobs }

// Size returns the pack's bytes so far.
func (p *Builder) Size() int64 { return p.size }

// Discard drops an unfinished pack. Its file is in the writer's temporary
// folder, which Close removes whatever fails here.
func (p *Builder) Discard() {
	_ = p.f.Close()
	_ = os.Remove(p.f.Name())
}

// Header is a pack's plaintext header.
type Header struct {
	Ephemeral [32]byte
	Writer    crypto.KeyID
	Entries   EntryFormat // of its trailer
	Raw       []byte
}

func ParseHeader(b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, errors.New("not a larder pack (too short)")
	}
	h := &Header{Raw: bytes.Clone(b[:HeaderSize])}
	switch string(b[:len(Magic1)]) {
	case Magic1:
		h.Entries = EntriesLong
	case Magic2:
		h.Entries = EntriesShort
	default:
		return nil, errors.New("not a larder pack (bad magic)")
	}
	copy(h.Ephemeral[:], b[len(Magic1):])
	copy(h.Writer[:], b[len(Magic1)+32:])
	return h, nil
}

// ReadTrailer reads and opens a pack's blob list with the index key.
func ReadTrailer(ctx context.Context, be backend.Backend, id ID, indexKey *[32]byte) (*Header, []Blob, error) {
	h := backend.Handle{Type: backend.TypeData, Name: id.String()}
	fi, err := be.Stat(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	size := fi.Size
	if size < int64(HeaderSize+4) {
		return nil, nil, fmt.Errorf("pack %s: %d bytes is too short", id.Short(), size)
	}
	hdr, err := backend.ReadRange(ctx, be, h, 0, int64(HeaderSize), nil)
	if err != nil {
		return nil, nil, err
	}
	ph, err := ParseHeader(hdr)
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", id.Short(), err)
	}
	tl, err := backend.ReadRange(ctx, be, h, size-4, 4, nil)
	if err != nil {
		return nil, nil, err
	}
	n := int64(binary.LittleEndian.Uint32(tl))
	if n > MaxTrailer || n > size-4-int64(HeaderSize) {
		return nil, nil, fmt.Errorf("pack %s: trailer of %d bytes does not fit", id.Short(), n)
	}
	sealed, err := backend.ReadRange(ctx, be, h, size-4-n, n, nil)
	if err != nil {
		return nil, nil, err
	}
	plain, err := crypto.Open(nil, indexKey, ObjTrailer, ph.Raw, sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: trailer: %w", id.Short(), err)
	}
	r := bytes.NewReader(plain)
	count, err := binary.ReadUvarint(r)
	if err != nil || count > uint64(r.Len()/MinEntry) {
		return nil, nil, fmt.Errorf("pack %s: bad trailer", id.Short())
	}
	blobs := make([]Blob, 0, count)
	end := uint64(size - 4 - n)
	for i := uint64(0); i < count; i++ {
		b, err := ReadEntry(r, ph.Entries)
		if err != nil {
			return nil, nil, fmt.Errorf("pack %s: trailer entry %d: %w", id.Short(), i, err)
		}
		if uint64(b.Offset) < uint64(HeaderSize) || uint64(b.Offset)+uint64(b.Length) > end {
			return nil, nil, fmt.Errorf("pack %s: blob %s lies outside the pack", id.Short(), b.ID.Short())
		}
		blobs = append(blobs, b)
	}
	return ph, blobs, nil
}
