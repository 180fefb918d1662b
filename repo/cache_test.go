package repo

import (
	"crypto/rand"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestCachePackNumbers: blob entries name their pack by a number; every
// lookup finds its own pack's ID, a pack listed by two index files keeps
// one number, and the numbers survive closing and reopening.
func TestCachePackNumbers(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	randID := func() (id ID) {
		rand.Read(id[:])
		return id
	}
	packs := []ID{randID(), randID(), randID()}
	want := map[ID]PackedBlob{}
	file := func(ps ...ID) *IndexFile {
		f := &IndexFile{}
		for i, p := range ps {
			ip := IndexedPack{ID: p}
			for j := range 50 {
				b := Blob{Type: BlobData, ID: randID(), Offset: uint32(j * 1000), Length: 900, RawLen: uint32(2000 + i)}
				if j%2 == 1 {
					b.Framed, b.Inner, b.FrameRaw = true, uint32(j*10), 1<<18
				}
				ip.Blobs = append(ip.Blobs, b)
				want[b.ID] = PackedBlob{Blob: b, Pack: p}
			}
			f.Packs = append(f.Packs, ip)
		}
		return f
	}
	if err := c.addIndex("a", file(packs[0], packs[1])); err != nil {
		t.Fatal(err)
	}
	if err := c.addIndex("b", file(packs[2], packs[1])); err != nil {
		t.Fatal(err)
	}
	check := func(c *Cache) {
		t.Helper()
		for id, w := range want {
			got, ok := c.Lookup(id)
			if !ok || got != w {
				t.Fatalf("lookup %s: %+v %v, want %+v", id.Short(), got, ok, w)
			}
			if !c.Has(id) {
				t.Fatalf("Has(%s) is false", id.Short())
			}
		}
		if _, ok := c.Lookup(randID()); ok {
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
	c, err = OpenCache(dir)
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
	c, err := OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	var id ID
	rand.Read(id[:])
	f := &IndexFile{Packs: []IndexedPack{{ID: id, Blobs: []Blob{{Type: BlobData, ID: id, Length: 10, RawLen: 5}}}}}
	if err := c.addIndex("a", f); err != nil {
		t.Fatal(err)
	}
	c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("version"), []byte("2")) })
	c.Close()
	c, err = OpenCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Has(id) {
		t.Fatal("an entry of a cache of layout 2 survived opening it with layout " + cacheVersion)
	}
}
