package repo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/larder/larder/repo/internal/pack"
)

// Prune: what it removes (unindexed packs, old temporary files, dead
// private caches), and the caches that must follow it.

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
