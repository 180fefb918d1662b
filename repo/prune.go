package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
)

// Prune deletes what no snapshot needs. Everything a writer stored is a
// claim (an index entry, a pack trailer: "chunk X is in pack P"), and a
// thief of a write key can write any claim, so prune relies on none of
// them alone (restic's internal/repository/prune.go is the shape):
//
//  1. Plan. Walk every snapshot's chunk lists: the live chunks.
//  2. Verify. For each live chunk find a keeper: a copy the master has
//     decrypted and matched to the chunk's ID — now, or at an earlier
//     prune (a verified index file, signed by the master). Claims are only
//     where to look.
//  3. Execute. Write one verified index naming the keepers (it replaces
//     every index file), then delete the packs of earlier marks that still
//     hold no keeper, and mark the packs that hold none now. A pack is
//     deleted only if every live chunk has an intact copy elsewhere, what
//     it may or may not hold: a shadow pack that claims every chunk, or an
//     index that lies about a real pack, changes nothing but which copy is
//     tried first.
//
// Deleting takes two prunes: a pack is marked (prune/<sha256>, signed by
// the master) and deleted by a later prune once the mark is older than the
// grace period and the pack still holds no keeper, with every snapshot
// stored since counted. Packs with a large share of dead bytes are
// repacked: their keepers are copied into new packs of a master session,
// after which the old pack holds no keeper and is marked.
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

// PruneResult says what Prune did (or, for a dry run, would do).
type PruneResult struct {
	Referenced   int   `json:"chunks_in_use"` // chunks that snapshots use
	Packs        int   `json:"packs"`         // packs before
	Verified     int   `json:"verified"`      // copies decrypted and matched to their IDs by this prune
	Marked       int   `json:"marked"`        // packs newly marked for deletion
	Deleted      int   `json:"deleted"`       // packs deleted
	DeletedBytes int64 `json:"deleted_bytes"` // their size
	Repacked     int   `json:"repacked"`      // packs whose live chunks were copied
	Pending      int   `json:"pending"`       // marked packs waiting for the grace period
	TempRemoved  int   `json:"temp_removed"`  // temporary objects of interrupted saves removed
	// Missing counts live chunks with no intact copy: the snapshots that
	// need them are damaged; every pack that claims them, or whose trailer
	// cannot be read, is kept.
	Missing  int       `json:"missing_chunks"`
	Problems []Problem `json:"problems"`
}

// keeper is the copy of a live chunk that stays.
type keeper struct {
	copy blobCopy
}

// packFacts is what prune knows of one pack.
type packFacts struct {
	id     ID
	size   int64 // -1: not in the listing
	frames map[uint32]*frameFacts
	// keepers counts live chunks whose keeper is here; claimsMissing says
	// it claims a chunk that has no intact copy.
	keepers       int
	claimsMissing bool
}

// frameFacts is a blob or frame of a pack, by offset.
type frameFacts struct {
	length      uint32
	claims      map[ID]bool   // chunks claimed in it
	live        map[ID]bool   // of which keepers
	raw         map[ID]uint32 // chunk lengths, where known
	keeperBlobs []blobCopy
	// verified lists copies in it the master verified (live or not): they
	// go into the verified index with the pack.
	verified map[ID]blobCopy
	read     bool // opened and every chunk in it checked by this prune
}

func newFrameFacts(length uint32) *frameFacts {
	return &frameFacts{length: length, claims: map[ID]bool{}, live: map[ID]bool{}, raw: map[ID]uint32{}, verified: map[ID]blobCopy{}}
}

// weight is a chunk's share of its frame: its length where known, else 1.
func (ff *frameFacts) weight(id ID) float64 {
	if n, ok := ff.raw[id]; ok && len(ff.raw) == len(ff.claims) {
		return float64(n)
	}
	return 1
}

