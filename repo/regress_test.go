package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/index"
	"github.com/larder/larder/repo/internal/pack"

	"github.com/larder/larder/chunk"
	"github.com/larder/larder/crypto"
)

// Regression tests for bugs found while hardening the repository layer.
// Each is named after the bug it pins.

// TestDryWriterStoresNothing: a dry writer (ingest --dry-run) takes no
// lock, so it must not store anything; it used to fill packs like a real
// writer and save every full one (and their index files) to the
// repository.
func TestDryWriterStoresNothing(t *testing.T) {
	be, k := newRepo(t)
	setPackSize(t, be, k.master, 1<<20)
	ctx := context.Background()
	r := open(t, be, k.write)
	w, err := r.NewDryWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	data := randBytes(7, 6<<20)
	var stored uint64
	for off := 0; off < len(data); off += 64 << 10 {
		_, isNew, err := w.Add(ctx, pack.BlobData, data[off:off+64<<10])
		if err != nil {
			t.Fatal(err)
		}
		if !isNew {
			t.Fatal("a new chunk was reported as known")
		}
		stored++
	}
	if _, err := w.Commit(ctx, &Manifest{Name: "dry"}, [32]byte{}); err != nil {
		t.Fatal(err)
	}
	if n := len(listNames(t, be, backend.TypeData)) + len(listNames(t, be, backend.TypeIndex)) + len(listNames(t, be, backend.TypeSnapshot)); n != 0 {
		t.Errorf("a dry run stored %d objects", n)
	}
	st := w.Stats()
	if st.NewChunks != stored || st.NewRaw != uint64(len(data)) || st.NewStored < st.NewRaw {
		t.Errorf("dry-run stats %+v, want %d new chunks of %d bytes", st, stored, len(data))
	}
}

// TestListToleratesConcurrentRemoval: Local.List used to fail when an
// object vanished between reading the folder and stat-ing the entry (a
// master releasing its lock while a writer lists locks/): the writer's
// Lock failed with "listing locks: ... no such file or directory".
// Objects removed meanwhile are simply not listed.
func TestListToleratesConcurrentRemoval(t *testing.T) {
	be := backend.OpenLocal(t.TempDir())
	ctx := context.Background()
	deadline := time.Now().Add(time.Second)
	for round := 0; time.Now().Before(deadline); round++ {
		var names []string
		for i := 0; i < 300; i++ {
			h := backend.Handle{Type: backend.TypeLock, Name: fmt.Sprintf("r%d-%d", round, i)}
			if err := be.Save(ctx, h, backend.Bytes([]byte("{}"))); err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, n := range names {
				be.Remove(ctx, backend.Handle{Type: backend.TypeLock, Name: n})
			}
		}()
		var err error
		for i := 0; i < 20 && err == nil; i++ {
			err = list(ctx, be, backend.TypeLock, func(string, int64) error { return nil })
		}
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: List while objects are removed: %v", round, err)
		}
	}
}

