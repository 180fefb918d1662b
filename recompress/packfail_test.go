package recompress

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// failingReader gives n bytes of r, then err.
type failingReader struct {
	r   io.Reader
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	k, err := f.r.Read(p[:min(len(p), f.n)])
	f.n -= k
	return k, err
}

// failingWriter takes n bytes, then fails.
type failingWriter struct{ n int }

var errDiskFull = errors.New("no space left on device")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		f.n = 0
		return 0, errDiskFull
	}
	f.n -= len(p)
	return len(p), nil
}

// TestPackFailuresStopEveryEngine: a nested backup (dump.sql.gz in a tar
// in gzip) whose rebuild fails at many points, by a stream that breaks
// or an output that fills up, returns that error, and every layer's
// engine goroutine has stopped when Pack returns.
func TestPackFailuresStopEveryEngine(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "small", "classic-gzip1", "*.tar.gz"))
	if len(files) == 0 {
		t.Fatal("no classic fixture in testdata/small/classic-gzip1")
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	res, sink := roundTrip(t, files[0], data)
	if gz := countGzip(res.Recipe.Root); gz < 2 {
		t.Fatalf("the fixture has %d gzip layers, the test needs nested ones", gz)
	}
	before := runtime.NumGoroutine()
	errBroken := errors.New("stream broke")
	for i := range sink.streams {
		size := sink.streams[i].Len()
		for _, at := range []int{0, size / 3, size - 1} {
			open := func(j int, k Kind) (io.Reader, error) {
				r, err := sink.open(j, k)
				if j == i && err == nil {
					r = &failingReader{r: r, n: at, err: errBroken}
				}
				return r, err
			}
			err := Pack(context.Background(), res.Recipe, open, io.Discard)
			if !errors.Is(err, errBroken) {
				t.Fatalf("stream %d broken at %d of %d: Pack returned %v", i, at, size, err)
			}
		}
	}
	for _, at := range []int{0, len(data) / 7, len(data) / 2, len(data) - 9} {
		err := Pack(context.Background(), res.Recipe, sink.open, &failingWriter{n: at})
		if !errors.Is(err, errDiskFull) {
			t.Fatalf("output full at %d of %d: Pack returned %v", at, len(data), err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Pack(ctx, res.Recipe, sink.open, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: Pack returned %v", err)
	}
	if n := goroutinesLeft(before); n > 0 {
		t.Fatalf("%d goroutines more after the failed packs than before", n)
	}
	var out bytes.Buffer
	if err := Pack(context.Background(), res.Recipe, sink.open, &out); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("after the failures a pack gave %d bytes (%v), not the original", out.Len(), err)
	}
}

func countGzip(n Node) int {
	c := 0
	for range gzipNodes(n) {
		c++
	}
	return c
}

// TestPackFailuresWithParts: the same for a nested backup whose members
// are in parts (a zlib -4 dump.sql.gz and uploads in a tar under gzip -1):
// a broken stream or a full output is the error Pack returns, and every
// part's goroutine has stopped.
func TestPackFailuresWithParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 14))
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	add("dump.sql.gz", pyGzip(t, testSQL(rng, 5<<20), 4, ""))
	add("uploads/a.bin", testImages(rng, 3<<20))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := run(t, tb.Bytes(), "gzip", "-1", "-c")
	res, sink := roundTrip(t, "parts.tar.gz", data)
	if all, stored, restarts := partsOf(res.Recipe.Root); stored == 0 || restarts < 2 {
		t.Fatalf("the backup has %d parts, %d stored, %d restarts: the test needs parts", all, stored, restarts)
	}
	before := runtime.NumGoroutine()
	errBroken := errors.New("stream broke")
	for i := range sink.streams {
		size := sink.streams[i].Len()
		for _, at := range []int{0, size / 3, size - 1} {
			open := func(j int, k Kind) (io.Reader, error) {
				r, err := sink.open(j, k)
				if j == i && err == nil {
					r = &failingReader{r: r, n: at, err: errBroken}
				}
				return r, err
			}
			if err := Pack(context.Background(), res.Recipe, open, io.Discard); !errors.Is(err, errBroken) {
				t.Fatalf("stream %d broken at %d of %d: Pack returned %v", i, at, size, err)
			}
		}
	}
	for _, at := range []int{0, len(data) / 7, len(data) / 2, len(data) - 9} {
		if err := Pack(context.Background(), res.Recipe, sink.open, &failingWriter{n: at}); !errors.Is(err, errDiskFull) {
			t.Fatalf("output full at %d of %d: Pack returned %v", at, len(data), err)
		}
	}
	if n := goroutinesLeft(before); n > 0 {
		t.Fatalf("%d goroutines more after the failed packs than before", n)
	}
}
