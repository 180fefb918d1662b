package repo

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/larder/larder/repo/internal/pack"
)

// Writers: a dry run stores nothing, listings survive removals, and
// concurrent adds are safe.

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

// TestStreamDedupInBatches: a stream's chunks are checked against the
// repository in batches (frameWriter.resolve). Chunks repeated within a
// batch, across batches and across two streams at once are stored once;
// a stream never holds maxHeldChunks chunks or maxHeldBytes bytes waiting
// for their check; the next session of this machine stores none of them
// again (its own packs), while a writer with another cache stores them
// all (another writer's claims are not believed); and the stream restores.
// For each repository version: frames, and blobs of their own.
func TestStreamDedupInBatches(t *testing.T) {
	for _, version := range []int{1, repoVersion} {
		t.Run(fmt.Sprintf("version %d", version), func(t *testing.T) {
			testStreamDedupInBatches(t, version)
		})
	}
}

func testStreamDedupInBatches(t *testing.T, version int) {
	be, k := newRepo(t)
	setPackSize(t, be, k.master, 1<<20)
	rewriteConfig(t, be, k.master, func(c *Config) { c.Version = version })
	ctx := context.Background()
	// 60 small chunks and 6 of 300 KiB: a batch of small ones repeats
	// chunks; the large ones end batches by their bytes.
	var pool [][]byte
	for i := range 60 {
		pool = append(pool, randBytes(uint64(1000+i), 1000+i))
	}
	for i := range 6 {
		pool = append(pool, randBytes(uint64(2000+i), 300<<10+i))
	}
	stream := func(g int) [][]byte {
		var out [][]byte
		for i := range 3*maxHeldChunks + 17 {
			j := (i*7 + g) % 60
			if i%100 == 99 {
				j = 60 + (i/100+g)%6
			}
			out = append(out, pool[j])
		}
		return out
	}
	streams := [][][]byte{stream(0), stream(1)}
	distinct, total := map[string]bool{}, 0
	var newRaw uint64
	for _, s := range streams {
		for _, c := range s {
			total++
			if !distinct[string(c)] {
				distinct[string(c)] = true
				newRaw += uint64(len(c))
			}
		}
	}
	var allBytes uint64
	for _, s := range streams {
		for _, c := range s {
			allBytes += uint64(len(c))
		}
	}
	// session adds the streams at once and commits the first.
	session := func(r *Repo) (IngestStats, ID) {
		w, err := r.NewWriter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close(ctx)
		ids := make([][]ID, len(streams))
		var wg sync.WaitGroup
		for g, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				fw := w.newFrameWriter()
				for _, c := range s {
					id, err := fw.Add(ctx, c)
					if err != nil {
						t.Error(err)
						return
					}
					if len(fw.held) >= maxHeldChunks || len(fw.heldBuf) >= maxHeldBytes {
						t.Errorf("a stream holds %d chunks of %d bytes", len(fw.held), len(fw.heldBuf))
						return
					}
					ids[g] = append(ids[g], id)
				}
				if err := fw.Close(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		tb := w.storeTree()
		var n uint64
		for i, id := range ids[0] {
			if err := tb.Add(ctx, id, uint32(len(streams[0][i]))); err != nil {
				t.Fatal(err)
			}
			n += uint64(len(streams[0][i]))
		}
		depth, root, err := tb.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := &Manifest{Name: "batches", Streams: []StreamRef{{Kind: 1, Len: n, Depth: depth, Root: root}}}
		sid, err := w.Commit(ctx, m, [32]byte{byte(version)})
		if err != nil {
			t.Fatal(err)
		}
		return m.Stats, sid
	}
	r := open(t, be, k.write)
	st, sid := session(r)
	if st.Chunks != uint64(total) || st.NewChunks != uint64(len(distinct)) || st.NewRaw != newRaw || st.DedupBytes != allBytes-newRaw {
		t.Errorf("first session: stats %+v, want %d chunks, %d new of %d bytes, %d bytes deduplicated", st, total, len(distinct), newRaw, allBytes-newRaw)
	}
	if st, _ := session(r); st.NewChunks != 0 || st.DedupBytes != allBytes {
		t.Errorf("second session of this machine: stats %+v, want nothing new", st)
	}
	if st, _ := session(open(t, be, k.write)); st.NewChunks != uint64(len(distinct)) {
		t.Errorf("a writer with a fresh cache: stats %+v, want %d new chunks (claims are not trusted)", st, len(distinct))
	}
	mr := open(t, be, k.master)
	mustCheck(t, mr, CheckOptions{ReadData: 1})
	s, err := mr.FindSnapshot(ctx, sid.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := readStream(t, mr, s.Manifest.Streams[0]); !bytes.Equal(got, bytes.Join(streams[0], nil)) {
		t.Fatal("restore differs")
	}
}
