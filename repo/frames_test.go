package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/larder/larder/repo/backend"
)

// sqlLike is n bytes of pg_dump COPY rows: ids, words, dates; as
// compressible as real table data, and different for each seed.
func sqlLike(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	words := []string{"the", "forum", "post", "reply", "backup", "night", "user", "topic", "like",
		"quote", "image", "thanks", "great", "idea", "release", "upgrade", "discourse", "postgres"}
	var b bytes.Buffer
	for id := 1; b.Len() < n; id++ {
		fmt.Fprintf(&b, "%d\t%d\t", id, rng.IntN(5000))
		for range 5 + rng.IntN(30) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "\t2026-01-%02d %02d:%02d:%02d.%06d+00\n", 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e6))
	}
	return b.Bytes()[:n]
}

// frames lists the distinct frames of a repository's index and counts
// its framed and single blobs.
func frames(t *testing.T, r *Repo) (nframes, framed, single int) {
	t.Helper()
	packs := indexedPacks(t, r)
	type at struct {
		pack   ID
		offset uint32
	}
	seen := map[at]bool{}
	for _, p := range packs {
		for _, b := range p.Blobs {
			if !b.Framed {
				single++
				continue
			}
			framed++
			seen[at{p.ID, b.Offset}] = true
		}
	}
	return len(seen), framed, single
}

// TestFramesStoreTextSmaller: the same text stored in a version 1
// repository (a blob per chunk) and a version 2 one (frames) restores
// exactly from both, and frames store it in fewer, smaller objects.
func TestFramesStoreTextSmaller(t *testing.T) {
	text := sqlLike(1, 3<<20)
	ctx := context.Background()
	stored := map[int]uint64{}
	for _, version := range []int{1, 2} {
		be, k := newRepo(t)
		rewriteConfig(t, be, k.master, func(c *Config) { c.Version = version })
		w := open(t, be, k.write)
		if w.framed() != (version == 2) {
			t.Fatalf("version %d: framed %v", version, w.framed())
		}
		id := ingest(t, w, "night", text)
		stored[version] = w.lastStats.NewStored
		m := open(t, be, k.master)
		snap, err := m.FindSnapshot(ctx, id.String())
		if err != nil {
			t.Fatal(err)
		}
		if got := readStream(t, m, snap.Manifest.Streams[0]); !bytes.Equal(got, text) {
			t.Fatalf("version %d: the stream did not come back", version)
		}
		mustCheck(t, m, CheckOptions{ReadData: 1})
		nf, framed, single := frames(t, m)
		t.Logf("version %d: %d bytes stored for %d; %d frames holding %d chunks, %d single blobs",
			version, stored[version], len(text), nf, framed, single)
		switch {
		case version == 1 && framed != 0:
			t.Fatalf("version 1 wrote %d framed chunks", framed)
		case version == 2 && (framed == 0 || nf*8 > framed):
			t.Fatalf("version 2: %d frames for %d chunks", nf, framed)
		}
	}
	if stored[2]*10 > stored[1]*9 {
		t.Fatalf("frames stored %d bytes, single blobs %d: not 10%% smaller", stored[2], stored[1])
	}
}

// TestFramesPruneRepack: after the snapshot that wrote them is forgotten,
// frames whose chunks are partly still used are repacked; the snapshot
// left restores exactly, and reading it loads each frame about once even
// though its chunks alternate between old and new frames.
func TestFramesPruneRepack(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	w := open(t, be, k.write)
	night1 := sqlLike(2, 2<<20)
	ingest(t, w, "night1", night1)
	// Night 2 changes a line every 12 KiB: about a third of the chunks,
	// so night 1's frames are about a third dead (prune repacks from a
	// quarter on).
	night2 := bytes.Clone(night1)
	for off := 1000; off < len(night2); off += 12 << 10 {
		copy(night2[off:], "CHANGED")
	}
	id2 := ingest(t, w, "night2", night2)
	// Night 2's chunks alternate between night 1's frames and its own:
	// the reader keeps recent frames, so it loads each about once.
	readCounting(t, be, k, id2, night2)

	m := open(t, be, k.master)
	if _, err := m.Forget(ctx, Policy{Last: 1}, false); err != nil {
		t.Fatal(err)
	}
	res, err := m.Prune(ctx, PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Repacked == 0 {
		t.Fatalf("nothing repacked: %+v", res)
	}
	if _, err := m.Prune(ctx, PruneOptions{}); err != nil { // deletes the marked packs
		t.Fatal(err)
	}

	readCounting(t, be, k, id2, night2)
	mustCheck(t, open(t, be, k.master), CheckOptions{ReadData: 1})
}

// readCounting reads the first stream of snapshot id through a backend
// that counts loads, compares it with want, and fails when the loads are
// not far fewer than the chunks: each frame, list chunk and pack header
// should be loaded about once.
func readCounting(t *testing.T, be backend.Backend, k keys, id ID, want []byte) {
	t.Helper()
	var loads atomic.Int64
	cb := backend.Fault(be, 0, 0)
	cb.Hook = func(op string, _ backend.Handle) error {
		if op == "load" {
			loads.Add(1)
		}
		return nil
	}
	m := open(t, cb, k.master)
	snap, err := m.FindSnapshot(context.Background(), id.String())
	if err != nil {
		t.Fatal(err)
	}
	var chunks int
	if err := m.WalkStream(context.Background(), snap.Manifest.Streams[0], func(listEntry) error { chunks++; return nil }); err != nil {
		t.Fatal(err)
	}
	loads.Store(0)
	if got := readStream(t, m, snap.Manifest.Streams[0]); !bytes.Equal(got, want) {
		t.Fatal("the stream did not come back")
	}
	nf, _, _ := frames(t, m)
	n := int(loads.Load())
	t.Logf("%d chunks from %d frames in %d loads", chunks, nf, n)
	if n > chunks/3 {
		t.Fatalf("reading %d chunks took %d loads (%d frames in the repository)", chunks, n, nf)
	}
}

// TestFrameTamperDetected: a byte changed inside a frame makes reading
// any of its chunks fail with ErrBlob, naming the pack.
func TestFrameTamperDetected(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	id := ingest(t, open(t, be, k.write), "night", sqlLike(3, 1<<20))
	m := open(t, be, k.master)
	packs := indexedPacks(t, m)
	var victim string
	var at uint32
	for _, p := range packs {
		for _, b := range p.Blobs {
			if b.Framed {
				victim, at = p.ID.String(), b.Offset+b.Length/2
			}
		}
	}
	if victim == "" {
		t.Fatal("no frame stored")
	}
	path := filepath.Join(be.Location(), "data", victim[:2], victim)
	pk := mustReadFile(t, path)
	pk[at] ^= 1
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, pk)
	snap, err := m.FindSnapshot(ctx, id.String())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := m.OpenStream(ctx, snap.Manifest.Streams[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrBlob) || !strings.Contains(err.Error(), victim[:8]) {
		t.Fatalf("reading a tampered frame: %v", err)
	}
}