// TestLockOfWriterWithSlowClock: a writer whose clock runs an hour behind
// wrote lock times that looked stale to everyone else, so a prune could
// take its exclusive lock while the ingest was running and delete packs
// the ingest had deduplicated against. Liveness now comes from the
// storage's time of the lock objects when the backend knows it.
func TestLockOfWriterWithSlowClock(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	w.now = func() time.Time { return time.Now().Add(-time.Hour) }
	lock, err := w.Lock(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock(ctx)
	m := open(t, be, k.master)
	active, err := m.ActiveLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 {
		t.Errorf("active locks %+v, want the writer's", active)
	}
	if x, err := m.Lock(ctx, true); !errors.Is(err, ErrLocked) {
		if x != nil {
			x.Unlock(ctx)
		}
		t.Fatalf("exclusive lock beside a live ingest (slow clock): %v", err)
	}
}

// TestLockOfKilledWriterWithFastClock: a writer whose clock ran a year
// ahead and that was killed left a lock that stayed "active" for a year,
// refusing every forget and prune. It is stale staleAfter after it was
// stored.
func TestLockOfKilledWriterWithFastClock(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	w.now = func() time.Time { return time.Now().AddDate(1, 0, 0) }
	if _, err := w.Lock(ctx, false); err != nil { // never unlocked: killed
		t.Fatal(err)
	}
	m := open(t, be, k.master)
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 1 || active[0].Info.Exclusive {
		t.Fatalf("right after the kill: %+v %v, want one shared lock", active, err)
	}
	m.now = func() time.Time { return time.Now().Add(staleAfter + time.Minute) }
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 0 {
		t.Fatalf("%v after the kill: active locks %+v %v", staleAfter, active, err)
	}
	x, err := m.Lock(ctx, true)
	if err != nil {
		t.Fatalf("exclusive lock after the writer's lock went stale: %v", err)
	}
	x.Unlock(ctx)
	if n, err := m.CleanLocks(ctx); err != nil || n != 1 {
		t.Fatalf("CleanLocks removed %d: %v", n, err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 0 {
		t.Fatalf("lock objects left: %v", names)
	}
}

// TestOversizedLockObject: lock objects are plaintext anyone with storage
// access writes; one over maxLockFile made every listing of locks fail, so
// no ingest, forget or prune could take a lock and CleanLocks could not
// remove it. It is treated like any unreadable lock object: ignored, and
// removed by the master.
func TestOversizedLockObject(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	big, _ := json.Marshal(LockInfo{Host: string(bytes.Repeat([]byte("x"), 2*maxLockFile)), Time: time.Now()})
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: "0123456789abcdef"}, backend.Bytes(big)); err != nil {
		t.Fatal(err)
	}
	w := open(t, be, k.write)
	ingest(t, w, "after a big lock object", randBytes(1, 10_000))
	m := open(t, be, k.master)
	m.now = func() time.Time { return time.Now().Add(staleAfter + time.Minute) }
	if _, err := m.CleanLocks(ctx); err != nil {
		t.Fatal(err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 0 {
		t.Fatalf("lock objects left: %v", names)
	}
}

// allocated returns the bytes allocated while fn runs (this goroutine and
// any other; callers keep the rest of the process quiet).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestIndexFileCountBoundsAllocation: a count in an index file was only
// checked against the bytes left, but each entry decodes into a 48-byte
// Blob: an index file of 256 MiB could make its reader allocate 12 GiB.
// Counts are now checked against the smallest encoding of an entry.
func TestIndexFileCountBoundsAllocation(t *testing.T) {
	var key [32]byte
	const n = 1 << 20
	plain := []byte(index.Magic1)
	plain = binary.AppendUvarint(plain, 1)
	plain = append(plain, make([]byte, 32)...)
	plain = binary.AppendUvarint(plain, n) // claims n blobs...
	plain = append(plain, make([]byte, n)...)
	sealed := crypto.Seal(nil, &key, index.ObjType, nil, plain) // ...in n bytes
	var err error
	got := allocated(func() { _, err = index.Open(sealed, &key, nil) })
	if err == nil {
		t.Fatal("a truncated index file was accepted")
	}
	if limit := uint64(4 * len(sealed)); got > limit {
		t.Errorf("opening a %d-byte index file allocated %d bytes (limit %d)", len(sealed), got, limit)
	}
}

// TestPackTrailerCountBoundsAllocation: the same for a pack's trailer.
func TestPackTrailerCountBoundsAllocation(t *testing.T) {
	var key [32]byte
	const n = 1 << 20
	plain := binary.AppendUvarint(nil, n)
	plain = append(plain, make([]byte, n)...)
	be := newMemBackend()
	pk := syntheticPack(&key, 0, plain)
	id := ID{1}
	be.Put(backend.Handle{Type: backend.TypeData, Name: id.String()}, pk)
	var err error
	got := allocated(func() { _, _, err = pack.ReadTrailer(context.Background(), be, id, &key) })
	if err == nil {
		t.Fatal("a bad trailer was accepted")
	}
	if limit := uint64(4 * len(pk)); got > limit {
		t.Errorf("reading a %d-byte pk trailer allocated %d bytes (limit %d)", len(pk), got, limit)
	}
}

// syntheticPack builds a pack of bodyLen zero bytes and a trailer sealing
// plain with key (writer ID and ephemeral key zero).
func syntheticPack(key *[32]byte, bodyLen int, plain []byte) []byte {
	return syntheticPackOf(pack.EntriesShort, key, bodyLen, plain)
}

// syntheticPackOf is syntheticPack with the trailer's entry format.
func syntheticPackOf(f pack.EntryFormat, key *[32]byte, bodyLen int, plain []byte) []byte {
	b := []byte(pack.Magic2)
	if f == pack.EntriesLong {
		b = []byte(pack.Magic1)
	}
	b = append(b, make([]byte, 32+16)...)
	hdr := bytes.Clone(b)
	b = append(b, make([]byte, bodyLen)...)
	tr := crypto.Seal(nil, key, pack.ObjTrailer, hdr, plain)
	b = append(b, tr...)
	return binary.LittleEndian.AppendUint32(b, uint32(len(tr)))
}

// TestPruneRemovesUnindexedPacks: packs an interrupted ingest saved but no
// index file names (the package documentation: "which the next ingest
// does not use and prune removes") were never removed: prune only looked
// at indexed packs. They are marked like any deletable pack and removed
// by a later prune.
func TestPruneRemovesUnindexedPacks(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	keep := randBytes(1, 300_000)
	id := ingest(t, w, "kept", keep)
	// An orphan pack, as a killed ingest leaves it: saved, never indexed.
	wr, err := w.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wr.Add(ctx, pack.BlobData, randBytes(2, 100_000)); err != nil {
		t.Fatal(err)
	}
	wr.mu.Lock()
	for _, p := range wr.open {
		if len(p.Blobs()) == 0 {
			continue
		}
		if err := wr.savePack(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	wr.open, wr.done = nil, nil // killed before the index file (w.tmp goes at Close)
	wr.mu.Unlock()
	wr.Close(ctx)
	m := open(t, be, k.master)
	if res := mustCheck(t, m, CheckOptions{}); res.Unindexed != 1 {
		t.Fatalf("%d unindexed packs, want 1", res.Unindexed)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Prune(ctx, PruneOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if res := mustCheck(t, m, CheckOptions{ReadData: 1}); res.Unindexed != 0 {
		t.Errorf("%d unindexed packs left after two prunes", res.Unindexed)
	}
	s, err := m.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := readStream(t, m, s.Manifest.Streams[0]); !bytes.Equal(got, keep) {
		t.Fatal("the kept snapshot no longer restores")
	}
}

// TestPruneMarkedPacksAreNotDedupedAgainst: the two-phase prune must not
// delete a pack an ingest between the two prunes counts on. Such an ingest
// cannot count on it: after the first prune, the marked pack is in no
// index (the verified index names only keepers), so the same data again is
// stored anew; the second prune deletes the marked packs and the new
// snapshot restores.
func TestPruneMarkedPacksAreNotDedupedAgainst(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	data := randBytes(3, 500_000)
	ingest(t, w, "first", data)
	m := open(t, be, k.master)
	// A second snapshot, then forget the first: its data is unreferenced.
	other := randBytes(4, 100_000)
	ingest(t, w, "second", other)
	if _, err := m.Forget(ctx, Policy{Last: 1}, false); err != nil {
		t.Fatal(err)
	}
	res, err := m.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Marked == 0 {
		t.Fatal("nothing marked after forgetting a snapshot of unique data")
	}
	// Between the prunes, the same data again: nothing deduplicated
	// against the marked packs.
	id := ingest(t, w, "third", data)
	if w.lastStats.NewChunks == 0 || w.lastStats.DedupBytes >= uint64(len(data))/2 {
		t.Fatalf("the re-ingest stored %d new chunks and deduplicated %d bytes: it counted on marked packs", w.lastStats.NewChunks, w.lastStats.DedupBytes)
	}
	res, err = m.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted == 0 {
		t.Fatalf("the second prune deleted nothing: %+v", res)
	}
	mustCheck(t, m, CheckOptions{ReadData: 1})
	s, err := m.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := readStream(t, m, s.Manifest.Streams[0]); !bytes.Equal(got, data) {
		t.Fatal("the snapshot made between the prunes lost data")
	}
}

// TestCacheResyncAfterPrune: a writer's cache that knows index files a
// prune removed must forget their blobs, or the next ingest deduplicates
// against deleted packs.
func TestCacheResyncAfterPrune(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	cacheDir := t.TempDir()
	openW := func() *Repo {
		r, err := Open(ctx, be, k.write)
		if err != nil {
			t.Fatal(err)
		}
		r.SetCacheDir(cacheDir)
		return r
	}
	data := randBytes(5, 400_000)
	w := openW()
	ingest(t, w, "n1", data)
	ingest(t, w, "n2", randBytes(6, 1000))
	w.Close()
	m := open(t, be, k.master)
	if _, err := m.Forget(ctx, Policy{Last: 1}, false); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := m.Prune(ctx, PruneOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w = openW()
	defer w.Close()
	id := ingest(t, w, "n3", data)
	if w.lastStats.NewChunks == 0 {
		t.Fatal("the cache still deduplicated against pruned packs")
	}
	mustCheck(t, m, CheckOptions{ReadData: 1})
	s, err := m.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := readStream(t, m, s.Manifest.Streams[0]); !bytes.Equal(got, data) {
		t.Fatal("restore after prune and re-ingest differs")
	}
}

// TestWriterConcurrentAdd: many goroutines adding overlapping chunks to
// one writer (run with -race); every chunk must be stored once and the
// snapshot restore.
func TestWriterConcurrentAdd(t *testing.T) {
	be, k := newRepo(t)
	setPackSize(t, be, k.master, 1<<20)
	ctx := context.Background()
	r := open(t, be, k.write)
	w, err := r.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	const workers, per, size = 8, 40, 20_000
	chunks := make([][]byte, per)
	for i := range chunks {
		chunks[i] = randBytes(uint64(100+i), size)
	}
	var wg sync.WaitGroup
	ids := make([][]ID, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := range chunks {
				c := chunks[(i+g*7)%per]
				id, _, err := w.Add(ctx, pack.BlobData, c)
				if err != nil {
					t.Error(err)
					return
				}
				ids[g] = append(ids[g], id)
				_ = w.Stats()
			}
		}(g)
	}
	wg.Wait()
	tb := w.storeTree()
	for i, id := range ids[0] {
		if err := tb.Add(ctx, id, uint32(len(chunks[i%per]))); err != nil {
			t.Fatal(err)
		}
	}
	depth, root, err := tb.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Name: "concurrent", Streams: []StreamRef{{Kind: 1, Len: per * size, Depth: depth, Root: root}}}
	sid, err := w.Commit(ctx, m, [32]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if m.Stats.NewChunks != per || m.Stats.Chunks != workers*per {
		t.Errorf("stats %+v, want %d new of %d", m.Stats, per, workers*per)
	}
	mr := open(t, be, k.master)
	mustCheck(t, mr, CheckOptions{ReadData: 1})
	s, err := mr.FindSnapshot(ctx, sid.String())
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; i < per; i++ {
		want = append(want, chunks[i]...)
	}
	if got := readStream(t, mr, s.Manifest.Streams[0]); !bytes.Equal(got, want) {
		t.Fatal("restore differs")
	}
}

// faultBackend fails chosen operations, as a crash or a full disk would
// stop them.
type faultBackend struct {
	backend.Backend
	failSave   func(h backend.Handle) bool
	failRemove func(h backend.Handle) bool
}

var errInjected = errors.New("injected failure")

func (f *faultBackend) Save(ctx context.Context, h backend.Handle, r backend.Source) error {
	if f.failSave != nil && f.failSave(h) {
		return errInjected
	}
	return f.Backend.Save(ctx, h, r)
}

func (f *faultBackend) Remove(ctx context.Context, h backend.Handle) error {
	if f.failRemove != nil && f.failRemove(h) {
		return errInjected
	}
	return f.Backend.Remove(ctx, h)
}

// TestInitAfterInterruptedInit: an init that stopped after storing the
// master's key record but before the config left keys/<id>.cert behind;
// running init again (with a new master key) made a repository whose
// every listing failed ("not a key record certified by the master").
// Init now refuses to start over such leftovers.
func TestInitAfterInterruptedInit(t *testing.T) {
	crypto.TestOnlyFastKDF()
	ctx := context.Background()
	be := backend.OpenLocal(filepath.Join(t.TempDir(), "repo"))
	newMaster := func() *crypto.MasterKey {
		pol, err := chunk.RandomPolynomial()
		if err != nil {
			t.Fatal(err)
		}
		m, err := crypto.NewMasterKey(nil, uint64(pol))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	crashed := &faultBackend{Backend: be, failSave: func(h backend.Handle) bool { return h.Type == backend.TypeConfig }}
	if _, err := Init(ctx, crashed, newMaster(), nil); !errors.Is(err, errInjected) {
		t.Fatalf("interrupted init: %v", err)
	}
	m := newMaster()
	r, err := Init(ctx, be, m, nil)
	if err != nil {
		return // refused: the leftovers are for a person to look at
	}
	defer r.Close()
	if _, err := r.Snapshots(ctx, false); err != nil {
		t.Fatalf("a repository made over an interrupted init does not work: %v", err)
	}
}

// TestReplaceMasterKeyFileInterrupted: key passwd stores the new master
// key file as <id>.key-new, removes <id>.key and stores it again; stopped
// in between, the repository held no <id>.key and MasterKeyFile failed
// although the new file was there.
func TestReplaceMasterKeyFileInterrupted(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	m := open(t, be, k.master)
	name := k.master.ID.String() + ".key"
	m.be = &faultBackend{Backend: be, failSave: func(h backend.Handle) bool { return h.Type == backend.TypeKey && h.Name == name }}
	kf, err := k.master.MarshalKeyFile([]byte("new passphrase"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReplaceMasterKeyFile(ctx, kf); !errors.Is(err, errInjected) {
		t.Fatalf("interrupted key passwd: %v", err)
	}
	got, err := MasterKeyFile(ctx, be)
	if err != nil {
		t.Fatalf("the master key file after an interrupted passphrase change: %v", err)
	}
	if f, err := crypto.ParseKeyFile(got, []byte("new passphrase")); err != nil || f.Master.ID != k.master.ID {
		t.Fatalf("the stored master key file does not open with the new passphrase: %v", err)
	}
	// The next change completes.
	m.be = be
	if err := m.ReplaceMasterKeyFile(ctx, kf); err != nil {
		t.Fatal(err)
	}
	if got, err := MasterKeyFile(ctx, be); err != nil || !bytes.Equal(got, kf) {
		t.Fatalf("after the next change: %v", err)
	}
	if names := listNames(t, be, backend.TypeKey); len(names) != 4 {
		t.Errorf("keys/ holds %v", names)
	}
}

// hookBackend runs a function before the first save of an object of a
// type.
type hookBackend struct {
	backend.Backend
	typ  backend.Type
	once sync.Once
	fn   func()
}

func (h *hookBackend) Save(ctx context.Context, hd backend.Handle, r backend.Source) error {
	if hd.Type == h.typ {
		h.once.Do(h.fn)
	}
	return h.Backend.Save(ctx, hd, r)
}

// TestConcurrentCommitsOfOneKey: two ingests on one machine with the same
// write key that commit at the same time (an overlapping cron run) take
// turns, so they do not both take the next place in the key's chain (which
// Audit would report as a fork forever after). The second commit starts
// while the first is saving its snapshot.
func TestConcurrentCommitsOfOneKey(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	r1, r2 := open(t, be, k.write), open(t, be, k.write)
	r2.SetCacheDir(r1.cacheDir) // one machine, one user
	w2, err := r2.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(ctx)
	if _, _, err := w2.Add(ctx, pack.BlobData, randBytes(2, 1000)); err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	r1.be = &hookBackend{Backend: be, typ: backend.TypeSnapshot, fn: func() {
		go func() {
			_, err := w2.Commit(ctx, &Manifest{Name: "second"}, [32]byte{2})
			second <- err
		}()
		// Unserialised, the second commit reads the chain head now,
		// before the first snapshot is saved.
		time.Sleep(300 * time.Millisecond)
	}}
	w1, err := r1.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close(ctx)
	if _, err := w1.Commit(ctx, &Manifest{Name: "first"}, [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	mustAudit(t, open(t, be, k.audit))
}

// TestPruneRemovesOldTempFiles: the temporary files of saves interrupted
// by a crash were never removed. Prune removes those older than staleAfter
// (a writer whose lock went stale may still be saving a young one).
func TestPruneRemovesOldTempFiles(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	old := filepath.Join(be.Location(), "data", "ab", ".tmp-abcdef-123")
	young := filepath.Join(be.Location(), "snapshots", ".tmp-fedcba-456")
	for _, p := range []string{old, young} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half a pack"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-staleAfter - time.Minute)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	res, err := open(t, be, k.master).Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) || res.TempRemoved != 1 {
		t.Fatalf("old temporary file: stat %v, %d removed", err, res.TempRemoved)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("a young temporary file was removed: %v", err)
	}
}

// TestOpenCacheRemovesDeadPrivateCaches: a process that found the shared
// cache busy and died left its private cache-*.db behind for good.
// openCacheDir removes those no process holds, and keeps one in use.
func TestOpenCacheRemovesDeadPrivateCaches(t *testing.T) {
	dir := t.TempDir()
	shared, err := openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	busy, err := openCacheDir(dir) // the shared one is held: a private one
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if !busy.temp {
		t.Fatal("the second cache is not a private one")
	}
	dead := filepath.Join(dir, "cache-123.db")
	if err := os.WriteFile(dead, []byte("left by a dead process"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, err := openCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if _, err := os.Stat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dead private cache stayed: %v", err)
	}
	if _, err := os.Stat(busy.path); err != nil {
		t.Fatalf("a private cache in use was removed: %v", err)
	}
}

// TestLapsedLockRefusesCommit: a failed lock refresh used to be recorded
// and never looked at, so an ingest whose lock others took for stale (and
// a prune may have acted on) still committed. Now it refuses.
func TestLapsedLockRefusesCommit(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	r := open(t, be, k.write)
	w, err := r.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if _, _, err := w.Add(ctx, pack.BlobData, randBytes(3, 1000)); err != nil {
		t.Fatal(err)
	}
	// No sign of life stored for staleAfter: the refreshes failed.
	r.now = func() time.Time { return time.Now().Add(staleAfter) }
	if _, err := w.Commit(ctx, &Manifest{Name: "late"}, [32]byte{3}); err == nil || !strings.Contains(err.Error(), "may have lapsed") {
		t.Fatalf("commit after the lock lapsed: %v", err)
	}
	snaps, err := open(t, be, k.audit).Snapshots(ctx, true)
	if err != nil || len(snaps) != 0 {
		t.Fatalf("%d snapshots after a refused commit (%v)", len(snaps), err)
	}
}

// TestHostileTreeWalkIsBounded: a chunk-list tree signed by a compromised
// writer could name one list chunk 1024 times per level, so that a walk
// of depth 5 would visit 1024^4 chunks. List entries now carry the bytes
// they cover and a walk checks them against the stream's length, so such
// a tree fails after a few loads; a tree whose counts disagree fails too.
func TestHostileTreeWalkIsBounded(t *testing.T) {
	ctx := context.Background()
	var leafID, innerID ID
	leafID[0], innerID[0] = 1, 2
	var leaf, inner []byte
	var data ID
	data[0] = 9
	leaf = append(append(leaf, data[:]...), 100, 0, 0, 0) // one chunk of 100 bytes
	for range 1024 {
		inner = append(inner, leafID[:]...)
		inner = binary.LittleEndian.AppendUint64(inner, 100)
	}
	chunks := map[ID][]byte{leafID: leaf, innerID: inner}
	var selfID ID // a level naming itself 1024 times
	selfID[0] = 3
	var self []byte
	for range 1024 {
		self = append(self, innerID[:]...)
		self = binary.LittleEndian.AppendUint64(self, 1024*100)
	}
	chunks[selfID] = self
	loads := 0
	load := func(id ID) ([]byte, error) {
		loads++
		if b, ok := chunks[id]; ok {
			return b, nil
		}
		return nil, backend.ErrNotFound
	}
	count := func(listEntry) error { return nil }

	// The honest reading of a level-2 tree: 1024 chunks of 100 bytes.
	if err := walkTree(ctx, 2, innerID, 1024*100, load, count); err != nil {
		t.Fatalf("a consistent tree: %v", err)
	}
	// A stream length that disagrees.
	if err := walkTree(ctx, 2, innerID, 1024*100+1, load, count); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a tree shorter than its stream: %v", err)
	}
	// The self-similar tree, 5 levels deep, claimed as a short stream.
	loads = 0
	var deep ID
	deep[0] = 4
	chunks[deep] = append(append([]byte(nil), selfID[:]...), binary.LittleEndian.AppendUint64(nil, 1024*1024*100)...)
	// (selfID's entries name innerID at level 2 under a level-3 chunk;
	// the walk meets a count it cannot reconcile before long.)
	err := walkTree(ctx, 4, deep, 1000, load, count)
	if !errors.Is(err, ErrCorrupt) || loads > 3 {
		t.Fatalf("hostile tree: %v after %d loads", err, loads)
	}
	// An entry whose count disagrees with its subtree.
	bad := append([]byte(nil), inner[:40]...)
	binary.LittleEndian.PutUint64(bad[32:], 99)
	var badID ID
	badID[0] = 5
	chunks[badID] = bad
	if err := walkTree(ctx, 2, badID, 99, load, count); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an entry claiming 99 bytes over a 100-byte subtree: %v", err)
	}
}

// TestLockOfDeadProcessOnThisMachine: a kill -9 of a prune (or an ingest)
// left a lock that blocked everything for 30 minutes although its process
// was gone from the same machine. A lock whose host and boot are this
// machine's and whose process is gone is stale at once; one of another
// machine is judged by its age.
func TestLockOfDeadProcessOnThisMachine(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	m := open(t, be, k.master)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid // exited and reaped
	host, _ := os.Hostname()
	for i, info := range []LockInfo{
		{ID: "00000000000000d1", Exclusive: true, Host: host, PID: dead, Boot: bootID(), Time: time.Now().UTC(), Key: k.master.ID.String()},
		{ID: "00000000000000d2", Exclusive: true, Host: host, PID: os.Getpid(), Start: 1, Boot: bootID(), Time: time.Now().UTC(), Key: k.master.ID.String()},
	} {
		b, err := m.signLock(info)
		if err != nil {
			t.Fatal(err)
		}
		if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: info.ID}, backend.Bytes(b)); err != nil {
			t.Fatalf("lock %d: %v", i, err)
		}
	}
	// The first's process is gone; the second's ID is alive but started
	// at another time (a reused process ID).
	if active, err := m.ActiveLocks(ctx); err != nil || len(active) != 0 {
		t.Fatalf("locks of processes gone: %+v %v", active, err)
	}
	// The same lock from another machine counts until it is stale.
	info := LockInfo{ID: "00000000000000d3", Exclusive: true, Host: "another-machine", PID: dead, Time: time.Now().UTC(), Key: k.master.ID.String()}
	b, err := m.signLock(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Save(ctx, backend.Handle{Type: backend.TypeLock, Name: info.ID}, backend.Bytes(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, be, k.write).Lock(ctx, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("another machine's fresh exclusive lock did not count: %v", err)
	}
	// unlock removes the two of gone processes and the writer's released
	// one; the other machine's stays.
	if n, err := m.Unlock(ctx, false); err != nil || n != 3 {
		t.Fatalf("unlock removed %d locks: %v", n, err)
	}
	if names := listNames(t, be, backend.TypeLock); len(names) != 1 || names[0] != info.ID {
		t.Fatalf("after unlock: %v", names)
	}
}

// TestClaimOfHugeBlobRefused: a reader allocated whatever length an index
// entry claimed (up to 4 GiB) before reading the range, so a lying index
// could make a restore allocate that much. An entry whose sealed object is
// larger than any blob or frame can be is refused as it is parsed.
func TestClaimOfHugeBlobRefused(t *testing.T) {
	var key [32]byte
	for _, n := range []uint32{pack.MaxSealedObject + 1, 1 << 31, 0} {
		b := pack.Blob{Type: pack.BlobData, ID: ID{1}, Offset: uint32(pack.HeaderSize), Length: n, Framed: true}
		f := &index.File{Entries: pack.EntriesShort, Packs: []index.Pack{{ID: ID{2}, Blobs: []pack.Blob{b}}}}
		sealed, err := f.Seal(&key, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := index.Open(sealed, &key, nil); err == nil {
			t.Errorf("an entry claiming a sealed object of %d bytes was accepted", n)
		}
	}
	ok := pack.Blob{Type: pack.BlobData, ID: ID{1}, Offset: uint32(pack.HeaderSize), Length: pack.MaxSealedObject, Framed: true}
	f := &index.File{Entries: pack.EntriesShort, Packs: []index.Pack{{ID: ID{2}, Blobs: []pack.Blob{ok}}}}
	sealed, _ := f.Seal(&key, nil)
	if _, err := index.Open(sealed, &key, nil); err != nil {
		t.Errorf("the largest possible object was refused: %v", err)
	}
}
