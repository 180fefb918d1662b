package crypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
)

// Format kinds: the first byte of certificates, revocations and sealed
// objects, so one can never be mistaken for another. Never reused.
const (
	kindCertificate byte = 'C'
	kindRevocation  byte = 'R'
	kindSealed      byte = 'S'
)

// Format versions of the encodings defined here. A version number, once
// retired, is never reused.
const (
	certificateVersion byte = 1
	revocationVersion  byte = 1
	// revocationVersion2 adds the last snapshot the master accepts from
	// the key.
	revocationVersion2 byte = 2
)

// MaxCertificateSize is the size of the largest valid certificate
// encoding (a name of [MaxNameLen] bytes).
const MaxCertificateSize = 2 + 1 + KeyIDSize + KeyIDSize + 8 + ed25519.PublicKeySize + 32 + 1 + MaxNameLen + SignatureSize

// MaxReasonLen is the longest revocation reason, in bytes of UTF-8.
const MaxReasonLen = 200

// MaxRevocationSize is the size of the largest valid revocation encoding.
const MaxRevocationSize = 2 + KeyIDSize + KeyIDSize + 8 + 8 + 32 + 1 + MaxReasonLen + SignatureSize

// Certificate is the master key's statement that a key with this ID, role,
// name and public keys belongs to the repository. The master certifies
// itself too, so every key record carries one. Encoding (version 1, all
// integers big-endian):
//
//	kind     1  'C'
//	version  1  1
//	role     1  1 master, 2 write, 3 audit
//	key ID   16
//	issuer   16 the master key's ID
//	created  8  int64, seconds since 1970 UTC
//	sign pub 32 Ed25519
//	box pub  32 X25519; all zero for write keys, which have none
//	name     1 + N, 1 <= N <= MaxNameLen, printable UTF-8
//	sig      64 Ed25519 over all of the above, context "larder certificate v1"
type Certificate struct {
	Role      Role
	KeyID     KeyID
	Issuer    KeyID // the master key's ID
	Name      string
	Created   time.Time // whole seconds
	SignPub   ed25519.PublicKey
	BoxPub    [32]byte // zero for write keys
	Signature []byte
}

var (
	_ encoding.BinaryMarshaler   = (*Certificate)(nil)
	_ encoding.BinaryUnmarshaler = (*Certificate)(nil)
)

// body encodes everything but the signature, checking the fields.
func (c *Certificate) body() ([]byte, error) {
	if err := c.checkFields(); err != nil {
		return nil, err
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, MaxCertificateSize))
	b.AddUint8(kindCertificate)
	b.AddUint8(certificateVersion)
	b.AddUint8(uint8(c.Role))
	b.AddBytes(c.KeyID[:])
	b.AddBytes(c.Issuer[:])
	b.AddUint64(uint64(c.Created.Unix()))
	b.AddBytes(c.SignPub)
	b.AddBytes(c.BoxPub[:])
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.Name)) })
	return b.Bytes()
}

func (c *Certificate) checkFields() error {
	switch {
	case !c.Role.Valid():
		return malformed("certificate", "unknown role %d", uint8(c.Role))
	case c.KeyID.IsZero() || c.Issuer.IsZero():
		return malformed("certificate", "zero key ID")
	case (c.Role == RoleMaster) != (c.KeyID == c.Issuer):
		return malformed("certificate", "a %s key certificate with key ID %s and issuer %s", c.Role, c.KeyID, c.Issuer)
	case len(c.SignPub) != ed25519.PublicKeySize:
		return malformed("certificate", "signing key is %d bytes", len(c.SignPub))
	case c.Role == RoleWrite && c.BoxPub != [32]byte{}:
		return malformed("certificate", "a write key has no box key")
	case c.Role != RoleWrite && c.BoxPub == [32]byte{}:
		return malformed("certificate", "a %s key needs a box key", c.Role)
	}
	if err := CheckName(c.Name); err != nil {
		return fmt.Errorf("crypto: certificate: %w", err)
	}
	return nil
}

// MarshalBinary returns the certificate's encoding.
func (c *Certificate) MarshalBinary() ([]byte, error) {
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != SignatureSize {
		return nil, malformed("certificate", "signature is %d bytes", len(c.Signature))
	}
	return append(body, c.Signature...), nil
}

