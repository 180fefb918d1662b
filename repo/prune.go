package repo

import (
	"context"
	"errors"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"os"
	"time"

	"github.com/larder/larder/crypto"
)

// Prune is two-phase so that an ingest running at the same time never loses
// a chunk it deduplicated against:
//
//  1. A prune finds the packs whose every blob is unreferenced (by any
//     snapshot) or stored again in a pack that stays, and records them in a
//     signed prune mark (prune/<sha256>). It deletes nothing of them yet.
//  2. A later prune, once the mark is older than the grace period and no
//     ingest holds a lock, deletes the packs of earlier marks that are
//     still deletable with every snapshot stored since then counted: an
//     ingest that deduplicated against a marked pack has referenced it.
//
// Before deleting packs it writes one index file for every pack that stays
// (superseding the old ones) and then removes the old index files, so a
// crash at any point leaves every referenced blob indexed. Packs with a
// large share of dead blobs are repacked first: their live blobs are
// copied into new packs (sealed in a master session), which makes the old
// pack deletable in a later prune.
const (
	pruneContext = crypto.SigContext("larder prune v1")
	maxPruneMark = 64 << 20
	// DefaultGrace is how old a prune mark must be before its packs go.
	DefaultGrace = time.Hour
	// repackShare: a pack with at least this share of dead bytes is repacked.
	repackShare = 0.25
)

type pruneMark struct {
	Time  time.Time `json:"time"`
	Packs []ID      `json:"packs"`
}

// PruneOptions tune Prune.
type PruneOptions struct {
	Grace    time.Duration // marks younger than this are not acted on
	DryRun   bool
	NoRepack bool
}

// PruneResult says what Prune did.
type PruneResult struct {
	Referenced   int   // blobs that snapshots use
	Packs        int   // packs before
	Marked       int   // packs newly marked for deletion
	Deleted      int   // packs deleted
	DeletedBytes int64 // their size
	Repacked     int   // packs whose live blobs were copied
	Pending      int   // marked packs waiting for the grace period
	TempRemoved  int   // temporary objects of interrupted saves removed
}

