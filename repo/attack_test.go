package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
	"github.com/larder/larder/internal/s3test"
	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"
)

// The attack suite (SECURITY.md): each test plays one move of an attacker
// with nothing but what that attacker has, on a repository of genuine
// nightly snapshots, over a local folder and over a real S3 server. After
// the move: every genuine snapshot restores bit-exact with a cold cache;
// prune (twice) and forget remove nothing a genuine snapshot needs; check
// and audit name the bad object. The attackers:
//
//   - the write-key thief: the forum server's key file and its storage
//     credential (put, get, list);
//   - the storage provider (or anyone with add rights): no key, every
//     object's bytes, and on its own storage the power to add, replace and
//     delete anything.

// attackEnv is a repository with genuine snapshots.
type attackEnv struct {
	t       *testing.T
	kind    string
	k       keys
	master  backend.Backend // the master's storage credential (it may delete)
	writer  backend.Backend // the forum server's (put, get, list)
	genuine []genuineSnap
	nights  int
	// writerCache is the forum server's cache: kept from night to night,
	// as on a real server.
	writerCache string
}

type genuineSnap struct {
	id      ID
	name    string
	streams [][]byte
}

// attackStorages are the backends the suite runs on.
var attackStorages = []string{"local", "s3"}

// forEachStorage runs fn on a fresh repository of three genuine nights on
// each backend.
func forEachStorage(t *testing.T, fn func(t *testing.T, e *attackEnv)) {
	t.Helper()
	for _, kind := range attackStorages {
		t.Run(kind, func(t *testing.T) { fn(t, newAttackEnv(t, kind)) })
	}
}

var (
	s3Once   sync.Once
	s3Shared *s3test.Server
	s3Err    error
	s3Prefix atomic.Int64
)

// sharedS3 is the S3 server of this package's tests (started once).
func sharedS3(t testing.TB) *s3test.Server {
	t.Helper()
	s3Once.Do(func() {
		dir, err := os.MkdirTemp("", "larder-repo-s3-")
		if err != nil {
			s3Err = err
			return
		}
		s3Shared, s3Err = s3test.Start(dir)
	})
	if s3Err != nil {
		t.Fatalf("the S3 server the suite needs: %v", s3Err)
	}
	return s3Shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if s3Shared != nil {
		s3Shared.Stop()
	}
	os.Exit(code)
}

func newAttackEnv(t *testing.T, kind string) *attackEnv {
	t.Helper()
	e := &attackEnv{t: t, kind: kind}
	switch kind {
	case "local":
		be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
		e.master, e.writer = be, be
	case "s3":
		srv := sharedS3(t)
		prefix := fmt.Sprintf("attack-%d", s3Prefix.Add(1))
		var err error
		if e.master, err = backend.OpenS3(srv.Config(prefix, false)); err != nil {
			t.Fatal(err)
		}
		if e.writer, err = backend.OpenS3(srv.Config(prefix, true)); err != nil {
			t.Fatal(err)
		}
	}
	e.k = newRepoOn(t, e.master)
	setPackSize(t, e.master, e.k.master, 1<<20)
	for range 3 {
		e.night()
	}
	return e
}

// nightStreams are night n's canonical streams: SQL-like text that
// changes a little every night, and bulk bytes of which some are new.
func nightStreams(n int) [][]byte {
	text := sqlLike(77, 400<<10)
	for off := 5000 + n*991; off < len(text); off += 40 << 10 {
		copy(text[off:], fmt.Sprintf("night %d", n))
	}
	bulk := append(randBytes(500, 200<<10), randBytes(uint64(600+n), 100<<10)...)
	return [][]byte{text, bulk}
}

// night ingests the next genuine night with the forum server's key and
// storage credential.
func (e *attackEnv) night() genuineSnap {
	e.t.Helper()
	e.nights++
	g := genuineSnap{name: fmt.Sprintf("night-%d", e.nights), streams: nightStreams(e.nights)}
	w, err := Open(context.Background(), e.writer, e.k.write)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.writerCache == "" {
		e.writerCache = e.t.TempDir()
	}
	w.SetCacheDir(e.writerCache)
	defer w.Close()
	g.id = ingestManifest(e.t, w, &Manifest{Name: g.name, Site: "forum", BackupTime: time.Now().UTC()}, g.streams...)
	e.genuine = append(e.genuine, g)
	return g
}

