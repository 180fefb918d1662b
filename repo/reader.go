package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/crypto"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// keyring is what keys/ says: the key records the master certified and
// its revocations. Objects that are not what they should be are reported
// and skipped: a damaged record affects only its key's snapshots (and not
// those of version 2 envelopes, which carry their certificate).
type keyring struct {
	recs    map[crypto.KeyID]*crypto.KeyRecord
	revoked map[crypto.KeyID]*crypto.Revocation
}

func (r *Repo) keyring(ctx context.Context) (*keyring, error) {
	kr := &keyring{recs: map[crypto.KeyID]*crypto.KeyRecord{}, revoked: map[crypto.KeyID]*crypto.Revocation{}}
	master := r.cfg.master.SignPub
	err := list(ctx, r.be, backend.TypeKey, func(name string, _ int64) error {
		obj := "keys/" + name
		stem, ext, _ := strings.Cut(name, ".")
		if ext != "cert" && ext != "revoked" {
			return nil
		}
		b, err := loadAll(ctx, r.be, backend.Handle{Type: backend.TypeKey, Name: name}, crypto.MaxRevocationSize+crypto.MaxCertificateSize)
		if err != nil {
			if transient(err) {
				return err
			}
			r.warn(obj, fmt.Sprintf("skipped: %v", err))
			return nil
		}
		switch ext {
		case "cert":
			rec, err := crypto.ParseKeyRecord(b)
			if err != nil || rec.Verify(master) != nil || rec.ID.String() != stem {
				r.warn(obj, "skipped: not a key record certified by the master")
				return nil
			}
			kr.recs[rec.ID] = rec
		case "revoked":
			rev, err := crypto.ParseRevocation(b)
			if err != nil || rev.Verify(master) != nil || rev.KeyID.String() != stem {
				r.warn(obj, "skipped: not a revocation signed by the master")
				return nil
			}
			kr.revoked[rev.KeyID] = rev
		}
		return nil
	})
	return kr, err
}

// keyRecords reads the key records (certificates) stored in keys/,
// verified against the master's signing key.
func (r *Repo) keyRecords(ctx context.Context) (map[crypto.KeyID]*crypto.KeyRecord, error) {
	kr, err := r.keyring(ctx)
	if err != nil {
		return nil, err
	}
	return kr.recs, nil
}

// ErrSignature: a snapshot's signature does not verify.
var ErrSignature = errors.New("signature does not verify")

// verifyEnvelope checks a snapshot's signature: by a write (or the
// master) key the master certified, in the envelope (v2) or in keys/.
func (r *Repo) verifyEnvelope(env *Envelope, kr *keyring) error {
	var rec *crypto.KeyRecord
	if env.Cert != nil {
		c, err := crypto.ParseKeyRecord(env.Cert)
		if err != nil || c.Verify(r.cfg.master.SignPub) != nil {
			return fmt.Errorf("%w: its certificate is not the master's", ErrSignature)
		}
		rec = c
	} else if rec = kr.recs[env.Writer]; rec == nil {
		return fmt.Errorf("%w: writer key %s is unknown (no intact keys/%s.cert)", ErrSignature, env.Writer, env.Writer)
	}
	if rec.Role != crypto.RoleWrite && rec.Role != crypto.RoleMaster {
		return fmt.Errorf("%w: key %s is an %v key", ErrSignature, env.Writer, rec.Role)
	}
	if err := crypto.Verify(rec.SignPub, crypto.ContextManifest, env.signed, env.Sig); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return nil
}

func (r *Repo) openManifest(env *Envelope) (*Manifest, error) {
	ok, can := r.key.(openingKey)
	if !can {
		return nil, r.need("open snapshots", crypto.RoleMaster, crypto.RoleAudit)
	}
	plain, err := ok.OpenSealed(env.Body, env.bodyAD())
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if env.Cert != nil {
		// Version 3 pads the manifest (its size says little).
		if plain, err = crypto.Unpad(plain); err != nil {
			return nil, fmt.Errorf("%w: manifest: padding", ErrCorrupt)
		}
	}
	var m Manifest
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	if err := m.checkClaims(); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrCorrupt, err)
	}
	return &m, nil
}

