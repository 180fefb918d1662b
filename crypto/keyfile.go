package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
)

// Key file format, version 1 (docs/format/keys.md has the full layout).
const (
	keyFileMagic        = "larder-key\n"
	keyFileVersion byte = 1

	// Protection schemes. 0 is invalid; numbers are never reused.
	protArgon2id byte = 1
	protNone     byte = 2

	keyFileSaltSize = 16

	// MaxKeyFileSize bounds a key file; larger input is refused before
	// anything else is read.
	MaxKeyFileSize = 4096
	// MaxPassphraseLen bounds a passphrase, in bytes.
	MaxPassphraseLen = 1024

	labelNoPassphrase = "larder key file v1 without passphrase"
)

// KeyFileVersion is the version of the key files this release writes and
// the only one it reads (docs/format/keys.md).
const KeyFileVersion = keyFileVersion

// noPassphraseKey is the fixed, public key that seals passphrase-less key
// files: SHA-256 of labelNoPassphrase. It makes the file tamper-evident
// against accidental damage; it gives no secrecy whatsoever.
var noPassphraseKey = sha256.Sum256([]byte(labelNoPassphrase))

// KeyFileHeader is the part of a key file readable without the passphrase.
// A caller reads it to decide whether to ask for a passphrase and to warn
// loudly when a key is stored without one.
type KeyFileHeader struct {
	Version   uint8
	Role      Role
	ID        KeyID
	Protected bool      // false: no passphrase (write keys only)
	KDF       KDFParams // zero when !Protected

	salt  [keyFileSaltSize]byte
	nonce [NonceSize]byte
	size  int // header length in bytes: the AEAD's associated data
}

// KeyFile is a parsed key file: its header and the one key it holds.
// Exactly one of Master, Write and Audit is set, according to Role. The
// caller owns the key and should call its Erase method when done with it.
type KeyFile struct {
	KeyFileHeader
	Master *MasterKey
	Write  *WriteKey
	Audit  *AuditKey
}

// ParseKeyFileHeader reads the header of a key file without decrypting
// anything.
func ParseKeyFileHeader(data []byte) (*KeyFileHeader, error) {
	if len(data) > MaxKeyFileSize {
		return nil, malformed("key file", "%d bytes exceeds %d", len(data), MaxKeyFileSize)
	}
	s := cryptobyte.String(data)
	var magic []byte
	if !s.ReadBytes(&magic, len(keyFileMagic)) || string(magic) != keyFileMagic {
		return nil, malformed("key file", "not a larder key file")
	}
	h := &KeyFileHeader{}
	var role, prot uint8
	if !s.ReadUint8(&h.Version) {
		return nil, malformed("key file", "truncated header")
	}
	if h.Version != keyFileVersion {
		return nil, fmt.Errorf("crypto: key file: %w %d", ErrUnsupportedVersion, h.Version)
	}
	if !s.ReadUint8(&role) || !s.ReadUint8(&prot) || !s.CopyBytes(h.ID[:]) {
		return nil, malformed("key file", "truncated header")
	}
	h.Role = Role(role)
	if !h.Role.Valid() {
		return nil, malformed("key file", "unknown role %d", role)
	}
	if h.ID.IsZero() {
		return nil, malformed("key file", "zero key ID")
	}
	switch prot {
	case protArgon2id:
		h.Protected = true
		if !s.ReadUint32(&h.KDF.Time) || !s.ReadUint32(&h.KDF.MemoryKiB) || !s.ReadUint8(&h.KDF.Threads) || !s.CopyBytes(h.salt[:]) {
			return nil, malformed("key file", "truncated header")
		}
		if err := h.KDF.check(false); err != nil {
			return nil, err
		}
	case protNone:
		if h.Role != RoleWrite {
			return nil, fmt.Errorf("crypto: key file: %s key: %w", h.Role, ErrUnprotectedKey)
		}
	default:
		return nil, malformed("key file", "unknown protection scheme %d", prot)
	}
	if !s.CopyBytes(h.nonce[:]) {
		return nil, malformed("key file", "truncated header")
	}
	h.size = len(data) - len(s)
	if len(s) < TagSize {
		return nil, malformed("key file", "truncated")
	}
	return h, nil
}

// encode returns the header bytes.
func (h *KeyFileHeader) encode() []byte {
	b := cryptobyte.NewBuilder(make([]byte, 0, 128))
	b.AddBytes([]byte(keyFileMagic))
	b.AddUint8(h.Version)
	b.AddUint8(uint8(h.Role))
	if h.Protected {
		b.AddUint8(protArgon2id)
	} else {
		b.AddUint8(protNone)
	}
	b.AddBytes(h.ID[:])
	if h.Protected {
		b.AddUint32(h.KDF.Time)
		b.AddUint32(h.KDF.MemoryKiB)
		b.AddUint8(h.KDF.Threads)
		b.AddBytes(h.salt[:])
	}
	b.AddBytes(h.nonce[:])
	return b.BytesOrPanic()
}

