package repo

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

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
	found := []bool{true}
	if err := c.HasMany([]ID{id}, found); err == nil || !found[0] {
		t.Errorf("HasMany on a closed cache: %v, answer %v (want an error, the answer untouched)", err, found[0])
	}
	copies := [][]blobCopy{{{Own: true}}}
	if err := c.CopiesMany([]ID{id}, copies); err == nil || len(copies[0]) != 1 {
		t.Errorf("CopiesMany on a closed cache: %v, answer %+v (want an error, the answer untouched)", err, copies[0])
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

// TestCacheBatchLookups: HasMany and CopiesMany answer each position of a
// batch as Has and Copies answer its ID alone, on a cache of verified,
// own, claimed-only and trailer copies, damaged entries, neighbouring IDs
// and absent ones; in any order, with repeats, and for empty batches. A
// writer deduplicates only against verified copies and its own packs,
// whichever way it asks.
func TestCacheBatchLookups(t *testing.T) {
	c, err := openCacheDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	randID := func() (id ID) {
		rand.Read(id[:])
		return id
	}
	ids := func(n int) []ID {
		out := make([]ID, n)
		for i := range out {
			out[i] = randID()
		}
		return out
	}
	blobs := func(chunks []ID, length uint32) []pack.Blob {
		var out []pack.Blob
		for j, id := range chunks {
			b := pack.Blob{Type: pack.BlobData, ID: id, Offset: uint32(j) * 1000, Length: length, RawLen: 2 * length}
			if j%3 == 1 {
				b.Framed, b.Inner, b.FrameRaw = true, uint32(j*10), 1<<18
			}
			out = append(out, b)
		}
		return out
	}
	verified, own, claimed, trailer, absent := ids(30), ids(30), ids(30), ids(30), ids(30)
	// Chunks with copies of several sources: verified (in a claim too),
	// own (in a trailer too), claimed and in a trailer (no dedup).
	vc, ot, ct := ids(5), ids(5), ids(5)
	// Chunks one bit from a present one: a prefix scan must stop at the
	// ID's end.
	var near []ID
	for _, id := range verified[:5] {
		id[31] ^= 1
		near = append(near, id)
	}
	packA, packO, packB, packT := randID(), randID(), randID(), randID()
	if err := c.addIndex("a", &index.File{Verified: true, Packs: []index.Pack{{ID: packA, Blobs: blobs(slices.Concat(verified, vc), 900)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.markOwn(packO); err != nil {
		t.Fatal(err)
	}
	if err := c.addIndex("o", &index.File{Packs: []index.Pack{{ID: packO, Blobs: blobs(slices.Concat(own, ot), 800)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.addIndex("b", &index.File{Packs: []index.Pack{{ID: packB, Blobs: blobs(slices.Concat(claimed, vc, ct), 700)}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.addTrailer(index.Pack{ID: packT, Blobs: blobs(slices.Concat(trailer, ot, ct), 600)}); err != nil {
		t.Fatal(err)
	}
	// Damaged entries are passed by: a value that does not decode (of an
	// absent chunk and of a verified one), and a copy in a pack of no
	// known number.
	damaged := absent[0]
	if err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if err := b.Put(blobKey(damaged, 1, 0), []byte{copyVerified, byte(pack.BlobData), 0xff}); err != nil {
			return err
		}
		if err := b.Put(blobKey(verified[1], 1, 1<<20), []byte{copyVerified}); err != nil {
			return err
		}
		return b.Put(blobKey(claimed[2], 999, 0), encodeLoc(0, pack.Blob{Type: pack.BlobData, ID: claimed[2], Length: 10, RawLen: 5}))
	}); err != nil {
		t.Fatal(err)
	}

	dedup := map[ID]bool{}
	copies := map[ID]int{}
	for _, id := range slices.Concat(verified, own) {
		dedup[id], copies[id] = true, 1
	}
	for _, id := range slices.Concat(claimed, trailer) {
		copies[id] = 1
	}
	for _, id := range slices.Concat(vc, ot) {
		dedup[id], copies[id] = true, 2
	}
	for _, id := range ct {
		copies[id] = 2
	}
	all := slices.Concat(verified, own, claimed, trailer, absent, vc, ot, ct, near)
	for _, id := range all {
		if mustHas(t, c, id) != dedup[id] {
			t.Fatalf("Has(%s) = %v, want %v", id.Short(), !dedup[id], dedup[id])
		}
		if got := mustCopies(t, c, id); len(got) != copies[id] {
			t.Fatalf("Copies(%s): %d copies, want %d", id.Short(), len(got), copies[id])
		}
	}

	// Batches: everything shuffled with repeats (a repeat next to its
	// first and far from it), one ID, two, and nothing.
	shuffled := slices.Clone(all)
	for i := range shuffled {
		j := int(randID()[0]) % (i + 1)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	repeats := slices.Concat(shuffled, shuffled[:7], []ID{shuffled[3], shuffled[3]}, shuffled[100:110])
	for _, batch := range [][]ID{repeats, all, {own[0]}, {absent[1], verified[0]}, {}, nil} {
		found := make([]bool, len(batch))
		if err := c.HasMany(batch, found); err != nil {
			t.Fatal(err)
		}
		got := make([][]blobCopy, len(batch))
		if err := c.CopiesMany(batch, got); err != nil {
			t.Fatal(err)
		}
		for i, id := range batch {
			if found[i] != mustHas(t, c, id) || found[i] != dedup[id] {
				t.Fatalf("batch of %d, position %d (%s): HasMany %v, Has %v, want %v", len(batch), i, id.Short(), found[i], mustHas(t, c, id), dedup[id])
			}
			if want := mustCopies(t, c, id); !reflect.DeepEqual(got[i], want) || len(want) != copies[id] {
				t.Fatalf("batch of %d, position %d (%s): CopiesMany %+v, Copies %+v (want %d copies)", len(batch), i, id.Short(), got[i], want, copies[id])
			}
			// Verified first, then own, then the rest.
			for j := 1; j < len(got[i]); j++ {
				a, b := got[i][j-1], got[i][j]
				if !a.Verified && b.Verified || !a.Verified && !a.Own && b.Own {
					t.Fatalf("copies of %s out of order: %+v", id.Short(), got[i])
				}
			}
		}
	}
	// A mismatched answer slice is refused, and left alone.
	found := []bool{true}
	if err := c.HasMany([]ID{absent[2], absent[3]}, found); err == nil || !found[0] {
		t.Errorf("HasMany with 1 answer for 2 IDs: %v, answer %v", err, found[0])
	}
	if err := c.CopiesMany([]ID{absent[2]}, nil); err == nil {
		t.Error("CopiesMany with no room for the answer: no error")
	}
}

// BenchmarkIndexLookup compares, on a cache of 200k copies (100k of them
// verified), 10k lookups one read transaction each (Has, Copies) with the
// same lookups in batches (HasMany of a stream's held chunks, CopiesMany
// of a read ahead's batch), half of them of absent chunks, in the order a
// stream would ask. It reports ns a lookup both ways and their ratio.
func BenchmarkIndexLookup(b *testing.B) {
	const entries, perPack, lookups = 200_000, 1000, 10_000
	c, err := openCacheDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.db.NoSync = true // building the cache is not what is measured
	rnd := mrand.New(mrand.NewPCG(1, 2))
	randID := func() (id ID) {
		for i := 0; i < len(id); i += 8 {
			binary.LittleEndian.PutUint64(id[i:], rnd.Uint64())
		}
		return id
	}
	var present []ID
	for p := 0; p < entries/perPack; p++ {
		ip := index.Pack{ID: randID()}
		for j := range perPack {
			id := randID()
			present = append(present, id)
			ip.Blobs = append(ip.Blobs, pack.Blob{Type: pack.BlobData, ID: id, Offset: uint32(j) * 1000, Length: 900, RawLen: 2000,
				Framed: true, Inner: uint32(j) * 100, FrameRaw: 1 << 18})
		}
		// Every other pack is in the master's verified index files.
		if err := c.addIndex(fmt.Sprint(p), &index.File{Verified: p%2 == 0, Packs: []index.Pack{ip}}); err != nil {
			b.Fatal(err)
		}
	}
	c.db.NoSync = false
	ids := make([]ID, lookups)
	for i := range ids {
		if i%2 == 0 {
			ids[i] = present[rnd.IntN(len(present))]
		} else {
			ids[i] = randID()
		}
	}
	// run times the lookups one by one (single) and batch by batch
	// (batched), both in each round (after a round that brings the
	// cache's pages in), and reports them.
	run := func(b *testing.B, size int, single func(ID) error, batched func([]ID) error) {
		timed := func(d *time.Duration, lookup func()) {
			start := time.Now()
			lookup()
			*d += time.Since(start)
		}
		singles := func() {
			for _, id := range ids {
				if err := single(id); err != nil {
					b.Fatal(err)
				}
			}
		}
		batches := func() {
			for rest := ids; len(rest) > 0; rest = rest[min(len(rest), size):] {
				if err := batched(rest[:min(len(rest), size)]); err != nil {
					b.Fatal(err)
				}
			}
		}
		singles()
		batches()
		var one, many time.Duration
		for b.Loop() {
			timed(&one, singles)
			timed(&many, batches)
		}
		n := float64(b.N * lookups)
		b.ReportMetric(float64(one.Nanoseconds())/n, "single-ns/lookup")
		b.ReportMetric(float64(many.Nanoseconds())/n, "batched-ns/lookup")
		b.ReportMetric(float64(one)/float64(many), "speedup")
	}
	b.Run("dedup", func(b *testing.B) {
		found := make([]bool, maxHeldChunks)
		run(b, maxHeldChunks, func(id ID) error {
			_, err := c.Has(id)
			return err
		}, func(batch []ID) error {
			return c.HasMany(batch, found[:len(batch)])
		})
	})
	b.Run("copies", func(b *testing.B) {
		out := make([][]blobCopy, lookupBatch)
		run(b, lookupBatch, func(id ID) error {
			_, err := c.Copies(id)
			return err
		}, func(batch []ID) error {
			return c.CopiesMany(batch, out[:len(batch)])
		})
	})
}