// Snapshots lists the snapshots that verify, oldest first (by their
// writers' claimed times, then chain order), each with whether the
// repository accepts it. Any key can list them; a master or audit key
// also opens their manifests (open). Objects in snapshots/ that do not
// verify are reported (Warnings) and left out; the listing goes on.
func (r *Repo) Snapshots(ctx context.Context, open bool) ([]*Snapshot, error) {
	kr, err := r.keyring(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Snapshot
	err = r.be.List(ctx, backend.TypeSnapshot, func(fi backend.FileInfo) error {
		s, err := r.loadSnapshot(ctx, fi, kr, open)
		if err != nil {
			if transient(err) {
				return err
			}
			r.warn("snapshots/"+fi.Name, fmt.Sprintf("skipped: %v", err))
			return nil
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	forgotten, err := r.forgotten(ctx)
	if err != nil {
		return nil, err
	}
	// A snapshot a forget record names is gone, whatever a crash left.
	gone := forgottenSet(forgotten)
	out = slices.DeleteFunc(out, func(s *Snapshot) bool { return gone[s.ID] })
	// Where a copy moved snapshots, the master recorded when the source's
	// storage stored them.
	times, err := r.recordedTimes(ctx)
	if err != nil {
		return nil, err
	}
	if len(times) > 0 {
		for _, s := range out {
			if t, ok := times[s.ID]; ok && (s.Stored.IsZero() || t.Before(s.Stored)) {
				s.Stored = t
			}
		}
	}
	r.judge(out, kr, forgotten)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Envelope, out[j].Envelope
		if !a.Claimed.Equal(b.Claimed) {
			return a.Claimed.Before(b.Claimed)
		}
		return a.Seq < b.Seq
	})
	if r.master != nil {
		r.noteFirstSight(out)
	}
	return out, nil
}

// loadSnapshot reads, checks and (open) opens one snapshot. Its body is
// dropped after: a listing holds envelopes, not bodies.
func (r *Repo) loadSnapshot(ctx context.Context, fi backend.FileInfo, kr *keyring, open bool) (*Snapshot, error) {
	env, err := loadEnvelope(ctx, r.be, fi.Name)
	if err != nil {
		return nil, err
	}
	if err := r.verifyEnvelope(env, kr); err != nil {
		return nil, err
	}
	id, err := ParseID(fi.Name)
	if err != nil {
		return nil, fmt.Errorf("%w: not a snapshot name", ErrCorrupt)
	}
	s := &Snapshot{ID: id, Envelope: env, Stored: fi.ModTime}
	if _, can := r.key.(openingKey); open && can {
		if s.Manifest, err = r.openManifest(env); err != nil {
			return nil, err
		}
	}
	env.Body = nil
	return s, nil
}

// judge marks the snapshots the repository does not accept: a revoked
// key's snapshots after the last one its revocation accepts (version 2:
// by chain; version 1, which names none: stored after the revocation).
func (r *Repo) judge(snaps []*Snapshot, kr *keyring, forgotten []Forgotten) {
	byWriter := map[crypto.KeyID][]*Snapshot{}
	for _, s := range snaps {
		if kr.revoked[s.Envelope.Writer] != nil {
			byWriter[s.Envelope.Writer] = append(byWriter[s.Envelope.Writer], s)
		}
	}
	for key, chain := range byWriter {
		rev := kr.revoked[key]
		if !rev.HasLast {
			for _, s := range chain {
				t := s.Stored
				if t.IsZero() {
					t = s.Envelope.Claimed
				}
				if t.After(rev.Revoked.Add(time.Second)) {
					s.Rejected = fmt.Sprintf("stored after its key %s was revoked (%s)", key, rev.Revoked.Format(time.RFC3339))
				} else {
					s.ByRevokedKey = true
				}
			}
			continue
		}
		accepted := acceptedChain(chain, forgotten, key, rev.LastSeq, ID(rev.Last))
		for _, s := range chain {
			switch {
			case accepted[s.ID]:
				s.ByRevokedKey = true
			case s.Envelope.Seq > rev.LastSeq:
				s.Rejected = fmt.Sprintf("made after the last snapshot (#%d) the master accepts from revoked key %s", rev.LastSeq, key)
			default:
				s.Rejected = fmt.Sprintf("not on the chain the master accepts from revoked key %s (ending at #%d)", key, rev.LastSeq)
			}
		}
	}
}

// acceptedChain is the set of a key's snapshots on the chain that ends at
// snapshot last (sequence lastSeq), followed back by their predecessors
// (through forgotten places too). Where a link is missing, the snapshots
// below it are accepted if each is alone in its place.
func acceptedChain(chain []*Snapshot, forgotten []Forgotten, key crypto.KeyID, lastSeq uint64, last ID) map[ID]bool {
	byID := map[ID]*Envelope{}
	bySeq := map[uint64][]ID{}
	for _, s := range chain {
		byID[s.ID] = s.Envelope
		bySeq[s.Envelope.Seq] = append(bySeq[s.Envelope.Seq], s.ID)
	}
	prevOf := map[ID]ID{}
	for _, f := range forgotten {
		if f.Writer == key {
			prevOf[f.ID] = f.Prev
		}
	}
	accepted := map[ID]bool{}
	cur, seq := last, lastSeq
	for seq > 0 {
		if env, ok := byID[cur]; ok {
			accepted[cur] = true
			cur, seq = env.Prev, seq-1
			continue
		}
		if p, ok := prevOf[cur]; ok {
			cur, seq = p, seq-1
			continue
		}
		break
	}
	// A gap: what is below it and alone in its place.
	for _, s := range chain {
		if s.Envelope.Seq <= seq && len(bySeq[s.Envelope.Seq]) == 1 {
			accepted[s.ID] = true
		}
	}
	return accepted
}

// noteFirstSight records when the master first listed each snapshot (its
// own record: a writer cannot choose it). Forget keeps what it has not
// known long enough.
func (r *Repo) noteFirstSight(snaps []*Snapshot) {
	c, err := r.localCache()
	if err != nil {
		return // no cache: forget keeps more
	}
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.ID.String()
	}
	seen, err := c.firstSeen(names, r.now())
	if err != nil {
		return // a cache that cannot write: forget keeps more
	}
	for _, s := range snaps {
		s.FirstSeen = seen[s.ID.String()]
	}
}

// FindSnapshot returns the snapshot whose ID starts with prefix (at least
// 4 hex digits), opened when the key can.
func (r *Repo) FindSnapshot(ctx context.Context, prefix string) (*Snapshot, error) {
	prefix = strings.ToLower(prefix)
	if len(prefix) < 4 {
		return nil, fmt.Errorf("snapshot ID %q is too short (give at least 4 hex digits)", prefix)
	}
	snaps, err := r.Snapshots(ctx, false)
	if err != nil {
		return nil, err
	}
	var found []*Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), prefix) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w: no snapshot %s", r.be.Location(), backend.ErrNotFound, prefix)
	case 1:
	default:
		return nil, fmt.Errorf("%s: snapshot ID %s is ambiguous (%d snapshots)", r.be.Location(), prefix, len(found))
	}
	s := found[0]
	if _, can := r.key.(openingKey); can {
		env, err := loadEnvelope(ctx, r.be, s.ID.String())
		if err != nil {
			return nil, err
		}
		if s.Manifest, err = r.openManifest(env); err != nil {
			return nil, fmt.Errorf("%s: snapshots/%s: %w", r.be.Location(), s.ID, err)
		}
	}
	return s, nil
}

