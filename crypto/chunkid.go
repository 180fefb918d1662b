package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
)

// ChunkIDSize is the size of a chunk ID.
const ChunkIDSize = sha256.Size

// ChunkID returns the ID of a chunk: HMAC-SHA256 of its plaintext keyed by
// the repository's chunk-ID key. Equal plaintexts get equal IDs (that is
// deduplication); without the key, an ID tells nothing about the content
// and cannot be used to test whether the repository holds a known file.
func ChunkID(key *[KeySize]byte, plaintext []byte) [ChunkIDSize]byte {
	h := hmac.New(sha256.New, key[:])
	h.Write(plaintext)
	var id [ChunkIDSize]byte
	h.Sum(id[:0])
	return id
}

// ChunkIDHash computes [ChunkID] over data written to it in pieces.
type ChunkIDHash struct {
	hash.Hash
}

var _ hash.Hash = (*ChunkIDHash)(nil)

// NewChunkIDHash returns a streaming [ChunkID]: write the plaintext, then
// call ID (or Sum). Reset starts over with the same key.
func NewChunkIDHash(key *[KeySize]byte) *ChunkIDHash {
	return &ChunkIDHash{Hash: hmac.New(sha256.New, key[:])}
}

// ID returns the chunk ID of everything written since the last Reset. It
// does not change the state.
func (h *ChunkIDHash) ID() [ChunkIDSize]byte {
	var id [ChunkIDSize]byte
	h.Sum(id[:0])
	return id
}