// prunePlan is what a prune decided from the facts it verified; Execute
// carries it out.
type prunePlan struct {
	res      PruneResult
	now      time.Time
	live     map[ID]pack.BlobType
	keepers  map[ID]keeper
	packs    map[ID]*packFacts
	indexes  []string // index files the new verified index replaces
	ripe     map[ID]bool
	ripeMark []string
	repack   []ID
	deleteP  []ID
	markP    []ID
}

// Prune removes data no snapshot needs (master only): PlanPrune, then
// Execute (see above).
func (r *Repo) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	if err := r.need("prune", crypto.RoleMaster); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, true)
	if err != nil {
		return nil, err
	}
	defer lock.unlockWarn(context.WithoutCancel(ctx))
	if !opts.DryRun {
		if err := r.checkCanDelete(ctx); err != nil {
			return nil, err
		}
	}
	plan, err := r.planPrune(ctx, opts)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		return &plan.res, nil
	}
	if err := r.executePrune(ctx, plan, lock); err != nil {
		return nil, err
	}
	return &plan.res, nil
}

// planPrune finds the live chunks, a verified keeper for each, and what
// happens to every pack.
func (r *Repo) planPrune(ctx context.Context, opts PruneOptions) (*prunePlan, error) {
	cache, err := r.openCache(ctx)
	if err != nil {
		return nil, err
	}
	p := &prunePlan{now: r.now(), keepers: map[ID]keeper{}, packs: map[ID]*packFacts{}, ripe: map[ID]bool{}}
	if err := list(ctx, r.be, backend.TypeIndex, func(name string, _ int64) error {
		p.indexes = append(p.indexes, name)
		return nil
	}); err != nil {
		return nil, err
	}
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return nil, err
	}
	defer br.close()
	if p.live, err = r.liveChunks(ctx, br, &p.res); err != nil {
		return nil, err
	}
	p.res.Referenced = len(p.live)
	if err := r.packListing(ctx, cache, p); err != nil {
		return nil, err
	}
	if err := r.findKeepers(ctx, br, cache, p); err != nil {
		return nil, err
	}
	if err := r.readMarks(ctx, opts, p); err != nil {
		return nil, err
	}
	r.decidePacks(opts, p)
	return p, nil
}

// liveChunks walks every snapshot's chunk lists (each list chunk through
// a verified copy) and returns the chunks they need. A snapshot whose
// lists cannot be read is reported; what could be read of it stays live.
func (r *Repo) liveChunks(ctx context.Context, br *blobReader, res *PruneResult) (map[ID]pack.BlobType, error) {
	snaps, err := r.Snapshots(ctx, true)
	if err != nil {
		return nil, err
	}
	live := map[ID]pack.BlobType{}
	var buf []byte
	for n, s := range snaps {
		r.Report("list chunks", int64(n), int64(len(snaps)))
		if s.Manifest == nil {
			continue
		}
		for i, ref := range s.Manifest.Streams {
			err := walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
				if _, seen := live[id]; seen {
					// Walked for an earlier stream: all below is live.
					return nil, errSkipSubtree
				}
				live[id] = pack.BlobList
				b, err := br.load(ctx, pack.BlobList, id, buf)
				buf = b
				return b, err
			}, func(e listEntry) error {
				live[e.ID] = pack.BlobData
				return nil
			})
			if err != nil {
				if transient(err) {
					return nil, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
				}
				res.Problems = append(res.Problems, Problem{"snapshots/" + s.ID.String(),
					fmt.Sprintf("stream %d: its chunk list cannot be read (the snapshot is damaged; what could be read is kept): %v", i, err)})
			}
		}
	}
	return live, nil
}

