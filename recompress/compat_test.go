package recompress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/larder/larder/recompress/deflate"
)

// TestRecipeV1Restores: recipes written by the release before segments
// (version 1, made from the committed fixtures by commit f103b63 and kept
// in testdata/recipes-v1) still decode and rebuild their originals bit
// for bit from today's canonical streams.
func TestRecipeV1Restores(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "recipes-v1", "*.recipe"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no version 1 recipes found: %v", err)
	}
	originals := map[string]string{}
	for _, p := range committed(t) {
		originals[filepath.Base(p)] = p
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".recipe")
		t.Run(name, func(t *testing.T) {
			enc, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if enc[4] != 1 {
				t.Fatalf("%s is recipe version %d, not 1", f, enc[4])
			}
			var rc Recipe
			if err := rc.UnmarshalBinary(enc); err != nil {
				t.Fatalf("decoding a version 1 recipe: %v", err)
			}
			orig, ok := originals[name]
			if !ok {
				t.Fatalf("no committed fixture %s", name)
			}
			data, err := os.ReadFile(orig)
			if err != nil {
				t.Fatal(err)
			}
			sink := &memSink{}
			if _, err := Unpack(context.Background(), bytes.NewReader(data), sink, Options{}); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := Pack(context.Background(), &rc, sink.open, &out); err != nil {
				t.Fatalf("packing with the version 1 recipe: %v", err)
			}
			if sha256.Sum256(out.Bytes()) != sha256.Sum256(data) {
				t.Fatalf("rebuilt file differs at byte %d", firstDiff(out.Bytes(), data))
			}
		})
	}
}

// goldenV2Input is the input of the version 2 golden recipe: dump-like
// text with runs of pseudo-random bytes (stored blocks), gzipped by this
// package's own gzip -1 engine. Both are deterministic, so the file can be
// made again from its seed instead of being committed.
func goldenV2Input(t testing.TB) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(20, 26))
	var content []byte
	for len(content) < 6<<20 {
		content = append(content, testSQL(rng, 300_000+rng.IntN(900_000))...)
		noise := make([]byte, 200_000+rng.IntN(600_000))
		for i := range noise {
			noise[i] = byte(rng.Uint32())
		}
		content = append(content, noise...)
	}
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3}) // gzip -1's header, no name
	w, err := deflate.NewWriter(&out, deflate.GzipParams(1, deflate.RsyncOff))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[:], crc32.ChecksumIEEE(content))
	binary.LittleEndian.PutUint32(tr[4:], uint32(len(content)))
	out.Write(tr[:])
	return out.Bytes()
}

const (
	goldenV2 = "testdata/recipes-v2/mixed-gzip1.recipe"
	goldenV3 = "testdata/recipes-v3/cut-gzip1.recipe"
)

// TestRecipeV2Restores: a version 2 recipe (parts in an exact member, as
// the release before partial members had parts wrote it) of a seeded gzip
// -1 file with stored and restarted parts still restores bit for bit.
// LARDER_WRITE_GOLDEN=1 writes it again, with a release that writes
// version 2.
func TestRecipeV2Restores(t *testing.T) {
	goldenRestores(t, 2, goldenV2, goldenV2Input(t), func(rc *Recipe) {
		all, stored, restarts := partsOf(rc.Root)
		if stored == 0 || restarts == 0 {
			t.Fatalf("the golden recipe has %d parts, %d stored and %d restarted: it should have both kinds", all, stored, restarts)
		}
	})
}

// TestRecipeV3Restores: a version 3 recipe (partial members with parts,
// before gzip --rsyncable members could have parts) of the same file cut
// at two thirds, whose member is partial after its verified parts, still
// restores bit for bit.
func TestRecipeV3Restores(t *testing.T) {
	data := goldenV2Input(t)
	goldenRestores(t, 3, goldenV3, data[:len(data)*2/3], func(rc *Recipe) {
		g, ok := rc.Root.(*Gzip)
		if !ok || len(g.Members) != 1 {
			t.Fatalf("the golden recipe's root is %T, not one gzip member", rc.Root)
		}
		if m := g.Members[0]; m.Mode != ModePartial || len(m.Segments) < 2 {
			t.Fatalf("the golden recipe's member is mode %d with %d parts; want partial with parts", m.Mode, len(m.Segments))
		}
	})
}

// goldenRestores decodes the version v recipe kept at path (written from
// data when LARDER_WRITE_GOLDEN=1, by a release that writes version v),
// checks it with check and packs it from today's streams of data, which
// must come back bit for bit.
func goldenRestores(t *testing.T, v byte, path string, data []byte, check func(*Recipe)) {
	t.Helper()
	sink := &memSink{}
	rc, err := Unpack(context.Background(), bytes.NewReader(data), sink, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("LARDER_WRITE_GOLDEN") == "1" {
		enc, err := rc.Recipe.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if enc[4] != v {
			t.Fatalf("this release writes version %d recipes, not %d", enc[4], v)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, enc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if enc[4] != v {
		t.Fatalf("%s is recipe version %d, not %d", path, enc[4], v)
	}
	var old Recipe
	if err := old.UnmarshalBinary(enc); err != nil {
		t.Fatalf("decoding a version %d recipe: %v", v, err)
	}
	check(&old)
	var out bytes.Buffer
	if err := Pack(context.Background(), &old, sink.open, &out); err != nil {
		t.Fatalf("packing with the version %d recipe: %v", v, err)
	}
	if sha256.Sum256(out.Bytes()) != sha256.Sum256(data) {
		t.Fatalf("rebuilt file differs at byte %d", firstDiff(out.Bytes(), data))
	}
}
