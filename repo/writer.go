package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/crypto"
)

// Writer adds blobs and snapshots to a repository: one ingest session,
// with its own ephemeral key (crypto.Session) that is erased at Close. It
// holds a shared lock for its life. Its methods are safe for concurrent
// use.
type Writer struct {
	r       *Repo
	lock    *Lock
	session *crypto.Session
	cache   *localCache
	tmp     string // packs being written (Repo.tempDir)
	tmpDone func()
	key     crypto.KeyID

	mu      sync.Mutex
	rnd     *mrand.Rand
	open    []*pack.Builder
	pending map[ID]bool  // in open packs or packs not yet indexed
	done    []index.Pack // saved packs not yet in an index file
	// doneBlobs counts the blobs of done.
	doneBlobs int
	stats     IngestStats
	err       error
	closed    bool
	dry       bool // count what would be stored, store nothing
	streams   map[*frameWriter]bool
	// Packs being uploaded: at most cap(slots) at once.
	slots     chan struct{}
	uploads   sync.WaitGroup
	uploadErr atomic.Pointer[error] // the first failed upload's
}

// openPacks is how many packs a writer fills at once; blobs go to one of
// them at random, so their order in the storage says little.
const openPacks = 4

// NewWriter starts an ingest session (master or write key).
func (r *Repo) NewWriter(ctx context.Context) (*Writer, error) {
	if err := r.need("add snapshots", crypto.RoleMaster, crypto.RoleWrite); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return nil, err
	}
	w := &Writer{r: r, lock: lock, pending: map[ID]bool{}, rnd: newShuffler()}
	fail := func(err error) (*Writer, error) {
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if w.cache, err = r.openCache(ctx); err != nil {
		return fail(err)
	}
	w.key = r.KeyID()
	if w.session, err = r.newSession(); err != nil {
		return fail(err)
	}
	if w.tmp, w.tmpDone, err = r.tempDir("packs"); err != nil {
		return fail(err)
	}
	return w, nil
}

// NewDryWriter returns a writer that stores nothing: Add computes chunk IDs
// and counts what would be new, Commit returns the zero ID (ingest
// --dry-run). It takes no lock.
func (r *Repo) NewDryWriter(ctx context.Context) (*Writer, error) {
	if err := r.need("add snapshots", crypto.RoleMaster, crypto.RoleWrite); err != nil {
		return nil, err
	}
	w := &Writer{r: r, pending: map[ID]bool{}, rnd: newShuffler(), dry: true}
	var err error
	if w.cache, err = r.openCache(ctx); err != nil {
		return nil, err
	}
	if w.session, err = r.newSession(); err != nil {
		return nil, err
	}
	return w, nil
}

// newSession starts an ingest session to the master and the auditors.
func (r *Repo) newSession() (*crypto.Session, error) {
	sk, ok := r.key.(sealingKey)
	if !ok {
		return nil, r.need("add snapshots", crypto.RoleMaster, crypto.RoleWrite)
	}
	m, a := sk.Recipients()
	return crypto.NewSession(nil, m, a)
}

// Stats returns what the session has stored so far.
func (w *Writer) Stats() IngestStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Add stores a blob unless an identical one exists; it returns its ID and
// whether it was new.
func (w *Writer) Add(ctx context.Context, t pack.BlobType, data []byte) (ID, bool, error) {
	id, isNew, err := w.claim(t, data)
	if err != nil || !isNew {
		return id, false, err
	}
	if err := w.storeBlob(ctx, t, id, data); err != nil {
		return id, false, err
	}
	return id, true, nil
}

// storeBlob seals a new chunk as a blob of its own and puts it into one of
// the open packs.
func (w *Writer) storeBlob(ctx context.Context, t pack.BlobType, id ID, data []byte) error {
	sealed, err := pack.SealBlob(w.session, t, id, data)
	if err != nil {
		return w.fail(err)
	}
	return w.addSealed(ctx, t, id, sealed, len(data))
}