// packListing reads the storage's list of packs and every claim of the
// cache (the index files and scanned trailers) into p.packs.
func (r *Repo) packListing(ctx context.Context, cache *localCache, p *prunePlan) error {
	err := list(ctx, r.be, backend.TypeData, func(name string, size int64) error {
		id, err := ParseID(name)
		if err != nil {
			r.warn("data/"+name, "not a pack name: left alone")
			return nil
		}
		p.packs[id] = &packFacts{id: id, size: size, frames: map[uint32]*frameFacts{}}
		return nil
	})
	if err != nil {
		return err
	}
	p.res.Packs = len(p.packs)
	return cache.forEachCopy(func(c blobCopy) error {
		pf := p.packs[c.Pack]
		if pf == nil {
			return nil // named by a claim, not stored: nothing to prune
		}
		ff := pf.frames[c.Offset]
		if ff == nil {
			ff = newFrameFacts(c.Length)
			pf.frames[c.Offset] = ff
		}
		ff.claims[c.ID] = true
		if c.RawLen > 0 {
			ff.raw[c.ID] = c.RawLen
		}
		if c.Verified {
			ff.verified[c.ID] = c
		}
		return nil
	})
}

// findKeepers picks, for every live chunk, a copy the master verified: one
// a verified index names (in a pack that is there), else the first claimed
// copy that opens and matches its ID. Chunks with none are missing.
func (r *Repo) findKeepers(ctx context.Context, br *blobReader, cache *localCache, p *prunePlan) error {
	unverified, err := p.keepVerified(cache)
	if err != nil {
		return err
	}
	ks := &keeperSearch{ctx: ctx, r: r, br: br, p: p}
	missing, err := ks.verifyAll(unverified, nil)
	if err != nil || len(missing) == 0 {
		return err
	}
	// Copies no index names: the packs' own trailers.
	if _, err := r.scanTrailers(ctx, cache); err != nil {
		return err
	}
	if err := r.packListing(ctx, cache, p); err != nil {
		return err
	}
	// packListing started the facts afresh: put the keepers back.
	for id, k := range p.keepers {
		p.keep(id, k.copy)
	}
	if missing, err = ks.verifyAll(missing, cache); err != nil {
		return err
	}
	return p.markMissing(cache, missing)
}

// keeperTodo is a live chunk without a verified copy yet, and the copies
// claimed for it.
type keeperTodo struct {
	id     ID
	t      pack.BlobType
	copies []blobCopy
}

// present reports whether a copy lies inside a pack that is stored.
func (p *prunePlan) present(c blobCopy) bool {
	pf := p.packs[c.Pack]
	return pf != nil && int64(c.Offset)+int64(c.Length) <= pf.size
}

// keepVerified keeps, for every live chunk, a copy a verified index names,
// and returns the chunks that have none, in pack order (so that a frame's
// chunks are read one after another; the reader keeps recent frames).
func (p *prunePlan) keepVerified(cache *localCache) ([]keeperTodo, error) {
	var unverified []keeperTodo
	for id, t := range p.live {
		copies, err := cache.Copies(id)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(copies, func(c blobCopy) bool { return c.Verified && c.Type == t && p.present(c) })
		if i >= 0 {
			p.keep(id, copies[i])
		} else {
			unverified = append(unverified, keeperTodo{id, t, copies})
		}
	}
	first := func(td keeperTodo) (ID, uint32) {
		if len(td.copies) == 0 {
			return ID{}, 0
		}
		return td.copies[0].Pack, td.copies[0].Offset
	}
	sort.Slice(unverified, func(i, j int) bool {
		pi, oi := first(unverified[i])
		pj, oj := first(unverified[j])
		if pi != pj {
			return string(pi[:]) < string(pj[:])
		}
		return oi < oj
	})
	return unverified, nil
}

// keeperSearch reads claimed copies of live chunks to find intact ones.
type keeperSearch struct {
	ctx context.Context
	r   *Repo
	br  *blobReader
	p   *prunePlan
	buf []byte
}

