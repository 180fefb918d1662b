package crypto

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// HKDF labels (info strings) of the session key derivation. Never reused
// for anything else; a new derivation gets a new version.
const (
	labelSessionData = "larder session data v1"
	labelSessionMeta = "larder session meta v1"
)

// deriveSessionKey computes
//
//	HKDF-SHA256(ikm = X25519(priv, pub), salt = ephPub || masterPub || auditPub, info = label)
//
// truncated to 32 bytes. priv/pub are (ephemeral secret, recipient public)
// when sealing and (recipient secret, ephemeral public) when opening.
func deriveSessionKey(priv *[32]byte, pub, ephPub, masterPub, auditPub *[32]byte, label string) ([KeySize]byte, error) {
	var key [KeySize]byte
	shared, err := curve25519.X25519(priv[:], pub[:])
	if err != nil {
		return key, fmt.Errorf("crypto: session key: %w: %w", ErrInvalidKey, err)
	}
	defer clear(shared)
	salt := make([]byte, 0, 96)
	salt = append(salt, ephPub[:]...)
	salt = append(salt, masterPub[:]...)
	salt = append(salt, auditPub[:]...)
	if _, err := io.ReadFull(hkdf.New(sha256.New, shared, salt, []byte(label)), key[:]); err != nil {
		panic("crypto: hkdf: " + err.Error()) // unreachable: 32 bytes is far below the limit
	}
	return key, nil
}

// Session is the sealing side of one ingest session, made by a write key.
// It holds two keys:
//
//   - the data key, derived from X25519(ephemeral, master box public key):
//     seals chunk contents, which only the master can open;
//   - the meta key, derived from X25519(ephemeral, auditors' box public
//     key): seals metadata (chunk lists, pack headers) that the master and
//     auditors can open.
//
// The caller stores [Session.EphemeralPublic] with what it seals (in pack
// headers) so the key holders can re-derive the keys. The ephemeral secret
// is zeroed as soon as both keys are derived, and [Session.Erase] zeroes
// the keys, so once a session ends nothing on the writer's machine can
// open what it sealed. A Session has no Open methods.
//
// A Session may be used from several goroutines, except that Erase must not
// run concurrently with sealing.
type Session struct {
	ephPub    [32]byte
	masterPub [32]byte
	auditPub  [32]byte
	data      [KeySize]byte
	meta      [KeySize]byte
	erased    bool
}

// NewSession starts a session sealing to the master key masterBoxPub and
// the auditors' key auditBoxPub, with an ephemeral X25519 key drawn from
// rand (crypto/rand.Reader if nil).
func NewSession(r io.Reader, masterBoxPub, auditBoxPub [32]byte) (*Session, error) {
	if r == nil {
		r = rand.Reader
	}
	if masterBoxPub == auditBoxPub {
		return nil, fmt.Errorf("crypto: new session: %w: master and audit box keys are the same", ErrInvalidKey)
	}
	eph, err := newBoxKeyPair(r)
	if err != nil {
		return nil, fmt.Errorf("crypto: new session: %w", err)
	}
	defer eph.Erase()
	s := &Session{ephPub: eph.Public, masterPub: masterBoxPub, auditPub: auditBoxPub}
	if s.data, err = deriveSessionKey(&eph.Private, &masterBoxPub, &s.ephPub, &masterBoxPub, &auditBoxPub, labelSessionData); err != nil {
		return nil, fmt.Errorf("crypto: new session: master box key: %w", err)
	}
	if s.meta, err = deriveSessionKey(&eph.Private, &auditBoxPub, &s.ephPub, &masterBoxPub, &auditBoxPub, labelSessionMeta); err != nil {
		s.Erase()
		return nil, fmt.Errorf("crypto: new session: audit box key: %w", err)
	}
	return s, nil
}

// EphemeralPublic returns the session's ephemeral public key, which the
// caller stores next to the objects the session seals.
func (s *Session) EphemeralPublic() [32]byte { return s.ephPub }

// SealData seals chunk data under the session's data key (see [Seal]).
// After [Session.Erase] it fails with [ErrErased].
func (s *Session) SealData(dst []byte, objType byte, id, plaintext []byte) ([]byte, error) {
	if s.erased {
		return nil, fmt.Errorf("crypto: session seal data: %w", ErrErased)
	}
	return Seal(dst, &s.data, objType, id, plaintext), nil
}

