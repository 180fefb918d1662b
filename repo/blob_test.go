package repo

import (
	"bytes"
	"context"
	"testing"

	"github.com/larder/larder/repo/backend"
)

// TestTinyStreamsRestore: streams of a few bytes, written with the write
// key (short entries only), restore with the master from a cold cache and
// from the pack trailers alone.
func TestTinyStreamsRestore(t *testing.T) {
	be, k := newRepo(t)
	ctx := context.Background()
	streams := [][]byte{[]byte("x"), bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("ab"), 127), bytes.Repeat([]byte("abc"), 100)}
	ingest(t, open(t, be, k.write), "tiny", streams...)
	restore := func(what string) {
		m := open(t, be, k.master)
		snaps, err := m.Snapshots(ctx, true)
		if err != nil || len(snaps) != 1 {
			t.Fatalf("%s: %d snapshots: %v", what, len(snaps), err)
		}
		for i, ref := range snaps[0].Manifest.Streams {
			if got := readStream(t, m, ref); !bytes.Equal(got, streams[i]) {
				t.Fatalf("%s: stream %d: %q, stored %q", what, i, got, streams[i])
			}
		}
	}
	restore("cold cache")
	for _, name := range listNames(t, be, backend.TypeIndex) {
		if err := be.Remove(ctx, backend.Handle{Type: backend.TypeIndex, Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	restore("no index")
}
