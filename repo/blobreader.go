package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
)

// blobReader fetches and opens blobs (master: data and lists; audit:
// lists). Every claim about where a chunk is comes from a writer and may
// be false, so it tries every known copy of a chunk until one opens and
// matches the chunk's ID; when none does it reads the trailers of the
// packs no scan has read yet (a lost or lying index) and tries again.
type blobReader struct {
	r     *Repo
	cache *localCache
	mu    sync.Mutex
	keys  map[ID]*crypto.SessionKeys // per pack
	order []ID

	// Buffers reused from blob to blob (load is called by one goroutine
	// at a time).
	sealed, padded []byte

	// Frames opened lately, newest last: a stream's chunks come from a
	// few frames at a time (the night that wrote a run of them, the
	// nights that changed parts of it).
	frames     []*openedFrame
	frameBytes int

	// ahead, when set, holds the frames a stream reads next (OpenStream).
	ahead *readAhead
}

// openedFrame is a frame's plaintext.
type openedFrame struct {
	pack   ID
	offset uint32
	plain  []byte                // the chunk bytes
	spans  map[ID]pack.FrameSpan // version 3: where each chunk is
}

// maxFrameCache bounds the plaintext of the frames a blobReader keeps.
const maxFrameCache = 8 << 20

const maxSessionKeys = 256

func (r *Repo) newBlobReader(ctx context.Context) (*blobReader, error) {
	c, err := r.openCache(ctx)
	if err != nil {
		return nil, err
	}
	return &blobReader{r: r, cache: c, keys: map[ID]*crypto.SessionKeys{}}, nil
}

func (br *blobReader) sessionKeys(ctx context.Context, pid ID) (*crypto.SessionKeys, error) {
	br.mu.Lock()
	k := br.keys[pid]
	br.mu.Unlock()
	if k != nil {
		return k, nil
	}
	hdr, err := loadRange(ctx, br.r.be, backend.Handle{Type: backend.TypeData, Name: pid.String()}, 0, int64(pack.HeaderSize))
	if err != nil {
		return nil, err
	}
	ph, err := pack.ParseHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w: %w", pid.Short(), ErrBlob, err)
	}
	ok, can := br.r.key.(openingKey)
	if !can {
		return nil, br.r.need("read blobs", crypto.RoleMaster, crypto.RoleAudit)
	}
	k, err = ok.OpenSession(ph.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w: %w", pid.Short(), ErrBlob, err)
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	if len(br.order) >= maxSessionKeys {
		old := br.order[0]
		br.order = br.order[1:]
		if ok := br.keys[old]; ok != nil {
			ok.Erase()
		}
		delete(br.keys, old)
	}
	br.keys[pid] = k
	br.order = append(br.order, pid)
	return k, nil
}