// Prune removes data no snapshot needs (master only); see above.
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	if err := r.need("prune", crypto.RoleMaster); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock(context.WithoutCancel(ctx))
	if !opts.DryRun {
		if err := r.checkCanDelete(ctx); err != nil {
			return nil, err
		}
	}
	cache, err := r.openCache(ctx)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{}

	// What every snapshot references.
	used, err := r.referenced(ctx)
	if err != nil {
		return nil, err
	}
	res.Referenced = len(used)

	// Every pack of every index file, and where each blob is stored.
	packs, indexes, err := r.allPacks(ctx)
	if err != nil {
		return nil, err
	}
	res.Packs = len(packs)
	sizes := map[ID]int64{}
	list(ctx, r.be, backend.TypeData, func(name string, size int64) error {
		if id, err := ParseID(name); err == nil {
			sizes[id] = size
		}
		return nil
	})

	// Earlier marks.
	marks, err := r.pruneMarks(ctx)
	if err != nil {
		return nil, err
	}
	now := r.now()
	ripe := map[ID]bool{}
	var ripeMarks []string
	for name, m := range marks {
		if now.Sub(m.Time) >= opts.Grace {
			ripeMarks = append(ripeMarks, name)
			for _, p := range m.Packs {
				ripe[p] = true
			}
		} else {
			res.Pending += len(m.Packs)
		}
	}

	// A pack can go when each of its blobs is dead or also in a pack that
	// stays. First decide the packs that hold a live blob nowhere else.
	holders := map[ID]int{}
	for _, p := range packs {
		for _, b := range p.Blobs {
			holders[b.ID]++
		}
	}
	deletable := func(p IndexedPack) bool {
		for _, b := range p.Blobs {
			if used[b.ID] && holders[b.ID] < 2 {
				return false
			}
		}
		return true
	}
	var toDelete []IndexedPack
	going := map[ID]bool{}
	var candidates []ID
	for _, p := range packs {
		if !deletable(p) {
			continue
		}
		if ripe[p.ID] {
			toDelete = append(toDelete, p)
			going[p.ID] = true
			for _, b := range p.Blobs {
				holders[b.ID]--
			}
		} else {
			candidates = append(candidates, p.ID)
		}
	}
	// Packs no index file names were left by interrupted ingests (none is
	// running: this prune holds the exclusive lock); nothing can refer to
	// them. They go through the same two phases.
	indexed := map[ID]bool{}
	for _, p := range packs {
		indexed[p.ID] = true
	}
	rewriteIndex := len(toDelete) > 0
	for id := range sizes {
		switch {
		case indexed[id]:
		case ripe[id]:
			toDelete = append(toDelete, IndexedPack{ID: id})
			going[id] = true
		default:
			candidates = append(candidates, id)
		}
	}
	// Packs to repack: many dead bytes, some live blobs.
	var repack []IndexedPack
	if !opts.NoRepack {
		for _, p := range packs {
			if going[p.ID] || deletable(p) {
				continue
			}
			dead, all := deadBytes(p, used)
			if all > 0 && float64(dead)/float64(all) >= repackShare {
				repack = append(repack, p)
			}
		}
	}
	res.Marked = len(candidates)
	if opts.DryRun {
		res.Deleted = len(toDelete)
		res.Repacked = len(repack)
		for _, p := range toDelete {
			res.DeletedBytes += sizes[p.ID]
		}
		return res, nil
	}

	// Repack: copy live blobs into new packs, indexed at once.
	if len(repack) > 0 {
		if err := r.repack(ctx, cache, repack, used); err != nil {
			return nil, err
		}
		res.Repacked = len(repack)
		for _, p := range repack {
			candidates = append(candidates, p.ID)
		}
	}

	// Delete the ripe packs: first one index for all that stay (unless
	// only unindexed packs go). Not if the lock may have lapsed: an ingest
	// could be counting on them.
	if len(toDelete) > 0 {
		if err := lock.Held(); err != nil {
			return nil, err
		}
	}
	if rewriteIndex {
		var keep []IndexedPack
		for _, p := range packs {
			if !going[p.ID] {
				keep = append(keep, p)
			}
		}
		f := &IndexFile{Packs: keep}
		for _, name := range indexes {
			id, _ := ParseID(name)
			f.Supersedes = append(f.Supersedes, id)
		}
		newName, err := saveContent(ctx, r.be, backend.TypeIndex, f.seal(r.indexKey()))
		if err != nil {
			return nil, err
		}
		for _, name := range indexes {
			if name == newName {
				continue
			}
			if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeIndex, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
				return nil, err
			}
		}
	}
	for _, p := range toDelete {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeData, Name: p.ID.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
		res.Deleted++
		res.DeletedBytes += sizes[p.ID]
	}
	for _, name := range ripeMarks {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypePrune, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
	}
	// Mark the new candidates.
	if len(candidates) > 0 {
		b, err := r.signRecord(pruneContext, pruneMark{Time: now.UTC(), Packs: candidates})
		if err != nil {
			return nil, err
		}
		if _, err := saveContent(ctx, r.be, backend.TypePrune, b); err != nil {
			return nil, err
		}
	}
	// Leftovers of finished or stale locks.
	if _, err := r.CleanLocks(ctx); err != nil {
		return nil, err
	}
	// Temporary objects of interrupted saves: no writer runs (this prune
	// holds the exclusive lock), but one whose lock went stale might still
	// be finishing a save, so only old ones go.
	if tc, ok := backend.Find[backend.TempCleaner](r.be); ok {
		n, err := tc.CleanTemp(ctx, r.now().Add(-LockStale))
		if err != nil {
			return nil, fmt.Errorf("%s: removing temporary objects: %w", r.be.Location(), err)
		}
		res.TempRemoved = n
	}
	return res, nil
}

// referenced returns the IDs of every blob (data and list) some snapshot
// uses.
func (r *Repo) referenced(ctx context.Context) (map[ID]bool, error) {
	snaps, err := r.Snapshots(ctx, true)
	if err != nil {
		return nil, err
	}
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return nil, err
	}
	defer br.close()
	used := map[ID]bool{}
	walked := map[ID]bool{} // list chunks (a data chunk may share an ID)
	var buf []byte
	for _, s := range snaps {
		for _, ref := range s.Manifest.Streams {
			err := walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
				if walked[id] {
					// Walked for an earlier stream: all below is marked.
					return nil, errSkipSubtree
				}
				walked[id] = true
				used[id] = true
				b, err := br.load(ctx, BlobList, id, buf)
				buf = b
				return b, err
			}, func(e ListEntry) error {
				used[e.ID] = true
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
			}
		}
	}
	return used, nil
}

