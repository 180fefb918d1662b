package crypto

import (
	"crypto/cipher"
	"crypto/rand"
	"unsafe"

	"golang.org/x/crypto/chacha20poly1305"
)

// KeySize is the size of every symmetric key in this package.
const KeySize = 32

// NonceSize is the size of the random nonce [Seal] prepends.
const NonceSize = chacha20poly1305.NonceSizeX

// TagSize is the size of the Poly1305 authentication tag.
const TagSize = chacha20poly1305.Overhead

// Overhead is how many bytes [Seal] adds to a plaintext: the nonce and the
// tag.
const Overhead = NonceSize + TagSize

// RandomNonceAEAD is XChaCha20-Poly1305 that draws a fresh random 24-byte
// nonce for every Seal and prepends it to the ciphertext, in the manner of
// crypto/cipher.NewGCMWithRandomNonce: its NonceSize is 0 and callers pass
// an empty nonce. With 192-bit random nonces a key can seal any practical
// number of messages without a nonce repeating.
//
// Open authenticates before it writes any plaintext and fails only with
// [ErrAuthFailed].
type RandomNonceAEAD struct {
	aead cipher.AEAD
}

var _ cipher.AEAD = (*RandomNonceAEAD)(nil)

// NewRandomNonceAEAD returns the AEAD for key. The key is copied; the copy
// lives as long as the returned value and is not erased.
func NewRandomNonceAEAD(key *[KeySize]byte) *RandomNonceAEAD {
	a, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("crypto: " + err.Error()) // unreachable: the key has the right size
	}
	return &RandomNonceAEAD{aead: a}
}

// NonceSize returns 0: the nonce is chosen by Seal and carried in the
// ciphertext.
func (a *RandomNonceAEAD) NonceSize() int { return 0 }

// Overhead returns [Overhead].
func (a *RandomNonceAEAD) Overhead() int { return Overhead }

// Seal appends nonce || ciphertext || tag to dst and returns the result.
// nonce must be empty. As for any cipher.AEAD, plaintext[:0] may be passed
// as dst to reuse plaintext's storage; other overlaps panic.
func (a *RandomNonceAEAD) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != 0 {
		panic("crypto: RandomNonceAEAD.Seal: nonce must be empty")
	}
	ret, out := sliceForAppend(dst, NonceSize+len(plaintext)+TagSize)
	var n [NonceSize]byte
	rand.Read(n[:]) // never fails since Go 1.24; a failure crashes the program
	a.seal(out, &n, plaintext, additionalData)
	return ret
}

// seal writes nonce || ciphertext || tag into out, which has exactly the
// right length. When plaintext overlaps out (dst = plaintext[:0]), the
// plaintext is first moved to where the ciphertext goes, so the cipher
// works in place; the nonce is written last.
func (a *RandomNonceAEAD) seal(out []byte, n *[NonceSize]byte, plaintext, additionalData []byte) {
	body := out[NonceSize:]
	if anyOverlap(out, plaintext) {
		copy(body, plaintext)
		plaintext = body[:len(plaintext)]
	}
	a.aead.Seal(body[:0], n[:], plaintext, additionalData)
	copy(out, n[:])
}

// sealWithNonce is Seal with a chosen nonce, for test vectors only.
func (a *RandomNonceAEAD) sealWithNonce(dst []byte, n *[NonceSize]byte, plaintext, additionalData []byte) []byte {
	ret, out := sliceForAppend(dst, NonceSize+len(plaintext)+TagSize)
	a.seal(out, n, plaintext, additionalData)
	return ret
}

// Open authenticates nonce || ciphertext || tag and appends the plaintext
// to dst. nonce must be empty. As for any cipher.AEAD, ciphertext[:0] may
// be passed as dst to decrypt in place. On failure it returns
// [ErrAuthFailed]; dst's spare capacity may have been overwritten with
// ciphertext, but never with plaintext.
func (a *RandomNonceAEAD) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != 0 {
		panic("crypto: RandomNonceAEAD.Open: nonce must be empty")
	}
	if len(ciphertext) < Overhead {
		return nil, ErrAuthFailed
	}
	var n [NonceSize]byte
	copy(n[:], ciphertext)
	body := ciphertext[NonceSize:]
	ret, out := sliceForAppend(dst, len(body)-TagSize)
	if anyOverlap(out, body) {
		// dst = ciphertext[:0]: move the ciphertext down to where the
		// plaintext goes and decrypt in place. out has room for the tag
		// too, since it starts NonceSize bytes before body.
		out = out[:len(body)]
		copy(out, body)
		body = out
	}
	if _, err := a.aead.Open(out[:0], n[:], body, additionalData); err != nil {
		return nil, ErrAuthFailed
	}
	return ret, nil
}

// objectAD is the associated data that binds a sealed object to its
// identity: the type byte, then the ID bytes. The type has a fixed length,
// so the encoding is unambiguous.
func objectAD(objType byte, id []byte) []byte {
	ad := make([]byte, 0, 1+len(id))
	ad = append(ad, objType)
	return append(ad, id...)
}

// Seal encrypts plaintext under key, bound to the object's type and ID, and
// appends nonce || ciphertext || tag ([Overhead] bytes more than the
// plaintext) to dst. The 24-byte nonce is random. dst and plaintext must
// not overlap.
func Seal(dst []byte, key *[KeySize]byte, objType byte, id []byte, plaintext []byte) []byte {
	return NewRandomNonceAEAD(key).Seal(dst, nil, plaintext, objectAD(objType, id))
}

// Open authenticates sealed (the output of [Seal]) for the object's type
// and ID and appends the plaintext to dst. Nothing is returned unless the
// whole object authenticates; every failure is [ErrAuthFailed], returned
// bare so the message says nothing about the cause. To decrypt in place,
// pass dst = sealed[NonceSize:NonceSize].
func Open(dst []byte, key *[KeySize]byte, objType byte, id []byte, sealed []byte) ([]byte, error) {
	return NewRandomNonceAEAD(key).Open(dst, nil, sealed, objectAD(objType, id))
}

// sliceForAppend extends in by n bytes, reallocating if needed; head is the
// whole result and tail the n new bytes (the crypto/cipher idiom).
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	tail = head[len(in):]
	return
}

// anyOverlap reports whether x and y share memory (the check of
// golang.org/x/crypto/internal/alias, which cannot be imported).
func anyOverlap(x, y []byte) bool {
	return len(x) > 0 && len(y) > 0 &&
		uintptr(unsafe.Pointer(&x[0])) <= uintptr(unsafe.Pointer(&y[len(y)-1])) &&
		uintptr(unsafe.Pointer(&y[0])) <= uintptr(unsafe.Pointer(&x[len(x)-1]))
}
