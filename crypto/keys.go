package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/curve25519"
)

// BoxKeyPair is an X25519 key pair: the public half others seal to, the
// private half that opens.
type BoxKeyPair struct {
	Public  [32]byte
	Private [32]byte
}

// newBoxKeyPair reads a private key from rand and computes its public key.
func newBoxKeyPair(rand io.Reader) (BoxKeyPair, error) {
	var priv [32]byte
	if _, err := io.ReadFull(rand, priv[:]); err != nil {
		return BoxKeyPair{}, fmt.Errorf("crypto: new X25519 key: %w", err)
	}
	kp, err := boxKeyPairFromPrivate(&priv)
	clear(priv[:])
	return kp, err
}

// boxKeyPairFromPrivate computes the public key of priv.
func boxKeyPairFromPrivate(priv *[32]byte) (BoxKeyPair, error) {
	kp := BoxKeyPair{Private: *priv}
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		return BoxKeyPair{}, fmt.Errorf("crypto: X25519 public key: %w: %w", ErrInvalidKey, err)
	}
	copy(kp.Public[:], pub)
	return kp, nil
}

// Erase zeroes the private key.
func (k *BoxKeyPair) Erase() { clear(k.Private[:]) }

// newSigningKey reads an Ed25519 seed from rand.
func newSigningKey(rand io.Reader) (ed25519.PrivateKey, error) {
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("crypto: new Ed25519 key: %w", err)
	}
	k := ed25519.NewKeyFromSeed(seed[:])
	clear(seed[:])
	return k, nil
}

// publicOf returns the public half of an Ed25519 private key, as a new
// slice that does not alias the private key.
func publicOf(priv ed25519.PrivateKey) ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), priv.Public().(ed25519.PublicKey)...)
}

// readKey32 fills a symmetric key from rand.
func readKey32(rand io.Reader, what string) ([KeySize]byte, error) {
	var k [KeySize]byte
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return k, fmt.Errorf("crypto: new %s: %w", what, err)
	}
	return k, nil
}

// MasterKey is the repository's root key. It holds everything: it can
// restore, forget and prune, make write and audit keys, and read every
// object. Keep it offline, protected by a passphrase.
//
// The fields are exported so that callers can inspect them; do not modify
// them. Erase zeroes the secrets; after it, methods return [ErrErased].
type MasterKey struct {
	ID      KeyID     // random, 16 bytes
	Name    string    // "master" unless changed before the key is first saved
	Created time.Time // whole seconds, UTC

	BoxKey      BoxKeyPair         // opens session data and meta keys and sealed manifests
	AuditBoxKey BoxKeyPair         // the auditors' pair, copied into every audit key
	SignKey     ed25519.PrivateKey // signs certificates and revocations

	ChunkerPoly uint64        // irreducible polynomial for github.com/restic/chunker
	ChunkIDKey  [KeySize]byte // keys ChunkID
	IndexKey    [KeySize]byte // seals index objects

	erased bool
}

// NewMasterKey makes a new master key from rand (crypto/rand.Reader if
// nil). poly is the chunker polynomial, which the caller draws with
// chunker.RandomPolynomial; it must not be zero.
func NewMasterKey(rand io.Reader, poly uint64) (*MasterKey, error) {
	return newMasterKey(rand, poly, time.Now())
}

func newMasterKey(r io.Reader, poly uint64, now time.Time) (*MasterKey, error) {
	if r == nil {
		r = rand.Reader
	}
	if poly == 0 {
		return nil, fmt.Errorf("crypto: new master key: chunker polynomial is zero")
	}
	k := &MasterKey{Name: "master", Created: unixTime(now), ChunkerPoly: poly}
	var err error
	if k.ID, err = newKeyID(r); err != nil {
		return nil, err
	}
	if k.BoxKey, err = newBoxKeyPair(r); err != nil {
		return nil, err
	}
	if k.AuditBoxKey, err = newBoxKeyPair(r); err != nil {
		return nil, err
	}
	if k.SignKey, err = newSigningKey(r); err != nil {
		return nil, err
	}
	if k.ChunkIDKey, err = readKey32(r, "chunk-ID key"); err != nil {
		return nil, err
	}
	if k.IndexKey, err = readKey32(r, "index key"); err != nil {
		return nil, err
	}
	return k, nil
}