// ParseKeyFile decrypts and decodes a key file. A protected file needs its
// passphrase: none gives [ErrPassphraseRequired], a wrong one (or a damaged
// file) [ErrWrongPassphrase]. For an unprotected write key file the
// passphrase is ignored; damage gives [ErrAuthFailed]. Malformed files
// give [ErrMalformed] or [ErrUnsupportedVersion]; master and audit keys
// stored without a passphrase give [ErrUnprotectedKey].
func ParseKeyFile(data, passphrase []byte) (*KeyFile, error) {
	h, err := ParseKeyFileHeader(data)
	if err != nil {
		return nil, err
	}
	var key [KeySize]byte
	defer clear(key[:])
	if h.Protected {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("crypto: key file %s: %w", h.ID, ErrPassphraseRequired)
		}
		if len(passphrase) > MaxPassphraseLen {
			return nil, fmt.Errorf("crypto: key file %s: %w", h.ID, ErrWrongPassphrase)
		}
		key = h.KDF.derive(passphrase, &h.salt)
	} else {
		key = noPassphraseKey
	}
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("crypto: " + err.Error()) // unreachable
	}
	payload, err := aead.Open(nil, h.nonce[:], data[h.size:], data[:h.size])
	if err != nil {
		if h.Protected {
			return nil, fmt.Errorf("crypto: key file %s: %w", h.ID, ErrWrongPassphrase)
		}
		return nil, fmt.Errorf("crypto: key file %s: %w", h.ID, ErrAuthFailed)
	}
	defer clear(payload)
	kf := &KeyFile{KeyFileHeader: *h}
	switch h.Role {
	case RoleMaster:
		kf.Master, err = decodeMasterPayload(h.ID, payload)
	case RoleWrite:
		kf.Write, err = decodeWritePayload(h.ID, payload)
	case RoleAudit:
		kf.Audit, err = decodeAuditPayload(h.ID, payload)
	}
	if err != nil {
		return nil, err
	}
	return kf, nil
}

// MarshalKeyFile encodes the master key as a key file protected by
// passphrase, which must not be empty. kdf nil means parameters calibrated
// on this machine (see [CalibrateKDF]).
func (k *MasterKey) MarshalKeyFile(passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return k.marshalKeyFile(rand.Reader, passphrase, kdf)
}

func (k *MasterKey) marshalKeyFile(r io.Reader, passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return sealKeyFile(r, RoleMaster, k.ID, k.erased, k.encodePayload, passphrase, kdf)
}

// MarshalKeyFile encodes the write key as a key file. With an empty
// passphrase the file is unprotected: anyone who can read it holds the
// key, so keep it mode 0600 (see [WriteKeyFile]) and say so to the user.
// kdf nil means calibrated parameters.
func (k *WriteKey) MarshalKeyFile(passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return k.marshalKeyFile(rand.Reader, passphrase, kdf)
}

func (k *WriteKey) marshalKeyFile(r io.Reader, passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return sealKeyFile(r, RoleWrite, k.ID, k.erased, k.encodePayload, passphrase, kdf)
}

// MarshalKeyFile encodes the audit key as a key file protected by
// passphrase, which must not be empty. kdf nil means calibrated
// parameters.
func (k *AuditKey) MarshalKeyFile(passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return k.marshalKeyFile(rand.Reader, passphrase, kdf)
}

func (k *AuditKey) marshalKeyFile(r io.Reader, passphrase []byte, kdf *KDFParams) ([]byte, error) {
	return sealKeyFile(r, RoleAudit, k.ID, k.erased, k.encodePayload, passphrase, kdf)
}

// sealKeyFile encodes a key's payload and seals it as a key file.
func sealKeyFile(r io.Reader, role Role, id KeyID, erased bool, encode func() ([]byte, error), passphrase []byte, kdf *KDFParams) ([]byte, error) {
	if erased {
		return nil, fmt.Errorf("crypto: key file: %s key: %w", role, ErrErased)
	}
	payload, err := encode()
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	return marshalKeyFile(r, role, id, payload, passphrase, kdf)
}

