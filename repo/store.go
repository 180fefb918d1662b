package repo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/larder/larder/repo/backend"
)

// contentNamed lists the types named by the SHA-256 of their bytes, so
// anyone can find bit rot without a key.
var contentNamed = []backend.Type{backend.TypeData, backend.TypeIndex, backend.TypeSnapshot, backend.TypeDrill, backend.TypeForget, backend.TypePrune, backend.TypeTimes}

// saveContent stores b under the SHA-256 of its bytes and returns the name.
func saveContent(ctx context.Context, be backend.Backend, t backend.Type, b []byte) (string, error) {
	sum := sha256.Sum256(b)
	name := hex.EncodeToString(sum[:])
	err := be.Save(ctx, backend.Handle{Type: t, Name: name}, backend.Bytes(b))
	if errors.Is(err, backend.ErrExists) {
		return name, nil // the same bytes are already there
	}
	return name, err
}

// loadAll reads a whole object, refusing objects over max bytes.
func loadAll(ctx context.Context, be backend.Backend, h backend.Handle, max int64) ([]byte, error) {
	return backend.ReadAll(ctx, be, h, max)
}

// loadRange reads exactly n bytes at off.
func loadRange(ctx context.Context, be backend.Backend, h backend.Handle, off, n int64) ([]byte, error) {
	return backend.ReadRange(ctx, be, h, off, n, nil)
}

// loadRangeInto reads exactly n bytes at off into buf (grown if needed).
func loadRangeInto(ctx context.Context, be backend.Backend, h backend.Handle, off, n int64, buf []byte) ([]byte, error) {
	return backend.ReadRange(ctx, be, h, off, n, buf)
}

// list calls fn with the name and size of every object of type t.
func list(ctx context.Context, be backend.Backend, t backend.Type, fn func(name string, size int64) error) error {
	return be.List(ctx, t, func(fi backend.FileInfo) error { return fn(fi.Name, fi.Size) })
}

// verifyContentName reports whether b hashes to name.
func verifyContentName(name string, b []byte) bool {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]) == name
}
