package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/larder/larder/repo/backend"
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
	if err := a.WalkStream(ctx, as.Manifest.Streams[0], func(listEntry) error { n++; return nil }); err != nil || n == 0 {
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

func TestTamperDetected(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	ingest(t, w, "n1", randBytes(1, 300_000), randBytes(2, 200_000))
	ingest(t, w, "n2", randBytes(3, 300_000))
	// Flip one byte in every object in turn (a sample of positions).
	for _, typ := range []backend.Type{backend.TypeData, backend.TypeIndex, backend.TypeSnapshot} {
		var names []string
		list(ctx, be, typ, func(n string, _ int64) error { names = append(names, n); return nil })
		for _, name := range names {
			h := backend.Handle{Type: typ, Name: name}
			p, _ := be.Path(h)
			orig := mustReadFile(t, p)
			for _, pos := range []int{0, len(orig) / 3, len(orig) / 2, len(orig) - 1} {
				bad := bytes.Clone(orig)
				bad[pos] ^= 1
				writeFile(t, p, bad)
				res, err := CheckKeyless(ctx, be)
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Problems) == 0 {
					t.Errorf("%s: a flipped byte at %d went unnoticed by the keyless check", h, pos)
				}
				a := open(t, be, k.audit)
				rep, err := a.Audit(ctx)
				if err == nil && rep.OK() {
					t.Errorf("%s: a flipped byte at %d went unnoticed by audit", h, pos)
				}
				writeFile(t, p, orig)
			}
		}
	}
	a := open(t, be, k.audit)
	rep, err := a.Audit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit of the restored repository: %v %v", err, rep.Problems)
	}
}

func TestChainGapDetected(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	ingest(t, w, "n1", randBytes(1, 1000))
	mid := ingest(t, w, "n2", randBytes(2, 1000))
	ingest(t, w, "n3", randBytes(3, 1000))
	a := open(t, be, k.audit)
	if rep, err := a.Audit(ctx); err != nil || !rep.OK() {
		t.Fatalf("audit before: %v %v", err, rep.Problems)
	}
	// Someone with storage access removes the middle snapshot.
	if err := be.Remove(ctx, backend.Handle{Type: backend.TypeSnapshot, Name: mid.String()}); err != nil {
		t.Fatal(err)
	}
	rep, err := a.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatal("audit did not notice a snapshot removed from the middle of a chain")
	}
	t.Log(rep.Problems)
}

func TestForgetExplainsGaps(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	for i := 0; i < 5; i++ {
		ingest(t, w, "n", randBytes(uint64(i), 100_000))
	}
	m := open(t, be, k.master)
	plan, err := m.Forget(ctx, Policy{Last: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, d := range plan {
		if d.Keep {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("kept %d, want 2", kept)
	}
	a := open(t, be, k.audit)
	rep, err := a.Audit(ctx)
	if err != nil || !rep.OK() {
		t.Fatalf("audit after forget: %v %v", err, rep.Problems)
	}
	// The record says when and which: the audit key reads it (the admin
	// page's activity log).
	recs, err := a.ForgetRecords(ctx)
	if err != nil || len(recs) != 1 || len(recs[0].Removed) != 3 || recs[0].Time.IsZero() {
		t.Fatalf("forget records: %+v, %v", recs, err)
	}
	// The chain goes on after forget.
	ingest(t, w, "n6", randBytes(9, 1000))
	if rep, err := a.Audit(ctx); err != nil || !rep.OK() {
		t.Fatalf("audit after a new snapshot: %v %v", err, rep.Problems)
	}
}