// ParseCertificate decodes a certificate. It checks the encoding, not the
// signature: call [Certificate.Verify].
func ParseCertificate(b []byte) (*Certificate, error) {
	if len(b) > MaxCertificateSize {
		return nil, malformed("certificate", "%d bytes exceeds %d", len(b), MaxCertificateSize)
	}
	s := cryptobyte.String(b)
	var kind, version, role uint8
	if !s.ReadUint8(&kind) || !s.ReadUint8(&version) {
		return nil, malformed("certificate", "truncated")
	}
	if kind != kindCertificate {
		return nil, malformed("certificate", "kind byte %#x is not a certificate", kind)
	}
	if version != certificateVersion {
		return nil, fmt.Errorf("crypto: certificate: %w %d", ErrUnsupportedVersion, version)
	}
	c := &Certificate{SignPub: make(ed25519.PublicKey, ed25519.PublicKeySize), Signature: make([]byte, SignatureSize)}
	var created uint64
	var name cryptobyte.String
	if !s.ReadUint8(&role) || !s.CopyBytes(c.KeyID[:]) || !s.CopyBytes(c.Issuer[:]) ||
		!s.ReadUint64(&created) || !s.CopyBytes(c.SignPub) || !s.CopyBytes(c.BoxPub[:]) ||
		!s.ReadUint8LengthPrefixed(&name) || !s.CopyBytes(c.Signature) {
		return nil, malformed("certificate", "truncated")
	}
	if !s.Empty() {
		return nil, malformed("certificate", "%d trailing bytes", len(s))
	}
	c.Role = Role(role)
	c.Created = time.Unix(int64(created), 0).UTC()
	c.Name = string(name)
	if err := c.checkFields(); err != nil {
		return nil, err
	}
	return c, nil
}

// UnmarshalBinary decodes b into c (see [ParseCertificate]).
func (c *Certificate) UnmarshalBinary(b []byte) error {
	v, err := ParseCertificate(b)
	if err != nil {
		return err
	}
	*c = *v
	return nil
}

// Verify checks the certificate's fields and its signature by the master
// key masterSignPub. A master key's own certificate must also certify
// masterSignPub itself.
func (c *Certificate) Verify(masterSignPub ed25519.PublicKey) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	if c.Role == RoleMaster && !bytes.Equal(c.SignPub, masterSignPub) {
		return fmt.Errorf("crypto: certificate of master key %s: %w: not the given master key", c.KeyID, ErrBadSignature)
	}
	if err := Verify(masterSignPub, ContextCertificate, body, c.Signature); err != nil {
		return fmt.Errorf("crypto: certificate of %s key %s: %w", c.Role, c.KeyID, err)
	}
	return nil
}

// certify makes and signs a certificate.
func (k *MasterKey) certify(role Role, id KeyID, name string, created time.Time, signPub ed25519.PublicKey, boxPub [32]byte) (*Certificate, error) {
	c := &Certificate{
		Role: role, KeyID: id, Issuer: k.ID, Name: name,
		Created: unixTime(created), SignPub: signPub, BoxPub: boxPub,
	}
	body, err := c.body()
	if err != nil {
		return nil, err
	}
	if c.Signature, err = sign(k.SignKey, ContextCertificate, body); err != nil {
		return nil, err
	}
	return c, nil
}

// KeyRecord is what a repository stores in plaintext about a key (under
// keys/): everything public, bound together by the key's certificate. Its
// encoding is the certificate's.
type KeyRecord struct {
	ID          KeyID
	Role        Role
	Name        string
	Created     time.Time
	SignPub     ed25519.PublicKey // verifies what the key signs
	BoxPub      [32]byte          // zero for write keys
	Certificate *Certificate
}

var (
	_ encoding.BinaryMarshaler   = (*KeyRecord)(nil)
	_ encoding.BinaryUnmarshaler = (*KeyRecord)(nil)
)

func recordOf(c *Certificate) *KeyRecord {
	if c == nil {
		return nil
	}
	return &KeyRecord{
		ID: c.KeyID, Role: c.Role, Name: c.Name, Created: c.Created,
		SignPub: c.SignPub, BoxPub: c.BoxPub, Certificate: c,
	}
}

