package recompress

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/larder/larder/internal/fixture"
	"github.com/larder/larder/internal/testenv"
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
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = lo + rng.IntN(hi-lo+1)
	}
	return datGzTarSizes(tb, sizes, seed, maker)
}

// datGzTarSizes is datGzTar with the files' sizes given.
func datGzTarSizes(tb testing.TB, sizes []int, seed uint64, maker string) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 6202))
	dir := tb.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(db, "toc.dat"), testSQL(rng, 4<<10), 0o644); err != nil {
		tb.Fatal(err)
	}
	var files []string
	for i, size := range sizes {
		f := filepath.Join(db, fmt.Sprintf("%d.dat", 3400+2*i))
		if err := os.WriteFile(f, testSQL(rng, size), 0o644); err != nil {
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

// unpackMem unpacks data into memory and returns its recipe and streams;
// every layer must be rebuilt by an engine.
func unpackMem(tb testing.TB, name string, data []byte) (*Recipe, *memSink) {
	tb.Helper()
	res, sink := unpackAny(tb, name, data)
	if !res.Summary.Exact {
		tb.Fatalf("%s: not every layer is rebuilt by an engine: %+v", name, res.Summary.Layers)
	}
	return res.Recipe, sink
}

// unpackAny unpacks data into memory, whatever its layers' modes.
func unpackAny(tb testing.TB, name string, data []byte) (*Result, *memSink) {
	tb.Helper()
	sink := &memSink{}
	res, err := Unpack(context.Background(), bytes.NewReader(data), sink, Options{Name: name})
	if err != nil {
		tb.Fatalf("%s: unpack: %v", name, err)
	}
	return res, sink
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
// and reports both times, their ratio (scaling) and the cores each kept
// busy (CPU time over wall time: on a shared machine the scaling is only
// as good as the second core it got).
func BenchmarkPack2026(b *testing.B) {
	data := datGzTar(b, 200, 100<<10, 1536<<10, 14, "zlib")
	rc, sink := unpackMem(b, "backup.tar", data)
	if all, _, _ := partsOf(rc.Root); all != 0 {
		b.Fatalf("%d members are in parts; the benchmark wants members of one part", all)
	}
	want := sha256.Sum256(data)
	// run returns the wall time of one Pack and the CPU time the process
	// spent meanwhile (the cores it kept busy, whatever else the machine
	// runs), and follows the bytes the tar's entries in flight hold.
	var held gauge
	hooks := &packHooks{held: func(d int64) { held.add(d) }}
	run := func() (wall, cpu time.Duration) {
		h := sha256.New()
		c0 := cpuTime(b)
		start := time.Now()
		if err := pack(context.Background(), rc, sink.open, h, hooks); err != nil {
			b.Fatal(err)
		}
		wall, cpu = time.Since(start), cpuTime(b)-c0
		if [32]byte(h.Sum(nil)) != want {
			b.Fatal("the rebuilt tar differs")
		}
		return wall, cpu
	}
	var pt procTimes
	b.ResetTimer()
	for range b.N {
		pt.add(run)
	}
	mb := float64(len(data)) / 1e6
	b.ReportMetric(mb, "tar-MB")
	pt.report(b, "pack")
	b.ReportMetric(mb*float64(b.N)/pt.t2.Seconds(), "pack-2-MB/s")
	b.ReportMetric(float64(held.max.Load())/(1<<20), "held-max-MiB")
}

// cpuTime returns the user and system time the process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gauge follows a count that goes up and down and keeps its highest value.
type gauge struct{ cur, max atomic.Int64 }

func (g *gauge) add(d int64) {
	c := g.cur.Add(d)
	for m := g.max.Load(); c > m && !g.max.CompareAndSwap(m, c); m = g.max.Load() {
	}
}

// packWith packs rc with hooks and requires the original bytes.
func packWith(t *testing.T, what string, rc *Recipe, sink *memSink, data []byte, hooks *packHooks) {
	t.Helper()
	var out bytes.Buffer
	if err := pack(context.Background(), rc, sink.open, &out, hooks); err != nil {
		t.Fatalf("%s: pack: %v", what, err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("%s: pack gave %d bytes, not the original %d (first difference at %d)",
			what, out.Len(), len(data), firstDiff(out.Bytes(), data))
	}
}

// smallLimits make a tar's entries wait for each other often: few in
// flight, little room, and the bigger entries rebuilt on the walker.
var smallLimits = tarLimits{jobs: 3, jobInput: 512 << 10, held: 1 << 20, head: 128 << 10}

// TestPack2026Committed: the committed 2026 backup (real pg_dump -Fd, GNU
// tar) packs exactly at GOMAXPROCS 1 and 2, with the default limits and
// with small ones, its table files rebuilt side by side.
func TestPack2026Committed(t *testing.T) {
	data := committedFixture(t, "2026")
	rc, sink := unpackMem(t, "2026.tar", data)
	checkPack2026(t, "committed 2026", rc, sink, data)
}

// TestPack2026RealPgDump: the same for a 2026 backup the fixture builder
// makes now from the medium preset (pg_dump --format=directory --jobs=2,
// GNU tar): bigger tables, some of them near the size of a part.
func TestPack2026RealPgDump(t *testing.T) {
	testenv.NeedPostgres(t)
	ctx := context.Background()
	opts := fixture.Medium()
	opts.Dir = filepath.Join(t.TempDir(), "work")
	s, err := fixture.NewSeries(ctx, opts)
	if err != nil {
		t.Fatalf("starting the fixture builder (needs PostgreSQL): %v", err)
	}
	defer s.Close()
	p, err := s.Write2026(ctx, t.TempDir(), fixture.V2026Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := mustRead(t, p)
	rc, sink := unpackMem(t, filepath.Base(p), data)
	checkPack2026(t, filepath.Base(p), rc, sink, data)
}

func checkPack2026(t *testing.T, name string, rc *Recipe, sink *memSink, data []byte) {
	t.Helper()
	tr, ok := rc.Root.(*Tar)
	if !ok || len(tr.Parts) < 5 {
		t.Fatalf("%s: the root is %T with no table files to rebuild", name, rc.Root)
	}
	chosen := map[*Tar]bool{}
	if jobTars(rc.Root, maxJobInput, chosen); !chosen[tr] {
		t.Fatalf("%s: the tar's entries are not rebuilt side by side", name)
	}
	for _, procs := range []int{1, 2} {
		withProcs(procs, func() {
			packWith(t, fmt.Sprintf("%s at GOMAXPROCS %d", name, procs), rc, sink, data, nil)
			packWith(t, fmt.Sprintf("%s at GOMAXPROCS %d, small limits", name, procs), rc, sink, data,
				&packHooks{tar: smallLimits})
		})
	}
}

// TestPackEntriesSideBySide: in a tar of small files made by GNU gzip,
// the engines of several entries deflate at the same time, and the tar is
// rebuilt exactly. (Before, the walker waited for each entry's engine:
// one at a time.)
func TestPackEntriesSideBySide(t *testing.T) {
	data := datGzTar(t, 24, 64<<10, 256<<10, 1, "gzip")
	rc, sink := unpackMem(t, "backup.tar", data)
	withProcs(2, func() {
		var busy gauge
		packWith(t, "24 gzip -6 files", rc, sink, data, &packHooks{engineBusy: func(d int) { busy.add(int64(d)) }})
		if m := busy.max.Load(); m < 2 {
			t.Errorf("at most %d engine deflated at once; the entries were rebuilt one after another", m)
		}
		if c := busy.cur.Load(); c != 0 {
			t.Errorf("%d engines still busy after Pack", c)
		}
	})
}

// TestPackEntriesMemoryBound: the bytes held for a tar's entries in flight
// (input read ahead and output not yet written) stay within the limits,
// and all are let go at the end. Entries over the input limit (some in
// parts) are rebuilt on the walker while jobs run before them.
func TestPackEntriesMemoryBound(t *testing.T) {
	// Small files, two in parts (2.5 MiB: over the small input limit,
	// under the default one) and one over the default input limit.
	sizes := []int{5 << 19, 40 << 10, 300 << 10, 16 << 10, 700 << 10, 17 << 18, 200 << 10, 450 << 10, 90 << 10}
	sizes = append(sizes, 600<<10, 5<<19, 100<<10, 250<<10, 30<<10, 500<<10)
	data := datGzTarSizes(t, sizes, 7, "zlib")
	rc, sink := unpackMem(t, "backup.tar", data)
	if all, _, _ := partsOf(rc.Root); all == 0 {
		t.Fatal("no member is in parts; the test needs big entries too")
	}
	for _, tc := range []struct {
		name string
		lim  tarLimits
	}{
		{"small limits", smallLimits},
		// Room for many entries, so that the bytes are what bounds them.
		{"many entries", tarLimits{jobs: 16, jobInput: 512 << 10, held: 768 << 10, head: 64 << 10}},
		{"defaults", tarLimits{jobs: 3, jobInput: maxJobInput, held: maxTarHeld, head: maxHeadBuffer}},
	} {
		for _, procs := range []int{1, 2} {
			withProcs(procs, func() {
				var held gauge
				what := fmt.Sprintf("%s at GOMAXPROCS %d", tc.name, procs)
				packWith(t, what, rc, sink, data, &packHooks{tar: tc.lim, held: func(d int64) { held.add(d) }})
				bound := int64(tc.lim.held + tc.lim.head)
				if m := held.max.Load(); m > bound || m < int64(tc.lim.jobInput)/2 {
					t.Errorf("%s: at most %d bytes held, want some and at most %d", what, m, bound)
				}
				if c := held.cur.Load(); c != 0 {
					t.Errorf("%s: %d bytes still held after Pack", what, c)
				}
			})
		}
	}
}

// TestPackEntriesFailures: a tar of many small gzip files whose rebuild
// fails, by a stream that breaks, an output that fills up, a canceled
// context or a damaged recipe, returns that error, not a stop caused by
// it, without deadlock, and every goroutine of the entries has stopped.
func TestPackEntriesFailures(t *testing.T) {
	data := datGzTar(t, 12, 32<<10, 400<<10, 3, "gzip")
	rc, sink := unpackMem(t, "backup.tar", data)
	before := runtime.NumGoroutine()
	errBroken := errors.New("stream broke")
	lims := []*packHooks{nil, {tar: smallLimits}}
	for i := range sink.streams {
		size := sink.streams[i].Len()
		for _, at := range []int{0, size / 3, size / 2, size - 1} {
			open := func(j int, k Kind) (io.Reader, error) {
				r, err := sink.open(j, k)
				if j == i && err == nil {
					r = &failingReader{r: r, n: at, err: errBroken}
				}
				return r, err
			}
			for _, h := range lims {
				if err := pack(context.Background(), rc, open, io.Discard, h); !errors.Is(err, errBroken) {
					t.Fatalf("stream %d broken at %d of %d: Pack returned %v", i, at, size, err)
				}
			}
		}
	}
	for _, at := range []int{0, 1000, len(data) / 7, len(data) / 2, len(data) - 9} {
		for _, h := range lims {
			if err := pack(context.Background(), rc, sink.open, &failingWriter{n: at}, h); !errors.Is(err, errDiskFull) {
				t.Fatalf("output full at %d of %d: Pack returned %v", at, len(data), err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Pack(ctx, rc, sink.open, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: Pack returned %v", err)
	}
	// A damaged recipe: one entry's engine is given other parameters, so
	// it makes other bytes (more of them, at level 1) than recorded.
	tr := rc.Root.(*Tar)
	for _, e := range []int{0, 5, len(tr.Parts) - 1} {
		g := tr.Parts[e].Child.(*Gzip)
		good := g.Members[0].Params
		g.Members[0].Params.Level = 1
		for _, h := range lims {
			err := pack(context.Background(), rc, sink.open, io.Discard, h)
			if !errors.Is(err, ErrPack) || errors.Is(err, errAborted) || !strings.Contains(err.Error(), "member 1") {
				t.Errorf("entry %d damaged: Pack returned %v", e, err)
			}
		}
		g.Members[0].Params = good
	}
	if n := goroutinesLeft(before); n > 0 {
		t.Fatalf("%d goroutines more after the failed packs than before", n)
	}
	packWith(t, "after the failures", rc, sink, data, nil)
}

// TestPackEntriesMixed: a tar of small gzip files of every kind the
// walker meets (exact members, verbatim ones no engine makes, a partial
// one, several members, trailing bytes, a damaged file, a nested .tar.gz,
// plain files) and one bigger than a job may be packs exactly with its
// entries side by side.
func TestPackEntriesMixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 14))
	sql := func(n int) []byte { return testSQL(rng, n) }
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	add := func(name string, b []byte) {
		t.Helper()
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	goGzip := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		_, _ = zw.Write(b) // a bytes.Buffer takes everything
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	var inner bytes.Buffer
	iw := tar.NewWriter(&inner)
	for i := range 3 {
		b := run(t, sql(50<<10), "gzip", "-6", "-c")
		_ = iw.WriteHeader(&tar.Header{Name: fmt.Sprintf("in/%d.gz", i), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		_, _ = iw.Write(b) // archive/tar into a bytes.Buffer: the sizes match
	}
	if err := iw.Close(); err != nil {
		t.Fatal(err)
	}
	add("db/toc.dat", sql(3<<10))
	add("db/1.dat.gz", run(t, sql(200<<10), "gzip", "-6", "-c"))
	add("db/2.dat.gz", run(t, bytes.Repeat(sql(200<<10), 4), "pigz", "-6", "-c"))
	add("db/3.dat.gz", goGzip(sql(100<<10)))
	add("db/4.dat.gz", append(run(t, sql(90<<10), "gzip", "-5", "-c"), run(t, sql(70<<10), "gzip", "-1", "-c")...))
	add("db/5.dat.gz", append(run(t, sql(60<<10), "gzip", "-1", "-c"), []byte("not gzip at all")...))
	trunc := run(t, sql(600<<10), "gzip", "-6", "-c")
	add("db/6.dat.gz", trunc[:len(trunc)*2/3])
	add("db/notes.txt", sql(10<<10))
	add("db/7.tar.gz", run(t, inner.Bytes(), "gzip", "-6", "-c"))
	add("db/8.dat.gz", pyGzip(t, sql(150<<10), 9, "n"))
	add("db/9.dat.gz", run(t, sql(900<<10), "gzip", "-6", "-c"))
	for i := 10; i < 16; i++ {
		add(fmt.Sprintf("db/%d.dat.gz", i), run(t, sql(20<<10+rng.IntN(200<<10)), "gzip", "-6", "-c"))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := tb.Bytes()
	res, sink := roundTrip(t, "mixed.tar", data)
	rc := res.Recipe
	var kinds [3]int
	trailing := 0
	for g := range gzipNodes(rc.Root) {
		for _, m := range g.Members {
			kinds[m.Mode]++
		}
		if g.Trailing > 0 {
			trailing++
		}
	}
	t.Logf("members: %d exact, %d verbatim, %d partial; %d with trailing bytes", kinds[ModeExact], kinds[ModeVerbatim], kinds[ModePartial], trailing)
	if kinds[ModeVerbatim] == 0 || kinds[ModePartial] == 0 || trailing == 0 {
		t.Fatal("the tar lacks a verbatim or partial member or trailing bytes")
	}
	chosen := map[*Tar]bool{}
	if jobTars(rc.Root, maxJobInput, chosen); !chosen[rc.Root.(*Tar)] {
		t.Fatal("the tar's entries are not rebuilt side by side")
	}
	for _, procs := range []int{1, 2} {
		withProcs(procs, func() {
			packWith(t, fmt.Sprintf("GOMAXPROCS %d", procs), rc, sink, data, nil)
			packWith(t, fmt.Sprintf("GOMAXPROCS %d, small limits", procs), rc, sink, data, &packHooks{tar: smallLimits})
		})
	}
}

// BenchmarkUnpack2026 unpacks the tar BenchmarkPack2026 packs (the ingest
// side: identifying and verifying every member) at GOMAXPROCS 1 and 2 in
// the same run, and times GNU gzip -6 compressing the members' content in
// one file as the reference: pg_dump made the members at that level, so
// an ingest that verifies them cannot take less than about that much
// engine work.
func BenchmarkUnpack2026(b *testing.B) {
	data := datGzTar(b, 200, 100<<10, 1536<<10, 14, "zlib")
	_, sink := unpackMem(b, "backup.tar", data)
	var content []byte
	for i := range sink.streams {
		if sink.kinds[i] == KindPGData {
			content = append(content, sink.streams[i].Bytes()...)
		}
	}
	if len(content) == 0 {
		b.Fatal("no table data unpacked")
	}
	plain := filepath.Join(b.TempDir(), "tables")
	if err := os.WriteFile(plain, content, 0o600); err != nil {
		b.Fatal(err)
	}
	run := func() (wall, cpu time.Duration) {
		c0 := cpuTime(b)
		start := time.Now()
		if _, err := Unpack(context.Background(), bytes.NewReader(data), discard{}, Options{Name: "backup.tar"}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start), cpuTime(b) - c0
	}
	var pt procTimes
	var tg time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		cmd := exec.Command("gzip", "-6", "-c", plain)
		if err := cmd.Run(); err != nil {
			b.Fatalf("gzip -6: %v", err)
		}
		tg += time.Since(start)
		pt.add(run)
	}
	b.ReportMetric(float64(len(data))/1e6, "tar-MB")
	b.ReportMetric(float64(len(content))/1e6, "content-MB")
	b.ReportMetric(tg.Seconds()/float64(b.N), "gzip-6-s")
	pt.report(b, "unpack")
	b.ReportMetric(pt.t2.Seconds()/tg.Seconds(), "unpack-2/gzip-6")
}

// procTimes sums the wall and CPU times of runs at GOMAXPROCS 1 and 2.
type procTimes struct{ t1, c1, t2, c2 time.Duration }

// add runs run once at GOMAXPROCS 1, then once at 2.
func (p *procTimes) add(run func() (wall, cpu time.Duration)) {
	withProcs(1, func() {
		w, c := run()
		p.t1, p.c1 = p.t1+w, p.c1+c
	})
	withProcs(2, func() {
		w, c := run()
		p.t2, p.c2 = p.t2+w, p.c2+c
	})
}

// report reports the mean times as name-1-s and name-2-s, their ratio
// (scaling) and the cores each kept busy (below 1 at GOMAXPROCS 1: other
// work on the machine took the time).
func (p *procTimes) report(b *testing.B, name string) {
	n := float64(b.N)
	b.ReportMetric(p.t1.Seconds()/n, name+"-1-s")
	b.ReportMetric(p.t2.Seconds()/n, name+"-2-s")
	b.ReportMetric(p.t1.Seconds()/p.t2.Seconds(), "scaling")
	b.ReportMetric(p.c1.Seconds()/p.t1.Seconds(), name+"-1-cores")
	b.ReportMetric(p.c2.Seconds()/p.t2.Seconds(), name+"-2-cores")
}

// discard is a Sink that keeps nothing.
type discard struct{}

func (discard) Stream(int, Kind) (io.WriteCloser, error) { return discardStream{}, nil }

type discardStream struct{}

func (discardStream) Write(p []byte) (int, error) { return len(p), nil }
func (discardStream) Close() error                { return nil }
