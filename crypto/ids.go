package crypto

import (
	"encoding"
	"encoding/hex"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"
)

// KeyIDSize is the length of a key ID in bytes.
const KeyIDSize = 16

// MaxNameLen is the longest key name, in bytes of UTF-8.
const MaxNameLen = 64

// KeyID identifies a key: 16 random bytes, written as 32 lowercase hex
// digits. The zero KeyID is never issued.
type KeyID [KeyIDSize]byte

var (
	_ fmt.Stringer             = KeyID{}
	_ encoding.TextMarshaler   = KeyID{}
	_ encoding.TextUnmarshaler = (*KeyID)(nil)
)

// newKeyID reads a fresh, non-zero key ID from rand.
func newKeyID(rand io.Reader) (KeyID, error) {
	var id KeyID
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return id, fmt.Errorf("crypto: new key ID: %w", err)
	}
	if id.IsZero() {
		return id, fmt.Errorf("crypto: new key ID: random source returned zeros")
	}
	return id, nil
}

// ParseKeyID parses 32 hex digits.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 2*KeyIDSize {
		return id, malformed("key ID", "%q is not %d hex digits", s, 2*KeyIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, malformed("key ID", "%q: %v", s, err)
	}
	return id, nil
}

// String returns the ID as 32 lowercase hex digits.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero value.
func (id KeyID) IsZero() bool { return id == KeyID{} }

// MarshalText returns the hex form, so IDs appear as strings in JSON.
func (id KeyID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form.
func (id *KeyID) UnmarshalText(b []byte) error {
	v, err := ParseKeyID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Role is what a key may do. The numeric values appear in key files and
// certificates; they are never reused.
type Role uint8

// The roles. 0 is invalid so that zeroed bytes never parse as a role.
const (
	RoleMaster Role = 1 // everything
	RoleWrite  Role = 2 // add snapshots; cannot read or delete
	RoleAudit  Role = 3 // open manifests and metadata, verify; cannot read chunk data
)

var _ fmt.Stringer = Role(0)

// String returns "master", "write", "audit" or "role(N)".
func (r Role) String() string {
	switch r {
	case RoleMaster:
		return "master"
	case RoleWrite:
		return "write"
	case RoleAudit:
		return "audit"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r == RoleMaster || r == RoleWrite || r == RoleAudit }

// CheckName reports whether name can name a key: 1 to [MaxNameLen] bytes of
// valid UTF-8, every character printable (spaces allowed, no control
// characters or newlines).
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("crypto: %w: length %d not in 1..%d", ErrInvalidName, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("crypto: %w: not valid UTF-8", ErrInvalidName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("crypto: %w: %q contains a non-printable character", ErrInvalidName, name)
		}
	}
	return nil
}

// unixTime is the on-disk time: whole seconds since 1970, UTC.
func unixTime(t time.Time) time.Time { return time.Unix(t.Unix(), 0).UTC() }
