package repo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// localCache is the local bbolt cache of a repository: every claimed copy of
// every chunk (from the index files and, after a scan, the pack trailers),
// which of them a writer may deduplicate against, and what this machine
// itself saw or did (its own packs, the snapshots it committed, when the
// master first saw each snapshot). The copy of the index is only ever a
// copy: a missing, stale or damaged cache is rebuilt from the repository,
// never an error. What this machine did cannot be rebuilt: without it a
// writer deduplicates less and forget keeps more, never the other way.
type localCache struct {
	db   *bolt.DB
	path string
	temp bool // a private cache made because the shared one was busy
}

var (
	// The repository's index (reset when an index file goes).
	bucketBlobs    = []byte("blobs")    // ID | pack number | offset → flags | entry
	bucketDedup    = []byte("dedup")    // ID → nothing: a writer may deduplicate against it
	bucketPacks    = []byte("packs")    // pack number → pack ID
	bucketPackNums = []byte("packnums") // pack ID → pack number
	bucketIndexes  = []byte("indexes")  // index file name → state (indexOK, indexBad)
	bucketScanned  = []byte("scanned")  // pack ID → nothing: its trailer's claims are in blobs
	// Snapshots seen (reset when a snapshot goes).
	bucketOriginals = []byte("originals") // original tag → snapshot name
	bucketSnapshots = []byte("snapshots") // snapshot name → nothing (seen)
	// What this machine did or saw (never reset).
	bucketOwn       = []byte("own")       // pack ID → nothing: a pack this machine saved
	bucketHeads     = []byte("heads")     // key ID → the last snapshot this machine committed with it
	bucketFirstSeen = []byte("firstseen") // snapshot name → when this machine first listed it (int64 Unix ns)
	bucketLockWait  = []byte("lockwait")  // key ID → when this machine first found its locks in the way
	bucketMeta      = []byte("meta")
)

// cacheVersion is the cache's layout; a cache of another layout is
// rebuilt. 2: framed entries; 3: pack numbers in blob entries; 4: every
// copy of a chunk, with where the claim came from, and a bucket of the
// chunks a writer may deduplicate against.
const cacheVersion = "4"

// indexBuckets are the buckets that copy the repository's index files.
var indexBuckets = [][]byte{bucketBlobs, bucketDedup, bucketPacks, bucketPackNums, bucketIndexes, bucketScanned}

// snapshotBuckets copy what the snapshots' envelopes say.
var snapshotBuckets = [][]byte{bucketOriginals, bucketSnapshots}

// localBuckets hold what this machine did or saw.
var localBuckets = [][]byte{bucketOwn, bucketHeads, bucketFirstSeen, bucketLockWait}

// Flags of a cached copy: where its claim came from.
const (
	copyVerified = 1 << 0 // a verified index file: the master decrypted it
	copyOwn      = 1 << 1 // a pack this machine saved
	copyTrailer  = 1 << 2 // a pack's trailer, read by a scan
)

// States of a cached index file name.
const (
	indexOK  = 0
	indexBad = 1 // junk or damaged: skipped, reported once
)