// ParseKeyRecord decodes a key record. Call [KeyRecord.Verify] before
// trusting it.
func ParseKeyRecord(b []byte) (*KeyRecord, error) {
	c, err := ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("crypto: key record: %w", err)
	}
	return recordOf(c), nil
}

// MarshalBinary returns the record's encoding: its certificate's.
func (r *KeyRecord) MarshalBinary() ([]byte, error) {
	if r.Certificate == nil {
		return nil, malformed("key record", "no certificate")
	}
	if err := r.matches(); err != nil {
		return nil, err
	}
	return r.Certificate.MarshalBinary()
}

// UnmarshalBinary decodes b into r (see [ParseKeyRecord]).
func (r *KeyRecord) UnmarshalBinary(b []byte) error {
	v, err := ParseKeyRecord(b)
	if err != nil {
		return err
	}
	*r = *v
	return nil
}

func (r *KeyRecord) matches() error {
	c := r.Certificate
	if r.ID != c.KeyID || r.Role != c.Role || r.Name != c.Name || !r.Created.Equal(c.Created) ||
		!bytes.Equal(r.SignPub, c.SignPub) || r.BoxPub != c.BoxPub {
		return malformed("key record", "fields of key %s differ from its certificate", r.ID)
	}
	return nil
}

// Verify checks that the record's certificate is signed by masterSignPub
// and says what the record says.
func (r *KeyRecord) Verify(masterSignPub ed25519.PublicKey) error {
	if r.Certificate == nil {
		return malformed("key record", "no certificate")
	}
	if err := r.matches(); err != nil {
		return err
	}
	return r.Certificate.Verify(masterSignPub)
}

// Revocation is the master key's statement that a key must no longer be
// trusted from a time on: manifests it signs are refused. Encoding
// (version 1, integers big-endian):
//
//	kind     1  'R'
//	version  1  1 or 2
//	key ID   16 the revoked key
//	issuer   16 the master key's ID
//	revoked  8  int64, seconds since 1970 UTC
//	last seq 8  version 2: the sequence number of the last snapshot accepted from the key (0: none)
//	last     32 version 2: that snapshot's ID (zero when last seq is 0)
//	reason   1 + N, 0 <= N <= MaxReasonLen, printable UTF-8
//	sig      64 Ed25519 over all of the above, context "larder revocation v1"
//
// A version 1 revocation names no snapshot: readers accept the key's
// snapshots stored before its time.
type Revocation struct {
	KeyID   KeyID
	Issuer  KeyID
	Revoked time.Time // whole seconds
	// HasLast (version 2): LastSeq and Last name the last snapshot the
	// master accepts from the key (LastSeq 0: none); anything later from it
	// is rejected.
	HasLast   bool
	LastSeq   uint64
	Last      [32]byte
	Reason    string
	Signature []byte
}

var (
	_ encoding.BinaryMarshaler   = (*Revocation)(nil)
	_ encoding.BinaryUnmarshaler = (*Revocation)(nil)
)

func checkReason(s string) error {
	if len(s) > MaxReasonLen || !utf8.ValidString(s) {
		return malformed("revocation", "reason is longer than %d bytes or not UTF-8", MaxReasonLen)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return malformed("revocation", "reason %q has a non-printable character", s)
		}
	}
	return nil
}

func (v *Revocation) body() ([]byte, error) {
	if v.KeyID.IsZero() || v.Issuer.IsZero() || v.KeyID == v.Issuer {
		return nil, malformed("revocation", "key ID %s, issuer %s", v.KeyID, v.Issuer)
	}
	if err := checkReason(v.Reason); err != nil {
		return nil, err
	}
	if v.HasLast && (v.LastSeq == 0) != (v.Last == [32]byte{}) {
		return nil, malformed("revocation", "last snapshot %x with sequence number %d", v.Last[:4], v.LastSeq)
	}
	b := cryptobyte.NewBuilder(make([]byte, 0, MaxRevocationSize))
	b.AddUint8(kindRevocation)
	if v.HasLast {
		b.AddUint8(revocationVersion2)
	} else {
		b.AddUint8(revocationVersion)
	}
	b.AddBytes(v.KeyID[:])
	b.AddBytes(v.Issuer[:])
	b.AddUint64(uint64(v.Revoked.Unix()))
	if v.HasLast {
		b.AddUint64(v.LastSeq)
		b.AddBytes(v.Last[:])
	}
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(v.Reason)) })
	return b.Bytes()
}