// blobID is the ID of a chunk of type t.
func (w *Writer) blobID(t pack.BlobType, data []byte) ID {
	if t == pack.BlobList {
		return w.r.listID(data)
	}
	return ID(crypto.ChunkID(w.r.chunkIDKey(), data))
}

// claim computes a chunk's ID and reports whether it is new: not stored
// and not pending in this session. A new chunk becomes pending. (A
// stream's data chunks are claimed in batches: claimMany.)
func (w *Writer) claim(t pack.BlobType, data []byte) (ID, bool, error) {
	id := w.blobID(t, data)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return id, false, w.err
	}
	if t == pack.BlobData {
		w.stats.Chunks++
	}
	has := w.pending[id]
	if !has {
		var err error
		if has, err = w.cache.Has(id); err != nil {
			return id, false, w.failLocked(err)
		}
	}
	if has {
		if t == pack.BlobData {
			w.stats.DedupBytes += uint64(len(data))
		}
		return id, false, nil
	}
	w.pending[id] = true
	return id, true, nil
}

// claimMany is claim for a stream's held data chunks, in stream order: it
// sets isNew[i] for each chunk neither stored nor pending (or held twice:
// the first is new), and those become pending. The cache answers for all
// of them in one lookup. It holds mu through the lookup, as claim does:
// a chunk of another stream leaves pending only once its index file is
// in the cache, so a lookup made before that and a look at pending made
// after it would both miss the chunk, and store it again.
func (w *Writer) claimMany(held []heldChunk, ids []ID, isNew []bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if err := w.cache.HasMany(ids, isNew); err != nil {
		return w.failLocked(err)
	}
	for i, h := range held {
		w.stats.Chunks++
		if w.pending[h.id] || isNew[i] { // isNew holds the cache's answer until here
			w.stats.DedupBytes += uint64(h.n)
			isNew[i] = false
			continue
		}
		w.pending[h.id] = true
		isNew[i] = true
	}
	return nil
}

// addSealed puts a sealed blob into one of the open packs, at random.
func (w *Writer) addSealed(ctx context.Context, t pack.BlobType, id ID, sealed []byte, rawLen int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.pending[id] = true
	if w.dry {
		// Count what would be stored; a dry writer holds no lock and
		// stores nothing.
		w.stats.NewStored += uint64(len(sealed))
		if t == pack.BlobData {
			w.stats.NewChunks++
			w.stats.NewRaw += uint64(rawLen)
		}
		return nil
	}
	p, i, err := w.somePack()
	if err != nil {
		return w.failLocked(err)
	}
	if err := p.Add(t, id, sealed, rawLen); err != nil {
		return w.failLocked(err)
	}
	w.stats.NewStored += uint64(len(sealed))
	if t == pack.BlobData {
		w.stats.NewChunks++
		w.stats.NewRaw += uint64(rawLen)
	}
	return w.maybeSave(ctx, p, i)
}

// addFrame puts a sealed frame into one of the open packs, at random.
func (w *Writer) addFrame(ctx context.Context, sealed []byte, frameRaw int, entries []pack.Blob) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.stats.NewStored += uint64(len(sealed))
	if w.dry {
		return nil
	}
	p, i, err := w.somePack()
	if err != nil {
		return w.failLocked(err)
	}
	if err := p.AddFrame(sealed, frameRaw, entries); err != nil {
		return w.failLocked(err)
	}
	return w.maybeSave(ctx, p, i)
}

// somePack returns one of the open packs, chosen at random (made when
// missing). Called with mu held.
func (w *Writer) somePack() (*pack.Builder, int, error) {
	i := w.rnd.IntN(openPacks)
	for len(w.open) <= i {
		p, err := pack.NewBuilder(w.tmp, w.session.EphemeralPublic(), w.key, w.r.entries())
		if err != nil {
			return nil, 0, err
		}
		w.open = append(w.open, p)
	}
	return w.open[i], i, nil
}