// SealMeta seals metadata under the session's meta key (see [Seal]).
// After [Session.Erase] it fails with [ErrErased].
func (s *Session) SealMeta(dst []byte, objType byte, id, plaintext []byte) ([]byte, error) {
	if s.erased {
		return nil, fmt.Errorf("crypto: session seal meta: %w", ErrErased)
	}
	return Seal(dst, &s.meta, objType, id, plaintext), nil
}

// Erase zeroes the session's keys. Sealing afterwards fails. Call it when
// the session ends (defer it).
func (s *Session) Erase() {
	clear(s.data[:])
	clear(s.meta[:])
	s.erased = true
}

// SessionKeys are the keys of one session, re-derived by a key holder from
// the session's ephemeral public key: both keys for the master
// ([MasterKey.OpenSession]), the meta key only for an auditor
// ([AuditKey.OpenSession]).
type SessionKeys struct {
	ephPub  [32]byte
	data    [KeySize]byte
	meta    [KeySize]byte
	hasData bool
	erased  bool
}

// OpenSession derives both keys of the session whose ephemeral public key
// is ephemeralPub.
func (k *MasterKey) OpenSession(ephemeralPub [32]byte) (*SessionKeys, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: open session: master key: %w", ErrErased)
	}
	sk := &SessionKeys{ephPub: ephemeralPub, hasData: true}
	var err error
	if sk.data, err = deriveSessionKey(&k.BoxKey.Private, &ephemeralPub, &ephemeralPub, &k.BoxKey.Public, &k.AuditBoxKey.Public, labelSessionData); err != nil {
		return nil, fmt.Errorf("crypto: open session: %w", err)
	}
	if sk.meta, err = deriveSessionKey(&k.AuditBoxKey.Private, &ephemeralPub, &ephemeralPub, &k.BoxKey.Public, &k.AuditBoxKey.Public, labelSessionMeta); err != nil {
		sk.Erase()
		return nil, fmt.Errorf("crypto: open session: %w", err)
	}
	return sk, nil
}

// OpenSession derives the meta key of the session whose ephemeral public
// key is ephemeralPub. An audit key cannot derive the data key.
func (k *AuditKey) OpenSession(ephemeralPub [32]byte) (*SessionKeys, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: open session: audit key: %w", ErrErased)
	}
	sk := &SessionKeys{ephPub: ephemeralPub}
	var err error
	if sk.meta, err = deriveSessionKey(&k.BoxKey.Private, &ephemeralPub, &ephemeralPub, &k.MasterBoxPub, &k.BoxKey.Public, labelSessionMeta); err != nil {
		return nil, fmt.Errorf("crypto: open session: %w", err)
	}
	return sk, nil
}

// EphemeralPublic returns the session's ephemeral public key.
func (k *SessionKeys) EphemeralPublic() [32]byte { return k.ephPub }

// HasDataKey reports whether k can open chunk data (master keys only).
func (k *SessionKeys) HasDataKey() bool { return k.hasData && !k.erased }

// OpenData opens chunk data sealed with [Session.SealData] (see [Open]).
// Keys derived by an audit key fail with [ErrNoDataKey].
func (k *SessionKeys) OpenData(dst []byte, objType byte, id, sealed []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: session open data: %w", ErrErased)
	}
	if !k.hasData {
		return nil, fmt.Errorf("crypto: session open data: %w", ErrNoDataKey)
	}
	return Open(dst, &k.data, objType, id, sealed)
}

// OpenMeta opens metadata sealed with [Session.SealMeta] (see [Open]).
func (k *SessionKeys) OpenMeta(dst []byte, objType byte, id, sealed []byte) ([]byte, error) {
	if k.erased {
		return nil, fmt.Errorf("crypto: session open meta: %w", ErrErased)
	}
	return Open(dst, &k.meta, objType, id, sealed)
}

// Erase zeroes the keys. Opening afterwards fails with [ErrErased].
func (k *SessionKeys) Erase() {
	clear(k.data[:])
	clear(k.meta[:])
	k.erased = true
}
