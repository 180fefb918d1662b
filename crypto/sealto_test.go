package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

func TestSealToRoundTrip(t *testing.T) {
	m, w, a := testKeys(t)
	ad := []byte("snapshot 42")
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := pattern(n)
			sealed, err := SealTo(nil, pt, ad, w.MasterBoxPub, w.AuditBoxPub)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != n+SealedOverhead(2) {
				t.Fatalf("sealed length %d, want %d", len(sealed), n+SealedOverhead(2))
			}
			for name, open := range map[string]func() ([]byte, error){
				"master box key":  func() ([]byte, error) { return OpenSealed(sealed, ad, m.BoxKey.Private) },
				"audit box key":   func() ([]byte, error) { return OpenSealed(sealed, ad, a.BoxKey.Private) },
				"MasterKey":       func() ([]byte, error) { return m.OpenSealed(sealed, ad) },
				"AuditKey":        func() ([]byte, error) { return a.OpenSealed(sealed, ad) },
				"master key copy": func() ([]byte, error) { return OpenSealed(sealed, ad, m.AuditBoxKey.Private) },
			} {
				got, err := open()
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s: %v", name, err)
				}
			}
		})
	}
}

func TestSealToOneRecipientAndMany(t *testing.T) {
	r := newDetReader("recipients")
	var pairs []BoxKeyPair
	var pubs [][32]byte
	for range MaxSealRecipients {
		kp, _ := newBoxKeyPair(r)
		pairs = append(pairs, kp)
		pubs = append(pubs, kp.Public)
	}
	for _, n := range []int{1, 2, MaxSealRecipients} {
		sealed, err := SealTo(nil, []byte("m"), nil, pubs[:n]...)
		if err != nil {
			t.Fatal(err)
		}
		for i, kp := range pairs {
			_, err := OpenSealed(sealed, nil, kp.Private)
			if (i < n) != (err == nil) {
				t.Errorf("%d recipients: key %d: %v", n, i, err)
			}
			if i >= n && err != ErrAuthFailed {
				t.Errorf("non-recipient: %v, want ErrAuthFailed", err)
			}
		}
	}
	if _, err := SealTo(nil, nil, nil); err == nil {
		t.Error("no recipients accepted")
	}
	if _, err := SealTo(nil, nil, nil, append(pubs, pubs[0])...); err == nil {
		t.Error("too many recipients accepted")
	}
	if _, err := SealTo(nil, nil, nil, pubs[0], pubs[1], pubs[0]); err == nil {
		t.Error("a repeated recipient accepted")
	}
	if _, err := SealTo(nil, nil, nil, pubs[0], [32]byte{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("a low-order recipient: %v", err)
	}
}

func TestOpenSealedDetectsEveryTamperedByte(t *testing.T) {
	m, w, a := testKeys(t)
	for _, n := range []int{0, 1, 17} {
		sealed, _ := SealTo(nil, pattern(n), []byte("ad"), w.MasterBoxPub, w.AuditBoxPub)
		for i := range sealed {
			for _, x := range []byte{0x01, 0x80} {
				bad := flip(sealed, i, x)
				for _, priv := range [][32]byte{m.BoxKey.Private, a.BoxKey.Private} {
					pt, err := OpenSealed(bad, []byte("ad"), priv)
					if err == nil || pt != nil {
						t.Fatalf("size %d: flipping byte %d by %#x went unnoticed", n, i, x)
					}
					if !errors.Is(err, ErrAuthFailed) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
						t.Fatalf("size %d byte %d: unexpected error %v", n, i, err)
					}
				}
			}
		}
		for l := range len(sealed) {
			if _, err := OpenSealed(sealed[:l], []byte("ad"), m.BoxKey.Private); err == nil {
				t.Fatalf("truncated to %d bytes: opened", l)
			}
		}
		if _, err := OpenSealed(append(sealed, 0), []byte("ad"), m.BoxKey.Private); err == nil {
			t.Fatal("extended by a byte: opened")
		}
	}
}