// transient reports an error that says nothing about the copy: the
// storage did not answer (after its retries), or the work was stopped.
// Such an error ends a read at once instead of trying the next copy.
func transient(err error) bool {
	return !errors.Is(err, ErrBlob) && !errors.Is(err, ErrCorrupt) && !backend.IsPermanent(err) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// load returns a blob's plaintext (appended to dst[:0]), from the first
// copy that opens and matches its ID.
func (br *blobReader) load(ctx context.Context, t pack.BlobType, id ID, dst []byte) ([]byte, error) {
	return br.loadCopies(ctx, t, id, nil, dst)
}

// loadCopies is load with the blob's copies as the cache had them a
// moment ago (a stream's read ahead looked them up; nil: ask it now); when
// none of them is intact, it asks the cache again even if this reader's
// scan of the pack trailers finds nothing new (another stream's may have
// found them meanwhile).
func (br *blobReader) loadCopies(ctx context.Context, t pack.BlobType, id ID, copies []blobCopy, dst []byte) ([]byte, error) {
	earlier := copies != nil
	if !earlier {
		var err error
		if copies, err = br.cache.Copies(id); err != nil {
			return nil, err
		}
	}
	tried := map[pack.PackedBlob]bool{}
	var failed []error
	for round := 0; round < 2; round++ {
		if round > 0 {
			var err error
			if copies, err = br.cache.Copies(id); err != nil { // and those of the trailers
				return nil, err
			}
		}
		for _, c := range copies {
			if tried[c.PackedBlob] || c.Type != t {
				continue
			}
			tried[c.PackedBlob] = true
			out, err := br.loadCopy(ctx, t, c.PackedBlob, dst)
			if err == nil {
				return out, nil
			}
			if transient(err) {
				return nil, err
			}
			br.r.warn("data/"+c.Pack.String(), fmt.Sprintf("a copy of chunk %s is not intact: %v", id.Short(), err))
			failed = append(failed, err)
		}
		if round == 0 {
			n, err := br.r.scanTrailers(ctx, br.cache)
			if err != nil {
				return nil, err
			}
			if n == 0 && !earlier {
				break
			}
		}
	}
	if len(failed) == 0 {
		return nil, fmt.Errorf("%s: %w: blob %s is in no index and no pack", br.r.be.Location(), backend.ErrNotFound, id.Short())
	}
	return nil, fmt.Errorf("%s: %w: no copy of blob %s is intact (%d tried; first: %w)", br.r.be.Location(), ErrCorrupt, id.Short(), len(failed), failed[0])
}

// loadCopy reads one copy of a blob and checks it against its ID.
func (br *blobReader) loadCopy(ctx context.Context, t pack.BlobType, loc pack.PackedBlob, dst []byte) ([]byte, error) {
	if loc.Framed {
		return br.loadFramed(ctx, loc, dst)
	}
	k, sealed, err := br.fetch(ctx, loc)
	if err != nil {
		return nil, err
	}
	limit := uint32(chunkLimit(t))
	plain, padded, err := pack.OpenBlob(k, t, loc.ID, sealed, loc.RawLen, limit, dst, br.padded)
	br.padded = padded
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack.Short(), err)
	}
	if err := br.verify(t, loc.ID, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

// fetch loads the sealed bytes of a blob (or its frame) and the session
// keys of its pack.
func (br *blobReader) fetch(ctx context.Context, loc pack.PackedBlob) (*crypto.SessionKeys, []byte, error) {
	k, err := br.sessionKeys(ctx, loc.Pack)
	if err != nil {
		return nil, nil, err
	}
	var sealed []byte
	ahead := br.ahead.take(rangeKey{loc.Pack, loc.Offset, loc.Length})
	if ahead != nil {
		sealed, err = ahead.buf, ahead.err
	} else {
		sealed, err = loadRangeInto(ctx, br.r.be, backend.Handle{Type: backend.TypeData, Name: loc.Pack.String()}, int64(loc.Offset), int64(loc.Length), br.sealed)
	}
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil, fmt.Errorf("pack %s: %w: %w", loc.Pack.Short(), ErrBlob, err)
	}
	if err != nil {
		if !transient(err) {
			// Short: the claim's range lies outside the pack.
			return nil, nil, fmt.Errorf("pack %s: %w: %w", loc.Pack.Short(), ErrBlob, err)
		}
		return nil, nil, err
	}
	if ahead == nil {
		br.sealed = sealed // the read ahead's buffers stay its own
	}
	return k, sealed, nil
}

// verify checks a chunk against its ID with what the key holds: the
// master checks every chunk; an audit key the list chunks of version 3
// (plain hashes).
func (br *blobReader) verify(t pack.BlobType, id ID, plain []byte) error {
	var ok bool
	switch {
	case t == pack.BlobList && br.r.cfg.Version >= 3:
		ok = plainListID(plain) == id
	case br.r.master != nil:
		ok = ID(crypto.ChunkID(&br.r.master.ChunkIDKey, plain)) == id
	default:
		return nil // an audit key cannot check a keyed ID
	}
	if !ok {
		return fmt.Errorf("%w: blob %s does not hash to its ID", ErrBlob, id.Short())
	}
	return nil
}