// WalkStream calls fn for each data chunk of a stream (master or audit).
func (r *Repo) WalkStream(ctx context.Context, ref StreamRef, fn func(listEntry) error) error {
	return r.walkStream(ctx, ref, 0, fn)
}

// walkStream is WalkStream that fetches the list chunks ahead of the walk,
// ahead at once (0: none).
func (r *Repo) walkStream(ctx context.Context, ref StreamRef, ahead int, fn func(listEntry) error) error {
	br, err := r.newBlobReader(ctx)
	if err != nil {
		return err
	}
	defer br.close()
	var ra *readAhead
	var next func([]ID)
	if ahead > 0 {
		ra = newReadAhead(ctx, br, pack.BlobList, ahead)
		defer ra.stop()
		next = ra.queue
	}
	var buf []byte
	return walkTreeAhead(ctx, ref.Depth, ref.Root, ref.Len, func(id ID) ([]byte, error) {
		b, err := br.load(ctx, pack.BlobList, id, buf)
		buf = b
		ra.loaded(id)
		return b, err
	}, next, fn)
}

// OpenStream returns a reader of a stream's bytes (master only). It
// reads the chunks in order, fetching the frames of the next ones and the
// list chunks that name them ahead (readAhead: SetReadAhead fetches at
// once each, within maxReadAheadBytes); memory is about that, one chunk,
// the frames the blob reader keeps, one list chunk per tree level and the
// copies of the lookupBatch entries whose lookup is made in one go.
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
		ra := newReadAhead(ctx, br, pack.BlobData, r.readAheadSlots())
		defer ra.stop()
		var total uint64
		var chunk []byte
		// next gives the window's oldest entry its chunk.
		next := func() error {
			ae, _ := ra.pop()
			var err error
			chunk, err = br.loadCopies(ctx, pack.BlobData, ae.e.ID, ae.copies, chunk)
			ra.done(ae)
			if err != nil {
				return err
			}
			if uint32(len(chunk)) != ae.e.Len {
				return fmt.Errorf("%w: chunk %s has %d bytes, its list says %d", ErrCorrupt, ae.e.ID.Short(), len(chunk), ae.e.Len)
			}
			total += uint64(len(chunk))
			_, err = pw.Write(chunk)
			return err
		}
		// The walk's entries wait, lookupBatch at most, for one cache
		// lookup of all their copies; then they join the window.
		var batch []listEntry
		var ids []ID
		var copies [][]blobCopy
		admit := func() error {
			ids = ids[:0]
			for _, e := range batch {
				ids = append(ids, e.ID)
			}
			copies = ra.lookup(ids, copies)
			for i, e := range batch {
				ae := ra.entry(e, copies[i])
				for ra.full(ae) {
					if err := next(); err != nil {
						return err
					}
					ae = ra.entry(e, copies[i]) // the reader may hold its frame now
				}
				ra.push(ae)
			}
			batch = batch[:0]
			return nil
		}
		var readErr error
		err := r.walkStream(ctx, ref, r.readAheadSlots(), func(e listEntry) error {
			if batch = append(batch, e); len(batch) >= lookupBatch {
				readErr = admit()
			}
			return readErr
		})
		// The chunks listed before the end (or a damaged list chunk) come
		// first, as they would without the window.
		if readErr == nil {
			if readErr = admit(); readErr != nil {
				err = readErr
			}
		}
		for readErr == nil && ra.len() > 0 {
			if readErr = next(); readErr != nil {
				err = readErr
			}
		}
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