// verifyAll looks for an intact copy of every chunk of todo, among the
// copies listed (cache nil) or those the cache has now, and returns the
// chunks with none.
func (ks *keeperSearch) verifyAll(todo []keeperTodo, cache *localCache) ([]keeperTodo, error) {
	var missing []keeperTodo
	for n, td := range todo {
		ks.r.Report("verify", int64(n), int64(len(todo)))
		copies := td.copies
		if cache != nil {
			var err error
			if copies, err = cache.Copies(td.id); err != nil {
				return nil, err
			}
		}
		ok, err := ks.verify(td, copies)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, td)
		}
	}
	ks.r.Report("verify", int64(len(todo)), int64(len(todo)))
	return missing, nil
}

// verify keeps the first of copies that opens and matches the chunk's ID
// (and the frame it is in, when framed); it reports whether there was one.
func (ks *keeperSearch) verify(td keeperTodo, copies []blobCopy) (bool, error) {
	for _, c := range copies {
		if c.Type != td.t || !ks.p.present(c) {
			continue
		}
		out, err := ks.br.loadCopy(ks.ctx, td.t, c.PackedBlob, ks.buf)
		if err != nil {
			if transient(err) {
				return false, err
			}
			ks.r.warn("data/"+c.Pack.String(), fmt.Sprintf("a copy of chunk %s is not intact: %v", td.id.Short(), err))
			continue
		}
		ks.buf = out
		ks.p.res.Verified++
		c.Verified = true
		ks.p.keep(td.id, c)
		if c.Framed {
			if err := ks.r.verifyFrame(ks.br, ks.p, c); err != nil {
				return false, err
			}
		}
		return true, nil
	}
	return false, nil
}

// markMissing reports the live chunks without an intact copy and marks
// the packs that claim them: those are kept.
func (p *prunePlan) markMissing(cache *localCache, missing []keeperTodo) error {
	for _, td := range missing {
		p.res.Missing++
		p.res.Problems = append(p.res.Problems, Problem{"chunk " + td.id.Short(), "no intact copy of this chunk, which a snapshot needs, is stored; the packs that claim it are kept"})
		copies, err := cache.Copies(td.id)
		if err != nil {
			return err
		}
		for _, c := range copies {
			if pf := p.packs[c.Pack]; pf != nil {
				pf.claimsMissing = true
			}
		}
	}
	return nil
}

// keep makes c the keeper of live chunk id.
func (p *prunePlan) keep(id ID, c blobCopy) {
	p.keepers[id] = keeper{copy: c}
	pf := p.packs[c.Pack]
	if pf == nil {
		return
	}
	pf.keepers++
	ff := pf.frames[c.Offset]
	if ff == nil {
		ff = newFrameFacts(c.Length)
		pf.frames[c.Offset] = ff
	}
	ff.claims[id] = true
	ff.verified[id] = c
	if !ff.live[id] {
		ff.live[id] = true
		ff.keeperBlobs = append(ff.keeperBlobs, c)
	}
}

// verifyFrame checks every chunk of a frame the reader just opened for a
// keeper (what a version 3 frame's header lists, or the claims in it): the
// verified copies, live or not, go into the verified index, and the chunks'
// lengths weigh the frame's dead share.
func (r *Repo) verifyFrame(br *blobReader, p *prunePlan, c blobCopy) error {
	pf := p.packs[c.Pack]
	if pf == nil {
		return nil
	}
	ff := pf.frames[c.Offset]
	f := br.cachedFrame(c.Pack, c.Offset)
	if ff == nil || ff.read || f == nil {
		return nil
	}
	ff.read = true
	spans := f.spans
	if spans == nil {
		// Long entries: the claims say where their chunks are.
		spans = map[ID]pack.FrameSpan{}
		for id := range ff.claims {
			copies, err := br.cache.Copies(id)
			if err != nil {
				return err
			}
			for _, cp := range copies {
				if cp.Pack == c.Pack && cp.Offset == c.Offset && cp.Framed {
					spans[id] = pack.FrameSpan{Off: cp.Inner, N: cp.RawLen}
				}
			}
		}
	}
	for id, sp := range spans {
		if uint64(sp.Off)+uint64(sp.N) > uint64(len(f.plain)) {
			continue
		}
		if br.verify(pack.BlobData, id, f.plain[sp.Off:sp.Off+sp.N]) != nil {
			r.warn("data/"+c.Pack.String(), fmt.Sprintf("chunk %s in a frame does not hash to its ID", id.Short()))
			continue
		}
		ff.claims[id] = true
		ff.raw[id] = sp.N
		v := c
		v.ID, v.Verified = id, true
		if f.spans == nil {
			v.Inner, v.RawLen = sp.Off, sp.N
		}
		ff.verified[id] = v
	}
	return nil
}