// allPacks reads every index file.
func (r *Repo) allPacks(ctx context.Context) ([]IndexedPack, []string, error) {
	var names []string
	if err := list(ctx, r.be, backend.TypeIndex, func(name string, _ int64) error {
		names = append(names, name)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	seen := map[ID]bool{}
	var packs []IndexedPack
	for _, name := range names {
		f, err := loadIndexFile(ctx, r.be, name, r.indexKey())
		if err != nil {
			return nil, nil, err
		}
		for _, p := range f.Packs {
			if !seen[p.ID] {
				seen[p.ID] = true
				packs = append(packs, p)
			}
		}
	}
	return packs, names, nil
}

func (r *Repo) pruneMarks(ctx context.Context) (map[string]pruneMark, error) {
	out := map[string]pruneMark{}
	err := list(ctx, r.be, backend.TypePrune, func(name string, _ int64) error {
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypePrune, Name: name}, maxPruneMark)
		if err != nil {
			return err
		}
		if !verifyContentName(name, b) {
			return fmt.Errorf("%s: prune/%s: %w: content does not match its name", r.be.Location(), name, ErrCorrupt)
		}
		var m pruneMark
		if err := r.openRecord(pruneContext, b, &m); err != nil {
			return fmt.Errorf("%s: prune/%s: %w", r.be.Location(), name, err)
		}
		out[name] = m
		return nil
	})
	return out, err
}

// repack copies the live blobs of packs into new packs of a master
// session and indexes them.
func (r *Repo) repack(ctx context.Context, cache *Cache, packs []IndexedPack, used map[ID]bool) error {
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	session, err := crypto.NewSession(nil, r.master.BoxKey.Public, r.master.AuditBoxKey.Public)
	if err != nil {
		return err
	}
	defer session.Erase()
	tmp, err := os.MkdirTemp("", "larder-repack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	w := &Writer{r: r, session: session, cache: cache, tmp: tmp, key: r.master.ID,
		pending: map[ID]bool{}, rnd: newShuffler()}
	// Live data chunks go into frames again (version 2), in their order
	// in the old packs, which is their order in the streams that wrote
	// them.
	sw := w.NewStream()
	var buf []byte
	for _, p := range packs {
		for _, b := range p.Blobs {
			if !used[b.ID] || w.pending[b.ID] {
				continue
			}
			data, err := br.load(ctx, b.Type, b.ID, buf)
			if err != nil {
				return err
			}
			buf = data
			if b.Type == BlobData && r.framed() {
				if err := sw.addNew(ctx, b.ID, data); err != nil {
					return err
				}
				continue
			}
			sealed, err := sealBlob(session, b.Type, b.ID, data)
			if err != nil {
				return err
			}
			if err := w.addSealed(ctx, b.Type, b.ID, sealed, len(data)); err != nil {
				return err
			}
		}
	}
	if err := sw.Close(ctx); err != nil {
		return err
	}
	return w.Flush(ctx)
}

// deadBytes estimates the bytes of pack p that no snapshot uses, of all
// its blob bytes. A frame counts once, dead in the share of its
// plaintext that its unused chunks hold.
func deadBytes(p IndexedPack, used map[ID]bool) (dead, all int64) {
	type frame struct {
		length, raw uint32
		deadRaw     uint64
	}
	frames := map[uint32]*frame{}
	for _, b := range p.Blobs {
		if !b.Framed {
			all += int64(b.Length)
			if !used[b.ID] {
				dead += int64(b.Length)
			}
			continue
		}
		f := frames[b.Offset]
		if f == nil {
			f = &frame{length: b.Length, raw: b.FrameRaw}
			frames[b.Offset] = f
		}
		if !used[b.ID] {
			f.deadRaw += uint64(b.RawLen)
		}
	}
	for _, f := range frames {
		all += int64(f.length)
		if f.raw > 0 {
			dead += int64(uint64(f.length) * min(f.deadRaw, uint64(f.raw)) / uint64(f.raw))
		}
	}
	return dead, all
}
