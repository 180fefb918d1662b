package recompress

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// The fuzz targets check properties, not just the absence of panics:
// Unpack then Pack gives back any input exactly; a decodable recipe
// re-encodes to an equivalent one; a gzip header parse keeps the exact
// bytes it consumed.

func addFixtureSeeds(f *testing.F) {
	for _, p := range committed(f) {
		b := mustRead(f, p)
		f.Add(b[:min(len(b), 2048)])
	}
}

func FuzzUnpack(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	// A whole tar of small gzip members (GNU tar and gzip): the walker
	// identifies them ahead (ahead.go), whatever the mutations do to the
	// headers it scans.
	f.Add(datGzTar(f, 3, 200, 1500, 1, "gzip"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sink := &memSink{}
		res, err := Unpack(context.Background(), bytes.NewReader(data), sink, Options{Name: "fuzz"})
		if err != nil {
			t.Fatalf("unpack refused input: %v", err)
		}
		var out bytes.Buffer
		if err := Pack(context.Background(), res.Recipe, sink.open, &out); err != nil {
			t.Fatalf("pack: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("rebuilt %d bytes differ from the %d-byte input", out.Len(), len(data))
		}
	})
}

func FuzzRecipe(f *testing.F) {
	for _, p := range committed(f) {
		sink := &memSink{}
		res, err := Unpack(context.Background(), bytes.NewReader(mustRead(f, p)), sink, Options{})
		if err != nil {
			f.Fatal(err)
		}
		enc, err := res.Recipe.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	// Recipes in parts (version 2 and 3): the committed fixtures are too
	// small to be cut, and version 1, 2 and 3 recipes as written before.
	for _, rc := range segmentedRecipes() {
		enc, err := rc.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	old, _ := filepath.Glob(filepath.Join("testdata", "recipes-v[123]", "*.recipe"))
	for _, p := range old {
		f.Add(mustRead(f, p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Recipe
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded recipe does not encode: %v", err)
		}
		var r2 Recipe
		if err := r2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("re-encoded recipe does not decode: %v", err)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatal("recipe changed through encode and decode")
		}
	})
}

func FuzzGzipHeader(f *testing.F) {
	f.Add([]byte{0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 0, 3, 2, 0, 'h', 'i', 'n', 0, 'c', 0, 0xaa, 0xbb})
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 1<<17)
		h, err := readGzipHeader(r)
		if err != nil {
			if r.Buffered() != len(data) && len(data) < 1<<17 {
				t.Fatal("a failed parse consumed bytes")
			}
			return
		}
		if len(h.raw) < 10 || !bytes.HasPrefix(data, h.raw) {
			t.Fatalf("header bytes % x are not the input's start", h.raw)
		}
		if r.Buffered() != len(data)-len(h.raw) {
			t.Fatal("the parse consumed other than the header")
		}
	})
}

// TestFuzzSeedCorpora fails when a committed seed corpus has gone missing,
// so that the fuzz targets never run without their seeds unnoticed.
func TestFuzzSeedCorpora(t *testing.T) {
	for _, name := range []string{"FuzzUnpack", "FuzzRecipe", "FuzzGzipHeader"} {
		ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name))
		if err != nil || len(ents) == 0 {
			t.Errorf("seed corpus testdata/fuzz/%s is empty or missing: %v", name, err)
		}
	}
}

// segmentedRecipes are small valid recipes whose member is in parts.
func segmentedRecipes() []*Recipe {
	p := deflate.GzipParams(1, deflate.RsyncOff)
	stored := []deflate.StoredRun{{Len: 50, Count: 1}}
	sbits, _ := storedBits(0, stored)
	var out []*Recipe
	for _, segs := range [][]Segment{
		{{Kind: SegStart, Content: 60, Bits: 200}, {Kind: 1, Content: 40, Bits: 600}},
		{{Kind: SegStored, Content: 50, Bits: sbits, Stored: stored}, {Kind: 4, Content: 50, Bits: 800 - sbits}},
	} {
		m := Member{Header: make([]byte, 10), Mode: ModeExact, Params: p, ContentLen: 100, Exact: 100, Segments: segs}
		out = append(out, &Recipe{Streams: []Stream{{Kind: KindRaw, Len: 100}},
			Root: &Gzip{Verbatim: -1, Members: []Member{m}, Content: &Copy{Stream: 0, Len: 100}}, Size: 10 + 100 + 8})
	}
	// A partial member with parts (version 3): they end inside the byte
	// where its tail starts.
	m := Member{Header: make([]byte, 10), Mode: ModePartial, Params: p, ContentLen: 100, Exact: 25, Tail: 5,
		Segments: []Segment{{Kind: SegStart, Content: 60, Bits: 120}, {Kind: 2, Content: 20, Bits: 81}}}
	out = append(out, &Recipe{Streams: []Stream{{Kind: KindRaw, Len: 100}, {Kind: KindVerbatim, Len: 5}},
		Root: &Gzip{Verbatim: 1, Members: []Member{m}, Content: &Copy{Stream: 0, Len: 100}}, Size: 10 + 25 + 5 + 8})
	return out
}