// Revoke makes a signed revocation (version 1) of the key id at time now.
// The master cannot revoke itself.
func (k *MasterKey) Revoke(id KeyID, reason string, now time.Time) (*Revocation, error) {
	return k.revoke(&Revocation{KeyID: id, Issuer: k.ID, Revoked: unixTime(now), Reason: reason})
}

// RevokeAfter makes a signed revocation (version 2) of the key id that
// accepts its snapshots up to the one with sequence number lastSeq and ID
// last (lastSeq 0 and a zero last: none).
func (k *MasterKey) RevokeAfter(id KeyID, reason string, now time.Time, lastSeq uint64, last [32]byte) (*Revocation, error) {
	return k.revoke(&Revocation{KeyID: id, Issuer: k.ID, Revoked: unixTime(now), Reason: reason,
		HasLast: true, LastSeq: lastSeq, Last: last})
}

func (k *MasterKey) revoke(v *Revocation) (*Revocation, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: revoke: master key: %w", ErrErased)
	}
	body, err := v.body()
	if err != nil {
		return nil, err
	}
	if v.Signature, err = sign(k.SignKey, ContextRevocation, body); err != nil {
		return nil, err
	}
	return v, nil
}

// MarshalBinary returns the revocation's encoding.
func (v *Revocation) MarshalBinary() ([]byte, error) {
	body, err := v.body()
	if err != nil {
		return nil, err
	}
	if len(v.Signature) != SignatureSize {
		return nil, malformed("revocation", "signature is %d bytes", len(v.Signature))
	}
	return append(body, v.Signature...), nil
}

// ParseRevocation decodes a revocation. It checks the encoding, not the
// signature: call [Revocation.Verify].
func ParseRevocation(b []byte) (*Revocation, error) {
	if len(b) > MaxRevocationSize {
		return nil, malformed("revocation", "%d bytes exceeds %d", len(b), MaxRevocationSize)
	}
	s := cryptobyte.String(b)
	var kind, version uint8
	if !s.ReadUint8(&kind) || !s.ReadUint8(&version) {
		return nil, malformed("revocation", "truncated")
	}
	if kind != kindRevocation {
		return nil, malformed("revocation", "kind byte %#x is not a revocation", kind)
	}
	if version != revocationVersion && version != revocationVersion2 {
		return nil, fmt.Errorf("crypto: revocation: %w %d", ErrUnsupportedVersion, version)
	}
	v := &Revocation{Signature: make([]byte, SignatureSize), HasLast: version == revocationVersion2}
	var t uint64
	var reason cryptobyte.String
	if !s.CopyBytes(v.KeyID[:]) || !s.CopyBytes(v.Issuer[:]) || !s.ReadUint64(&t) {
		return nil, malformed("revocation", "truncated")
	}
	if v.HasLast && (!s.ReadUint64(&v.LastSeq) || !s.CopyBytes(v.Last[:])) {
		return nil, malformed("revocation", "truncated")
	}
	if !s.ReadUint8LengthPrefixed(&reason) || !s.CopyBytes(v.Signature) {
		return nil, malformed("revocation", "truncated")
	}
	if !s.Empty() {
		return nil, malformed("revocation", "%d trailing bytes", len(s))
	}
	v.Revoked = time.Unix(int64(t), 0).UTC()
	v.Reason = string(reason)
	if _, err := v.body(); err != nil {
		return nil, err
	}
	return v, nil
}

// UnmarshalBinary decodes b into v (see [ParseRevocation]).
func (v *Revocation) UnmarshalBinary(b []byte) error {
	w, err := ParseRevocation(b)
	if err != nil {
		return err
	}
	*v = *w
	return nil
}

// Verify checks the revocation's signature by the master key
// masterSignPub.
func (v *Revocation) Verify(masterSignPub ed25519.PublicKey) error {
	body, err := v.body()
	if err != nil {
		return err
	}
	if err := Verify(masterSignPub, ContextRevocation, body, v.Signature); err != nil {
		return fmt.Errorf("crypto: revocation of key %s: %w", v.KeyID, err)
	}
	return nil
}
