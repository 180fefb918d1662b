package index

import (
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/internal/pack"
)

// TestRoundTrip: index files of every form read back as written; a file
// that says it is verified must carry the master's signature, not any.
func TestRoundTrip(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(p ed25519.PrivateKey) func([]byte) ([]byte, error) {
		return func(b []byte) ([]byte, error) { return crypto.Sign(p, Context, b) }
	}
	var key [32]byte
	key[3] = 7
	blobs := []pack.Blob{{Type: pack.BlobData, ID: pack.ID{1}, Offset: 56, Length: 100, RawLen: 80}}
	for _, f := range []*File{
		{Entries: pack.EntriesLong, Packs: []Pack{{ID: pack.ID{9}, Blobs: blobs}}},
		{Entries: pack.EntriesShort, Packs: []Pack{{ID: pack.ID{9}, Blobs: []pack.Blob{{Type: pack.BlobData, ID: pack.ID{1}, Offset: 56, Length: 100}}}}},
		{Entries: pack.EntriesLong, Verified: true, Packs: []Pack{{ID: pack.ID{9}, Blobs: blobs}}, Supersedes: []pack.ID{{5}}},
	} {
		sealed, err := f.Seal(&key, sign(priv))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Open(sealed, &key, pub)
		if err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("read %+v, wrote %+v", got, f)
		}
		if f.Verified {
			if _, err := Open(sealed, &key, otherPub); !errors.Is(err, ErrUnsigned) {
				t.Fatalf("a verified file opened with another master's key: %v", err)
			}
			forged, err := f.Seal(&key, sign(otherPriv))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Open(forged, &key, pub); !errors.Is(err, ErrUnsigned) {
				t.Fatalf("a verified file signed by another key: %v", err)
			}
		}
	}
	if _, err := (&File{Verified: true}).Marshal(nil); err == nil {
		t.Fatal("a verified file marshalled without a signature")
	}
}