// readMarks reads the prune marks: those older than the grace period are
// ripe.
func (r *Repo) readMarks(ctx context.Context, opts PruneOptions, p *prunePlan) error {
	marks, err := r.pruneMarks(ctx)
	if err != nil {
		return err
	}
	for name, m := range marks {
		if p.now.Sub(m.Time) >= opts.Grace {
			p.ripeMark = append(p.ripeMark, name)
			for _, id := range m.Packs {
				p.ripe[id] = true
			}
		} else {
			p.res.Pending += len(m.Packs)
		}
	}
	return nil
}

// decidePacks says what happens to each pack, one named case each: it
// holds a keeper (kept, perhaps repacked); it claims a chunk with no
// intact copy, or something is missing and its trailer cannot be read
// (kept); a ripe mark names it (deleted); else it is marked.
func (r *Repo) decidePacks(opts PruneOptions, p *prunePlan) {
	ids := make([]ID, 0, len(p.packs))
	for id := range p.packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b ID) int { return compareID(a, b) })
	for _, id := range ids {
		pf := p.packs[id]
		switch {
		case pf.keepers > 0:
			if !opts.NoRepack && deadShare(pf) >= repackShare {
				p.repack = append(p.repack, id)
			}
		case pf.claimsMissing:
		case p.res.Missing > 0 && len(pf.frames) == 0:
			// Nothing says what it holds, and a chunk is missing: it
			// might be there.
		case p.ripe[id]:
			p.deleteP = append(p.deleteP, id)
			p.res.DeletedBytes += pf.size
		default:
			p.markP = append(p.markP, id)
		}
	}
	p.res.Marked = len(p.markP) + len(p.repack)
	p.res.Deleted = len(p.deleteP)
	p.res.Repacked = len(p.repack)
}

// deadShare estimates the share of a pack's blob bytes no keeper needs: a
// frame counts as live in the share of its claimed chunks that are
// keepers. The header and the trailer (estimated from the claims: at most
// maxEntryLen bytes an entry) are not blob bytes.
func deadShare(pf *packFacts) float64 {
	var live float64
	claims := 0
	for _, ff := range pf.frames {
		claims += len(ff.claims)
		if len(ff.live) == 0 {
			continue
		}
		var all, alive float64
		for id := range ff.claims {
			w := ff.weight(id)
			all += w
			if ff.live[id] {
				alive += w
			}
		}
		live += float64(ff.length) * alive / max(all, alive, 1)
	}
	blobBytes := pf.size - int64(pack.HeaderSize) - int64(4+crypto.Overhead+10+claims*maxEntryLen)
	if blobBytes <= 0 {
		return 0
	}
	return max(0, 1-live/float64(blobBytes))
}

// maxEntryLen is the longest encoding of a blob entry (long, framed).
const maxEntryLen = 1 + 32 + 5*5