// maybeSave stores open pack i when it is full. Called with mu held.
func (w *Writer) maybeSave(ctx context.Context, p *pack.Builder, i int) error {
	if p.Size() < int64(w.r.cfg.PackSize) {
		return nil
	}
	w.open[i] = nil
	w.open = append(w.open[:i], w.open[i+1:]...)
	if err := w.savePack(ctx, p); err != nil {
		return w.failLocked(err)
	}
	return nil
}

// frameWriter stores the data chunks of one stream, in order. In a
// repository of version 2 or later its new chunks are gathered into
// frames; in version 1 each is a blob of its own. Close stores the last
// frame; a writer does not commit while a frameWriter holds chunks.
//
// Chunks are checked against the repository in batches: Add holds each
// chunk (a copy of its bytes) until maxHeldChunks or maxHeldBytes are
// held, then one cache lookup answers for all of them and the new ones
// are stored, in order (resolve). A chunk's ID is known as soon as it is
// hashed, so its list entry does not wait for the batch; only its bytes
// do, as a frame's do until it is sealed.
type frameWriter struct {
	w       *Writer
	buf     []byte
	entries []pack.Blob
	// The chunks waiting for their check, in order, and their bytes one
	// after another.
	held    []heldChunk
	heldBuf []byte
	// resolve's, reused.
	ids   []ID
	isNew []bool
}

// heldChunk is a chunk a frameWriter holds until its batch is checked.
type heldChunk struct {
	id ID
	n  int // its bytes in heldBuf (after those of the chunks before it)
}

// Bounds of a stream's held chunks (frameWriter). Per chunk, one lookup
// in a batch costs a fraction of a read transaction of its own
// (BenchmarkIndexLookup); text chunks average 2 KiB, so a batch of text
// is about 256 chunks, one of bulk (64 KiB) about 16. At most
// maxHeldBytes plus one chunk are held per stream.
const (
	maxHeldChunks = 256
	maxHeldBytes  = 1 << 20
)

// newFrameWriter returns a frameWriter for one stream (one goroutine).
func (w *Writer) newFrameWriter() *frameWriter {
	sw := &frameWriter{w: w}
	w.mu.Lock()
	if w.streams == nil {
		w.streams = map[*frameWriter]bool{}
	}
	w.streams[sw] = true
	w.mu.Unlock()
	return sw
}

// Add takes a data chunk (copied: data may be reused once it returns) and
// returns its ID. The chunk is stored unless an identical one exists, once
// its batch is checked (resolve): an error may be a chunk's held before.
func (sw *frameWriter) Add(ctx context.Context, data []byte) (ID, error) {
	id := sw.w.blobID(pack.BlobData, data)
	sw.held = append(sw.held, heldChunk{id: id, n: len(data)})
	sw.heldBuf = append(sw.heldBuf, data...)
	if len(sw.held) >= maxHeldChunks || len(sw.heldBuf) >= maxHeldBytes {
		return id, sw.resolve(ctx)
	}
	return id, nil
}

