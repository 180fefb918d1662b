package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"testing"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/crypto"
)

// Hostile input: counts and claims read from storage bound what is
// allocated and how long a walk takes, whatever the writer put there.

// allocated returns the bytes allocated while fn runs (this goroutine and
// any other; callers keep the rest of the process quiet).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestIndexFileCountBoundsAllocation: a count in an index file was only
// checked against the bytes left, but each entry decodes into a 48-byte
// Blob: an index file of 256 MiB could make its reader allocate 12 GiB.
// Counts are now checked against the smallest encoding of an entry.
func TestIndexFileCountBoundsAllocation(t *testing.T) {
	var key [32]byte
	const n = 1 << 20
	plain := []byte(index.Magic1)
	plain = binary.AppendUvarint(plain, 1)
	plain = append(plain, make([]byte, 32)...)
	plain = binary.AppendUvarint(plain, n) // claims n blobs...
	plain = append(plain, make([]byte, n)...)
	sealed := crypto.Seal(nil, &key, index.ObjType, nil, plain) // ...in n bytes
	var err error
	got := allocated(func() { _, err = index.Open(sealed, &key, nil) })
	if err == nil {
		t.Fatal("a truncated index file was accepted")
	}
	if limit := uint64(4 * len(sealed)); got > limit {
		t.Errorf("opening a %d-byte index file allocated %d bytes (limit %d)", len(sealed), got, limit)
	}
}

// TestPackTrailerCountBoundsAllocation: the same for a pack's trailer.
func TestPackTrailerCountBoundsAllocation(t *testing.T) {
	var key [32]byte
	const n = 1 << 20
	plain := binary.AppendUvarint(nil, n)
	plain = append(plain, make([]byte, n)...)
	be := newMemBackend()
	pk := syntheticPack(&key, 0, plain)
	id := ID{1}
	be.Put(backend.Handle{Type: backend.TypeData, Name: id.String()}, pk)
	var err error
	got := allocated(func() { _, _, err = pack.ReadTrailer(context.Background(), be, id, &key) })
	if err == nil {
		t.Fatal("a bad trailer was accepted")
	}
	if limit := uint64(4 * len(pk)); got > limit {
		t.Errorf("reading a %d-byte pk trailer allocated %d bytes (limit %d)", len(pk), got, limit)
	}
}

// syntheticPack builds a pack of bodyLen zero bytes and a trailer sealing
// plain with key (writer ID and ephemeral key zero).
func syntheticPack(key *[32]byte, bodyLen int, plain []byte) []byte {
	return syntheticPackOf(pack.EntriesShort, key, bodyLen, plain)
}

// syntheticPackOf is syntheticPack with the trailer's entry format.
func syntheticPackOf(f pack.EntryFormat, key *[32]byte, bodyLen int, plain []byte) []byte {
	b := []byte(pack.Magic2)
	if f == pack.EntriesLong {
		b = []byte(pack.Magic1)
	}
	b = append(b, make([]byte, 32+16)...)
	hdr := bytes.Clone(b)
	b = append(b, make([]byte, bodyLen)...)
	tr := crypto.Seal(nil, key, pack.ObjTrailer, hdr, plain)
	b = append(b, tr...)
	return binary.LittleEndian.AppendUint32(b, uint32(len(tr)))
}

// TestHostileTreeWalkIsBounded: a chunk-list tree signed by a compromised
// writer could name one list chunk 1024 times per level, so that a walk
// of depth 5 would visit 1024^4 chunks. List entries now carry the bytes
// they cover and a walk checks them against the stream's length, so such
// a tree fails after a few loads; a tree whose counts disagree fails too.
func TestHostileTreeWalkIsBounded(t *testing.T) {
	ctx := context.Background()
	var leafID, innerID ID
	leafID[0], innerID[0] = 1, 2
	var leaf, inner []byte
	var data ID
	data[0] = 9
	leaf = append(append(leaf, data[:]...), 100, 0, 0, 0) // one chunk of 100 bytes
	for range 1024 {
		inner = append(inner, leafID[:]...)
		inner = binary.LittleEndian.AppendUint64(inner, 100)
	}
	chunks := map[ID][]byte{leafID: leaf, innerID: inner}
	var selfID ID // a level naming itself 1024 times
	selfID[0] = 3
	var self []byte
	for range 1024 {
		self = append(self, innerID[:]...)
		self = binary.LittleEndian.AppendUint64(self, 1024*100)
	}
	chunks[selfID] = self
	loads := 0
	load := func(id ID) ([]byte, error) {
		loads++
		if b, ok := chunks[id]; ok {
			return b, nil
		}
		return nil, backend.ErrNotFound
	}
	count := func(listEntry) error { return nil }

	// The honest reading of a level-2 tree: 1024 chunks of 100 bytes.
	if err := walkTree(ctx, 2, innerID, 1024*100, load, count); err != nil {
		t.Fatalf("a consistent tree: %v", err)
	}
	// A stream length that disagrees.
	if err := walkTree(ctx, 2, innerID, 1024*100+1, load, count); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a tree shorter than its stream: %v", err)
	}
	// The self-similar tree, 5 levels deep, claimed as a short stream.
	loads = 0
	var deep ID
	deep[0] = 4
	chunks[deep] = append(append([]byte(nil), selfID[:]...), binary.LittleEndian.AppendUint64(nil, 1024*1024*100)...)
	// (selfID's entries name innerID at level 2 under a level-3 chunk;
	// the walk meets a count it cannot reconcile before long.)
	err := walkTree(ctx, 4, deep, 1000, load, count)
	if !errors.Is(err, ErrCorrupt) || loads > 3 {
		t.Fatalf("hostile tree: %v after %d loads", err, loads)
	}
	// An entry whose count disagrees with its subtree.
	bad := append([]byte(nil), inner[:40]...)
	binary.LittleEndian.PutUint64(bad[32:], 99)
	var badID ID
	badID[0] = 5
	chunks[badID] = bad
	if err := walkTree(ctx, 2, badID, 99, load, count); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an entry claiming 99 bytes over a 100-byte subtree: %v", err)
	}
}

// TestClaimOfHugeBlobRefused: a reader allocated whatever length an index
// entry claimed (up to 4 GiB) before reading the range, so a lying index
// could make a restore allocate that much. An entry whose sealed object is
// larger than any blob or frame can be is refused as it is parsed.
func TestClaimOfHugeBlobRefused(t *testing.T) {
	var key [32]byte
	for _, n := range []uint32{pack.MaxSealedObject + 1, 1 << 31, 0} {
		b := pack.Blob{Type: pack.BlobData, ID: ID{1}, Offset: uint32(pack.HeaderSize), Length: n, Framed: true}
		f := &index.File{Entries: pack.EntriesShort, Packs: []index.Pack{{ID: ID{2}, Blobs: []pack.Blob{b}}}}
		sealed, err := f.Seal(&key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := index.Open(sealed, &key, nil); err == nil {
			t.Errorf("an entry claiming a sealed object of %d bytes was accepted", n)
		}
	}
	ok := pack.Blob{Type: pack.BlobData, ID: ID{1}, Offset: uint32(pack.HeaderSize), Length: pack.MaxSealedObject, Framed: true}
	f := &index.File{Entries: pack.EntriesShort, Packs: []index.Pack{{ID: ID{2}, Blobs: []pack.Blob{ok}}}}
	sealed, _ := f.Seal(&key, nil)
	if _, err := index.Open(sealed, &key, nil); err != nil {
		t.Errorf("the largest possible object was refused: %v", err)
	}
}
