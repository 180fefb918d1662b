package repo

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
)

func randRead(b []byte) (int, error) { return rand.Read(b) }

// newShuffler returns a random source seeded from crypto/rand: blobs are
// assigned to packs in an order the storage cannot predict.
func newShuffler() *mrand.Rand {
	var seed [32]byte
	rand.Read(seed[:])
	return mrand.New(mrand.NewChaCha8(seed))
}

var _ = binary.LittleEndian