// SignPublic returns the master's public signing key, which verifies
// certificates and revocations. Repositories store it in their config;
// write and audit keys carry a copy.
func (k *MasterKey) SignPublic() ed25519.PublicKey { return publicOf(k.SignKey) }

// NewWriteKey makes a write key for a forum server, named name, with a
// fresh ID and signing key and a certificate signed by k at time now.
func (k *MasterKey) NewWriteKey(name string, now time.Time) (*WriteKey, error) {
	return k.newWriteKey(rand.Reader, name, now)
}

func (k *MasterKey) newWriteKey(r io.Reader, name string, now time.Time) (*WriteKey, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: new write key: master key: %w", ErrErased)
	}
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("crypto: new write key: %w", err)
	}
	w := &WriteKey{
		Name:          name,
		Created:       unixTime(now),
		ChunkerPoly:   k.ChunkerPoly,
		ChunkIDKey:    k.ChunkIDKey,
		IndexKey:      k.IndexKey,
		MasterBoxPub:  k.BoxKey.Public,
		AuditBoxPub:   k.AuditBoxKey.Public,
		MasterSignPub: k.SignPublic(),
	}
	var err error
	if w.ID, err = newKeyID(r); err != nil {
		return nil, err
	}
	if w.SignKey, err = newSigningKey(r); err != nil {
		return nil, err
	}
	if w.Certificate, err = k.certify(RoleWrite, w.ID, name, w.Created, publicOf(w.SignKey), [32]byte{}); err != nil {
		return nil, err
	}
	return w, nil
}

// NewAuditKey makes an audit key named name, with a fresh ID and signing
// key, a copy of the auditors' box key pair, and a certificate signed by k
// at time now.
//
// All audit keys share the auditors' box key pair (write keys seal to its
// public half), so revoking an audit key does not stop it from opening
// manifests it can still download.
func (k *MasterKey) NewAuditKey(name string, now time.Time) (*AuditKey, error) {
	return k.newAuditKey(rand.Reader, name, now)
}

func (k *MasterKey) newAuditKey(r io.Reader, name string, now time.Time) (*AuditKey, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: new audit key: master key: %w", ErrErased)
	}
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("crypto: new audit key: %w", err)
	}
	a := &AuditKey{
		Name:          name,
		Created:       unixTime(now),
		BoxKey:        k.AuditBoxKey,
		IndexKey:      k.IndexKey,
		MasterBoxPub:  k.BoxKey.Public,
		MasterSignPub: k.SignPublic(),
	}
	var err error
	if a.ID, err = newKeyID(r); err != nil {
		return nil, err
	}
	if a.SignKey, err = newSigningKey(r); err != nil {
		return nil, err
	}
	if a.Certificate, err = k.certify(RoleAudit, a.ID, name, a.Created, publicOf(a.SignKey), a.BoxKey.Public); err != nil {
		return nil, err
	}
	return a, nil
}

// Record returns the master's public key record, with a certificate the
// master signs for itself.
func (k *MasterKey) Record() (*KeyRecord, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: master key record: %w", ErrErased)
	}
	c, err := k.certify(RoleMaster, k.ID, k.Name, k.Created, k.SignPublic(), k.BoxKey.Public)
	if err != nil {
		return nil, err
	}
	return recordOf(c), nil
}

// Sign signs msg for the object kind ctx with the master's signing key
// (see [Sign]).
func (k *MasterKey) Sign(ctx SigContext, msg []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: sign: master key: %w", ErrErased)
	}
	return Sign(k.SignKey, ctx, msg)
}

// OpenSealed opens an object sealed with [SealTo] to the master's or the
// auditors' box key.
func (k *MasterKey) OpenSealed(sealed, ad []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: open sealed: master key: %w", ErrErased)
	}
	pt, err := OpenSealed(sealed, ad, k.BoxKey.Private)
	if err == nil {
		return pt, nil
	}
	pt, err2 := OpenSealed(sealed, ad, k.AuditBoxKey.Private)
	if err2 == nil {
		return pt, nil
	}
	return nil, err
}