// openCacheDir opens (or makes) the cache in dir. When another process holds
// it, a private temporary cache is used instead: concurrent ingests each
// have a working cache.
func openCacheDir(dir string) (*localCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// Private caches of processes that died: no one holds their lock.
	if left, _ := filepath.Glob(filepath.Join(dir, "cache-*.db")); len(left) > 0 {
		for _, p := range left {
			if unlock, ok := tryFlockFile(p); ok {
				_ = os.Remove(p) // a leftover: the next open tries again
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
		if terr := f.Close(); terr != nil {
			return nil, terr
		}
		path, temp = f.Name(), true
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	}
	if err != nil && !temp {
		// A damaged cache: start afresh (if it cannot be removed, the
		// open below says why).
		_ = os.Remove(path)
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	}
	if err != nil {
		return nil, fmt.Errorf("opening the cache %s: %w", path, err)
	}
	c := &localCache{db: db, path: path, temp: temp}
	if err := c.init(); err != nil {
		_ = db.Close() // the error to report is init's
		return nil, err
	}
	return c, nil
}

func (c *localCache) init() error {
	return c.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		all := slices.Concat(indexBuckets, snapshotBuckets, localBuckets)
		if v := meta.Get([]byte("version")); v != nil && string(v) != cacheVersion {
			// Another layout: drop everything and rebuild.
			for _, b := range append(all, []byte("blobs")) {
				if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
					return err
				}
			}
		}
		if err := meta.Put([]byte("version"), []byte(cacheVersion)); err != nil {
			return err
		}
		for _, b := range all {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the cache (and removes a private temporary one).
func (c *localCache) Close() error {
	err := c.db.Close()
	if c.temp {
		err = errors.Join(err, os.Remove(c.path))
	}
	return err
}

// blobKey is a copy's key: the chunk ID, its pack's number and its offset,
// so that every claimed copy of a chunk has its own entry.
func blobKey(id ID, packNum uint32, offset uint32) []byte {
	k := make([]byte, 0, 40)
	k = append(k, id[:]...)
	k = binary.BigEndian.AppendUint32(k, packNum)
	return binary.BigEndian.AppendUint32(k, offset)
}

// encodeLoc is a copy's value: its flags and its entry without ID and
// offset (long form, whatever the repository's).
func encodeLoc(flags byte, b pack.Blob) []byte {
	v := make([]byte, 0, 2+20)
	v = append(v, flags)
	t := byte(b.Type)
	if b.Framed {
		t |= pack.FramedFlag
	}
	v = append(v, t)
	v = binary.AppendUvarint(v, uint64(b.Length))
	v = binary.AppendUvarint(v, uint64(b.RawLen))
	v = binary.AppendUvarint(v, uint64(b.Inner))
	return binary.AppendUvarint(v, uint64(b.FrameRaw))
}

// decodeLoc reads a copy's key and value.
func decodeLoc(k, v []byte) (packNum uint32, flags byte, b pack.Blob, ok bool) {
	if len(k) != 40 || len(v) < 2 {
		return 0, 0, b, false
	}
	copy(b.ID[:], k)
	packNum = binary.BigEndian.Uint32(k[32:])
	b.Offset = binary.BigEndian.Uint32(k[36:])
	flags = v[0]
	b.Framed = v[1]&pack.FramedFlag != 0
	b.Type = pack.BlobType(v[1] &^ pack.FramedFlag)
	r := bytes.NewReader(v[2:])
	var vals [4]uint32
	for i := range vals {
		x, err := binary.ReadUvarint(r)
		if err != nil || x > 1<<32-1 {
			return 0, 0, b, false
		}
		vals[i] = uint32(x)
	}
	b.Length, b.RawLen, b.Inner, b.FrameRaw = vals[0], vals[1], vals[2], vals[3]
	if !b.Type.Valid() || b.Check() != nil {
		return 0, 0, b, false
	}
	return packNum, flags, b, true
}

// blobCopy is a claimed copy of a chunk: where it is, and where the claim came
// from.
type blobCopy struct {
	pack.PackedBlob
	Verified bool // a verified index file (the master) vouches for it
	Own      bool // this machine saved its pack
}

// Copies returns every claimed copy of a chunk, those the master verified
// first, then this machine's own, then the rest. CopiesMany looks up many.
func (c *localCache) Copies(id ID) ([]blobCopy, error) {
	var out []blobCopy
	err := c.db.View(func(tx *bolt.Tx) error {
		out = copiesTx(tx, id, nil)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the cache: %w", err)
	}
	return out, nil
}

// CopiesMany sets out[i] to what Copies(ids[i]) returns, in one read
// transaction that visits the IDs in sorted order (neighbouring keys share
// the tree's pages). out must be as long as ids; on an error it is left
// as it was.
func (c *localCache) CopiesMany(ids []ID, out [][]blobCopy) error {
	if len(out) != len(ids) {
		return fmt.Errorf("cache: %d answers for %d chunks", len(out), len(ids))
	}
	if len(ids) == 0 {
		return nil
	}
	res := make([][]blobCopy, len(ids))
	err := c.db.View(func(tx *bolt.Tx) error {
		pids := map[uint32]ID{}
		for _, i := range sortedOrder(ids) {
			res[i] = copiesTx(tx, ids[i], pids)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the cache: %w", err)
	}
	copy(out, res)
	return nil
}

// copiesTx is Copies in a transaction; pids, when not nil, remembers the
// IDs of the pack numbers it read.
func copiesTx(tx *bolt.Tx, id ID, pids map[uint32]ID) []blobCopy {
	var out []blobCopy
	packs := tx.Bucket(bucketPacks)
	cur := tx.Bucket(bucketBlobs).Cursor()
	for k, v := cur.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = cur.Next() {
		num, flags, b, ok := decodeLoc(k, v)
		if !ok {
			continue
		}
		cp := blobCopy{PackedBlob: pack.PackedBlob{Blob: b}, Verified: flags&copyVerified != 0, Own: flags&copyOwn != 0}
		if pid, known := pids[num]; known {
			cp.Pack = pid
		} else {
			raw := packs.Get(binary.BigEndian.AppendUint64(nil, uint64(num)))
			if len(raw) != len(ID{}) {
				continue
			}
			copy(cp.Pack[:], raw)
			if pids != nil {
				pids[num] = cp.Pack
			}
		}
		out = append(out, cp)
	}
	rank := func(c blobCopy) int {
		switch {
		case c.Verified:
			return 0
		case c.Own:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(out, func(a, b blobCopy) int { return rank(a) - rank(b) })
	return out
}

// Has reports whether a writer may deduplicate against a chunk: a copy of
// it is verified by the master or in a pack this machine saved. Claims of
// other writers are never trusted for that: a thief of a write key could
// claim chunks it does not hold, and every later backup that deduplicated
// against them would miss them. HasMany looks up many.
func (c *localCache) Has(id ID) (bool, error) {
	var ok bool
	err := c.db.View(func(tx *bolt.Tx) error {
		ok = hasTx(tx, id)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading the cache: %w", err)
	}
	return ok, nil
}

// HasMany sets found[i] to what Has(ids[i]) returns, in one read
// transaction that visits the IDs in sorted order (neighbouring keys share
// the tree's pages). found must be as long as ids; on an error it is left
// as it was.
func (c *localCache) HasMany(ids []ID, found []bool) error {
	if len(found) != len(ids) {
		return fmt.Errorf("cache: %d answers for %d chunks", len(found), len(ids))
	}
	if len(ids) == 0 {
		return nil
	}
	res := make([]bool, len(ids))
	err := c.db.View(func(tx *bolt.Tx) error {
		for _, i := range sortedOrder(ids) {
			res[i] = hasTx(tx, ids[i])
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the cache: %w", err)
	}
	copy(found, res)
	return nil
}

// hasTx is Has in a transaction.
func hasTx(tx *bolt.Tx, id ID) bool {
	return tx.Bucket(bucketDedup).Get(id[:]) != nil
}

// sortedOrder returns the positions of ids in the order of the IDs.
func sortedOrder(ids []ID) []int {
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(ids[a][:], ids[b][:]) })
	return order
}

// packNum returns the number of a pack, made if new. In an Update.
func packNum(tx *bolt.Tx, id ID) (uint32, error) {
	nums := tx.Bucket(bucketPackNums)
	if v := nums.Get(id[:]); len(v) == 4 {
		return binary.BigEndian.Uint32(v), nil
	}
	packs := tx.Bucket(bucketPacks)
	n, err := packs.NextSequence()
	if err != nil {
		return 0, err
	}
	if n > 1<<32-1 {
		return 0, errors.New("cache: too many packs")
	}
	if err := packs.Put(binary.BigEndian.AppendUint64(nil, n), id[:]); err != nil {
		return 0, err
	}
	return uint32(n), nums.Put(id[:], binary.BigEndian.AppendUint32(nil, uint32(n)))
}

// cacheEntry is a copy of a blob to record: its key in the blobs bucket
// (chunk ID, pack number, offset), its location and flags.
type cacheEntry struct {
	key []byte
	val []byte
	id  ID
	f   byte
}

// maxTxEntries bounds the blobs one cache transaction writes. bbolt copies
// every page a write transaction touches into memory until it commits,
// and chunk IDs are random, so one transaction for a whole index file (or
// a night's new chunks) would touch nearly every leaf of the tree: memory
// that grows with the repository. Sorted and cut into transactions of this
// many, each touches a bounded stretch of the tree.
const maxTxEntries = 1024

// addPacks records the copies of packs' blobs, flagged flags (plus copyOwn
// for packs this cache's writer made), in transactions of at most
// maxTxEntries blobs; then, in the last one, runs done (nil: nothing). A
// crash between them leaves copies recorded that done would have marked
// as seen: the next sync records them again, which changes nothing.
func (c *localCache) addPacks(packs []index.Pack, flags byte, done func(tx *bolt.Tx) error) error {
	var all []cacheEntry
	err := c.db.Update(func(tx *bolt.Tx) error {
		own := tx.Bucket(bucketOwn)
		for _, p := range packs {
			num, err := packNum(tx, p.ID)
			if err != nil {
				return err
			}
			f := flags
			if own.Get(p.ID[:]) != nil {
				f |= copyOwn
			}
			for _, bl := range p.Blobs {
				all = append(all, cacheEntry{key: blobKey(bl.ID, num, bl.Offset), val: encodeLoc(f, bl), id: bl.ID, f: f})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// In key order: bbolt fills pages in sequence instead of splitting
	// them at random places, and each batch is one stretch of the tree.
	// (A blob's key starts with its ID, so the dedup bucket's keys come
	// in the same order.)
	slices.SortFunc(all, func(a, b cacheEntry) int { return bytes.Compare(a.key, b.key) })
	for len(all) > 0 || done != nil {
		batch := all[:min(len(all), maxTxEntries)]
		all = all[len(batch):]
		last := len(all) == 0
		if err := c.db.Update(func(tx *bolt.Tx) error {
			if err := putEntries(tx, batch); err != nil {
				return err
			}
			if last && done != nil {
				return done(tx)
			}
			return nil
		}); err != nil {
			return err
		}
		if last {
			break
		}
	}
	return nil
}

// putEntries writes sorted entries into the blobs bucket, and those a
// writer may deduplicate against into the dedup bucket.
func putEntries(tx *bolt.Tx, entries []cacheEntry) error {
	blobs, dedup := tx.Bucket(bucketBlobs), tx.Bucket(bucketDedup)
	for _, e := range entries {
		if old := blobs.Get(e.key); len(old) > 0 {
			// The same copy claimed again: keep every source's flags.
			e.val[0] |= old[0]
		}
		if err := blobs.Put(e.key, e.val); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if e.f&(copyVerified|copyOwn) != 0 {
			if err := dedup.Put(e.id[:], nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// addIndex records the blobs of an index file, and the file as seen.
func (c *localCache) addIndex(name string, f *index.File) error {
	var flags byte
	if f.Verified {
		flags = copyVerified
	}
	return c.addPacks(f.Packs, flags, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndexes).Put([]byte(name), []byte{indexOK})
	})
}

// addTrailer records the claims of a pack's trailer (a scan for copies no
// index names).
func (c *localCache) addTrailer(p index.Pack) error {
	return c.addPacks([]index.Pack{p}, copyTrailer, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketScanned).Put(p.ID[:], nil)
	})
}

// scanned reports whether a pack's trailer was read into the cache.
func (c *localCache) scanned(id ID) (bool, error) {
	var ok bool
	err := c.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketScanned).Get(id[:]) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading the cache: %w", err)
	}
	return ok, nil
}

// markOwn records that this machine saved a pack (before its index file
// is saved, so that the index's entries are its own).
func (c *localCache) markOwn(id ID) error {
	return c.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOwn).Put(id[:], nil) })
}

// Sync brings the cache up to date with the repository's index files:
// new ones are read; if any it knows has gone (prune), it starts over. An
// index file that cannot be read (junk, damage, a forged "verified" one)
// is skipped: warn hears of it once.
func (c *localCache) Sync(ctx context.Context, be backend.Backend, indexKey *[32]byte, masterSign ed25519.PublicKey, warn func(obj, what string)) error {
	present := map[string]bool{}
	if err := list(ctx, be, backend.TypeIndex, func(name string, _ int64) error {
		present[name] = true
		return nil
	}); err != nil {
		return err
	}
	known := map[string]byte{}
	err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIndexes).ForEach(func(k, v []byte) error {
			state := byte(indexOK)
			if len(v) > 0 {
				state = v[0]
			}
			known[string(k)] = state
			return nil
		})
	})
	if err != nil {
		return err
	}
	for k := range known {
		if !present[k] {
			if err := c.reset(indexBuckets...); err != nil {
				return err
			}
			known = map[string]byte{}
			break
		}
	}
	for name := range present {
		if _, ok := known[name]; ok {
			continue
		}
		f, err := loadIndexFile(ctx, be, name, indexKey, masterSign)
		if err != nil {
			if ctx.Err() != nil || !backend.IsPermanent(err) && !errors.Is(err, ErrCorrupt) {
				return err
			}
			if warn != nil {
				warn("index/"+name, fmt.Sprintf("skipped: %v", err))
			}
			if err := c.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketIndexes).Put([]byte(name), []byte{indexBad})
			}); err != nil {
				return err
			}
			continue
		}
		if err := c.addIndex(name, f); err != nil {
			return err
		}
	}
	return nil
}

func (c *localCache) reset(buckets ...[]byte) error {
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
func (c *localCache) Original(tag ID) (string, bool, error) {
	var name string
	err := c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketOriginals).Get(tag[:]); v != nil {
			name = string(v)
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("reading the cache: %w", err)
	}
	return name, name != "", nil
}

// syncSnapshots records the originals of snapshots from their envelopes;
// gone snapshots are dropped. accept says whether an envelope may vouch
// for its original (a verified signature of a key the repository accepts).
func (c *localCache) syncSnapshots(ctx context.Context, be backend.Backend, accept func(name string, env *Envelope) bool) error {
	present := map[string]bool{}
	if err := list(ctx, be, backend.TypeSnapshot, func(name string, _ int64) error {
		present[name] = true
		return nil
	}); err != nil {
		return err
	}
	known := map[string]bool{}
	if err := c.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, _ []byte) error {
			known[string(k)] = true
			return nil
		})
	}); err != nil {
		return err
	}
	for k := range known {
		if !present[k] {
			if err := c.reset(snapshotBuckets...); err != nil {
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
		if err != nil && !backend.IsPermanent(err) && !errors.Is(err, ErrCorrupt) {
			return err
		}
		if err := c.db.Update(func(tx *bolt.Tx) error {
			if err == nil && accept(name, env) {
				if err := tx.Bucket(bucketOriginals).Put(env.Original[:], []byte(name)); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketSnapshots).Put([]byte(name), nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

// firstSeen records now as the first sight of the snapshots not seen
// before and returns when each was first seen.
func (c *localCache) firstSeen(names []string, now time.Time) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(names))
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFirstSeen)
		for _, n := range names {
			if v := b.Get([]byte(n)); len(v) == 8 {
				out[n] = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
				continue
			}
			if err := b.Put([]byte(n), binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
			out[n] = now
		}
		return nil
	})
	return out, err
}

// head returns the last snapshot this machine committed with a key, and
// its sequence number.
func (c *localCache) head(key []byte) (ID, uint64, bool, error) {
	var id ID
	var seq uint64
	var ok bool
	err := c.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketHeads).Get(key); len(v) == len(id)+8 {
			copy(id[:], v)
			seq, ok = binary.BigEndian.Uint64(v[len(id):]), true
		}
		return nil
	})
	if err != nil {
		return ID{}, 0, false, fmt.Errorf("reading the cache: %w", err)
	}
	return id, seq, ok, nil
}

