package pack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// A blob's plaintext, before padding and sealing, is a flag byte and the
// chunk, zstd-compressed when that makes it smaller (docs/FORMAT.md).
const (
	FlagRaw  = 0
	FlagZstd = 1
)

// ObjFrame is the AEAD object type of frames (never reused); a frame is
// sealed with the data key and an all-zero associated ID: what it holds is
// checked chunk by chunk against the chunk IDs.
const ObjFrame = 'F'

var FrameAD [32]byte

// AEAD object types of blobs (never reused).
func BlobObjType(t BlobType) byte {
	switch t {
	case BlobData:
		return 'D'
	case BlobList:
		return 'L'
	}
	return 0
}

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
)

// codecs configures zstd once: every option stated, memory capped at the
// largest chunk, and reused by every EncodeAll and DecodeAll.
func codecs() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		var err error
		zstdEnc, err = zstd.NewWriter(nil,
			// Measured on issue 14's night in 256 KiB frames, one core
			// (dump.sql; uploads): fastest 0.196 of the size at 302 MB/s
			// (0.937, 731 MB/s), default 0.185 at 232 MB/s (0.938, 1037
			// MB/s), better 0.179 at 182 MB/s (0.936, 337 MB/s). Only new
			// chunks are encoded, a few percent of a night after the
			// first, and decoding is 0.8 GB/s and more at every level:
			// default keeps 6 % off fastest's size for 0.3 s of a first
			// ingest's 230 MB, where better would cost a second for 3 %.
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			// The AEAD authenticates every blob: no frame checksum.
			zstd.WithEncoderCRC(false),
			// Chunks are 512 KiB at most with the default sizes, frames
			// under 1 MiB: a bigger window only costs memory.
			zstd.WithWindowSize(1<<20),
			zstd.WithEncoderConcurrency(2),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			panic(err)
		}
		zstdDec, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(2),
			// Never allocate past what a frame can be.
			zstd.WithDecoderMaxMemory(MaxFramePlain+1024),
			zstd.WithDecoderMaxWindow(MaxFramePlain),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

// SealBlob compresses, pads and seals a chunk with the session.
func SealBlob(s *crypto.Session, t BlobType, id ID, data []byte) ([]byte, error) {
	padded := EncodeBlob(data)
	if t == BlobList {
		return s.SealMeta(nil, BlobObjType(t), id[:], padded)
	}
	return s.SealData(nil, BlobObjType(t), id[:], padded)
}

// SealFrame compresses, pads and seals a frame (chunks one after another)
// with the session's data key.
func SealFrame(s *crypto.Session, data []byte) ([]byte, error) {
	return s.SealData(nil, ObjFrame, FrameAD[:], EncodeBlob(data))
}

// EncodeBlob is the padded plaintext of a blob or frame: a flag byte and
// the data, zstd-compressed when that makes it smaller.
func EncodeBlob(data []byte) []byte {
	enc, _ := codecs()
	plain := make([]byte, 1, len(data)+1)
	if z := enc.EncodeAll(data, plain[:1]); len(z) < len(data)+1 {
		plain = z
		plain[0] = FlagZstd
	} else {
		plain[0] = FlagRaw
		plain = append(plain, data...)
	}
	return crypto.Pad(make([]byte, 0, crypto.PaddedSize(len(plain))), plain)
}

// A frame of repository version 3 starts with a header that says which
// chunks it holds, in order, and their lengths (sealed with the frame, so
// only keys that open it learn them):
//
//	nchunks uvarint | (chunk ID 32 | length uvarint) * nchunks | the chunks
//
// MaxFrameChunks bounds how many chunks a frame holds (a writer starts a
// new frame when it has that many).
const (
	MaxFrameChunks = 4096
	MaxFrameHeader = 10 + MaxFrameChunks*(32+5)
	// MaxFramePlain bounds a version 3 frame's plaintext.
	MaxFramePlain = MaxFrameRaw + MaxFrameHeader
)

// FrameSpan is where a chunk lies in a frame's chunk bytes.
type FrameSpan struct{ Off, N uint32 }

// AppendFrameHeader writes a version 3 frame header of chunks.
func AppendFrameHeader(b []byte, chunks []Blob) []byte {
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = append(b, c.ID[:]...)
		b = binary.AppendUvarint(b, uint64(c.RawLen))
	}
	return b
}

// ParseFrame reads a version 3 frame's plaintext: where each chunk is, and
// the chunk bytes (a slice of plain). The lengths must add up to exactly
// the bytes that follow the header.
func ParseFrame(plain []byte) (map[ID]FrameSpan, []byte, error) {
	r := bytes.NewReader(plain)
	n, err := binary.ReadUvarint(r)
	if err != nil || n == 0 || n > MaxFrameChunks || n > uint64(r.Len()/33) {
		return nil, nil, errors.New("bad frame header")
	}
	spans := make(map[ID]FrameSpan, n)
	var off uint64
	for i := uint64(0); i < n; i++ {
		var id ID
		if _, err := io.ReadFull(r, id[:]); err != nil {
			return nil, nil, errors.New("bad frame header")
		}
		l, err := binary.ReadUvarint(r)
		if err != nil || l == 0 || l > chunk.MaxChunk {
			return nil, nil, errors.New("bad frame header")
		}
		if _, dup := spans[id]; !dup {
			spans[id] = FrameSpan{uint32(off), uint32(l)}
		}
		off += l
	}
	data := plain[len(plain)-r.Len():]
	if off != uint64(len(data)) {
		return nil, nil, fmt.Errorf("frame header says %d bytes of chunks, the frame holds %d", off, len(data))
	}
	return spans, data, nil
}