// Erase zeroes every secret k holds. Afterwards its methods fail with
// [ErrErased].
func (k *MasterKey) Erase() {
	k.BoxKey.Erase()
	k.AuditBoxKey.Erase()
	clear(k.SignKey)
	clear(k.ChunkIDKey[:])
	clear(k.IndexKey[:])
	k.ChunkerPoly = 0
	k.erased = true
}

// WriteKey lives on the forum server, often without a passphrase so that
// cron can use it. It can add snapshots and deduplicate against what the
// repository holds, but it holds no private box key: it cannot open any
// stored chunk or manifest, including those it wrote, and it cannot
// delete (that is the storage credential's business, but nothing in
// larder asks a write key to).
type WriteKey struct {
	ID      KeyID
	Name    string
	Created time.Time // whole seconds, UTC

	ChunkerPoly uint64        // chunker polynomial, to cut chunks as every writer does
	ChunkIDKey  [KeySize]byte // to compute chunk IDs, for deduplication
	IndexKey    [KeySize]byte // to read and write the index

	MasterBoxPub  [32]byte          // sessions derive data keys to this
	AuditBoxPub   [32]byte          // sessions derive meta keys to this; manifests are sealed to both
	MasterSignPub ed25519.PublicKey // verifies certificates

	SignKey     ed25519.PrivateKey // signs manifests
	Certificate *Certificate       // the master's certificate for SignKey

	erased bool
}

// NewSession starts an ingest session sealed to the master and the
// auditors (see [NewSession]).
func (k *WriteKey) NewSession(rand io.Reader) (*Session, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: new session: write key: %w", ErrErased)
	}
	return NewSession(rand, k.MasterBoxPub, k.AuditBoxPub)
}

// Sign signs msg for the object kind ctx with the write key's signing key
// (see [Sign]).
func (k *WriteKey) Sign(ctx SigContext, msg []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: sign: write key: %w", ErrErased)
	}
	return Sign(k.SignKey, ctx, msg)
}

// Record returns the key's public record.
func (k *WriteKey) Record() *KeyRecord { return recordOf(k.Certificate) }

// Erase zeroes every secret k holds. Afterwards its methods fail with
// [ErrErased].
func (k *WriteKey) Erase() {
	clear(k.SignKey)
	clear(k.ChunkIDKey[:])
	clear(k.IndexKey[:])
	k.ChunkerPoly = 0
	k.erased = true
}

// AuditKey lets an auditor list snapshots, open and verify manifests and
// metadata (chunk lists), check signatures, the manifest chain and that
// referenced chunks are indexed. It cannot derive session data keys, so it
// cannot read chunk contents, and it holds no chunk-ID key.
type AuditKey struct {
	ID      KeyID
	Name    string
	Created time.Time // whole seconds, UTC

	BoxKey        BoxKeyPair        // the auditors' pair: opens meta keys and sealed manifests
	IndexKey      [KeySize]byte     // to read the index (chunk IDs and locations, no content)
	MasterBoxPub  [32]byte          // bound into session key derivation
	MasterSignPub ed25519.PublicKey // verifies certificates and revocations

	SignKey     ed25519.PrivateKey // signs audit results
	Certificate *Certificate       // the master's certificate for SignKey and BoxKey.Public

	erased bool
}

// Sign signs msg for the object kind ctx with the audit key's signing key
// (see [Sign]).
func (k *AuditKey) Sign(ctx SigContext, msg []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: sign: audit key: %w", ErrErased)
	}
	return Sign(k.SignKey, ctx, msg)
}

// OpenSealed opens an object sealed with [SealTo] to the auditors' box key.
func (k *AuditKey) OpenSealed(sealed, ad []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: open sealed: audit key: %w", ErrErased)
	}
	return OpenSealed(sealed, ad, k.BoxKey.Private)
}

// Record returns the key's public record.
func (k *AuditKey) Record() *KeyRecord { return recordOf(k.Certificate) }

// Erase zeroes every secret k holds. Afterwards its methods fail with
// [ErrErased].
func (k *AuditKey) Erase() {
	k.BoxKey.Erase()
	clear(k.SignKey)
	clear(k.IndexKey[:])
	k.erased = true
}