// setHead records the snapshot this machine committed with a key.
func (c *localCache) setHead(key []byte, id ID, seq uint64) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeads).Put(key, binary.BigEndian.AppendUint64(bytes.Clone(id[:]), seq))
	})
}

// lockWait records when this machine first found a key's locks in its way
// (blocking true) or forgets it (false); it returns the first time.
func (c *localCache) lockWait(key []byte, blocking bool, now time.Time) (time.Time, error) {
	first := now
	err := c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLockWait)
		if !blocking {
			return b.Delete(key)
		}
		if v := b.Get(key); len(v) == 8 {
			first = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			return nil
		}
		return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())))
	})
	return first, err
}

// forEachCopy calls fn for every claimed copy in the cache.
func (c *localCache) forEachCopy(fn func(blobCopy) error) error {
	return c.db.View(func(tx *bolt.Tx) error {
		packs := tx.Bucket(bucketPacks)
		pids := map[uint32]ID{}
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			num, flags, b, ok := decodeLoc(k, v)
			if !ok {
				return nil
			}
			pid, known := pids[num]
			if !known {
				raw := packs.Get(binary.BigEndian.AppendUint64(nil, uint64(num)))
				if len(raw) != len(pid) {
					return nil
				}
				copy(pid[:], raw)
				pids[num] = pid
			}
			return fn(blobCopy{PackedBlob: pack.PackedBlob{Blob: b, Pack: pid}, Verified: flags&copyVerified != 0, Own: flags&copyOwn != 0})
		})
	})
}

// clearLockWaits forgets the keys not in the way now (keep false).
func (c *localCache) clearLockWaits(keep func(key string) bool) error {
	return c.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLockWait)
		var gone [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if !keep(string(k)) {
				gone = append(gone, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