// openOn opens the repository with a key through a storage credential,
// with a fresh (cold) cache.
func (e *attackEnv) openOn(be backend.Backend, key Key) *Repo {
	return open(e.t, be, key)
}

func (e *attackEnv) masterRepo() *Repo { return e.openOn(e.master, e.k.master) }
func (e *attackEnv) thief() *Repo      { return e.openOn(e.writer, e.k.write) }
func (e *attackEnv) auditor() *Repo    { return e.openOn(e.writer, e.k.audit) }

// restoresAll checks that every genuine snapshot restores bit-exact,
// through a master with a cold cache.
func (e *attackEnv) restoresAll() {
	e.t.Helper()
	m := e.masterRepo()
	ctx := context.Background()
	for _, g := range e.genuine {
		s, err := m.FindSnapshot(ctx, g.id.String())
		if err != nil {
			e.t.Fatalf("genuine snapshot %s: %v", g.name, err)
		}
		if err := s.Usable(); err != nil {
			e.t.Fatalf("genuine snapshot %s: %v", g.name, err)
		}
		for i, ref := range s.Manifest.Streams {
			rc, err := m.OpenStream(ctx, ref)
			if err != nil {
				e.t.Fatal(err)
			}
			var buf bytes.Buffer
			_, err = buf.ReadFrom(rc)
			rc.Close()
			if err != nil {
				e.t.Fatalf("genuine snapshot %s stream %d: %v", g.name, i, err)
			}
			if !bytes.Equal(buf.Bytes(), g.streams[i]) {
				e.t.Fatalf("genuine snapshot %s stream %d: %d bytes back, not the %d stored", g.name, i, buf.Len(), len(g.streams[i]))
			}
		}
	}
}

// pruneTwice runs the master's prune twice (no grace: the second deletes
// what the first marked).
func (e *attackEnv) pruneTwice() {
	e.t.Helper()
	for i := range 2 {
		if _, err := e.masterRepo().Prune(context.Background(), PruneOptions{}); err != nil {
			e.t.Fatalf("prune %d: %v", i+1, err)
		}
	}
}

// flagged fails unless one of the problems names obj (a substring).
func flagged(t *testing.T, who string, problems []Problem, obj string) {
	t.Helper()
	var all []string
	for _, p := range problems {
		if strings.Contains(p.String(), obj) {
			return
		}
		all = append(all, p.String())
	}
	t.Fatalf("%s did not name %s; it said:\n%s", who, obj, strings.Join(all, "\n"))
}

// checkNames runs the master's check with every claimed chunk read and
// fails unless it names obj.
func (e *attackEnv) checkNames(obj string) {
	e.t.Helper()
	res, err := e.masterRepo().Check(context.Background(), CheckOptions{ReadData: 1})
	if err != nil {
		e.t.Fatal(err)
	}
	flagged(e.t, "check --read-data", res.Problems, obj)
}

// auditNames runs audit with the audit key and fails unless it names obj.
func (e *attackEnv) auditNames(obj string) {
	e.t.Helper()
	rep, err := e.auditor().Audit(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	flagged(e.t, "audit", rep.Problems, obj)
}

// keylessNames runs the keyless check and fails unless it names obj.
func (e *attackEnv) keylessNames(obj string) {
	e.t.Helper()
	res, err := CheckKeyless(context.Background(), e.master)
	if err != nil {
		e.t.Fatal(err)
	}
	flagged(e.t, "keyless check", res.Problems, obj)
}

// put stores bytes as the storage provider: anywhere, replacing anything.
func (e *attackEnv) put(h backend.Handle, b []byte) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.master.Remove(ctx, h); err != nil && !errors.Is(err, backend.ErrNotFound) {
		e.t.Fatal(err)
	}
	if err := e.master.Save(ctx, h, backend.Bytes(b)); err != nil {
		e.t.Fatal(err)
	}
}

// putContent stores b under its SHA-256 (what a content check accepts).
func (e *attackEnv) putContent(t backend.Type, b []byte) string {
	e.t.Helper()
	sum := sha256.Sum256(b)
	name := hex.EncodeToString(sum[:])
	e.put(backend.Handle{Type: t, Name: name}, b)
	return name
}