// resolve checks the held chunks against the repository, in one batch,
// and stores the new ones, in order. They are let go whatever happens: a
// failure fails the writer.
func (sw *frameWriter) resolve(ctx context.Context) error {
	if len(sw.held) == 0 {
		return nil
	}
	defer func() { sw.held, sw.heldBuf = sw.held[:0], sw.heldBuf[:0] }()
	w := sw.w
	sw.ids = sw.ids[:0]
	for _, h := range sw.held {
		sw.ids = append(sw.ids, h.id)
	}
	sw.isNew = slices.Grow(sw.isNew[:0], len(sw.held))[:len(sw.held)]
	if err := w.claimMany(sw.held, sw.ids, sw.isNew); err != nil {
		return err
	}
	off := 0
	for i, h := range sw.held {
		data := sw.heldBuf[off : off+h.n]
		off += h.n
		if !sw.isNew[i] {
			continue
		}
		var err error
		if w.r.framed() {
			err = sw.addNew(ctx, h.id, data)
		} else {
			err = w.storeBlob(ctx, pack.BlobData, h.id, data)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// addNew adds a chunk to the frame without looking for it in the
// repository (prune's repack copies chunks the index names).
func (sw *frameWriter) addNew(ctx context.Context, id ID, data []byte) error {
	w := sw.w
	w.mu.Lock()
	w.pending[id] = true
	w.stats.NewChunks++
	w.stats.NewRaw += uint64(len(data))
	w.mu.Unlock()
	return sw.gather(ctx, id, data)
}

// gather appends a chunk to the frame, storing the frame when it is full.
func (sw *frameWriter) gather(ctx context.Context, id ID, data []byte) error {
	sw.entries = append(sw.entries, pack.Blob{ID: id, RawLen: uint32(len(data)), Inner: uint32(len(sw.buf))})
	sw.buf = append(sw.buf, data...)
	if len(sw.buf) >= pack.FrameTarget || len(sw.entries) >= pack.MaxFrameChunks {
		return sw.flush(ctx)
	}
	return nil
}

// flush seals and stores the gathered chunks as a frame.
func (sw *frameWriter) flush(ctx context.Context) error {
	if len(sw.entries) == 0 {
		return nil
	}
	plain := sw.buf
	if sw.w.r.cfg.Version >= 3 {
		// The frame's header says where its chunks are (short entries
		// do not).
		plain = append(pack.AppendFrameHeader(make([]byte, 0, 10+len(sw.entries)*37+len(sw.buf)), sw.entries), sw.buf...)
	}
	sealed, err := pack.SealFrame(sw.w.session, plain)
	if err != nil {
		return sw.w.fail(err)
	}
	err = sw.w.addFrame(ctx, sealed, len(sw.buf), sw.entries)
	sw.buf, sw.entries = sw.buf[:0], sw.entries[:0]
	return err
}

// Close stores the held chunks that are new and the last frame.
func (sw *frameWriter) Close(ctx context.Context) error {
	err := sw.resolve(ctx)
	if err == nil {
		err = sw.flush(ctx)
	}
	sw.w.mu.Lock()
	delete(sw.w.streams, sw)
	sw.w.mu.Unlock()
	sw.buf, sw.entries, sw.held, sw.heldBuf = nil, nil, nil, nil
	return err
}

func (w *Writer) fail(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failLocked(err)
}

func (w *Writer) failLocked(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// savePack finishes a pack and hands it to an uploader: at most
// r.uploads packs are uploaded at once (the caller waits for a place), each
// from its temporary file. When a pack is stored it joins the ones an index
// file will name; every few packs an index file names them (so a crash
// loses little). Called with mu held.
func (w *Writer) savePack(ctx context.Context, p *pack.Builder) error {
	id, path, err := p.Finish(w.r.indexKey())
	if err != nil {
		p.Discard()
		return err
	}
	// This machine saved it: its own deduplicate against it, whoever
	// else claims what.
	if err := w.cache.markOwn(id); err != nil {
		_ = os.Remove(path) // in the temporary folder Close removes
		return err
	}
	if w.slots == nil {
		w.slots = make(chan struct{}, w.r.uploadSlots())
	}
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		_ = os.Remove(path) // in the temporary folder Close removes
		return ctx.Err()
	}
	if err := w.uploadErr.Load(); err != nil {
		// An upload failed while this one waited for its place: do not
		// spend another retry budget on a storage that is not answering.
		<-w.slots
		_ = os.Remove(path) // in the temporary folder Close removes
		return *err
	}
	w.uploads.Add(1)
	go func() {
		defer w.uploads.Done()
		err := w.upload(ctx, id, path)
		if err != nil {
			w.uploadErr.CompareAndSwap(nil, &err) // before the place is free
		}
		<-w.slots
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			_ = w.failLocked(err) // recorded: the writer's next call returns it
			return
		}
		w.done = append(w.done, index.Pack{ID: id, Blobs: p.Blobs()})
		w.doneBlobs += len(p.Blobs())
		if len(w.done) >= maxPacksPerIndex || w.doneBlobs >= maxBlobsPerIndex {
			if err := w.saveIndex(ctx); err != nil {
				_ = w.failLocked(err) // recorded: the writer's next call returns it
			}
		}
	}()
	return nil
}

// upload stores a finished pack from its temporary file, and removes the
// file.
func (w *Writer) upload(ctx context.Context, id ID, path string) error {
	// The pack's file is in the temporary folder Close removes, whatever
	// fails here; it is only read.
	defer func() { _ = os.Remove(path) }()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	src, err := backend.File(f)
	if err == nil {
		err = w.r.be.Save(ctx, backend.Handle{Type: backend.TypeData, Name: id.String()}, src)
	}
	if err != nil && !errors.Is(err, backend.ErrExists) {
		return fmt.Errorf("%s: saving pack %s: %w", w.r.be.Location(), id.Short(), err)
	}
	return nil
}

// saveIndex writes an index file for the saved packs and adds them to the
// cache. Called with mu held.
func (w *Writer) saveIndex(ctx context.Context) error {
	if len(w.done) == 0 {
		return nil
	}
	// A master's session is verified by its making: the master sealed
	// what it read itself (prune's repack, or the master's own ingest).
	f := &index.File{Packs: w.done, Entries: w.r.entries(), Verified: w.r.master != nil}
	sealed, err := f.Seal(w.r.indexKey(), w.r.signIndex)
	if err != nil {
		return err
	}
	name, err := saveContent(ctx, w.r.be, backend.TypeIndex, sealed)
	if err != nil {
		return fmt.Errorf("%s: saving an index file: %w", w.r.be.Location(), err)
	}
	if err := w.cache.addIndex(name, f); err != nil {
		return err
	}
	for _, p := range w.done {
		for _, b := range p.Blobs {
			delete(w.pending, b.ID)
		}
	}
	w.done, w.doneBlobs = nil, 0
	return nil
}

// Flush stores every open pack and the index file that names them, after
// the packs uploading are stored. Every stream must be closed first.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	if w.err != nil {
		defer w.mu.Unlock()
		return w.err
	}
	for sw := range w.streams {
		if len(sw.entries) > 0 || len(sw.held) > 0 {
			w.mu.Unlock()
			return errors.New("repo: a stream's chunks are still gathered in a frame (stream not closed)")
		}
	}
	var err error
	for _, p := range w.open {
		if err != nil || len(p.Blobs()) == 0 {
			p.Discard()
			continue
		}
		err = w.savePack(ctx, p)
	}
	w.open = nil
	w.mu.Unlock()
	w.uploads.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		return w.failLocked(err)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.saveIndex(ctx); err != nil {
		return w.failLocked(err)
	}
	return nil
}

