package pack

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
)

// TestEntryRoundTrip: every entry form reads back as written; a short
// entry drops the lengths and places a write key must not learn.
func TestEntryRoundTrip(t *testing.T) {
	entries := []Blob{
		{Type: BlobData, ID: ID{1}, Offset: 56, Length: 1000, RawLen: 900},
		{Type: BlobList, ID: ID{2}, Offset: 1056, Length: 60, RawLen: 40},
		{Type: BlobData, ID: ID{3}, Offset: 1116, Length: 5000, Framed: true, RawLen: 300, Inner: 100, FrameRaw: 4800},
	}
	for _, f := range []EntryFormat{EntriesLong, EntriesShort} {
		for _, e := range entries {
			b := AppendEntry(nil, e, f)
			got, err := ReadEntry(bytes.NewReader(b), f)
			if err != nil {
				t.Fatalf("format %d, %+v: %v", f, e, err)
			}
			want := e
			if f == EntriesShort {
				want.RawLen, want.Inner, want.FrameRaw = 0, 0, 0
			}
			if got != want {
				t.Fatalf("format %d: read %+v, wrote %+v", f, got, want)
			}
		}
	}
	bad := AppendEntry(nil, Blob{Type: BlobData, ID: ID{4}, Offset: 56, Length: MaxSealedObject + 1}, EntriesShort)
	if _, err := ReadEntry(bytes.NewReader(bad), EntriesShort); err == nil {
		t.Fatal("an entry claiming a sealed object larger than any was read")
	}
	if _, err := ReadEntry(bytes.NewReader([]byte{7}), EntriesShort); err == nil {
		t.Fatal("an unknown blob type was read")
	}
}

// TestBuilderAndTrailer: a pack built with blobs and a frame reads back
// its header and trailer; with another index key, or damaged, it does not.
func TestBuilderAndTrailer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	be := backend.OpenLocal(dir)
	var key, other [32]byte
	key[0], other[0] = 1, 2
	for _, f := range []EntryFormat{EntriesLong, EntriesShort} {
		b, err := NewBuilder(t.TempDir(), [32]byte{9}, crypto.KeyID{8}, f)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Add(BlobList, ID{1}, bytes.Repeat([]byte{1}, 100), 60); err != nil {
			t.Fatal(err)
		}
		frame := []Blob{{ID: ID{0xff}, RawLen: 10}, {ID: ID{0x10}, RawLen: 20, Inner: 10}}
		if err := b.AddFrame(bytes.Repeat([]byte{2}, 200), 30, frame); err != nil {
			t.Fatal(err)
		}
		id, path, err := b.Finish(&key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Save(ctx, backend.Handle{Type: backend.TypeData, Name: id.String()}, backend.Bytes(data)); err != nil {
			t.Fatal(err)
		}
		h, blobs, err := ReadTrailer(ctx, be, id, &key)
		if err != nil {
			t.Fatal(err)
		}
		if h.Entries != f || h.Writer != (crypto.KeyID{8}) || h.Ephemeral != [32]byte{9} {
			t.Fatalf("header %+v", h)
		}
		if len(blobs) != 3 || blobs[0].Offset != uint32(HeaderSize) || blobs[1].Offset != uint32(HeaderSize)+100 || !blobs[1].Framed {
			t.Fatalf("trailer %+v", blobs)
		}
		if f == EntriesShort && (blobs[1].ID != ID{0x10} || blobs[2].ID != ID{0xff} || blobs[1].RawLen != 0) {
			t.Fatalf("short entries of a frame keep stream order or lengths: %+v", blobs[1:])
		}
		if f == EntriesLong && (blobs[1].ID != ID{0xff} || blobs[2].Inner != 10 || blobs[2].FrameRaw != 30) {
			t.Fatalf("long entries of a frame: %+v", blobs[1:])
		}
		if _, _, err := ReadTrailer(ctx, be, id, &other); err == nil {
			t.Fatal("a trailer opened with another index key")
		}
	}
	if _, err := ParseHeader([]byte("LRDPACK9" + string(make([]byte, 48)))); err == nil {
		t.Fatal("a header of an unknown magic parsed")
	}
}