func TestOpenSealedWrongADOrKey(t *testing.T) {
	m, w, _ := testKeys(t)
	sealed, _ := SealTo(nil, []byte("manifest"), []byte("snapshot 1"), w.MasterBoxPub, w.AuditBoxPub)
	for _, ad := range [][]byte{nil, []byte("snapshot 2"), []byte("snapshot 1\x00")} {
		if _, err := OpenSealed(sealed, ad, m.BoxKey.Private); err != ErrAuthFailed {
			t.Errorf("ad %q: %v", ad, err)
		}
	}
	other, _ := newBoxKeyPair(newDetReader("stranger"))
	if _, err := OpenSealed(sealed, []byte("snapshot 1"), other.Private); err != ErrAuthFailed {
		t.Errorf("stranger's key: %v", err)
	}
}

// TestSealToStrippedRecipient checks that the header MAC covers the
// stanzas: a master cannot be handed a copy with the auditor removed (or
// swapped) without noticing.
func TestSealToStrippedRecipient(t *testing.T) {
	m, w, _ := testKeys(t)
	sealed, _ := SealTo(nil, []byte("m"), nil, w.MasterBoxPub, w.AuditBoxPub)
	stripped := append([]byte{sealed[0], sealed[1], 1}, sealed[3:3+stanzaSize]...)
	stripped = append(stripped, sealed[3+2*stanzaSize:]...)
	if _, err := OpenSealed(stripped, nil, m.BoxKey.Private); err != ErrAuthFailed {
		t.Fatalf("stripped recipient: %v", err)
	}
	swapped := append([]byte(nil), sealed[:3]...)
	swapped = append(swapped, sealed[3+stanzaSize:3+2*stanzaSize]...)
	swapped = append(swapped, sealed[3:3+stanzaSize]...)
	swapped = append(swapped, sealed[3+2*stanzaSize:]...)
	if _, err := OpenSealed(swapped, nil, m.BoxKey.Private); err != ErrAuthFailed {
		t.Fatalf("swapped stanzas: %v", err)
	}
}

// TestSealToWriterCannotReopen: the sender, holding only what SealTo took
// (public keys) and its own randomness afterwards, cannot reopen.
func TestSealToWriterCannotReopen(t *testing.T) {
	_, w, _ := testKeys(t)
	sealed, _ := SealTo(nil, []byte("m"), nil, w.MasterBoxPub, w.AuditBoxPub)
	for i, k := range writerSecrets(w, &Session{}) {
		if _, err := OpenSealed(sealed, nil, k); err == nil {
			t.Fatalf("write-key secret %d opened the sealed manifest", i)
		}
	}
}

// TestSealToKeyCommitment: a malicious sender wraps a different file key
// for each recipient. The header MAC commits to one file key, so the other
// recipient must fail instead of reading a different plaintext.
func TestSealToKeyCommitment(t *testing.T) {
	m, w, a := testKeys(t)
	r := newDetReader("malicious sender")
	var k1, k2 [fileKeySize]byte
	r.Read(k1[:])
	r.Read(k2[:])
	out := []byte{kindSealed, sealedVersion, 2}
	var zero [12]byte
	for i, recip := range [][32]byte{w.MasterBoxPub, w.AuditBoxPub} {
		fk := [][fileKeySize]byte{k1, k2}[i]
		eph, _ := newBoxKeyPair(r)
		shared, _ := curve25519.X25519(eph.Private[:], recip[:])
		wk := wrapKey(shared, &eph.Public, &recip)
		aead, _ := chacha20poly1305.New(wk[:])
		out = append(out, eph.Public[:]...)
		out = aead.Seal(out, zero[:], fk[:], nil)
	}
	var nonce [NonceSize]byte
	r.Read(nonce[:])
	out = append(out, nonce[:]...)
	out = append(out, headerMAC(&k1, out)...)
	out = sealBody(out, &k1, &nonce, []byte("what the master sees"), nil)

	if pt, err := OpenSealed(out, nil, m.BoxKey.Private); err != nil || string(pt) != "what the master sees" {
		t.Fatalf("master: %v", err)
	}
	if _, err := OpenSealed(out, nil, a.BoxKey.Private); err != ErrAuthFailed {
		t.Fatalf("auditor with another file key: %v, want ErrAuthFailed", err)
	}
}
