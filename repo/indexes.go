package repo

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
)

const (
	// MaxIndexFile bounds an index file.
	MaxIndexFile = 256 << 20
	// maxPacksPerIndex and maxBlobsPerIndex are how many packs, or
	// blobs in them, one index file lists before a writer starts another:
	// a writer keeps the entries of its packs until they are in an index
	// file, so these bound its memory whatever the backup's size.
	maxPacksPerIndex = 64
	maxBlobsPerIndex = 1 << 16
)

// loadIndexFile reads, checks and opens an index file.
func loadIndexFile(ctx context.Context, be backend.Backend, name string, indexKey *[32]byte, masterSign ed25519.PublicKey) (*index.File, error) {
	b, err := loadAll(ctx, be, backend.Handle{Type: backend.TypeIndex, Name: name}, MaxIndexFile)
	if err != nil {
		return nil, err
	}
	if !verifyContentName(name, b) {
		return nil, fmt.Errorf("index/%s: %w: content does not match its name (bit rot or tampering)", name, ErrCorrupt)
	}
	f, err := index.Open(b, indexKey, masterSign)
	if err != nil {
		return nil, fmt.Errorf("index/%s: %w: %w", name, ErrCorrupt, err)
	}
	return f, nil
}
