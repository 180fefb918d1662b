package crypto

import (
	"crypto/ed25519"
	"fmt"
)

// SigContext names the kind of object a signature covers. Every signature
// larder makes is an Ed25519 signature over
//
//	context || 0x00 || message
//
// so a signature made for one kind of object never verifies as another
// (the context contains no 0x00 byte, so the split is unambiguous). A
// context has the form "larder <kind> v<N>": lowercase ASCII letters,
// digits, spaces and '-' in <kind>, and a decimal version. Contexts in use
// are listed in docs/format/keys.md; a retired context is never reused.
type SigContext string

// Signature contexts.
const (
	// ContextCertificate is used only by the master key to sign a
	// [Certificate]; [Sign] refuses it.
	ContextCertificate SigContext = "larder certificate v1"
	// ContextRevocation is used only by the master key to sign a
	// [Revocation]; [Sign] refuses it.
	ContextRevocation SigContext = "larder revocation v1"
	// ContextManifest is for snapshot manifests, signed by the write key
	// that made them.
	ContextManifest SigContext = "larder manifest v1"
)

// MaxContextLen bounds the length of a [SigContext].
const MaxContextLen = 64

// SignatureSize is the size of every signature, in bytes.
const SignatureSize = ed25519.SignatureSize

// check reports whether c has the documented form.
func (c SigContext) check() error {
	s := string(c)
	const prefix = "larder "
	if len(s) > MaxContextLen || len(s) < len(prefix)+len(" v1")+1 || s[:len(prefix)] != prefix {
		return fmt.Errorf("crypto: %w: %q", ErrBadContext, s)
	}
	// Find the last " v": the version follows, the kind precedes.
	i := len(s) - 1
	for i >= 0 && s[i] >= '0' && s[i] <= '9' {
		i--
	}
	if i == len(s)-1 || i < len(prefix)+2 || s[i] != 'v' || s[i-1] != ' ' || s[i+1] == '0' {
		return fmt.Errorf("crypto: %w: %q does not end in \" v<N>\"", ErrBadContext, s)
	}
	kind := s[len(prefix) : i-1]
	for j := 0; j < len(kind); j++ {
		ch := kind[j]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == ' ' || ch == '-') {
			return fmt.Errorf("crypto: %w: %q has a character other than a-z 0-9 space -", ErrBadContext, s)
		}
	}
	if kind[0] == ' ' || kind[len(kind)-1] == ' ' {
		return fmt.Errorf("crypto: %w: %q", ErrBadContext, s)
	}
	return nil
}

// signedMessage returns context || 0x00 || msg.
func signedMessage(ctx SigContext, msg []byte) []byte {
	m := make([]byte, 0, len(ctx)+1+len(msg))
	m = append(m, ctx...)
	m = append(m, 0)
	return append(m, msg...)
}

// Sign signs msg for the object kind ctx. It refuses malformed contexts and
// the contexts reserved for the master key ([ContextCertificate],
// [ContextRevocation]); the master key signs those through
// [MasterKey.NewWriteKey], [MasterKey.NewAuditKey] and [MasterKey.Revoke].
func Sign(priv ed25519.PrivateKey, ctx SigContext, msg []byte) ([]byte, error) {
	if ctx == ContextCertificate || ctx == ContextRevocation {
		return nil, fmt.Errorf("crypto: sign: %w: %q is reserved for the master key", ErrBadContext, ctx)
	}
	return sign(priv, ctx, msg)
}

func sign(priv ed25519.PrivateKey, ctx SigContext, msg []byte) ([]byte, error) {
	if err := ctx.check(); err != nil {
		return nil, err
	}
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("crypto: sign: %w: private key is %d bytes", ErrInvalidKey, len(priv))
	}
	return ed25519.Sign(priv, signedMessage(ctx, msg)), nil
}

// Verify checks that sig is pub's signature on msg for the object kind ctx.
// Any failure, including a malformed key, context or signature, is
// reported as (wrapped) [ErrBadSignature] or [ErrBadContext].
func Verify(pub ed25519.PublicKey, ctx SigContext, msg, sig []byte) error {
	if err := ctx.check(); err != nil {
		return err
	}
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("crypto: verify %s: %w", ctx, ErrBadSignature)
	}
	if !ed25519.Verify(pub, signedMessage(ctx, msg), sig) {
		return fmt.Errorf("crypto: verify %s: %w", ctx, ErrBadSignature)
	}
	return nil
}
