package repo

import "github.com/larder/larder/repo/internal/pack"

// ID is the 32-byte name of a chunk (keyed hash of its plaintext) or of
// an object (SHA-256 of its bytes); see package pack.
type ID = pack.ID

// ParseID reads a 64-digit hex ID.
func ParseID(s string) (ID, error) { return pack.ParseID(s) }

// ErrBlob reports a blob that fails authentication or decoding.
var ErrBlob = pack.ErrBlob
