package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
)

func TestChunkID(t *testing.T) {
	k1, k2 := testKey("chunk-ID key 1"), testKey("chunk-ID key 2")
	seen := map[[32]byte]string{}
	for _, n := range sizes {
		b := pattern(n)
		id := ChunkID(k1, b)
		m := hmac.New(sha256.New, k1[:])
		m.Write(b)
		if want := m.Sum(nil); string(id[:]) != string(want) {
			t.Fatalf("size %d: ChunkID is not HMAC-SHA256", n)
		}
		if ChunkID(k1, b) != id {
			t.Fatal("ChunkID is not deterministic")
		}
		id2 := ChunkID(k2, b)
		if id2 == id {
			t.Fatalf("size %d: two keys give the same ID", n)
		}
		if id == sha256.Sum256(b) {
			t.Fatal("ChunkID is the unkeyed hash")
		}
		for _, x := range [][32]byte{id, id2} {
			if prev, dup := seen[x]; dup {
				t.Fatalf("ID collision between %s and size %d", prev, n)
			}
			seen[x] = fmt.Sprint(n)
		}
	}
}

func TestChunkIDHashStreaming(t *testing.T) {
	key := testKey("chunk-ID key 1")
	for _, n := range sizes {
		b := pattern(n)
		want := ChunkID(key, b)
		h := NewChunkIDHash(key)
		// Several split patterns, and Reset between them (state must not leak).
		for _, step := range []int{1, 7, 4096, n + 1} {
			h.Reset()
			for i := 0; i < n; i += step {
				h.Write(b[i:min(i+step, n)])
			}
			if h.ID() != want {
				t.Fatalf("size %d step %d: streaming ID differs", n, step)
			}
			if h.ID() != want {
				t.Fatal("ID changed the state")
			}
			if string(h.Sum(nil)) != string(want[:]) || h.Size() != ChunkIDSize || h.BlockSize() != sha256.BlockSize {
				t.Fatal("hash.Hash methods disagree")
			}
		}
	}
}
