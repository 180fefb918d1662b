package crypto

import (
	"errors"
	"fmt"
	"io/fs"
)

// Sentinel errors. Functions wrap them with context ("crypto: key file: ...")
// except [Open], which returns [ErrAuthFailed] bare on purpose: the one
// opaque message says nothing about why authentication failed.
var (
	// ErrAuthFailed reports that a ciphertext did not authenticate: it was
	// corrupted or tampered with, or the key, type, ID or associated data
	// is not the one it was sealed with. No plaintext is ever released
	// alongside it.
	ErrAuthFailed = errors.New("failed to decrypt and authenticate, data may be corrupted or tampered with")

	// ErrWrongPassphrase reports that a passphrase-protected key file did
	// not open: the passphrase is wrong, or the file is damaged. The two
	// cannot be told apart.
	ErrWrongPassphrase = errors.New("wrong passphrase or damaged key file")

	// ErrPassphraseRequired reports that a key file is passphrase-protected
	// and no passphrase was given. The caller should ask for one.
	ErrPassphraseRequired = errors.New("key file is protected by a passphrase and none was given")

	// ErrUnprotectedKey reports an attempt to write or read a master or
	// audit key file without a passphrase: only write keys may be stored
	// unprotected (for unattended cron jobs).
	ErrUnprotectedKey = errors.New("only write keys may be stored without a passphrase")

	// ErrMalformed reports input that does not follow its format: too
	// short, too long, a length or count out of bounds, trailing bytes,
	// bad field values.
	ErrMalformed = errors.New("malformed input")

	// ErrUnsupportedVersion reports a format version or kind this code does
	// not know. Version and kind numbers are never reused, so the input was
	// written by a newer (or foreign) program.
	ErrUnsupportedVersion = errors.New("unsupported format version")

	// ErrBadSignature reports that an Ed25519 signature did not verify for
	// the given key, context and message.
	ErrBadSignature = errors.New("signature verification failed")

	// ErrInvalidKey reports a public or private key that cannot be used:
	// wrong length, a low-order X25519 point, or a key pair whose halves do
	// not match.
	ErrInvalidKey = errors.New("invalid key")

	// ErrInvalidName reports a key name that is empty, too long, not UTF-8
	// or contains non-printable characters.
	ErrInvalidName = errors.New("invalid key name")

	// ErrErased reports use of a session or key after its Erase method
	// zeroed its secrets.
	ErrErased = errors.New("keys have been erased")

	// ErrNoDataKey reports an attempt to open chunk data with session keys
	// derived by an audit key, which only ever holds the meta key.
	ErrNoDataKey = errors.New("audit keys cannot derive the session data key")

	// ErrWeakKDF reports argon2id parameters below the floor values
	// ([MinKDFTime], [MinKDFMemoryKiB]) when creating a key file.
	ErrWeakKDF = errors.New("argon2id parameters below the minimum")

	// ErrKeyFileMode is wrapped by [*KeyFileModeError].
	ErrKeyFileMode = errors.New("key file is readable or writable by others")

	// ErrBadContext reports a signature context string that is not of the
	// form "larder <kind> v<N>", or one reserved for the master key's own
	// use (certificates, revocations).
	ErrBadContext = errors.New("invalid signature context")
)

// KeyFileModeError is the warning [CheckKeyFileMode] returns when a key
// file's permission bits allow access by the group or others. Callers
// usually print it and carry on; errors.Is(err, ErrKeyFileMode) holds.
type KeyFileModeError struct {
	Path string      // the key file
	Mode fs.FileMode // its permission bits
}

// Error says what is wrong and how to fix it.
func (e *KeyFileModeError) Error() string {
	return fmt.Sprintf("key file %s has mode %04o and is accessible by other users; run: chmod 600 %s",
		e.Path, uint32(e.Mode.Perm()), e.Path)
}

// Unwrap returns [ErrKeyFileMode].
func (e *KeyFileModeError) Unwrap() error { return ErrKeyFileMode }

// malformed wraps ErrMalformed with the format name and details.
func malformed(format, msg string, args ...any) error {
	return fmt.Errorf("crypto: %s: %w: %s", format, ErrMalformed, fmt.Sprintf(msg, args...))
}
