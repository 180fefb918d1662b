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
			// Chunks are 512 KiB at most with the default sizes: a bigger
			// window only costs memory.
			zstd.WithWindowSize(1<<20),
			zstd.WithEncoderConcurrency(2),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			panic(err)
		}
		zstdDec, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(2),
			// Never allocate past what a chunk can be.
			zstd.WithDecoderMaxMemory(chunk.MaxChunk+1024),
			zstd.WithDecoderMaxWindow(chunk.MaxChunk),
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
	enc, _ := codecs()
	plain := make([]byte, 1, len(data)+1)
	if z := enc.EncodeAll(data, plain[:1]); len(z) < len(data)+1 {
		plain = z
		plain[0] = blobZstd
	} else {
		plain[0] = blobRaw
		plain = append(plain, data...)
	}
	padded := crypto.Pad(make([]byte, 0, crypto.PaddedSize(len(plain))), plain)
	if t == BlobList {
		return s.SealMeta(nil, blobObjType(t), id[:], padded)
	}
	return s.SealData(nil, blobObjType(t), id[:], padded)
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
	out, err := decodeBlob(padded, id, rawLen, dst)
	return out, padded, err
}

// decodeBlob unpads and decompresses an opened blob into dst.
func decodeBlob(padded []byte, id ID, rawLen uint32, dst []byte) ([]byte, error) {
	plain, err := crypto.Unpad(padded)
	if err != nil || len(plain) == 0 {
		return nil, fmt.Errorf("%w: %s: padding", ErrBlob, id.Short())
	}
	if rawLen > chunk.MaxChunk {
		return nil, fmt.Errorf("%w: %s: %d bytes is over the chunk limit", ErrBlob, id.Short(), rawLen)
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