// ErrBlob reports a blob that fails authentication or decoding.
var ErrBlob = errors.New("blob is damaged or was tampered with")

// OpenBlob opens, unpads and decompresses a blob of rawLen bytes (0: not
// known) and at most limit; dst is reused for the result and scratch for
// the opened padding (pass the returned scratch back next time).
func OpenBlob(k *crypto.SessionKeys, t BlobType, id ID, sealed []byte, rawLen, limit uint32, dst, scratch []byte) ([]byte, []byte, error) {
	var padded []byte
	var err error
	if t == BlobList {
		padded, err = k.OpenMeta(scratch[:0], BlobObjType(t), id[:], sealed)
	} else {
		padded, err = k.OpenData(scratch[:0], BlobObjType(t), id[:], sealed)
	}
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: %s: %w", ErrBlob, id.Short(), err)
	}
	out, err := DecodeBlob(padded, id, rawLen, limit, dst)
	return out, padded, err
}

// OpenFrame opens, unpads and decompresses a frame of frameRaw bytes (0:
// not known) and at most limit into dst; scratch as for openBlob. id names
// a chunk of it, for messages.
func OpenFrame(k *crypto.SessionKeys, id ID, sealed []byte, frameRaw, limit uint32, dst, scratch []byte) ([]byte, []byte, error) {
	padded, err := k.OpenData(scratch[:0], ObjFrame, FrameAD[:], sealed)
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: the frame of %s: %w", ErrBlob, id.Short(), err)
	}
	out, err := DecodeBlob(padded, id, frameRaw, limit, dst)
	return out, padded, err
}

// DecodeBlob unpads and decompresses an opened blob (or frame) of rawLen
// bytes (0: not known, as in short entries), at most limit, into dst.
func DecodeBlob(padded []byte, id ID, rawLen, limit uint32, dst []byte) ([]byte, error) {
	plain, err := crypto.Unpad(padded)
	if err != nil || len(plain) == 0 {
		return nil, fmt.Errorf("%w: %s: padding", ErrBlob, id.Short())
	}
	if rawLen > limit {
		return nil, fmt.Errorf("%w: %s: %d bytes is over the limit of %d", ErrBlob, id.Short(), rawLen, limit)
	}
	switch plain[0] {
	case FlagRaw:
		n := uint32(len(plain) - 1)
		if rawLen == 0 && (n == 0 || n > limit) {
			return nil, fmt.Errorf("%w: %s: %d bytes (limit %d)", ErrBlob, id.Short(), n, limit)
		}
		if rawLen != 0 && n != rawLen {
			return nil, fmt.Errorf("%w: %s: %d bytes, the index says %d", ErrBlob, id.Short(), n, rawLen)
		}
		return append(dst[:0], plain[1:]...), nil
	case FlagZstd:
		return decodeZstd(plain[1:], id, rawLen, limit, dst)
	}
	return nil, fmt.Errorf("%w: %s: unknown encoding %d", ErrBlob, id.Short(), plain[0])
}

// decodeZstd decompresses one zstd frame of rawLen bytes (0: not known),
// at most limit, into dst.
func decodeZstd(frame []byte, id ID, rawLen, limit uint32, dst []byte) ([]byte, error) {
	want := rawLen
	if rawLen == 0 {
		// The frame says its size, except (zstd's rule, which EncodeAll
		// follows) a frame of fewer than 256 bytes that is not a single
		// segment.
		var h zstd.Header
		if err := h.Decode(frame); err != nil {
			return nil, fmt.Errorf("%w: %s: zstd frame header: %w", ErrBlob, id.Short(), err)
		}
		switch {
		case h.HasFCS && (h.FrameContentSize == 0 || h.FrameContentSize > uint64(limit)):
			return nil, fmt.Errorf("%w: %s: %d bytes (limit %d)", ErrBlob, id.Short(), h.FrameContentSize, limit)
		case h.HasFCS:
			want = uint32(h.FrameContentSize)
		}
	}
	_, dec := codecs()
	// DecodeAll may not grow dst (WithDecodeAllCapLimit): size it to what
	// the chunk holds, or, when nothing says, to the limit (callers reuse
	// dst, so that is allocated once).
	size := want
	if size == 0 {
		size = limit
	}
	if uint32(cap(dst)) < size {
		dst = make([]byte, 0, size)
	}
	out, err := dec.DecodeAll(frame, dst[:0:size])
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrBlob, id.Short(), err)
	case len(out) == 0:
		return nil, fmt.Errorf("%w: %s: an empty chunk", ErrBlob, id.Short())
	case want != 0 && uint32(len(out)) != want:
		return nil, fmt.Errorf("%w: %s: %d bytes, %d expected", ErrBlob, id.Short(), len(out), want)
	}
	return out, nil
}
