package recompress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"
)

// memSink keeps streams in memory (tests only).
type memSink struct {
	streams []*bytes.Buffer
	kinds   []Kind
	closed  []bool
}

func (m *memSink) Stream(i int, k Kind) (io.WriteCloser, error) {
	if i != len(m.streams) {
		return nil, fmt.Errorf("stream %d started out of order", i)
	}
	b := &bytes.Buffer{}
	m.streams = append(m.streams, b)
	m.kinds = append(m.kinds, k)
	m.closed = append(m.closed, false)
	return &memStream{m: m, i: i}, nil
}

type memStream struct {
	m *memSink
	i int
}

func (s *memStream) Write(p []byte) (int, error) { return s.m.streams[s.i].Write(p) }
func (s *memStream) Close() error {
	if s.m.closed[s.i] {
		return fmt.Errorf("stream %d closed twice", s.i)
	}
	s.m.closed[s.i] = true
	return nil
}

func (m *memSink) open(i int, k Kind) (io.Reader, error) {
	if i >= len(m.streams) {
		return nil, fmt.Errorf("no stream %d", i)
	}
	if m.kinds[i] != k {
		return nil, fmt.Errorf("stream %d is %v, not %v", i, m.kinds[i], k)
	}
	return bytes.NewReader(m.streams[i].Bytes()), nil
}

// roundTrip unpacks data, checks the recipe encodes and decodes, packs it
// back and requires the same bytes.
func roundTrip(t *testing.T, name string, data []byte) (*Result, *memSink) {
	t.Helper()
	res, sink := unpackAny(t, name, data)
	for i, c := range sink.closed {
		if !c {
			t.Fatalf("%s: stream %d not closed", name, i)
		}
	}
	if res.SHA256 != sha256.Sum256(data) {
		t.Fatalf("%s: wrong SHA-256 of the input", name)
	}
	enc, err := res.Recipe.MarshalBinary()
	if err != nil {
		t.Fatalf("%s: recipe: %v", name, err)
	}
	var rc Recipe
	if err := rc.UnmarshalBinary(enc); err != nil {
		t.Fatalf("%s: recipe decode: %v", name, err)
	}
	var out bytes.Buffer
	if err := Pack(context.Background(), &rc, sink.open, &out); err != nil {
		t.Fatalf("%s: pack: %v", name, err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("%s: pack gave %d bytes, not the original %d (first difference at %d)",
			name, out.Len(), len(data), firstDiff(out.Bytes(), data))
	}
	return res, sink
}

func firstDiff(a, b []byte) int {
	for i := 0; i < min(len(a), len(b)); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// committed lists the committed fixtures (testdata/small).
func committed(t testing.TB) []string {
	t.Helper()
	var files []string
	root := filepath.Join("..", "testdata", "small")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Dir(p) != root {
			files = append(files, p)
		}
		return nil
	})
	if err != nil || len(files) < 6 {
		t.Fatalf("committed fixtures missing under %s (%d found): %v", root, len(files), err)
	}
	sort.Strings(files)
	return files
}

// recodeAndPack encodes rc, checks it is of this release's version,
// decodes it and packs the decoded recipe from sink's streams, failing t
// unless that rebuilds want bit for bit. It returns the decoded recipe.
func recodeAndPack(t testing.TB, rc *Recipe, sink *memSink, want []byte) *Recipe {
	t.Helper()
	enc, err := rc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if enc[4] != RecipeVersion {
		t.Fatalf("recipe version %d written, want %d", enc[4], RecipeVersion)
	}
	var back Recipe
	if err := back.UnmarshalBinary(enc); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Pack(context.Background(), &back, sink.open, &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("rebuilt file differs at byte %d", firstDiff(out.Bytes(), want))
	}
	return &back
}

// goroutinesLeft waits a moment for the goroutines started since there
// were before to return (the runtime accounts for them a little late) and
// reports how many are still running, 0 when none.
func goroutinesLeft(before int) int {
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return max(runtime.NumGoroutine()-before, 0)
}
