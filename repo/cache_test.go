package repo

import (
	"crypto/rand"
	"slices"
	"testing"

	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
	bolt "go.etcd.io/bbolt"
)

// TestCachePackNumbers: blob entries name their pack by a number; every
// lookup finds its own pack's ID, a pack listed by two index files keeps
// one number, and the numbers survive closing and reopening.
func TestCachePackNumbers(t *testing.T) {
	dir := t.TempDir()
	c, err := openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	randID := func() (id ID) {
		rand.Read(id[:])
		return id
	}
	packs := []ID{randID(), randID(), randID()}
	want := map[ID]pack.PackedBlob{}
	verified := map[ID]bool{}
	file := func(v bool, ps ...ID) *index.File {
		f := &index.File{Verified: v}
		for i, p := range ps {
			ip := index.Pack{ID: p}
			for j := range 50 {
				b := pack.Blob{Type: pack.BlobData, ID: randID(), Offset: uint32(j * 1000), Length: 900, RawLen: uint32(2000 + i)}
				if j%2 == 1 {
					b.Framed, b.Inner, b.FrameRaw = true, uint32(j*10), 1<<18
				}
				ip.Blobs = append(ip.Blobs, b)
				want[b.ID] = pack.PackedBlob{Blob: b, Pack: p}
				verified[b.ID] = v
			}
			f.Packs = append(f.Packs, ip)
		}
		return f
	}
	// "a" is the master's (verified), "b" a writer's claim: a writer
	// deduplicates only against what "a" names.
	if err := c.addIndex("a", file(true, packs[0], packs[1])); err != nil {
		t.Fatal(err)
	}
	if err := c.addIndex("b", file(false, packs[2], packs[1])); err != nil {
		t.Fatal(err)
	}
	check := func(c *localCache) {
		t.Helper()
		for id, w := range want {
			got := mustCopies(t, c, id)
			if len(got) != 1 || got[0].PackedBlob != w {
				t.Fatalf("lookup %s: %+v, want %+v", id.Short(), got, w)
			}
			if v := verified[id]; mustHas(t, c, id) != v || got[0].Verified != v {
				t.Fatalf("Has(%s) = %v, verified copy %v, pack %d", id.Short(), mustHas(t, c, id), got[0].Verified, slices.Index(packs, w.Pack))
			}
		}
		if got := mustCopies(t, c, randID()); len(got) != 0 {
			t.Fatal("an unknown ID was found")
		}
		var n int
		c.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketPacks).Stats().KeyN
			return nil
		})
		if n != len(packs) {
			t.Fatalf("%d pack numbers for %d packs", n, len(packs))
		}
	}
	check(c)
	c.Close()
	c, err = openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	check(c)
}

// TestCacheOfOtherLayoutIsRebuilt: a cache written in another layout is
// emptied when opened, never misread.
func TestCacheOfOtherLayoutIsRebuilt(t *testing.T) {
	dir := t.TempDir()
	c, err := openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var id ID
	rand.Read(id[:])
	f := &index.File{Packs: []index.Pack{{ID: id, Blobs: []pack.Blob{{Type: pack.BlobData, ID: id, Length: 10, RawLen: 5}}}}}
	if err := c.addIndex("a", f); err != nil {
		t.Fatal(err)
	}
	c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("version"), []byte("2")) })
	c.Close()
	c, err = openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if mustHas(t, c, id) {
		t.Fatal("an entry of a cache of layout 2 survived opening it with layout " + cacheVersion)
	}
}

func mustCopies(t testing.TB, c *localCache, id ID) []blobCopy {
	t.Helper()
	copies, err := c.Copies(id)
	if err != nil {
		t.Fatal(err)
	}
	return copies
}

func mustHas(t testing.TB, c *localCache, id ID) bool {
	t.Helper()
	ok, err := c.Has(id)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestCacheReadErrorsReported: a cache that cannot be read says so; no
// lookup takes the failure for "not cached" (a writer would then chain
// or deduplicate on a guess).
func TestCacheReadErrorsReported(t *testing.T) {
	c, err := openCacheDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var id ID
	rand.Read(id[:])
	if _, err := c.Has(id); err == nil {
		t.Error("Has on a closed cache: no error")
	}
	if _, err := c.Copies(id); err == nil {
		t.Error("Copies on a closed cache: no error")
	}
	if _, _, err := c.Original(id); err == nil {
		t.Error("Original on a closed cache: no error")
	}
	if _, _, _, err := c.head(id[:]); err == nil {
		t.Error("head on a closed cache: no error")
	}
	if _, err := c.scanned(id); err == nil {
		t.Error("scanned on a closed cache: no error")
	}
}