// liveChunks are the chunks (data and lists) the genuine snapshots use,
// with their types.
func (e *attackEnv) liveChunks() map[ID]pack.BlobType {
	e.t.Helper()
	m := e.masterRepo()
	var res PruneResult
	br, err := m.newBlobReader(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	defer br.close()
	live, err := m.liveChunks(context.Background(), br, &res)
	if err != nil {
		e.t.Fatal(err)
	}
	return live
}

// forgePack stores, as a thief with the write key and its credential, a
// pack whose blobs are garbage sealed under a session of its own, with
// claims (trailer and an index file) for chunks. It returns the pack's
// name.
func forgePack(t *testing.T, thief *Repo, chunks map[ID]pack.BlobType) string {
	t.Helper()
	ctx := context.Background()
	session, err := crypto.NewSession(nil, thief.write.MasterBoxPub, thief.write.AuditBoxPub)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Erase()
	p, err := pack.NewBuilder(t.TempDir(), session.EphemeralPublic(), thief.write.ID, thief.entries())
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for id, typ := range chunks {
		i++
		garbage := crypto.Pad(nil, append([]byte{pack.FlagRaw}, randBytes(uint64(i), 100+i%300)...))
		var sealed []byte
		if typ == pack.BlobList {
			sealed, err = session.SealMeta(nil, pack.BlobObjType(typ), id[:], garbage)
		} else {
			sealed, err = session.SealData(nil, pack.BlobObjType(typ), id[:], garbage)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Add(typ, id, sealed, 100); err != nil {
			t.Fatal(err)
		}
	}
	id, path, err := p.Finish(thief.indexKey())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := backend.File(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := thief.be.Save(ctx, backend.Handle{Type: backend.TypeData, Name: id.String()}, src); err != nil {
		t.Fatal(err)
	}
	forgeIndex(t, thief, &index.File{Packs: []index.Pack{{ID: id, Blobs: p.Blobs()}}})
	return id.String()
}

// forgeIndex stores an index file as a thief (with the index key).
func forgeIndex(t *testing.T, thief *Repo, f *index.File) string {
	t.Helper()
	f.Entries = thief.entries()
	sealed, err := f.Seal(thief.indexKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	name, err := saveContent(context.Background(), thief.be, backend.TypeIndex, sealed)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// forgeSnapshot stores a snapshot as the thief: signed with the write
// key, chained after its chain's head, with the envelope's claimed time
// and sequence number as given (zero: the next place).
func forgeSnapshot(t *testing.T, thief *Repo, claimed time.Time, seq uint64, m *Manifest) ID {
	t.Helper()
	ctx := context.Background()
	head, prev, err := thief.chainHead(ctx, thief.write.ID)
	if err != nil {
		t.Fatal(err)
	}
	if seq == 0 {
		seq = head + 1
	}
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := thief.ownRecord()
	if err != nil {
		t.Fatal(err)
	}
	env := &Envelope{Writer: thief.write.ID, Cert: cert, Seq: seq, Prev: prev, Claimed: claimed.UTC(),
		Original: thief.OriginalTag(sha256.Sum256([]byte(m.Name)))}
	if env.Body, err = crypto.SealTo(nil, crypto.Pad(nil, body), env.bodyAD(), thief.write.MasterBoxPub, thief.write.AuditBoxPub); err != nil {
		t.Fatal(err)
	}
	signed := env.marshalSigned()
	sig, err := thief.write.Sign(crypto.ContextManifest, signed)
	if err != nil {
		t.Fatal(err)
	}
	name, err := saveContent(ctx, thief.be, backend.TypeSnapshot, append(signed, sig...))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ParseID(name)
	return id
}

// TestAttackShadowPack (write-key thief): one pack of garbage whose
// trailer, plus an index file, claim every chunk the snapshots use. The
// master's routine prune (twice) used to delete the real packs. Now a pack
// goes only when every live chunk has a copy the master decrypted and
// matched; the shadow pack's claims are only places to look.
func TestAttackShadowPack(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		shadow := forgePack(t, e.thief(), e.liveChunks())
		e.restoresAll()
		// The forged copies are not the master's: it names the pack.
		e.checkNames("data/" + shadow)
		e.auditNames("data/" + shadow)
		e.pruneTwice()
		e.restoresAll()
		// The shadow pack held no keeper: prune deleted it, and only it.
		for _, name := range listNames(t, e.master, backend.TypeData) {
			if name == shadow {
				t.Fatal("the shadow pack is still there after two prunes")
			}
		}
		// And the next night goes on.
		e.night()
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackLyingIndex (write-key thief): an index file that says the real
// packs hold only chunks nobody needs (so they look dead), and one that
// names the live chunks at places in the real packs where they are not.
// Prune keeps the real packs (their chunks are verified where they are);
// check names the lying index files.
func TestAttackLyingIndex(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		thief := e.thief()
		packs := indexedPacks(t, e.masterRepo())
		dead := &index.File{}
		wrong := &index.File{}
		for i, p := range packs {
			var fake ID
			fake[0], fake[1] = 0xde, byte(i)
			dead.Packs = append(dead.Packs, index.Pack{ID: p.ID, Blobs: []pack.Blob{{Type: pack.BlobData, ID: fake, Offset: uint32(pack.HeaderSize), Length: 64}}})
			var moved []pack.Blob
			for _, b := range p.Blobs {
				b.Offset += 7
				moved = append(moved, b)
			}
			wrong.Packs = append(wrong.Packs, index.Pack{ID: p.ID, Blobs: moved})
		}
		forgeIndex(t, thief, dead)
		forgeIndex(t, thief, wrong)
		e.pruneTwice()
		e.restoresAll()
		e.night()
		e.restoresAll()
		// The prune replaced both with its verified index; forge them
		// again and check names them.
		deadName := forgeIndex(t, thief, dead)
		wrongName := forgeIndex(t, thief, wrong)
		e.checkNames("index/" + deadName)
		e.checkNames("index/" + wrongName)
		e.restoresAll()
	})
}

// TestAttackDedupPoisoning (write-key thief): claims, with garbage behind
// them, for the chunks of the backup the forum server will make next.
// Writers deduplicate only against copies the master verified and packs
// of their own, so the next night stores its chunks and restores.
func TestAttackDedupPoisoning(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		thief := e.thief()
		next := nightStreams(e.nights + 1)
		future := map[ID]pack.BlobType{}
		p, _ := thief.ChunkParams(ClassText)
		for _, c := range chunkAll(t, next[0], p) {
			future[ID(crypto.ChunkID(&thief.write.ChunkIDKey, c))] = pack.BlobData
		}
		forgePack(t, thief, future)
		e.night()
		e.restoresAll()
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackRevokedKeyKeepsWriting (write-key thief): the master revokes
// the stolen key; the thief, with a client that skips the check, goes on
// adding snapshots. They are rejected: listed as such, refused by
// restore, not counted by forget, reported by audit.
func TestAttackRevokedKeyKeepsWriting(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		m := e.masterRepo()
		if err := m.Revoke(ctx, e.k.write.ID, "server stolen", nil); err != nil {
			t.Fatal(err)
		}
		// The thief's client ignores the revocation.
		thief := openedRepo(e.writer, m.cfg, e.k.write)
		thief.SetCacheDir(t.TempDir())
		forged := ingest(t, thief, "forged", []byte("not a real backup"))
		m = e.masterRepo()
		s, err := m.FindSnapshot(ctx, forged.String())
		if err != nil {
			t.Fatal(err)
		}
		if s.Rejected == "" || !errors.Is(s.Usable(), ErrRejected) {
			t.Fatalf("the revoked key's new snapshot is accepted: %+v", s)
		}
		snaps, err := m.Snapshots(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		plan := m.Plan(snaps, Policy{Last: 1})
		for _, d := range plan {
			if d.Snapshot.ID == forged && (!d.Keep || d.Reasons[0] != "rejected: left alone") {
				t.Fatalf("forget counted the rejected snapshot: %+v", d)
			}
			if d.Snapshot.ID == e.genuine[len(e.genuine)-1].id && !d.Keep {
				t.Fatal("forget --keep-last 1 removes the newest genuine snapshot")
			}
		}
		e.auditNames("snapshots/" + forged.String())
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackForgedSequence (write-key thief): a snapshot signed with
// sequence number 2^40 used to make audit grow past 17 GB. Numbers above
// MaxSeq are refused as damaged; the highest valid one is one gap, and
// audit's work stays that of the objects stored.
func TestAttackForgedSequence(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		thief := e.thief()
		huge := forgeSnapshot(t, thief, time.Now(), 1<<40, &Manifest{Name: "huge"})
		top := forgeSnapshot(t, thief, time.Now(), MaxSeq, &Manifest{Name: "top"})
		a := e.auditor()
		var rep *AuditReport
		var err error
		got := allocated(func() { rep, err = a.Audit(context.Background()) })
		if err != nil {
			t.Fatal(err)
		}
		if got > 256<<20 {
			t.Errorf("audit allocated %d MiB", got>>20)
		}
		flagged(t, "audit", rep.Problems, "snapshots/"+huge.String())
		flagged(t, "audit", rep.Problems, fmt.Sprintf("snapshots %d to %d are missing", len(e.genuine)+1, MaxSeq-1))
		flagged(t, "audit", rep.Problems, "chain of key "+e.k.write.ID.String())
		if len(rep.Problems) > 20 {
			t.Errorf("audit reported %d problems for two forged snapshots", len(rep.Problems))
		}
		_ = top
		e.keylessNames("snapshots/" + huge.String())
		e.restoresAll()
		e.night()
		e.restoresAll()
	})
}

// TestAttackBackdatedSnapshot (write-key thief): a forged snapshot after
// the real newest, dated earlier the same day, used to take the day's
// place so that forget --keep-daily 7 removed the real newest. Its time
// disagrees with the storage's: suspicious, kept, it takes no place. A
// forgery dated honestly takes the place only once the master has known
// it for settleTime.
func TestAttackBackdatedSnapshot(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		newest := e.genuine[len(e.genuine)-1]
		thief := e.thief()
		back := forgeSnapshot(t, thief, time.Now().Add(-3*time.Hour), 0, &Manifest{Name: "backdated", Site: "forum"})
		now := forgeSnapshot(t, thief, time.Now(), 0, &Manifest{Name: "dated now", Site: "forum"})
		made := forgeSnapshot(t, thief, time.Now(), 0, &Manifest{Name: "made yesterday", Site: "forum", BackupTime: time.Now().Add(-24 * time.Hour)})
		m := e.masterRepo()
		plan, err := m.Forget(ctx, Policy{Daily: 7}, false)
		if err != nil {
			t.Fatal(err)
		}
		kept := map[ID]bool{}
		for _, d := range plan {
			kept[d.Snapshot.ID] = d.Keep
		}
		if !kept[newest.id] {
			t.Fatalf("forget --keep-daily 7 removed the newest genuine snapshot: %+v", plan)
		}
		if !kept[back] || !kept[now] || !kept[made] {
			t.Fatal("forget removed a forgery instead of leaving it for the admin to see")
		}
		e.pruneTwice()
		// The genuine ones forget removed are older ones of the same day:
		// what is left restores.
		snaps, err := m.Snapshots(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		left := map[ID]bool{}
		for _, s := range snaps {
			left[s.ID] = true
		}
		var still []genuineSnap
		for _, g := range e.genuine {
			if left[g.id] {
				still = append(still, g)
			}
		}
		if len(still) == 0 {
			t.Fatal("no genuine snapshot left")
		}
		e.genuine = still
		e.restoresAll()
	})
}

// TestAttackSiteHijack (thief of another forum's write key): with the key
// of forum B, a thief stores snapshots that name forum A's site, made on
// each of the last ten days and just after A's newest. Even once the
// master has known them for days, forget --keep-daily 7 --keep-last 1
// keeps A's newest genuine snapshot: a lineage is one site as written by
// one key, and B's key writes only B's lineages.
func TestAttackSiteHijack(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		m := e.masterRepo()
		other, err := e.k.master.NewWriteKey("forum-b", m.now())
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AddKey(ctx, other.Record()); err != nil {
			t.Fatal(err)
		}
		thief := e.openOn(e.writer, other)
		newest := e.genuine[len(e.genuine)-1]
		now := time.Now()
		for day := range 10 {
			forgeSnapshot(t, thief, now, 0,
				&Manifest{Name: fmt.Sprintf("hijack-%d", day), Site: "forum", BackupTime: now.Add(time.Duration(-day)*24*time.Hour + time.Second)})
		}
		// The master sees them, and three days later forgets.
		if _, err := m.Snapshots(ctx, true); err != nil {
			t.Fatal(err)
		}
		m.now = func() time.Time { return now.Add(72 * time.Hour) }
		plan, err := m.Forget(ctx, Policy{Daily: 7, Last: 1}, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range plan {
			if d.Snapshot.ID == newest.id && !d.Keep {
				t.Fatalf("forget removed forum A's newest genuine snapshot because of forum B's key: %+v", plan)
			}
		}
		e.pruneTwice()
		e.genuine = []genuineSnap{newest}
		e.restoresAll()
	})
}

// TestAttackHostileSiteName (write-key thief): a snapshot whose manifest
// names a site (or tag) that is no plain name, markup or escape sequences
// meant for the admin's terminal or page, does not open: the listing names
// it and goes on, forget leaves it alone, the genuine ones restore.
func TestAttackHostileSiteName(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		thief := e.thief()
		site := forgeSnapshot(t, thief, time.Now(), 0, &Manifest{Name: "x", Site: "<script>alert(1)</script>"})
		tag := forgeSnapshot(t, thief, time.Now(), 0, &Manifest{Name: "y", Site: "forum", Tags: []string{"\x1b]0;pwned\x07"}})
		m := e.masterRepo()
		snaps, err := m.Snapshots(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range snaps {
			if s.ID == site || s.ID == tag {
				t.Fatalf("a manifest with a hostile site or tag opened: %+v", s.Manifest)
			}
		}
		warned := m.Warnings()
		flagged(t, "the listing", warned, "snapshots/"+site.String())
		flagged(t, "the listing", warned, "snapshots/"+tag.String())
		if _, err := m.Forget(ctx, Policy{Last: 1}, false); err != nil {
			t.Fatal(err)
		}
		for _, id := range []ID{site, tag} {
			if _, err := m.be.Stat(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: id.String()}); err != nil {
				t.Errorf("forget removed snapshot %s it could not open: %v", id.Short(), err)
			}
		}
		e.genuine = e.genuine[len(e.genuine)-1:]
		e.restoresAll()
	})
}

// TestAttackWriterBlocksPrune (write-key thief): shared locks taken again
// and again hold off forget and prune for at most MaxLockWait after the
// master first found them in its way; they never hold off a restore.
func TestAttackWriterBlocksPrune(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		thief := e.thief()
		held, err := thief.Lock(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock(ctx)
		// The lock's process is alive here (this one): it counts, for a
		// while.
		m := e.masterRepo()
		if _, err := m.Prune(ctx, PruneOptions{}); !errors.Is(err, ErrLocked) {
			t.Fatalf("prune beside a live writer's lock: %v", err)
		}
		e.restoresAll() // shared locks never hold off a restore
		start := time.Now()
		m.now = func() time.Time { return start.Add(MaxLockWait + time.Minute) }
		// A refreshed lock, as the thief keeps it alive.
		if b, err := thief.signLock(LockInfo{ID: held.id, Seq: 1, Time: time.Now().UTC(), Key: thief.KeyID().String()}); err != nil {
			t.Fatal(err)
		} else if err := e.writer.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: held.id + ".r1"}, backend.Bytes(b)); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Prune(ctx, PruneOptions{}); err != nil {
			t.Fatalf("prune after the writer held it off for %s: %v", MaxLockWait, err)
		}
		e.restoresAll()
	})
}