// loadFramed returns a framed chunk's plaintext (appended to dst[:0]).
func (br *blobReader) loadFramed(ctx context.Context, loc pack.PackedBlob, dst []byte) ([]byte, error) {
	f, err := br.frame(ctx, loc)
	if err != nil {
		return nil, err
	}
	var span pack.FrameSpan
	if f.spans != nil {
		s, ok := f.spans[loc.ID]
		if !ok {
			return nil, fmt.Errorf("%w: the frame said to hold chunk %s does not", ErrBlob, loc.ID.Short())
		}
		span = s
	} else {
		if uint32(len(f.plain)) != loc.FrameRaw {
			return nil, fmt.Errorf("%w: the frame of blob %s holds %d bytes, the index says %d", ErrBlob, loc.ID.Short(), len(f.plain), loc.FrameRaw)
		}
		span = pack.FrameSpan{Off: loc.Inner, N: loc.RawLen}
	}
	plain := append(dst[:0], f.plain[span.Off:span.Off+span.N]...)
	if err := br.verify(pack.BlobData, loc.ID, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

// frame returns the opened frame of a framed blob, from the recent ones
// or from the storage.
func (br *blobReader) frame(ctx context.Context, loc pack.PackedBlob) (*openedFrame, error) {
	for i := len(br.frames) - 1; i >= 0; i-- {
		if f := br.frames[i]; f.pack == loc.Pack && f.offset == loc.Offset {
			// Move it to the end: the least recently used go first.
			copy(br.frames[i:], br.frames[i+1:])
			br.frames[len(br.frames)-1] = f
			return f, nil
		}
	}
	k, sealed, err := br.fetch(ctx, loc)
	if err != nil {
		return nil, err
	}
	// Reuse the buffer of the frame that goes, if one must.
	var buf []byte
	for len(br.frames) > 0 && br.frameBytes+int(max(loc.FrameRaw, pack.FrameTarget)) > maxFrameCache {
		old := br.frames[0]
		br.frames = br.frames[1:]
		br.frameBytes -= cap(old.plain)
		buf = old.plain
	}
	limit := uint32(pack.MaxFrameRaw)
	if br.r.cfg.Version >= 3 {
		limit = pack.MaxFramePlain
	}
	plain, padded, err := pack.OpenFrame(k, loc.ID, sealed, loc.FrameRaw, limit, buf, br.padded)
	br.padded = padded
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", loc.Pack.Short(), err)
	}
	f := &openedFrame{pack: loc.Pack, offset: loc.Offset, plain: plain}
	if br.r.cfg.Version >= 3 {
		spans, data, err := pack.ParseFrame(plain)
		if err != nil {
			return nil, fmt.Errorf("pack %s: %w: the frame of %s: %w", loc.Pack.Short(), ErrBlob, loc.ID.Short(), err)
		}
		f.spans, f.plain = spans, data
	}
	br.frames = append(br.frames, f)
	br.frameBytes += cap(plain)
	return f, nil
}

// cachedFrame returns an opened frame the reader keeps, or nil.
func (br *blobReader) cachedFrame(pid ID, offset uint32) *openedFrame {
	for _, f := range br.frames {
		if f.pack == pid && f.offset == offset {
			return f
		}
	}
	return nil
}

func (br *blobReader) close() {
	br.mu.Lock()
	defer br.mu.Unlock()
	for _, k := range br.keys {
		k.Erase()
	}
	br.keys = nil
}

// scanTrailers reads the trailers of the packs whose claims are not in
// the cache yet and adds those claims (once per Repo: it is the fallback
// when no copy a claim names is intact). It returns how many packs it
// read. Packs whose trailer cannot be read are reported and skipped.
func (r *Repo) scanTrailers(ctx context.Context, c *localCache) (int, error) {
	r.warnMu.Lock()
	done := r.scanned
	r.scanned = true
	r.warnMu.Unlock()
	if done {
		return 0, nil
	}
	var packs []ID
	if err := list(ctx, r.be, backend.TypeData, func(name string, _ int64) error {
		id, err := ParseID(name)
		if err != nil {
			r.warn("data/"+name, "not a pack name: skipped")
			return nil
		}
		done, err := c.scanned(id)
		if !done {
			packs = append(packs, id)
		}
		return err
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range packs {
		_, blobs, err := pack.ReadTrailer(ctx, r.be, id, r.indexKey())
		if err != nil {
			if transient(err) {
				return n, err
			}
			r.warn("data/"+id.String(), fmt.Sprintf("its trailer cannot be read: %v", err))
			continue
		}
		if err := c.addTrailer(index.Pack{ID: id, Blobs: blobs}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// chunkLimit is the most plaintext a blob of type t holds.
func chunkLimit(t pack.BlobType) int {
	if t == pack.BlobList {
		return maxListChunk
	}
	return maxChunkPlain
}

// maxListChunk bounds a list chunk (tree.go), maxChunkPlain a data chunk.
const (
	maxListChunk  = listMaxEntries * entryNSize
	maxChunkPlain = chunk.MaxChunk
)
