package crypto

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// Sealed-object constants.
const (
	sealedVersion byte = 1

	// MaxSealRecipients is the most recipients [SealTo] accepts and
	// [OpenSealed] believes.
	MaxSealRecipients = 8

	fileKeySize  = 16
	stanzaSize   = 32 + fileKeySize + TagSize // ephemeral public key, wrapped file key
	sealedMACLen = sha256.Size

	labelSealedWrap    = "larder sealed x25519 v1"
	labelSealedHeader  = "larder sealed header v1"
	labelSealedPayload = "larder sealed payload v1"
)

// SealedOverhead returns how many bytes [SealTo] adds to a plaintext for
// n recipients.
func SealedOverhead(n int) int {
	return 3 + n*stanzaSize + NonceSize + sealedMACLen + TagSize
}

// hkdf32 returns 32 bytes of HKDF-SHA256.
func hkdf32(ikm, salt []byte, info string) [KeySize]byte {
	var k [KeySize]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt, []byte(info)), k[:]); err != nil {
		panic("crypto: hkdf: " + err.Error()) // unreachable
	}
	return k
}

// wrapKey derives the key that wraps the file key for one recipient:
// HKDF-SHA256(X25519 shared secret, salt = ephemeral pub || recipient pub,
// info = "larder sealed x25519 v1").
func wrapKey(shared []byte, ephPub, recipPub *[32]byte) [KeySize]byte {
	salt := make([]byte, 0, 64)
	salt = append(salt, ephPub[:]...)
	salt = append(salt, recipPub[:]...)
	return hkdf32(shared, salt, labelSealedWrap)
}

// SealTo encrypts plaintext so that only the holders of the recipients'
// X25519 private keys can open it, the way age's X25519 recipients work: a
// random file key is wrapped for each recipient with a fresh ephemeral key,
// the header is authenticated with an HMAC keyed by the file key (which
// also commits every recipient to the same file key, so all recipients
// either open the same plaintext or fail), and the body is
// XChaCha20-Poly1305 under a key derived from the file key, with ad as
// associated data. The sender forgets the file key and the ephemeral
// secrets, so it cannot open what it sealed. r is the random source
// (crypto/rand.Reader if nil). The layout is in docs/format/keys.md.
func SealTo(r io.Reader, plaintext, ad []byte, recipients ...[32]byte) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	if len(recipients) == 0 || len(recipients) > MaxSealRecipients {
		return nil, fmt.Errorf("crypto: seal: %d recipients, want 1..%d", len(recipients), MaxSealRecipients)
	}
	for i := range recipients {
		for j := range i {
			if recipients[i] == recipients[j] {
				return nil, fmt.Errorf("crypto: seal: recipient %d repeats recipient %d", i, j)
			}
		}
	}
	var fileKey [fileKeySize]byte
	defer clear(fileKey[:])
	if _, err := io.ReadFull(r, fileKey[:]); err != nil {
		return nil, fmt.Errorf("crypto: seal: file key: %w", err)
	}

	out := make([]byte, 0, SealedOverhead(len(recipients))+len(plaintext))
	out = append(out, kindSealed, sealedVersion, byte(len(recipients)))
	var zeroNonce [chacha20poly1305.NonceSize]byte
	for i := range recipients {
		recip := &recipients[i]
		eph, err := newBoxKeyPair(r)
		if err != nil {
			return nil, fmt.Errorf("crypto: seal: %w", err)
		}
		shared, err := curve25519.X25519(eph.Private[:], recip[:])
		eph.Erase()
		if err != nil {
			return nil, fmt.Errorf("crypto: seal: recipient %d: %w: %w", i, ErrInvalidKey, err)
		}
		wk := wrapKey(shared, &eph.Public, recip)
		clear(shared)
		aead, err := chacha20poly1305.New(wk[:])
		clear(wk[:])
		if err != nil {
			panic("crypto: " + err.Error()) // unreachable
		}
		out = append(out, eph.Public[:]...)
		// Each wrap key is used once, so the zero nonce is safe (as in age).
		out = aead.Seal(out, zeroNonce[:], fileKey[:], nil)
	}
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(r, nonce[:]); err != nil {
		return nil, fmt.Errorf("crypto: seal: nonce: %w", err)
	}
	out = append(out, nonce[:]...)
	out = append(out, headerMAC(&fileKey, out)...)

	return sealBody(out, &fileKey, &nonce, plaintext, ad), nil
}

