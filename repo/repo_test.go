package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestRoundTripSizes(t *testing.T) {
	be, k := newRepo(t)
	w := open(t, be, k.write)
	sizes := []int{0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 65536 + 7, 3 << 20}
	var streams [][]byte
	for i, n := range sizes {
		streams = append(streams, randBytes(uint64(i), n))
	}
	id := ingest(t, w, "sizes", streams...)
	m := open(t, be, k.master)
	s, err := m.FindSnapshot(context.Background(), id.String()[:8])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Manifest.Streams) != len(sizes) {
		t.Fatalf("%d streams, want %d", len(s.Manifest.Streams), len(sizes))
	}
	for i, ref := range s.Manifest.Streams {
		if got := readStream(t, m, ref); !bytes.Equal(got, streams[i]) {
			t.Errorf("stream %d (%d bytes): got %d bytes back", i, sizes[i], len(got))
		}
	}
}

func TestDedupAcrossSnapshots(t *testing.T) {
	be, k := newRepo(t)
	w := open(t, be, k.write)
	base := randBytes(1, 4<<20)
	ingest(t, w, "night1", base)
	first := w.lastStats
	changed := bytes.Clone(base)
	copy(changed[2<<20:], []byte("an edited forum post"))
	ingest(t, w, "night2", changed)
	second := w.lastStats
	if second.NewRaw > first.NewRaw/10 {
		t.Errorf("night 2 stored %d new bytes of %d; night 1 stored %d", second.NewRaw, len(changed), first.NewRaw)
	}
	ingest(t, w, "night3", changed)
	if w.lastStats.NewChunks != 0 {
		t.Errorf("an identical night stored %d new chunks", w.lastStats.NewChunks)
	}
}

func TestRoles(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	id := ingest(t, w, "secret", []byte("private message: my password is hunter2"))
	// The write key lists but cannot open.
	s, err := w.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	if s.Manifest != nil {
		t.Fatal("a write key opened a manifest")
	}
	if _, err := w.OpenStream(ctx, StreamRef{Depth: 1}); !errors.Is(err, ErrPermission) {
		t.Fatalf("write key OpenStream: %v", err)
	}
	// The audit key opens the manifest and walks the lists, but not data.
	a := open(t, be, k.audit)
	as, err := a.FindSnapshot(ctx, id.String())
	if err != nil || as.Manifest == nil {
		t.Fatalf("audit key could not open the manifest: %v", err)
	}
	n := 0
	if err := a.WalkStream(ctx, as.Manifest.Streams[0], func(ListEntry) error { n++; return nil }); err != nil || n == 0 {
		t.Fatalf("audit key walked %d chunks: %v", n, err)
	}
	if _, err := a.OpenStream(ctx, as.Manifest.Streams[0]); !errors.Is(err, ErrPermission) {
		t.Fatalf("audit key OpenStream: %v", err)
	}
	if _, err := a.NewWriter(ctx); !errors.Is(err, ErrPermission) {
		t.Fatalf("audit key NewWriter: %v", err)
	}
	if _, err := w.Forget(ctx, Policy{Last: 1}, false); !errors.Is(err, ErrPermission) {
		t.Fatalf("write key Forget: %v", err)
	}
}