// marshalKeyFile builds header || XChaCha20-Poly1305(payload, AD = header).
func marshalKeyFile(r io.Reader, role Role, id KeyID, payload, passphrase []byte, kdf *KDFParams) ([]byte, error) {
	h := &KeyFileHeader{Version: keyFileVersion, Role: role, ID: id, Protected: len(passphrase) > 0}
	var key [KeySize]byte
	defer clear(key[:])
	if h.Protected {
		if len(passphrase) > MaxPassphraseLen {
			return nil, fmt.Errorf("crypto: key file: passphrase longer than %d bytes", MaxPassphraseLen)
		}
		if kdf != nil {
			h.KDF = *kdf
		} else {
			h.KDF = defaultKDFParams()
		}
		if err := h.KDF.check(true); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r, h.salt[:]); err != nil {
			return nil, fmt.Errorf("crypto: key file: salt: %w", err)
		}
		key = h.KDF.derive(passphrase, &h.salt)
	} else {
		if role != RoleWrite {
			return nil, fmt.Errorf("crypto: key file: %s key: %w", role, ErrUnprotectedKey)
		}
		key = noPassphraseKey
	}
	if _, err := io.ReadFull(r, h.nonce[:]); err != nil {
		return nil, fmt.Errorf("crypto: key file: nonce: %w", err)
	}
	header := h.encode()
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("crypto: " + err.Error()) // unreachable
	}
	out := aead.Seal(header, h.nonce[:], payload, header)
	if len(out) > MaxKeyFileSize {
		return nil, fmt.Errorf("crypto: key file: %d bytes exceeds %d", len(out), MaxKeyFileSize)
	}
	return out, nil
}

// Payloads, version 1. All integers big-endian; seeds are Ed25519 seeds
// (RFC 8032 private keys); public keys are derived, not stored, when the
// private key is present.

func (k *MasterKey) encodePayload() ([]byte, error) {
	if err := CheckName(k.Name); err != nil {
		return nil, fmt.Errorf("crypto: key file: master key: %w", err)
	}
	if len(k.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("crypto: key file: master key: %w: signing key", ErrInvalidKey)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddBytes(k.BoxKey.Private[:])
	b.AddBytes(k.AuditBoxKey.Private[:])
	b.AddBytes(k.SignKey.Seed())
	b.AddUint64(k.ChunkerPoly)
	b.AddBytes(k.ChunkIDKey[:])
	b.AddBytes(k.IndexKey[:])
	b.AddUint64(uint64(k.Created.Unix()))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(k.Name)) })
	return b.Bytes()
}

func decodeMasterPayload(id KeyID, p []byte) (*MasterKey, error) {
	s := cryptobyte.String(p)
	var box, auditBox, seed [32]byte
	defer clear(box[:])
	defer clear(auditBox[:])
	defer clear(seed[:])
	var created uint64
	var name cryptobyte.String
	k := &MasterKey{ID: id}
	if !s.CopyBytes(box[:]) || !s.CopyBytes(auditBox[:]) || !s.CopyBytes(seed[:]) ||
		!s.ReadUint64(&k.ChunkerPoly) || !s.CopyBytes(k.ChunkIDKey[:]) || !s.CopyBytes(k.IndexKey[:]) ||
		!s.ReadUint64(&created) || !s.ReadUint8LengthPrefixed(&name) || !s.Empty() {
		return nil, malformed("key file", "master key payload has the wrong length")
	}
	k.Name = string(name)
	k.Created = time.Unix(int64(created), 0).UTC()
	if err := CheckName(k.Name); err != nil {
		return nil, fmt.Errorf("crypto: key file: %w", err)
	}
	if k.ChunkerPoly == 0 {
		return nil, malformed("key file", "chunker polynomial is zero")
	}
	var err error
	if k.BoxKey, err = boxKeyPairFromPrivate(&box); err != nil {
		return nil, err
	}
	if k.AuditBoxKey, err = boxKeyPairFromPrivate(&auditBox); err != nil {
		return nil, err
	}
	if k.BoxKey.Public == k.AuditBoxKey.Public {
		return nil, malformed("key file", "master and audit box keys are the same")
	}
	k.SignKey = ed25519.NewKeyFromSeed(seed[:])
	return k, nil
}

func (k *WriteKey) encodePayload() ([]byte, error) {
	if err := checkHeld(RoleWrite, k.ID, k.SignKey, k.Certificate, k.MasterSignPub, [32]byte{}); err != nil {
		return nil, err
	}
	cert, err := k.Certificate.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddUint64(k.ChunkerPoly)
	b.AddBytes(k.ChunkIDKey[:])
	b.AddBytes(k.IndexKey[:])
	b.AddBytes(k.MasterBoxPub[:])
	b.AddBytes(k.AuditBoxPub[:])
	b.AddBytes(k.MasterSignPub)
	b.AddBytes(k.SignKey.Seed())
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cert) })
	return b.Bytes()
}

