package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/larder/larder/repo/backend"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/larder/larder/crypto"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// keyRecords reads the key records (certificates) stored in keys/,
// verified against the master's signing key.
func (r *Repo) keyRecords(ctx context.Context) (map[crypto.KeyID]*crypto.KeyRecord, error) {
	out := map[crypto.KeyID]*crypto.KeyRecord{}
	err := list(ctx, r.be, backend.TypeKey, func(name string, _ int64) error {
		if !strings.HasSuffix(name, ".cert") {
			return nil
		}
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeKey, Name: name}, crypto.MaxCertificateSize+64)
		if err != nil {
			return err
		}
		rec, err := crypto.ParseKeyRecord(b)
		if err != nil || rec.Verify(r.cfg.master.SignPub) != nil || rec.ID.String()+".cert" != name {
			return fmt.Errorf("%s: keys/%s: %w: not a key record certified by the master", r.be.Location(), name, ErrCorrupt)
		}
		out[rec.ID] = rec
		return nil
	})
	return out, err
}

// Snapshots lists the snapshots, oldest first (by their writers' claimed
// times, then chain order), with verified envelope signatures. Any key can
// list them; a master or audit key also opens their manifests.
func (r *Repo) Snapshots(ctx context.Context, open bool) ([]*Snapshot, error) {
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	err = list(ctx, r.be, backend.TypeSnapshot, func(name string, _ int64) error {
		env, err := loadEnvelope(ctx, r.be, name)
		if err != nil {
			return err
		}
		if err := verifyEnvelope(env, recs); err != nil {
			return fmt.Errorf("%s: snapshots/%s: %w", r.be.Location(), name, err)
		}
		id, _ := ParseID(name)
		s := &Snapshot{ID: id, Envelope: env}
		if open && (r.master != nil || r.audit != nil) {
			if s.Manifest, err = r.openManifest(env); err != nil {
				return fmt.Errorf("%s: snapshots/%s: %w", r.be.Location(), name, err)
			}
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Envelope, out[j].Envelope
		if !a.Claimed.Equal(b.Claimed) {
			return a.Claimed.Before(b.Claimed)
		}
		return a.Seq < b.Seq
	})
	return out, nil
}

// ErrSignature: a snapshot's signature does not verify.
var ErrSignature = errors.New("signature does not verify")

func verifyEnvelope(env *Envelope, recs map[crypto.KeyID]*crypto.KeyRecord) error {
	rec := recs[env.Writer]
	if rec == nil {
		return fmt.Errorf("%w: writer key %s is unknown", ErrSignature, env.Writer)
	}
	if rec.Role != crypto.RoleWrite && rec.Role != crypto.RoleMaster {
		return fmt.Errorf("%w: key %s is an %v key", ErrSignature, env.Writer, rec.Role)
	}
	if err := crypto.Verify(rec.SignPub, crypto.ContextManifest, env.signed, env.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrSignature, err)
	}
	return nil
}

