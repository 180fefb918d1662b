package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func testKey(label string) *[KeySize]byte {
	var k [KeySize]byte
	newDetReader(label).Read(k[:])
	return &k
}

func TestSealOpenRoundTrip(t *testing.T) {
	key := testKey("aead")
	id := []byte("object-id")
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pt := pattern(n)
			sealed := Seal(nil, key, 7, id, pt)
			if len(sealed) != n+Overhead {
				t.Fatalf("sealed length %d, want %d", len(sealed), n+Overhead)
			}
			if n >= 16 && bytes.Contains(sealed, pt[:16]) {
				t.Fatal("plaintext appears in the ciphertext")
			}
			got, err := Open(nil, key, 7, id, sealed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatal("round trip changed the data")
			}

			// Appending to a non-empty dst keeps the prefix.
			prefix := []byte("prefix")
			sealed2 := Seal(append([]byte(nil), prefix...), key, 7, id, pt)
			if !bytes.HasPrefix(sealed2, prefix) {
				t.Fatal("Seal lost dst's contents")
			}
			got2, err := Open(append([]byte(nil), prefix...), key, 7, id, sealed2[len(prefix):])
			if err != nil || !bytes.Equal(got2, append(append([]byte(nil), prefix...), pt...)) {
				t.Fatalf("Open with a prefix dst: %v", err)
			}

			// In place, as cipher.AEAD allows: Seal(pt[:0], ...), Open(ct[:0], ...).
			buf := make([]byte, n, n+Overhead)
			copy(buf, pt)
			ct := Seal(buf[:0], key, 7, id, buf)
			if &ct[0] != &buf[:1][0] {
				t.Fatal("in-place Seal reallocated although capacity sufficed")
			}
			pt2, err := Open(ct[:0], key, 7, id, ct)
			if err != nil || !bytes.Equal(pt2, pt) {
				t.Fatalf("in-place Open: %v", err)
			}
			// And the restic-style in place: dst = sealed[NonceSize:NonceSize].
			ct = Seal(nil, key, 7, id, pt)
			pt3, err := Open(ct[NonceSize:NonceSize], key, 7, id, ct)
			if err != nil || !bytes.Equal(pt3, pt) {
				t.Fatalf("Open into sealed[NonceSize:NonceSize]: %v", err)
			}
		})
	}
}

func TestOpenDetectsEveryTamperedByte(t *testing.T) {
	key := testKey("aead")
	id := []byte{1, 2, 3}
	for _, n := range []int{0, 1, 15, 16, 17, 100} {
		sealed := Seal(nil, key, 3, id, pattern(n))
		for i := range sealed {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				if pt, err := Open(nil, key, 3, id, flip(sealed, i, x)); err != ErrAuthFailed || pt != nil {
					t.Fatalf("size %d: flipping byte %d by %#x: got (%q, %v), want (nil, ErrAuthFailed)", n, i, x, pt, err)
				}
			}
		}
		for l := range len(sealed) {
			if _, err := Open(nil, key, 3, id, sealed[:l]); err != ErrAuthFailed {
				t.Fatalf("size %d: truncated to %d bytes: %v", n, l, err)
			}
		}
		if _, err := Open(nil, key, 3, id, append(sealed, 0)); err != ErrAuthFailed {
			t.Fatalf("size %d: extended by a byte: %v", n, err)
		}
	}
}

func TestOpenRejectsWrongKeyTypeID(t *testing.T) {
	key := testKey("aead")
	id := []byte("chunk-0001")
	sealed := Seal(nil, key, 1, id, []byte("secret chunk"))
	cases := []struct {
		name string
		key  *[KeySize]byte
		typ  byte
		id   []byte
	}{
		{"wrong key", testKey("other"), 1, id},
		{"wrong type", key, 2, id},
		{"wrong ID", key, 1, []byte("chunk-0002")},
		{"ID prefix", key, 1, id[:len(id)-1]},
		{"ID extended", key, 1, append(append([]byte(nil), id...), 0)},
		{"no ID", key, 1, nil},
		// The type byte is not just the ID's first byte: shifting a byte
		// between them must fail.
		{"type and ID shifted", key, 'c', append([]byte{1}, id[1:]...)},
	}
	for _, c := range cases {
		pt, err := Open(nil, c.key, c.typ, c.id, sealed)
		if !errors.Is(err, ErrAuthFailed) || pt != nil {
			t.Errorf("%s: got (%q, %v), want ErrAuthFailed", c.name, pt, err)
		}
	}
	if err := ErrAuthFailed.Error(); err != "failed to decrypt and authenticate, data may be corrupted or tampered with" {
		t.Errorf("ErrAuthFailed message changed: %q", err)
	}
}

func TestSealNoncesNeverRepeat(t *testing.T) {
	key := testKey("nonces")
	const n = 100_000
	seen := make(map[[NonceSize]byte]struct{}, n)
	var buf []byte
	for i := range n {
		buf = Seal(buf[:0], key, 1, nil, nil)
		var nonce [NonceSize]byte
		copy(nonce[:], buf)
		if _, dup := seen[nonce]; dup {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[nonce] = struct{}{}
	}
}

func TestRandomNonceAEADContract(t *testing.T) {
	a := NewRandomNonceAEAD(testKey("aead"))
	if a.NonceSize() != 0 || a.Overhead() != Overhead || Overhead != 40 {
		t.Fatalf("NonceSize %d, Overhead %d", a.NonceSize(), a.Overhead())
	}
	for _, f := range []func(){
		func() { a.Seal(nil, make([]byte, NonceSize), nil, nil) },
		func() { a.Open(nil, make([]byte, NonceSize), make([]byte, Overhead), nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a non-empty nonce did not panic")
				}
			}()
			f()
		}()
	}
	ct := a.Seal(nil, nil, []byte("x"), []byte("ad"))
	if _, err := a.Open(nil, nil, ct, []byte("AD")); err != ErrAuthFailed {
		t.Fatalf("wrong additional data: %v", err)
	}
}