// headerMAC returns HMAC-SHA256 keyed by HKDF(file key, "larder sealed
// header v1") over the header bytes before the MAC.
func headerMAC(fileKey *[fileKeySize]byte, header []byte) []byte {
	hk := hkdf32(fileKey[:], nil, labelSealedHeader)
	defer clear(hk[:])
	m := hmac.New(sha256.New, hk[:])
	m.Write(header)
	return m.Sum(nil)
}

// OpenSealed opens an object made by [SealTo] with the X25519 private key
// priv and the same associated data ad. It fails with [ErrMalformed] if
// the framing is wrong and [ErrAuthFailed] if priv is not a recipient or
// anything was altered; no plaintext is returned unless everything
// authenticates.
func OpenSealed(sealed, ad []byte, priv [32]byte) ([]byte, error) {
	defer clear(priv[:])
	if len(sealed) < 3 {
		return nil, malformed("sealed object", "%d bytes is too short", len(sealed))
	}
	if sealed[0] != kindSealed {
		return nil, malformed("sealed object", "kind byte %#x is not a sealed object", sealed[0])
	}
	if sealed[1] != sealedVersion {
		return nil, fmt.Errorf("crypto: sealed object: %w %d", ErrUnsupportedVersion, sealed[1])
	}
	n := int(sealed[2])
	if n == 0 || n > MaxSealRecipients {
		return nil, malformed("sealed object", "%d recipients, want 1..%d", n, MaxSealRecipients)
	}
	if len(sealed) < SealedOverhead(n) {
		return nil, malformed("sealed object", "%d bytes is too short for %d recipients", len(sealed), n)
	}
	headerLen := 3 + n*stanzaSize + NonceSize
	header := sealed[:headerLen+sealedMACLen]

	me, err := boxKeyPairFromPrivate(&priv)
	if err != nil {
		return nil, err
	}
	defer me.Erase()

	var fileKey [fileKeySize]byte
	defer clear(fileKey[:])
	found := false
	var zeroNonce [chacha20poly1305.NonceSize]byte
	for i := range n {
		st := sealed[3+i*stanzaSize : 3+(i+1)*stanzaSize]
		var ephPub [32]byte
		copy(ephPub[:], st)
		shared, err := curve25519.X25519(me.Private[:], ephPub[:])
		if err != nil {
			continue // a low-order point cannot be ours
		}
		wk := wrapKey(shared, &ephPub, &me.Public)
		clear(shared)
		aead, _ := chacha20poly1305.New(wk[:])
		clear(wk[:])
		if _, err := aead.Open(fileKey[:0], zeroNonce[:], st[32:], nil); err == nil {
			found = true
			break
		}
	}
	if !found {
		return nil, ErrAuthFailed
	}
	if !hmac.Equal(headerMAC(&fileKey, sealed[:headerLen]), sealed[headerLen:headerLen+sealedMACLen]) {
		return nil, ErrAuthFailed
	}
	aead := payloadAEAD(&fileKey)
	nonce := sealed[headerLen-NonceSize : headerLen]
	pt, err := aead.Open(nil, nonce, sealed[len(header):], ad)
	if err != nil {
		return nil, ErrAuthFailed
	}
	return pt, nil
}

// payloadAEAD returns XChaCha20-Poly1305 keyed by HKDF(file key,
// "larder sealed payload v1").
func payloadAEAD(fileKey *[fileKeySize]byte) cipher.AEAD {
	pk := hkdf32(fileKey[:], nil, labelSealedPayload)
	defer clear(pk[:])
	aead, err := chacha20poly1305.NewX(pk[:])
	if err != nil {
		panic("crypto: " + err.Error()) // unreachable
	}
	return aead
}

// sealBody appends the body: the plaintext sealed under the payload key
// with the header's nonce and the caller's associated data. The body is
// bound to the header through the file key: both the header MAC and the
// payload key derive from it.
func sealBody(header []byte, fileKey *[fileKeySize]byte, nonce *[NonceSize]byte, plaintext, ad []byte) []byte {
	return payloadAEAD(fileKey).Seal(header, nonce[:], plaintext, ad)
}