func decodeWritePayload(id KeyID, p []byte) (*WriteKey, error) {
	s := cryptobyte.String(p)
	var seed [32]byte
	defer clear(seed[:])
	var cert cryptobyte.String
	k := &WriteKey{ID: id, MasterSignPub: make(ed25519.PublicKey, ed25519.PublicKeySize)}
	if !s.ReadUint64(&k.ChunkerPoly) || !s.CopyBytes(k.ChunkIDKey[:]) || !s.CopyBytes(k.IndexKey[:]) ||
		!s.CopyBytes(k.MasterBoxPub[:]) || !s.CopyBytes(k.AuditBoxPub[:]) || !s.CopyBytes(k.MasterSignPub) ||
		!s.CopyBytes(seed[:]) || !s.ReadUint16LengthPrefixed(&cert) || !s.Empty() {
		return nil, malformed("key file", "write key payload has the wrong length")
	}
	if k.ChunkerPoly == 0 {
		return nil, malformed("key file", "chunker polynomial is zero")
	}
	if k.MasterBoxPub == k.AuditBoxPub {
		return nil, malformed("key file", "master and audit box keys are the same")
	}
	c, err := ParseCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("crypto: key file: %w", err)
	}
	k.SignKey = ed25519.NewKeyFromSeed(seed[:])
	k.Certificate, k.Name, k.Created = c, c.Name, c.Created
	if err := checkHeld(RoleWrite, id, k.SignKey, c, k.MasterSignPub, [32]byte{}); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *AuditKey) encodePayload() ([]byte, error) {
	if err := checkHeld(RoleAudit, k.ID, k.SignKey, k.Certificate, k.MasterSignPub, k.BoxKey.Public); err != nil {
		return nil, err
	}
	cert, err := k.Certificate.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddBytes(k.BoxKey.Private[:])
	b.AddBytes(k.IndexKey[:])
	b.AddBytes(k.MasterBoxPub[:])
	b.AddBytes(k.MasterSignPub)
	b.AddBytes(k.SignKey.Seed())
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(cert) })
	return b.Bytes()
}

func decodeAuditPayload(id KeyID, p []byte) (*AuditKey, error) {
	s := cryptobyte.String(p)
	var box, seed [32]byte
	defer clear(box[:])
	defer clear(seed[:])
	var cert cryptobyte.String
	k := &AuditKey{ID: id, MasterSignPub: make(ed25519.PublicKey, ed25519.PublicKeySize)}
	if !s.CopyBytes(box[:]) || !s.CopyBytes(k.IndexKey[:]) || !s.CopyBytes(k.MasterBoxPub[:]) ||
		!s.CopyBytes(k.MasterSignPub) || !s.CopyBytes(seed[:]) || !s.ReadUint16LengthPrefixed(&cert) || !s.Empty() {
		return nil, malformed("key file", "audit key payload has the wrong length")
	}
	var err error
	if k.BoxKey, err = boxKeyPairFromPrivate(&box); err != nil {
		return nil, err
	}
	if k.MasterBoxPub == k.BoxKey.Public {
		return nil, malformed("key file", "master and audit box keys are the same")
	}
	c, err := ParseCertificate(cert)
	if err != nil {
		return nil, fmt.Errorf("crypto: key file: %w", err)
	}
	k.SignKey = ed25519.NewKeyFromSeed(seed[:])
	k.Certificate, k.Name, k.Created = c, c.Name, c.Created
	if err := checkHeld(RoleAudit, id, k.SignKey, c, k.MasterSignPub, k.BoxKey.Public); err != nil {
		return nil, err
	}
	return k, nil
}

// checkHeld checks that a write or audit key's certificate is the
// master's certificate for exactly this key.
func checkHeld(role Role, id KeyID, signKey ed25519.PrivateKey, c *Certificate, masterSignPub ed25519.PublicKey, boxPub [32]byte) error {
	if len(signKey) != ed25519.PrivateKeySize || c == nil {
		return fmt.Errorf("crypto: key file: %s key %s: %w: no signing key or certificate", role, id, ErrInvalidKey)
	}
	if c.Role != role || c.KeyID != id || !publicOf(signKey).Equal(c.SignPub) || c.BoxPub != boxPub {
		return malformed("key file", "certificate does not match %s key %s", role, id)
	}
	if err := c.Verify(masterSignPub); err != nil {
		return fmt.Errorf("crypto: key file: %w", err)
	}
	return nil
}