func (r *Repo) openManifest(env *Envelope) (*Manifest, error) {
	var plain []byte
	var err error
	switch {
	case r.master != nil:
		plain, err = r.master.OpenSealed(env.Body, env.bodyAD())
	case r.audit != nil:
		plain, err = r.audit.OpenSealed(env.Body, env.bodyAD())
	default:
		return nil, r.need("open snapshots", crypto.RoleMaster, crypto.RoleAudit)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	return &m, nil
}

// FindSnapshot returns the snapshot whose ID starts with prefix (at least
// 4 hex digits), opened when the key can.
func (r *Repo) FindSnapshot(ctx context.Context, prefix string) (*Snapshot, error) {
	prefix = strings.ToLower(prefix)
	if len(prefix) < 4 {
		return nil, fmt.Errorf("snapshot ID %q is too short (give at least 4 hex digits)", prefix)
	}
	var found []string
	err := list(ctx, r.be, backend.TypeSnapshot, func(name string, _ int64) error {
		if strings.HasPrefix(name, prefix) {
			found = append(found, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w: no snapshot %s", r.be.Location(), backend.ErrNotFound, prefix)
	case 1:
	default:
		return nil, fmt.Errorf("%s: snapshot ID %s is ambiguous (%d snapshots)", r.be.Location(), prefix, len(found))
	}
	env, err := loadEnvelope(ctx, r.be, found[0])
	if err != nil {
		return nil, err
	}
	recs, err := r.keyRecords(ctx)
	if err != nil {
		return nil, err
	}
	if err := verifyEnvelope(env, recs); err != nil {
		return nil, fmt.Errorf("%s: snapshots/%s: %w", r.be.Location(), found[0], err)
	}
	id, _ := ParseID(found[0])
	s := &Snapshot{ID: id, Envelope: env}
	if r.master != nil || r.audit != nil {
		if s.Manifest, err = r.openManifest(env); err != nil {
			return nil, fmt.Errorf("%s: snapshots/%s: %w", r.be.Location(), found[0], err)
		}
	}
	return s, nil
}

// blobReader fetches and opens blobs (master: data and lists; audit:
// lists).
type blobReader struct {
	r     *Repo
	cache *Cache
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
}

// openedFrame is a frame's plaintext.
type openedFrame struct {
	pack   ID
	offset uint32
	plain  []byte
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

func (br *blobReader) sessionKeys(ctx context.Context, pack ID) (*crypto.SessionKeys, error) {
	br.mu.Lock()
	k := br.keys[pack]
	br.mu.Unlock()
	if k != nil {
		return k, nil
	}
	hdr, err := loadRange(ctx, br.r.be, backend.Handle{Type: backend.TypeData, Name: pack.String()}, 0, int64(packHeaderSize))
	if err != nil {
		return nil, err
	}
	ph, err := parsePackHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", pack.Short(), err)
	}
	switch {
	case br.r.master != nil:
		k, err = br.r.master.OpenSession(ph.Ephemeral)
	case br.r.audit != nil:
		k, err = br.r.audit.OpenSession(ph.Ephemeral)
	default:
		return nil, br.r.need("read blobs", crypto.RoleMaster, crypto.RoleAudit)
	}
	if err != nil {
		return nil, err
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
	br.keys[pack] = k
	br.order = append(br.order, pack)
	return k, nil
}

// load returns a blob's plaintext (appended to dst[:0]).
func (br *blobReader) load(ctx context.Context, t BlobType, id ID, dst []byte) ([]byte, error) {
	loc, ok := br.cache.Lookup(id)
	if !ok {
		return nil, fmt.Errorf("%s: %w: blob %s is in no index", br.r.be.Location(), backend.ErrNotFound, id.Short())
	}
	if loc.Type != t {
		return nil, fmt.Errorf("%s: %w: blob %s is a %d blob, not %d", br.r.be.Location(), ErrCorrupt, id.Short(), loc.Type, t)
	}
	if loc.Framed {
		return br.loadFramed(ctx, loc, dst)
	}
	k, sealed, err := br.fetch(ctx, loc)
	if err != nil {
		return nil, err
	}
	plain, padded, err := openBlob(k, t, id, sealed, loc.RawLen, dst, br.padded)
	br.padded = padded
	if err != nil {
		return nil, fmt.Errorf("%s: pack %s: %w", br.r.be.Location(), loc.Pack.Short(), err)
	}
	if t == BlobData {
		if err := br.verify(id, plain); err != nil {
			return nil, err
		}
	}
	return plain, nil
}

// fetch loads the sealed bytes of a blob (or its frame) and the session
// keys of its pack.
func (br *blobReader) fetch(ctx context.Context, loc PackedBlob) (*crypto.SessionKeys, []byte, error) {
	k, err := br.sessionKeys(ctx, loc.Pack)
	if err != nil {
		return nil, nil, err
	}
	sealed, err := loadRangeInto(ctx, br.r.be, backend.Handle{Type: backend.TypeData, Name: loc.Pack.String()}, int64(loc.Offset), int64(loc.Length), br.sealed)
	if err != nil {
		return nil, nil, err
	}
	br.sealed = sealed
	return k, sealed, nil
}

// verify checks a data chunk against its ID (the master holds the
// chunk-ID key).
func (br *blobReader) verify(id ID, plain []byte) error {
	if br.r.master != nil && ID(crypto.ChunkID(&br.r.master.ChunkIDKey, plain)) != id {
		return fmt.Errorf("%s: %w: blob %s does not hash to its ID", br.r.be.Location(), ErrCorrupt, id.Short())
	}
	return nil
}

// loadFramed returns a framed chunk's plaintext (appended to dst[:0]).
func (br *blobReader) loadFramed(ctx context.Context, loc PackedBlob, dst []byte) ([]byte, error) {
	f, err := br.frame(ctx, loc)
	if err != nil {
		return nil, err
	}
	if uint32(len(f.plain)) != loc.FrameRaw {
		return nil, fmt.Errorf("%s: %w: the frame of blob %s holds %d bytes, the index says %d", br.r.be.Location(), ErrCorrupt, loc.ID.Short(), len(f.plain), loc.FrameRaw)
	}
	plain := append(dst[:0], f.plain[loc.Inner:loc.Inner+loc.RawLen]...)
	if err := br.verify(loc.ID, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

// frame returns the opened frame of a framed blob, from the recent ones
// or from the storage.
func (br *blobReader) frame(ctx context.Context, loc PackedBlob) (*openedFrame, error) {
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
	for len(br.frames) > 0 && br.frameBytes+int(loc.FrameRaw) > maxFrameCache {
		old := br.frames[0]
		br.frames = br.frames[1:]
		br.frameBytes -= len(old.plain)
		buf = old.plain
	}
	plain, padded, err := openFrame(k, loc.ID, sealed, loc.FrameRaw, buf, br.padded)
	br.padded = padded
	if err != nil {
		return nil, fmt.Errorf("%s: pack %s: %w", br.r.be.Location(), loc.Pack.Short(), err)
	}
	f := &openedFrame{pack: loc.Pack, offset: loc.Offset, plain: plain}
	br.frames = append(br.frames, f)
	br.frameBytes += len(plain)
	return f, nil
}

func (br *blobReader) close() {
	br.mu.Lock()
	defer br.mu.Unlock()
	for _, k := range br.keys {
		k.Erase()
	}
	br.keys = nil
}

// WalkStream calls fn for each data chunk of a stream (master or audit).
func (r *Repo) WalkStream(ctx context.Context, ref StreamRef, fn func(ListEntry) error) error {
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	var buf []byte
	return walkTree(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
		b, err := br.load(ctx, BlobList, id, buf)
		buf = b
		return b, err
	}, fn)
}

// OpenStream returns a reader of a stream's bytes (master only). It
// fetches the chunks in order; memory is about one chunk and one list
// chunk per tree level.
func (r *Repo) OpenStream(ctx context.Context, ref StreamRef) (io.ReadCloser, error) {
	if err := r.need("read snapshot contents", crypto.RoleMaster); err != nil {
		return nil, err
	}
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer br.close()
		var total uint64
		var chunk []byte
		err := r.WalkStream(ctx, ref, func(e ListEntry) error {
			var err error
			chunk, err = br.load(ctx, BlobData, e.ID, chunk)
			if err != nil {
				return err
			}
			if uint32(len(chunk)) != e.Len {
				return fmt.Errorf("%w: chunk %s has %d bytes, its list says %d", ErrCorrupt, e.ID.Short(), len(chunk), e.Len)
			}
			total += uint64(len(chunk))
			_, err = pw.Write(chunk)
			return err
		})
		if err == nil && total != ref.Len {
			err = fmt.Errorf("%w: stream of %d bytes, the snapshot says %d", ErrCorrupt, total, ref.Len)
		}
		pw.CloseWithError(err)
	}()
	return &streamReader{pr: pr, cancel: cancel}, nil
}

type streamReader struct {
	pr     *io.PipeReader
	cancel context.CancelFunc
}

func (s *streamReader) Read(p []byte) (int, error) { return s.pr.Read(p) }
func (s *streamReader) Close() error {
	s.cancel()
	return s.pr.Close()
}

var _ = bytes.Equal
