package repo

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// A blob's plaintext, before padding and sealing, is a flag byte and the
// chunk, zstd-compressed when that makes it smaller (docs/FORMAT.md).
const (
	blobRaw  = 0
	blobZstd = 1
)

// objFrame is the AEAD object type of frames (never reused); a frame is
// sealed with the data key and an all-zero associated ID: what it holds is
// checked chunk by chunk against the chunk IDs.
const objFrame = 'F'

var frameAD [32]byte

// AEAD object types of blobs (never reused).
func blobObjType(t BlobType) byte {
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
			zstd.WithDecoderMaxMemory(maxFrameRaw+1024),
			zstd.WithDecoderMaxWindow(maxFrameRaw),
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

// sealBlob compresses, pads and seals a chunk with the session.
func sealBlob(s *crypto.Session, t BlobType, id ID, data []byte) ([]byte, error) {
	padded := encodeBlob(data)
	if t == BlobList {
		return s.SealMeta(nil, blobObjType(t), id[:], padded)
	}
	return s.SealData(nil, blobObjType(t), id[:], padded)
}

// sealFrame compresses, pads and seals a frame (chunks one after another)
// with the session's data key.
func sealFrame(s *crypto.Session, data []byte) ([]byte, error) {
	return s.SealData(nil, objFrame, frameAD[:], encodeBlob(data))
}

// encodeBlob is the padded plaintext of a blob or frame: a flag byte and
// the data, zstd-compressed when that makes it smaller.
func encodeBlob(data []byte) []byte {
	enc, _ := codecs()
	plain := make([]byte, 1, len(data)+1)
	if z := enc.EncodeAll(data, plain[:1]); len(z) < len(data)+1 {
		plain = z
		plain[0] = blobZstd
	} else {
		plain[0] = blobRaw
		plain = append(plain, data...)
	}
	return crypto.Pad(make([]byte, 0, crypto.PaddedSize(len(plain))), plain)
}

// ErrBlob reports a blob that fails authentication or decoding.
var ErrBlob = errors.New("blob is damaged or was tampered with")

// openBlob opens, unpads and decompresses a blob; dst is reused for the
// result and scratch for the opened padding (pass the returned scratch
// back next time).
func openBlob(k *crypto.SessionKeys, t BlobType, id ID, sealed []byte, rawLen uint32, dst, scratch []byte) ([]byte, []byte, error) {
	var padded []byte
	var err error
	if t == BlobList {
		padded, err = k.OpenMeta(scratch[:0], blobObjType(t), id[:], sealed)
	} else {
		padded, err = k.OpenData(scratch[:0], blobObjType(t), id[:], sealed)
	}
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: %s: %w", ErrBlob, id.Short(), err)
	}
	out, err := decodeBlob(padded, id, rawLen, chunk.MaxChunk, dst)
	return out, padded, err
}

// openFrame opens, unpads and decompresses a frame of frameRaw bytes into
// dst; scratch as for openBlob. id names a chunk of it, for messages.
func openFrame(k *crypto.SessionKeys, id ID, sealed []byte, frameRaw uint32, dst, scratch []byte) ([]byte, []byte, error) {
	padded, err := k.OpenData(scratch[:0], objFrame, frameAD[:], sealed)
	if err != nil {
		return nil, scratch, fmt.Errorf("%w: the frame of %s: %w", ErrBlob, id.Short(), err)
	}
	out, err := decodeBlob(padded, id, frameRaw, maxFrameRaw, dst)
	return out, padded, err
}

// decodeBlob unpads and decompresses an opened blob (or frame) of rawLen
// bytes, at most limit, into dst.
func decodeBlob(padded []byte, id ID, rawLen, limit uint32, dst []byte) ([]byte, error) {
	plain, err := crypto.Unpad(padded)
	if err != nil || len(plain) == 0 {
		return nil, fmt.Errorf("%w: %s: padding", ErrBlob, id.Short())
	}
	if rawLen > limit {
		return nil, fmt.Errorf("%w: %s: %d bytes is over the limit of %d", ErrBlob, id.Short(), rawLen, limit)
	}
	switch plain[0] {
	case blobRaw:
		if uint32(len(plain)-1) != rawLen {
			return nil, fmt.Errorf("%w: %s: %d bytes, the index says %d", ErrBlob, id.Short(), len(plain)-1, rawLen)
		}
		return append(dst[:0], plain[1:]...), nil
	case blobZstd:
		_, dec := codecs()
		// DecodeAll may not grow dst (WithDecodeAllCapLimit): size it to
		// what the index says the chunk holds.
		if uint32(cap(dst)) < rawLen {
			dst = make([]byte, 0, rawLen)
		}
		out, err := dec.DecodeAll(plain[1:], dst[:0:rawLen])
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrBlob, id.Short(), err)
		}
		if uint32(len(out)) != rawLen {
			return nil, fmt.Errorf("%w: %s: %d bytes, the index says %d", ErrBlob, id.Short(), len(out), rawLen)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s: unknown encoding %d", ErrBlob, id.Short(), plain[0])
}
