package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
)

// watchedBackend measures the loads of a stream's reader: how many run at
// once; slow makes each take a while (as over a network), so that the
// read ahead's fetches meet; refuse, when set, refuses a load with a
// permanent error.
type watchedBackend struct {
	backend.Backend
	slow    time.Duration
	refuse  func(h backend.Handle, off, n int64) bool
	block   func(h backend.Handle, n int64) bool
	active  atomic.Int64
	loads   atomic.Int64
	refused atomic.Int64
	mu      sync.Mutex
	most    int64
}

func (w *watchedBackend) Load(ctx context.Context, h backend.Handle, off, n int64, fn func(io.Reader) error) error {
	w.loads.Add(1)
	a := w.active.Add(1)
	defer w.active.Add(-1)
	w.mu.Lock()
	w.most = max(w.most, a)
	w.mu.Unlock()
	if w.refuse != nil && w.refuse(h, off, n) {
		w.refused.Add(1)
		return backend.Permanent(errors.New("range refused"))
	}
	if w.block != nil && w.block(h, n) {
		<-ctx.Done()
		return ctx.Err()
	}
	if w.slow > 0 {
		time.Sleep(w.slow)
	}
	return w.Backend.Load(ctx, h, off, n, fn)
}

// readAheadRepo is a repository with small packs and a snapshot of a text
// and a bulk stream deep enough for list chunks of two levels.
func readAheadRepo(t *testing.T) (backend.Backend, keys, ID, [][]byte) {
	t.Helper()
	be, k := newRepo(t)
	setPackSize(t, be, k.master, 1<<20)
	streams := [][]byte{sqlLike(3, 3<<20), randBytes(4, 3<<20)}
	id := ingest(t, open(t, be, k.write), "night", streams...)
	return be, k, id, streams
}

// TestReadAheadStreams: every stream reads back whatever the number of
// fetches at once, and no more than that run at once (for the frames and
// for the list chunks, and the reader's own loads beside them).
func TestReadAheadStreams(t *testing.T) {
	be, k, id, streams := readAheadRepo(t)
	for _, n := range []int{1, 3, 8} {
		wb := &watchedBackend{Backend: be, slow: time.Millisecond}
		m := open(t, wb, k.master)
		m.SetReadAhead(n)
		snap, err := m.FindSnapshot(context.Background(), id.String())
		if err != nil {
			t.Fatal(err)
		}
		if d := snap.Manifest.Streams[0].Depth; d < 2 {
			t.Fatalf("the text stream's tree has depth %d: no level 1 list chunks to read ahead", d)
		}
		wb.mu.Lock()
		wb.most = 0
		wb.mu.Unlock()
		for i, ref := range snap.Manifest.Streams {
			if got := readStream(t, m, ref); !bytes.Equal(got, streams[i]) {
				t.Fatalf("%d at once: stream %d did not come back", n, i)
			}
		}
		t.Logf("%d at once: %d loads, at most %d at once", n, wb.loads.Load(), wb.most)
		if wb.most > int64(2*n+2) {
			t.Fatalf("%d at once: %d loads ran at once", n, wb.most)
		}
		if n > 1 && wb.most < 2 {
			t.Fatalf("%d at once: the loads never ran side by side", n)
		}
	}
}

// TestReadAheadFetchOfSeveralFails: when a fetch of several ranges fails
// (a false claim beside true ones, a server that refuses long ranges),
// the reader fetches each range itself and the stream reads back.
func TestReadAheadFetchOfSeveralFails(t *testing.T) {
	be, k, id, streams := readAheadRepo(t)
	var longest int64
	for _, p := range indexedPacks(t, open(t, be, k.master)) {
		for _, b := range p.Blobs {
			longest = max(longest, int64(b.Length))
		}
	}
	wb := &watchedBackend{Backend: be, slow: time.Millisecond, refuse: func(h backend.Handle, _, n int64) bool {
		return h.Type == backend.TypeData && n > longest
	}}
	m := open(t, wb, k.master)
	m.SetReadAhead(2)
	snap, err := m.FindSnapshot(context.Background(), id.String())
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range snap.Manifest.Streams {
		if got := readStream(t, m, ref); !bytes.Equal(got, streams[i]) {
			t.Fatalf("stream %d did not come back", i)
		}
	}
	if wb.refused.Load() == 0 {
		t.Fatal("no fetch of several ranges was made (the test tests nothing)")
	}
	if w := m.Warnings(); len(w) != 0 {
		t.Fatalf("warnings about intact copies: %v", w)
	}
}

// TestReadAheadClose: closing a stream part way ends its fetches, even
// those the storage never answers, and its goroutines.
func TestReadAheadClose(t *testing.T) {
	be, k, id, _ := readAheadRepo(t)
	var hang atomic.Bool
	wb := &watchedBackend{Backend: be, block: func(backend.Handle, int64) bool { return hang.Load() }}
	m := open(t, wb, k.master)
	m.SetReadAhead(4)
	snap, err := m.FindSnapshot(context.Background(), id.String())
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	rc, err := m.OpenStream(context.Background(), snap.Manifest.Streams[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	// From now on the storage never answers: the reader waits.
	hang.Store(true)
	read := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, rc)
		read <- err
	}()
	waitFor(t, "a load that hangs", func() bool { return wb.active.Load() > 0 })
	rc.Close()
	if err := <-read; err == nil {
		t.Fatal("the closed stream read to its end")
	}
	waitFor(t, "the loads and goroutines to end", func() bool {
		return wb.active.Load() == 0 && runtime.NumGoroutine() <= before
	})
}

// waitFor waits up to 10 s for done.
func waitFor(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("waited 10 s for %s\n%s", what, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIndexLookupsBatched: an ingest checks its chunks against the cache,
// and a restore looks up their copies, in batches (HasMany, CopiesMany):
// far fewer read transactions than chunks. (Each chunk used to cost one.)
func TestIndexLookupsBatched(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	readTxs := func(r *Repo) int {
		t.Helper()
		c, err := r.openCache(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c.db.Stats().TxN
	}
	text := sqlLike(5, 3<<20)
	before := readTxs(w)
	id := ingest(t, w, "night", text)
	chunks := int(w.lastStats.Chunks)
	ingestTxs := readTxs(w) - before
	m := open(t, be, k.master)
	snap, err := m.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	before = readTxs(m)
	if got := readStream(t, m, snap.Manifest.Streams[0]); !bytes.Equal(got, text) {
		t.Fatal("restore differs")
	}
	restoreTxs := readTxs(m) - before
	t.Logf("%d chunks: %d read transactions to ingest them, %d to restore them", chunks, ingestTxs, restoreTxs)
	if chunks < 1000 || ingestTxs*8 > chunks || restoreTxs*8 > chunks {
		t.Errorf("%d chunks: %d read transactions to ingest them, %d to restore them; want fewer than 1 in 8", chunks, ingestTxs, restoreTxs)
	}
}