// storeTree returns a tree builder that stores a stream's chunk list.
func (w *Writer) storeTree() *treeBuilder {
	return newTreeBuilder(func(ctx context.Context, data []byte) (ID, error) {
		id, _, err := w.Add(ctx, pack.BlobList, data)
		return id, err
	})
}

// Commit flushes the session and stores a snapshot of m, chained to this
// key's previous snapshot. It returns the snapshot's ID.
func (w *Writer) Commit(ctx context.Context, m *Manifest, original [32]byte) (ID, error) {
	if err := m.checkClaims(); err != nil {
		return ID{}, fmt.Errorf("snapshot of %s: %w", m.Name, err)
	}
	if w.dry {
		m.Stats = w.Stats()
		w.r.lastStats = m.Stats
		return ID{}, nil
	}
	if err := w.Flush(ctx); err != nil {
		return ID{}, err
	}
	// Two commits of one key must not both take the next place in its
	// chain (overlapping cron runs): on this machine they take turns.
	// (The key of a forum server lives on that server; commits of a key
	// copied to two machines can still fork its chain, and audit says so.)
	unlock, err := w.r.commitTurn(ctx, w.key)
	if err != nil {
		return ID{}, err
	}
	defer unlock()
	if w.lock != nil {
		if err := w.lock.Held(); err != nil {
			return ID{}, err
		}
	}
	seq, prev, err := w.r.chainHead(ctx, w.key)
	if err != nil {
		return ID{}, err
	}
	// Snapshots of this key that this machine did not make follow its
	// last one: the key is used elsewhere (stolen?). Chain after this
	// machine's own snapshot instead, so the forgeries stay off the chain
	// a revocation will accept (audit reports the fork).
	mine, mySeq, ok, err := w.cache.head(headKey(w.key))
	if err != nil {
		return ID{}, err
	}
	if ok && mine != prev && mySeq < seq && w.r.stillKnown(ctx, mine) {
		w.r.noticeForeign(w.key, seq, prev, mine, mySeq)
		seq, prev = mySeq, mine
	}
	if seq >= MaxSeq {
		return ID{}, fmt.Errorf("%s: the chain of key %s is full (%d snapshots): if this machine did not make them, the key is stolen; have the master revoke it and make a new one", w.r.be.Location(), w.key, seq)
	}
	m.Stats = w.Stats()
	body, err := jsonMarshal(m)
	if err != nil {
		return ID{}, err
	}
	var cert []byte
	if w.r.cfg.Version >= 3 {
		// The manifest's size says little (PADME), and the envelope
		// carries the writer's certificate.
		body = crypto.Pad(nil, body)
		if cert, err = w.r.ownRecord(); err != nil {
			return ID{}, err
		}
	}
	sk, ok := w.r.key.(sealingKey)
	if !ok {
		return ID{}, w.r.need("add snapshots", crypto.RoleMaster, crypto.RoleWrite)
	}
	masterPub, auditPub := sk.Recipients()
	env := &Envelope{Writer: w.key, Cert: cert, Seq: seq + 1, Prev: prev, Claimed: w.r.now().UTC(),
		Original: w.r.OriginalTag(original)}
	// The body is sealed to the master and the auditors; its associated
	// data binds it to the envelope's writer and place in the chain.
	sealed, err := crypto.SealTo(nil, body, env.bodyAD(), masterPub, auditPub)
	if err != nil {
		return ID{}, err
	}
	env.Body = sealed
	signed := env.marshalSigned()
	sig, err := w.r.key.Sign(crypto.ContextManifest, signed)
	if err != nil {
		return ID{}, err
	}
	stored := append(signed, sig...)
	id := ID(sha256.Sum256(stored))
	// This machine's record of its own chain (before the save: a crash
	// just after it must not make the next commit take its own snapshot
	// for someone else's; a record of a snapshot that was never stored
	// is passed by): the next commit tells snapshots someone else made
	// with this key from its own.
	if err := w.cache.setHead(headKey(w.key), id, env.Seq); err != nil {
		return ID{}, err
	}
	if _, err := saveContent(ctx, w.r.be, backend.TypeSnapshot, stored); err != nil {
		return ID{}, fmt.Errorf("%s: saving the snapshot: %w", w.r.be.Location(), err)
	}
	w.r.lastStats = m.Stats
	return id, nil
}