// TestAttackForgedExclusiveLock (write-key thief, storage provider): an
// exclusive lock signed by the write key, and one signed by nobody, keep
// no restore, drill or ingest waiting; check names the unsigned one.
func TestAttackForgedExclusiveLock(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		thief := e.thief()
		b, err := thief.signLock(LockInfo{ID: "00000000000000e1", Exclusive: true, Host: "elsewhere", PID: 1, Time: time.Now().UTC(), Key: thief.KeyID().String()})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.writer.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: "00000000000000e1"}, backend.Bytes(b)); err != nil {
			t.Fatal(err)
		}
		e.put(backend.Handle{Type: backend.TypeLock, Name: "00000000000000e2"}, []byte(`{"exclusive":true,"host":"elsewhere","pid":1,"time":"2030-01-01T00:00:00Z"}`))
		m := e.masterRepo()
		unlock, err := m.ReadLock(ctx)
		if err != nil {
			t.Fatalf("a restore is held off by a forged lock: %v", err)
		}
		unlock()
		e.night()
		e.restoresAll()
		e.keylessNames("locks/00000000000000e2")
		if n, err := m.Unlock(ctx, false); err != nil || n == 0 {
			t.Fatalf("unlock removed %d: %v", n, err)
		}
	})
}

// TestAttackJunkSnapshot (storage provider): a 100-byte junk object saved
// as snapshots/<its sha256> used to make every ingest, listing and forget
// fail. It is passed by with a warning; check and audit name it.
func TestAttackJunkSnapshot(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		name := e.putContent(backend.TypeSnapshot, randBytes(9, 100))
		e.night()
		m := e.masterRepo()
		if _, err := m.Snapshots(context.Background(), true); err != nil {
			t.Fatalf("listing: %v", err)
		}
		flagged(t, "the listing", m.Warnings(), "snapshots/"+name)
		if _, err := m.Forget(context.Background(), Policy{Last: 10}, false); err != nil {
			t.Fatalf("forget: %v", err)
		}
		e.restoresAll()
		e.keylessNames("snapshots/" + name)
		e.auditNames("snapshots/" + name)
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackJunkIndex (storage provider): junk in index/ used to make
// every cold-cache restore fail with all packs intact. It is passed by;
// check names it.
func TestAttackJunkIndex(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		name := e.putContent(backend.TypeIndex, randBytes(10, 100))
		e.restoresAll()
		e.checkNames("index/" + name)
		e.night()
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackLostIndex (storage provider): every index file deleted. A
// cold-cache restore still succeeds (the pack trailers are scanned),
// repair index rebuilds a verified index, and prune keeps everything
// needed.
func TestAttackLostIndex(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		for _, name := range listNames(t, e.master, backend.TypeIndex) {
			if err := e.master.Remove(ctx, backend.Handle{Type: backend.TypeIndex, Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		e.restoresAll()
		res, err := e.masterRepo().RepairIndex(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verified == 0 || res.Failed != 0 {
			t.Fatalf("repair index: %+v", res)
		}
		e.restoresAll()
		e.night()
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackDamagedCertificate (storage provider): one damaged
// keys/*.cert used to make every restore fail, and the keyless check
// passed it. Snapshots carry their writer's certificate; the keyless check
// names the damaged record.
func TestAttackDamagedCertificate(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		h := backend.Handle{Type: backend.TypeKey, Name: e.k.write.ID.String() + ".cert"}
		b, err := backend.ReadAll(context.Background(), e.master, h, 4096)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		e.put(h, b)
		e.restoresAll()
		e.keylessNames(h.String())
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackForgedRecords (write-key thief, storage provider): a prune
// mark naming every pack, a forget record naming every snapshot and a
// drill record, signed by the write key (or by nobody), are not the
// master's: prune deletes nothing for them, listings keep every snapshot,
// check and audit name them.
func TestAttackForgedRecords(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		thief := e.thief()
		var packs []ID
		for _, p := range indexedPacks(t, e.masterRepo()) {
			packs = append(packs, p.ID)
		}
		sign := func(ctx crypto.SigContext, v any) []byte {
			body, _ := json.Marshal(v)
			sig, err := thief.write.Sign(crypto.SigContext("larder forged v1"), body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(signedRecord{Body: body, Sig: sig})
			return b
		}
		mark := e.putContent(backend.TypePrune, sign(pruneContext, pruneMark{Time: time.Now().Add(-48 * time.Hour), Packs: packs}))
		var gone []Forgotten
		for _, g := range e.genuine {
			gone = append(gone, Forgotten{ID: g.id, Writer: e.k.write.ID, Seq: 1})
		}
		forget := e.putContent(backend.TypeForget, sign(forgetContext, forgetRecord{Time: time.Now(), Removed: gone}))
		drill := e.putContent(backend.TypeDrill, sign(drillContext, DrillRecord{Snapshot: e.genuine[0].id, OK: true}))
		e.pruneTwice()
		e.restoresAll()
		e.keylessNames("prune/" + mark)
		e.keylessNames("forget/" + forget)
		e.auditNames("drills/" + drill)
	})
}

// TestAttackForgedListChunk (write-key thief): a copy of a genuine chunk
// list with other entries, sealed under the thief's own session. The
// auditor checks list chunks against their IDs (plain hashes in version
// 3): the forgery is a damaged copy, named; the genuine one is used.
func TestAttackForgedListChunk(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		lists := map[ID]pack.BlobType{}
		for id, typ := range e.liveChunks() {
			if typ == pack.BlobList {
				lists[id] = typ
			}
		}
		shadow := forgePack(t, e.thief(), lists)
		e.auditNames("data/" + shadow)
		e.restoresAll()
		e.pruneTwice()
		e.restoresAll()
	})
}

// TestAttackDamagedPack (storage provider): a byte flipped in a pack. The
// keyless check names it; the snapshots that need none of its chunks
// restore; prune keeps its intact keepers.
func TestAttackDamagedPack(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		names := listNames(t, e.master, backend.TypeData)
		victim := names[0]
		h := backend.Handle{Type: backend.TypeData, Name: victim}
		b, err := backend.ReadAll(ctx, e.master, h, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		b[pack.HeaderSize+1] ^= 1
		e.put(h, b)
		e.keylessNames("data/" + victim)
		e.checkNames("data/" + victim)
		// Whatever snapshots still restore keep restoring after prune.
		m := e.masterRepo()
		var ok []genuineSnap
		for _, g := range e.genuine {
			s, err := m.FindSnapshot(ctx, g.id.String())
			if err != nil {
				t.Fatal(err)
			}
			good := true
			for _, ref := range s.Manifest.Streams {
				rc, err := m.OpenStream(ctx, ref)
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if _, err := buf.ReadFrom(rc); err != nil {
					good = false
					if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrBlob) {
						t.Fatalf("a damaged chunk failed with %v, not ErrCorrupt", err)
					}
				}
				rc.Close()
			}
			if good {
				ok = append(ok, g)
			}
		}
		e.genuine = ok
		e.pruneTwice()
		e.restoresAll()
	})
}

// chunkAll cuts data into chunks with p.
func chunkAll(t *testing.T, data []byte, p chunk.Params) [][]byte {
	t.Helper()
	c := chunk.New(bytes.NewReader(data), p)
	var out [][]byte
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(b))
	}
}

// TestAttackChainHijack (write-key thief): a snapshot made with the stolen
// key lands after the forum server's newest. The server's next ingest
// says so and chains after its own snapshot (a fork audit reports); a
// revocation that accepts the server's chain rejects the forgery and
// keeps every genuine snapshot.
func TestAttackChainHijack(t *testing.T) {
	forEachStorage(t, func(t *testing.T, e *attackEnv) {
		ctx := context.Background()
		forged := forgeSnapshot(t, e.thief(), time.Now(), 0, &Manifest{Name: "forged"})
		w, err := Open(ctx, e.writer, e.k.write)
		if err != nil {
			t.Fatal(err)
		}
		w.SetCacheDir(e.writerCache)
		g := genuineSnap{name: "after the forgery", streams: nightStreams(99)}
		g.id = ingest(t, w, g.name, g.streams...)
		flagged(t, "the forum server's ingest", w.Warnings(), "chain of key "+e.k.write.ID.String())
		w.Close()
		e.genuine = append(e.genuine, g)
		e.auditNames("claim place") // the fork
		m := e.masterRepo()
		if err := m.Revoke(ctx, e.k.write.ID, "stolen", &g.id); err != nil {
			t.Fatal(err)
		}
		s, err := e.masterRepo().FindSnapshot(ctx, forged.String())
		if err != nil {
			t.Fatal(err)
		}
		if s.Rejected == "" {
			t.Fatal("the forgery off the server's chain is accepted")
		}
		e.restoresAll() // every genuine one, the newest included, is accepted
		e.auditNames("snapshots/" + forged.String())
	})
}
