package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"os"
	"path/filepath"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Cache is the local bbolt cache of a repository's index (chunk ID → pack,
// offset, length) and of the originals already ingested. It is only ever
// a copy: a missing, stale or damaged cache is rebuilt from the
// repository, never an error.
type Cache struct {
	db   *bolt.DB
	path string
	temp bool // a private cache made because the shared one was busy
}

var (
	bucketBlobs     = []byte("blobs")     // ID → pack number | type | offset | length | raw length ...
	bucketPacks     = []byte("packs")     // pack number → pack ID
	bucketPackNums  = []byte("packnums")  // pack ID → pack number
	bucketIndexes   = []byte("indexes")   // index file name → nothing
	bucketOriginals = []byte("originals") // original tag → snapshot name
	bucketSnapshots = []byte("snapshots") // snapshot name → nothing (seen)
	bucketMeta      = []byte("meta")
)

// cacheVersion is the cache's layout; a cache of another layout is
// rebuilt. 2: framed entries; 3: pack numbers in blob entries (a third
// smaller: a writer looks up every chunk of a night's backup, so the
// cache's pages it touches are most of its resident memory).
const cacheVersion = "3"

// indexBuckets are the buckets that copy the repository's index files.
var indexBuckets = [][]byte{bucketBlobs, bucketPacks, bucketPackNums, bucketIndexes}

// OpenCache opens (or makes) the cache in dir. When another process holds
// it, a private temporary cache is used instead: concurrent ingests each
// have a working cache.
func OpenCache(dir string) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Private caches of processes that died: no one holds their lock.
	if left, _ := filepath.Glob(filepath.Join(dir, "cache-*.db")); len(left) > 0 {
		for _, p := range left {
			if unlock, ok := tryFlockFile(p); ok {
				os.Remove(p)
				unlock()
			}
		}
	}
	path := filepath.Join(dir, "cache.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	temp := false
	if errors.Is(err, berrors.ErrTimeout) {
		f, terr := os.CreateTemp(dir, "cache-*.db")
		if terr != nil {
			return nil, terr
		}
		f.Close()
		path, temp = f.Name(), true
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	}
	if err != nil && !temp {
		// A damaged cache: start afresh.
		os.Remove(path)
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	}
	if err != nil {
		return nil, fmt.Errorf("opening the cache %s: %w", path, err)
	}
	c := &Cache{db: db, path: path, temp: temp}
	if err := c.init(); err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cache) init() error {
	return c.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get([]byte("version")); v != nil && string(v) != cacheVersion {
			// Another layout: drop everything and rebuild.
			for _, b := range append(slices.Clone(indexBuckets), bucketOriginals, bucketSnapshots) {
				if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
			}
		}
		if err := meta.Put([]byte("version"), []byte(cacheVersion)); err != nil {
			return err
		}
		for _, b := range append(slices.Clone(indexBuckets), bucketOriginals, bucketSnapshots) {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the cache (and removes a private temporary one).
func (c *Cache) Close() error {
	err := c.db.Close()
	if c.temp {
		os.Remove(c.path)
	}
	return err
}

// encodeLoc is a blob's cache value: its pack's number | its index entry
// without the chunk ID (the key).
func encodeLoc(packNum uint64, b Blob) []byte {
	e := appendBlob(make([]byte, 0, 1+32+25), b)
	v := binary.AppendUvarint(make([]byte, 0, 10+len(e)-32), packNum)
	v = append(v, e[0])
	return append(v, e[1+32:]...)
}

// decodeLoc reads a blob's cache value.
func decodeLoc(id ID, v []byte) (packNum uint64, b Blob, ok bool) {
	num, n := binary.Uvarint(v)
	if n <= 0 || len(v) < n+1 {
		return 0, b, false
	}
	e := make([]byte, 0, 1+32+len(v))
	e = append(e, v[n])
	e = append(e, id[:]...)
	e = append(e, v[n+1:]...)
	b, err := readBlob(bytes.NewReader(e))
	if err != nil {
		return 0, b, false
	}
	return num, b, true
}

// packKey is a pack number as a key of the packs bucket.
func packKey(num uint64) []byte { return binary.BigEndian.AppendUint64(nil, num) }

// Lookup finds a blob.
func (c *Cache) Lookup(id ID) (PackedBlob, bool) {
	var p PackedBlob
	var ok bool
	c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBlobs).Get(id[:]); v != nil {
			// decodeLoc copies out of v.
			num, b, found := decodeLoc(id, v)
			if pid := tx.Bucket(bucketPacks).Get(packKey(num)); found && len(pid) == len(p.Pack) {
				p.Blob, ok = b, true
				copy(p.Pack[:], pid)
			}
		}
		return nil
	})
	return p, ok
}