func headKey(k crypto.KeyID) []byte { return k[:] }

// noticeForeign warns that the key's chain in the repository goes on past
// the last snapshot this machine committed with it: someone else holds the
// key (a stolen key, or the key copied to a second machine).
func (r *Repo) noticeForeign(key crypto.KeyID, seq uint64, head, mine ID, mySeq uint64) {
	r.warn("chain of key "+key.String(), fmt.Sprintf(
		"snapshots up to #%d (the newest %s) that this machine did not make follow its last one (#%d %s): the key is used elsewhere; if that is not you, the key is stolen: have the master revoke it (larder key revoke %s --last %s); this snapshot follows %s",
		seq, head.Short(), mySeq, mine.Short(), key, mine.Short(), mine.Short()))
}

// stillKnown reports whether a snapshot is stored or recorded as
// forgotten (its place in a chain stands).
func (r *Repo) stillKnown(ctx context.Context, id ID) bool {
	if _, err := r.be.Stat(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: id.String()}); err == nil {
		return true
	}
	fs, err := r.forgotten(ctx)
	if err != nil {
		return false
	}
	for _, f := range fs {
		if f.ID == id {
			return true
		}
	}
	return false
}

// ownRecord is the certificate of the key that writes (the master's own
// for a master).
func (r *Repo) ownRecord() ([]byte, error) {
	var rec *crypto.KeyRecord
	var err error
	switch {
	case r.master != nil:
		if rec, err = r.master.Record(); err != nil {
			return nil, err
		}
	case r.write != nil:
		rec = r.write.Record()
	default:
		return nil, r.need("add snapshots", crypto.RoleMaster, crypto.RoleWrite)
	}
	return rec.MarshalBinary()
}

