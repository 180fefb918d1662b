package repo

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"
)

// What each role learns (SECURITY.md, "What each key and the storage
// learn"), shown on a repository of text and bulk streams.

// padded reports whether n is a size PADME produces (a fixed point).
func padded(n int) bool { return n >= 0 && crypto.PadmeLen(uint64(n)) == uint64(n) }

// TestLeakWriteKeyLearnsPaddedSizesOnly: with the index key a write key
// reads every index file and pack trailer. In version 3 their entries say
// which chunks exist and where their sealed object is, and its size —
// padded (PADME) plus the AEAD's fixed overhead — never a chunk's length
// or its place in a frame; the chunks of a frame are listed in the order
// of their IDs, not of the stream.
func TestLeakWriteKeyLearnsPaddedSizesOnly(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	ingest(t, w, "night", sqlLike(5, 600<<10), randBytes(6, 300<<10))
	if w.cfg.Version < 3 {
		t.Fatalf("a new repository is version %d", w.cfg.Version)
	}
	var entries []pack.Blob
	for _, name := range listNames(t, be, backend.TypeIndex) {
		f, err := loadIndexFile(ctx, be, name, &k.write.IndexKey, w.cfg.master.SignPub)
		if err != nil {
			t.Fatal(err)
		}
		if f.Entries != pack.EntriesShort {
			t.Fatalf("index/%s has long entries", name)
		}
		for _, p := range f.Packs {
			entries = append(entries, p.Blobs...)
			_, trailer, err := pack.ReadTrailer(ctx, be, p.ID, &k.write.IndexKey)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, trailer...)
			checkFrameOrder(t, trailer)
		}
	}
	if len(entries) == 0 {
		t.Fatal("no entries")
	}
	framed := 0
	for _, e := range entries {
		if e.RawLen != 0 || e.Inner != 0 || e.FrameRaw != 0 {
			t.Fatalf("an entry a write key reads says a chunk's length or place: %+v", e)
		}
		if !padded(int(e.Length) - crypto.Overhead) {
			t.Fatalf("an entry's sealed length %d is not a padded size plus %d", e.Length, crypto.Overhead)
		}
		if e.Framed {
			framed++
		}
	}
	if framed == 0 {
		t.Fatal("no framed chunks: the test shows nothing")
	}
}

// checkFrameOrder fails unless the entries of each frame are sorted by ID.
func checkFrameOrder(t *testing.T, blobs []pack.Blob) {
	t.Helper()
	byFrame := map[uint32][]ID{}
	var order []uint32
	for _, b := range blobs {
		if !b.Framed {
			continue
		}
		if _, ok := byFrame[b.Offset]; !ok {
			order = append(order, b.Offset)
		}
		byFrame[b.Offset] = append(byFrame[b.Offset], b.ID)
	}
	for _, off := range order {
		if !slices.IsSortedFunc(byFrame[off], compareID) {
			t.Fatalf("the frame at %d lists its chunks in stream order", off)
		}
	}
}

// TestLeakSnapshotBodiesPadded: the sealed body of a snapshot, which every
// key and the storage see the size of, holds a PADME-padded manifest.
func TestLeakSnapshotBodiesPadded(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	ingest(t, w, "a", sqlLike(1, 10_000))
	ingest(t, w, "bb", sqlLike(2, 20_000), randBytes(3, 5000))
	for _, name := range listNames(t, be, backend.TypeSnapshot) {
		env, err := loadEnvelope(ctx, be, name)
		if err != nil {
			t.Fatal(err)
		}
		if env.Cert == nil {
			t.Fatal("a version 3 snapshot without the writer's certificate")
		}
		if n := len(env.Body) - crypto.SealedOverhead(2); !padded(n) {
			t.Fatalf("snapshot %s: the sealed manifest of %d bytes is not padded", name[:8], n)
		}
	}
}

// TestLeakWriteKeyOpensNothing: a write key cannot open what it stored: no
// chunk, chunk list or manifest (it holds no private box key, and its
// sessions' keys are gone when they end).
func TestLeakWriteKeyOpensNothing(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	id := ingest(t, w, "night", sqlLike(7, 100_000))
	s, err := w.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest != nil {
		t.Fatal("the write key opened a manifest")
	}
	if _, err := w.OpenStream(ctx, StreamRef{}); err == nil {
		t.Fatal("the write key opened a stream")
	}
	// Not the session of any pk (no key to derive its data or meta key).
	br := &blobReader{r: w, keys: map[ID]*crypto.SessionKeys{}}
	pk := indexedPacks(t, open(t, be, k.master))[0].ID
	if _, err := br.sessionKeys(ctx, pk); !errors.Is(err, ErrPermission) {
		t.Fatalf("the write key opened a pk's session: %v", err)
	}
}