// executePrune carries out a plan: repack, one verified index for what
// stays, the old index files removed, ripe packs deleted, new ones marked.
// A crash at any point leaves every keeper indexed (the verified index is
// stored before anything it replaces goes).
func (r *Repo) executePrune(ctx context.Context, p *prunePlan, lock *Lock) error {
	cache, err := r.openCache(ctx)
	if err != nil {
		return err
	}
	if len(p.repack) > 0 {
		if err := r.repack(ctx, cache, p); err != nil {
			return err
		}
	}
	// Not if the lock may have lapsed: an ingest could be counting on
	// what goes.
	if err := lock.Held(); err != nil {
		return err
	}
	if err := r.saveVerifiedIndex(ctx, p); err != nil {
		return err
	}
	for n, id := range p.deleteP {
		r.Report("delete", int64(n), int64(len(p.deleteP)))
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypeData, Name: id.String()}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	for _, name := range p.ripeMark {
		if err := r.be.Remove(ctx, backend.Handle{Type: backend.TypePrune, Name: name}); err != nil && !errors.Is(err, backend.ErrNotFound) {
			return err
		}
	}
	if marks := append(slices.Clone(p.markP), p.repack...); len(marks) > 0 {
		b, err := r.signRecord(pruneContext, pruneMark{Time: p.now.UTC(), Packs: marks})
		if err != nil {
			return err
		}
		if _, err := saveContent(ctx, r.be, backend.TypePrune, b); err != nil {
			return err
		}
	}
	// Leftovers of finished or stale locks.
	if _, err := r.CleanLocks(ctx); err != nil {
		return err
	}
	// Temporary objects of interrupted saves: no writer runs (this prune
	// holds the exclusive lock), but one whose lock went stale might still
	// be finishing a save, so only old ones go.
	if tc, ok := backend.Find[backend.TempCleaner](r.be); ok {
		n, err := tc.CleanTemp(ctx, r.now().Add(-staleAfter))
		if err != nil {
			return fmt.Errorf("%s: removing temporary objects: %w", r.be.Location(), err)
		}
		p.res.TempRemoved = n
	}
	return nil
}

// saveVerifiedIndex stores one verified index file of every keeper and of
// the other copies the master verified in the packs that stay, by pack,
// replacing every index file there is (those of the repack too), which
// are then removed.
func (r *Repo) saveVerifiedIndex(ctx context.Context, p *prunePlan) error {
	byPack := map[ID]map[pack.Blob]bool{}
	add := func(c blobCopy) {
		if byPack[c.Pack] == nil {
			byPack[c.Pack] = map[pack.Blob]bool{}
		}
		byPack[c.Pack][c.Blob] = true
	}
	for _, k := range p.keepers {
		add(k.copy)
	}
	for id := range byPack {
		if pf := p.packs[id]; pf != nil && !slices.Contains(p.repack, id) {
			for _, ff := range pf.frames {
				for _, c := range ff.verified {
					add(c)
				}
			}
		}
	}
	var packs []index.Pack
	for id, set := range byPack {
		blobs := make([]pack.Blob, 0, len(set))
		for b := range set {
			blobs = append(blobs, b)
		}
		slices.SortFunc(blobs, func(a, b pack.Blob) int {
			if c := compareID(a.ID, b.ID); c != 0 {
				return c
			}
			return int(a.Offset) - int(b.Offset)
		})
		packs = append(packs, index.Pack{ID: id, Blobs: blobs})
	}
	slices.SortFunc(packs, func(a, b index.Pack) int { return compareID(a.ID, b.ID) })
	var old []string
	if err := list(ctx, r.be, backend.TypeIndex, func(name string, _ int64) error {
		old = append(old, name)
		return nil
	}); err != nil {
		return err
	}
	return r.saveVerifiedFiles(ctx, packs, old)
}

func compareID(a, b ID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func (r *Repo) pruneMarks(ctx context.Context) (map[string]pruneMark, error) {
	out := map[string]pruneMark{}
	err := list(ctx, r.be, backend.TypePrune, func(name string, _ int64) error {
		obj := "prune/" + name
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypePrune, Name: name}, maxPruneMark)
		if err != nil {
			if transient(err) {
				return err
			}
			r.warn(obj, fmt.Sprintf("skipped: %v", err))
			return nil
		}
		if !verifyContentName(name, b) {
			r.warn(obj, "skipped: content does not match its name")
			return nil
		}
		var m pruneMark
		if err := r.openRecord(pruneContext, b, &m); err != nil {
			r.warn(obj, fmt.Sprintf("skipped: not a mark the master signed: %v", err))
			return nil
		}
		out[name] = m
		return nil
	})
	return out, err
}