// Close ends the session: open packs are dropped (their blobs are in no
// index, so nothing refers to them), the ephemeral key is erased and the
// lock released. A lock that cannot be removed is a warning (Warnings): it
// goes stale, and larder unlock removes it.
func (w *Writer) Close(ctx context.Context) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	for _, p := range w.open {
		p.Discard()
	}
	w.open = nil
	w.mu.Unlock()
	w.uploads.Wait()
	if w.session != nil {
		w.session.Erase()
	}
	if w.tmpDone != nil {
		w.tmpDone()
	}
	if w.lock != nil {
		w.lock.unlockWarn(ctx)
	}
}

// signIndex signs a verified index file (master only).
func (r *Repo) signIndex(b []byte) ([]byte, error) {
	if r.master == nil {
		return nil, r.need("verify index files", crypto.RoleMaster)
	}
	return r.master.Sign(index.Context, b)
}

// bodyAD is the associated data of a snapshot's sealed body.
func (e *Envelope) bodyAD() []byte {
	b := append([]byte("larder manifest body v1\x00"), e.Writer[:]...)
	b = append(b, e.Prev[:]...)
	b = append(b, e.Original[:]...)
	return fmt.Appendf(b, "%d", e.Seq)
}

// chainHead returns the sequence number and ID of a key's newest snapshot
// (0 and the zero ID if none): of those whose signature verifies (junk in
// snapshots/ is passed by), or forgotten.
func (r *Repo) chainHead(ctx context.Context, key crypto.KeyID) (uint64, ID, error) {
	kr, err := r.keyring(ctx)
	if err != nil {
		return 0, ID{}, err
	}
	var seq uint64
	var head ID
	err = list(ctx, r.be, backend.TypeSnapshot, func(name string, _ int64) error {
		env, err := loadEnvelope(ctx, r.be, name)
		if err != nil {
			if transient(err) {
				return err
			}
			r.warn("snapshots/"+name, fmt.Sprintf("skipped: %v", err))
			return nil
		}
		if env.Writer != key || env.Seq <= seq || r.verifyEnvelope(env, kr) != nil {
			return nil
		}
		if id, err := ParseID(name); err == nil {
			seq, head = env.Seq, id
		}
		return nil
	})
	if err != nil {
		return 0, ID{}, err
	}
	// A forgotten head still counts: the chain goes on from it.
	fs, err := r.forgotten(ctx)
	if err != nil {
		return 0, ID{}, err
	}
	for _, f := range fs {
		if f.Writer == key && f.Seq > seq && f.Seq <= MaxSeq {
			seq, head = f.Seq, f.ID
		}
	}
	return seq, head, nil
}

// commitTurn waits until no other process of this machine is committing a
// snapshot of key to this repository.
func (r *Repo) commitTurn(ctx context.Context, key crypto.KeyID) (func(), error) {
	dir := r.localDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("serialising commits: %w", err)
	}
	unlock, err := flockFile(ctx, filepath.Join(dir, "commit-"+key.String()+".lock"))
	if err != nil {
		return nil, fmt.Errorf("serialising commits: %w", err)
	}
	return unlock, nil
}
