package recompress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