// repack copies the keepers of the packs to repack into new packs of a
// master session (indexed as verified at once), and makes those copies the
// keepers: the old packs then hold none and are marked.
func (r *Repo) repack(ctx context.Context, cache *localCache, p *prunePlan) error {
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	session, err := r.newSession()
	if err != nil {
		return err
	}
	defer session.Erase()
	tmp, cleanup, err := r.tempDir("repack")
	if err != nil {
		return err
	}
	defer cleanup()
	w := &Writer{r: r, session: session, cache: cache, tmp: tmp, key: r.master.ID,
		pending: map[ID]bool{}, rnd: newShuffler()}
	repacking := map[ID]bool{}
	for _, id := range p.repack {
		repacking[id] = true
	}
	// Live data chunks go into frames again (version 2 on), in their
	// order in the old packs, which is their order in the streams that
	// wrote them.
	var moved []ID
	for n, pid := range p.repack {
		r.Report("repack", int64(n), int64(len(p.repack)))
		pf := p.packs[pid]
		offs := make([]uint32, 0, len(pf.frames))
		for off := range pf.frames {
			offs = append(offs, off)
		}
		slices.Sort(offs)
		for _, off := range offs {
			for _, c := range pf.frames[off].keeperBlobs {
				moved = append(moved, c.ID)
			}
		}
	}
	sw := w.newFrameWriter()
	var buf []byte
	for _, id := range moved {
		k := p.keepers[id]
		t := k.copy.Type
		data, err := br.loadCopy(ctx, t, k.copy.PackedBlob, buf)
		if err != nil {
			return fmt.Errorf("repacking chunk %s: %w", id.Short(), err)
		}
		buf = data
		if t == pack.BlobData && r.framed() {
			if err := sw.addNew(ctx, id, data); err != nil {
				return err
			}
			continue
		}
		sealed, err := pack.SealBlob(session, t, id, data)
		if err != nil {
			return err
		}
		if err := w.addSealed(ctx, t, id, sealed, len(data)); err != nil {
			return err
		}
	}
	if err := sw.Close(ctx); err != nil {
		return err
	}
	if err := w.Flush(ctx); err != nil {
		return err
	}
	w.Close(ctx)
	// The new copies are the keepers now.
	for _, id := range moved {
		copies, err := cache.Copies(id)
		if err != nil {
			return err
		}
		for _, c := range copies {
			if c.Verified && !repacking[c.Pack] && p.packs[c.Pack] == nil {
				old := p.keepers[id]
				if pf := p.packs[old.copy.Pack]; pf != nil {
					pf.keepers--
				}
				p.keepers[id] = keeper{copy: c}
				break
			}
		}
	}
	return nil
}

// tempDir makes a temporary folder for this process under the cache's
// folder (never /tmp, where a killed run's files would stay): the next run
// of any larder on this machine removes what a killed one left.
func (r *Repo) tempDir(kind string) (string, func(), error) {
	base := filepath.Join(r.localDir(), "tmp")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", nil, err
	}
	cleanTempDirs(base)
	dir, err := os.MkdirTemp(base, kind+"-")
	if err != nil {
		return "", nil, err
	}
	unlock, err := holdTempDir(dir)
	if err != nil {
		_ = os.RemoveAll(dir) // unowned: the next run's cleanTempDirs removes what stays
		return "", nil, err
	}
	// What cannot be removed now, the next run's cleanTempDirs removes.
	return dir, func() { _ = os.RemoveAll(dir); unlock() }, nil
}