// Has reports whether a blob is known.
func (c *Cache) Has(id ID) bool {
	var ok bool
	c.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketBlobs).Get(id[:]) != nil
		return nil
	})
	return ok
}

// addIndex records the blobs of an index file, and the file as seen.
func (c *Cache) addIndex(name string, f *IndexFile) error {
	// Insert in key order: bbolt fills pages in sequence instead of
	// splitting them at random places.
	type entry struct {
		pack int // in f.Packs
		blob Blob
	}
	var all []entry
	for i, p := range f.Packs {
		for _, bl := range p.Blobs {
			all = append(all, entry{i, bl})
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return bytes.Compare(a.blob.ID[:], b.blob.ID[:]) })
	return c.db.Update(func(tx *bolt.Tx) error {
		packs, nums := tx.Bucket(bucketPacks), tx.Bucket(bucketPackNums)
		num := make([]uint64, len(f.Packs))
		for i, p := range f.Packs {
			if v := nums.Get(p.ID[:]); v != nil {
				num[i], _ = binary.Uvarint(v)
				continue
			}
			n, err := packs.NextSequence()
			if err != nil {
				return err
			}
			if err := packs.Put(packKey(n), p.ID[:]); err != nil {
				return err
			}
			if err := nums.Put(p.ID[:], binary.AppendUvarint(nil, n)); err != nil {
				return err
			}
			num[i] = n
		}
		b := tx.Bucket(bucketBlobs)
		for _, e := range all {
			if err := b.Put(e.blob.ID[:], encodeLoc(num[e.pack], e.blob)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketIndexes).Put([]byte(name), nil)
	})
}

// Sync brings the cache up to date with the repository's index files:
// new ones are read; if any it knows has gone (prune), it starts over.
func (c *Cache) Sync(ctx context.Context, be backend.Backend, indexKey *[32]byte) error {
	present := map[string]bool{}
	if err := list(ctx, be, backend.TypeIndex, func(name string, _ int64) error {
		present[name] = true
		return nil
	}); err != nil {
		return err
	}
	var known []string
	c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndexes).ForEach(func(k, _ []byte) error {
			known = append(known, string(k))
			return nil
		})
	})
	seen := map[string]bool{}
	stale := false
	for _, k := range known {
		seen[k] = true
		if !present[k] {
			stale = true
		}
	}
	if stale {
		if err := c.reset(indexBuckets...); err != nil {
			return err
		}
		seen = map[string]bool{}
	}
	for name := range present {
		if seen[name] {
			continue
		}
		f, err := loadIndexFile(ctx, be, name, indexKey)
		if err != nil {
			return err
		}
		if err := c.addIndex(name, f); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cache) reset(buckets ...[]byte) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Original returns the snapshot that holds an original, by its tag.
func (c *Cache) Original(tag ID) (string, bool) {
	var name string
	c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketOriginals).Get(tag[:]); v != nil {
			name = string(v)
		}
		return nil
	})
	return name, name != ""
}

// syncSnapshots records the originals of snapshots from their envelopes
// (which every key can read); gone snapshots are dropped.
func (c *Cache) syncSnapshots(ctx context.Context, be backend.Backend) error {
	present := map[string]bool{}
	if err := list(ctx, be, backend.TypeSnapshot, func(name string, _ int64) error {
		present[name] = true
		return nil
	}); err != nil {
		return err
	}
	known := map[string]bool{}
	c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, _ []byte) error {
			known[string(k)] = true
			return nil
		})
	})
	for k := range known {
		if !present[k] {
			if err := c.reset(bucketSnapshots, bucketOriginals); err != nil {
				return err
			}
			known = map[string]bool{}
			break
		}
	}
	for name := range present {
		if known[name] {
			continue
		}
		env, err := loadEnvelope(ctx, be, name)
		if err != nil {
			return err
		}
		if err := c.db.Update(func(tx *bolt.Tx) error {
			if err := tx.Bucket(bucketOriginals).Put(env.Original[:], []byte(name)); err != nil {
				return err
			}
			return tx.Bucket(bucketSnapshots).Put([]byte(name), nil)
		}); err != nil {
			return err
		}
	}
	return nil
}
