package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
)

// RepairResult says what RepairIndex did.
type RepairResult struct {
	Packs    int // packs read
	Verified int // chunks whose copy the master decrypted and matched
	Failed   int // claims (trailer or index) that did not
	Removed  int // index files replaced
	Problems []Problem
}

// maxVerifiedEntries bounds the entries of one verified index file (at
// most 58 bytes each: about 60 MiB).
const maxVerifiedEntries = 1 << 20

// RepairIndex rebuilds the index from the packs themselves (master only):
// every pack is read, every chunk its trailer or an index file claims is
// decrypted and matched to its ID, and the copies that hold are written as
// verified index files that replace every index file there was (lost,
// junk or lying ones included). Claims that fail name their packs. It
// reads the whole repository once.
func (r *Repo) RepairIndex(ctx context.Context) (*RepairResult, error) {
	if err := r.need("repair the index", crypto.RoleMaster); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.unlockWarn(context.WithoutCancel(ctx))
	if err := r.checkCanDelete(ctx); err != nil {
		return nil, err
	}
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return nil, err
	}
	defer br.close()
	res := &RepairResult{}
	// Claims of the index files (the cache's copy) and of every trailer.
	if _, err := r.scanTrailers(ctx, br.cache); err != nil {
		return nil, err
	}
	claims := map[ID][]pack.Blob{}
	if err := br.cache.forEachCopy(func(c blobCopy) error {
		claims[c.Pack] = append(claims[c.Pack], c.Blob)
		return nil
	}); err != nil {
		return nil, err
	}
	sizes := map[ID]int64{}
	if err := list(ctx, r.be, backend.TypeData, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			sizes[id] = size
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var verified []index.Pack
	ids := make([]ID, 0, len(sizes))
	for id := range sizes {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareID)
	for _, id := range ids {
		p, failed, err := r.verifyPack(ctx, br, id, claims[id])
		if err != nil {
			return nil, err
		}
		res.Packs++
		res.Verified += len(p.Blobs)
		res.Failed += failed
		if failed > 0 {
			res.Problems = append(res.Problems, Problem{"data/" + id.String(), fmt.Sprintf("%d claimed chunks do not decrypt to their IDs (a forged or damaged pack)", failed)})
		}
		if len(p.Blobs) > 0 {
			verified = append(verified, p)
		}
	}
	var old []string
	if err := list(ctx, r.be, backend.TypeIndex, func(name string, _ int64) error {
		old = append(old, name)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := lock.Held(); err != nil {
		return nil, err
	}
	if err := r.saveVerifiedFiles(ctx, verified, old); err != nil {
		return nil, err
	}
	res.Removed = len(old)
	res.Problems = append(res.Problems, r.Warnings()...)
	return res, nil
}

// verifyPack decrypts every claimed blob and frame of a pack and returns
// the copies that match their IDs (all chunks of a version 3 frame's
// header), and how many claims failed.
func (r *Repo) verifyPack(ctx context.Context, br *blobReader, id ID, claims []pack.Blob) (index.Pack, int, error) {
	p := index.Pack{ID: id}
	slices.SortFunc(claims, func(a, b pack.Blob) int {
		if a.Offset != b.Offset {
			return int(a.Offset) - int(b.Offset)
		}
		return compareID(a.ID, b.ID)
	})
	seen := map[pack.Blob]bool{}
	inFrame := map[uint32]map[ID]bool{} // what a read frame's header gave
	failed := 0
	for _, b := range claims {
		if seen[b] {
			continue
		}
		seen[b] = true
		if got := inFrame[b.Offset]; got != nil {
			if !got[b.ID] {
				failed++
			}
			continue
		}
		loc := pack.PackedBlob{Blob: b, Pack: id}
		if _, err := br.loadCopy(ctx, b.Type, loc, nil); err != nil {
			if transient(err) {
				return p, 0, err
			}
			failed++
			continue
		}
		if f := br.cachedFrame(id, b.Offset); b.Framed && f != nil && f.spans != nil {
			// A version 3 frame says what it holds: every chunk of it
			// that matches its ID is a verified copy.
			got := map[ID]bool{}
			for cid, sp := range f.spans {
				if br.verify(pack.BlobData, cid, f.plain[sp.Off:sp.Off+sp.N]) == nil {
					got[cid] = true
					p.Blobs = append(p.Blobs, pack.Blob{Type: pack.BlobData, ID: cid, Offset: b.Offset, Length: b.Length, Framed: true})
				}
			}
			inFrame[b.Offset] = got
			if !got[b.ID] {
				failed++
			}
			continue
		}
		p.Blobs = append(p.Blobs, b)
	}
	slices.SortFunc(p.Blobs, func(a, b pack.Blob) int { return compareID(a.ID, b.ID) })
	return p, failed, nil
}

// saveVerifiedFiles stores verified index files of packs (each at most
// maxVerifiedEntries entries) and then removes the index files old; the
// last new file names them as superseded. A crash leaves the old files
// beside the new ones: still a valid index.
func (r *Repo) saveVerifiedFiles(ctx context.Context, packs []index.Pack, old []string) error {
	var files []*index.File
	cur := &index.File{Verified: true, Entries: r.entries()}
	n := 0
	for _, p := range packs {
		if n+len(p.Blobs) > maxVerifiedEntries && len(cur.Packs) > 0 {
			files = append(files, cur)
			cur, n = &index.File{Verified: true, Entries: r.entries()}, 0
		}
		cur.Packs = append(cur.Packs, p)
		n += len(p.Blobs)
	}
	files = append(files, cur)
	for _, name := range old {
		if id, err := ParseID(name); err == nil {
			cur.Supersedes = append(cur.Supersedes, id)
		}
	}
	written := map[string]bool{}
	for _, f := range files {
		sealed, err := f.Seal(r.indexKey(), r.signIndex)
		if err != nil {
			return err
		}
		name, err := saveContent(ctx, r.be, backend.TypeIndex, sealed)
		if err != nil {
			return err
		}
		written[name] = true
	}
	for _, name := range old {
		if written[name] {
			continue
		}
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeIndex, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	return nil
}
