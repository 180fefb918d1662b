package recompress

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The 2026 Discourse format is a plain tar of a directory-format pg_dump:
// toc.dat and one NNNN.dat.gz per table, most of them well under the 2 MiB
// a member needs before ingest cuts it into parts. These tests and the
// benchmark build such tars from SQL-ish COPY text compressed by the real
// tools and check how Pack rebuilds them.

// datGzTar returns a GNU tar of db/toc.dat and n files db/NNNN.dat.gz of
// lo to hi bytes of COPY text each, compressed by maker: "gzip" (GNU gzip
// -6, name and mtime in the header) or "zlib" (python's zlib at level 6
// with pg_dump's header: no name, mtime 0, OS 3).
func datGzTar(tb testing.TB, n, lo, hi int, seed uint64, maker string) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 2026))
	dir := tb.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "toc.dat"), testSQL(rng, 4<<10), 0o644); err != nil {
		tb.Fatal(err)
	}
	var files []string
	for i := range n {
		f := filepath.Join(db, fmt.Sprintf("%d.dat", 3400+2*i))
		if err := os.WriteFile(f, testSQL(rng, lo+rng.IntN(hi-lo+1)), 0o644); err != nil {
			tb.Fatal(err)
		}
		files = append(files, f)
	}
	switch maker {
	case "gzip":
		tool(tb, dir, "gzip", append([]string{"-6"}, files...)...)
	case "zlib":
		prog := `
import sys, zlib, struct, os
for f in sys.argv[1:]:
    data = open(f, 'rb').read()
    c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, 0)
    body = c.compress(data) + c.flush()
    hdr = bytes([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])
    open(f + '.gz', 'wb').write(hdr + body + struct.pack('<II', zlib.crc32(data), len(data) & 0xffffffff))
    os.remove(f)
`
		tool(tb, dir, "python3", append([]string{"-c", prog}, files...)...)
	default:
		tb.Fatalf("unknown gzip maker %q", maker)
	}
	tool(tb, dir, "tar", "--create", "--format=gnu", "--sort=name", "--mtime=2026-01-06 03:25:11",
		"--owner=0", "--group=0", "--file=backup.tar", "db")
	return mustRead(tb, filepath.Join(dir, "backup.tar"))
}

// tool runs a program in dir and fails the test if it fails.
func tool(tb testing.TB, dir, name string, args ...string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Fatalf("%s is needed for this test (.ci/run installs it): %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v: %s", name, err, out)
	}
}

// unpackMem unpacks data into memory and returns its recipe and streams.
func unpackMem(tb testing.TB, name string, data []byte) (*Recipe, *memSink) {
	tb.Helper()
	sink := &memSink{}
	res, err := Unpack(context.Background(), bytes.NewReader(data), sink, Options{Name: name})
	if err != nil {
		tb.Fatalf("%s: unpack: %v", name, err)
	}
	if !res.Summary.Exact {
		tb.Fatalf("%s: not every layer is rebuilt by an engine: %+v", name, res.Summary.Layers)
	}
	return res.Recipe, sink
}

// withProcs runs f with GOMAXPROCS set to n.
func withProcs(n int, f func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	f()
}

// BenchmarkPack2026 packs a 2026-style tar of 200 pg_dump-like *.dat.gz
// files (100 KiB to 1.5 MiB of COPY text each, zlib level 6 as pg_dump
// writes them, none cut into parts) at GOMAXPROCS 1 and 2 in the same run,
// and reports both times and their ratio (scaling).
func BenchmarkPack2026(b *testing.B) {
	data := datGzTar(b, 200, 100<<10, 1536<<10, 14, "zlib")
	rc, sink := unpackMem(b, "backup.tar", data)
	if all, _, _ := partsOf(rc.Root); all != 0 {
		b.Fatalf("%d members are in parts; the benchmark wants members of one part", all)
	}
	want := sha256.Sum256(data)
	pack := func() time.Duration {
		h := sha256.New()
		start := time.Now()
		if err := Pack(context.Background(), rc, sink.open, h); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if [32]byte(h.Sum(nil)) != want {
			b.Fatal("the rebuilt tar differs")
		}
		return d
	}
	var t1, t2 time.Duration
	b.ResetTimer()
	for range b.N {
		withProcs(1, func() { t1 += pack() })
		withProcs(2, func() { t2 += pack() })
	}
	mb := float64(len(data)) / 1e6
	b.ReportMetric(mb, "tar-MB")
	b.ReportMetric(t1.Seconds()/float64(b.N), "pack-1-s")
	b.ReportMetric(t2.Seconds()/float64(b.N), "pack-2-s")
	b.ReportMetric(t1.Seconds()/t2.Seconds(), "scaling")
	b.ReportMetric(mb*float64(b.N)/t2.Seconds(), "pack-2-MB/s")
}
